"""Where the workbench keeps its files. Override with environment variables."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project root (the checkout this package is installed from)."""

DATA_DIR = Path(os.environ.get("TCDP_DATA_DIR", ROOT / "data"))
"""Shipped datasets and checkpoints."""

RUNS_DIR = Path(os.environ.get("TCDP_RUNS_DIR", ROOT / "runs"))
"""Large, regenerable outputs (generator stages, training runs); ignored by git."""

CHECKPOINT_DIR = DATA_DIR / "checkpoints"
"""Shipped model files, one folder per task."""


def shipped_model(task: str) -> Path:
    """The shipped TCDP model file of ``task`` (it may not exist)."""
    return CHECKPOINT_DIR / task / "model.pt"

BENCHMARK_DIR = DATA_DIR / "benchmark"
"""Shipped benchmark results: one ``result.json`` per cell (task / method / seed)."""


def display_path(path) -> str:
    """``path`` to print: relative to the checkout's root when inside it (no machine path in
    pages and reports), else as given."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
