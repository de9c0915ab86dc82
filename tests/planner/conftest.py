import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    """Tests share two busy cores: one torch thread, and a fixed global seed."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
