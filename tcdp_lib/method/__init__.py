"""Method layer: the parts of the Trajectory-Constrained Diffusion Planner (TCDP).

- ``windows``: state windows of horizon H over episodes, gathered by index; ``Normalizer``.
- ``ctgda``: cost-returns-to-go relabelling with data augmentation (remaining budgets, prior).
- ``qn``: quantile normalisation of returns among the episodes feasible at a budget.
- ``dit``: the 1-D DiT backbone (adaLN-Zero) and its presets.
- ``condition``: the budget encoder, which owns classifier-free dropout.
- ``diffusion``: noise schedules, forward process, loss, samplers (``SAMPLERS``).
- ``guidance``: CFG, the energy model, and ``guided_eps`` (CFG first, then energy guidance).
- ``inverse_dynamics``: ``a_t = f(s_t, s_{t+1})``.
- ``model``: ``TCDPConfig``, ``Batch``, ``TCDP``.

Imports only from ``tcdp_lib.data``.
"""

from tcdp_lib.method.condition import BudgetEncoder
from tcdp_lib.method.ctgda import BudgetPrior, PairSample, Relabeled, draw_pairs, relabel, remaining_budget, sample_pairs
from tcdp_lib.method.diffusion import (
    SAMPLERS,
    SCHEDULES,
    apply_conditioning,
    epsilon_loss,
    first_state_mask,
    get_sampler,
    make_alphas_cumprod,
    q_sample,
    sampling_timesteps,
)
from tcdp_lib.method.dit import DIT_PRESETS, DiT1D, DiTBlock, DiTSize, TimestepEmbedder, dit_from_size
from tcdp_lib.method.guidance import EnergyGradient, EnergyModel, cfg_combine, energy_guide, guided_eps
from tcdp_lib.method.inverse_dynamics import InverseDynamics
from tcdp_lib.method.model import (
    BackboneConfig,
    Batch,
    BudgetConfig,
    DiffusionConfig,
    EnergyConfig,
    GuidanceConfig,
    InverseDynamicsConfig,
    TCDP,
    TCDPConfig,
    make_batch,
    sample_batch,
)
from tcdp_lib.method.qn import mid_rank_normalize, quantile_normalize, quantile_normalize_pairs
from tcdp_lib.method.windows import Normalizer, WindowBatch, Windows

__all__ = [
    "BackboneConfig",
    "Batch",
    "BudgetConfig",
    "BudgetEncoder",
    "BudgetPrior",
    "DIT_PRESETS",
    "DiT1D",
    "DiTBlock",
    "DiTSize",
    "DiffusionConfig",
    "EnergyConfig",
    "EnergyGradient",
    "EnergyModel",
    "GuidanceConfig",
    "InverseDynamics",
    "InverseDynamicsConfig",
    "Normalizer",
    "PairSample",
    "Relabeled",
    "SAMPLERS",
    "SCHEDULES",
    "TCDP",
    "TCDPConfig",
    "TimestepEmbedder",
    "WindowBatch",
    "Windows",
    "apply_conditioning",
    "cfg_combine",
    "dit_from_size",
    "draw_pairs",
    "energy_guide",
    "epsilon_loss",
    "first_state_mask",
    "get_sampler",
    "guided_eps",
    "make_alphas_cumprod",
    "make_batch",
    "mid_rank_normalize",
    "q_sample",
    "quantile_normalize",
    "quantile_normalize_pairs",
    "relabel",
    "remaining_budget",
    "sample_batch",
    "sample_pairs",
    "sampling_timesteps",
]
