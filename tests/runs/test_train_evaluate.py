"""Training, checkpoints, the TCDP policy and evaluation, end to end on CPU with a tiny model."""

import pickle

import numpy as np
import pytest
import torch

from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.planner.planner import PlannerConfig
from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
from tcdp_lib.runs.checkpoint import CheckpointError, load_model
from tcdp_lib.runs.evaluate import EpisodeResult, evaluate, run_episodes, summarize
from tcdp_lib.runs.train import SMOKE_MODEL, RunConfig, TrainConfig, train_tcdp


def tiny_run(steps=20, **train):
    return RunConfig(task="OfflineBallCircle-v0", seed=0, model=SMOKE_MODEL,
                     train=TrainConfig(steps=steps, batch_size=16, log_every=5, checkpoint_every=10,
                                       warmup_steps=5, **train))


def test_train_plan_step_end_to_end(small_file, tmp_path):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    res = train_tcdp(ds, tiny_run(), run_dir=tmp_path / "run", progress=False)
    assert [h["step"] for h in res.history] == [5, 10, 15, 20]
    assert all(np.isfinite(h["loss"]) for h in res.history)
    for name in ("model.pt", "checkpoint.pt", "config.json", "history.json"):
        assert (tmp_path / "run" / name).exists()

    model, run_config = load_model(res.model_path, task="OfflineBallCircle-v0")
    assert run_config["task"] == "OfflineBallCircle-v0"
    assert run_config["model"]["budget"]["b_max"] == pytest.approx(min(80.0, ds.episodes.cost_returns.max()))
    policy = TCDPPolicy(model, PlannerConfig(n_samples=2), PolicyConfig(replan_every=2, warm_start=True))
    records = run_episodes("OfflineBallCircle-v0", policy, budget=10.0, n_episodes=2, seed=0, n_envs=2)
    assert [r["length"] for r in records] == [200, 200]
    assert all(np.isfinite(r["reward"]) and r["cost"] >= 0 for r in records)
    plan = policy.last_plan
    assert plan.states.shape == (2, 2, 8, 8)
    assert np.all(np.abs(plan.actions) <= 1.0 + 1e-6)


def test_resumed_run_matches_an_uninterrupted_one(small_file, tmp_path):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    full = train_tcdp(ds, tiny_run(20), run_dir=tmp_path / "a", progress=False)
    train_tcdp(ds, tiny_run(10), run_dir=tmp_path / "b", progress=False)  # stopped after 10 steps
    resumed = train_tcdp(ds, tiny_run(20), run_dir=tmp_path / "b", progress=False)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert [h["step"] for h in resumed.history] == [5, 10, 15, 20]


def test_resume_refuses_another_configuration(small_file, tmp_path):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    train_tcdp(ds, tiny_run(10), run_dir=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="another run configuration"):
        train_tcdp(ds, tiny_run(10, lr=1e-3), run_dir=tmp_path / "run", progress=False)


def test_checkpoint_from_before_a_new_config_field_resumes(small_file, tmp_path):
    """A field added to the configuration later (here ``energy.cost_quantile``), left at its
    default, does not make an older checkpoint "another configuration"; set, it does."""
    import dataclasses
    import json

    from tcdp_lib.runs.checkpoint import atomic_save, safe_load

    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    train_tcdp(ds, tiny_run(10), run_dir=tmp_path / "run", progress=False)
    ckpt_path = tmp_path / "run" / "checkpoint.pt"
    ckpt = safe_load(ckpt_path)
    saved = json.loads(ckpt["run_config"])
    del saved["model"]["energy"]["cost_quantile"]  # as written before the field existed
    ckpt["run_config"] = json.dumps(saved)
    atomic_save(ckpt, ckpt_path)
    resumed = train_tcdp(ds, tiny_run(20), run_dir=tmp_path / "run", progress=False)
    assert [h["step"] for h in resumed.history] == [5, 10, 15, 20]

    quantile = dataclasses.replace(SMOKE_MODEL, energy=dataclasses.replace(SMOKE_MODEL.energy, cost_quantile=0.9))
    with pytest.raises(CheckpointError, match="another run configuration"):
        train_tcdp(ds, dataclasses.replace(tiny_run(30), model=quantile), run_dir=tmp_path / "run",
                   progress=False)


