"""What every notebook does at its end: record its key figures.

Each notebook ends with ``figures = record({...}, figures_path)``: a small dict of the numbers
it showed (counts, losses, the budget sweep, timings). The report runner
(:mod:`tcdp_lib.runs.report`) sets the parameter ``figures_path`` to ``<stem>.figures.json``
beside the executed notebook, the index page reads some of them, and the tests assert on them.
Run by hand (``figures_path = None``), nothing is written and the cell shows the dict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _plain(value):
    """numpy scalars and arrays as the Python numbers and lists JSON holds."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot record a value of type {type(value).__name__}: {value!r}")


def record(figures: dict, figures_path=None) -> dict:
    """Write ``figures`` as JSON (indent 1) to ``figures_path`` when it is set, and return them.

    numpy scalars and arrays are written as numbers and lists; any other value JSON cannot hold
    raises ``TypeError`` naming it. Returns ``figures`` itself, so the notebook's last line can
    show it (or a part of it)."""
    if not isinstance(figures, dict):
        raise TypeError(f"figures must be a dict of the notebook's key figures, got {type(figures).__name__}")
    if figures_path:
        Path(figures_path).write_text(json.dumps(figures, indent=1, default=_plain))
    return figures
