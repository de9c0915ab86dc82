"""Train TCDP on a dataset: ``tcdp train TASK``.

One loop trains the three learned parts together on CTGDA pairs (window, remaining budget)
with QN targets: the diffusion backbone and budget encoder (epsilon loss, CFG dropout), the
energy model (QN-normalised return of noisy windows) and inverse dynamics. EMA weights are
kept for planning. Every ``checkpoint_every`` steps the whole training state is written
atomically; a run started again with the same config resumes from it and reaches the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tcdp_lib.configs import config_from_dict
from tcdp_lib.data.dataset import Dataset
from tcdp_lib.device import default_device, resolve_device  # noqa: F401  (default_device: re-exported)
from tcdp_lib.method.model import (
    TCDP,
    BackboneConfig,
    DiffusionConfig,
    EnergyConfig,
    InverseDynamicsConfig,
    TCDPConfig,
    sample_batch,
)
from tcdp_lib.method.qn import ToGoQN
from tcdp_lib.method.windows import Windows
from tcdp_lib.paths import RUNS_DIR
from tcdp_lib.files import file_sha256
from tcdp_lib.runs.checkpoint import CheckpointError, atomic_save, model_payload, safe_load


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation of one training run."""

    steps: int = 6000
    """Optimiser steps."""
    batch_size: int = 256
    """CTGDA pairs per step."""
    lr: float = 3e-4
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 200
    """Linear learning-rate warm-up."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    ema_decay: float = 0.995
    """EMA of the weights used for planning."""
    energy_weight: float = 1.0
    """Weight of the energy loss in the sum."""
    inv_weight: float = 1.0
    """Weight of the inverse-dynamics loss in the sum."""
    checkpoint_every: int = 500
    """Steps between atomic checkpoints (and loss-history records)."""
    log_every: int = 25
    """Steps between loss records (and progress-bar updates)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; saved beside its checkpoints."""

    task: str
    """DSRL task id the model is trained on."""
    seed: int = 0
    """Seeds batch sampling, noise and initialisation."""
    model: TCDPConfig = field(default_factory=TCDPConfig)
    """The model (data-dependent fields are resolved from the dataset)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The optimisation."""
    dataset_sha256: str = ""
    """Checksum of the dataset file the run was trained on."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SMOKE_MODEL = TCDPConfig(
    horizon=8,
    backbone=BackboneConfig(d_model=32, depth=1, n_heads=2, patch_size=4),
    diffusion=DiffusionConfig(n_diffusion_steps=20, sampling_steps=3),
    energy=EnergyConfig(hidden=(32,)),
    inverse_dynamics=InverseDynamicsConfig(hidden=(32,)),
)
"""A tiny model for smoke runs and tests: trains in seconds on a CPU, plans nothing useful."""
SMOKE_TRAIN = TrainConfig(steps=20, batch_size=32, log_every=5, checkpoint_every=10, warmup_steps=5)
"""The training of :data:`SMOKE_MODEL` in smoke runs (notebooks 04 and 05)."""

FAMILY_MODELS = {
    # MetaDrive's 259-dim observations (mostly lidar): the energy MLP on the flattened window would
    # hold 2.2M weights at width 256 (an 8.8 MB float32 file for that part alone); at width 64
    # the whole model is 1.7M weights (3.3 MB shipped in float16).
    "metadrive": TCDPConfig(energy=EnergyConfig(hidden=(64, 64)),
                            inverse_dynamics=InverseDynamicsConfig(hidden=(128, 128))),
}
"""The default model of a family where it differs from ``TCDPConfig()``."""


PLAN_ACTIONS_ROBOTS = ("Car",)
"""Bullet robots whose actions the state pair does not determine, so their models plan actions
(``TCDPConfig.plan_actions``): inverse dynamics on real CarCircle transitions reaches held-out
R^2 0.77 / 0.52 per action dimension (Ball 0.98 / 0.98), and adding s_{t-1}, a_{t-1} or
s_{t+2} to its input gave no more (0.70-0.73 / 0.54-0.55)."""


