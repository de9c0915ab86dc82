"""The environment factory and the frame renderer on the families beyond Bullet: MetaDrive and a
Safety-Gymnasium Goal task. Short rollouts on CPU."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from tcdp_lib.data.envs import make_env, max_live_envs, render_frame, seeded_reset

METADRIVE = "OfflineMetadrive-easysparse-v0"
GOAL = "OfflinePointGoal1Gymnasium-v0"


def run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_a_missing_metadrive_package_is_reported_with_its_name():
    res = run_py("""
        import sys
        sys.modules["metadrive"] = None  # as if metadrive-simulator were not installed
        from tcdp_lib.data.envs import FamilyUnavailableError, make_env
        try:
            make_env("OfflineMetadrive-easysparse-v0")
        except FamilyUnavailableError as err:
            print(err)
    """)
    assert res.returncode == 0, res.stderr
    assert ("task OfflineMetadrive-easysparse-v0 needs the metadrive family "
            "(package metadrive-simulator)") in res.stdout


def test_an_unknown_task_names_the_known_ones():
    with pytest.raises(KeyError, match="unknown task 'OfflineMetadrive-nowhere-v0'; known tasks: .*"
                                       "OfflineMetadrive-easysparse-v0"):
        make_env("OfflineMetadrive-nowhere-v0")


@pytest.fixture
def metadrive_env():
    env = make_env(METADRIVE)
    yield env
    env.close()


def drive(env, steps, action=(0.0, 0.5)):
    """``steps`` steps (fewer if the episode ends) of a constant action: ``(obs, rewards, costs, done)``."""
    obs, rewards, costs = [], [], []
    for _ in range(steps):
        o, r, terminated, truncated, info = env.step(np.asarray(action, np.float32))
        obs.append(o)
        rewards.append(r)
        costs.append(info["cost"])
        if terminated or truncated:
            return np.stack(obs), rewards, costs, True
    return np.stack(obs), rewards, costs, False


def test_metadrive_has_the_gymnasium_interface(metadrive_env):
    import gymnasium

    env = metadrive_env
    assert isinstance(env, gymnasium.Env)
    assert isinstance(env.observation_space, gymnasium.spaces.Box) and env.observation_space.shape == (259,)
    assert isinstance(env.action_space, gymnasium.spaces.Box) and env.action_space.shape == (2,)
    obs, info = env.reset(seed=0)
    assert obs.shape == (259,) and obs.dtype == np.float32 and isinstance(info, dict)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (259,) and isinstance(reward, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)
    assert isinstance(info["cost"], float)
    trace, rewards, costs, _ = drive(env, 40)
    assert np.isfinite(trace).all() and sum(rewards) > 0  # it drives forward along the road
    assert hasattr(env.unwrapped, "get_dataset")  # dsrl's OfflineEnv, as for the other families


def test_metadrive_reset_seed_fixes_the_traffic(metadrive_env):
    env = metadrive_env
    sim = env.unwrapped

    def traffic(seed):
        seeded_reset(env, seed)
        others = sim.engine.get_objects(
            lambda o: o is not sim.vehicle and type(o).__name__.endswith("Vehicle"))
        return sorted((round(float(v.position[0]), 2), round(float(v.position[1]), 2)) for v in others.values())

    first = traffic(1)
    assert first and traffic(1) == first
    assert traffic(2) != first
    with pytest.raises(ValueError, match="reset seed must be >= 0, got -1"):
        env.reset(seed=-1)


def test_metadrive_frames(metadrive_env):
    env = metadrive_env
    with pytest.raises(RuntimeError, match="reset it before rendering"):
        render_frame(env)
    env.reset(seed=0)
    drive(env, 20)
    frame = render_frame(env, 320, 240)
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 3  # road, lane lines and the car drawn
    assert render_frame(env, 240, 180).shape == (180, 240, 3)  # another size: a new renderer


def test_metadrive_allows_one_live_env(metadrive_env):
    first = metadrive_env
    first.reset(seed=0)
    with pytest.warns(UserWarning, match="one live environment per process: closing the open"):
        second = make_env(METADRIVE)
    try:
        with pytest.raises(RuntimeError, match="a newer MetaDrive environment .* one live environment per process"):
            first.step(np.zeros(2, np.float32))
        second.reset(seed=0)
        drive(second, 5)
    finally:
        second.close()


def test_batched_evaluation_runs_metadrive_one_env_at_a_time():
    from tcdp_lib.runs.evaluate import run_episodes

    class FullThrottle:  # leaves the road within about 30 steps: short episodes
        def reset(self, n, budget):
            self.n = n

        def act(self, obs, reward, cost):
            return np.tile(np.array([[0.05, 1.0]], np.float32), (len(obs), 1))

    assert max_live_envs(METADRIVE, 10) == 1 and max_live_envs(GOAL, 10) == 10
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*one live environment")  # none closed under another
        records = run_episodes(METADRIVE, FullThrottle(), budget=10.0, n_episodes=2, seed=0, n_envs=10)
    assert [r["episode"] for r in records] == [0, 1]
    assert all(0 < r["length"] < 1000 for r in records)


def test_safety_gymnasium_goal_rollout_and_frame():
    env = make_env(GOAL)
    try:
        obs, _ = seeded_reset(env, 0)
        assert obs.shape == (60,)
        again, _ = seeded_reset(env, 0)
        np.testing.assert_array_equal(obs, again)
        trace, rewards, costs, _ = drive(env, 50, action=(0.5, 0.2))
        assert trace.shape[1] == 60 and np.isfinite(trace).all() and all(c >= 0 for c in costs)
        frame = render_frame(env, 240, 180)
        assert frame.shape == (180, 240, 3) and frame.dtype == np.uint8 and frame.std() > 0
    finally:
        env.close()
