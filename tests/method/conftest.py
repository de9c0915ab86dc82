import numpy as np
import pytest
import torch

from tcdp_lib.data.episodes import Episodes


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    """Tests share two busy cores: one torch thread, and a fixed global seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)


def random_walk_arrays(seed=0, lengths=(7, 12, 3, 20, 9), obs_dim=3, act_dim=2, cost_prob=0.4):
    """DSRL-style flat arrays of a random walk split into episodes of the given lengths;
    the last episode ends on a timeout, the others on terminals."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    obs = np.cumsum(rng.normal(size=(n, obs_dim)), axis=0).astype(np.float32)
    nxt = obs + rng.normal(scale=0.1, size=obs.shape).astype(np.float32)
    ends = np.cumsum(lengths) - 1
    terminals, timeouts = np.zeros(n), np.zeros(n)
    terminals[ends[:-1]] = 1
    timeouts[ends[-1]] = 1
    return dict(
        observations=obs,
        next_observations=nxt,
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n),
        costs=(rng.random(n) < cost_prob).astype(np.float64) * rng.uniform(0.5, 2.0, n),
        terminals=terminals,
        timeouts=timeouts,
    )


@pytest.fixture
def episodes():
    return Episodes.from_arrays(random_walk_arrays())
