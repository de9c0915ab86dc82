"""Episodes of a flat DSRL dataset: boundaries, returns-to-go, per-episode sums.

A DSRL file stores transitions back to back; an episode ends at the first step whose
``terminals`` or ``timeouts`` flag is set. Everything here is a small pure function on
numpy arrays, checked in the tests against a naive Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def split_episodes(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Episode boundaries as an ``(E, 2)`` array of ``[start, end)`` index pairs.

    An episode ends at each step where ``terminals | timeouts``. Trailing steps after the
    last end flag belong to no finished episode and are dropped, as DSRL's own loader does.
    """
    terminals = np.asarray(terminals).reshape(-1)
    timeouts = np.asarray(timeouts).reshape(-1)
    if terminals.shape != timeouts.shape:
        raise ValueError(
            f"terminals and timeouts must have the same length, got {terminals.shape} and {timeouts.shape}"
        )
    ends = np.flatnonzero((terminals > 0) | (timeouts > 0)) + 1
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else np.zeros(0, dtype=np.int64)
    return np.stack([starts, ends], axis=1).astype(np.int64) if len(ends) else np.zeros((0, 2), np.int64)


def episode_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each episode ``[start, end)``: episode returns or costs, ``(E,)``."""
    values = np.asarray(values, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    return csum[bounds[:, 1]] - csum[bounds[:, 0]]


def reward_to_go(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Undiscounted sum from each step to its episode's end: ``G_t = sum_{t' >= t} v_t'``.

    Works for rewards (reward-to-go) and costs (cost-to-go, ``C_t``). Steps outside every
    episode get 0.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(values)
    for start, end in bounds:
        out[start:end] = np.cumsum(values[start:end][::-1])[::-1]
    return out


@dataclass(frozen=True)
class Episodes:
    """A DSRL dataset split into episodes, with the figures every later layer needs.

    Arrays keep the file's flat layout; ``bounds[i] = [start, end)`` selects episode ``i``.
    """

    observations: np.ndarray  # (N, obs_dim)
    next_observations: np.ndarray  # (N, obs_dim)
    actions: np.ndarray  # (N, act_dim)
    rewards: np.ndarray  # (N,)
    costs: np.ndarray  # (N,)
    bounds: np.ndarray  # (E, 2)
    returns: np.ndarray  # (E,) episode reward R
    cost_returns: np.ndarray  # (E,) episode cost C
    rewards_to_go: np.ndarray  # (N,)
    costs_to_go: np.ndarray  # (N,)

    @classmethod
    def from_arrays(cls, data: dict) -> "Episodes":
        bounds = split_episodes(data["terminals"], data["timeouts"])
        end = int(bounds[-1, 1]) if len(bounds) else 0
        rewards = np.asarray(data["rewards"], dtype=np.float64)
        costs = np.asarray(data["costs"], dtype=np.float64)
        return cls(
            observations=np.asarray(data["observations"], dtype=np.float32)[:end],
            next_observations=np.asarray(data["next_observations"], dtype=np.float32)[:end],
            actions=np.asarray(data["actions"], dtype=np.float32)[:end],
            rewards=rewards[:end],
            costs=costs[:end],
            bounds=bounds,
            returns=episode_sums(rewards, bounds),
            cost_returns=episode_sums(costs, bounds),
            rewards_to_go=reward_to_go(rewards, bounds)[:end],
            costs_to_go=reward_to_go(costs, bounds)[:end],
        )

    @property
    def num_episodes(self) -> int:
        return len(self.bounds)

    @property
    def lengths(self) -> np.ndarray:
        return self.bounds[:, 1] - self.bounds[:, 0]

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def episode(self, i: int) -> dict:
        """The arrays of episode ``i`` as a dict of slices."""
        start, end = self.bounds[i]
        return {
            "observations": self.observations[start:end],
            "next_observations": self.next_observations[start:end],
            "actions": self.actions[start:end],
            "rewards": self.rewards[start:end],
            "costs": self.costs[start:end],
        }

    def feasible(self, budget: float) -> np.ndarray:
        """Boolean mask of episodes whose cost is within ``budget`` (``C <= b``)."""
        return self.cost_returns <= budget
