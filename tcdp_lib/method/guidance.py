"""Guidance: classifier-free guidance on the budget, then energy (classifier) guidance on reward.

TCDP samples ``q(tau | C <= b) * exp(beta * R)``. The first factor comes from CFG on the
budget condition (scale ``w_cfg``), the second from the gradient of an energy model ``E`` that
predicts the QN-normalised return of a noisy trajectory (scale ``beta``). ``guided_eps``
builds the one ``model_fn(x, k) -> eps`` a sampler calls, in that order (CleanDiffuser's
``guided_sampling``; Diffuser's value guide).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn

from tcdp_lib.method.dit import mlp, sinusoidal_embedding, sinusoidal_frequencies


# --------------------------------------------------------------------------------------------
#                                        Pure guidance math
# --------------------------------------------------------------------------------------------


def cfg_combine(eps_u: torch.Tensor, eps_c: torch.Tensor, w: float) -> torch.Tensor:
    """``eps_u + w * (eps_c - eps_u)``: ``w = 0`` unconditional, ``w = 1`` conditional."""
    return eps_u + w * (eps_c - eps_u)


def energy_guide(eps: torch.Tensor, grad: torch.Tensor, alpha_bar: torch.Tensor, beta: float) -> torch.Tensor:
    """``eps - beta * sqrt(1 - alpha_bar_k) * grad_x E(x_k)``: the score of ``p(x) exp(beta E)``."""
    return eps - beta * (1 - alpha_bar).sqrt() * grad


# --------------------------------------------------------------------------------------------
#                                          Energy model
# --------------------------------------------------------------------------------------------


class EnergyGradient(NamedTuple):
    value: torch.Tensor
    """``(N,)`` the energy ``E(x_k, k[, b, steps left])``."""
    grad: torch.Tensor
    """``(N, H, C)`` ``dE / dx_k``."""


class EnergyModel(nn.Module):
    """MLP on the flattened noisy normalised trajectory, a sinusoidal embedding of the diffusion
    step ``k``, and optional scalars: the scaled remaining budget ``b / budget_scale`` (when
    ``budget_scale`` is set) and the scaled steps left ``steps_left / time_scale`` (when
    ``time_scale`` is set). ``n_out`` outputs; ``forward`` returns ``(N,)`` for one output and
    ``(N, n_out)`` otherwise."""

    def __init__(
        self,
        horizon: int,
        obs_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        t_embed_dim: int = 32,
        budget_scale: float | None = None,
        time_scale: float | None = None,
        n_out: int = 1,
    ):
        super().__init__()
        for name, v in (("budget_scale", budget_scale), ("time_scale", time_scale)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be None or a finite number > 0, got {v}")
        self.horizon, self.obs_dim, self.n_out = horizon, obs_dim, int(n_out)
        self.budget_scale = budget_scale
        self.time_scale = time_scale
        self.register_buffer("freqs", sinusoidal_frequencies(t_embed_dim), persistent=False)
        in_dim = horizon * obs_dim + t_embed_dim + (budget_scale is not None) + (time_scale is not None)
        self.net = mlp(in_dim, tuple(hidden), self.n_out)

    @property
    def conditioned(self) -> bool:
        return self.budget_scale is not None

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                steps_left: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        feats = [x.reshape(n, -1), sinusoidal_embedding(t, self.freqs).to(x.dtype)]  # (N, H*C), (N, F)
        if self.budget_scale is not None:
            if c is None:
                raise ValueError("this energy model is budget-conditioned: pass the remaining budget c (N,)")
            feats.append((c.to(x.dtype) / self.budget_scale).reshape(n, 1))  # (N, 1)
        if self.time_scale is not None:
            if steps_left is None:
                raise ValueError("this energy model reads the steps left: pass steps_left (N,)")
            feats.append((steps_left.to(x.dtype).clamp_min(0) / self.time_scale).reshape(n, 1))  # (N, 1)
        out = self.net(torch.cat(feats, dim=-1))  # (N, n_out)
        return out.squeeze(-1) if self.n_out == 1 else out

    def gradients(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                  steps_left: torch.Tensor | None = None) -> EnergyGradient:
        """``(E(x, t, c), dE/dx)`` by autograd; works when called under ``torch.inference_mode``."""
        return energy_gradients(self, x, t, c, steps_left)


def energy_gradients(energy, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                     steps_left: torch.Tensor | None = None) -> EnergyGradient:
    """``(energy(x, t, c, steps_left), d energy / dx)`` by autograd, also under ``torch.inference_mode``."""
    with torch.inference_mode(False), torch.enable_grad():
        # clones are normal tensors even if the inputs were made under inference mode
        x = x.detach().clone().requires_grad_(True)
        t = t.clone()
        c = None if c is None else c.clone()
        steps_left = None if steps_left is None else steps_left.clone()
        value = energy(x, t, c, steps_left)  # (N,)
        (grad,) = torch.autograd.grad(value.sum(), x)  # (N, H, C)
    return EnergyGradient(value.detach(), grad)


class ValueCostEnergy(nn.Module):
    """TCDP's energy: two MLPs on a noisy window ``x_k`` and the steps left,

    - ``value`` (also reads the remaining budget ``b_t``): the QN-normalised reward-to-go
      (``qn.ToGoQN``: the rank of the window's reward-to-go among data windows with as many steps
      left that spend at most ``b_t``), a number in [0, 1] whose meaning does not change with the
      budget;
    - ``cost`` (does *not* read the budget): the window's cost-to-go ``C_t / budget_scale``.

    The cost model is blind to ``b_t`` on purpose. CTGDA keeps only pairs with ``b_t >= C_t``,
    so a cost model that reads ``b_t`` learns the shortcut "cost-to-go is at most the budget":
    on BallRun, with a shared head, windows with ``C_t > 20`` were predicted to cost 40 at their
    own ``b_t`` but 14 at ``b_t = 0``, so an agent that had spent its budget saw every plan as
    affordable, and it chose and guided accordingly. Blind to ``b_t``, the same rollouts (BallRun,
    b = 10, 20 episodes) kept every episode within the budget (before: 19 of 20).

    The energy guided toward is ``value - cost_weight * max(cost - b_t / budget_scale, 0)``: the
    reward pull stops where the predicted spending passes the remaining budget (the QN value
    alone correlates with cost among feasible windows, so pushing it up pushes cost up). The
    planner also uses the two models to pick among samples (``Planner``)."""

    def __init__(self, horizon: int, obs_dim: int, budget_scale: float, time_scale: float,
                 hidden: tuple[int, ...] = (256, 256), t_embed_dim: int = 32, cost_weight: float = 1.0):
        super().__init__()
        self.budget_scale = float(budget_scale)
        self.cost_weight = float(cost_weight)
        self.value = EnergyModel(horizon, obs_dim, hidden, t_embed_dim, budget_scale=budget_scale,
                                 time_scale=time_scale)
        self.cost = EnergyModel(horizon, obs_dim, hidden, t_embed_dim, time_scale=time_scale)

    def heads(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, steps_left: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(value (N,), scaled cost-to-go (N,))``; the cost does not depend on ``c``."""
        return self.value(x, t, c, steps_left), self.cost(x, t, None, steps_left)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                steps_left: torch.Tensor | None = None, cost_weight: float | None = None) -> torch.Tensor:
        if c is None:
            raise ValueError("the value-cost energy needs the remaining budget c (N,)")
        n = self.cost_weight if cost_weight is None else float(cost_weight)
        value, cost = self.heads(x, t, c, steps_left)
        return value - n * torch.relu(cost - c.to(x.dtype) / self.budget_scale)  # (N,)

    def gradients(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                  steps_left: torch.Tensor | None = None) -> EnergyGradient:
        return energy_gradients(self, x, t, c, steps_left)

    def weighted(self, cost_weight: float) -> "WeightedEnergy":
        """This energy with the penalty ``n`` fixed at ``cost_weight`` (a planning-time choice)."""
        return WeightedEnergy(self, cost_weight)


