"""Dataset figures: episode counts, per-budget feasible counts and best rewards, frontiers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcdp_lib.data.episodes import Episodes
from tcdp_lib.data.frontier import episodes_frontier


@dataclass(frozen=True)
class BudgetFigures:
    budget: float
    feasible_episodes: int
    best_feasible_reward: float | None


def budget_figures(episodes: Episodes, budgets) -> list[BudgetFigures]:
    """For each budget: how many episodes have ``C <= b`` and the best reward among them
    (``r_max(b)``, ``None`` where no episode is feasible)."""
    budgets = np.asarray(budgets, dtype=np.float64).reshape(-1)
    best = episodes_frontier(episodes).r_max(budgets, infeasible="nan") if episodes.num_episodes else \
        np.full(len(budgets), np.nan)
    return [BudgetFigures(float(b), int(episodes.feasible(b).sum()), None if np.isnan(r) else float(r))
            for b, r in zip(budgets, best)]


def frontier(episodes: Episodes, grid=None) -> tuple[np.ndarray, np.ndarray]:
    """The feasible frontier ``r_max(b)`` (best episode reward among episodes with cost <= b) at
    each b of ``grid`` (default: the distinct episode costs); NaN below every episode cost.
    Returns ``(grid, r_max)``."""
    if grid is None:
        grid = np.unique(episodes.cost_returns)
    grid = np.asarray(grid, dtype=np.float64)
    return grid, episodes_frontier(episodes).r_max(grid, infeasible="nan")


def dataset_card_markdown(paths: list[Path], task: str | None = None) -> str:
    """A markdown table of the figures of each dataset file, of ``task`` (default: the task its
    file name says, ``<task id>.hdf5``)."""
    from tcdp_lib.data.dataset import DatasetError, load_dataset
    from tcdp_lib.data.tasks import TASKS

    lines = [
        "| task | file MB | episodes (of logged) | steps | mean length | reward min / max | cost min / max | budget: feasible episodes, best reward | generator steps | generator wall time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for path in paths:
        task_id = task or Path(path).stem
        if task is None and task_id not in TASKS:
            raise DatasetError(f"{path}: the file name does not say the task (expected <task id>.hdf5); "
                               f"give it with --task")
        ds = load_dataset(task_id, path)
        ep = ds.episodes
        figs = "; ".join(
            f"{f.budget:g}: {f.feasible_episodes}, {f.best_feasible_reward:.1f}" if f.best_feasible_reward is not None
            else f"{f.budget:g}: 0, -" for f in budget_figures(ep, ds.meta.budgets)
        )
        gen = ds.meta.generator
        lines.append(
            f"| {task_id} | {Path(path).stat().st_size / 2**20:.1f} | {ep.num_episodes} "
            f"({gen.get('episodes_logged', '-')}) | {len(ep.rewards)} | {ep.lengths.mean():.0f} | "
            f"{ep.returns.min():.1f} / {ep.returns.max():.1f} | "
            f"{ep.cost_returns.min():.0f} / {ep.cost_returns.max():.0f} | {figs} | "
            f"{gen.get('steps', '-')} | {gen.get('wall_time_s', '-')} s |"
        )
        for r in gen.get("refiltered", []):
            notes.append(f"- {task_id}: refiltered from {r['from_episodes']} episodes ({r['from_steps']} steps) "
                         f"with {r['overrides']}.")
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
