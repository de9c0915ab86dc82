"""The data's feasible frontier: the best episode return at cost at most ``b``.

    r_max(b) = max{R_e : C_e <= b}

is a non-decreasing step function of the budget ``b``. Its breakpoints are the *Pareto
episodes*: those that no episode of lower or equal cost beats in return. ``pareto_frontier``
finds them once and gives a ``Frontier``, which answers ``r_max`` and the episode reaching it
at any number of budgets by a binary search.

This is the one home of the frontier: the data card, the density filter of the generator
(``pareto_indices``), CDT's targets and relabelling, CDD's ``(costs, best)`` table and the
plots all read it from here. Data layer: numpy only.

Below every episode cost no episode is feasible and ``r_max`` is undefined: the lookups raise a
``ValueError`` naming the budget and the smallest episode cost, or give NaN (``r_max(...,
infeasible="nan")``).

Not to be confused with ``tcdp_lib.data.generate.frontier_indices`` (the "levels" frontier:
the best episode of each integer cost level, a superset kept by the generator's filter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INFEASIBLE = ("raise", "nan")
"""What a lookup gives at a budget below every episode cost."""


@dataclass(frozen=True, eq=False)
class Frontier:
    """The data's reward/cost Pareto frontier as the step function ``r_max(b)``.

    ``r_max(b) = max{R_e : C_e <= b} = returns[i]`` with ``i`` the last point whose
    ``costs[i] <= b``. Build it with ``pareto_frontier(returns, costs)``.
    """

    costs: np.ndarray
    """``(P,)`` strictly increasing episode costs of the frontier points."""
    returns: np.ndarray
    """``(P,)`` strictly increasing episode returns of the frontier points."""
    episode: np.ndarray
    """``(P,)`` index of the episode at each point (the cheapest, then lowest index, among ties)."""

    def __len__(self) -> int:
        return len(self.costs)

    @property
    def min_cost(self) -> float:
        """The smallest episode cost: ``r_max(b)`` is defined for ``b >= min_cost``."""
        return float(self.costs[0])

    def _point(self, budget, infeasible: str = "raise") -> np.ndarray:
        """Index of the last point with ``costs[i] <= b`` (``-1`` where none and ``infeasible="nan"``)."""
        if infeasible not in INFEASIBLE:
            raise ValueError(f"infeasible must be one of {INFEASIBLE}, got {infeasible!r}")
        b = np.asarray(budget, dtype=np.float64)
        if not np.all(np.isfinite(b)):
            raise ValueError(f"target costs must be finite, got {b}")
        i = np.searchsorted(self.costs, b, side="right") - 1
        if infeasible == "raise" and np.any(i < 0):
            bad = float(np.min(b))
            raise ValueError(
                f"no episode is feasible at budget {bad:g}: the smallest episode cost in the data is {self.costs[0]:g}"
            )
        return i

    def r_max(self, budgets, infeasible: str = "raise") -> np.ndarray:
        """``r_max(b) = max{R_e : C_e <= b}`` at each budget (any shape; float64 of that shape).

        Below every episode cost: ``ValueError`` naming the budget and the smallest episode cost
        (``infeasible="raise"``), or NaN (``infeasible="nan"``). Budgets must be finite.
        """
        i = self._point(budgets, infeasible)
        out = self.returns[np.clip(i, 0, None)].astype(np.float64)
        return np.where(i >= 0, out, np.nan) if infeasible == "nan" else out

    def best_return(self, target_cost) -> np.ndarray:
        """``r_max(kappa) = max{R_e : C_e <= kappa}``; ``ValueError`` where no episode has ``C_e <= kappa``."""
        return self.returns[self._point(target_cost)]

    def best_episode(self, target_cost) -> np.ndarray:
        """``e*(kappa) = argmax{R_e : C_e <= kappa}`` (ties: smallest cost, then smallest index);
        ``ValueError`` where no episode has ``C_e <= kappa``."""
        return self.episode[self._point(target_cost)]


def pareto_frontier(returns, costs) -> Frontier:
    """The points ``(C_e, R_e)`` with ``R_e > R_e'`` for every episode ``e'`` ordered before ``e``
    by (cost ascending, return descending, index ascending): exactly the breakpoints of
    ``r_max(kappa) = max{R_e : C_e <= kappa}``.

    ``ValueError`` for empty, unequal-length or non-finite inputs."""
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    if r.shape != c.shape or r.size == 0:
        raise ValueError(f"returns and costs must be non-empty and of equal length, got {r.shape} and {c.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise ValueError("returns and costs must be finite (got NaN or inf)")
    order = np.lexsort((np.arange(r.size), -r, c))  # cost asc, return desc, index asc
    r_sorted = r[order]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(r_sorted)[:-1]])
    keep = r_sorted > best_before
    return Frontier(costs=c[order][keep], returns=r_sorted[keep], episode=order[keep].astype(np.int64))


def episodes_frontier(episodes) -> Frontier:
    """``pareto_frontier`` of an ``Episodes`` (anything with ``returns`` and ``cost_returns``)."""
    return pareto_frontier(episodes.returns, episodes.cost_returns)


def pareto_indices(costs, rewards) -> np.ndarray:
    """The episodes that no episode of lower or equal cost beats in reward, ascending: with only
    these the feasible frontier ``max {R_i : C_i <= b}`` is the same for every ``b``.

    Note the argument order (costs first, as in ``tcdp_lib.data.generate``); an empty input gives
    an empty array."""
    if np.size(costs) == 0 and np.size(rewards) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(pareto_frontier(rewards, costs).episode).astype(np.int64)


def best_return_table(returns, costs) -> tuple[np.ndarray, np.ndarray]:
    """``(costs, best)``: the episodes' distinct costs ascending and, at each, ``r_max`` of that
    cost (the best return of an episode costing at most that much). A denser table of the same
    step function as ``pareto_frontier`` (every distinct cost, not only the breakpoints)."""
    f = pareto_frontier(returns, costs)
    c = np.unique(np.asarray(costs, dtype=np.float64).reshape(-1))
    return c, f.r_max(c)
