"""TCDP: the training batch and the model that holds the five parts (its config tree lives in
``tcdp_lib.method.config``).

``TCDP`` is a container, in CleanDiffuser's split: a ``DiT1D`` backbone, a ``BudgetEncoder``
(owning CFG dropout), a ``ValueCostEnergy`` (reward guidance on the QN-normalised reward-to-go,
with a cost-to-go head), an ``InverseDynamics`` model, and the normaliser, the data's bounds and
the noise schedule as buffers. Each loss takes a ``Batch``; sampling lives in ``tcdp_lib.planner``.

Data flow of a training step::

    pairs = draw_pairs(rng, windows.cost_to_go, windows.episode_cost, prior, batch_size)  # CTGDA
    batch = make_batch(windows, pairs)        # states, remaining budget b_t, QN target
    loss = model.loss_diffusion(batch) + model.loss_energy(batch) + model.loss_inv(batch)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from tcdp_lib.data.episodes import Episodes
from tcdp_lib.data.frontier import best_return_table
from tcdp_lib.method.condition import BudgetEncoder
from tcdp_lib.method.config import (  # noqa: F401  (the configs' home is config.py)
    BackboneConfig,
    BudgetConfig,
    DiffusionConfig,
    EnergyConfig,
    GuidanceConfig,
    InverseDynamicsConfig,
    TCDPConfig,
)
from tcdp_lib.method.ctgda import BudgetPrior, PairSample, cost_balanced_cdf
from tcdp_lib.method.diffusion import (
    apply_conditioning,
    epsilon_loss,
    make_alphas_cumprod,
    q_sample,
)
from tcdp_lib.method.dit import dit_from_size
from tcdp_lib.method.guidance import RewardCostEnergy, ValueCostEnergy
from tcdp_lib.method.inverse_dynamics import InverseDynamics
from tcdp_lib.method.qn import ToGoQN
from tcdp_lib.method.variants import HindsightPairs, Pairs, Variant, get_variant
from tcdp_lib.method.windows import Normalizer, Windows


# --------------------------------------------------------------------------------------------
#                                        Training batch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Batch:
    """One training batch of (window, budget) pairs, as tensors."""

    states: torch.Tensor
    """``(B, H, obs_dim)`` raw (unnormalised) window states."""
    actions: torch.Tensor
    """``(B, H, act_dim)`` actions (zero past the episode end)."""
    state_mask: torch.Tensor
    """``(B, H)`` bool: real states (not padding)."""
    action_mask: torch.Tensor
    """``(B, H)`` bool: real actions / transitions."""
    remaining_budget: torch.Tensor
    """``(B,)`` CTGDA condition ``b_t = C_t + (b - C_0)``."""
    target: torch.Tensor
    """``(B,)`` the energy's value target: QN of the window's reward-to-go at its remaining budget
    (``qn.ToGoQN``); NaN where no reference window is feasible."""
    steps_left: torch.Tensor
    """``(B,)`` steps from the window's first state to its episode's end."""
    reward_to_go: torch.Tensor
    """``(B,)`` reward-to-go of the window's episode from its first state."""
    cost_to_go: torch.Tensor
    """``(B,)`` cost-to-go ``C_t`` of the window's episode from its first state."""
    episode_return: torch.Tensor
    """``(B,)`` return ``R`` of the window's episode."""

    def to(self, device) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


def make_batch(windows: Windows, pairs: PairSample, device="cpu", qn: ToGoQN | None = None) -> Batch:
    """Gather the pairs' windows and compute their QN targets (CTGDA + QN in one place).
    ``qn``: the reward-to-go reference of ``windows`` (built here when not given; a training
    loop builds it once)."""
    wb = windows.gather(pairs.window_idx)
    qn = qn if qn is not None else ToGoQN.from_windows(windows)
    target = qn(wb.reward_to_go, pairs.remaining_budget, wb.steps_left)
    t = lambda a, dtype=torch.float32: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    return Batch(
        states=t(wb.states),
        actions=t(wb.actions),
        state_mask=t(wb.state_mask, torch.bool),
        action_mask=t(wb.action_mask, torch.bool),
        remaining_budget=t(pairs.remaining_budget),
        target=t(target),
        steps_left=t(wb.steps_left),
        reward_to_go=t(wb.reward_to_go),
        cost_to_go=t(wb.cost_to_go),
        episode_return=t(wb.episode_return),
    )


