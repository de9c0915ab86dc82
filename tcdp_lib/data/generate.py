"""Make a DSRL-format dataset in the real simulator: ``tcdp generate-data TASK``.

DSRL's recipe, on one CPU core:

1. Train a behaviour policy with stable-baselines3 PPO on the Lagrangian-penalised reward
   ``(r - lambda * c) / (1 + lambda)``. The multiplier follows a cost limit ``d`` that the
   schedule sweeps during training: after each rollout it moves up when the mean episode cost
   ``Jc`` of that rollout is above ``d`` and down when below (:func:`update_multiplier`).
2. Log *every* finished episode of training (raw reward and cost), so the data covers the
   reward/cost frontier from very safe to reckless.
3. Optionally add episodes that switch once between the run's safe and bold policies, which
   reach the costs between them (:func:`run_mixture`).
4. Density-filter the episodes on the (cost, reward) plane with dsrl's ``filter_trajectory``
   (dense cells are thinned; no cell is emptied, so each band keeps its best episodes).
5. Write DSRL's hdf5 layout plus metadata (task, reference rewards, budgets, how it was made).

Training runs in *stages*; each stage starts from the model and multiplier saved by the last
one and is seeded from ``(seed, stage)``, so a run that is killed resumes at its last finished
stage and gives the same file as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from tcdp_lib.data.dataset import DatasetError, generator_info
from tcdp_lib.data.envs import make_env
from tcdp_lib.data.episodes import split_episodes
from tcdp_lib.data.frontier import pareto_indices
from tcdp_lib.data.tasks import get_task
from tcdp_lib.device import set_threads
from tcdp_lib.files import file_sha256

STAGE_KEYS = ("observations", "next_observations", "actions", "rewards", "costs", "terminals", "timeouts")


# -----------------------------------------------------------------------------
# The frontier the filter never thins
# -----------------------------------------------------------------------------


def frontier_indices(costs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """The best-reward episode at each (rounded) cost level: the filter never drops these."""
    levels = np.round(costs).astype(np.int64)
    best = {}
    for i, (lvl, r) in enumerate(zip(levels, rewards)):
        if lvl not in best or r > rewards[best[lvl]]:
            best[lvl] = i
    return np.array(sorted(best.values()), dtype=np.int64)


# ``pareto_indices`` (the episodes no episode of lower or equal cost beats in reward: the feasible
# frontier ``max {R_i : C_i <= b}`` is the same for every ``b`` with only these) lives in
# ``tcdp_lib.data.frontier`` with the rest of the feasible frontier; imported here for the filter.


FRONTIERS = {"levels": frontier_indices, "pareto": pareto_indices}
"""The filter's protected frontier, by ``GeneratorConfig.frontier``."""


# -----------------------------------------------------------------------------
# Configuration
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """A part of the training schedule with its own cost limit."""

    steps: int
    """Environment steps in this phase."""
    limit_start: float | None = None
    """Cost limit at the phase start; ``None`` trains unconstrained (lambda = 0)."""
    limit_end: float | None = None
    """Cost limit at the phase end (geometric interpolation); defaults to ``limit_start``."""