def reward_cost_energy(reward: torch.Tensor, cost: torch.Tensor, budget: torch.Tensor, cost_weight: float) -> torch.Tensor:
    """TREBI's energy ``R - n * max(C - b, 0)`` on scaled predictions: ``reward`` (N,) the
    predicted reward-to-go, ``cost`` (N,) the predicted cost-to-go, ``budget`` (N,) the remaining
    budget (all in the same scale as ``cost``), ``n = cost_weight``. Only cost beyond the budget
    is penalised, so one pair of models serves every budget."""
    return reward - cost_weight * torch.relu(cost - budget)


class RewardCostEnergy(nn.Module):
    """Two unconditioned energy models, for the scaled reward-to-go and cost-to-go of a noisy
    trajectory (TREBI). ``forward(x, t, b)`` is :func:`reward_cost_energy` with the remaining
    budget ``b`` divided by ``budget_scale`` (the cost model's target scale) and the penalty
    ``n = cost_weight`` (the constructor's, unless one is passed)."""

    def __init__(self, horizon: int, obs_dim: int, budget_scale: float, hidden: tuple[int, ...] = (256, 256),
                 t_embed_dim: int = 32, cost_weight: float = 10.0):
        super().__init__()
        if not (math.isfinite(budget_scale) and budget_scale > 0):
            raise ValueError(f"budget_scale must be a finite number > 0, got {budget_scale}")
        self.budget_scale = float(budget_scale)
        self.cost_weight = float(cost_weight)
        self.reward = EnergyModel(horizon, obs_dim, hidden, t_embed_dim)
        self.cost = EnergyModel(horizon, obs_dim, hidden, t_embed_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                steps_left: torch.Tensor | None = None, cost_weight: float | None = None) -> torch.Tensor:
        if c is None:
            raise ValueError("the reward-cost energy needs the remaining budget c (N,)")
        n = self.cost_weight if cost_weight is None else float(cost_weight)
        return reward_cost_energy(self.reward(x, t), self.cost(x, t), c.to(x.dtype) / self.budget_scale, n)

    def gradients(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                  steps_left: torch.Tensor | None = None) -> EnergyGradient:
        return energy_gradients(self, x, t, c)

    def weighted(self, cost_weight: float) -> "WeightedEnergy":
        """This energy with the penalty ``n`` fixed at ``cost_weight`` (a planning-time choice)."""
        return WeightedEnergy(self, cost_weight)


