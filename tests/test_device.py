"""One rule picks the torch device (tcdp_lib.device); the tests run on the CPU."""

from pathlib import Path

import pytest
import torch

from tcdp_lib.device import device_name, resolve_device
from tcdp_lib.errors import TcdpError


def test_tests_run_on_the_cpu():
    assert resolve_device() == torch.device("cpu") and device_name() == "cpu"


def test_the_environment_and_an_explicit_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("TCDP_DEVICE")
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("TCDP_DEVICE", "potato")
    with pytest.raises(TcdpError, match="TCDP_DEVICE='potato' is not a torch device"):
        resolve_device()
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit device wins


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine has cuda")
def test_cuda_asked_for_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setenv("TCDP_DEVICE", "cuda")
    with pytest.raises(TcdpError, match="sees no CUDA device"):
        resolve_device()


def test_no_other_module_picks_a_device():
    root = Path(__file__).resolve().parent.parent / "tcdp_lib"
    pickers = [p.relative_to(root).as_posix() for p in root.rglob("*.py") if "cuda.is_available" in p.read_text()]
    assert pickers == ["device.py"]
