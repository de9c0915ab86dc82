"""Receding-horizon planning with a trained TCDP, batched over environments.

At each replan: inpaint the first state with the current observation, condition on the
remaining budget ``b - cost spent so far`` (clipped at 0), sample ``n_samples`` plans per
environment with a fast sampler under CFG + energy guidance, and keep one: among the plans whose
predicted cost-to-go fits the remaining budget, the one with the highest predicted
(QN-normalised) reward-to-go; when none fits, the one predicted cheapest. Act with inverse
dynamics on its first two states.

Optionally warm-start: begin the sampler from the previous plan shifted by the steps taken
and noised to an intermediate level, running only the matching tail of the sampling chain;
``cold_samples`` of the samples start from pure noise beside them, so that the choice is never
only among variations of the previous plan.

Imports only from ``tcdp_lib.method`` (and numpy/torch): never from the ``runs`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tcdp_lib.errors import SettingError
from tcdp_lib.method.diffusion import get_sampler, q_sample, sampling_timesteps
from tcdp_lib.method.config import CHOICES
from tcdp_lib.method.guidance import ValueCostEnergy, guided_eps, reward_cost_energy
from tcdp_lib.method.model import TCDP


def online_remaining_budget(budget, cost_spent) -> np.ndarray:
    """``max(b - cost spent so far, 0)``: the budget condition while acting."""
    return np.maximum(np.asarray(budget, dtype=np.float64) - np.asarray(cost_spent, dtype=np.float64), 0.0)


@dataclass(frozen=True)
class PlannerConfig:
    """Planning-time choices; ``None`` fields take the model config's value."""

    n_samples: int = 8
    """Plans sampled per environment; the best predicted one within the budget is chosen."""
    sampler: str | None = None
    """Key of ``SAMPLERS``; ``None``: ``model.config.diffusion.sampler``."""
    sampling_steps: int | None = None
    """Model calls per plan from pure noise; ``None``: the model config's."""
    w_cfg: float | None = None
    """CFG scale on the budget; ``None``: ``model.config.guidance.w_cfg``."""
    beta: float | None = None
    """Energy guidance scale; ``None``: ``model.config.guidance.beta``."""
    cost_weight: float | None = None
    """TREBI's cost penalty ``n``; ``None``: ``model.config.guidance.cost_weight``."""
    warm_start_level: float = 0.5
    """Warm start noises the previous plan to step ``round(level * (K - 1))`` and runs only that
    share of the sampling steps; in ``(0, 1]``."""
    warm_shift: int = 1
    """Environment steps between two plans: the previous plan is shifted by this many states."""
    budget_fraction: float | None = None
    """Share of the remaining budget planned for; ``None``: ``model.config.guidance.budget_fraction``."""
    ensemble: int | None = None
    """Samples whose actions are averaged into the action taken (:func:`ensemble_weights`);
    ``None``: ``model.config.guidance.ensemble``."""
    cold_samples: int | None = None
    """With a warm start, this many of the ``n_samples`` start from pure noise (the whole sampling
    chain) instead of the previous plan; ``None``: ``model.config.guidance.cold_samples``."""
    choice: str | None = None
    """How the plan to follow is picked among the samples (``"feasible"`` or ``"energy"``,
    ``GuidanceConfig.choice``); ``None``: ``model.config.guidance.choice``."""

    def __post_init__(self):
        if self.choice is not None and self.choice not in CHOICES:
            raise SettingError(f"unknown choice {self.choice!r}; choose one of {list(CHOICES)}")
        if self.budget_fraction is not None and not 0 < self.budget_fraction <= 1:
            raise SettingError(f"budget_fraction must lie in (0, 1], got {self.budget_fraction}")
        if self.ensemble is not None and self.ensemble < 1:
            raise SettingError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.cold_samples is not None and self.cold_samples < 0:
            raise SettingError(f"cold_samples must be >= 0, got {self.cold_samples}")
        if self.n_samples < 1:
            raise SettingError(f"n_samples must be >= 1, got {self.n_samples}")
        if not 0 < self.warm_start_level <= 1:
            raise SettingError(f"warm_start_level must lie in (0, 1], got {self.warm_start_level}")
        if self.warm_shift < 0:
            raise SettingError(f"warm_shift must be >= 0, got {self.warm_shift}")


