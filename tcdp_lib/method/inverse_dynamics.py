"""Inverse dynamics ``a_t = f(s_t, s_{t+1})``: how the planner turns a state plan into an action.
The same network over a longer gap, ``a_t = f(s_t, s_{t+k})``, is the action model under the plan
(``config.ActionModelConfig``; its pairs: :func:`gap_pairs`).

An MLP on the pair of (normalised) states with a tanh output mapped affinely onto the action
box ``[low, high]`` (Ajay et al., 2023, Decision Diffuser), so every action it returns is valid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from tcdp_lib.method.diffusion import masked_mse
from tcdp_lib.method.dit import mlp


def scale_to_box(u: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``low + (u + 1) / 2 * (high - low)``: maps ``[-1, 1]`` onto ``[low, high]``."""
    return low + (u + 1) * 0.5 * (high - low)


class InverseDynamics(nn.Module):
    """``forward(s (..., obs_dim), s_next (..., obs_dim)) -> a (..., act_dim)`` within ``[low, high]``."""

    def __init__(self, obs_dim: int, act_dim: int, action_low, action_high, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        low = np.asarray(action_low, dtype=np.float32).reshape(-1)
        high = np.asarray(action_high, dtype=np.float32).reshape(-1)
        if low.shape != (act_dim,) or high.shape != (act_dim,):
            raise ValueError(f"action bounds must have shape ({act_dim},), got {low.shape} and {high.shape}")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
            raise ValueError(f"action bounds must be finite with low <= high, got low={low}, high={high}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.register_buffer("action_low", torch.from_numpy(low))
        self.register_buffer("action_high", torch.from_numpy(high))
        self.net = mlp(2 * obs_dim, tuple(hidden), act_dim)

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(self.net(torch.cat([s, s_next], dim=-1)))  # (..., A) in [-1, 1]
        # tanh can round to exactly +-1 in float32; clamp keeps the box closed after the affine map
        return torch.minimum(torch.maximum(scale_to_box(u, self.action_low, self.action_high), self.action_low), self.action_high)

    def loss(self, s: torch.Tensor, s_next: torch.Tensor, a: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """MSE between ``f(s, s_next)`` and ``a`` over rows where ``mask`` (``s.shape[:-1]``) is True."""
        pred = self(s, s_next)
        weight = torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device) if mask is None else mask
        return masked_mse(pred, a, weight.unsqueeze(-1))


def gap_pairs(episodes, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(s_t, s_{t+gap}, a_t)`` of every step of ``episodes`` with a state ``gap`` steps on in
    the same episode: arrays ``(N, obs_dim)``, ``(N, obs_dim)``, ``(N, act_dim)``."""
    if gap < 1:
        raise ValueError(f"gap must be >= 1, got {gap}")
    obs = np.asarray(episodes.observations, dtype=np.float32)
    act = np.asarray(episodes.actions, dtype=np.float32)
    idx = np.concatenate([np.arange(a, b - gap) for a, b in episodes.bounds if b - a > gap] or [np.zeros(0, int)])
    if not len(idx):
        raise ValueError(f"no episode is longer than the action model's gap ({gap} steps)")
    return obs[idx], obs[idx + gap], act[idx]
