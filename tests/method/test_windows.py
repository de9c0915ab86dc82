import numpy as np
import pytest
import torch

from tcdp_lib.method.windows import Normalizer, Windows


def naive_window(ep, flat_t, horizon):
    """Reference: walk the episode containing flat_t step by step."""
    e = int(np.flatnonzero((ep.bounds[:, 0] <= flat_t) & (flat_t < ep.bounds[:, 1]))[0])
    start, end = ep.bounds[e]
    states, state_mask, action_mask = [], [], []
    for k in range(horizon):
        p = flat_t + k
        states.append(ep.observations[p] if p < end else ep.next_observations[end - 1])
        state_mask.append(p <= end)
        action_mask.append(p < end)
    return e, np.array(states), np.array(state_mask), np.array(action_mask)


@pytest.mark.parametrize("horizon", [2, 4, 16])
def test_gather_matches_naive_loop(episodes, horizon):
    w = Windows.from_episodes(episodes, horizon)
    assert len(w) == len(episodes.observations)  # one window per step
    wb = w.gather(np.arange(len(w)))
    for i in range(len(w)):
        e, states, smask, amask = naive_window(episodes, i, horizon)
        assert wb.episode[i] == e
        np.testing.assert_array_equal(wb.states[i], states)
        np.testing.assert_array_equal(wb.state_mask[i], smask)
        np.testing.assert_array_equal(wb.action_mask[i], amask)
        np.testing.assert_array_equal(wb.actions[i][amask], episodes.actions[i : i + amask.sum()])
        assert np.all(wb.actions[i][~amask] == 0)
        assert wb.cost_to_go[i] == episodes.costs_to_go[i]
        assert wb.episode_cost[i] == episodes.cost_returns[e]
        assert wb.episode_return[i] == episodes.returns[e]
        assert wb.reward_to_go[i] == episodes.rewards_to_go[i]


def test_padding_repeats_final_next_observation(episodes):
    w = Windows.from_episodes(episodes, 8)
    start, end = episodes.bounds[0]
    wb = w.gather(np.array([end - 1]))  # last step of episode 0
    final = episodes.next_observations[end - 1]
    np.testing.assert_array_equal(wb.states[0, 0], episodes.observations[end - 1])
    assert np.all(wb.states[0, 1:] == final)
    assert wb.state_mask[0].tolist() == [True, True] + [False] * 6  # s_end is real, then padding
    assert wb.action_mask[0].tolist() == [True] + [False] * 7


def test_step_and_bad_input(episodes):
    w = Windows.from_episodes(episodes, 4)
    assert np.all(w.step >= 0) and np.all(w.step < episodes.lengths[w.episode])
    with pytest.raises(ValueError, match="out of range"):
        w.gather(np.array([len(w)]))
    with pytest.raises(ValueError, match="integer"):
        w.gather(np.array([0.5]))
    with pytest.raises(ValueError, match="horizon"):
        Windows.from_episodes(episodes, 1)


def test_normalizer_roundtrip_and_constant_dims():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(500, 3))
    x[:, 2] = 7.0  # constant dimension
    norm = Normalizer.fit(x)
    z = norm.normalize(x)
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0), 1, atol=1e-5)
    assert norm.std[2] == 1.0 and np.all(z[:, 2] == 0)  # constant dims are only centred
    np.testing.assert_allclose(norm.unnormalize(z), x, rtol=1e-5, atol=1e-5)
    zt = norm.normalize(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-5)
    back = Normalizer.from_dict({k: v.tolist() for k, v in norm.to_dict().items()})
    np.testing.assert_array_equal(back.mean, norm.mean)
    with pytest.raises(ValueError, match="std"):
        Normalizer(np.zeros(2), np.array([1.0, 0.0]))
