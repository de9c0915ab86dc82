import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the tiny models run fastest so, and results do not depend on the machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