@dataclass(frozen=True, eq=False)
class Plan:
    """The result of one replan for ``B`` environments (numpy arrays)."""

    states: np.ndarray
    """``(B, S, H, obs_dim)`` planned states (unnormalised); ``states[:, :, 0]`` is the observation."""
    chosen: np.ndarray
    """``(B,)`` index of the chosen sample per environment (:func:`choose`: the best predicted value
    among the samples predicted within the remaining budget)."""
    actions: np.ndarray
    """``(B, act_dim)`` the action to take now: the action model's toward the chosen plan's state
    ``action_gap`` steps on when the model has one, else the plan's first action when the model
    plans actions, else inverse dynamics on its first two states."""
    values: np.ndarray
    """``(B, S)`` predicted value of every sampled plan (the QN-normalised reward-to-go; the
    guided energy for TREBI; 0 without an energy model)."""
    costs: np.ndarray
    """``(B, S)`` predicted cost-to-go of every sampled plan (NaN without a cost head)."""
    remaining_budget: np.ndarray
    """``(B,)`` the budget condition used: the remaining budget clipped at 0, times the planner's
    ``budget_fraction``."""
    planned_actions: np.ndarray | None = None
    """``(B, S, H, act_dim)`` planned actions when the model plans them, else ``None``."""

    @property
    def best_states(self) -> np.ndarray:
        """``(B, H, obs_dim)`` the chosen plan of each environment."""
        return self.states[np.arange(len(self.chosen)), self.chosen]

    @property
    def best_actions(self) -> np.ndarray | None:
        """``(B, H, act_dim)`` the chosen plan's actions (``None`` when actions are not planned)."""
        if self.planned_actions is None:
            return None
        return self.planned_actions[np.arange(len(self.chosen)), self.chosen]

    @property
    def value(self) -> np.ndarray:
        """``(B,)`` predicted value of the chosen plan."""
        return self.values[np.arange(len(self.chosen)), self.chosen]


