import numpy as np
import pytest

from tcdp_lib.data.episodes import Episodes, episode_sums, reward_to_go, split_episodes


def naive_split(terminals, timeouts):
    out, start = [], 0
    for i in range(len(terminals)):
        if terminals[i] or timeouts[i]:
            out.append((start, i + 1))
            start = i + 1
    return out


def naive_to_go(values, terminals, timeouts):
    out = [0.0] * len(values)
    for start, end in naive_split(terminals, timeouts):
        for t in range(start, end):
            out[t] = sum(values[t:end])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_split_and_to_go_match_naive_loop(seed):
    rng = np.random.default_rng(seed)
    n = 200
    terminals = rng.random(n) < 0.03
    timeouts = rng.random(n) < 0.03
    values = rng.normal(size=n)
    bounds = split_episodes(terminals, timeouts)
    assert [tuple(b) for b in bounds] == naive_split(terminals, timeouts)
    expected = naive_to_go(values, terminals, timeouts)
    np.testing.assert_allclose(reward_to_go(values, bounds), expected, atol=1e-10)
    np.testing.assert_allclose(
        episode_sums(values, bounds), [sum(values[a:b]) for a, b in naive_split(terminals, timeouts)]
    )


def test_trailing_steps_without_end_flag_are_dropped():
    terminals = np.array([0, 0, 1, 0, 0])
    timeouts = np.zeros(5)
    bounds = split_episodes(terminals, timeouts)
    assert bounds.tolist() == [[0, 3]]
    data = {
        "observations": np.zeros((5, 2)), "next_observations": np.zeros((5, 2)),
        "actions": np.zeros((5, 1)), "rewards": np.arange(5.0), "costs": np.ones(5),
        "terminals": terminals, "timeouts": timeouts,
    }
    ep = Episodes.from_arrays(data)
    assert ep.num_episodes == 1 and len(ep.rewards) == 3
    assert ep.returns.tolist() == [3.0] and ep.cost_returns.tolist() == [3.0]
    assert ep.costs_to_go.tolist() == [3.0, 2.0, 1.0]


def test_timeout_and_terminal_on_same_step_end_one_episode():
    bounds = split_episodes(np.array([0, 1, 0, 1]), np.array([0, 1, 0, 0]))
    assert bounds.tolist() == [[0, 2], [2, 4]]


def test_mismatched_flags_raise():
    with pytest.raises(ValueError, match="same length"):
        split_episodes(np.zeros(3), np.zeros(4))


def test_feasible_mask_is_cost_within_budget():
    data = {
        "observations": np.zeros((4, 1)), "next_observations": np.zeros((4, 1)),
        "actions": np.zeros((4, 1)), "rewards": np.ones(4), "costs": np.array([5.0, 5.0, 10.0, 0.0]),
        "terminals": np.array([0, 1, 1, 1]), "timeouts": np.zeros(4),
    }
    ep = Episodes.from_arrays(data)
    assert ep.cost_returns.tolist() == [10.0, 10.0, 0.0]
    assert ep.feasible(10).tolist() == [True, True, True]
    assert ep.feasible(9.9).tolist() == [False, False, True]