def test_action_model_stage_leaves_the_rest_and_refits_alone(small_file, tmp_path):
    """The action model trains in a stage of its own: a run with one has the same other weights as
    a run without; a finished run given an action model fits only that stage (no step more), once."""
    import dataclasses

    from tcdp_lib.method.config import ActionModelConfig
    from tcdp_lib.runs.checkpoint import safe_load

    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    gapped = dataclasses.replace(SMOKE_MODEL, action_model=ActionModelConfig(gap=2, steps=30, batch_size=32))
    plain = train_tcdp(ds, tiny_run(10), run_dir=tmp_path / "plain", progress=False)
    with_am = train_tcdp(ds, dataclasses.replace(tiny_run(10), model=gapped), run_dir=tmp_path / "am", progress=False)
    a, b = plain.model.state_dict(), with_am.model.state_dict()
    assert sorted(k for k in b if k not in a) == sorted(k for k in b if k.startswith("action_model."))
    for k in a:
        torch.testing.assert_close(b[k], a[k])
    untrained = TCDP_with_gap(with_am.model)
    assert any(not torch.equal(b[k], untrained[k]) for k in b if k.startswith("action_model."))

    # the plain run, resumed with an action model: the stage alone, its weights as in the run above
    refit = train_tcdp(ds, dataclasses.replace(tiny_run(10), model=gapped), run_dir=tmp_path / "plain", progress=False)
    assert [h["step"] for h in refit.history] == [5, 10]
    r = refit.model.state_dict()
    for k in b:
        torch.testing.assert_close(r[k], b[k])
    assert safe_load(tmp_path / "plain" / "checkpoint.pt")["action_model"]["gap"] == 2
    # the stage's time counts in the run's training time (the steps' alone: the history's last record)
    from tcdp_lib.runs.methods import training_wall_time

    assert refit.wall_time_s > refit.history[-1]["wall_time_s"]
    assert training_wall_time(refit.model_path) == pytest.approx(refit.wall_time_s)
    model, _ = load_model(refit.model_path, task="OfflineBallCircle-v0")
    assert model.action_gap == 2
    torch.testing.assert_close(model.state_dict()["action_model.net.0.weight"], r["action_model.net.0.weight"])


def TCDP_with_gap(model):
    """The state of a freshly built copy of ``model`` (its action model untrained)."""
    from tcdp_lib.method.model import TCDP

    fresh = TCDP(model.config, model.obs_dim, model.act_dim, model.normalizer,
                 model.inv_dyn.action_low.numpy(), model.inv_dyn.action_high.numpy())
    return fresh.state_dict()


def test_checkpoint_of_another_task_is_refused(small_file, tmp_path):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    res = train_tcdp(ds, tiny_run(5), run_dir=tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="trained on 'OfflineBallCircle-v0', not on the requested task 'OfflineCarCircle-v0'"):
        load_model(res.model_path, task="OfflineCarCircle-v0")


class Boom:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_never_executes_code(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    with open(bad, "wb") as f:
        pickle.dump({"kind": "tcdp-model", "x": Boom()}, f)
    with pytest.raises(CheckpointError, match="not a tcdp model file"):
        load_model(bad)
    assert "code ran" not in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_summary_means_and_seed_spread():
    rows = [EpisodeResult(10.0, s, i, r, c, 10, r / 100, c / 10)
            for s, vals in ((0, [(10, 5), (30, 15)]), (1, [(50, 0), (70, 10)]))
            for i, (r, c) in enumerate(vals)]
    (s,) = summarize(rows)
    assert s.episodes == 4
    assert s.normalized_reward == pytest.approx(0.4)
    assert s.normalized_reward_std == pytest.approx(np.std([0.2, 0.6]))
    assert s.normalized_cost == pytest.approx(0.75)
    assert s.safe


def test_evaluate_writes_result_files(small_file, tmp_path):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)

    class Zero:
        def reset(self, n_envs, budget):
            self.n = n_envs

        def act(self, obs, reward, cost):
            return np.zeros((self.n, 2), np.float32)

    results, summary = evaluate(ds, lambda seed: Zero(), budgets=(0.0, 20.0), seeds=(0,), episodes=2,
                                n_envs=2, out_dir=tmp_path / "eval", progress=False)
    assert len(results) == 4 and [s.budget for s in summary] == [0.0, 20.0]
    # The same rollouts at both budgets: only the normalised cost changes, by DSRL's definition.
    assert results[0].reward == pytest.approx(results[2].reward, abs=1e-9)
    assert results[0].normalized_cost == pytest.approx(results[0].cost + 1.0)
    assert results[2].normalized_cost == pytest.approx(results[2].cost / 20.0)
    import json

    body = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert body["task"] == "OfflineBallCircle-v0" and len(body["summary"]) == 2
    assert (tmp_path / "eval" / "episodes.csv").read_text().count("\n") == 5


