"""The shipped datasets load through dsrl and each has a real frontier at its three budgets."""

import pytest

from tcdp_lib.data.card import budget_figures
from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.paths import DATA_DIR

SHIPPED = sorted(p.stem for p in DATA_DIR.glob("*.hdf5"))


def test_the_default_and_three_more_tasks_are_shipped():
    assert "OfflineBallCircle-v0" in SHIPPED
    assert {"OfflineBallRun-v0", "OfflinePointCircle1Gymnasium-v0"} <= set(SHIPPED)
    assert {"OfflineCarCircle-v0", "OfflineDroneRun-v0"} & set(SHIPPED)
    total = sum((DATA_DIR / f"{t}.hdf5").stat().st_size for t in SHIPPED)
    assert total < 30 * 2**20


@pytest.mark.parametrize("task", SHIPPED)
def test_frontier_at_the_three_budgets(task):
    ds = load_dataset(task)
    assert ds.meta.task_id == task and len(ds.meta.budgets) == 3
    assert ds.meta.generator["config"]["task"] == task
    figs = budget_figures(ds.episodes, ds.meta.budgets)
    assert all(f.feasible_episodes >= 30 for f in figs), figs
    best = [f.best_feasible_reward for f in figs]
    assert best[0] < best[1] < best[2], best
