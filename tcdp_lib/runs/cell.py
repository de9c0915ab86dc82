"""One benchmark cell: a pure function of its config and seed that writes its own result file.

A cell (method, task, seed, steps, episodes, planning, ...) trains its method into
``<out>/<task>/<method>/seed<k>/train/``, evaluates it at the task's budgets with the shared
harness and writes ``result.json`` atomically in ``<out>/<task>/<name>/seed<k>/``. Any executor
runs cells through :func:`run_cell` (``runs.benchmark``'s serial loop, ``runs.ray_executor``'s
Ray tasks); a cell whose ``result.json`` holds the same config is finished.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path

from tcdp_lib.files import atomic_write_text


def cell_name(cell: dict) -> str:
    """The cell's column in the table and its folder: its arm's label, else its method."""
    return cell.get("label") or cell["method"]


def cell_dir(out_root: Path, cell: dict) -> Path:
    return Path(out_root) / cell["task"] / cell_name(cell) / f"seed{cell['seed']}"


def train_dir(out_root: Path, cell: dict) -> Path:
    """Where the cell's method is trained: ``<task>/<method>/seed<k>/train``. Cells that differ
    only in planning or evaluation (arms of one method) share it; for a cell without a label it
    is ``cell_dir(...) / "train"``."""
    return Path(out_root) / cell["task"] / cell["method"] / f"seed{cell['seed']}" / "train"


def _json_cell(cell: dict) -> dict:
    return json.loads(json.dumps(cell))


def load_cell_result(out_root: Path, cell: dict) -> dict | None:
    """The finished result of ``cell`` when ``result.json`` holds this exact cell config, else ``None``."""
    path = cell_dir(out_root, cell) / "result.json"
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return result if result.get("cell") == _json_cell(cell) else None


def write_cell_result(out_root: Path, result: dict) -> Path:
    """Write a cell's result body to its ``result.json`` under ``out_root``, atomically."""
    return atomic_write_text(cell_dir(out_root, result["cell"]) / "result.json", json.dumps(result, indent=1))


def run_cell(cell: dict, out_root: Path, progress: bool = False, device=None) -> dict:
    """Train and evaluate one cell; writes and returns its ``result.json`` body.

    Everything random is seeded from ``cell["seed"]`` inside (training batches and initialisation,
    planner noise, environment resets), so any executor gets the same result at the same torch
    thread count. While the cell runs, ``running.json`` in its folder names the host and process
    (a file left behind names a cell whose process died). The body also records the device, torch
    threads and host, when the cell started and its whole wall time, loading included (for
    ``benchmarks/grid_cost.py``); ``train_wall_time_s`` is the training behind the model, also
    when an earlier session or another cell of the same training did it."""
    import torch
    from filelock import FileLock

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.device import device_name, resolve_device
    from tcdp_lib.runs.evaluate import evaluate
    from tcdp_lib.runs.methods import load_policy, train_method, training_wall_time

    cell = _json_cell(cell)
    method, task, seed = cell["method"], cell["task"], int(cell["seed"])
    out = cell_dir(out_root, cell)
    started = time.time()
    device = resolve_device(device)
    out.mkdir(parents=True, exist_ok=True)
    marker = atomic_write_text(out / "running.json", json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "started_at": started}))
    try:
        dataset = load_dataset(task)
        kwargs = {}
        if cell["smoke"]:
            from tcdp_lib.baselines import BCSafeConfig, CDTConfig
            from tcdp_lib.runs.train import SMOKE_MODEL, SMOKE_TRAIN

            kwargs = {"model_config": SMOKE_MODEL, "train_config": SMOKE_TRAIN,
                      "baseline_config": {"bc_safe": BCSafeConfig(hidden=(32,), batch_size=32),
                                          "cdt": CDTConfig(embed_dim=16, n_layers=1, n_heads=1, batch_size=8,
                                                           context_len=4)}.get(method)}
        tdir = train_dir(out_root, cell)
        tdir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(tdir.parent / ".train.lock")):  # cells sharing a training never train it at once
            trained = train_method(method, dataset, tdir, seed=seed, steps=cell["steps"], progress=progress,
                                   device=device, **kwargs)
        t_train = training_wall_time(trained)  # all of the training, also when it was resumed or shared
        from tcdp_lib.planner.planner import PlannerConfig
        from tcdp_lib.planner.policy import EXECUTION_KEYS

        planning = dict(cell.get("planning", {}))
        execution = {k: planning.pop(k) for k in EXECUTION_KEYS if k in planning}
        make_policy = load_policy(trained, task, PlannerConfig(**planning), method=method, device=device, **execution)
        budgets = cell["budgets"] or dataset.meta.budgets
        t0 = time.time()
        _, summary = evaluate(dataset, make_policy, budgets=budgets, seeds=(seed,), episodes=cell["episodes"],
                              n_envs=cell["n_envs"], out_dir=out / "eval", progress=progress,
                              meta={"method": method, "model": str(trained)})
        result = {
            "cell": cell,
            "summary": [{**dataclasses.asdict(s), "safe": s.safe} for s in summary],
            "train_wall_time_s": t_train,
            "eval_wall_time_s": time.time() - t0,
            "device": device_name(device),
            "threads": torch.get_num_threads(),
            "host": socket.gethostname(),
            "started_at": started,
            "wall_time_s": time.time() - started,
        }
        write_cell_result(out_root, result)
    finally:
        marker.unlink(missing_ok=True)
    return result
