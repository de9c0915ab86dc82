"""Tiny synthetic DSRL-format data and tiny model configs for the baseline tests."""

import numpy as np
import pytest
import torch

from tcdp_lib.baselines import BCSafeConfig, CDTConfig
from tcdp_lib.data.episodes import Episodes

OBS_DIM, ACT_DIM = 3, 2


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    """Tests share two busy cores: one torch thread, and a fixed global seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)


def random_arrays(seed=0, lengths=(7, 12, 3, 20, 9, 5), obs_dim=OBS_DIM, act_dim=ACT_DIM, trailing=2):
    """DSRL-style flat arrays: random episodes of the given lengths, ending alternately on a
    terminal or a timeout, plus ``trailing`` unfinished steps (dropped by ``Episodes``).
    Actions lie in ``[-1, 1]``; costs are 0/1 so episode costs are small integers."""
    rng = np.random.default_rng(seed)
    n = sum(lengths) + trailing
    ends = np.cumsum(lengths) - 1
    terminals, timeouts = np.zeros(n), np.zeros(n)
    terminals[ends[0::2]] = 1
    timeouts[ends[1::2]] = 1
    return dict(
        observations=(rng.normal(size=(n, obs_dim)) * 3 + 1).astype(np.float32),
        next_observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n) + 1.0,
        costs=(rng.random(n) < 0.3).astype(np.float64),
        terminals=terminals,
        timeouts=timeouts,
    )


@pytest.fixture
def arrays():
    """The ``random_arrays`` factory, for tests that build their own data."""
    return random_arrays


@pytest.fixture
def episodes():
    return Episodes.from_arrays(random_arrays())


@pytest.fixture
def tiny_bc():
    return BCSafeConfig(hidden=(16, 16), batch_size=16)


@pytest.fixture
def tiny_cdt():
    return CDTConfig(context_len=4, embed_dim=16, n_layers=2, n_heads=2, dropout=0.0, batch_size=8, augment_prob=0.5)
