"""The data's feasible frontier ``r_max(b) = max{R_e : C_e <= b}`` (``tcdp_lib.data.frontier``)
against brute force, with ties and budgets below every cost."""

import ast
from pathlib import Path

import numpy as np
import pytest

from tcdp_lib.data.episodes import Episodes
from tcdp_lib.data.frontier import (
    Frontier,
    best_return_table,
    episodes_frontier,
    pareto_frontier,
    pareto_indices,
)


@pytest.fixture
def episodes():
    """Six episodes of lengths 3..8 with random rewards and 0/1 step costs."""
    rng = np.random.default_rng(0)
    lengths = [3, 5, 8, 4, 6, 7]
    n = sum(lengths)
    timeouts = np.zeros(n)
    timeouts[np.cumsum(lengths) - 1] = 1
    return Episodes.from_arrays(dict(
        observations=rng.normal(size=(n, 2)).astype(np.float32),
        next_observations=rng.normal(size=(n, 2)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
        rewards=rng.normal(size=n), costs=(rng.random(n) < 0.4).astype(np.float64),
        terminals=np.zeros(n), timeouts=timeouts,
    ))


def brute_r_max(r, c, b):
    feasible = r[c <= b]
    return feasible.max() if feasible.size else np.nan


def random_data(seed, n=60, levels=12):
    rng = np.random.default_rng(seed)
    # integer costs and rounded returns: many ties in cost, in return and in both
    return np.round(rng.normal(size=n) * 3), rng.integers(0, levels, size=n).astype(float)


@pytest.mark.parametrize("seed", range(5))
def test_r_max_matches_brute_force_at_random_budgets(seed):
    r, c = random_data(seed)
    f = pareto_frontier(r, c)
    rng = np.random.default_rng(100 + seed)
    budgets = np.concatenate([np.unique(c), rng.uniform(c.min(), c.max() + 3, size=200)])
    expected = np.array([brute_r_max(r, c, b) for b in budgets])
    np.testing.assert_array_equal(f.r_max(budgets), expected)
    np.testing.assert_array_equal(f.best_return(budgets), expected)
    for b in budgets[:40]:
        assert f.r_max(b) == brute_r_max(r, c, b)  # scalars too
        e = int(f.best_episode(b))
        assert c[e] <= b and r[e] == brute_r_max(r, c, b)


def test_r_max_keeps_the_shape_of_the_budgets():
    r, c = random_data(0)
    b = np.linspace(c.min(), c.max(), 12).reshape(3, 4)
    assert pareto_frontier(r, c).r_max(b).shape == (3, 4)
    assert pareto_frontier(r, c).r_max(5.0).shape == ()


def test_points_are_strictly_increasing_and_are_the_breakpoints():
    r, c = random_data(3)
    f = pareto_frontier(r, c)
    assert np.all(np.diff(f.costs) > 0) and np.all(np.diff(f.returns) > 0)
    np.testing.assert_array_equal(r[f.episode], f.returns)
    np.testing.assert_array_equal(c[f.episode], f.costs)
    # every breakpoint raises r_max; just below it r_max is smaller
    for cost, ret in zip(f.costs[1:], f.returns[1:]):
        assert brute_r_max(r, c, cost) == ret
        assert brute_r_max(r, c, np.nextafter(cost, -np.inf)) < ret


def test_ties_cheapest_then_lowest_index():
    #             0    1    2    3    4    5
    r = np.array([5.0, 7.0, 7.0, 7.0, 9.0, 9.0])
    c = np.array([1.0, 3.0, 2.0, 2.0, 4.0, 4.0])
    f = pareto_frontier(r, c)
    # episode 1 (cost 3) ties 2 and 3 (cost 2) in return: the cheaper win, lower index first
    np.testing.assert_array_equal(f.costs, [1, 2, 4])
    np.testing.assert_array_equal(f.returns, [5, 7, 9])
    np.testing.assert_array_equal(f.episode, [0, 2, 4])
    assert f.best_episode(3.5) == 2 and f.r_max(3.5) == 7
    np.testing.assert_array_equal(pareto_indices(c, r), [0, 2, 4])


def test_equal_returns_at_a_higher_cost_are_not_points():
    f = pareto_frontier([3.0, 3.0, 3.0], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(f.episode, [0])
    np.testing.assert_array_equal(f.r_max([0.0, 1.0, 10.0]), [3, 3, 3])


def test_below_every_cost_raises_naming_budget_and_smallest_cost():
    r, c = np.array([4.0, 6.0]), np.array([2.5, 7.0])
    f = pareto_frontier(r, c)
    msg = r"no episode is feasible at budget 1\.5: the smallest episode cost in the data is 2\.5"
    with pytest.raises(ValueError, match=msg):
        f.r_max(1.5)
    with pytest.raises(ValueError, match=msg):
        f.r_max([3.0, 1.5, 8.0])  # one infeasible budget is enough
    with pytest.raises(ValueError, match=msg):
        f.best_return(1.5)
    with pytest.raises(ValueError, match=msg):
        f.best_episode(1.5)
    assert f.r_max(2.5) == 4.0  # C <= b: a budget equal to the cost is feasible


def test_below_every_cost_gives_nan_on_request():
    f = pareto_frontier([4.0, 6.0], [2.5, 7.0])
    np.testing.assert_array_equal(f.r_max([0.0, 2.5, 6.9, 7.0, 100.0], infeasible="nan"), [np.nan, 4, 4, 6, 6])
    with pytest.raises(ValueError, match="infeasible must be one of"):
        f.r_max(3.0, infeasible="zero")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_budgets_and_data_raise(bad):
    f = pareto_frontier([1.0], [0.0])
    with pytest.raises(ValueError, match="finite"):
        f.r_max(bad)
    with pytest.raises(ValueError, match="finite"):
        pareto_frontier([1.0, bad], [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        pareto_frontier([1.0, 2.0], [0.0, bad])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="non-empty and of equal length"):
        pareto_frontier([], [])
    with pytest.raises(ValueError, match="non-empty and of equal length"):
        pareto_frontier([1.0, 2.0], [1.0])


@pytest.mark.parametrize("seed", range(3))
def test_pareto_indices_keep_r_max_at_every_budget(seed):
    r, c = random_data(seed)
    idx = pareto_indices(c, r)
    assert np.all(np.diff(idx) > 0) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.sort(pareto_frontier(r, c).episode))
    for b in np.arange(-1.0, 14.0, 0.5):
        np.testing.assert_array_equal(brute_r_max(r[idx], c[idx], b), brute_r_max(r, c, b))
    # brute force: an episode is kept iff no earlier (cost, -return, index) episode reaches its return
    for e in range(len(r)):
        beaten = any((c[j], -r[j], j) < (c[e], -r[e], e) and r[j] >= r[e] for j in range(len(r)))
        assert (e in idx) == (not beaten)
    assert pareto_indices(np.zeros(0), np.zeros(0)).shape == (0,)


def test_pareto_indices_is_the_generators():
    from tcdp_lib.data import generate

    assert generate.pareto_indices is pareto_indices
    assert generate.FRONTIERS["pareto"] is pareto_indices


@pytest.mark.parametrize("seed", range(3))
def test_best_return_table(seed):
    r, c = random_data(seed)
    costs, best = best_return_table(r, c)
    np.testing.assert_array_equal(costs, np.unique(c))
    np.testing.assert_array_equal(best, [brute_r_max(r, c, b) for b in costs])
    # the table's lookup (last cost <= b) is r_max at every feasible budget
    f = pareto_frontier(r, c)
    for b in np.linspace(c.min(), c.max() + 2, 50):
        assert best[np.searchsorted(costs, b, side="right") - 1] == f.r_max(b)


def test_episodes_frontier_and_old_homes(episodes):
    f = episodes_frontier(episodes)
    g = pareto_frontier(episodes.returns, episodes.cost_returns)
    for name in ("costs", "returns", "episode"):
        np.testing.assert_array_equal(getattr(f, name), getattr(g, name))
    from tcdp_lib.baselines import cdt, pareto_frontier as from_baselines

    assert cdt.Frontier is Frontier and cdt.pareto_frontier is pareto_frontier and from_baselines is pareto_frontier


def test_card_uses_the_frontier(episodes):
    from tcdp_lib.data.card import budget_figures, frontier

    r, c = episodes.returns, episodes.cost_returns
    grid, best = frontier(episodes, np.array([c.min() - 1, c.min(), c.max()]))
    np.testing.assert_array_equal(best, [np.nan, brute_r_max(r, c, c.min()), r.max()])
    figs = budget_figures(episodes, [c.min() - 1, c.max()])
    assert figs[0].best_feasible_reward is None and figs[0].feasible_episodes == 0
    assert figs[1].best_feasible_reward == r.max() and figs[1].feasible_episodes == len(r)


def test_the_data_layer_imports_only_numpy():
    import tcdp_lib.data.frontier as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported <= {"numpy", "__future__", "dataclasses"}, imported
