"""TREBI and CDD as guidance variants of the shared model: their energy, conditioning and labels."""

import dataclasses

import numpy as np
import pytest
import torch

from tcdp_lib.method.condition import BudgetEncoder
from tcdp_lib.method.ctgda import hindsight_pairs
from tcdp_lib.method.guidance import RewardCostEnergy, reward_cost_energy
from tcdp_lib.method.model import TCDP, TCDPConfig, best_return_frontier, make_batch
from tcdp_lib.method.variants import VARIANTS, Variant, get_variant
from tcdp_lib.method.windows import Windows
from tcdp_lib.planner.planner import Planner, PlannerConfig
from tcdp_lib.runs.train import SMOKE_MODEL


def tiny(episodes, variant):
    return TCDP.from_episodes(episodes, dataclasses.replace(SMOKE_MODEL, variant=variant)).eval()


def batch_of(episodes, model, n=6, seed=0):
    windows = Windows.from_episodes(episodes, model.horizon)
    pairs = hindsight_pairs(np.random.default_rng(seed), windows.cost_to_go, windows.episode_cost, n)
    return make_batch(windows, pairs)


def test_registry_names_and_errors():
    assert {"tcdp", "trebi", "cdd"} <= set(VARIANTS)
    assert get_variant("trebi").condition.name == "none" and get_variant("trebi").energy.name == "reward_cost"
    assert get_variant("cdd").condition.name == "budget_return" and not get_variant("cdd").uses_energy
    with pytest.raises(ValueError, match="valid choices"):
        get_variant("nope")
    with pytest.raises(ValueError, match="energy must be a Energy strategy"):
        Variant("x", get_variant("tcdp").condition, get_variant("tcdp").pairs, "bogus", "")
    with pytest.raises(ValueError, match="unknown diffusion variant"):
        TCDPConfig(variant="nope")


def test_reward_cost_energy_penalises_only_cost_beyond_the_budget():
    reward = torch.tensor([1.0, 1.0, 1.0, 0.5])
    cost = torch.tensor([0.2, 0.5, 0.8, 0.8])
    budget = torch.tensor([0.5, 0.5, 0.5, 1.0])
    out = reward_cost_energy(reward, cost, budget, cost_weight=10.0)
    # under the budget: the reward alone; over it: reward - n * excess
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, 1.0 - 10 * 0.3, 0.5]))


def test_reward_cost_energy_module_combines_its_two_models():
    e = RewardCostEnergy(horizon=4, obs_dim=3, budget_scale=20.0, hidden=(8,), cost_weight=5.0)
    x, t = torch.randn(7, 4, 3), torch.randint(0, 10, (7,))
    b = torch.linspace(0, 40, 7)
    expected = e.reward(x, t) - 5.0 * torch.relu(e.cost(x, t) - b / 20.0)
    torch.testing.assert_close(e(x, t, b), expected)
    torch.testing.assert_close(e.weighted(0.0)(x, t, b), e.reward(x, t))  # no penalty: reward only
    g = e.weighted(5.0).gradients(x, t, b)
    assert g.grad.shape == x.shape and torch.isfinite(g.grad).all()
    with pytest.raises(ValueError, match="cost_weight"):
        e.weighted(-1.0)


def test_hindsight_pairs_label_each_window_with_its_own_cost():
    rng = np.random.default_rng(0)
    ctg = np.array([5.0, 3.0, 0.0, 7.0])
    ep_cost = np.array([5.0, 5.0, 5.0, 7.0])
    p = hindsight_pairs(rng, ctg, ep_cost, 50)
    np.testing.assert_array_equal(p.remaining_budget, ctg[p.window_idx])
    np.testing.assert_array_equal(p.budget, ep_cost[p.window_idx])
    assert len(p) == 50 and p.n_drawn == 50


def test_best_return_frontier_matches_a_loop():
    rng = np.random.default_rng(1)
    returns, costs = rng.normal(size=40), rng.integers(0, 10, 40).astype(float)
    c, best = best_return_frontier(returns, costs)
    assert np.all(np.diff(c) > 0) and np.all(np.diff(best) >= 0)
    for b in np.arange(-1, 11, 0.5):
        feasible = returns[costs <= b]
        i = np.searchsorted(c, b, side="right") - 1
        if feasible.size:
            assert best[i] == feasible.max()


def test_cdd_conditions_on_budget_and_return(episodes):
    model = tiny(episodes, "cdd")
    batch = batch_of(episodes, model)
    cond = model.condition(batch)
    more = dataclasses.replace(batch, reward_to_go=batch.reward_to_go + 5.0)
    assert not torch.allclose(model.condition(more), cond)  # the return is a condition
    torch.testing.assert_close(model.loss_energy(batch), torch.tensor(0.0))  # no energy model
    # r_max(b): the best return of an episode costing at most b
    r, c = episodes.returns, episodes.cost_returns
    for b in sorted(c):
        assert model.target_return(torch.tensor([b])).item() == pytest.approx(r[c <= b].max(), rel=1e-5)


