"""The policy interface every method's evaluation uses.

One ``Policy`` object serves a batch of ``B`` environments stepped in lockstep:

    policy.reset(n_envs=B, budget=b)
    reward = cost = np.zeros(B)
    for t in range(T):
        action = policy.act(obs, reward, cost)          # (B, act_dim) float32, within bounds
        obs, reward, cost, ... = envs.step(action)

``reward`` and ``cost`` are what the environments returned for the *previous* action (0 at the
first step), so sequence models can update their return-to-go and cost-to-go. A budget is
fixed from ``reset`` to the next ``reset``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """What the evaluation harness calls; ``reset`` starts new episodes in all ``n_envs``."""

    def reset(self, n_envs: int, budget: float) -> None:
        """Start ``n_envs`` new episodes under cost budget ``budget``."""
        ...

    def act(self, obs: np.ndarray, reward: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """``obs (B, obs_dim)``, previous ``reward (B,)``, ``cost (B,)`` -> actions ``(B, act_dim)`` float32."""
        ...


def check_n_envs(n_envs) -> int:
    """``n_envs`` as a positive int; ``ValueError`` otherwise."""
    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    return int(n_envs)


def check_step_inputs(obs, reward, cost, n_envs: int | None, obs_dim: int):
    """Validate one ``act`` call: ``obs (B, obs_dim)``, ``reward (B,)``, ``cost (B,)``, all finite.

    Returns ``(obs float32, reward float64, cost float64)``. ``n_envs is None`` means ``reset``
    was never called.
    """
    if n_envs is None:
        raise RuntimeError("call reset(n_envs, budget) before act()")
    obs = np.asarray(obs, dtype=np.float32)
    reward = np.asarray(reward, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if obs.shape != (n_envs, obs_dim):
        raise ValueError(f"obs must have shape ({n_envs}, {obs_dim}) (n_envs from reset), got {obs.shape}")
    for name, v in (("reward", reward), ("cost", cost)):
        if v.shape != (n_envs,):
            raise ValueError(f"{name} must have shape ({n_envs},), got {v.shape}")
    for name, v in (("obs", obs), ("reward", reward), ("cost", cost)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite (got NaN or inf)")
    return obs, reward, cost


class PerBudgetPolicy:
    """A ``Policy`` made of one policy per budget (BC-Safe trains one model per budget):
    ``reset(n_envs, b)`` picks the policy trained for ``b`` and refuses any other budget."""

    def __init__(self, policies: dict):
        if not policies:
            raise ValueError("PerBudgetPolicy needs at least one (budget, policy) pair")
        self.policies = {float(b): p for b, p in policies.items()}
        self.current = None

    def reset(self, n_envs: int, budget: float) -> None:
        key = float(budget)
        if key not in self.policies:
            raise ValueError(f"no policy was trained for budget {budget:g}; trained budgets: "
                             f"{sorted(self.policies)}")
        self.current = self.policies[key]
        self.current.reset(n_envs, budget)

    def act(self, obs: np.ndarray, reward: np.ndarray, cost: np.ndarray) -> np.ndarray:
        if self.current is None:
            raise RuntimeError("call reset(n_envs, budget) before act()")
        return self.current.act(obs, reward, cost)
