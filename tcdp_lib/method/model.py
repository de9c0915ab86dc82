"""TCDP: the config tree, the training batch, and the model that holds the five parts.

``TCDP`` is a container, in CleanDiffuser's split: a ``DiT1D`` backbone, a ``BudgetEncoder``
(owning CFG dropout), an ``EnergyModel`` (reward guidance on QN-normalised returns), an
``InverseDynamics`` model, and the observation normaliser and noise schedule as buffers. Each
loss takes a ``Batch``; sampling lives in ``tcdp_lib.planner``.

Data flow of a training step::

    pairs = draw_pairs(rng, windows.cost_to_go, windows.episode_cost, prior, batch_size)  # CTGDA
    batch = make_batch(windows, pairs)        # states, remaining budget b_t, QN target
    loss = model.loss_diffusion(batch) + model.loss_energy(batch) + model.loss_inv(batch)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from tcdp_lib.configs import config_from_dict
from tcdp_lib.data.episodes import Episodes
from tcdp_lib.method.condition import BudgetEncoder
from tcdp_lib.method.ctgda import BudgetPrior, PairSample, draw_pairs, hindsight_pairs
from tcdp_lib.method.diffusion import (
    SAMPLERS,
    SCHEDULES,
    apply_conditioning,
    epsilon_loss,
    first_state_mask,
    make_alphas_cumprod,
    masked_mse,
    q_sample,
)
from tcdp_lib.method.dit import DIT_PRESETS, DiTSize, dit_from_size
from tcdp_lib.method.guidance import EnergyModel, RewardCostEnergy
from tcdp_lib.method.inverse_dynamics import InverseDynamics
from tcdp_lib.method.qn import quantile_normalize_pairs
from tcdp_lib.method.variants import Variant, get_variant
from tcdp_lib.method.windows import Normalizer, Windows


# --------------------------------------------------------------------------------------------
#                                          Config tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneConfig:
    """The DiT backbone: a preset, optionally with some sizes overridden (e.g. tiny test models)."""

    preset: str = "S"
    """Key of ``DIT_PRESETS`` (``S`` is the 30 ms-replan default)."""
    d_model: int | None = None
    """Token width; ``None`` takes the preset's."""
    depth: int | None = None
    """Number of DiT blocks; ``None`` takes the preset's."""
    n_heads: int | None = None
    """Attention heads; ``None`` takes the preset's."""
    patch_size: int | None = None
    """Time steps per token; ``None`` takes the preset's. Must divide the horizon."""
    learned_pos_embed: bool = False
    """Learn the position embedding (initialised at sin-cos) instead of keeping sin-cos fixed."""

    def __post_init__(self):
        if self.preset not in DIT_PRESETS:
            raise ValueError(f"unknown DiT preset {self.preset!r}; choose one of {sorted(DIT_PRESETS)}")

    def size(self) -> DiTSize:
        """The preset with the overrides applied."""
        over = {k: getattr(self, k) for k in ("d_model", "depth", "n_heads", "patch_size") if getattr(self, k) is not None}
        return dataclasses.replace(DIT_PRESETS[self.preset], **over)