@dataclass(frozen=True)
class GeneratorConfig:
    """How one dataset is made."""

    task: str
    """DSRL task id."""
    phases: tuple[Phase, ...]
    """The training schedule: unconstrained and constrained phases, in order."""
    seed: int = 0
    """Seeds PPO, the environment and the filter."""
    stage_steps: int = 20_480
    """Steps between checkpoints of the generator (a multiple of ``n_steps``)."""
    lambda_update: str = "log"
    """``"log"``: multiplicative update of the multiplier (see :func:`update_multiplier`);
    ``"linear"``: ``lambda + lambda_lr * (Jc - d)``."""
    lambda_lr: float = 0.5
    """Step size of the multiplier update per rollout."""
    lambda_max: float = 100.0
    """Upper clip of the multiplier."""
    n_steps: int = 2048
    """PPO rollout length."""
    batch_size: int = 64
    """PPO minibatch size."""
    learning_rate: float = 3e-4
    """PPO learning rate."""
    cost_bins: int = 40
    """Filter grid: bins along episode cost."""
    reward_bins: int = 40
    """Filter grid: bins along episode reward."""
    max_per_bin: int = 6
    """Filter: episodes kept per (cost, reward) cell at most (lowered to fit ``max_steps``)."""
    max_steps: int = 100_000
    """Filter: at most this many steps are kept (the largest ``max_per_bin`` that fits is used)."""
    keep_best_per_budget: int = 0
    """Filter: the best episodes feasible at each of the task's budgets that are always kept."""
    frontier: str = "levels"
    """Filter: the frontier episodes always kept. ``"levels"``: the best episode of each integer
    cost level; ``"pareto"``: only those no cheaper episode beats (fewer, the same feasible
    frontier at every budget)."""
    mixture_episodes: int = 0
    """Episodes that switch once between the safest good policy and the boldest one of the run
    (see :func:`run_mixture`); 0: none."""

    def __post_init__(self):
        if self.frontier not in FRONTIERS:
            raise ValueError(f"frontier must be one of {sorted(FRONTIERS)}, got {self.frontier!r}")

    @classmethod
    def from_json(cls, d: dict) -> "GeneratorConfig":
        """The config of :meth:`to_json` (a file's ``generator["config"]``)."""
        return cls(**{**d, "phases": tuple(Phase(**p) for p in d["phases"])})

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def limit_at(self, step: int) -> float | None:
        """The cost limit in force at environment step ``step`` (``None``: unconstrained)."""
        start = 0
        for phase in self.phases:
            if step < start + phase.steps:
                if phase.limit_start is None:
                    return None
                end = phase.limit_start if phase.limit_end is None else phase.limit_end
                frac = (step - start) / max(phase.steps, 1)
                lo, hi = max(phase.limit_start, 1e-3), max(end, 1e-3)
                return float(lo * (hi / lo) ** frac)
            start += phase.steps
        last = self.phases[-1]
        return last.limit_end if last.limit_end is not None else last.limit_start

    def to_json(self) -> dict:
        return asdict(self)

    def training_json(self) -> dict:
        """The fields that shape the training stages (the filter's fields excluded)."""
        return {k: v for k, v in self.to_json().items() if k not in FILTER_FIELDS}


FILTER_FIELDS = ("cost_bins", "reward_bins", "max_per_bin", "max_steps", "keep_best_per_budget", "frontier",
                 "mixture_episodes")


def _cfg(task: str, *phases: tuple, **kw) -> GeneratorConfig:
    return GeneratorConfig(task=task, phases=tuple(Phase(*p) for p in phases), **kw)


# Per-task recipes. Phases are (steps, limit_start, limit_end).
RECIPES: dict[str, GeneratorConfig] = {
    # Bold first, then a limit sweep upward: the policy is pushed safe, then spends cost again.
    "OfflineBallCircle-v0": _cfg(
        "OfflineBallCircle-v0", (160_000, None), (200_000, 5.0, 80.0),
        lambda_update="linear", lambda_lr=0.05, lambda_max=50.0,
        cost_bins=20, reward_bins=20, max_steps=130_000,
    ),
    # DSRL's upward sweep from the start: a bold BallRun policy saturates its actions and
    # no longer finds the slow ones, so it must learn under the constraint first.
    "OfflineBallRun-v0": _cfg("OfflineBallRun-v0", (320_000, 2.0, 100.0), mixture_episodes=600),
    # The car needs long unconstrained training before it drives well at all.
    "OfflineCarCircle-v0": _cfg(
        "OfflineCarCircle-v0", (401_408, None), (299_008, 5.0, 100.0), mixture_episodes=300,
        keep_best_per_budget=35,
    ),
    "OfflinePointCircle1Gymnasium-v0": _cfg(
        "OfflinePointCircle1Gymnasium-v0", (327_680, 5.0, 200.0), stage_steps=16_384,
        max_steps=60_000, mixture_episodes=100, keep_best_per_budget=20, frontier="pareto",
    ),
    # The Safety-Gymnasium goal task and MetaDrive are sized by the repository's budget: their
    # files keep the Pareto frontier, the best few episodes of each budget and a thin density
    # sample (about 0.17 MB per 1000 steps on MetaDrive, obs 259; 0.22 on PointGoal1, obs 60).
    # Both generators ran at 25-115 steps/s with other jobs on the machine's two cores (PPO's
    # updates and the simulators; MetaDrive's physics step is most of it), so the schedules are
    # short: about 300k steps each.
    #
    # Goal tasks learn reward slowly: unconstrained first, then the limit sweeps up to twice the
    # largest budget. PointGoal1 rather than CarGoal1: over 49k unconstrained steps both reached
    # about a tenth of dsrl's largest episode reward, and PointGoal1's files are a third smaller
    # (CarGoal1: 0.31 MB per 1000 steps, obs 72).
    "OfflinePointGoal1Gymnasium-v0": _cfg(
        "OfflinePointGoal1Gymnasium-v0", (143_360, None), (163_840, 10.0, 160.0),
        max_steps=16_000, mixture_episodes=40, keep_best_per_budget=5, frontier="pareto",
    ),
    # MetaDrive's cost grows with speed (1e-2 per km/h above 10, each step) beside crashes and
    # leaving the road, so a bold driver reaches the goal in about 450 steps at a cost near 100.
    "OfflineMetadrive-easysparse-v0": _cfg(
        "OfflineMetadrive-easysparse-v0", (102_400, None), (163_840, 5.0, 100.0),
        max_steps=20_000, mixture_episodes=40, keep_best_per_budget=5, frontier="pareto",
    ),
}