TASK_MODELS: dict[str, dict[str, dict]] = {
    # CTGDA's window and budget sampling (``BudgetConfig.cost_balance``, ``prior_power``): 31 of
    # BallCircle's 596 episodes cost at most 10 (BallRun 145 of 888), and with uniform windows the
    # planner at b = 10 spent 10.2 / 10.8 / 11.9 (seeds 0-2, w_cfg 1.5) or 8.9 / 10.7 / 10.4
    # (w_cfg 3). Only for tasks whose *cheap* episodes are the rare ones: balancing a task whose
    # rare episodes are the costly ones made BallRun, CarCircle and PointCircle1 ignore the budget
    # (measured again with the cost model blind to ``b_t``, seed 0, 20 episodes: CarCircle
    # normalised cost 2.32 / 1.42 / 0.75 against 1.26 / 0.83 / 0.76 with uniform windows,
    # PointCircle1 4.03 / 2.34 / 1.23 against 3.64 / 1.62 / 1.04).
    "OfflineBallCircle-v0": {"budget": {"cost_balance": 1.0, "prior_power": 2.0}},
    # The quantile of the cost-to-go the cost head predicts (``EnergyConfig.cost_quantile``), where
    # the mean let the planner overspend: PointCircle1's chosen plans were predicted at 7.8 against
    # 32.1 realised (seed 0, b = 20). Its seed-0 model with the cost head refitted for 3000 steps at
    # 0.9 / 0.97 (the rest frozen, 10 episodes) spent 2.53 / 0.44 of b = 20 (0.89 in a second
    # refit) against 3.64 with the mean; trained from scratch at 0.97 (the benchmark cells, 20
    # episodes, mean of seeds 0-2) 0.86 / 0.46 / 0.32 of b = 20 / 40 / 80, reward 0.728 / 0.732 /
    # 0.752 (with the mean, seeds 0-1: 3.40 / 1.70 / 1.08, reward 0.784 / 0.800 / 0.854).
    # CarCircle's seed 1 was not made safe: 3.00 / 1.53 / 0.81 at 0.9 and 1.98 / 1.20 / 0.51 at
    # 0.97 against 2.51 / 1.27 / 0.76, with less reward.
    "OfflinePointCircle1Gymnasium-v0": {"energy": {"cost_quantile": 0.97}},
    # The action model under the plan (``ActionModelConfig``; ``benchmarks/action_gap.py``): the car
    # acts toward the chosen plan's state 12 steps on instead of on the planned action. Seed 0, 6
    # episodes, b = 10 / 40: the planned action 0.465 / 0.78, 0.430 / 0.88; gap 1 (one-step inverse
    # dynamics) 0.442 / 2.57, 0.366 / 0.75; gap 4 0.578 / 0.32, 0.677 / 0.70; gap 8 0.634 / 0.87,
    # 0.709 / 0.90 (BC-Safe, 3 seeds x 20: 0.612 / 0.36, 0.669 / 0.71). Gap 8's benchmark cells (3
    # seeds x 20) were safe but below BC-Safe at 10 / 20 (0.558 / 0.61, 0.606 / 0.64); gap 12 on seed
    # 0 (10 episodes, b = 10 / 20): 0.624 / 0.28, 0.667 / 0.70, every episode within the budget.
    "OfflineCarCircle-v0": {"action_model": {"gap": 12}},
    # BallRun (``benchmarks/planner_sweep.py --action-gap``, seed 0, 10 episodes, b = 10 / 20 / 40):
    # without 0.590 / 0.41, 0.603 / 0.52, 0.615 / 0.62; gap 2 0.600 / 0.32, 0.610 / 0.51; gap 4
    # 0.604 / 0.33, 0.613 / 0.65, 0.623 / 0.70; gap 8 0.611 / 1.50, 0.621 / 0.98, 0.637 / 0.74 (the
    # ball outruns its plans: every episode over b = 10); with 8 plans averaged (its planning in
    # ``benchmark.TCDP_TASK_PLANNING``) gap 8 still spent 1.27 of b = 10 where gap 4 spent 0.44.
    "OfflineBallRun-v0": {"action_model": {"gap": 4}},
}
"""Per task, the parts of its model that differ from its family's, as ``{part: {field: value}}``
(``part`` a field of :class:`TCDPConfig` that is itself a config): each chosen by the measurement
beside it."""