def test_negative_budget_is_refused(small_file):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    with pytest.raises(ValueError, match=r"budget -1.0: expected a finite number >= 0"):
        evaluate(ds, lambda seed: None, budgets=(-1.0,), progress=False)


def test_budget_prior_reaches_twice_the_largest_budget_at_most_the_data():
    from tcdp_lib.runs.train import budget_prior_max

    assert budget_prior_max((10.0, 20.0, 40.0), np.array([0.0, 50.0, 123.0])) == 80.0
    assert budget_prior_max((10.0, 20.0, 40.0), np.array([0.0, 30.0])) == 30.0
    assert budget_prior_max((20.0, 40.0, 80.0), np.array([200.0]), factor=1.5) == 120.0


def test_export_sets_guidance_and_keeps_weights(small_file, tmp_path):
    from tcdp_lib.runs.checkpoint import export_model

    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    res = train_tcdp(ds, tiny_run(5), run_dir=tmp_path / "run", progress=False)
    out = export_model(res.model_path, tmp_path / "ship" / "model.pt", w_cfg=2.5, temporal_ensemble=4, ensemble=2,
                       cold_samples=3, choice="energy")
    a, _ = load_model(res.model_path)
    b, _ = load_model(out, task="OfflineBallCircle-v0")
    assert b.config.guidance.w_cfg == 2.5 and a.config.guidance.w_cfg != 2.5
    assert (b.config.guidance.temporal_ensemble, b.config.guidance.ensemble, b.config.guidance.cold_samples) == (4, 2, 3)
    from tcdp_lib.planner import Planner
    from tcdp_lib.planner.policy import TCDPPolicy

    assert TCDPPolicy(b).temporal_ensemble == 4 and Planner(b).ensemble == 2  # what the file says is what runs
    assert Planner(b).cold_samples == 3 and Planner(a).cold_samples == 0
    assert Planner(b).choice == "energy" and Planner(a).choice == "feasible"
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(x, y)
    assert (tmp_path / "ship" / "config.json").exists()


def test_half_export_is_smaller_and_loads_as_float32(small_file, tmp_path):
    from tcdp_lib.runs.checkpoint import export_model

    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    res = train_tcdp(ds, tiny_run(5), run_dir=tmp_path / "run", progress=False)
    full = export_model(res.model_path, tmp_path / "full" / "model.pt")
    half = export_model(res.model_path, tmp_path / "half" / "model.pt", half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    a, _ = load_model(full)
    b, _ = load_model(half)
    weights = {name for name, _ in a.named_parameters()}
    assert weights and any(name not in weights for name in a.state_dict())
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert y.dtype == x.dtype, name
        # learned weights are rounded to float16; buffers (schedule, normaliser, bounds) are exact
        want = x.half().to(x.dtype) if name in weights else x
        torch.testing.assert_close(y, want, rtol=0, atol=0, msg=name)


def test_evaluation_starts_are_reproducible():
    class Sine:  # a fixed open-loop policy: any difference comes from the start states
        def reset(self, n_envs, budget):
            self.n, self.t = n_envs, 0

        def act(self, obs, reward, cost):
            self.t += 1
            return np.tile(np.array([np.sin(self.t / 7), np.cos(self.t / 5)], np.float32), (self.n, 1))

    a = run_episodes("OfflineBallRun-v0", Sine(), 10.0, n_episodes=2, seed=3, n_envs=2)
    b = run_episodes("OfflineBallRun-v0", Sine(), 10.0, n_episodes=2, seed=3, n_envs=2)
    c = run_episodes("OfflineBallRun-v0", Sine(), 10.0, n_episodes=2, seed=4, n_envs=2)
    assert [r["reward"] for r in a] == [r["reward"] for r in b]
    assert [r["reward"] for r in a] != [r["reward"] for r in c]