def recipe(task: str, **overrides) -> GeneratorConfig:
    """The shipped recipe of ``task`` (or a generic one), with fields overridden."""
    get_task(task)
    base = RECIPES.get(task) or _cfg(task, (200_000, None), (200_000, 10.0, 100.0))
    return replace(base, **overrides) if overrides else base


# -----------------------------------------------------------------------------
# Environment wrapper: Lagrangian reward and episode logging
# -----------------------------------------------------------------------------


LAMBDA_MIN = 0.01  # the log-space multiplier's floor (and its start when a constraint begins: 1)


def update_multiplier(lam: float, mean_cost: float, limit: float, cfg: "GeneratorConfig") -> float:
    """One multiplier update after a rollout whose finished episodes had mean cost ``Jc``.

    ``linear``: ``lam <- clip(lam + lr * (Jc - d), 0, lam_max)``.
    ``log``:    ``log lam <- log lam + lr * clip((Jc - d) / (d + 1), -1, 1)``, clipped to
    ``[LAMBDA_MIN, lam_max]``. The relative error makes one step size serve every task's cost
    scale, and the multiplier leaves a large value as fast as it reached it (a linear update
    kept a safe BallRun policy at cost 0 for over 100k steps while the limit rose; a low clip
    instead left it bold, since its reward per step exceeds the penalty).
    """
    if cfg.lambda_update == "linear":
        return float(np.clip(lam + cfg.lambda_lr * (mean_cost - limit), 0.0, cfg.lambda_max))
    if cfg.lambda_update == "log":
        rel = float(np.clip((mean_cost - limit) / (limit + 1.0), -1.0, 1.0))
        log_lam = np.log(max(lam, LAMBDA_MIN) if lam > 0 else 1.0) + cfg.lambda_lr * rel
        return float(np.clip(np.exp(log_lam), LAMBDA_MIN, cfg.lambda_max))
    raise ValueError(f"lambda_update must be 'log' or 'linear', got {cfg.lambda_update!r}")


class _Lagrangian:
    """The multiplier shared between the environment wrapper and the PPO callback."""

    def __init__(self, value: float = 0.0):
        self.value = value


def _make_logged_env(task: str, lagrange: _Lagrangian, sink: list):
    import gymnasium

    class LagrangianLogger(gymnasium.Wrapper):
        """Returns ``(r - lam c) / (1 + lam)`` to PPO; logs raw transitions of each episode."""

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            self._obs = np.asarray(obs, dtype=np.float32)
            self._buf = {k: [] for k in STAGE_KEYS}
            return obs, info

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            cost = float(info.get("cost", 0.0))
            b = self._buf
            b["observations"].append(self._obs)
            b["next_observations"].append(np.asarray(obs, dtype=np.float32))
            b["actions"].append(np.asarray(action, dtype=np.float32))
            b["rewards"].append(float(reward))
            b["costs"].append(cost)
            b["terminals"].append(bool(terminated))
            b["timeouts"].append(bool(truncated and not terminated))
            self._obs = np.asarray(obs, dtype=np.float32)
            if terminated or truncated:
                sink.append({k: np.asarray(v) for k, v in b.items()})
            lam = lagrange.value
            return obs, (reward - lam * cost) / (1.0 + lam), terminated, truncated, info

    return LagrangianLogger(make_env(task))


