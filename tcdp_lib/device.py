"""The one place a torch device is chosen: training, evaluation and report runs all call here.

``resolve_device(None)`` is ``$TCDP_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``, ...), else
``cuda`` when torch sees a GPU, else ``cpu``. A device given explicitly wins over both. The
tests set ``TCDP_DEVICE=cpu`` (``tests/conftest.py``), so they stay on the CPU on a GPU machine.

Under Ray, a cell task given no GPU share sees no GPU (Ray empties ``CUDA_VISIBLE_DEVICES``),
so the same rule puts it on the CPU.

Imports only torch (lazily), like :mod:`tcdp_lib.files`.
"""

from __future__ import annotations

import os

DEVICE_ENV = "TCDP_DEVICE"
"""Environment variable that forces the default device."""


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