TASK_TRAIN: dict[str, dict] = {
    # BallRun and CarCircle train 10000 steps where the others train 6000 (``TrainConfig``): their
    # benchmark models resumed from 6000 to 10000 steps, planning unchanged, 3 seeds x 20
    # episodes, b = 10 / 20 / 40, normalised reward / cost. BallRun 0.616 / 0.50, 0.623 / 0.73,
    # 0.636 / 0.85 -> 0.624 / 0.73, 0.630 / 0.78, 0.653 / 0.81 (BC-Safe 0.624 / 0.623 / 0.631 at
    # cost 0); CarCircle 0.605 / 0.77, 0.647 / 0.88, 0.691 / 0.96 -> 0.604 / 0.75, 0.669 / 0.93,
    # 0.703 / 0.96 (BC-Safe 0.612 / 0.36, 0.648 / 0.44, 0.669 / 0.71).
    "OfflineBallRun-v0": {"steps": 10000},
    "OfflineCarCircle-v0": {"steps": 10000},
}
"""Per task, the fields of its default :class:`TrainConfig` that differ from ``TrainConfig()``."""


def default_train_config(task: str) -> TrainConfig:
    """The optimisation a task's model trains with by default: ``TrainConfig()`` with the task's
    own fields (:data:`TASK_TRAIN`)."""
    return dataclasses.replace(TrainConfig(), **TASK_TRAIN.get(task, {}))


def default_model_config(task: str) -> TCDPConfig:
    """The model a task trains by default: ``TCDPConfig()``, or its family's (:data:`FAMILY_MODELS`),
    planning actions for the robots of :data:`PLAN_ACTIONS_ROBOTS`, with the task's own parts
    (:data:`TASK_MODELS`: BallCircle's CTGDA sampling, PointCircle1's cost quantile, CarCircle's action
    model)."""
    from tcdp_lib.data.tasks import get_task

    info = get_task(task)
    config = FAMILY_MODELS.get(info.family, TCDPConfig())
    if info.family == "bullet" and info.name.startswith(PLAN_ACTIONS_ROBOTS):
        config = dataclasses.replace(config, plan_actions=True)
    for part, fields in TASK_MODELS.get(info.task_id, {}).items():
        config = dataclasses.replace(config, **{part: dataclasses.replace(getattr(config, part), **fields)})
    return config


@dataclass
class TrainResult:
    """What :func:`train_tcdp` returns."""

    model: TCDP
    """The EMA model, in eval mode."""
    run_dir: Path
    model_path: Path
    history: list[dict]
    """Loss records: ``{"step", "loss", "diffusion", "energy", "inv", "wall_time_s"}``."""
    wall_time_s: float


def _lr_at(step: int, cfg: TrainConfig) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


@torch.no_grad()
def _ema_update(ema: TCDP, model: TCDP, decay: float) -> None:
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def budget_prior_max(budgets, episode_costs, factor: float = 2.0) -> float:
    """Upper end of the CTGDA budget prior for a task: ``factor x`` its largest DSRL budget,
    at most the data's largest episode cost.

    With the prior reaching the data's costliest episodes, pairs with a small remaining
    budget are rare (5% of BallCircle's windows are feasible at b = 10 against a prior up to
    its maximum cost of 123) and the budget condition is learned weakly where it matters.
    """
    return float(min(factor * max(budgets), np.max(episode_costs)))