class Planner:
    """``Planner(model, config).plan(obs, remaining_budget, generator, warm_start) -> Plan``."""

    def __init__(self, model: TCDP, config: PlannerConfig | None = None):
        self.model = model
        self.config = config = config or PlannerConfig()
        mc = model.config
        self.sampler = get_sampler(config.sampler or mc.diffusion.sampler)
        self.w_cfg = mc.guidance.w_cfg if config.w_cfg is None else config.w_cfg
        self.beta = mc.guidance.beta if config.beta is None else config.beta
        self.budget_fraction = mc.guidance.budget_fraction if config.budget_fraction is None else config.budget_fraction
        self.ensemble = min(mc.guidance.ensemble if config.ensemble is None else config.ensemble, config.n_samples)
        self.cold_samples = min(mc.guidance.cold_samples if config.cold_samples is None else config.cold_samples,
                                config.n_samples)
        self.choice = config.choice or mc.guidance.choice
        # A variant without a condition samples its unconditional prior (CFG off); one without an
        # energy model has no classifier guidance and picks among samples at random (the first).
        if not model.variant.uses_cfg:
            self.w_cfg = 0.0
        if not model.variant.uses_energy:
            self.beta = 0.0
        self.energy = model.guidance_energy(config.cost_weight)
        # the rule that picks the plan to follow (and the ensemble's candidates), fixed per planner
        self._rule = CHOICE_RULES[self.choice]
        self._penalty = (0.0 if self.energy is None else self.energy.cost_weight,
                         model.energy.budget_scale if isinstance(model.energy, ValueCostEnergy) else 1.0)
        self.clip_x0 = model.clip_bounds()
        k = mc.diffusion.n_diffusion_steps
        steps = config.sampling_steps or mc.diffusion.sampling_steps
        self.timesteps = sampling_timesteps(k, steps)
        self.warm_t = int(round(config.warm_start_level * (k - 1)))
        self.warm_timesteps = sampling_timesteps(k, max(1, int(np.ceil(steps * (self.warm_t + 1) / k))), self.warm_t)
        if config.warm_shift >= mc.horizon:
            raise SettingError(f"warm_shift ({config.warm_shift}) must be smaller than the horizon ({mc.horizon})")

    def plan(self, obs, remaining_budget, generator: torch.Generator | int | None = None, warm_start: Plan | None = None,
             steps_left=None, target_return=None) -> Plan:
        """Plan for ``B`` environments: ``obs (B, obs_dim)``, ``remaining_budget (B,)`` (clipped at 0),
        ``steps_left (B,)`` in the episode (``None``: a whole episode, the model's time scale),
        ``target_return (B,)`` for a variant conditioned on a return (``None``: ``r_max`` of the
        remaining budget)."""
        m = self.model
        was_training = m.training
        m.eval()
        try:
            with torch.inference_mode():
                return self._plan(obs, remaining_budget, generator, warm_start, steps_left, target_return)
        finally:
            m.train(was_training)

    def _plan(self, obs, remaining_budget, generator, warm_start, steps_left, target_return) -> Plan:
        m, s = self.model, self.config.n_samples
        device = m.obs_mean.device
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device)
        if obs_t.ndim != 2 or obs_t.shape[1] != m.obs_dim:
            raise ValueError(f"obs must have shape (B, {m.obs_dim}), got {tuple(obs_t.shape)}")
        b_env = torch.as_tensor(np.asarray(remaining_budget), dtype=torch.float32, device=device).reshape(-1)
        n_env, h, c = obs_t.shape[0], m.horizon, m.x_dim
        if b_env.shape[0] != n_env:
            raise ValueError(f"remaining_budget must have shape ({n_env},), got {tuple(b_env.shape)}")
        b_env = b_env.clamp_min(0.0) * self.budget_fraction  # the budget planned for
        if isinstance(generator, (int, np.integer)):
            generator = torch.Generator(device=device).manual_seed(int(generator))

        # (B, 1, C): the observation (action channels unused), broadcast over the horizon by the fix mask
        x0_known = m.encode(obs_t.unsqueeze(1))
        noise = torch.randn((n_env * s, h, c), generator=generator, device=device)  # (B*S, H, C)
        time_scale = m.config.budget.time_scale or m.horizon
        left = np.full(n_env, time_scale) if steps_left is None else np.asarray(steps_left, dtype=np.float64).reshape(-1)
        if left.shape[0] != n_env:
            raise ValueError(f"steps_left must have shape ({n_env},), got {left.shape}")
        left_env = torch.as_tensor(left, dtype=torch.float32, device=device)  # (B,)
        target = None
        if m.variant.condition.uses_return:
            if target_return is None:
                target = m.target_return(b_env)  # (B,)
            else:
                target = torch.as_tensor(np.asarray(target_return), dtype=torch.float32, device=device).reshape(-1)
                if target.shape[0] != n_env:
                    raise ValueError(f"target_return must have shape ({n_env},), got {tuple(target.shape)}")
            target = target.clamp_min(0.0)

        def sample(x, timesteps, per_env: int):
            """Denoise ``x (B*per_env, H, C)`` along ``timesteps``, each environment's condition repeated."""
            rep = lambda v: None if v is None else v.repeat_interleave(per_env, 0)  # noqa: E731
            model_fn = guided_eps(m.backbone, m.encoder, rep(b_env), m.alphas_cumprod, self.w_cfg, self.beta,
                                  self.energy, steps_left=rep(left_env), target_return=rep(target))
            return self.sampler(model_fn, x, m.alphas_cumprod, timesteps, m.fix_mask, rep(x0_known), self.clip_x0)

        if warm_start is None:
            x = sample(noise, self.timesteps, s)  # (B*S, H, C)
        else:
            prev_s = torch.as_tensor(warm_start.best_states, dtype=torch.float32, device=device)  # (B, H, obs)
            if prev_s.shape != (n_env, h, m.obs_dim):
                raise ValueError(f"warm_start plan has states {tuple(prev_s.shape)}, expected {(n_env, h, m.obs_dim)}")
            prev_a = warm_start.best_actions
            prev_a = None if prev_a is None else torch.as_tensor(prev_a, dtype=torch.float32, device=device)
            prev = m.encode(prev_s, prev_a)  # (B, H, C)
            k = self.config.warm_shift
            prev = torch.cat([prev[:, k:], prev[:, -1:].expand(n_env, k, c)], dim=1)  # (B, H, C) shifted
            # per environment: its first n_warm samples start from the previous plan, the rest
            # (cold_samples) from their pure noise
            n_warm = s - self.cold_samples
            per_env = noise.reshape(n_env, s, h, c)
            parts = []
            if n_warm:
                t0 = torch.full((n_env * n_warm,), self.warm_t, dtype=torch.long, device=device)
                warm = q_sample(prev.repeat_interleave(n_warm, 0), t0, per_env[:, :n_warm].reshape(-1, h, c),
                                m.alphas_cumprod)
                parts.append(sample(warm, self.warm_timesteps, n_warm))
            if self.cold_samples:
                parts.append(sample(per_env[:, n_warm:].reshape(-1, h, c), self.timesteps, self.cold_samples))
            x = torch.cat([p.reshape(n_env, -1, h, c) for p in parts], dim=1).reshape(n_env * s, h, c)

        budget = b_env.repeat_interleave(s)  # (B*S,)
        left_t = left_env.repeat_interleave(s)  # (B*S,)
        values, costs = self._score(x, budget, left_t, n_env, s)  # (B, S), (B, S)
        chosen, ranked, candidates = self._rule(values, costs, b_env, *self._penalty)  # (B,), (B, S), (B, S)
        xs = x.reshape(n_env, s, h, c)  # (B, S, H, C)
        best = xs[torch.arange(n_env, device=device), chosen]  # (B, H, C)
        states, planned = m.decode(xs)  # (B, S, H, obs), (B, S, H, A) or None
        first = None if planned is None else planned[:, :, 0]  # (B, S, A) planned first actions
        if self.ensemble == 1:  # the chosen plan's action only
            rows = torch.arange(n_env, device=device)
            actions = self._actions(best.unsqueeze(1), None if first is None else first[rows, chosen, None])[:, 0]
        else:
            weights = top_k_weights(ranked, candidates, chosen, self.ensemble)  # (B, S)
            actions = (weights.unsqueeze(-1) * self._actions(xs, first)).sum(dim=1)  # (B, A)
        states[:, :, 0] = obs_t.unsqueeze(1)  # the first state is the observation (exact, not round-tripped)
        return Plan(
            states=states.cpu().numpy(),
            chosen=chosen.cpu().numpy(),
            actions=actions.cpu().numpy(),
            values=values.cpu().numpy(),
            costs=costs.cpu().numpy(),
            remaining_budget=b_env.cpu().numpy(),
            planned_actions=None if planned is None else planned.cpu().numpy(),
        )

    def _actions(self, xs, planned_first):
        """``(B, S, A)`` the first action of plans ``xs (B, S, H, C)`` (encoded): the action model's
        toward the state ``action_gap`` steps on, else inverse dynamics on the first two states,
        else the planned first actions ``planned_first (B, S, A)``."""
        m = self.model
        if m.action_gap:
            return m.act_toward(xs[:, :, 0, : m.obs_dim], xs[:, :, m.action_gap, : m.obs_dim])
        if planned_first is None:
            return m.inv_dyn(xs[:, :, 0, : m.obs_dim], xs[:, :, 1, : m.obs_dim])
        return planned_first

    def _score(self, x, budget, steps_left, n_env: int, s: int):
        """Predicted value and cost-to-go (raw cost units) of clean plans ``x (B*S, H, C)``."""
        m = self.model
        t_clean = torch.zeros(n_env * s, dtype=torch.long, device=x.device)
        nan = torch.full((n_env, s), float("nan"), device=x.device)
        if isinstance(m.energy, ValueCostEnergy):
            value, cost = m.energy.heads(x, t_clean, budget, steps_left)
            return value.reshape(n_env, s), (cost * m.energy.budget_scale).reshape(n_env, s)
        if self.energy is None:
            return torch.zeros(n_env, s, device=x.device), nan  # no value model: the first sample
        return self.energy(x, t_clean, budget, steps_left).reshape(n_env, s), nan


