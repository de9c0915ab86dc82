"""The shipped datasets and checkpoints: every family is there, each file round-trips through
dsrl's loader and our writer, each has a frontier at its three budgets, and each checkpoint
loads without executing code and plans finite states for its task."""

import h5py
import numpy as np
import pytest

from tcdp_lib.data.card import budget_figures
from tcdp_lib.data.dataset import REQUIRED_KEYS, load_dataset
from tcdp_lib.data.generate import write_dataset
from tcdp_lib.data.tasks import get_task
from tcdp_lib.paths import CHECKPOINT_DIR, DATA_DIR

SHIPPED = sorted(p.stem for p in DATA_DIR.glob("*.hdf5"))
SHIPPED_MODELS = sorted(p.parent.name for p in CHECKPOINT_DIR.glob("*/model.pt"))
SIZE_LIMIT = 60e6  # shipped data and checkpoints together
FLAT_FRONTIER = {"OfflinePointGoal1Gymnasium-v0"}  # see data/README.md


def test_every_family_is_shipped_within_the_size_budget():
    assert "OfflineBallCircle-v0" in SHIPPED
    families = {}
    for task in SHIPPED:
        families.setdefault(get_task(task).family, []).append(task)
    assert len(families.get("bullet", [])) >= 3, families
    assert len(families.get("safety_gymnasium", [])) >= 2, families
    assert len(families.get("metadrive", [])) >= 1, families
    total = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT, f"data/ holds {total / 1e6:.1f} MB, over the {SIZE_LIMIT / 1e6:.0f} MB budget"


def test_a_model_is_shipped_for_a_task_of_each_family():
    assert {get_task(t).family for t in SHIPPED_MODELS} == {"bullet", "safety_gymnasium", "metadrive"}
    assert set(SHIPPED_MODELS) <= set(SHIPPED)


@pytest.mark.parametrize("task", SHIPPED)
def test_round_trip_through_dsrl_and_the_writer(task, tmp_path):
    """dsrl's reader gives the file's arrays; the episodes written back load as the same dataset."""
    ds = load_dataset(task)  # through dsrl's env.get_dataset(h5path=...)
    with h5py.File(ds.path, "r") as f:
        raw = {k: f[k][:] for k in REQUIRED_KEYS}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    ep = ds.episodes
    assert ep.bounds[-1, 1] == len(raw["rewards"])  # every step belongs to an episode
    for key in ("observations", "next_observations", "actions", "rewards", "costs"):
        np.testing.assert_array_equal(getattr(ep, key), raw[key], err_msg=key)

    episodes = [{k: raw[k][a:b] for k in REQUIRED_KEYS} for a, b in ep.bounds]
    out = tmp_path / f"{task}.hdf5"
    write_dataset(out, episodes, {k: v for k, v in attrs.items()})
    again = load_dataset(task, out)
    assert again.meta.min_episode_reward == ds.meta.min_episode_reward
    assert again.meta.max_episode_reward == ds.meta.max_episode_reward
    assert again.meta.budgets == ds.meta.budgets and again.meta.generator == ds.meta.generator
    np.testing.assert_array_equal(again.episodes.bounds, ep.bounds)
    np.testing.assert_array_equal(again.episodes.observations, ep.observations)
    np.testing.assert_array_equal(again.episodes.returns, ep.returns)
    np.testing.assert_array_equal(again.episodes.cost_returns, ep.cost_returns)


@pytest.mark.parametrize("task", SHIPPED)
def test_frontier_at_the_three_budgets(task):
    ds = load_dataset(task)
    assert ds.meta.task_id == task and len(ds.meta.budgets) == 3
    assert ds.meta.generator["config"]["task"] == task
    figs = budget_figures(ds.episodes, ds.meta.budgets)
    keep = ds.meta.generator["config"].get("keep_best_per_budget", 0)
    assert all(f.feasible_episodes >= max(min(keep, 5), 1) for f in figs), figs
    best = [f.best_feasible_reward for f in figs]
    assert best[0] <= best[1] <= best[2], best
    if task in FLAT_FRONTIER:  # its best episode is already feasible at the smallest budget
        assert best[0] == ds.episodes.returns.max()
    else:
        assert best[0] < best[2], best
    assert ds.episodes.cost_returns.max() > ds.meta.budgets[-1]  # the data also holds unsafe episodes


@pytest.mark.parametrize("task", SHIPPED_MODELS)
def test_shipped_model_loads_safely_and_plans_for_its_task(task):
    import torch

    from tcdp_lib.planner.planner import Planner, PlannerConfig
    from tcdp_lib.paths import shipped_model
    from tcdp_lib.runs.checkpoint import load_model

    torch.manual_seed(0)
    model, run_config = load_model(shipped_model(task), task=task)  # weights_only=True inside
    assert run_config["task"] == task
    ds = load_dataset(task)
    assert model.obs_dim == ds.episodes.obs_dim and model.act_dim == ds.episodes.act_dim
    assert all(p.dtype == torch.float32 for p in model.parameters())
    obs = ds.episodes.observations[:2]
    plan = Planner(model, PlannerConfig(n_samples=2)).plan(obs, np.array(ds.meta.budgets[:2]), generator=0)
    assert plan.states.shape[:2] == (2, 2) and np.isfinite(plan.states).all()
    assert np.isfinite(plan.actions).all()
