"""CDT's frontier, target return and return relabelling: pure functions against hand-computed
cases and naive loops."""

import numpy as np
import pytest

from tcdp_lib.baselines import pareto_frontier, relabel_targets, target_return
from tcdp_lib.baselines.cdt import sample_frontier_targets

# episode:      0   1   2   3   4   5
R = np.array([10, 20, 15, 30, 20, 5], dtype=float)
C = np.array([0, 5, 3, 12, 5, 1], dtype=float)


def test_frontier_hand_computed():
    f = pareto_frontier(R, C)
    # (C, R) sorted: (0,10) (1,5) (3,15) (5,20)x2 (12,30); episode 5 is dominated, 4 ties 1 (lower index kept)
    np.testing.assert_array_equal(f.costs, [0, 3, 5, 12])
    np.testing.assert_array_equal(f.returns, [10, 15, 20, 30])
    np.testing.assert_array_equal(f.episode, [0, 2, 1, 3])


def test_best_return_matches_naive_max():
    rng = np.random.default_rng(0)
    r, c = rng.normal(size=40), rng.integers(0, 15, size=40).astype(float)
    f = pareto_frontier(r, c)
    for kappa in np.concatenate([np.unique(c), rng.uniform(c.min(), c.max() + 3, size=30)]):
        feasible = c <= kappa
        assert f.best_return(kappa) == r[feasible].max()
        e = f.best_episode(kappa)
        assert c[e] <= kappa and r[e] == r[feasible].max()
        assert c[e] == c[feasible & (r == r[e])].min()  # the cheapest among equal returns


@pytest.mark.parametrize("rho, kappa, episode, dr, dc", [
    (25.0, 6.0, 1, 5.0, 1.0),    # above the frontier at 6 (r_max = 20): best feasible is episode 1
    (40.0, 12.0, 3, 10.0, 0.0),  # at exactly C = 12 episode 3 is feasible
    (12.0, 4.0, 2, -3.0, 1.0),   # a target below the frontier maps to the same episode
    (30.0, 2.9, 0, 20.0, 2.9),   # just under cost 3: only episodes 0 and 5 are feasible, 0 is better
    (10.0, 0.0, 0, 0.0, 0.0),    # the target is an episode: no shift
])
def test_relabel_hand_computed(rho, kappa, episode, dr, dc):
    rel = relabel_targets(R, C, [rho], [kappa])
    assert rel.episode.tolist() == [episode]
    np.testing.assert_allclose(rel.return_shift, [dr])
    np.testing.assert_allclose(rel.cost_shift, [dc])
    # the relabelled labels start at the target
    assert R[episode] + rel.return_shift[0] == pytest.approx(rho)
    assert C[episode] + rel.cost_shift[0] == pytest.approx(kappa)


def test_relabel_vectorised_equals_one_by_one():
    rho, kappa = np.array([25.0, 40.0, 12.0]), np.array([6.0, 12.0, 4.0])
    rel = relabel_targets(R, C, rho, kappa)
    for i in range(3):
        one = relabel_targets(R, C, rho[i:i + 1], kappa[i:i + 1])
        assert one.episode[0] == rel.episode[i] and one.return_shift[0] == rel.return_shift[i]


def test_relabel_below_every_cost_names_budget_and_smallest_cost():
    with pytest.raises(ValueError, match=r"budget -1.*smallest episode cost in the data is 0"):
        relabel_targets(R, C, [10.0], [-1.0])
    with pytest.raises(ValueError, match="equal length"):
        relabel_targets(R, C, [10.0, 1.0], [1.0])


def test_sampled_targets_lie_on_or_above_the_frontier():
    f = pareto_frontier(R, C)
    rho, kappa = sample_frontier_targets(np.random.default_rng(0), f, R.max(), 500)
    assert np.all((kappa >= C.min()) & (kappa <= C.max()))
    assert np.all(rho >= f.best_return(kappa)) and np.all(rho <= R.max())
    assert np.any(rho > f.best_return(kappa))  # strictly above for most draws
    cost_shift = relabel_targets(R, C, rho, kappa).cost_shift
    assert np.all(cost_shift >= 0)  # the answering episode never spends more than the target


def test_target_return_from_data(episodes):
    # episode costs [3, 2, 2, 10, 1, 2]
    f = pareto_frontier(episodes.returns, episodes.cost_returns)
    for b in [1.0, 1.5, 2.0, 3.0, 9.0, 10.0, 50.0]:
        naive = max(R_e for R_e, C_e in zip(episodes.returns, episodes.cost_returns) if C_e <= b)
        assert target_return(episodes, b) == naive
        assert f.best_return(b) == naive
    with pytest.raises(ValueError, match=r"budget 0\.5.*smallest episode cost in the data is 1\b"):
        target_return(episodes, 0.5)