def ensemble_weights(values: torch.Tensor, costs: torch.Tensor, remaining_budget: torch.Tensor, chosen: torch.Tensor,
                     k: int) -> torch.Tensor:
    """``(B, S)`` weights averaging the actions of the ``k`` highest-valued samples among those
    whose predicted cost-to-go fits the remaining budget (equal weights; fewer members when fewer
    fit); the ``chosen`` sample alone where none fits or there is no cost prediction."""
    return top_k_weights(values, costs <= remaining_budget.reshape(-1, 1), chosen, k)  # fits: False where NaN


def top_k_weights(ranked: torch.Tensor, candidates: torch.Tensor, chosen: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, S)`` equal weights on the ``k`` highest-``ranked`` samples among the ``candidates``
    (``(B, S)`` bool; fewer members when fewer are candidates); the ``chosen`` sample alone where
    none is."""
    masked = torch.where(candidates, ranked, torch.full_like(ranked, -torch.inf))
    top = masked.topk(min(k, ranked.shape[1]), dim=1).indices  # (B, k)
    member = torch.zeros_like(candidates).scatter(1, top, True) & candidates
    alone = torch.zeros_like(candidates).scatter(1, chosen.reshape(-1, 1), True)
    member = torch.where(member.any(dim=1, keepdim=True), member, alone)
    weights = member.to(ranked.dtype)
    return weights / weights.sum(dim=1, keepdim=True)


def energy_scores(values: torch.Tensor, costs: torch.Tensor, remaining_budget: torch.Tensor, cost_weight: float,
                  budget_scale: float) -> torch.Tensor:
    """``(B, S)`` the guided energy of each sample, ``value - cost_weight * max(cost - b, 0) /
    budget_scale`` (:func:`~tcdp_lib.method.guidance.reward_cost_energy` on scaled costs): what the
    ``"energy"`` choice ranks by. Where there is no cost prediction (NaN) the value alone."""
    b = remaining_budget.reshape(-1, 1) / budget_scale
    scored = reward_cost_energy(values, torch.nan_to_num(costs, nan=0.0) / budget_scale, b, cost_weight)
    return torch.where(torch.isnan(costs), values, scored)


def choose(values: torch.Tensor, costs: torch.Tensor, remaining_budget: torch.Tensor) -> torch.Tensor:
    """``(B,)`` index of the plan to follow among ``S`` samples: the highest value among those whose
    predicted cost-to-go is within the remaining budget; the cheapest when none is; the highest
    value when there is no cost prediction (NaN)."""
    fits = costs <= remaining_budget.reshape(-1, 1)  # (B, S); False where NaN
    best_fit = torch.where(fits, values, torch.full_like(values, -torch.inf)).argmax(dim=1)
    cheapest = torch.nan_to_num(costs, nan=torch.inf).argmin(dim=1)
    no_cost = torch.isnan(costs).all(dim=1)
    return torch.where(fits.any(dim=1), best_fit, torch.where(no_cost, values.argmax(dim=1), cheapest))


def _feasible_rule(values, costs, remaining_budget, cost_weight, budget_scale):
    """``"feasible"``: :func:`choose`; the ensemble's candidates are the samples that fit."""
    return choose(values, costs, remaining_budget), values, costs <= remaining_budget.reshape(-1, 1)


def _energy_rule(values, costs, remaining_budget, cost_weight, budget_scale):
    """``"energy"``: the highest :func:`energy_scores`; every sample is a candidate of the ensemble."""
    ranked = energy_scores(values, costs, remaining_budget, cost_weight, budget_scale)
    return ranked.argmax(dim=1), ranked, torch.ones_like(ranked, dtype=torch.bool)


CHOICE_RULES = {"feasible": _feasible_rule, "energy": _energy_rule}
"""Per ``GuidanceConfig.choice``: ``rule(values, costs, remaining_budget, cost_weight, budget_scale)
-> (chosen (B,), ranking (B, S), ensemble candidates (B, S))``."""
