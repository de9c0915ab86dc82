"""Every method behind one pair of calls: ``train_method`` and ``load_policy``.

- Diffusion planners (``tcdp``, ``trebi``, ``cdd`` and the TCDP ablations of
  ``tcdp_lib.method.variants``) train with :func:`tcdp_lib.runs.train.train_tcdp` into a run
  directory holding ``model.pt`` (resumable), and act through ``TCDPPolicy``.
- Baselines (``bc_safe``, ``cdt`` of ``tcdp_lib.baselines``) train with their own code; the run
  directory holds one file per budget (BC-Safe) or one shared file (CDT), and a ``method.json``
  manifest naming the task and the file of each budget.

``tcdp train --method`` and ``tcdp evaluate --method`` call these two functions, and so does
``tcdp benchmark``: every method is evaluated by the same code and writes the same files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from tcdp_lib.baselines import BASELINES, PerBudgetPolicy, get_baseline
from tcdp_lib.data.dataset import Dataset
from tcdp_lib.device import resolve_device
from tcdp_lib.files import CheckpointError, safe_load
from tcdp_lib.method.model import TCDPConfig
from tcdp_lib.method.variants import VARIANTS
from tcdp_lib.planner.planner import PlannerConfig
from tcdp_lib.planner.policy import TCDPPolicy, policy_config
from tcdp_lib.runs.checkpoint import load_model, warn_untrained_budgets
from tcdp_lib.runs.train import RunConfig, TrainConfig, default_model_config, default_train_config, train_tcdp

DIFFUSION_METHODS = tuple(VARIANTS)
"""Diffusion planners on the shared backbone (TCDP, TREBI, CDD, TCDP ablations)."""
BASELINE_METHODS = tuple(BASELINES)
"""Policies trained by their own code (BC-Safe, CDT)."""
METHODS = ("tcdp", "trebi", "cdd", "bc_safe", "cdt")
"""The methods of the benchmark table, TCDP first."""
MANIFEST = "method.json"


def check_method(method: str) -> str:
    """``method`` if known; a ``ValueError`` listing the valid names otherwise."""
    if method not in DIFFUSION_METHODS and method not in BASELINE_METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {sorted(DIFFUSION_METHODS + BASELINE_METHODS)}")
    return method


def train_method(method: str, dataset: Dataset, run_dir: Path, seed: int = 0, steps: int | None = None,
                 model_config: TCDPConfig | None = None, train_config: TrainConfig | None = None,
                 baseline_config=None, progress: bool = True, device=None) -> Path:
    """Train ``method`` on ``dataset`` into ``run_dir``; returns the path ``load_policy`` takes.

    ``steps`` overrides the optimiser steps (the task's ``default_train_config`` or the baseline config's).
    A diffusion run resumes from its last checkpoint; a finished baseline run is not redone.
    """
    check_method(method)
    run_dir = Path(run_dir)
    task = dataset.task.task_id
    if method in DIFFUSION_METHODS:
        model_config = dataclasses.replace(model_config or default_model_config(task), variant=method)
        train = train_config or default_train_config(task)
        if steps is not None:
            train = dataclasses.replace(train, steps=int(steps))
        run = RunConfig(task=task, seed=seed, model=model_config, train=train)
        return train_tcdp(dataset, run, run_dir=run_dir, device=device, progress=progress).model_path

    manifest = run_dir / MANIFEST
    if manifest.exists():
        done = json.loads(manifest.read_text())
        if done.get("task") == task and done.get("seed") == seed and done.get("steps") == steps:
            return manifest
    spec = get_baseline(method)
    budgets = [float(b) for b in dataset.meta.budgets]
    t0 = time.time()
    policies = spec.train_for_budgets(dataset.episodes, budgets, baseline_config, seed, steps, progress, device)
    files = {}
    for b in budgets:
        name = f"b{b:g}.pt" if spec.per_budget else "model.pt"
        if name not in files.values():
            spec.save(policies[b], run_dir / name)
        files[f"{b:g}"] = name
    body = {"method": method, "task": task, "seed": seed, "steps": steps, "files": files,
            "wall_time_s": time.time() - t0}
    tmp = run_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, manifest)  # written last: a run that died midway is trained again
    return manifest


def _trained_file(path: Path) -> Path:
    """``path``, or for a run directory the baseline manifest or ``model.pt`` in it."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST if (path / MANIFEST).exists() else path / "model.pt"
    if not path.exists():
        raise CheckpointError(f"no trained model at {path} (expected a model.pt or a {MANIFEST})")
    return path


