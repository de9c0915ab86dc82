"""Checkpoint files on disk: written atomically, read without executing code from them.

Shared by every layer that writes model files (the baselines and the training runs) or checks
a file's content (datasets). Importing it does not import torch.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from tcdp_lib.errors import CheckpointError, CheckpointNotFoundError


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` (a name no other process uses), then
    rename it over ``path``: a reader sees the old file or the new one, never half of one, also
    when two processes write the same path at once (the last rename wins)."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def safe_load(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint without executing code from it (``weights_only=True``).

    A file torch cannot read that way (not a torch file, damaged, or holding Python objects other
    than tensors and plain containers) is refused as "not a tcdp model file"."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: checkpoint does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling refusals and corrupt files alike
        raise CheckpointError(
            f"{path}: not a tcdp model file (torch.load with weights_only=True failed: {type(err).__name__})"
        ) from err


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
