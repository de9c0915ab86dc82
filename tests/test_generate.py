"""A tiny generator run in the real simulator: a loadable file, deterministic, resumable."""

import json

import h5py
import numpy as np
import pytest

from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.data.generate import GeneratorConfig, Phase, generate_dataset, recipe

TINY = dict(n_steps=256, batch_size=64, stage_steps=1024)


def tiny_config(**kw):
    return recipe("OfflineBallRun-v0", phases=(Phase(1024), Phase(1024, 5.0, 40.0)),
                  **{**TINY, "mixture_episodes": 0, **kw})


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f.keys()}


def test_tiny_run_writes_a_loadable_dataset(tmp_path):
    out = tmp_path / "OfflineBallRun-v0.hdf5"
    res = generate_dataset(tiny_config(), out, tmp_path / "work", progress=False)
    assert res.num_episodes_logged >= 18  # 2048 steps of 100-step episodes, partial ones dropped
    ds = load_dataset("OfflineBallRun-v0", out)
    assert ds.episodes.num_episodes == res.num_episodes_kept
    assert ds.meta.budgets == (10.0, 20.0, 40.0)
    assert ds.meta.min_episode_reward == pytest.approx(ds.episodes.returns.min(), rel=1e-5)
    assert ds.meta.max_episode_reward == pytest.approx(ds.episodes.returns.max(), rel=1e-5)
    gen = ds.meta.generator
    assert gen["steps"] == 2048 and gen["config"]["seed"] == 0
    assert [s["stage"] for s in gen["stages"]] == [0, 1]
    # The constrained phase switched the multiplier on; the unconstrained one kept it at 0.
    assert gen["stages"][0]["limit"] is None and gen["stages"][1]["limit"] == pytest.approx(40.0, rel=0.1)


def test_resume_after_interruption_gives_the_same_file(tmp_path):
    cfg = tiny_config()
    a = tmp_path / "a.hdf5"
    generate_dataset(cfg, a, tmp_path / "work_a", progress=False)

    # Simulate a run killed during its second stage: only stage 0 finished.
    work = tmp_path / "work_b"
    generate_dataset(cfg, tmp_path / "b_full.hdf5", work, progress=False)
    run = work / f"{cfg.task}-seed{cfg.seed}"
    state = json.loads((run / "state.json").read_text())
    state["stages"] = state["stages"][:1]
    (run / "state.json").write_text(json.dumps(state))
    (run / "episodes_0001.npz").unlink()
    b = tmp_path / "b.hdf5"
    generate_dataset(cfg, b, work, progress=False)

    da, db = _arrays(a), _arrays(b)
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


