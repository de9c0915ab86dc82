"""The planner diagnostics (``tcdp diagnose``) on the tiny smoke model trained on the shipped
BallCircle data: table shapes, same-noise loss comparisons, jitter, recording, errors, CLI."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tcdp_lib.cli import main
from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.errors import BudgetError
from tcdp_lib.method.windows import Windows
from tcdp_lib.planner.planner import PlannerConfig
from tcdp_lib.planner.policy import PolicyConfig
from tcdp_lib.runs import diagnose as D
from tcdp_lib.runs.checkpoint import CheckpointError
from tcdp_lib.runs.train import SMOKE_MODEL, SMOKE_TRAIN, RunConfig, train_tcdp

TASK = "OfflineBallCircle-v0"
FAST = PlannerConfig(n_samples=2)


@pytest.fixture(scope="module")
def ds():
    return load_dataset(TASK)


@pytest.fixture(scope="module")
def trained(ds, tmp_path_factory):
    torch.set_num_threads(1)
    run = RunConfig(task=TASK, seed=0, model=SMOKE_MODEL, train=SMOKE_TRAIN)
    return train_tcdp(ds, run, run_dir=tmp_path_factory.mktemp("diagnose") / "run", progress=False)


@pytest.fixture(scope="module")
def model(trained):
    return trained.model


@pytest.fixture(scope="module")
def windows(ds, model):
    return Windows.from_episodes(ds.episodes, model.horizon)


# ---------------------------------------------------------------- offline diagnostics


def test_denoising_table_and_determinism(model, windows):
    ks = D.default_ks(model)
    assert len(ks) == 10 and ks[0] == 0 and ks[-1] == model.config.diffusion.n_diffusion_steps - 1
    a = D.denoising_loss_by_k(model, windows, n=32, seed=3)
    assert list(a["k"]) == list(ks)
    assert {"loss_cond", "loss_uncond", "loss_shuffled", "ratio_uncond_cond", "ratio_shuffled_cond"} <= set(a.columns)
    assert np.all(np.isfinite(a[["loss_cond", "loss_uncond", "loss_shuffled"]].to_numpy()))
    np.testing.assert_allclose(a["ratio_uncond_cond"], a["loss_uncond"] / a["loss_cond"])
    assert (a["loss_cond"] != a["loss_uncond"]).any()  # the real backbone reads its condition (barely, at 20 steps)
    pd.testing.assert_frame_equal(a, D.denoising_loss_by_k(model, windows, n=32, seed=3))  # seeded, pure
    # the noise of a level does not depend on which other levels are asked for
    one = D.denoising_loss_by_k(model, windows, ks=[ks[4]], n=32, seed=3)
    assert one["loss_cond"].item() == pytest.approx(a["loss_cond"][4], rel=1e-6)
    assert model.training is False


class IgnoresCondition(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.inner = backbone

    def forward(self, x, k, cond):
        return self.inner(x, k, torch.zeros_like(cond))


def test_losses_share_noise_and_x_k(model, windows):
    """With a backbone that ignores its condition, the three losses are one number per k: they
    are computed on the same noise and the same noisy windows."""
    stub = copy.deepcopy(model)
    stub.backbone = IgnoresCondition(stub.backbone)
    t = D.denoising_loss_by_k(stub, windows, ks=[0, 7, 19], n=32, seed=1)
    np.testing.assert_array_equal(t["loss_cond"], t["loss_uncond"])
    np.testing.assert_array_equal(t["loss_cond"], t["loss_shuffled"])
    np.testing.assert_allclose(t["ratio_uncond_cond"], 1.0)


def test_bad_noise_level_is_refused(model, windows):
    with pytest.raises(ValueError, match="noise level k must be an integer in \\[0, 20\\), got 20"):
        D.denoising_loss_by_k(model, windows, ks=[20], n=8)


def test_energy_accuracy_table(model, windows):
    e = D.energy_accuracy(model, windows, ks=[0, 10, 19], n=64, seed=0)
    assert list(e.columns) == ["k", "alpha_bar", "value_n", "value_pearson", "value_spearman", "value_mse",
                               "cost_r2", "cost_mae"]
    assert list(e["k"]) == [0, 10, 19]
    assert (e["value_n"] > 1).all() and (e["value_n"] <= 64).all()
    assert e[["value_pearson", "value_spearman"]].abs().le(1 + 1e-9).all().all()
    assert (e["value_mse"] >= 0).all() and (e["cost_mae"] >= 0).all() and (e["cost_r2"] <= 1).all()


def test_energy_accuracy_skips_a_model_without_heads(model, windows):
    stub = copy.deepcopy(model)
    stub.energy = None
    e = D.energy_accuracy(stub, windows, n=8)
    assert e.empty and "no energy model" in e.attrs["skipped"]
    assert "skipped: variant 'tcdp' has no energy model" in D.format_results({"energy": e})


def test_pearson_spearman_r2_helpers():
    x = np.arange(10.0)
    assert D._pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert D._pearson(D._ranks(x), D._ranks(x ** 3)) == pytest.approx(1.0)  # Spearman of a monotone map
    assert D._r2(x, x) == 1.0 and np.isnan(D._r2(x, np.ones(10)))


# ---------------------------------------------------------------- jitter and the recorder


def test_jitter_of_constant_actions_is_zero(ds):
    assert D.action_jitter(np.ones((50, 2))) == 0.0
    assert D.action_jitter([np.full((5, 2), 0.3), np.full((7, 2), -0.3)]) == 0.0  # no pair spans episodes
    assert D.action_jitter([np.array([[0.0, 0.0], [1.0, -1.0], [1.0, -1.0]])]) == pytest.approx(0.5)
    assert np.isnan(D.action_jitter([np.ones((1, 2))]))
    assert D.data_action_jitter(ds) > 0


def test_recorder_measures_distance_to_the_followed_state():
    """A fake policy whose plan from observation o is o + 1, o + 2, ...: the recorder compares the
    observation reached with the state the policy was heading for (offset + 1 within a chunk)."""
    h, c = 4, 3

    class Fake:
        model = SimpleNamespace(obs_std=torch.full((c,), 2.0), horizon=h)
        config = SimpleNamespace(replan_every=2)

        def reset(self, n, budget):
            self.t = 0

        def act(self, obs, reward, cost):
            if self.t % 2 == 0:
                states = obs[:, None, None, :] + np.arange(h)[None, None, :, None]  # (B, 1, H, C)
                self.last_plan = SimpleNamespace(best_states=states[:, 0])
            self.t += 1
            return np.zeros((len(obs), 2), np.float32)

    rec = D.StepRecorder(Fake())
    rec.reset(2, 10.0)
    obs = np.zeros((2, c))
    for t in range(5):
        rec.act(obs, np.zeros(2), np.zeros(2))
        obs += 1.0 if t != 2 else 3.0  # the step after call 2 overshoots the plan by 2 in each dimension
    out = rec.summary([{"length": 5, "cost": 0.0}, {"length": 3, "cost": 0.0}])
    # observations 0, 1, 2, 5, 6; plans made at calls 0 and 2 (0..3, then 2..5). Heading for 1, 2, 3,
    # 4, 4 + 1: off by 2 per dimension (sqrt(3) in units of std 2) after calls 2 and 3 (the plan of
    # call 2 is still followed at call 3). Env 0 lives 5 steps (transitions after calls 0-3), env 1 3.
    r3 = np.sqrt(3)
    assert out["transitions"] == 7
    assert out["plan_error"] == pytest.approx(3 * r3 / 7)
    assert out["plan_error_at_replan"] == pytest.approx(2 * r3 / 4)  # calls 0, 2 of both envs
    assert out["plan_error_between_replans"] == pytest.approx(r3 / 3)  # calls 1, 3 of env 0, call 1 of env 1
    assert out["step_size"] == pytest.approx((3.0 + 2.5) * r3 / 7)  # steps 1, 1, 3, 1 per dim, / std 2
    assert out["policy_jitter"] == 0.0


def test_recorder_sets_the_chosen_plans_cost_prediction_beside_the_cost_then_spent():
    """Plans are made at calls 0 and 2 (replan_every 2) and predict a cost-to-go of 5 and -1 for the
    chosen sample; the episode pays 1 at each of its 4 steps: it has 4 to spend at call 0, 2 at call 2."""
    class Fake:
        model = SimpleNamespace(obs_std=torch.ones(2), horizon=4)
        config = SimpleNamespace(replan_every=2)

        def reset(self, n, budget):
            self.t = 0

        def act(self, obs, reward, cost):
            if self.t % 2 == 0:
                pred = 5.0 if self.t == 0 else -1.0
                self.last_plan = SimpleNamespace(best_states=np.zeros((1, 4, 2)), chosen=np.array([1]),
                                                 costs=np.array([[100.0, pred]]))
            self.t += 1
            return np.zeros((1, 2), np.float32)

    rec = D.StepRecorder(Fake())
    rec.reset(1, 10.0)
    paid = 0.0
    for t in range(4):
        rec.act(np.zeros((1, 2)), np.zeros(1), np.array([paid]))
        paid = 1.0  # every step costs 1; act sees it at the next call
    out = rec.summary([{"length": 4, "cost": 4.0}])
    assert out["plans_scored"] == 2
    assert out["predicted_cost_to_go"] == pytest.approx((5.0 - 1.0) / 2)
    assert out["realised_cost_to_go"] == pytest.approx((4.0 + 2.0) / 2)
    assert out["predicted_cost_to_go_below_0"] == pytest.approx(0.5)
    assert out["cost_to_go_corr"] == pytest.approx(1.0)


# ---------------------------------------------------------------- rollouts


def test_budget_response_has_one_row_per_budget(ds, model):
    t = D.budget_response(ds, model, budgets=[0, 20], episodes=1, seed=0, planner_config=FAST, n_envs=1,
                          progress=False)
    assert list(t["budget"]) == [0.0, 20.0] and list(t["episodes"]) == [1, 1]
    assert {"reward", "cost", "normalized_reward", "normalized_cost", "within_budget"} <= set(t.columns)
    nr, nc = ds.normalized(t["reward"][1], t["cost"][1], 20.0)
    assert t["normalized_reward"][1] == pytest.approx(nr) and t["normalized_cost"][1] == pytest.approx(nc)
    assert t["within_budget"][1] == float(t["cost"][1] <= 20.0)


def test_default_budgets(ds):
    assert D.default_budgets(ds) == (0.0, 5.0, 10.0, 20.0, 40.0, 80.0)
    assert D.middle_budget(ds) == 20.0


def test_negative_budget_raises_naming_it(ds, model, capsys):
    with pytest.raises(BudgetError, match="budget -5: expected"):
        D.budget_response(ds, model, budgets=[10, -5], episodes=1, progress=False)
    with pytest.raises(BudgetError, match="budget -1: expected"):
        D.execution_stats(ds, model, budget=-1, episodes=1, progress=False)
    with pytest.raises(BudgetError, match="budget -2: expected"):
        D.beta_sweep(ds, model, budget=-2, episodes=1, progress=False)
    assert main(["diagnose", TASK, "--model", "unused.pt", "--budgets", "10", "-3"]) == 2
    assert capsys.readouterr().err == "tcdp: error: budget -3.0: expected a finite number >= 0\n"


def test_execution_stats_and_beta_sweep(ds, model):
    s = D.execution_stats(ds, model, budget=10, episodes=2, seed=0, planner_config=FAST,
                          policy_config=PolicyConfig(replan_every=2, seed=0), n_envs=2, progress=False)
    assert s["episodes"] == 2 and s["replan_every"] == 2
    assert s["transitions"] == 2 * (ds.task.max_episode_steps - 1)  # the last step of a batch is not seen
    for key in ("plan_error", "plan_error_at_replan", "plan_error_between_replans", "step_size",
                "policy_jitter", "data_jitter", "jitter_ratio"):
        assert np.isfinite(s[key]) and s[key] >= 0, key
    assert s["jitter_ratio"] == pytest.approx(s["policy_jitter"] / s["data_jitter"])
    b = D.beta_sweep(ds, model, budget=10, betas=[0.0, 2.0], episodes=1, planner_config=FAST, n_envs=1,
                     progress=False)
    assert list(b["beta"]) == [0.0, 2.0] and (b["budget"] == 10.0).all()


# ---------------------------------------------------------------- CLI and JSON


def test_cli_refuses_a_model_of_another_task(trained, capsys):
    assert main(["diagnose", "OfflineCarCircle-v0", "--model", str(trained.model_path)]) == 2
    assert "not on the requested task 'OfflineCarCircle-v0'" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not on the requested task 'OfflineCarCircle-v0'"):
        main(["diagnose", "OfflineCarCircle-v0", "--model", str(trained.model_path), "--debug"])


def test_cli_prints_tables_and_writes_json(trained, tmp_path, capsys):
    rc = main(["diagnose", TASK, "--model", str(trained.model_path), "--budgets", "10", "--betas", "0",
               "--episodes", "1", "--n-envs", "1", "--samples", "1", "--windows", "16", "--threads", "1",
               "--quiet", "--out", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    for key, (title, hint) in D.SECTIONS.items():
        assert f"== {title} ==" in text and hint in text
    body = json.loads((tmp_path / "diagnose.json").read_text())
    assert set(body) == {"meta", *D.SECTIONS}
    assert [r["budget"] for r in body["budget_response"]["rows"]] == [10.0]
    assert len(body["denoising"]["rows"]) == 10 and body["meta"]["seed"] == 0
    assert not list(tmp_path.glob(".*tmp"))