@dataclass(frozen=True)
class BudgetConfig:
    """The budget condition: CTGDA's budget prior, its scale, and CFG dropout."""

    p_uncond: float = 0.25
    """Probability that a training row gets the null (unconditional) embedding (CFG dropout)."""
    b_min: float = 0.0
    """Lower end of the uniform CTGDA budget prior."""
    b_max: float | None = None
    """Upper end of the budget prior; ``None``: the dataset's largest episode cost (training
    runs set it from the task's budgets, see ``tcdp_lib.runs.train.budget_prior_max``).
    Episodes costlier than ``b_max`` never enter a training pair."""
    budget_scale: float | None = None
    """Budgets are divided by this before embedding; ``None``: ``b_max``."""
    condition_on_time: bool = True
    """Condition also on the steps left in the episode (see ``BudgetEncoder``)."""
    time_scale: float | None = None
    """Episode length used to scale the steps left; ``None``: the data's longest episode."""
    return_scale: float | None = None
    """Returns are divided by this (CDD's return condition, the ``return`` and ``reward_cost``
    energies); ``None``: the data's largest episode return."""

    def __post_init__(self):
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must lie in [0, 1), got {self.p_uncond}")
        if self.b_max is not None and not self.b_min <= self.b_max:
            raise ValueError(f"need b_min <= b_max, got b_min={self.b_min}, b_max={self.b_max}")
        if self.budget_scale is not None and not self.budget_scale > 0:
            raise ValueError(f"budget_scale must be > 0, got {self.budget_scale}")


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and sampler."""

    n_diffusion_steps: int = 100
    """Training timesteps ``K``."""
    schedule: str = "cosine"
    """Key of ``diffusion.SCHEDULES``."""
    sampler: str = "ddim"
    """Key of ``diffusion.SAMPLERS`` used by the planner."""
    sampling_steps: int = 10
    """Model calls per plan (10-20 keeps a replan near 30 ms with the S backbone)."""
    clip_x0: float | None = 4.0
    """Clamp predicted normalised ``x0`` to ``[-clip_x0, clip_x0]`` while sampling; ``None``: no
    clamp. Needed: at the noisiest step of the cosine schedule ``sqrt(alpha_bar)`` is ~5e-4, so
    an unclamped ``x0 = (x - sqrt(1 - a) eps) / sqrt(a)`` turns a small noise error into states
    tens of standard deviations away (measured: plans with mean |state| of 30-100 std)."""

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {self.schedule!r}; choose one of {sorted(SCHEDULES)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")
        if self.n_diffusion_steps < 2:
            raise ValueError(f"n_diffusion_steps must be >= 2, got {self.n_diffusion_steps}")
        if not 1 <= self.sampling_steps <= self.n_diffusion_steps:
            raise ValueError(f"sampling_steps must lie in [1, {self.n_diffusion_steps}], got {self.sampling_steps}")


@dataclass(frozen=True)
class GuidanceConfig:
    """Guidance scales at planning time (starting points, to tune per task in the notebooks)."""

    w_cfg: float = 4.0
    """CFG scale on the budget: 0 unconditional, 1 conditional, > 1 stronger budget pressure.
    4 kept BallCircle and BallRun safe at all three budgets; 2.5 did not (BallCircle at 10 and 20)."""
    beta: float = 0.1
    """Energy guidance scale toward higher QN-normalised return; 0 switches it off. The pull on the
    sample grows like ``sqrt(1 - a) / sqrt(a)`` at the noisiest steps, so start small."""
    cost_weight: float = 10.0
    """TREBI's penalty ``n`` on predicted cost beyond the remaining budget (other variants ignore it)."""


@dataclass(frozen=True)
class EnergyConfig:
    """The energy (return) model."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP (2 x 256: ~0.3 ms a gradient on CPU)."""
    t_embed_dim: int = 32
    """Width of the sinusoidal diffusion-step embedding."""
    budget_conditioned: bool = True
    """Feed the scaled remaining budget to the energy (the QN target depends on the budget)."""


@dataclass(frozen=True)
class InverseDynamicsConfig:
    """The inverse dynamics model."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP."""


@dataclass(frozen=True)
class TCDPConfig:
    """Everything that defines a TCDP model; saved with every checkpoint."""

    variant: str = "tcdp"
    """Key of ``variants.VARIANTS``: TCDP, or a diffusion planner compared with it (``trebi``,
    ``cdd``) or an ablation, all on this backbone."""
    horizon: int = 32
    """Planned states per trajectory ``H`` (a multiple of the backbone's patch size)."""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    """The DiT backbone."""
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    """Budget prior, scale and CFG dropout."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Noise schedule and sampler."""
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    """Guidance scales."""
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    """The energy model."""
    inverse_dynamics: InverseDynamicsConfig = field(default_factory=InverseDynamicsConfig)
    """The inverse dynamics model."""

    def __post_init__(self):
        get_variant(self.variant)
        p = self.backbone.size().patch_size
        if self.horizon < 2 or self.horizon % p:
            raise ValueError(f"horizon ({self.horizon}) must be >= 2 and a multiple of the patch size ({p})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TCDPConfig":
        return config_from_dict(cls, d)


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
    """``(B,)`` QN of the window's episode return at its sampled budget ``b``."""
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


def make_batch(windows: Windows, pairs: PairSample, device="cpu") -> Batch:
    """Gather the pairs' windows and compute their QN targets (CTGDA + QN in one place)."""
    wb = windows.gather(pairs.window_idx)
    ep = windows.episodes
    target = quantile_normalize_pairs(ep.returns, ep.cost_returns, wb.episode, pairs.budget)
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
                 pairs: str = "ctgda") -> Batch:
    """``batch_size`` pairs turned into a ``Batch``: CTGDA pairs (rejection on the joint), or
    with ``pairs="hindsight"`` uniform windows labelled with their own cost-to-go."""
    if pairs == "ctgda":
        sample = draw_pairs(rng, windows.cost_to_go, windows.episode_cost, prior, batch_size)
    elif pairs == "hindsight":
        sample = hindsight_pairs(rng, windows.cost_to_go, windows.episode_cost, batch_size)
    else:
        raise ValueError(f"unknown pairs {pairs!r}; valid: 'ctgda', 'hindsight'")
    return make_batch(windows, sample, device)


