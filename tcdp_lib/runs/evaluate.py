"""Evaluate a policy in the simulator at DSRL budgets: ``tcdp evaluate``.

Episodes run in batches of ``n_envs`` environments stepped in lockstep (one policy call per
step for the whole batch). Each episode's reward and cost are normalised as in DSRL with the
dataset's reference rewards. Results go to ``episodes.csv`` (one row per episode) and
``summary.json`` (mean and standard deviation per budget), written atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tcdp_lib.data.dataset import Dataset
from tcdp_lib.data.envs import make_env, max_live_envs, seeded_reset
from tcdp_lib.data.scores import SAFE_NORMALIZED_COST
from tcdp_lib.errors import check_budget


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluation episode."""

    budget: float
    seed: int
    episode: int
    reward: float
    cost: float
    length: int
    normalized_reward: float
    normalized_cost: float


@dataclass(frozen=True)
class BudgetSummary:
    """Mean and spread of the episodes at one budget (spread over seeds of the seed means)."""

    budget: float
    episodes: int
    reward: float
    cost: float
    normalized_reward: float
    normalized_reward_std: float
    normalized_cost: float
    normalized_cost_std: float

    @property
    def safe(self) -> bool:
        return self.normalized_cost <= SAFE_NORMALIZED_COST


def step_episodes(envs, obs: np.ndarray, policy, *, max_steps: float = float("inf"), on_step=None, cancel=None,
                  progress=None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The episode loop: step ``policy`` (already ``reset``) in lockstep over ``envs`` from their
    first observations ``obs (n, obs_dim)`` until every episode ends.

    Each step the policy gets the observations with the previous step's rewards and costs (0 at
    the first), then each running environment takes its action; the cost is ``info["cost"]``.
    ``on_step(t, obs, actions, rewards, costs, done)`` sees every step's arrays (``t`` from 1);
    ``max_steps`` stops after that many steps, ``cancel`` (a ``threading.Event``) once set before
    the next step. Returns ``(totals (n, 2) of reward and cost, lengths (n,), cancelled)``.
    :func:`run_episodes` (evaluation) and the notebooks' rollout (a trace of one episode) both
    run it."""
    n = len(envs)
    reward = np.zeros(n)
    cost = np.zeros(n)
    totals = np.zeros((n, 2))
    length = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    t = 0
    while active.any() and t < max_steps:
        if cancel is not None and cancel.is_set():
            return totals, length, True
        actions = policy.act(obs, reward, cost)
        for i in np.flatnonzero(active):
            o, r, terminated, truncated, info = envs[i].step(actions[i])
            c = float(info.get("cost", 0.0))
            obs[i], reward[i], cost[i] = o, r, c
            totals[i] += (r, c)
            length[i] += 1
            if terminated or truncated:
                active[i] = False
        t += 1
        if on_step is not None:
            on_step(t, obs, actions, reward, cost, ~active)
        reward[~active] = 0.0
        cost[~active] = 0.0
        if progress is not None:
            progress.update(int(active.sum()))
    return totals, length, False


def run_episodes(task: str, policy, budget: float, n_episodes: int, seed: int, n_envs: int = 10,
                 progress=None, on_step=None) -> list[dict]:
    """Roll out ``n_episodes`` of ``policy`` at ``budget`` in batches of ``n_envs`` environments.

    Environment ``i`` of the evaluation is reset with seed ``1000 * seed + i``. Returns raw
    ``{"episode", "reward", "cost", "length"}`` records. A family that allows fewer live
    environments per process runs in smaller batches (MetaDrive: one at a time; see
    :func:`~tcdp_lib.data.envs.max_live_envs`); episode ``i`` keeps its reset seed.
    ``on_step``: :func:`step_episodes`'s, for each batch (``t`` starts at 1 again with each).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    out = []
    envs = [make_env(task) for _ in range(max_live_envs(task, min(n_envs, n_episodes)))]
    try:
        for first in range(0, n_episodes, len(envs)):
            batch = envs[: min(len(envs), n_episodes - first)]
            obs = np.stack([seeded_reset(env, 1000 * seed + first + i)[0] for i, env in enumerate(batch)])
            policy.reset(len(batch), budget)
            totals, length, _ = step_episodes(batch, obs, policy, progress=progress, on_step=on_step)
            for i in range(len(batch)):
                out.append({"episode": first + i, "reward": float(totals[i, 0]),
                            "cost": float(totals[i, 1]), "length": int(length[i])})
    finally:
        for env in envs:
            env.close()
    return out


def summarize(results: list[EpisodeResult]) -> list[BudgetSummary]:
    """Per budget: means over all episodes, standard deviations over the per-seed means."""
    out = []
    for b in sorted({r.budget for r in results}):
        rows = [r for r in results if r.budget == b]
        seeds = sorted({r.seed for r in rows})
        by_seed = lambda key: np.array([np.mean([getattr(r, key) for r in rows if r.seed == s]) for s in seeds])  # noqa: E731
        out.append(BudgetSummary(
            budget=b, episodes=len(rows),
            reward=float(np.mean([r.reward for r in rows])), cost=float(np.mean([r.cost for r in rows])),
            normalized_reward=float(np.mean([r.normalized_reward for r in rows])),
            normalized_reward_std=float(np.std(by_seed("normalized_reward"))),
            normalized_cost=float(np.mean([r.normalized_cost for r in rows])),
            normalized_cost_std=float(np.std(by_seed("normalized_cost"))),
        ))
    return out


def evaluate(dataset: Dataset, make_policy, budgets=None, seeds=(0, 1, 2), episodes: int = 20,
             n_envs: int = 10, out_dir: Path | None = None, progress: bool = True,
             meta: dict | None = None) -> tuple[list[EpisodeResult], list[BudgetSummary]]:
    """Evaluate ``make_policy(seed)`` at each budget and seed; optionally write the result files."""
    from tqdm.auto import tqdm

    task = dataset.task.task_id
    budgets = tuple(check_budget(b) for b in (dataset.meta.budgets if budgets is None else budgets))
    total = len(budgets) * len(seeds) * episodes * dataset.task.max_episode_steps
    bar = tqdm(total=total, desc=f"evaluate {task}", unit="step", disable=not progress)
    results = []
    t0 = time.time()
    try:
        for seed in seeds:
            policy = make_policy(seed)
            for b in budgets:
                for rec in run_episodes(task, policy, b, episodes, seed, n_envs, progress=bar):
                    nr, nc = dataset.normalized(rec["reward"], rec["cost"], b)
                    results.append(EpisodeResult(budget=float(b), seed=int(seed), normalized_reward=float(nr),
                                                 normalized_cost=float(nc), **rec))
    finally:
        bar.close()
    summary = summarize(results)
    if out_dir is not None:
        write_results(Path(out_dir), results, summary, {**(meta or {}), "task": task,
                                                       "wall_time_s": time.time() - t0})
    return results, summary


def write_results(out_dir: Path, results: list[EpisodeResult], summary: list[BudgetSummary], meta: dict) -> None:
    """``episodes.csv`` and ``summary.json`` in ``out_dir``, each written atomically."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".episodes.csv.tmp"
    pd.DataFrame([asdict(r) for r in results]).to_csv(tmp, index=False)
    os.replace(tmp, out_dir / "episodes.csv")
    body = {**meta, "summary": [{**asdict(s), "safe": s.safe} for s in summary]}
    tmp = out_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, out_dir / "summary.json")
