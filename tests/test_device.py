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


# ------------------------------------------------------------------ threads


def test_default_threads_is_half_the_cpus_or_the_environment(monkeypatch):
    from tcdp_lib import device

    monkeypatch.delenv("TCDP_THREADS", raising=False)
    monkeypatch.setattr(device, "cpu_count", lambda: 2)
    assert device.default_threads() == 1
    monkeypatch.setattr(device, "cpu_count", lambda: 16)
    assert device.default_threads() == 8
    monkeypatch.setattr(device, "cpu_count", lambda: 1)
    assert device.default_threads() == 1
    monkeypatch.setenv("TCDP_THREADS", "3")
    assert device.default_threads() == 3
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("TCDP_THREADS", bad)
        with pytest.raises(TcdpError, match=f"TCDP_THREADS='{bad}': expected a positive number of threads"):
            device.default_threads()


def test_set_threads_sets_torch_and_refuses_nonsense(monkeypatch):
    from tcdp_lib.device import set_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("TCDP_THREADS", "2")
        assert set_threads() == 2 and torch.get_num_threads() == 2
        assert set_threads(1) == 1 and torch.get_num_threads() == 1  # an explicit count wins
        for bad in (0, -1, 1.5, True):
            with pytest.raises(TcdpError, match="threads: expected a positive integer"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_a_report_kernel_inherits_the_thread_count(monkeypatch):
    """What ``run_report`` does around each notebook: a child Python (as a kernel is) starts with
    torch on the given threads, and the parent's environment is restored afterwards."""
    import os
    import subprocess
    import sys

    from tcdp_lib.runs.report import kernel_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("TCDP_THREADS", raising=False)
    probe = "import torch; from tcdp_lib.device import default_threads; print(torch.get_num_threads(), default_threads())"
    with kernel_threads(2):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "2"]
    assert os.environ["OMP_NUM_THREADS"] == "7" and "TCDP_THREADS" not in os.environ


def test_no_other_module_sets_torch_threads():
    root = Path(__file__).resolve().parent.parent / "tcdp_lib"
    setters = [p.relative_to(root).as_posix() for p in root.rglob("*.py") if "set_num_threads(" in p.read_text()]
    assert setters == ["device.py"]