def test_other_config_in_work_dir_is_refused(tmp_path):
    generate_dataset(tiny_config(), tmp_path / "a.hdf5", tmp_path / "work", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        generate_dataset(tiny_config(lambda_lr=0.25), tmp_path / "b.hdf5", tmp_path / "work", progress=False)


def test_limit_schedule_is_geometric_between_phase_ends():
    cfg = GeneratorConfig("OfflineBallRun-v0", (Phase(100), Phase(100, 5.0, 80.0)))
    assert cfg.limit_at(50) is None
    assert cfg.limit_at(100) == pytest.approx(5.0)
    assert cfg.limit_at(150) == pytest.approx(20.0)  # sqrt(5 * 80)
    assert cfg.limit_at(10_000) == pytest.approx(80.0)


def test_mixture_stages_pick_the_best_safe_and_the_best_overall():
    from tcdp_lib.data.generate import pick_mixture_stages

    stages = [
        {"stage": 0, "mean_reward": 100.0, "mean_cost": 1.0},
        {"stage": 1, "mean_reward": 300.0, "mean_cost": 4.0},
        {"stage": 2, "mean_reward": 900.0, "mean_cost": 80.0},
        {"stage": 3, "mean_reward": 500.0, "mean_cost": 6.0},
        {"stage": 4, "mean_reward": None, "mean_cost": None},
    ]
    assert pick_mixture_stages(stages, safe_cost=5.0) == (1, 2)
    assert pick_mixture_stages(stages, safe_cost=0.5) == (0, 2)  # none safe: the least costly


def test_mixture_episodes_join_the_pool(tmp_path):
    cfg = tiny_config(mixture_episodes=3)
    res = generate_dataset(cfg, tmp_path / "m.hdf5", tmp_path / "work", progress=False)
    plain = generate_dataset(tiny_config(), tmp_path / "p.hdf5", tmp_path / "work", progress=False)
    assert res.num_episodes_logged == plain.num_episodes_logged + 3
    ds = load_dataset("OfflineBallRun-v0", tmp_path / "m.hdf5")
    assert ds.meta.generator["mixture"]["episodes"] == 3


def test_best_feasible_indices_are_the_top_rewards_within_budget():
    from tcdp_lib.data.generate import best_feasible_indices

    costs = np.array([0.0, 5.0, 30.0, 10.0, 10.0])
    rewards = np.array([1.0, 9.0, 100.0, 3.0, 7.0])
    assert best_feasible_indices(costs, rewards, 10.0, 2).tolist() == [1, 4]
    assert best_feasible_indices(costs, rewards, 10.0, 10).tolist() == [1, 4, 3, 0]
    assert best_feasible_indices(costs, rewards, -1.0, 3).tolist() == []


def test_tiny_metadrive_run_writes_a_loadable_dataset(tmp_path):
    # MetaDrive allows one live environment per process: the training stages and the mixture
    # episodes each make and close their own.
    task = "OfflineMetadrive-easysparse-v0"
    cfg = recipe(task, phases=(Phase(1024), Phase(1024, 5.0, 40.0)), **{**TINY, "mixture_episodes": 2})
    out = tmp_path / f"{task}.hdf5"
    res = generate_dataset(cfg, out, tmp_path / "work", progress=False)
    ds = load_dataset(task, out)
    assert ds.episodes.num_episodes == res.num_episodes_kept > 2
    assert ds.episodes.observations.shape[1] == 259 and ds.meta.budgets == (10.0, 20.0, 40.0)
    assert ds.meta.generator["mixture"]["episodes"] == 2


def _feasible_frontier(costs, rewards, levels):
    return [rewards[costs <= b].max() if (costs <= b).any() else None for b in levels]


def test_pareto_frontier_keeps_the_feasible_frontier_with_fewer_episodes():
    from tcdp_lib.data.generate import frontier_indices, pareto_indices

    rng = np.random.default_rng(3)
    costs = rng.integers(0, 60, size=400).astype(float)
    rewards = rng.normal(size=400) + 0.05 * costs
    pareto = pareto_indices(costs, rewards)
    levels = np.arange(-1, 61)
    assert _feasible_frontier(costs[pareto], rewards[pareto], levels) == _feasible_frontier(costs, rewards, levels)
    # Each kept episode beats every other episode of lower or equal cost; each dropped one is beaten.
    kept = set(pareto.tolist())
    for i in range(len(costs)):
        cheaper = (costs <= costs[i]) & (np.arange(len(costs)) != i)
        assert (i in kept) == (not (rewards[cheaper] >= rewards[i]).any()), i
    assert len(pareto) < len(frontier_indices(costs, rewards))


def test_refilter_thins_a_generated_file_and_keeps_its_frontier(tmp_path):
    from tcdp_lib.data.card import budget_figures
    from tcdp_lib.data.generate import refilter_dataset

    src = tmp_path / "OfflineBallRun-v0.hdf5"
    generate_dataset(tiny_config(max_steps=10_000), src, tmp_path / "work", progress=False)
    before = load_dataset("OfflineBallRun-v0", src)
    out = tmp_path / "thin.hdf5"
    res = refilter_dataset(src, out, max_steps=600, frontier="pareto")
    after = load_dataset("OfflineBallRun-v0", out)
    assert after.episodes.num_episodes == res.num_episodes_kept < before.episodes.num_episodes
    assert len(after.episodes.rewards) < len(before.episodes.rewards)
    levels = np.unique(before.episodes.cost_returns)
    assert _feasible_frontier(after.episodes.cost_returns, after.episodes.returns, levels) == \
        _feasible_frontier(before.episodes.cost_returns, before.episodes.returns, levels)
    assert [f.best_feasible_reward for f in budget_figures(after.episodes, after.meta.budgets)] == \
        [f.best_feasible_reward for f in budget_figures(before.episodes, before.meta.budgets)]
    gen = after.meta.generator
    assert gen["config"]["max_steps"] == 600 and gen["config"]["frontier"] == "pareto"
    assert gen["refiltered"][0]["from_episodes"] == before.episodes.num_episodes
    assert gen["stages"] == before.meta.generator["stages"]


def test_refilter_refuses_files_without_generator_metadata_and_other_fields(small_file, tmp_path):
    from tcdp_lib.data.generate import refilter_dataset

    path, _ = small_file
    with pytest.raises(ValueError, match="no generator metadata"):
        refilter_dataset(path, tmp_path / "x.hdf5", max_steps=10)
    src = tmp_path / "OfflineBallRun-v0.hdf5"
    generate_dataset(tiny_config(), src, tmp_path / "work", progress=False)
    with pytest.raises(ValueError, match="filter's fields"):
        refilter_dataset(src, tmp_path / "x.hdf5", seed=3)
    with pytest.raises(ValueError, match="frontier must be"):
        refilter_dataset(src, tmp_path / "x.hdf5", frontier="best")
