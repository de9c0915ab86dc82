"""Shared fixtures: small DSRL-format files made with the project's own writer."""

from __future__ import annotations

import os

# The tests stay on the CPU on a GPU machine too (tcdp_lib.device reads it; notebook kernels and
# Ray workers started by the tests inherit it).
os.environ["TCDP_DEVICE"] = "cpu"

import numpy as np  # noqa: E402
import pytest

from tcdp_lib.data.generate import write_dataset  # noqa: E402


def make_episodes(rng, n_episodes=6, length=20, obs_dim=8, act_dim=2, terminal_every=3):
    """Random episodes with the layout the generator writes (some end in a terminal)."""
    episodes = []
    for i in range(n_episodes):
        n = length - (i % 3)
        obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
        term = np.zeros(n, bool)
        tout = np.zeros(n, bool)
        if i % terminal_every == 0:
            term[-1] = True
        else:
            tout[-1] = True
        episodes.append({
            "observations": obs[:-1], "next_observations": obs[1:],
            "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
            "rewards": rng.normal(size=n), "costs": (rng.random(n) < 0.3).astype(np.float64),
            "terminals": term, "timeouts": tout,
        })
    return episodes


@pytest.fixture
def small_file(tmp_path):
    """A valid OfflineBallCircle-v0 file (obs 8, act 2) of 6 episodes, and its episodes."""
    rng = np.random.default_rng(0)
    episodes = make_episodes(rng)
    path = tmp_path / "OfflineBallCircle-v0.hdf5"
    returns = [e["rewards"].sum() for e in episodes]
    write_dataset(path, episodes, {
        "task_id": "OfflineBallCircle-v0", "min_episode_reward": float(min(returns)),
        "max_episode_reward": float(max(returns)), "budgets": [10.0, 20.0, 40.0],
        "generator": {"seed": 0},
    })
    return path, episodes


def _rewrite_h5(src, dst, change):
    """Copy the HDF5 file ``src`` to ``dst`` with ``change(data, attrs)`` applied to its arrays
    and attributes (dicts, edited in place): a broken file made from a good one."""
    import h5py

    with h5py.File(src, "r") as f:
        data = {k: f[k][:] for k in f.keys()}
        attrs = dict(f.attrs)
    change(data, attrs)
    with h5py.File(dst, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
        for k, v in attrs.items():
            f.attrs[k] = v
    return dst


@pytest.fixture
def rewrite_h5():
    """:func:`_rewrite_h5`, for tests that break a dataset file."""
    return _rewrite_h5


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the tiny models run fastest so, and results do not depend on the machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

