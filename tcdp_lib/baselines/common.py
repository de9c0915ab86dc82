"""Small pieces shared by the baselines: the device rule (re-exported from
:mod:`tcdp_lib.device`), observation statistics, the action box,
the feasibility check, config (de)serialisation and checkpoint files.

Imports only from ``tcdp_lib.data`` (and numpy/torch), like every baseline module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tcdp_lib.configs import config_from_dict  # noqa: F401  (re-exported for the baselines)
from tcdp_lib.device import resolve_device  # noqa: F401  (re-exported: the one device rule)
from tcdp_lib.data.episodes import Episodes
from tcdp_lib.errors import CheckpointNotFoundError
from tcdp_lib.files import CheckpointError, atomic_save, safe_load


# --------------------------------------------------------------------------------------------
#                                Observation statistics, action box
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ObsStats:
    """Per-dimension observation statistics: ``z = (s - mean) / std``."""

    mean: np.ndarray
    """``(obs_dim,)`` float32 data mean."""
    std: np.ndarray
    """``(obs_dim,)`` float32 data standard deviation; a (near) constant dimension gets 1."""


def fit_obs_stats(observations: np.ndarray, min_std: float = 1e-6) -> ObsStats:
    """``mean = E[s]``, ``std = sqrt(Var[s])`` per dimension; ``std < min_std`` is replaced by 1."""
    obs = np.asarray(observations, dtype=np.float64)
    if obs.ndim != 2 or len(obs) == 0:
        raise ValueError(f"observations must be a non-empty (N, obs_dim) array, got shape {obs.shape}")
    if not np.all(np.isfinite(obs)):
        raise ValueError("observations must be finite (got NaN or inf)")
    std = obs.std(axis=0)
    std = np.where(std < min_std, 1.0, std)
    return ObsStats(mean=obs.mean(axis=0).astype(np.float32), std=std.astype(np.float32))


def action_box(episodes: Episodes, action_low=None, action_high=None) -> tuple[np.ndarray, np.ndarray]:
    """The action bounds ``(low, high)``, each ``(act_dim,)`` float32: given, else the data's min / max."""
    low = episodes.actions.min(axis=0) if action_low is None else action_low
    high = episodes.actions.max(axis=0) if action_high is None else action_high
    low = np.asarray(low, dtype=np.float32).reshape(-1)
    high = np.asarray(high, dtype=np.float32).reshape(-1)
    if low.shape != (episodes.act_dim,) or high.shape != (episodes.act_dim,):
        raise ValueError(f"action bounds must have shape ({episodes.act_dim},), got {low.shape} and {high.shape}")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
        raise ValueError(f"action bounds must be finite with low <= high, got low={low}, high={high}")
    return low, high


def squash_to_box(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``low + (tanh(x) + 1) / 2 * (high - low)``, clamped to ``[low, high]``.

    The clamp only matters where float32 rounding of ``tanh`` lands a hair outside the box.
    """
    a = low + (torch.tanh(x) + 1.0) * 0.5 * (high - low)
    return torch.minimum(torch.maximum(a, low), high)


# --------------------------------------------------------------------------------------------
#                                          Budgets
# --------------------------------------------------------------------------------------------


def check_budget(budget) -> float:
    """``budget`` as a float; ``ValueError`` if it is not a finite number."""
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise ValueError(f"budget must be a finite number, got {budget!r}") from None
    if not np.isfinite(b):
        raise ValueError(f"budget must be a finite number, got {budget!r}")
    return b


def require_feasible(cost_returns: np.ndarray, budget: float) -> np.ndarray:
    """The mask ``C_e <= b``; ``ValueError`` naming ``b`` and ``min_e C_e`` if it is all False."""
    b = check_budget(budget)
    costs = np.asarray(cost_returns, dtype=np.float64).reshape(-1)
    mask = costs <= b
    if not mask.any():
        smallest = f"{costs.min():g}" if costs.size else "undefined (the data has no episode)"
        raise ValueError(
            f"no episode is feasible at budget {b:g}: the smallest episode cost in the data is {smallest}"
        )
    return mask


# --------------------------------------------------------------------------------------------
#                                  Configs and checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(path, method: str, **content) -> Path:
    """Write ``{"method": method, **content}`` atomically; returns the path."""
    path = Path(path)
    atomic_save({"method": method, **content}, path)
    return path


def load_checkpoint(path, method: str, keys: tuple[str, ...]) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` for ``method`` (``weights_only=True``: no
    code from the file runs); check it has ``keys``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: no checkpoint there")
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("method") != method:
        found = ckpt.get("method") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a {method!r} checkpoint (method: {found!r})")
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise CheckpointError(f"{method!r} checkpoint {path} lacks keys {missing}")
    return ckpt