# -----------------------------------------------------------------------------
# Generation
# -----------------------------------------------------------------------------


@dataclass
class GenerationResult:
    """What :func:`generate_dataset` made."""

    path: Path
    num_episodes_logged: int
    num_episodes_kept: int
    num_steps_kept: int
    wall_time_s: float
    stages: list = field(default_factory=list)


def _work_dir(cfg: GeneratorConfig, root: Path) -> Path:
    return root / f"{cfg.task}-seed{cfg.seed}"


def _atomic_write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _run_stages(cfg: GeneratorConfig, work: Path, progress: bool) -> list[dict]:
    """Train PPO stage by stage, saving each stage's episodes; resumes from ``work``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv
    from tqdm.auto import tqdm

    set_threads(1)  # PPO's small networks: one thread is fastest, and the same on every machine
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "state.json"
    config_json = cfg.training_json()
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state["config"] != json.loads(json.dumps(config_json)):
            raise ValueError(
                f"{work} holds a generator run with another configuration; "
                f"delete it or choose another --work-dir"
            )
    else:
        state = {"config": config_json, "stages": [], "wall_time_s": 0.0}

    n_stages = -(-cfg.total_steps // cfg.stage_steps)
    bar = tqdm(total=cfg.total_steps, desc=f"generate {cfg.task}", unit="step", disable=not progress)
    bar.update(len(state["stages"]) * cfg.stage_steps)

    for stage in range(len(state["stages"]), n_stages):
        t0 = time.time()
        step0 = stage * cfg.stage_steps
        steps = min(cfg.stage_steps, cfg.total_steps - step0)
        lagrange = _Lagrangian(state["stages"][-1]["lambda_end"] if state["stages"] else 0.0)
        sink: list = []
        venv = DummyVecEnv([lambda: _make_logged_env(cfg.task, lagrange, sink)])
        stage_seed = cfg.seed * 100_003 + stage
        if stage == 0:
            model = PPO(
                "MlpPolicy", venv, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                learning_rate=cfg.learning_rate, seed=stage_seed, device="cpu", verbose=0,
            )
        else:
            model = PPO.load(work / f"ppo_{stage - 1:04d}.zip", env=venv, device="cpu")
        model.set_random_seed(stage_seed)
        seen = [0]

        class LagrangeUpdate(BaseCallback):
            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                new = sink[seen[0]:]
                seen[0] = len(sink)
                limit = cfg.limit_at(step0 + self.num_timesteps - model_start)
                if limit is None:
                    lagrange.value = 0.0
                elif new:
                    jc = float(np.mean([e["costs"].sum() for e in new]))
                    lagrange.value = update_multiplier(lagrange.value, jc, limit, cfg)
                bar.update(cfg.n_steps)

        model_start = model.num_timesteps
        model.learn(steps, callback=LagrangeUpdate(), reset_num_timesteps=False, progress_bar=False)
        venv.close()

        # Save the stage: episodes, then the model, then the state that points at both.
        lengths = np.array([len(e["rewards"]) for e in sink], dtype=np.int64)
        chunk = {k: np.concatenate([e[k] for e in sink]) if sink else np.zeros(0) for k in STAGE_KEYS}
        tmp = work / f"episodes_{stage:04d}.tmp.npz"
        np.savez_compressed(tmp, lengths=lengths, **chunk)
        os.replace(tmp, work / f"episodes_{stage:04d}.npz")
        model.save(work / f"ppo_{stage:04d}.tmp.zip")
        os.replace(work / f"ppo_{stage:04d}.tmp.zip", work / f"ppo_{stage:04d}.zip")
        returns = [float(e["rewards"].sum()) for e in sink]
        costs = [float(e["costs"].sum()) for e in sink]
        state["stages"].append({
            "stage": stage,
            "steps": steps,
            "limit": cfg.limit_at(step0 + steps - 1),
            "lambda_end": lagrange.value,
            "episodes": len(sink),
            "mean_reward": float(np.mean(returns)) if returns else None,
            "mean_cost": float(np.mean(costs)) if costs else None,
            "wall_time_s": time.time() - t0,
        })
        state["wall_time_s"] += time.time() - t0
        _atomic_write_json(state_path, state)
        if progress:
            s = state["stages"][-1]
            bar.set_postfix(R=f"{s['mean_reward'] or 0:.0f}", C=f"{s['mean_cost'] or 0:.1f}",
                            lam=f"{s['lambda_end']:.2f}")
    bar.close()
    return state["stages"]


def _load_episodes(work: Path, n_stages: int) -> list[dict]:
    episodes = []
    for stage in range(n_stages):
        with np.load(work / f"episodes_{stage:04d}.npz") as z:
            episodes.extend(_split_chunk(z))
    return episodes


def pick_mixture_stages(stages: list[dict], safe_cost: float) -> tuple[int, int]:
    """``(safe, bold)`` stage indices: the best mean reward among stages whose mean episode cost
    is at most ``safe_cost`` (else the stage of lowest mean cost), and the best mean reward."""
    scored = [s for s in stages if s["mean_reward"] is not None]
    safe = [s for s in scored if s["mean_cost"] <= safe_cost]
    safe_stage = max(safe, key=lambda s: s["mean_reward"]) if safe else min(scored, key=lambda s: s["mean_cost"])
    bold_stage = max(scored, key=lambda s: s["mean_reward"])
    return int(safe_stage["stage"]), int(bold_stage["stage"])


def run_mixture(cfg: GeneratorConfig, work: Path, stages: list[dict], progress: bool) -> tuple[list[dict], dict]:
    """Episodes that follow one policy, then switch to the other at a random step.

    A stationary policy is either safe or bold; the budgets in between are reached by spending
    cost for part of an episode. Each episode draws the order (safe first or bold first) and
    the switch step uniformly, from a generator seeded by the config; actions are sampled from
    the stage policies saved by the training run. Saved to ``mixture.npz`` (resumable).
    """
    import torch
    from stable_baselines3 import PPO
    from tqdm.auto import tqdm

    path = work / "mixture.npz"
    task = get_task(cfg.task)
    safe, bold = pick_mixture_stages(stages, safe_cost=min(task.budgets) / 2)
    info = {"episodes": cfg.mixture_episodes, "safe_stage": safe, "bold_stage": bold}
    if path.exists():
        with np.load(path) as z:
            if int(z["lengths"].shape[0]) == cfg.mixture_episodes and list(z["stages"]) == [safe, bold]:
                return _split_chunk(z), info
    set_threads(1)  # PPO's small networks: one thread is fastest, and the same on every machine
    torch.manual_seed(cfg.seed)
    policies = [PPO.load(work / f"ppo_{i:04d}.zip", device="cpu").policy for i in (safe, bold)]
    rng = np.random.default_rng([cfg.seed, 7])
    env = make_env(cfg.task)
    sink = []
    try:
        for e in tqdm(range(cfg.mixture_episodes), desc=f"mixture {cfg.task}", disable=not progress):
            first = int(rng.integers(2))
            switch = int(rng.integers(task.max_episode_steps + 1))
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            buf = {k: [] for k in STAGE_KEYS}
            for t in range(task.max_episode_steps):
                policy = policies[first if t < switch else 1 - first]
                with torch.no_grad():
                    action, _ = policy.predict(obs, deterministic=False)
                action = np.clip(action, env.action_space.low, env.action_space.high)
                nxt, reward, terminated, truncated, step_info = env.step(action)
                for k, v in (("observations", obs), ("next_observations", nxt), ("actions", action),
                             ("rewards", reward), ("costs", float(step_info.get("cost", 0.0))),
                             ("terminals", terminated), ("timeouts", truncated and not terminated)):
                    buf[k].append(v)
                obs = nxt
                if terminated or truncated:
                    break
            sink.append({k: np.asarray(v, dtype=np.float32 if k not in ("terminals", "timeouts") else bool)
                         for k, v in buf.items()})
    finally:
        env.close()
    lengths = np.array([len(e["rewards"]) for e in sink], dtype=np.int64)
    tmp = work / "mixture.tmp.npz"
    np.savez_compressed(tmp, lengths=lengths, stages=np.array([safe, bold]),
                        **{k: np.concatenate([e[k] for e in sink]) for k in STAGE_KEYS})
    os.replace(tmp, path)
    return sink, info


def _split_chunk(z) -> list[dict]:
    offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
    arrays = {k: z[k] for k in STAGE_KEYS}
    return [{k: v[a:b] for k, v in arrays.items()} for a, b in zip(offsets[:-1], offsets[1:])]


def density_filter(episodes: list[dict], cfg: GeneratorConfig) -> list[int]:
    """Indices of the episodes kept by dsrl's ``filter_trajectory`` on the (cost, reward) plane.

    ``min_num_per_bin=0``: a cell with a single episode is kept. The cap per cell (then the grid)
    is lowered until at most ``max_steps`` steps remain. Always kept: the best episode of each
    cost level (:func:`frontier_indices`), so thinning never lowers the frontier, and the best
    ``keep_best_per_budget`` episodes feasible at each of the task's budgets
    (:func:`best_feasible_indices`), so every budget keeps a band of good examples. The
    filter's sampling is seeded from the config.
    """
    from tcdp_lib.data import compat

    compat.apply()
    from dsrl.offline_env import filter_trajectory

    costs = np.array([float(e["costs"].sum()) for e in episodes])
    rewards = np.array([float(e["rewards"].sum()) for e in episodes])
    lengths = np.array([len(e["rewards"]) for e in episodes])
    protected = set(FRONTIERS[cfg.frontier](costs, rewards).tolist())
    for budget in get_task(cfg.task).budgets:
        protected |= set(best_feasible_indices(costs, rewards, budget, cfg.keep_best_per_budget).tolist())
    state = random.getstate()
    try:
        bins = (cfg.cost_bins, cfg.reward_bins)
        while True:
            for per_bin in range(cfg.max_per_bin, 0, -1):
                random.seed(cfg.seed)
                _, _, _, indices = filter_trajectory(
                    costs.tolist(), rewards.tolist(), list(range(len(episodes))),
                    cost_bins=bins[0], rew_bins=bins[1], max_num_per_bin=per_bin, min_num_per_bin=0,
                )
                keep = sorted(set(indices) | protected)
                if lengths[keep].sum() <= cfg.max_steps:
                    return keep
            if min(bins) <= 4:
                return keep
            bins = (max(int(bins[0] * 0.8), 4), max(int(bins[1] * 0.8), 4))
    finally:
        random.setstate(state)


def best_feasible_indices(costs: np.ndarray, rewards: np.ndarray, budget: float, k: int) -> np.ndarray:
    """The ``k`` highest-reward episodes among those with cost ``<= budget``."""
    feasible = np.flatnonzero(costs <= budget)
    return feasible[np.argsort(-rewards[feasible], kind="stable")[:k]]


def write_dataset(path: Path, episodes: list[dict], metadata: dict) -> None:
    """Write episodes in DSRL's flat hdf5 layout (gzip), with ``metadata`` as root attributes.

    Written to a temporary file and renamed, so a failure leaves any earlier file intact.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.hdf5")
    flat = {k: np.concatenate([e[k] for e in episodes]) for k in STAGE_KEYS}
    dtypes = {"terminals": np.bool_, "timeouts": np.bool_}
    try:
        with h5py.File(tmp, "w") as f:
            for k, v in flat.items():
                f.create_dataset(k, data=v.astype(dtypes.get(k, np.float32)), compression="gzip",
                                 compression_opts=6, shuffle=True)
            for k, v in metadata.items():
                f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list, tuple)) else v
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def generate_dataset(cfg: GeneratorConfig, out: Path, work_root: Path, progress: bool = True) -> GenerationResult:
    """Run (or resume) the generator for ``cfg`` and write the filtered dataset to ``out``."""
    import importlib.metadata as md

    task = get_task(cfg.task)
    work = _work_dir(cfg, Path(work_root))
    stages = _run_stages(cfg, work, progress)
    episodes = _load_episodes(work, len(stages))
    if not episodes:
        raise RuntimeError(f"generator for {cfg.task} finished no episode in {cfg.total_steps} steps")
    mixture_info = None
    if cfg.mixture_episodes > 0:
        mixed, mixture_info = run_mixture(cfg, work, stages, progress)
        episodes = episodes + mixed
    keep = density_filter(episodes, cfg)
    kept = [episodes[i] for i in keep]
    returns = np.array([e["rewards"].sum() for e in kept])
    wall = float(sum(s["wall_time_s"] for s in stages))
    metadata = {
        "task_id": cfg.task,
        "family": task.family,
        "min_episode_reward": float(returns.min()),
        "max_episode_reward": float(returns.max()),
        "budgets": list(task.budgets),
        "generator": {
            "config": cfg.to_json(),
            "algorithm": "stable-baselines3 PPO, Lagrangian reward (r - lam c) / (1 + lam)",
            "steps": cfg.total_steps,
            "episodes_logged": len(episodes),
            "episodes_kept": len(kept),
            "mixture": mixture_info,
            "wall_time_s": round(wall, 1),
            "stages": stages,
            "versions": {p: md.version(p) for p in ("stable-baselines3", "torch", "dsrl", "gymnasium")},
        },
    }
    write_dataset(Path(out), kept, metadata)
    return GenerationResult(
        path=Path(out), num_episodes_logged=len(episodes), num_episodes_kept=len(kept),
        num_steps_kept=int(sum(len(e["rewards"]) for e in kept)), wall_time_s=wall, stages=stages,
    )