def sample_batch(rng: np.random.Generator, windows: Windows, prior: BudgetPrior, batch_size: int, device="cpu",
                 pairs: Pairs | str = "ctgda", qn: ToGoQN | None = None, window_cdf: np.ndarray | None = None) -> Batch:
    """``batch_size`` pairs turned into a ``Batch``: CTGDA pairs (rejection on the joint), or
    with ``pairs="hindsight"`` uniform windows labelled with their own cost-to-go (a variant's
    ``pairs`` strategy, or its name). ``window_cdf``: the CTGDA windows' sampling probabilities
    (``ctgda.cost_balanced_cdf``; ``None``: uniform)."""
    if isinstance(pairs, str):
        known = {p.name: p for p in (Pairs(), HindsightPairs())}
        if pairs not in known:
            raise ValueError(f"unknown pairs {pairs!r}; valid: {sorted(known)}")
        pairs = known[pairs]
    return make_batch(windows, pairs.draw(rng, windows, prior, batch_size, window_cdf), device, qn)


def best_return_frontier(returns, costs) -> tuple[np.ndarray, np.ndarray]:
    """``(costs, best)``: the episodes' distinct costs ascending and, for each, the best return of
    an episode costing at most that much (``r_max(b)`` is ``best`` at the last cost ``<= b``);
    the data layer's frontier (``tcdp_lib.data.frontier``) as arrays for the model's buffers."""
    return best_return_table(returns, costs)


