"""The config tree of a TCDP model: every field that defines one, saved with every checkpoint.

``TCDPConfig`` holds the backbone, the budget condition (CTGDA prior, CFG dropout), the noise
schedule and sampler, the planning-time guidance scales, the energy and inverse dynamics.
Data-dependent fields (``b_max``, scales) are ``None`` until ``TCDP.from_episodes`` resolves them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from tcdp_lib.configs import config_from_dict
from tcdp_lib.method.diffusion import SAMPLERS, SCHEDULES
from tcdp_lib.method.dit import DIT_PRESETS, DiTSize
from tcdp_lib.method.variants import get_variant


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
    p_slack: float = 0.5
    """Share of CTGDA pairs whose budget is the episode's own cost plus a small slack
    (``ctgda.BudgetPrior``); the rest draw ``b`` from the uniform prior."""
    slack_scale: float | None = None
    """Mean slack ``b - C_0`` of those pairs; ``None``: 5% of ``b_max``."""
    prior_power: float = 1.0
    """Shape of CTGDA's budget draw ``b = b_min + (b_max - b_min) u^prior_power`` (1: uniform;
    ``ctgda.BudgetPrior.power``)."""
    cost_balance: float = 0.0
    """Draw CTGDA windows with weight ``count(cost bin of their episode) ** -cost_balance``
    (``ctgda.cost_balanced_cdf``): 0 uniform, 1 every episode-cost bin equally often. Off by
    default: at 1 (with ``prior_power`` 2) BallRun, CarCircle and PointCircle1 spent 30-50, 46-51
    and ~180 whatever the budget, since their rare cost bins are the *costly* ones (BallRun's
    cheapest bin is its fullest), while BallCircle, whose cheap bins are rare, gained."""
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
        if not 0 <= self.p_slack <= 1:
            raise ValueError(f"p_slack must lie in [0, 1], got {self.p_slack}")
        if self.slack_scale is not None and not self.slack_scale >= 0:
            raise ValueError(f"slack_scale must be >= 0, got {self.slack_scale}")


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and sampler."""

    n_diffusion_steps: int = 100
    """Training timesteps ``K``."""
    schedule: str = "cosine_trunc"
    """Key of ``diffusion.SCHEDULES``: the cosine schedule ending at ``alpha_bar = 1e-3`` (the plain
    cosine schedule's last step sits at 2.4e-7, a wasted first sampling step)."""
    sampler: str = "ddim"
    """Key of ``diffusion.SAMPLERS`` used by the planner."""
    sampling_steps: int = 10
    """Model calls per plan (10-20 keeps a replan near 30 ms with the S backbone)."""
    clip_margin: float | None = 0.1
    """Clamp predicted normalised ``x0`` to each dimension's range in the training data, widened by
    this many standard deviations, while sampling; ``None``: no clamp. A symmetric clamp to
    ``+-4`` cut real data where a dimension is skewed (1.7% of MetaDrive's entries lie beyond
    4 std) and let others leave their range."""

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {self.schedule!r}; choose one of {sorted(SCHEDULES)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {sorted(SAMPLERS)}")
        if self.n_diffusion_steps < 2:
            raise ValueError(f"n_diffusion_steps must be >= 2, got {self.n_diffusion_steps}")
        if not 1 <= self.sampling_steps <= self.n_diffusion_steps:
            raise ValueError(f"sampling_steps must lie in [1, {self.n_diffusion_steps}], got {self.sampling_steps}")


CHOICES = ("feasible", "energy")
"""How the planner picks the plan to follow among its samples (``GuidanceConfig.choice``)."""


@dataclass(frozen=True)
class GuidanceConfig:
    """Guidance scales at planning time (starting points, to tune per task in the notebooks)."""

    w_cfg: float = 1.5
    """CFG scale on the budget: 0 unconditional, 1 conditional, > 1 stronger budget pressure (on
    BallCircle 3 changed realised cost and reward by less than the episodes' spread, 5 episodes)."""
    beta: float = 1.0
    """Energy guidance scale toward a higher QN-normalised reward-to-go; 0 switches it off."""
    cost_weight: float = 10.0
    """Penalty ``n`` on the predicted (scaled) cost-to-go beyond the remaining budget in the
    guided energy: TREBI's ``R - n max(C - b, 0)``, and TCDP's ``V - n max(C - b_t, 0)``."""
    budget_fraction: float = 0.5
    """The planner plans for this share of the remaining budget (condition, guidance penalty
    and the choice among samples), one number for every budget: plans that spend about what
    they are given overshoot by what the executed path departs from the plan (measured on
    BallCircle, 10 episodes: realised cost 1.13 / 1.03 / 0.98 of b = 10 / 20 / 40 at 1, 0.75 /
    0.71 / 0.78 at 0.5)."""
    ensemble: int = 1
    """The action taken is the mean of the actions of this many samples: the best-ranked among
    those whose predicted cost-to-go fits the remaining budget (fewer when fewer fit; the chosen
    plan alone when none does). 1: the chosen plan's action."""
    temporal_ensemble: int = 1
    """The action taken is the mean of the actions for this step of the last this-many plans
    (temporal ensembling, as Diffusion Policy and ACT execute action chunks): the newest plan's
    action and, from each older plan, the action toward its state for this step. 1: the newest
    plan's alone."""
    cold_samples: int = 0
    """With a warm start, this many of the samples of each replan start from pure noise and run
    the whole sampling chain; the rest start from the previous plan. Warm-started samples denoise
    back toward the previous plan, so a plan that holds the agent still keeps it there; fresh
    samples give the choice among plans a way out. 0: every sample warm-started."""
    choice: str = "feasible"
    """How the plan to follow is picked among the samples (``CHOICES``). ``"feasible"``: the
    highest predicted value among those whose predicted cost-to-go fits the remaining budget, the
    cheapest when none fits. ``"energy"``: the highest guided energy ``value - cost_weight *
    max(cost - b_t, 0) / budget_scale`` (the objective the guidance pulls toward), so a plan a
    little over the budget with a much better value can win over a worthless one that fits."""

    def __post_init__(self):
        if self.choice not in CHOICES:
            raise ValueError(f"unknown choice {self.choice!r}; choose one of {list(CHOICES)}")
        if not 0 < self.budget_fraction <= 1:
            raise ValueError(f"budget_fraction must lie in (0, 1], got {self.budget_fraction}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble}")
        if self.temporal_ensemble < 1:
            raise ValueError(f"temporal_ensemble must be >= 1, got {self.temporal_ensemble}")
        if self.cold_samples < 0:
            raise ValueError(f"cold_samples must be >= 0, got {self.cold_samples}")


@dataclass(frozen=True)
class EnergyConfig:
    """The energy (return) model."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP (2 x 256: ~0.3 ms a gradient on CPU)."""
    t_embed_dim: int = 32
    """Width of the sinusoidal diffusion-step embedding."""
    budget_conditioned: bool = True
    """Feed the scaled remaining budget to the energy (the QN target depends on the budget).
    TCDP's value-cost energy always reads it."""
    cost_quantile: float | None = None
    """Train TCDP's cost head on this quantile of the cost-to-go given the window (pinball loss)
    instead of its mean (MSE; ``None``). The planner keeps plans whose predicted cost-to-go fits
    the remaining budget, and the mean is optimistic where the agent does not follow its plans:
    on PointCircle1 the chosen plans were predicted at 7.8 against 32.1 realised (seed 0, b = 20)."""

    def __post_init__(self):
        if self.cost_quantile is not None and not 0 < self.cost_quantile < 1:
            raise ValueError(f"cost_quantile must be None or lie in (0, 1), got {self.cost_quantile}")


@dataclass(frozen=True)
class InverseDynamicsConfig:
    """The inverse dynamics model."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP."""


@dataclass(frozen=True)
class ActionModelConfig:
    """The action model under the plan: ``a_t = f(s_t, s_{t+gap})``, the action that takes the
    agent from its state toward the chosen plan's state ``gap`` steps ahead.

    Trained after the diffusion model (its own stage of ``tcdp train``, on the data's transitions,
    MSE), so it regresses to the *mean* action that reaches a state ``gap`` steps on: the behaviour
    data's control noise averages out, where a one-step model (or a planned action) reproduces it.
    ``gap`` 0: none (the planned action, or one-step inverse dynamics). Chosen per task
    (``runs.train.TASK_MODELS``) with ``benchmarks/action_gap.py``."""

    gap: int = 0
    """Planned steps ahead the action model reads; 0 switches it off."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of its MLP."""
    steps: int = 4000
    """Training steps of its stage (batches of ``batch_size`` transitions)."""
    batch_size: int = 512
    lr: float = 1e-3

    def __post_init__(self):
        if self.gap < 0:
            raise ValueError(f"action_model.gap must be >= 0, got {self.gap}")
        if self.gap and (self.steps < 1 or self.batch_size < 1 or not self.lr > 0):
            raise ValueError(f"action_model needs steps, batch_size >= 1 and lr > 0, got "
                             f"{self.steps}, {self.batch_size}, {self.lr}")


@dataclass(frozen=True)
class TCDPConfig:
    """Everything that defines a TCDP model; saved with every checkpoint."""

    variant: str = "tcdp"
    """Key of ``variants.VARIANTS``: TCDP, or a diffusion planner compared with it (``trebi``,
    ``cdd``) or an ablation, all on this backbone."""
    horizon: int = 32
    """Planned states per trajectory ``H`` (a multiple of the backbone's patch size)."""
    plan_actions: bool = False
    """Plan states and actions jointly (Diffuser) and act on the planned actions (unless the model
    has an action model, ``action_model``), instead of inverse dynamics on planned states. For robots whose actions the state pair does not
    determine (CarCircle: inverse dynamics on real transitions reaches held-out R^2 0.77 / 0.52
    per action dimension, Ball 0.98 / 0.98)."""
    action_weight: float = 1.0
    """With ``plan_actions``: the weight of the first planned action (the one the agent takes) in
    the denoising loss, against 1 for every other entry (Diffuser's ``action_weight``, 10 there).
    Kept at 1: CarCircle trained at 10 (seeds 0 and 1, 20 episodes, b = 10 / 20 / 40) spent more,
    normalised cost 1.92 / 1.17 / 0.79 and 2.59 / 1.58 / 0.94 against 1.26 / 0.83 / 0.76 and
    2.51 / 1.27 / 0.76, for no more reward."""
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
    action_model: ActionModelConfig = field(default_factory=ActionModelConfig)
    """The action model under the plan (off by default); when on, the agent acts through it."""

    def __post_init__(self):
        get_variant(self.variant)
        p = self.backbone.size().patch_size
        if self.horizon < 2 or self.horizon % p:
            raise ValueError(f"horizon ({self.horizon}) must be >= 2 and a multiple of the patch size ({p})")
        if not (self.action_weight > 0 and math.isfinite(self.action_weight)):
            raise ValueError(f"action_weight must be a positive number, got {self.action_weight}")
        if self.action_model.gap >= self.horizon:
            raise ValueError(f"action_model.gap ({self.action_model.gap}) must be below the horizon ({self.horizon})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TCDPConfig":
        return config_from_dict(cls, d)