def best_return_frontier(returns, costs) -> tuple[np.ndarray, np.ndarray]:
    """``(costs, best)``: the episodes' distinct costs ascending and, for each, the best return of
    an episode costing at most that much (``r_max(b)`` is ``best`` at the last cost ``<= b``)."""
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    if r.shape != c.shape or r.size == 0:
        raise ValueError(f"returns and costs must be non-empty and of one length, got {r.shape} and {c.shape}")
    order = np.argsort(c, kind="stable")
    c_sorted, best = c[order], np.maximum.accumulate(r[order])
    last = np.r_[c_sorted[1:] != c_sorted[:-1], True]  # the last entry of each distinct cost
    return c_sorted[last], best[last]


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
                 frontier: tuple[np.ndarray, np.ndarray] | None = None):
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
        needs_return_scale = self.variant.condition == "budget_return" or self.variant.energy in ("return", "reward_cost")
        if needs_return_scale and not (config.budget.return_scale and config.budget.return_scale > 0):
            raise ValueError(f"variant {config.variant!r} needs config.budget.return_scale > 0 "
                             f"(TCDP.from_episodes takes it from the data), got {config.budget.return_scale}")
        size = config.backbone.size()
        self.backbone = dit_from_size(size, obs_dim, config.horizon, config.backbone.learned_pos_embed)
        time_scale = config.budget.time_scale if config.budget.condition_on_time else None
        if config.budget.condition_on_time and time_scale is None:
            raise ValueError("config.budget.time_scale must be set when condition_on_time is on "
                             "(TCDP.from_episodes takes it from the data)")
        return_scale = config.budget.return_scale if self.variant.condition == "budget_return" else None
        self.encoder = BudgetEncoder(size.d_model, config.budget.budget_scale, config.budget.p_uncond,
                                     time_scale=time_scale, return_scale=return_scale)
        if self.variant.energy in ("qn", "return"):
            self.energy = EnergyModel(
                config.horizon,
                obs_dim,
                hidden=config.energy.hidden,
                t_embed_dim=config.energy.t_embed_dim,
                budget_scale=config.budget.budget_scale if config.energy.budget_conditioned else None,
            )
        elif self.variant.energy == "reward_cost":
            self.energy = RewardCostEnergy(config.horizon, obs_dim, config.budget.budget_scale,
                                           hidden=config.energy.hidden, t_embed_dim=config.energy.t_embed_dim,
                                           cost_weight=config.guidance.cost_weight)
        else:
            self.energy = None
        if self.variant.condition == "budget_return":
            if frontier is None:
                raise ValueError(f"variant {config.variant!r} needs the data's best-return frontier "
                                 "(TCDP.from_episodes computes it)")
            self.register_buffer("frontier_cost", torch.as_tensor(np.asarray(frontier[0]), dtype=torch.float32))
            self.register_buffer("frontier_return", torch.as_tensor(np.asarray(frontier[1]), dtype=torch.float32))
        self.inv_dyn = InverseDynamics(obs_dim, act_dim, action_low, action_high, hidden=config.inverse_dynamics.hidden)
        self.register_buffer("obs_mean", torch.as_tensor(normalizer.mean))
        self.register_buffer("obs_std", torch.as_tensor(normalizer.std))
        self.register_buffer("alphas_cumprod", make_alphas_cumprod(config.diffusion.schedule, config.diffusion.n_diffusion_steps))
        self.register_buffer("fix_mask", first_state_mask(config.horizon, obs_dim), persistent=False)

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
        config = dataclasses.replace(config, budget=dataclasses.replace(
            b, b_max=b_max, budget_scale=scale, time_scale=time_scale, return_scale=return_scale or 1.0))
        low = episodes.actions.min(0) if action_low is None else action_low
        high = episodes.actions.max(0) if action_high is None else action_high
        normalizer = Normalizer.fit(episodes.observations)
        frontier = best_return_frontier(episodes.returns, episodes.cost_returns)
        return cls(config, episodes.obs_dim, episodes.act_dim, normalizer, low, high, frontier=frontier)

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.obs_mean.cpu().numpy(), self.obs_std.cpu().numpy())

    def budget_prior(self) -> BudgetPrior:
        """The CTGDA prior ``U[b_min, b_max]`` of this model's config."""
        return BudgetPrior(self.config.budget.b_min, self.config.budget.b_max)

    def save(self, path) -> None:
        """One file with the config (as a dict), the dimensions and the weights."""
        torch.save(
            {
                "config": self.config.to_dict(),
                "obs_dim": self.obs_dim,
                "act_dim": self.act_dim,
                "state_dict": self.state_dict(),
            },
            Path(path),
        )

    @classmethod
    def load(cls, path, map_location="cpu") -> "TCDP":
        ckpt = torch.load(Path(path), map_location=map_location, weights_only=True)
        sd = ckpt["state_dict"]
        normalizer = Normalizer(sd["obs_mean"].numpy(), sd["obs_std"].numpy())
        model = cls(
            TCDPConfig.from_dict(ckpt["config"]),
            ckpt["obs_dim"],
            ckpt["act_dim"],
            normalizer,
            sd["inv_dyn.action_low"].numpy(),
            sd["inv_dyn.action_high"].numpy(),
            frontier=frontier_from_state_dict(sd),
        )
        model.load_state_dict(sd)
        return model

    # ---------------------------------------------------------------- helpers

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.obs_mean) / self.obs_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.obs_std + self.obs_mean

    def _noisy(self, batch: Batch, generator: torch.Generator | None):
        """Normalised ``x0``, a timestep, noise, and the inpainted noisy ``x_k``."""
        x0 = self.normalize(batch.states)  # (B, H, C)
        n = x0.shape[0]
        k = torch.randint(0, self.alphas_cumprod.shape[0], (n,), generator=generator, device=x0.device)  # (B,)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)  # (B, H, C)
        x_k = apply_conditioning(q_sample(x0, k, noise, self.alphas_cumprod), self.fix_mask, x0)  # (B, H, C)
        return x0, k, noise, x_k

    # ---------------------------------------------------------------- losses

    def condition(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """The backbone's ``(B, D)`` condition for a training batch, by variant (CFG dropout
        applied by the encoder in training mode; the null embedding for an unconditional prior)."""
        n = batch.remaining_budget.shape[0]
        if self.variant.condition == "none":
            return self.encoder.null(n)
        target = batch.reward_to_go if self.variant.condition == "budget_return" else None
        return self.encoder(batch.remaining_budget, generator=generator, steps_left=batch.steps_left,
                            target_return=target)  # (B, D)

    def loss_diffusion(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Epsilon MSE on real, non-inpainted entries; the encoder applies CFG dropout in training."""
        _, k, noise, x_k = self._noisy(batch, generator)
        eps = self.backbone(x_k, k, self.condition(batch, generator))  # (B, H, C)
        return epsilon_loss(eps, noise, batch.state_mask, self.fix_mask)

    def energy_targets(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """The energy model's regression targets, by variant: the QN target (``qn``), the scaled
        episode return (``return``), or the scaled reward-to-go and cost-to-go (``reward_cost``)."""
        kind, b = self.variant.energy, self.config.budget
        if kind == "qn":
            return (batch.target,)
        if kind == "return":
            return (batch.episode_return / b.return_scale,)
        if kind == "reward_cost":
            return batch.reward_to_go / b.return_scale, batch.cost_to_go / b.budget_scale
        return ()

    def loss_energy(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """MSE of the energy against its targets (rows with a NaN target are skipped); 0 for a
        variant without an energy model."""
        if self.energy is None:
            return batch.remaining_budget.new_zeros(())
        _, k, _, x_k = self._noisy(batch, generator)
        targets = self.energy_targets(batch)
        if self.variant.energy == "reward_cost":
            r, c = self.energy.reward(x_k, k), self.energy.cost(x_k, k)  # (B,), (B,)
            ones = torch.ones_like(r, dtype=torch.bool)
            return masked_mse(r, targets[0], ones) + masked_mse(c, targets[1], ones)
        value = self.energy(x_k, k, batch.remaining_budget)  # (B,)
        ok = torch.isfinite(targets[0])
        return masked_mse(value, torch.nan_to_num(targets[0]), ok)

    # ---------------------------------------------------------------- planning helpers

    def guidance_energy(self, cost_weight: float | None = None):
        """The object whose gradient guides sampling (``gradients(x, t, b)``), or ``None``."""
        if self.energy is None:
            return None
        if isinstance(self.energy, RewardCostEnergy):
            return self.energy.weighted(self.config.guidance.cost_weight if cost_weight is None else cost_weight)
        return self.energy

    def target_return(self, budget: torch.Tensor) -> torch.Tensor:
        """``r_max(b)``: the best return of a data episode with ``C <= b`` (the cheapest
        episode's best return when none is that cheap), ``(N,)``. CDD's return condition."""
        if self.variant.condition != "budget_return":
            raise ValueError(f"variant {self.config.variant!r} has no return condition")
        idx = torch.searchsorted(self.frontier_cost, budget.to(self.frontier_cost.dtype).contiguous(), right=True) - 1
        return self.frontier_return[idx.clamp_min(0)]

    def loss_inv(self, batch: Batch) -> torch.Tensor:
        """Inverse dynamics MSE on real transitions ``(s_k, s_{k+1}) -> a_k`` of the windows."""
        s = self.normalize(batch.states)  # (B, H, C)
        return self.inv_dyn.loss(s[:, :-1], s[:, 1:], batch.actions[:, :-1], batch.action_mask[:, :-1])