def frontier_from_state_dict(state_dict: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The best-return frontier saved in a state dict (CDD), or ``None``."""
    if "frontier_cost" not in state_dict:
        return None
    return state_dict["frontier_cost"].cpu().numpy(), state_dict["frontier_return"].cpu().numpy()


# --------------------------------------------------------------------------------------------
#                                             TCDP
# --------------------------------------------------------------------------------------------


class TCDP(nn.Module):
    """Backbone + budget encoder + energy + inverse dynamics + normaliser/schedule buffers.

    ``config.budget.b_max`` and ``config.budget.budget_scale`` must be resolved (not ``None``);
    ``TCDP.from_episodes`` resolves them from the data.
    """

    def __init__(self, config: TCDPConfig, obs_dim: int, act_dim: int, normalizer: Normalizer, action_low, action_high,
                 frontier: tuple[np.ndarray, np.ndarray] | None = None, bounds: tuple[np.ndarray, np.ndarray] | None = None):
        super().__init__()
        if config.budget.b_max is None or config.budget.budget_scale is None:
            raise ValueError(
                "config.budget.b_max and budget_scale must be set; build with TCDP.from_episodes "
                f"to take them from the data (got b_max={config.budget.b_max}, budget_scale={config.budget.budget_scale})"
            )
        if normalizer.obs_dim != obs_dim:
            raise ValueError(f"normaliser has obs_dim {normalizer.obs_dim}, model has {obs_dim}")
        self.config = config
        self.variant: Variant = get_variant(config.variant)
        self.obs_dim, self.act_dim, self.horizon = int(obs_dim), int(act_dim), config.horizon
        self.plan_actions = bool(config.plan_actions)
        self.x_dim = self.obs_dim + (self.act_dim if self.plan_actions else 0)
        """Channels of a planned trajectory: the state, and the action when actions are planned."""
        if self.variant.needs_return_scale and not (config.budget.return_scale and config.budget.return_scale > 0):
            raise ValueError(f"variant {config.variant!r} needs config.budget.return_scale > 0 "
                             f"(TCDP.from_episodes takes it from the data), got {config.budget.return_scale}")
        size = config.backbone.size()
        self.backbone = dit_from_size(size, self.x_dim, config.horizon, config.backbone.learned_pos_embed)
        time_scale = config.budget.time_scale if config.budget.condition_on_time else None
        if config.budget.condition_on_time and time_scale is None:
            raise ValueError("config.budget.time_scale must be set when condition_on_time is on "
                             "(TCDP.from_episodes takes it from the data)")
        return_scale = config.budget.return_scale if self.variant.condition.uses_return else None
        self.encoder = BudgetEncoder(size.d_model, config.budget.budget_scale, config.budget.p_uncond,
                                     time_scale=time_scale, return_scale=return_scale)
        self.energy = self.variant.energy.build(config, self.x_dim)
        if self.variant.condition.uses_return:
            if frontier is None:
                raise ValueError(f"variant {config.variant!r} needs the data's best-return frontier "
                                 "(TCDP.from_episodes computes it)")
            self.register_buffer("frontier_cost", torch.as_tensor(np.asarray(frontier[0]), dtype=torch.float32))
            self.register_buffer("frontier_return", torch.as_tensor(np.asarray(frontier[1]), dtype=torch.float32))
        self.inv_dyn = InverseDynamics(obs_dim, act_dim, action_low, action_high, hidden=config.inverse_dynamics.hidden)
        self.action_gap = int(config.action_model.gap)
        """Planned steps ahead the action model reads (``config.action_model``); 0: no action model."""
        if self.action_gap:
            # built on its own random stream, so that the rest of the model (and its training,
            # which never touches these weights) is the same with or without it
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.action_gap)
                self.action_model = InverseDynamics(obs_dim, act_dim, action_low, action_high,
                                                    hidden=config.action_model.hidden)
        self.register_buffer("obs_mean", torch.as_tensor(normalizer.mean))
        self.register_buffer("obs_std", torch.as_tensor(normalizer.std))
        self.register_buffer("alphas_cumprod", make_alphas_cumprod(config.diffusion.schedule, config.diffusion.n_diffusion_steps))
        # each dimension's range in the normalised training data: the planner clamps x0 to it
        # (planned actions are scaled to [-1, 1] by the action bounds: that is their range)
        low, high = bounds if bounds is not None else (np.full(obs_dim, -4.0), np.full(obs_dim, 4.0))
        low = np.r_[np.asarray(low, dtype=np.float32).reshape(obs_dim), -np.ones(self.x_dim - obs_dim)]
        high = np.r_[np.asarray(high, dtype=np.float32).reshape(obs_dim), np.ones(self.x_dim - obs_dim)]
        self.register_buffer("x_low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("x_high", torch.as_tensor(high, dtype=torch.float32))
        fix = torch.zeros(1, config.horizon, self.x_dim, dtype=torch.bool)
        fix[:, 0, :obs_dim] = True  # the first state is inpainted with the observation
        self.register_buffer("fix_mask", fix, persistent=False)
        # the first planned action's weight in the denoising loss (config.action_weight)
        entry_weight = torch.ones(1, config.horizon, self.x_dim)
        if self.plan_actions:
            entry_weight[:, 0, obs_dim:] = float(config.action_weight)
        self.register_buffer("entry_weight", entry_weight, persistent=False)

    # ---------------------------------------------------------------- construction, I/O

    @classmethod
    def from_episodes(cls, episodes: Episodes, config: TCDPConfig | None = None, action_low=None, action_high=None) -> "TCDP":
        """Resolve the data-dependent config fields and build the model.

        ``b_max`` defaults to the largest episode cost, ``budget_scale`` to ``b_max``; the
        normaliser is fitted on the observations; action bounds default to the data's min/max.
        """
        config = config or TCDPConfig()
        b = config.budget
        b_max = b.b_max if b.b_max is not None else float(np.max(episodes.cost_returns))
        scale = b.budget_scale if b.budget_scale is not None else b_max
        if not scale > 0:
            raise ValueError(f"budget_scale resolved to {scale} (the data has no cost); set config.budget.budget_scale")
        time_scale = b.time_scale if b.time_scale is not None else float(np.max(episodes.lengths))
        return_scale = b.return_scale if b.return_scale is not None else float(np.max(np.abs(episodes.returns)))
        slack = b.slack_scale if b.slack_scale is not None else 0.05 * b_max  # as ``budget_prior``
        config = dataclasses.replace(config, budget=dataclasses.replace(
            b, b_max=b_max, budget_scale=scale, time_scale=time_scale, return_scale=return_scale or 1.0,
            slack_scale=slack))
        low = episodes.actions.min(0) if action_low is None else action_low
        high = episodes.actions.max(0) if action_high is None else action_high
        normalizer = Normalizer.fit(episodes.observations)
        z = normalizer.normalize(np.concatenate([episodes.observations, episodes.next_observations]))
        frontier = best_return_frontier(episodes.returns, episodes.cost_returns)
        return cls(config, episodes.obs_dim, episodes.act_dim, normalizer, low, high, frontier=frontier,
                   bounds=(z.min(0), z.max(0)))

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.obs_mean.cpu().numpy(), self.obs_std.cpu().numpy())

    def budget_prior(self) -> BudgetPrior:
        """The CTGDA prior of this model's config: ``U[b_min, b_max]`` and the slack pairs."""
        b = self.config.budget
        slack = 0.05 * b.b_max if b.slack_scale is None else b.slack_scale
        return BudgetPrior(b.b_min, b.b_max, p_slack=b.p_slack, slack_scale=slack, power=b.prior_power)

    def window_cdf(self, windows: Windows) -> np.ndarray | None:
        """The CTGDA windows' sampling probabilities of this model's config (``cost_balance``)."""
        return cost_balanced_cdf(windows.episode_cost, self.config.budget.cost_balance)

    def clip_bounds(self, margin: float | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(low, high)`` per dimension for the sampler's x0 clamp (the data's normalised range
        widened by ``margin``, default ``config.diffusion.clip_margin``); ``None``: no clamp."""
        margin = self.config.diffusion.clip_margin if margin is None else margin
        if margin is None:
            return None
        return self.x_low - margin, self.x_high + margin

    # ---------------------------------------------------------------- helpers

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.obs_mean) / self.obs_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.obs_std + self.obs_mean

    def encode(self, states: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """A trajectory in the model's space ``(N, H, x_dim)``: normalised states, and, when actions
        are planned, actions scaled from their bounds to [-1, 1] (zeros when ``actions`` is None)."""
        z = self.normalize(states)
        if not self.plan_actions:
            return z
        if actions is None:
            return torch.cat([z, z.new_zeros(*z.shape[:-1], self.act_dim)], dim=-1)
        low, high = self.inv_dyn.action_low, self.inv_dyn.action_high
        a = 2 * (actions.to(z.dtype) - low) / (high - low).clamp_min(1e-6) - 1
        return torch.cat([z, a], dim=-1)

    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(states, actions)`` of a trajectory in the model's space (actions ``None`` unless planned,
        else clipped to their bounds)."""
        states = self.unnormalize(x[..., : self.obs_dim])
        if not self.plan_actions:
            return states, None
        low, high = self.inv_dyn.action_low, self.inv_dyn.action_high
        a = (x[..., self.obs_dim:].clamp(-1, 1) + 1) / 2 * (high - low) + low
        return states, a

    def valid_entries(self, batch: Batch) -> torch.Tensor:
        """``(B, H, x_dim)`` bool: real entries of the batch's trajectories (states up to the
        episode's final state; actions only where a transition follows)."""
        valid = batch.state_mask.unsqueeze(-1).expand(*batch.state_mask.shape, self.obs_dim)
        if self.plan_actions:
            act = batch.action_mask.unsqueeze(-1).expand(*batch.action_mask.shape, self.act_dim)
            valid = torch.cat([valid, act], dim=-1)
        return valid

    def _noisy(self, batch: Batch, generator: torch.Generator | None):
        """``x0`` in the model's space, a timestep, noise, and the inpainted noisy ``x_k``."""
        x0 = self.encode(batch.states, batch.actions)  # (B, H, C)
        n = x0.shape[0]
        k = torch.randint(0, self.alphas_cumprod.shape[0], (n,), generator=generator, device=x0.device)  # (B,)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)  # (B, H, C)
        x_k = apply_conditioning(q_sample(x0, k, noise, self.alphas_cumprod), self.fix_mask, x0)  # (B, H, C)
        return x0, k, noise, x_k

    # ---------------------------------------------------------------- losses

    def condition(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """The backbone's ``(B, D)`` condition for a training batch, by variant (CFG dropout
        applied by the encoder in training mode; the null embedding for an unconditional prior)."""
        return self.variant.condition.training(self.encoder, batch, generator)  # (B, D)

    def loss_diffusion(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Epsilon MSE on real, non-inpainted entries; the encoder applies CFG dropout in training."""
        _, k, noise, x_k = self._noisy(batch, generator)
        eps = self.backbone(x_k, k, self.condition(batch, generator))  # (B, H, C)
        return epsilon_loss(eps, noise, self.valid_entries(batch), self.fix_mask, self.entry_weight)

    def energy_targets(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """The energy's regression targets by variant (value or reward first, then the scaled
        cost-to-go); ``()`` without an energy model."""
        return self.variant.energy.targets(batch, self.config)

    def loss_energy(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """MSE of the energy against its targets (rows with a NaN target are skipped); 0 for a
        variant without an energy model."""
        if self.energy is None:
            return batch.remaining_budget.new_zeros(())
        _, k, _, x_k = self._noisy(batch, generator)
        return self.variant.energy.loss(self.energy, x_k, k, batch, self.config)

    # ---------------------------------------------------------------- planning helpers

    def guidance_energy(self, cost_weight: float | None = None):
        """The object whose gradient guides sampling (``gradients(x, t, b, steps_left)``), or ``None``."""
        if self.energy is None:
            return None
        if isinstance(self.energy, (RewardCostEnergy, ValueCostEnergy)):
            return self.energy.weighted(self.config.guidance.cost_weight if cost_weight is None else cost_weight)
        return self.energy

    def target_return(self, budget: torch.Tensor) -> torch.Tensor:
        """``r_max(b)``: the best return of a data episode with ``C <= b`` (the cheapest
        episode's best return when none is that cheap), ``(N,)``. CDD's return condition."""
        if not self.variant.condition.uses_return:
            raise ValueError(f"variant {self.config.variant!r} has no return condition")
        idx = torch.searchsorted(self.frontier_cost, budget.to(self.frontier_cost.dtype).contiguous(), right=True) - 1
        return self.frontier_return[idx.clamp_min(0)]

    def load_all_but_action_model(self, state: dict) -> None:
        """Load ``state`` without its action model's weights (if any): every other weight must fit
        exactly; the action model keeps its own (to be fitted). ``KeyError`` otherwise."""
        state = {k: v for k, v in state.items() if not k.startswith("action_model.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("action_model.") for k in missing):
            raise KeyError(f"weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")

    def act_toward(self, s: torch.Tensor, s_ahead: torch.Tensor) -> torch.Tensor:
        """The action model's action from normalised states ``s (B, obs_dim)`` toward the planned
        normalised states ``s_ahead (B, obs_dim)`` ``action_gap`` steps on, ``(B, act_dim)``."""
        if not self.action_gap:
            raise ValueError("this model has no action model (config.action_model.gap is 0)")
        return self.action_model(s, s_ahead)

    def loss_inv(self, batch: Batch) -> torch.Tensor:
        """Inverse dynamics MSE on real transitions ``(s_k, s_{k+1}) -> a_k`` of the windows."""
        s = self.normalize(batch.states)  # (B, H, C)
        return self.inv_dyn.loss(s[:, :-1], s[:, 1:], batch.actions[:, :-1], batch.action_mask[:, :-1])
