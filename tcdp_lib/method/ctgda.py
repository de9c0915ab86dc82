"""CTGDA: cost-returns-to-go relabelling with data augmentation.

The condition of a window starting at step ``t`` is the *remaining budget*. An episode of
total cost ``C_0`` satisfies every budget ``b >= C_0``; with cost-to-go ``C_t`` at ``t`` it has
spent ``C_0 - C_t`` before ``t``, so its remaining budget is

    b_t = b - (C_0 - C_t) = C_t + (b - C_0).

Training pairs ``(window, b)`` draw ``b`` from a prior that does not depend on the episode and
keep the pair only where ``C_0 <= b``. Rejecting on the joint ``(window, b)`` makes the kept
pairs, at each budget ``b``, distributed as the data restricted to the feasible set
``{C_0 <= b}``: the model learns ``q(tau | C <= b)``, not "trajectories whose cost is exactly
b". (Redrawing ``b`` for a fixed window until it fits would instead weight every window equally
at every feasible budget, a different and wrong target; ``draw_pairs`` therefore draws fresh
windows *and* budgets each round.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


# --------------------------------------------------------------------------------------------
#                                         Relabelling
# --------------------------------------------------------------------------------------------


def remaining_budget(cost_to_go, episode_cost, budget):
    """``b_t = C_t + (b - C_0)``: the budget left at ``t`` for an episode run under budget ``b``."""
    return np.asarray(cost_to_go, dtype=np.float64) + (np.asarray(budget, dtype=np.float64) - np.asarray(episode_cost, dtype=np.float64))


class Relabeled(NamedTuple):
    remaining_budget: np.ndarray
    """``b_t = C_t + (b - C_0)`` for every pair (meaningful only where ``keep``)."""
    keep: np.ndarray
    """``C_0 <= b``: the episode is feasible under the budget."""


def relabel(cost_to_go, episode_cost, budgets) -> Relabeled:
    """Remaining budgets ``b_t`` and the feasibility mask ``C_0 <= b`` of (window, budget) pairs.

    Arrays broadcast. For kept pairs ``b_t >= C_t >= 0`` (costs are non-negative).
    """
    c0 = np.asarray(episode_cost, dtype=np.float64)
    b = np.asarray(budgets, dtype=np.float64)
    return Relabeled(remaining_budget(cost_to_go, c0, b), c0 <= b)


# --------------------------------------------------------------------------------------------
#                                         Budget prior
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetPrior:
    """Budget prior of CTGDA pairs: uniform on ``[low, high]``, independent of the episode, and
    with probability ``p_slack`` a budget just above the episode's own cost instead.

    The slack pairs, ``b = C_0 + s`` with ``s ~ Exponential(mean slack_scale)``, give the pairs a
    condition the window can explain (``b_t = C_t + s`` is close to the window's own cost-to-go)
    and put the agent's regime into training: an agent that has spent most of its budget meets
    small ``b_t`` with many steps left, which the uniform prior almost never draws (measured on
    BallCircle: 0.02% of its uniform-prior pairs had ``b_t < 2`` with more than 100 steps left). A slack pair
    still satisfies ``C_0 <= b``: the model keeps learning trajectories *within* the budget, the
    ones that use most of it weighted up."""

    low: float
    """Smallest budget drawn (usually 0)."""
    high: float
    """Largest budget drawn ``b_max`` (from config, or the data's largest episode cost)."""
    p_slack: float = 0.0
    """Share of pairs whose budget is the episode's cost plus a small slack."""
    slack_scale: float = 0.0
    """Mean of the exponential slack ``b - C_0`` of those pairs."""
    power: float = 1.0
    """Shape of the budget draw ``b = low + (high - low) u^power``, ``u ~ U[0, 1]``: 1 uniform,
    above 1 more small budgets (2: P(b <= high / 8) = 35% instead of 12.5%). An agent lives at
    small remaining budgets ``b_t`` for most of an episode (``b_t`` runs from ``b`` down to 0)."""

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 <= self.low <= self.high):
            raise ValueError(f"budget prior needs finite 0 <= low <= high, got low={self.low}, high={self.high}")
        if not 0 <= self.p_slack <= 1:
            raise ValueError(f"p_slack must lie in [0, 1], got {self.p_slack}")
        if not (math.isfinite(self.slack_scale) and self.slack_scale >= 0):
            raise ValueError(f"slack_scale must be a finite number >= 0, got {self.slack_scale}")
        if not (math.isfinite(self.power) and self.power > 0):
            raise ValueError(f"power must be a finite number > 0, got {self.power}")

    @classmethod
    def from_costs(cls, episode_costs, low: float = 0.0, high: float | None = None) -> "BudgetPrior":
        """``U[low, high]`` with ``high`` defaulting to the largest episode cost in the data."""
        costs = np.asarray(episode_costs, dtype=np.float64)
        if high is None:
            if costs.size == 0:
                raise ValueError("cannot take b_max from an empty set of episode costs")
            high = float(costs.max())
        return cls(low=float(low), high=float(high))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` budgets ``b = low + (high - low) u^power`` (uniform on ``[low, high]`` at power 1)."""
        if self.high == self.low:
            return np.full(int(n), self.low)
        return self.low + (self.high - self.low) * rng.uniform(0.0, 1.0, size=int(n)) ** self.power

    def prob_feasible(self, episode_cost) -> np.ndarray:
        """``P(b >= C_0)`` under the prior: the acceptance probability of an episode."""
        c = np.asarray(episode_cost, dtype=np.float64)
        if self.high == self.low:
            return (c <= self.low).astype(np.float64)
        frac = np.clip((c - self.low) / (self.high - self.low), 0.0, 1.0)
        return 1.0 - frac ** (1.0 / self.power)


# --------------------------------------------------------------------------------------------
#                                     Sampling pairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PairSample:
    """Kept (window, budget) pairs."""

    window_idx: np.ndarray
    """``(P,)`` window index of each kept pair."""
    budget: np.ndarray
    """``(P,)`` the sampled episode budget ``b`` (``C_0 <= b``)."""
    remaining_budget: np.ndarray
    """``(P,)`` the condition ``b_t = C_t + (b - C_0)``."""
    n_drawn: int
    """Candidate pairs drawn to get these (acceptance rate ``P / n_drawn``)."""

    def __len__(self) -> int:
        return int(self.window_idx.shape[0])


def sample_pairs(rng: np.random.Generator, window_idx, cost_to_go, episode_cost, prior: BudgetPrior) -> PairSample:
    """One rejection round: a budget from ``prior`` for each candidate window, keep ``C_0 <= b``.

    ``cost_to_go`` and ``episode_cost`` are per-window ``(N,)`` arrays (``Windows.cost_to_go``,
    ``Windows.episode_cost``), indexed by ``window_idx``.
    """
    window_idx = np.asarray(window_idx, dtype=np.int64)
    budgets = prior.sample(rng, len(window_idx))
    c_t = np.asarray(cost_to_go)[window_idx]
    c_0 = np.asarray(episode_cost)[window_idx]
    b_t, keep = relabel(c_t, c_0, budgets)
    return PairSample(window_idx[keep], budgets[keep], b_t[keep], int(len(window_idx)))


def cost_balanced_cdf(episode_cost, alpha: float = 1.0, n_bins: int = 20) -> np.ndarray | None:
    """Cumulative window-sampling probabilities that even out the episodes' costs: a window's
    weight is ``count(bin of its episode's cost) ** -alpha`` over ``n_bins`` equal bins of
    ``[0, max cost]`` (``alpha`` 0: uniform, 1: every cost bin equally likely). ``None`` for
    uniform sampling.

    An agent under a small budget lives at a small remaining budget with many steps left; CTGDA
    pairs of such a window need a cheap episode (``b_t >= C_t``), and generated datasets hold few
    (BallCircle: 34 of 596 episodes cost at most 10, 4 cost 0, with the rewards of the costly
    ones): with uniform windows 1.3% of BallCircle's pairs had ``b_t <= 10`` with more than 100 of
    200 steps left."""
    if alpha == 0:
        return None
    c = np.asarray(episode_cost, dtype=np.float64)
    top = float(c.max()) if len(c) else 0.0
    if top <= 0:
        return None
    bins = np.minimum((c / top * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    w = counts[bins] ** -float(alpha)
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


def _windows(rng: np.random.Generator, n_windows: int, size: int, window_cdf: np.ndarray | None) -> np.ndarray:
    if window_cdf is None:
        return rng.integers(0, n_windows, size=size)
    return np.minimum(np.searchsorted(window_cdf, rng.random(size), side="right"), n_windows - 1)


def draw_pairs(
    rng: np.random.Generator,
    cost_to_go,
    episode_cost,
    prior: BudgetPrior,
    n: int,
    max_rounds: int = 100,
    window_cdf: np.ndarray | None = None,
) -> PairSample:
    """Exactly ``n`` kept pairs by rejection on the joint (window ~ uniform, b ~ prior); with
    ``prior.p_slack > 0`` a binomial share of them are slack pairs (``BudgetPrior``), placed last.
    ``window_cdf`` (:func:`cost_balanced_cdf`) draws the candidate windows with those
    probabilities instead of uniformly.

    Each round draws fresh windows and fresh budgets, sized from the acceptance rate seen so
    far; kept pairs are i.i.d., so truncating to ``n`` keeps the distribution exact.
    """
    episode_cost = np.asarray(episode_cost, dtype=np.float64)
    n_windows = len(episode_cost)
    if n_windows == 0:
        raise ValueError("no windows to draw from")
    n_slack = int(rng.binomial(int(n), prior.p_slack)) if prior.p_slack > 0 else 0
    slack_part = None
    if n_slack:
        idx = _windows(rng, n_windows, n_slack, window_cdf)
        b = episode_cost[idx] + rng.exponential(prior.slack_scale, size=n_slack) if prior.slack_scale > 0 \
            else episode_cost[idx].copy()
        slack_part = PairSample(idx, b, remaining_budget(np.asarray(cost_to_go)[idx], episode_cost[idx], b), n_slack)
        n = int(n) - n_slack
        if n == 0:
            return slack_part
    if not np.any(prior.prob_feasible(episode_cost) > 0):
        raise ValueError(
            f"no episode is feasible under the prior U[{prior.low}, {prior.high}]: "
            f"smallest episode cost is {episode_cost.min()}"
        )
    parts: list[PairSample] = []
    kept = drawn = 0
    size = int(n)
    for _ in range(max_rounds):
        if kept >= n:
            break
        part = sample_pairs(rng, _windows(rng, n_windows, size, window_cdf), cost_to_go, episode_cost, prior)
        parts.append(part)
        kept += len(part)
        drawn += part.n_drawn
        # next round: enough for the missing pairs at the rate seen so far (doubling while 0)
        size = int(math.ceil((n - kept) * drawn / kept)) if kept else 2 * size
    if kept < n:
        raise ValueError(f"kept only {kept} of {n} pairs after {max_rounds} rounds ({drawn} drawn); raise max_rounds")
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])[:n]  # noqa: E731
    uniform = PairSample(cat("window_idx"), cat("budget"), cat("remaining_budget"), drawn)
    if slack_part is None:
        return uniform
    both = lambda name: np.concatenate([getattr(uniform, name), getattr(slack_part, name)])  # noqa: E731
    return PairSample(both("window_idx"), both("budget"), both("remaining_budget"), drawn + slack_part.n_drawn)


def hindsight_pairs(rng: np.random.Generator, cost_to_go, episode_cost, n: int) -> PairSample:
    """``n`` windows drawn uniformly, each labelled with its own episode cost ``b = C_0``, so
    ``b_t = C_t`` (the relabelling diffusion planners without CTGDA use: a window is conditioned
    on what its episode actually spent)."""
    episode_cost = np.asarray(episode_cost, dtype=np.float64)
    if len(episode_cost) == 0:
        raise ValueError("no windows to draw from")
    idx = rng.integers(0, len(episode_cost), size=int(n))
    return PairSample(idx, episode_cost[idx], np.asarray(cost_to_go, dtype=np.float64)[idx], int(n))