class WeightedEnergy:
    """A :class:`ValueCostEnergy` or :class:`RewardCostEnergy` with its cost penalty fixed (the
    same weights); the interface ``guided_eps`` calls."""

    def __init__(self, energy: RewardCostEnergy, cost_weight: float):
        if not (math.isfinite(cost_weight) and cost_weight >= 0):
            raise ValueError(f"cost_weight must be a finite number >= 0, got {cost_weight}")
        self.energy, self.cost_weight = energy, float(cost_weight)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                 steps_left: torch.Tensor | None = None) -> torch.Tensor:
        return self.energy(x, t, c, steps_left, cost_weight=self.cost_weight)

    def gradients(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                  steps_left: torch.Tensor | None = None) -> EnergyGradient:
        return energy_gradients(self, x, t, c, steps_left)


# --------------------------------------------------------------------------------------------
#                                    The guided model function
# --------------------------------------------------------------------------------------------


def guided_eps(
    backbone: nn.Module,
    encoder: nn.Module,
    budget: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    w_cfg: float,
    beta: float = 0.0,
    energy=None,
    steps_left: torch.Tensor | None = None,
    target_return: torch.Tensor | None = None,
):
    """The sampler's ``model_fn(x, k) -> eps``: CFG on the budget, then energy guidance.

    ``eps = cfg_combine(eps(x, k, null), eps(x, k, enc(b)), w_cfg)``, both passes batched in one
    backbone call (only one pass when ``w_cfg`` is 0 or 1); then, if ``beta != 0``,
    ``eps - beta * sqrt(1 - alpha_bar_k) * dE/dx`` with ``energy.gradients(x, k, b, steps_left)``.
    ``encoder`` must be in eval mode (no CFG dropout); the condition embeddings are computed
    once here, not at every step. ``energy`` is any object with ``gradients(x, t, c, steps_left)``.
    ``steps_left`` and ``target_return`` go to the encoder with the budget.
    """
    n = budget.shape[0]
    if beta != 0 and energy is None:
        raise ValueError(f"beta={beta} needs an energy model")
    if w_cfg == 0:
        cond, paired = encoder.null(n, steps_left), False  # (N, D)
    elif w_cfg == 1:
        cond, paired = encoder(budget, steps_left=steps_left, target_return=target_return), False  # (N, D)
    else:
        cond = encoder(budget, steps_left=steps_left, target_return=target_return)  # (N, D)
        cond, paired = torch.cat([cond, encoder.null(n, steps_left)]), True  # (2N, D)

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if paired:
            eps_c, eps_u = backbone(torch.cat([x, x]), torch.cat([t, t]), cond).chunk(2)  # 2 x (N, H, C)
            eps = cfg_combine(eps_u, eps_c, w_cfg)  # (N, H, C)
        else:
            eps = backbone(x, t, cond)  # (N, H, C)
        if beta != 0:
            grad = energy.gradients(x, t, budget, steps_left).grad  # (N, H, C)
            eps = energy_guide(eps, grad, alphas_cumprod[t].to(x.dtype).reshape(-1, 1, 1), beta)
        return eps

    return model_fn
