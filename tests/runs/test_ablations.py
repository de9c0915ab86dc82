"""The ablation study read back from result bodies: effects against TCDP, the beta grid, the one-beta
verdict and the sentences built from them."""

import numpy as np
import pytest

from tcdp_lib.runs.ablations import ablation_table, arm_effects, arm_order, beta_grid, conclusions, one_beta
from tcdp_lib.runs.benchmark import PRESETS, results_frame

TASK = "OfflineBallRun-v0"
BUDGETS = (10.0, 20.0, 40.0)


def _result(label, method, seed, w_cfg, beta, rewards, costs, task=TASK):
    """A result.json body with normalised rewards and costs per budget (costs as a share of b)."""
    return {
        "cell": {"method": method, "task": task, "seed": seed, "planning": {"w_cfg": w_cfg, "beta": beta,
                                                                           "budget_fraction": 0.5},
                 "label": label},
        "summary": [{"budget": b, "episodes": 20, "reward": 0.0, "cost": c * b, "normalized_reward": r,
                     "normalized_cost": c} for b, r, c in zip(BUDGETS, rewards, costs)],
        "train_wall_time_s": 1.0, "eval_wall_time_s": 1.0,
    }


def _study():
    out = []
    for seed in (0, 1):
        out += [
            _result("tcdp", "tcdp", seed, 1.5, 1.0, (0.60, 0.62, 0.64), (0.5, 0.6, 0.7)),
            # QN left out: less reward, the same cost
            _result("no_qn", "tcdp_no_qn", seed, 1.5, 1.0, (0.50, 0.52, 0.54), (0.5, 0.6, 0.7)),
            # CTGDA left out: unsafe at 10
            _result("no_ctgda", "tcdp_no_ctgda", seed, 1.5, 1.0, (0.61, 0.62, 0.64), (1.4, 0.6, 0.7)),
            # the budget condition left out: same reward, costlier (w_cfg 0: not in the beta grid)
            _result("energy_only", "tcdp", seed, 0.0, 1.0, (0.60, 0.62, 0.64), (0.9, 0.9, 0.9)),
            _result("cfg_only", "tcdp", seed, 1.5, 0.0, (0.55, 0.57, 0.59), (0.4, 0.5, 0.6)),
            # beta 4: more reward, unsafe at 10
            _result("beta_4", "tcdp", seed, 1.5, 4.0, (0.70, 0.72, 0.74), (1.2, 0.8, 0.9)),
        ]
    return out


def test_effects_are_measured_against_tcdp_over_the_shared_budgets():
    eff = arm_effects(results_frame(_study())).set_index("arm")
    assert eff.loc["no_qn", "reward_change"] == pytest.approx(-0.10)
    assert eff.loc["no_qn", "cost_change"] == pytest.approx(0.0)
    assert eff.loc["no_ctgda", "safe_budgets"] == 2 and eff.loc["no_ctgda", "tcdp_safe_budgets"] == 3
    assert eff.loc["energy_only", "cost_change"] == pytest.approx(0.9 - 0.6)
    assert set(eff.index) == {"no_qn", "no_ctgda", "energy_only", "cfg_only"}  # not tcdp, not the beta arms


def test_effects_carry_the_spread_of_the_seeds_changes():
    study = _study() + [
        _result("tcdp", "tcdp", 2, 1.5, 1.0, (0.60, 0.62, 0.64), (0.5, 0.6, 0.7)),
        # seed 2 without QN loses nothing: the change over seeds is -0.10, -0.10, 0.00
        _result("no_qn", "tcdp_no_qn", 2, 1.5, 1.0, (0.60, 0.62, 0.64), (0.5, 0.6, 0.7)),
    ]
    eff = arm_effects(results_frame(study)).set_index("arm")
    assert eff.loc["no_qn", "seeds"] == 3
    assert eff.loc["no_qn", "reward_change"] == pytest.approx(-0.2 / 3)
    assert eff.loc["no_qn", "reward_change_std"] == pytest.approx(np.std([-0.1, -0.1, 0.0], ddof=1))
    assert eff.loc["no_qn", "cost_change_std"] == pytest.approx(0.0)
    assert eff.loc["no_ctgda", "seeds"] == 2 and eff.loc["no_ctgda", "reward_change_std"] == pytest.approx(0.0)
    one_seed = arm_effects(results_frame([r for r in study if r["cell"]["seed"] == 0])).set_index("arm")
    assert np.isnan(one_seed.loc["no_qn", "reward_change_std"])
    said = [s for s in conclusions(results_frame(study), 1.0) if "without QN" in s][0]
    assert "reward -0.067 ± 0.058" in said and "without it, less reward" in said
    assert "the reward change is smaller than its spread over seeds" not in said
    noisy = study + [_result("tcdp", "tcdp", 3, 1.5, 1.0, (0.60, 0.62, 0.64), (0.5, 0.6, 0.7)),
                     _result("no_qn", "tcdp_no_qn", 3, 1.5, 1.0, (0.80, 0.82, 0.84), (0.5, 0.6, 0.7))]
    said = [s for s in conclusions(results_frame(noisy), 1.0) if "without QN" in s][0]
    assert "the reward change is smaller than its spread over seeds" in said