def _manifest(path: Path) -> dict:
    """A baseline run's manifest; :class:`CheckpointError` if it is not one."""
    try:
        body = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a {MANIFEST} of `tcdp train` (not JSON: {err})") from err
    missing = [k for k in ("method", "task", "files") if not isinstance(body, dict) or k not in body]
    if missing:
        raise CheckpointError(f"{path}: not a {MANIFEST} of `tcdp train` (no {', '.join(missing)})")
    return body


def method_of(path: Path) -> str:
    """The method a trained file belongs to: a baseline manifest names it; a model file is a
    diffusion planner whose variant is in its config."""
    path = _trained_file(path)
    if path.name == MANIFEST:
        return _manifest(path)["method"]
    return safe_load(path).get("model_config", {}).get("variant", "tcdp")


def training_wall_time(path: Path) -> float:
    """Seconds of training behind a trained file, over all resumed sessions: a diffusion run's
    checkpoint's (its optimiser steps and its action model's stage), else the last record of its
    ``history.json`` (the steps alone); a baseline manifest's ``wall_time_s``."""
    path = _trained_file(path)
    if path.name == MANIFEST:
        return float(json.loads(path.read_text())["wall_time_s"])
    ckpt = path.parent / "checkpoint.pt"
    if ckpt.exists():
        return float(safe_load(ckpt)["wall_time_s"])
    history = json.loads((path.parent / "history.json").read_text())
    return float(history[-1]["wall_time_s"]) if history else 0.0


def load_policy(path: Path, task: str, planner_config: PlannerConfig | None = None, replan_every: int | None = None,
                method: str | None = None, warm_start: bool | None = None, budgets=None, device=None,
                temporal_ensemble: int | None = None):
    """``make_policy(seed) -> Policy`` for the trained ``path`` (a model file, a baseline
    manifest, or a run directory holding either). Refuses a file of another task, and one of
    another method than ``method`` when that is given. ``budgets``: those the policy will be run
    at; a diffusion model warns once about those outside its trained range. The policy runs on
    ``device`` (default: :func:`tcdp_lib.device.resolve_device`'s choice)."""
    path = _trained_file(path)
    device = resolve_device(device)
    if path.name != MANIFEST:
        model, _ = load_model(path, task=task)
        model = model.to(device)
        found = model.config.variant
        if method is not None and found != method:
            raise CheckpointError(f"{path} holds a {found!r} model, not the requested method {method!r}")
        if budgets is not None:
            warn_untrained_budgets(model, budgets)
        policy_config(replan_every, warm_start, 0, temporal_ensemble)  # execution settings checked now

        def make_diffusion(seed: int):
            return TCDPPolicy(model, planner_config, policy_config(replan_every, warm_start, seed, temporal_ensemble))

        return make_diffusion
    body = _manifest(path)
    found = body["method"]
    if method is not None and found != method:
        raise CheckpointError(f"{path} holds a {found!r} model, not the requested method {method!r}")
    if body.get("task") != task:
        raise CheckpointError(f"{path} holds a {found!r} model trained on {body.get('task')!r}, not on {task!r}")
    spec = get_baseline(found)
    loaded = {name: spec.load(path.parent / name, device) for name in set(body["files"].values())}
    policies = {float(b): loaded[name] for b, name in body["files"].items()}

    def make_baseline(seed: int):  # deterministic policies: the seed only changes the episodes' starts
        # one model per budget (BC-Safe) serves only its budgets; a shared model (CDT) serves any
        return PerBudgetPolicy(policies) if spec.per_budget else next(iter(loaded.values()))

    return make_baseline
