import numpy as np
import pytest

from tcdp_lib.method.qn import mid_rank_normalize, quantile_normalize, quantile_normalize_pairs


def test_uniform_on_the_feasible_set_and_infeasible_nan():
    rng = np.random.default_rng(0)
    returns = rng.normal(size=40)
    costs = rng.uniform(0, 10, size=40)
    b = 6.0
    u = quantile_normalize(returns, costs, b)
    feasible = costs <= b
    assert np.all(np.isnan(u[~feasible]))
    np.testing.assert_allclose(np.sort(u[feasible]), np.linspace(0, 1, feasible.sum()))


def test_monotone_in_return():
    rng = np.random.default_rng(1)
    returns, costs = rng.normal(size=30), np.zeros(30)
    u = quantile_normalize(returns, costs, 0.0)
    order = np.argsort(returns)
    assert np.all(np.diff(u[order]) > 0)


def test_ties_equal_and_exact_edges():
    returns = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 5.0, 5.0])
    u = quantile_normalize(returns, np.zeros(8), 1.0)
    assert u[0] == u[1] == 0.0  # min feasible (tied) gets exactly 0
    assert u[6] == u[7] == 1.0  # max feasible (tied) gets exactly 1
    assert u[3] == u[4] == u[5]
    assert 0 < u[2] < u[3] < 1
    # naive reference: average 0-based rank, rescaled so the tied edges sit at 0 and 1
    ranks = np.array([np.mean(np.flatnonzero(np.sort(returns) == r)) for r in returns])
    np.testing.assert_allclose(u, (ranks - ranks.min()) / (ranks.max() - ranks.min()))


def test_degenerate_cases():
    assert quantile_normalize([3.0], [1.0], 1.0)[0] == 0.5  # one feasible episode
    np.testing.assert_array_equal(quantile_normalize([2.0, 2.0, 9.0], [0.0, 0.0, 5.0], 1.0)[:2], [0.5, 0.5])
    assert np.all(np.isnan(quantile_normalize([1.0, 2.0], [3.0, 4.0], 1.0)))  # nothing feasible
    # values between reference points land between their neighbours; outside clip to the edges
    np.testing.assert_allclose(mid_rank_normalize([0.0, 1.5, 9.0], [1.0, 2.0, 3.0]), [0.0, 0.25, 1.0])
    with pytest.raises(ValueError, match="same length"):
        quantile_normalize([1.0, 2.0], [0.0], 1.0)
    with pytest.raises(ValueError, match="finite"):
        quantile_normalize([np.nan], [0.0], 1.0)


def test_pairs_match_per_budget_reference():
    rng = np.random.default_rng(2)
    returns = np.round(rng.normal(size=25), 1)  # rounding makes ties
    costs = np.round(rng.uniform(0, 10, size=25))
    episode = rng.integers(0, 25, size=300)
    budgets = rng.uniform(-1, 11, size=300)
    got = quantile_normalize_pairs(returns, costs, episode, budgets, chunk_size=64)
    want = np.array([quantile_normalize(returns, costs, b)[e] for e, b in zip(episode, budgets)])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert ok.sum() > 100
    np.testing.assert_allclose(got[ok], want[ok], atol=1e-12)
    assert np.all((got[ok] >= 0) & (got[ok] <= 1))