def _identity(run_dict: dict) -> dict:
    """The fields a resumed run must share with its checkpoint: all but ``train.steps`` (which may
    grow), the model's planning-time guidance scales (``model.guidance``: they change no weight)
    and its action model (``model.action_model``: trained in a stage of its own after the rest,
    which it never changes; a run with another one refits only that stage)."""
    out = dict(run_dict)
    out["train"] = {k: v for k, v in run_dict.get("train", {}).items() if k != "steps"}
    out["model"] = {k: v for k, v in run_dict.get("model", {}).items() if k not in ("guidance", "action_model")}
    return out


def _with_defaults(run_dict: dict) -> dict | None:
    """A saved run configuration with the fields added to :class:`RunConfig` since it was written
    set to their defaults (a checkpoint from before a new field stays resumable when the new field
    is left at its default); ``None`` when it is not a run configuration of this version."""
    try:
        return json.loads(json.dumps(config_from_dict(RunConfig, run_dict).to_dict()))
    except (TypeError, ValueError, KeyError):
        return None


def fit_action_model(model: TCDP, episodes, config, seed: int = 0, progress: bool = True) -> list[float]:
    """Train ``model.action_model`` (the rest frozen, untouched) on the data's ``(s_t, s_{t+gap},
    a_t)`` (:func:`~tcdp_lib.method.inverse_dynamics.gap_pairs`), states normalised by the model:
    ``config.steps`` Adam steps of ``config.batch_size`` pairs, drawn from ``seed``. Returns the
    mean loss of each tenth of the steps."""
    from tqdm.auto import tqdm

    from tcdp_lib.method.inverse_dynamics import gap_pairs

    device = model.obs_mean.device
    s, s_ahead, a = (torch.as_tensor(x, device=device) for x in gap_pairs(episodes, config.gap))
    with torch.no_grad():
        s, s_ahead = model.normalize(s), model.normalize(s_ahead)
    net = model.action_model.train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    losses, chunk = [], []
    for step in tqdm(range(config.steps), desc=f"action model (gap {config.gap})", unit="step", disable=not progress):
        idx = torch.randint(len(s), (config.batch_size,), generator=gen).to(device)
        loss = net.loss(s[idx], s_ahead[idx], a[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        chunk.append(loss.item())
        if len(chunk) >= max(config.steps // 10, 1) or step == config.steps - 1:
            losses.append(float(np.mean(chunk)))
            chunk = []
    net.eval()
    return losses


def train_tcdp(
    dataset: Dataset,
    run: RunConfig,
    run_dir: Path | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train (or resume) a TCDP run on ``dataset``; writes ``checkpoint.pt``, ``model.pt``,
    ``config.json`` and ``history.json`` to ``run_dir``. ``callback(record)`` sees each loss record."""
    from tqdm.auto import tqdm

    if run.task != dataset.task.task_id:
        raise ValueError(f"run config is for task {run.task!r}, dataset is {dataset.task.task_id!r}")
    device = resolve_device(device)
    run = dataclasses.replace(run, dataset_sha256=run.dataset_sha256 or file_sha256(dataset.path))
    run_dir = Path(run_dir) if run_dir is not None else RUNS_DIR / "train" / run.task / f"seed{run.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = run.train

    if run.model.budget.b_max is None:
        b_max = budget_prior_max(dataset.meta.budgets, dataset.episodes.cost_returns)
        run = dataclasses.replace(run, model=dataclasses.replace(
            run.model, budget=dataclasses.replace(run.model.budget, b_max=b_max)))
    torch.manual_seed(run.seed)
    model = TCDP.from_episodes(dataset.episodes, run.model).to(device)
    run = dataclasses.replace(run, model=model.config)  # data-dependent fields resolved
    ema = copy.deepcopy(model).eval()
    # the action model has a stage of its own (fit_action_model), outside this optimiser
    opt = torch.optim.AdamW([p for n, p in model.named_parameters() if not n.startswith("action_model.")],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(run.seed)
    gen = torch.Generator(device=device).manual_seed(run.seed)
    windows = Windows.from_episodes(dataset.episodes, run.model.horizon)
    prior = model.budget_prior()
    qn = ToGoQN.from_windows(windows, rng=np.random.default_rng(run.seed))
    window_cdf = model.window_cdf(windows)
    history: list[dict] = []
    step, wall = 0, 0.0
    fitted = False  # the action model's stage is done for this config
    action_model_key = json.loads(json.dumps(dataclasses.asdict(run.model.action_model)))  # as the checkpoint keeps it

    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = safe_load(ckpt_path, map_location=device)
        saved = _with_defaults(json.loads(ckpt.get("run_config", "{}")))
        if saved is None or _identity(saved) != _identity(json.loads(json.dumps(run.to_dict()))):
            raise CheckpointError(
                f"{ckpt_path} belongs to another run configuration "
                f"(task {(saved or {}).get('task')!r}); "
                f"delete {run_dir} or choose another run directory"
            )
        fitted = model.action_gap > 0 and ckpt.get("action_model") == action_model_key
        for name, module in (("model", model), ("ema", ema)):
            try:
                module.load_state_dict(ckpt[name]) if fitted else module.load_all_but_action_model(ckpt[name])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(f"{ckpt_path}: its {name} weights do not fit this model ({err})") from err
        opt.load_state_dict(ckpt["optimizer"])
        rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        gen.set_state(ckpt["torch_rng"].cpu())
        history, step, wall = list(ckpt["history"]), int(ckpt["step"]), float(ckpt["wall_time_s"])
    (run_dir / "config.json").write_text(json.dumps(run.to_dict(), indent=1))

    def save_checkpoint():
        atomic_save({
            "run_config": json.dumps(run.to_dict()), "step": step, "wall_time_s": wall,
            "action_model": action_model_key if fitted else None,
            "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": gen.get_state(),
            "history": history,
        }, ckpt_path)
        atomic_save(model_payload(ema, run.task, json.loads(json.dumps(run.to_dict()))), run_dir / "model.pt")
        tmp = run_dir / ".history.json.tmp"
        tmp.write_text(json.dumps(history))
        os.replace(tmp, run_dir / "history.json")

    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {run.task}", unit="step", disable=not progress)
    model.train()
    sums = np.zeros(3)
    t_last = time.time()
    try:
        while step < cfg.steps:
            batch = sample_batch(rng, windows, prior, cfg.batch_size, device, pairs=model.variant.pairs, qn=qn,
                                 window_cdf=window_cdf)
            l_diff = model.loss_diffusion(batch, generator=gen)
            l_energy = model.loss_energy(batch, generator=gen)
            l_inv = model.loss_inv(batch)
            loss = l_diff + cfg.energy_weight * l_energy + cfg.inv_weight * l_inv
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}: diffusion {l_diff.item()}, "
                                         f"energy {l_energy.item()}, inverse dynamics {l_inv.item()}")
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            _ema_update(ema, model, cfg.ema_decay)
            step += 1
            sums += [l_diff.item(), l_energy.item(), l_inv.item()]
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.time()
                wall += now - t_last
                t_last = now
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                d, e, i = (float(v) for v in sums / n)
                record = {"step": step, "loss": d + cfg.energy_weight * e + cfg.inv_weight * i,
                          "diffusion": d, "energy": e, "inv": i, "wall_time_s": wall}
                history.append(record)
                sums[:] = 0
                bar.update(n)
                bar.set_postfix(diff=f"{d:.3f}", energy=f"{e:.3f}", inv=f"{i:.3f}")
                if callback is not None:
                    callback(record)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint()
    except KeyboardInterrupt:
        save_checkpoint()  # an interrupted run keeps its progress
        raise
    finally:
        bar.close()
    if model.action_gap and not fitted:
        t0 = time.time()
        fit_action_model(ema, dataset.episodes, run.model.action_model, seed=run.seed, progress=progress)
        model.action_model.load_state_dict(ema.action_model.state_dict())
        wall += time.time() - t0  # the stage counts in the run's training time
        fitted = True
        save_checkpoint()
    ema.eval()
    return TrainResult(model=ema, run_dir=run_dir, model_path=run_dir / "model.pt", history=history,
                       wall_time_s=wall)
