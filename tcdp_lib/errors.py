"""The errors a user can fix: a bad file, a bad value, a missing package.

The rule: code that refuses an input the user gave (a dataset or model file, a budget, a task id,
a simulator package) raises a :class:`TcdpError` subclass whose message names the file, key or
value and says what was expected. ``tcdp`` prints such an error as one line,
``tcdp: error: <message>``, and exits with code 2 (``--debug`` or ``TCDP_DEBUG=1`` shows the
traceback); any other exception is a bug and keeps its traceback. Each class also derives from
the built-in exception callers caught before (``ValueError``, ``FileNotFoundError``, ...).

Importing this module imports nothing else of the workbench.
"""

from __future__ import annotations

import math


class TcdpError(Exception):
    """An input the user can fix; the message names it and what was expected."""


class DatasetError(TcdpError, ValueError):
    """A dataset file is missing, unreadable or inconsistent with its task."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No local file for the task, and dsrl's download did not work."""


class CheckpointError(TcdpError, ValueError):
    """A checkpoint is missing, unreadable, or of another task or method."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file where one was expected."""


class BudgetError(TcdpError, ValueError):
    """A budget that is not a finite number >= 0."""


class UnknownTaskError(TcdpError, KeyError):
    """A task id the workbench does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FamilyUnavailableError(TcdpError, ImportError):
    """The simulator family of a task could not be imported."""


class CellsFailedError(TcdpError, RuntimeError):
    """Benchmark cells that raised or whose workers died past their retries; the others finished
    and are kept, so running the grid again retries only these."""


class SettingError(TcdpError, ValueError):
    """A planning or execution setting outside its range (``budget_fraction``, ``n_samples``, ...)."""


class BudgetRangeWarning(UserWarning):
    """A budget outside the range a model was trained on: the planner extrapolates its condition."""


def check_budget(budget, name: str = "budget") -> float:
    """``budget`` as a float; :class:`BudgetError` naming it unless it is a finite number >= 0."""
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise BudgetError(f"{name} {budget!r}: expected a finite number >= 0") from None
    if not math.isfinite(b) or b < 0:
        raise BudgetError(f"{name} {budget!r}: expected a finite number >= 0")
    return b
