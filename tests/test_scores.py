import numpy as np
import pytest

from tcdp_lib.data.scores import normalized_cost, normalized_reward, normalized_scores


def test_normalized_reward_maps_reference_range_to_unit_interval():
    assert normalized_reward(10.0, 10.0, 30.0) == 0.0
    assert normalized_reward(30.0, 10.0, 30.0) == 1.0
    assert normalized_reward(20.0, 10.0, 30.0) == 0.5
    assert normalized_reward(40.0, 10.0, 30.0) == 1.5  # not clipped, as in DSRL


def test_normalized_cost_uses_epsilon_only_at_zero_budget():
    assert normalized_cost(20.0, 20.0) == 1.0
    assert normalized_cost(10.0, 40.0) == 0.25
    assert normalized_cost(0.0, 0.0) == 1.0  # (0 + 1) / (0 + 1)
    assert normalized_cost(3.0, 0.0) == 4.0


def test_matches_dsrl_definition():
    from tcdp_lib.data import compat

    compat.apply()
    from dsrl.offline_env import OfflineEnv

    ref = OfflineEnv(max_episode_reward=500.0, min_episode_reward=-20.0)
    for budget in (0.0, 10.0, 40.0):
        ref.set_target_cost(budget)
        for r, c in [(100.0, 3.0), (-20.0, 0.0), (600.0, 55.0)]:
            np.testing.assert_allclose(
                normalized_scores(r, c, budget, -20.0, 500.0), ref.get_normalized_score(r, c)
            )


@pytest.mark.parametrize("budget", [-1.0, float("nan"), float("inf")])
def test_bad_budget_is_rejected(budget):
    with pytest.raises(ValueError, match="budget"):
        normalized_cost(1.0, budget)


def test_empty_reference_range_is_rejected():
    with pytest.raises(ValueError, match="min < max"):
        normalized_reward(1.0, 5.0, 5.0)