def test_tcdp_ignores_the_return_and_trebi_ignores_the_budget(episodes):
    tcdp, trebi = tiny(episodes, "tcdp"), tiny(episodes, "trebi")
    batch = batch_of(episodes, tcdp)
    more_return = dataclasses.replace(batch, reward_to_go=batch.reward_to_go + 5.0)
    torch.testing.assert_close(tcdp.condition(more_return), tcdp.condition(batch))
    other_budget = dataclasses.replace(batch, remaining_budget=batch.remaining_budget + 3.0)
    assert not torch.allclose(tcdp.condition(other_budget), tcdp.condition(batch))
    # TREBI samples an unconditional prior: the null embedding (with the steps left) whatever the budget
    null = trebi.encoder.null(len(batch.target), batch.steps_left)
    torch.testing.assert_close(trebi.condition(other_budget), null)
    torch.testing.assert_close(trebi.condition(batch), null)


def test_trebi_energy_targets_are_scaled_reward_and_cost_to_go(episodes):
    model = tiny(episodes, "trebi")
    batch = batch_of(episodes, model)
    r, c = model.energy_targets(batch)
    torch.testing.assert_close(r, batch.reward_to_go / model.config.budget.return_scale)
    torch.testing.assert_close(c, batch.cost_to_go / model.config.budget.budget_scale)
    assert torch.isfinite(model.loss_energy(batch))


def test_planner_switches_off_what_a_variant_lacks(episodes):
    trebi, cdd = tiny(episodes, "trebi"), tiny(episodes, "cdd")
    assert Planner(trebi).w_cfg == 0.0 and Planner(trebi).beta == trebi.config.guidance.beta
    assert Planner(cdd).beta == 0.0 and Planner(cdd).w_cfg == cdd.config.guidance.w_cfg
    obs = episodes.observations[:3]
    for model in (trebi, cdd):
        plan = Planner(model, PlannerConfig(n_samples=2)).plan(obs, np.array([0.0, 5.0, 50.0]), generator=0)
        assert plan.states.shape == (3, 2, model.horizon, episodes.obs_dim)
        assert np.all(np.isfinite(plan.actions))
    with pytest.raises(ValueError, match="target_return"):
        Planner(cdd).plan(obs, np.zeros(3), target_return=np.zeros(2))


def test_encoder_return_condition_needs_a_target():
    enc = BudgetEncoder(16, budget_scale=10.0, p_uncond=0.0, return_scale=100.0).eval()
    with pytest.raises(ValueError, match="target return"):
        enc(torch.ones(2))
    a = enc(torch.ones(2), target_return=torch.tensor([0.0, 100.0]))
    assert not torch.allclose(a[0], a[1])


def test_pinball_loss_is_minimised_at_the_quantile():
    from tcdp_lib.method.diffusion import pinball_loss

    y = torch.arange(100, dtype=torch.float32)  # 0 .. 99
    grid = torch.linspace(0, 99, 991)
    losses = torch.stack([pinball_loss(torch.full_like(y, g), y, 0.9) for g in grid])
    assert 88.5 <= grid[losses.argmin()] <= 90.5  # the 90th percentile
    assert pinball_loss(torch.zeros(3), torch.ones(3), 0.9) == pytest.approx(0.9)
    assert pinball_loss(torch.ones(3), torch.zeros(3), 0.9) == pytest.approx(0.1)


def test_the_cost_head_trains_on_the_configured_quantile(episodes):
    from tcdp_lib.method.diffusion import masked_mse, pinball_loss
    from tcdp_lib.method.model import EnergyConfig

    mean = tiny(episodes, "tcdp")
    q = TCDP.from_episodes(episodes, dataclasses.replace(SMOKE_MODEL, energy=dataclasses.replace(
        SMOKE_MODEL.energy, cost_quantile=0.97))).eval()
    q.load_state_dict(mean.state_dict())
    batch = batch_of(episodes, mean)
    x_k = torch.randn(len(batch.target), mean.horizon, mean.x_dim)
    k = torch.full((len(batch.target),), 3)
    value, cost = mean.energy.heads(x_k, k, batch.remaining_budget, batch.steps_left)
    value_t, cost_t = mean.energy_targets(batch)
    ok = torch.isfinite(value_t)
    base = masked_mse(value, torch.nan_to_num(value_t), ok)
    loss = lambda m: m.variant.energy.loss(m.energy, x_k, k, batch, m.config)  # noqa: E731
    torch.testing.assert_close(loss(mean), base + masked_mse(cost, cost_t, torch.ones_like(ok)))
    torch.testing.assert_close(loss(q), base + pinball_loss(cost, cost_t, 0.97))
    with pytest.raises(ValueError, match="cost_quantile"):
        EnergyConfig(cost_quantile=1.0)
