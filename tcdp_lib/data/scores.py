"""DSRL's normalised scores: the one definition used by every table and plot.

normalized reward  = (R - R_min) / (R_max - R_min)      (R_min, R_max: the dataset's reference)
normalized cost    = (C + eps) / (b + eps),  eps = 1 if b == 0 else 0
A result is *safe* when its normalized cost is <= 1.
"""

from __future__ import annotations

import numpy as np

SAFE_NORMALIZED_COST = 1.0
"""A result is safe when its normalised cost is at most this."""


def normalized_reward(reward, min_reward: float, max_reward: float):
    """``(R - R_min) / (R_max - R_min)``; raises when the reference range is empty."""
    if not np.isfinite(min_reward) or not np.isfinite(max_reward) or max_reward <= min_reward:
        raise ValueError(
            f"reference reward range must satisfy min < max, got min={min_reward}, max={max_reward}"
        )
    return (np.asarray(reward, dtype=np.float64) - min_reward) / (max_reward - min_reward)


def normalized_cost(cost, budget: float):
    """``(C + eps) / (b + eps)`` with ``eps = 1`` only when the budget ``b`` is 0."""
    if budget < 0 or not np.isfinite(budget):
        raise ValueError(f"budget must be a finite number >= 0, got {budget}")
    eps = 1.0 if budget == 0 else 0.0
    return (np.asarray(cost, dtype=np.float64) + eps) / (budget + eps)


def normalized_scores(reward, cost, budget: float, min_reward: float, max_reward: float):
    """Both normalised figures at once: ``(normalized_reward, normalized_cost)``."""
    return normalized_reward(reward, min_reward, max_reward), normalized_cost(cost, budget)
