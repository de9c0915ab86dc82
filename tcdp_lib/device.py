"""The one place a torch device and its CPU threads are chosen: training, evaluation, notebooks and
report runs all call here.

``resolve_device(None)`` is ``$TCDP_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``, ...), else
``cuda`` when torch sees a GPU, else ``cpu``. A device given explicitly wins over both. The
tests set ``TCDP_DEVICE=cpu`` (``tests/conftest.py``), so they stay on the CPU on a GPU machine.

Under Ray, a cell task given no GPU share sees no GPU (Ray empties ``CUDA_VISIBLE_DEVICES``),
so the same rule puts it on the CPU.

Threads: every process of the workbench (a ``tcdp`` command, a notebook kernel, a report's
kernels, a benchmark cell) takes :func:`default_threads` torch threads unless told otherwise:
``$TCDP_THREADS`` when set, else half of this machine's CPUs (at least 1). Two processes side by
side (a report beside a training run, a notebook kernel beside a benchmark) then share the cores;
with torch's default (every CPU per process) their thread pools oversubscribe the cores and each
runs many times slower than its fair share (notebook 04 beside a training run on 2 cores, 2 threads
each: 18 times its time alone; ``benchmarks/shared_machine.py``).
``--threads`` on the command line and the notebooks' ``torch_threads`` parameter override it.

Imports only torch (lazily), like :mod:`tcdp_lib.files`.
"""

from __future__ import annotations

import os

DEVICE_ENV = "TCDP_DEVICE"
"""Environment variable that forces the default device."""

THREADS_ENV = "TCDP_THREADS"
"""Environment variable that sets the torch CPU threads of every workbench process."""

THREAD_POOL_ENVS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-pool sizes read by the native libraries (OpenMP, OpenBLAS, MKL) when they load: set for
child processes (a report's kernels) by :func:`thread_env`."""


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Torch CPU threads of one workbench process: ``$TCDP_THREADS`` when set (a positive integer),
    else half of :func:`cpu_count` (at least 1)."""
    from tcdp_lib.errors import TcdpError

    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise TcdpError(f"{THREADS_ENV}={raw!r}: expected a positive number of threads")
        return n
    return max(1, cpu_count() // 2)


def set_threads(n: int | None = None) -> int:
    """Set torch's CPU threads to ``n`` (``None``: :func:`default_threads`); returns the count."""
    import torch

    from tcdp_lib.errors import TcdpError

    if n is None:
        n = default_threads()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TcdpError(f"threads: expected a positive integer, got {n!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def thread_env(n: int | None = None) -> dict[str, str]:
    """Environment for a child process (a notebook kernel) that should run on ``n`` threads
    (``None``: :func:`default_threads`): ``$TCDP_THREADS`` and the native pools' variables."""
    n = default_threads() if n is None else n
    return {THREADS_ENV: str(n), **{k: str(n) for k in THREAD_POOL_ENVS}}


def resolve_device(device=None):
    """The ``torch.device`` to use: ``device`` when given, else ``$TCDP_DEVICE``, else ``cuda`` if
    available, else ``cpu``. A ``$TCDP_DEVICE`` naming CUDA on a machine without it is an error."""
    import torch

    from tcdp_lib.errors import TcdpError

    if device is not None:
        return torch.device(device)
    forced = os.environ.get(DEVICE_ENV, "").strip()
    if forced:
        try:
            dev = torch.device(forced)
        except RuntimeError as err:
            raise TcdpError(f"{DEVICE_ENV}={forced!r} is not a torch device ({err})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TcdpError(f"{DEVICE_ENV}={forced!r} but torch sees no CUDA device here")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_device():
    """``resolve_device(None)``: the device a run uses when none is given."""
    return resolve_device(None)


def device_name(device=None) -> str:
    """``"cpu"`` or ``"cuda (<GPU name>)"`` for ``resolve_device(device)``: what run records store."""
    import torch

    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type
