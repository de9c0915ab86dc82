import numpy as np
import pytest

from tcdp_lib.method.ctgda import BudgetPrior, cost_balanced_cdf, draw_pairs, relabel, remaining_budget, sample_pairs
from tcdp_lib.method.windows import Windows


def test_remaining_budget_closed_form():
    # an episode of cost 5 that spent 3 before t (C_t = 2), run under b = 8, has 8 - 3 = 5 left
    assert remaining_budget(2.0, 5.0, 8.0) == 5.0
    assert remaining_budget(5.0, 5.0, 5.0) == 5.0  # at t = 0 and b = C_0: b_t = C_0


def test_relabel_invariants(episodes):
    w = Windows.from_episodes(episodes, 4)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(w), 5000)
    budgets = rng.uniform(0, 1.5 * episodes.cost_returns.max(), 5000)
    b_t, keep = relabel(w.cost_to_go[idx], w.episode_cost[idx], budgets)
    assert keep.any() and (~keep).any()
    np.testing.assert_array_equal(keep, w.episode_cost[idx] <= budgets)
    assert np.all(b_t[keep] >= w.cost_to_go[idx][keep])
    assert np.all(w.cost_to_go[idx] >= 0)
    # the remaining budget never exceeds the budget (cost already spent is >= 0)
    assert np.all(b_t[keep] <= budgets[keep] + 1e-12)


def test_sample_pairs_never_keeps_infeasible(episodes):
    w = Windows.from_episodes(episodes, 4)
    prior = BudgetPrior.from_costs(episodes.cost_returns)
    rng = np.random.default_rng(2)
    pairs = sample_pairs(rng, rng.integers(0, len(w), 4000), w.cost_to_go, w.episode_cost, prior)
    assert 0 < len(pairs) < pairs.n_drawn
    assert np.all(w.episode_cost[pairs.window_idx] <= pairs.budget)
    assert np.all(pairs.remaining_budget >= w.cost_to_go[pairs.window_idx])
    assert np.all((pairs.budget >= prior.low) & (pairs.budget <= prior.high))


def test_kept_episodes_at_budget_are_exactly_the_feasible_set(episodes):
    w = Windows.from_episodes(episodes, 4)
    costs = episodes.cost_returns
    b = float(np.median(costs))
    assert 0 < (costs <= b).sum() < len(costs)
    rng = np.random.default_rng(3)
    pairs = sample_pairs(rng, rng.integers(0, len(w), 20000), w.cost_to_go, w.episode_cost, BudgetPrior(b, b))
    kept = set(w.episode[pairs.window_idx].tolist())
    assert kept == set(np.flatnonzero(costs <= b).tolist())
    # and kept windows are distributed as the data restricted to the feasible set
    feasible_windows = np.flatnonzero(w.episode_cost <= b)
    share = np.bincount(w.episode[pairs.window_idx], minlength=len(costs)) / len(pairs)
    expected = np.bincount(w.episode[feasible_windows], minlength=len(costs)) / len(feasible_windows)
    np.testing.assert_allclose(share, expected, atol=0.02)


def test_draw_pairs_exact_count_and_budget_distribution(episodes):
    w = Windows.from_episodes(episodes, 4)
    prior = BudgetPrior.from_costs(episodes.cost_returns)
    pairs = draw_pairs(np.random.default_rng(4), w.cost_to_go, w.episode_cost, prior, 3000)
    assert len(pairs) == 3000 and pairs.n_drawn >= 3000
    assert np.all(w.episode_cost[pairs.window_idx] <= pairs.budget)
    # rejection on the joint: given the window's episode, b ~ U[C_0, b_max]
    e = int(np.argmin(episodes.cost_returns))
    sel = w.episode[pairs.window_idx] == e
    c0 = episodes.cost_returns[e]
    assert abs(pairs.budget[sel].mean() - (c0 + prior.high) / 2) < 0.1 * (prior.high - c0)


def test_prior_and_draw_errors(episodes):
    with pytest.raises(ValueError, match="low"):
        BudgetPrior(2.0, 1.0)
    with pytest.raises(ValueError, match="low"):
        BudgetPrior(-1.0, 1.0)
    with pytest.raises(ValueError, match="no episode is feasible"):
        draw_pairs(np.random.default_rng(0), np.array([1.0, 3.0]), np.array([3.0, 3.0]), BudgetPrior(0.0, 2.0), 10)
    np.testing.assert_allclose(BudgetPrior(0, 10).prob_feasible([0, 5, 10, 12]), [1, 0.5, 0, 0])


def test_power_prior_draws_more_small_budgets_and_its_acceptance_matches():
    rng = np.random.default_rng(0)
    uniform, shaped = BudgetPrior(0.0, 80.0), BudgetPrior(0.0, 80.0, power=2.0)
    b_u, b_s = uniform.sample(rng, 200_000), shaped.sample(rng, 200_000)
    assert (b_s >= 0).all() and (b_s <= 80).all()
    assert np.mean(b_u <= 10) == pytest.approx(1 / 8, abs=0.01)
    assert np.mean(b_s <= 10) == pytest.approx(np.sqrt(1 / 8), abs=0.01)  # P(80 u^2 <= 10)
    costs = np.array([0.0, 10.0, 40.0, 80.0, 100.0])
    empirical = [(b_s >= c).mean() for c in costs]
    np.testing.assert_allclose(shaped.prob_feasible(costs), empirical, atol=0.01)
    with pytest.raises(ValueError, match="power"):
        BudgetPrior(0.0, 1.0, power=0.0)


def test_cost_balanced_windows_even_out_episode_costs():
    # 90 windows of cheap episodes (cost 1), 900 of costly ones (cost 50): balancing draws both alike
    episode_cost = np.r_[np.full(90, 1.0), np.full(900, 50.0)]
    assert cost_balanced_cdf(episode_cost, alpha=0.0) is None
    cdf = cost_balanced_cdf(episode_cost, alpha=1.0)
    assert cdf.shape == episode_cost.shape and cdf[-1] == 1.0 and np.all(np.diff(cdf) >= 0)
    cost_to_go = episode_cost.copy()
    pairs = draw_pairs(np.random.default_rng(0), cost_to_go, episode_cost, BudgetPrior(60.0, 60.0), 20_000, window_cdf=cdf)
    assert np.mean(episode_cost[pairs.window_idx] == 1.0) == pytest.approx(0.5, abs=0.02)
    uniform = draw_pairs(np.random.default_rng(0), cost_to_go, episode_cost, BudgetPrior(60.0, 60.0), 20_000)
    assert np.mean(episode_cost[uniform.window_idx] == 1.0) == pytest.approx(90 / 990, abs=0.02)
    assert np.all(episode_cost[pairs.window_idx] <= pairs.budget)  # still CTGDA's feasible pairs