def refilter_dataset(src: Path, out: Path, **filter_overrides) -> GenerationResult:
    """Thin a generated dataset file again with a stricter filter, without the generator's work dir.

    The file's episodes are the pool; :func:`density_filter` runs on them with the file's own
    generator config and ``filter_overrides`` (e.g. ``keep_best_per_budget``, ``max_steps``,
    ``frontier``). The protected episodes of the stricter filter are among the file's, so the best
    feasible reward at every budget is unchanged. The metadata records the refiltering (source
    size and checksum, the fields changed); the reference rewards are those of the kept episodes,
    as for a generated file. Written atomically; ``src`` may be ``out``.

    ``GenerationResult.num_episodes_logged`` is the number of episodes of ``src``.
    """
    import h5py

    src, out = Path(src), Path(out)
    with h5py.File(src, "r") as f:
        raw = {k: f[k][:] for k in STAGE_KEYS}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    gen = generator_info(attrs.get("generator"))
    if "config" not in gen:
        raise DatasetError(f"{src} has no generator metadata: only files made by `tcdp generate-data` can be refiltered")
    unknown = set(filter_overrides) - set(FILTER_FIELDS)
    if unknown:
        raise ValueError(f"refilter overrides only the filter's fields {FILTER_FIELDS}, not {sorted(unknown)}")
    cfg = replace(GeneratorConfig.from_json(gen["config"]), **filter_overrides)
    episodes = [{k: v[a:b] for k, v in raw.items()} for a, b in split_episodes(raw["terminals"], raw["timeouts"])]
    kept = [episodes[i] for i in density_filter(episodes, cfg)]
    returns = np.array([e["rewards"].sum() for e in kept])
    gen["config"] = cfg.to_json()
    gen["episodes_kept"] = len(kept)
    gen.setdefault("refiltered", []).append({
        "from_steps": int(len(raw["rewards"])), "from_episodes": len(episodes), "from_sha256": file_sha256(src),
        "overrides": dict(filter_overrides),
    })
    # The other attributes are written back as read (JSON strings stay strings).
    write_dataset(out, kept, {**attrs, "generator": gen, "min_episode_reward": float(returns.min()),
                              "max_episode_reward": float(returns.max())})
    return GenerationResult(path=out, num_episodes_logged=len(episodes), num_episodes_kept=len(kept),
                            num_steps_kept=int(sum(len(e["rewards"]) for e in kept)),
                            wall_time_s=float(gen.get("wall_time_s", 0.0)), stages=gen.get("stages", []))