def test_the_beta_grid_is_tcdps_model_at_its_task_w_cfg():
    grid = beta_grid(results_frame(_study()))
    assert sorted(grid["beta"].unique()) == [0.0, 1.0, 4.0]  # energy_only (w_cfg 0) left out
    row = grid[(grid["beta"] == 4.0) & (grid["budget"] == 10.0)].iloc[0]
    assert row["reward"] == pytest.approx(0.70) and row["cost"] == pytest.approx(1.2) and row["seeds"] == 2


def test_one_beta_names_the_best_safe_beta_per_budget_and_the_shortfall():
    served = one_beta(beta_grid(results_frame(_study())), 1.0).set_index("budget")
    assert served.loc[10.0, "best_beta"] == 1.0  # beta 4 is unsafe at 10
    assert served.loc[20.0, "best_beta"] == 4.0 and served.loc[20.0, "shortfall"] == pytest.approx(0.10)
    assert served["safe"].all()
    unsafe = one_beta(beta_grid(results_frame(_study())), 4.0).set_index("budget")
    assert not unsafe.loc[10.0, "safe"] and unsafe.loc[20.0, "safe"]


def test_conclusions_say_what_the_numbers_say():
    frame = results_frame(_study())
    said = conclusions(frame, 1.0)
    text = "\n".join(said)
    assert "without QN" in text and "without it, less reward" in [s for s in said if "without QN" in s][0]
    assert "without it, unsafe at more budgets" in [s for s in said if "without CTGDA" in s][0]
    assert "without it, more cost" in [s for s in said if "energy only" in s][0]
    assert f"{TASK}: beta 1 is safe at every budget" in text
    assert len([s for s in said if s.startswith(TASK + ", ")]) == 4  # one per part left out, none per beta arm
    said4 = conclusions(frame, 4.0)
    assert f"{TASK}: beta 4 is unsafe at b = 10" in "\n".join(said4)


def test_arm_order_and_the_preset_arms_agree():
    cells = PRESETS["ablations"].cells()
    labels = {c["label"] for c in cells}
    assert {"tcdp", "no_ctgda", "no_qn", "cfg_only", "energy_only"} <= labels
    betas = sorted({c["planning"]["beta"] for c in cells if c["method"] == "tcdp" and c["planning"]["w_cfg"] != 0})
    assert betas == [0.0, 0.5, 1.0, 2.0, 4.0]  # the beta sweep reaches the heat map
    frame = results_frame(_study())
    assert arm_order(frame) == ["tcdp", "no_ctgda", "no_qn", "cfg_only", "energy_only", "beta_4"]
    assert not np.isnan(frame["beta"]).any()


def test_a_sweep_of_one_beta_is_not_called_a_verdict():
    frame = results_frame([r for r in _study() if r["cell"]["label"] in ("tcdp", "no_qn")])
    said = conclusions(frame, 1.0)
    assert said[-1] == f"{TASK}: only beta 1 measured so far: no beta sweep to compare."


def test_an_arm_on_fewer_seeds_is_compared_on_those_seeds_only():
    study = _study() + [_result("tcdp", "tcdp", 2, 1.5, 1.0, (0.90, 0.90, 0.90), (0.1, 0.1, 0.1))]
    eff = arm_effects(results_frame(study)).set_index("arm")
    assert eff.loc["no_qn", "seeds"] == 2
    assert eff.loc["no_qn", "reward_change"] == pytest.approx(-0.10)  # seed 2 of TCDP left out
    grid = beta_grid(results_frame(study))
    assert set(grid["seeds"]) == {2}  # TCDP's seed 2 has no other beta: out of the sweep
    assert grid[(grid["beta"] == 1.0) & (grid["budget"] == 10.0)]["reward"].item() == pytest.approx(0.60)
