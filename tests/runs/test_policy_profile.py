"""benchmarks/policy_profile.py: the per-step profile's windows, means over live episodes, and the
data's figures."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_path = Path(__file__).resolve().parents[2] / "benchmarks" / "policy_profile.py"
_spec = importlib.util.spec_from_file_location("policy_profile", _path)
policy_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policy_profile)


def test_windows_cover_the_episode():
    assert policy_profile.windows_of(100) == [(0, 10), (10, 25), (25, 50), (50, 100)]
    assert policy_profile.windows_of(30) == [(0, 10), (10, 25), (25, 30)]


def test_profile_counts_live_steps_only():
    t, n = 30, 2
    rewards = np.ones((t, n))
    costs = np.zeros((t, n))
    costs[12, 0] = 1.0
    actions = np.zeros((t, n, 1))
    actions[::2, 0, 0] = 1.0  # episode 0 alternates 1, 0: jitter 1 per step
    rewards[20:, 1] = np.nan  # episode 1 ended after 20 steps
    actions[20:, 1] = np.nan
    costs[20:, 1] = np.nan
    rows = {r["steps"]: r for r in policy_profile.profile(rewards, costs, actions)}
    assert rows["10-25"]["cost"] == pytest.approx(0.5)  # 1 in episode 0, 0 in episode 1
    assert rows["25-30"]["reward_per_step"] == pytest.approx(1.0)
    assert rows["25-30"]["jitter"] == pytest.approx(1.0)  # only episode 0 is live there
    assert rows["0-10"]["jitter"] == pytest.approx(0.5)  # episode 0: 1, episode 1: 0
    assert rows["0-10"]["abs_action"] == pytest.approx(0.25)


def test_data_figures_of_the_cheap_best_rewarded_tenth(small_file):
    from tcdp_lib.data.dataset import load_dataset

    path, _ = small_file
    eps = load_dataset("OfflineBallCircle-v0", path).episodes
    figs = policy_profile.data_figures(eps, budget=float(np.max(eps.cost_returns)))
    assert figs["episodes"] == eps.num_episodes
    assert 1 <= figs["good_episodes"] <= eps.num_episodes
    assert figs["jitter"] > 0 and figs["abs_action"] > 0
    none = policy_profile.data_figures(eps, budget=-1.0)
    assert none["good_episodes"] == 0 and np.isnan(none["good_jitter"])


def test_realised_moves_measure_each_step_against_the_one_a_horizon_later():
    states = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [6.0, 8.0]])
    np.testing.assert_allclose(policy_profile.realised_moves(states, 1), [5.0, 0.0, 5.0, np.nan])
    np.testing.assert_allclose(policy_profile.realised_moves(states, 2), [5.0, 5.0, np.nan, np.nan])
    assert np.isnan(policy_profile.realised_moves(states, 4)).all()  # the horizon past the episode
