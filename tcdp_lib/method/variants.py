"""Guidance variants: TCDP and the diffusion planners it is compared with, on one backbone.

Every variant uses the same DiT backbone, noise schedule, samplers, inverse dynamics and
receding-horizon planner; it is three small strategy objects on them:

- a :class:`Condition`: what the backbone is conditioned on (with CFG dropout in training), and
  what the planner feeds it;
- a :class:`Pairs`: which budget label a training window gets;
- an :class:`Energy`: what the energy model predicts, and so what classifier guidance pushes toward.

=========  =====================  =============================  ==========================
variant    condition              pairs (training label)         energy (classifier guidance)
=========  =====================  =============================  ==========================
tcdp       remaining budget b_t   CTGDA: b ~ prior, b_t = C_t    QN of the reward-to-go at
                                  + (b - C_0), kept if C_0 <= b  b_t, and a cost-to-go head
trebi      none (unconditional)   hindsight                      reward-to-go and cost-to-go:
                                                                 ``R - n * max(C - b_t, 0)``
cdd        (b_t, target return)   hindsight: b_t = C_t,          none
                                  return = reward-to-go
=========  =====================  =============================  ==========================

Two ablations of TCDP share the table: ``tcdp_no_ctgda`` (hindsight labels instead of CTGDA)
and ``tcdp_no_qn`` (the value head predicts the scaled reward-to-go instead of its QN).

TREBI's cost term is the *excess* of the predicted cost-to-go over the remaining budget, so
one pair of energy models serves every budget, as in its real-time budget setting; CDD's
target return at budget ``b`` is the best return of an episode with ``C <= b`` in the data,
``r_max(b)``, minus the reward collected so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from tcdp_lib.method.ctgda import BudgetPrior, PairSample, draw_pairs, hindsight_pairs
from tcdp_lib.method.diffusion import masked_mse, pinball_loss
from tcdp_lib.method.guidance import RewardCostEnergy, ValueCostEnergy

# --------------------------------------------------------------------------------------------
#                                  What the backbone reads
# --------------------------------------------------------------------------------------------


class Condition:
    """The remaining budget ``b_t`` and the steps left (TCDP)."""

    name = "budget"
    uses_cfg = True
    """The backbone reads a condition, so CFG has two branches to combine."""
    uses_return = False
    """A target return-to-go joins the budget (CDD): the model keeps ``r_max(b)``, the policy
    tracks the reward collected."""

    def training(self, encoder: nn.Module, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        """The backbone's ``(B, D)`` condition for a training batch (CFG dropout by the encoder)."""
        return encoder(batch.remaining_budget, generator=generator, steps_left=batch.steps_left)


class NoCondition(Condition):
    """An unconditional prior: always the null embedding (with the steps left) (TREBI)."""

    name = "none"
    uses_cfg = False

    def training(self, encoder, batch, generator=None):
        return encoder.null(batch.remaining_budget.shape[0], batch.steps_left)


class BudgetReturnCondition(Condition):
    """The remaining budget and a target return-to-go, dropped together by CFG (CDD)."""

    name = "budget_return"
    uses_return = True

    def training(self, encoder, batch, generator=None):
        return encoder(batch.remaining_budget, generator=generator, steps_left=batch.steps_left,
                       target_return=batch.reward_to_go)


# --------------------------------------------------------------------------------------------
#                                  Which label a window gets
# --------------------------------------------------------------------------------------------


class Pairs:
    """CTGDA: budgets from the prior (uniform with rejection, and slack pairs), ``b_t = C_t + (b - C_0)``."""

    name = "ctgda"

    def draw(self, rng: np.random.Generator, windows, prior: BudgetPrior, n: int,
             window_cdf: np.ndarray | None = None) -> PairSample:
        return draw_pairs(rng, windows.cost_to_go, windows.episode_cost, prior, n, window_cdf=window_cdf)


class HindsightPairs(Pairs):
    """Windows drawn uniformly, each labelled with its own cost-to-go ``b_t = C_t``."""

    name = "hindsight"

    def draw(self, rng, windows, prior, n, window_cdf=None):
        return hindsight_pairs(rng, windows.cost_to_go, windows.episode_cost, n)


# --------------------------------------------------------------------------------------------
#                                What classifier guidance pulls toward
# --------------------------------------------------------------------------------------------


class Energy:
    """No energy model: no classifier guidance, and the planner keeps the first sample (CDD)."""

    name = "none"
    uses_energy = False
    needs_return_scale = False

    def build(self, config, x_dim: int) -> nn.Module | None:
        return None

    def targets(self, batch, config) -> tuple[torch.Tensor, ...]:
        """The energy's regression targets (value or reward first, then the scaled cost-to-go)."""
        return ()

    def loss(self, energy: nn.Module | None, x_k: torch.Tensor, k: torch.Tensor, batch, config) -> torch.Tensor:
        return batch.remaining_budget.new_zeros(())


class ValueCost(Energy):
    """TCDP's value-cost energy (``guidance.ValueCostEnergy``): a value head on the QN of the
    window's reward-to-go at its remaining budget (``Batch.target``), a cost head on its scaled
    cost-to-go (trained on every pair; on its mean, or on the quantile ``energy.cost_quantile``)."""

    name = "qn"
    uses_energy = True

    def build(self, config, x_dim):
        b = config.budget
        if b.time_scale is None:
            raise ValueError("config.budget.time_scale must be set: the energy reads the steps left "
                             "(TCDP.from_episodes takes it from the data)")
        return ValueCostEnergy(config.horizon, x_dim, b.budget_scale, b.time_scale, hidden=config.energy.hidden,
                               t_embed_dim=config.energy.t_embed_dim, cost_weight=config.guidance.cost_weight)

    def targets(self, batch, config):
        return batch.target, batch.cost_to_go / config.budget.budget_scale

    def loss(self, energy, x_k, k, batch, config):
        value, cost = energy.heads(x_k, k, batch.remaining_budget, batch.steps_left)  # (B,), (B,)
        value_t, cost_t = self.targets(batch, config)
        ok = torch.isfinite(value_t)  # no feasible reference window: no value target
        q = config.energy.cost_quantile
        cost_loss = masked_mse(cost, cost_t, torch.ones_like(ok)) if q is None else pinball_loss(cost, cost_t, q)
        return masked_mse(value, torch.nan_to_num(value_t), ok) + cost_loss


class RawValueCost(ValueCost):
    """The value head on the reward-to-go divided by the return scale (no QN; the ablation)."""

    name = "return"
    needs_return_scale = True

    def targets(self, batch, config):
        return batch.reward_to_go / config.budget.return_scale, batch.cost_to_go / config.budget.budget_scale


class RewardCost(Energy):
    """TREBI's two unconditioned models of the scaled reward-to-go and cost-to-go
    (``guidance.RewardCostEnergy``), guided on ``R - n max(C - b_t, 0)``."""

    name = "reward_cost"
    uses_energy = True
    needs_return_scale = True

    def build(self, config, x_dim):
        return RewardCostEnergy(config.horizon, x_dim, config.budget.budget_scale, hidden=config.energy.hidden,
                                t_embed_dim=config.energy.t_embed_dim, cost_weight=config.guidance.cost_weight)

    def targets(self, batch, config):
        b = config.budget
        return batch.reward_to_go / b.return_scale, batch.cost_to_go / b.budget_scale

    def loss(self, energy, x_k, k, batch, config):
        r, c = energy.reward(x_k, k), energy.cost(x_k, k)  # (B,), (B,)
        r_t, c_t = self.targets(batch, config)
        ones = torch.ones_like(r, dtype=torch.bool)
        return masked_mse(r, r_t, ones) + masked_mse(c, c_t, ones)


# --------------------------------------------------------------------------------------------
#                                         The variants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Variant:
    """One diffusion planner, as three strategies on the shared model."""

    name: str
    condition: Condition
    pairs: Pairs
    energy: Energy
    summary: str

    def __post_init__(self):
        for field, value, kind in (("condition", self.condition, Condition), ("pairs", self.pairs, Pairs),
                                   ("energy", self.energy, Energy)):
            if not isinstance(value, kind):
                raise ValueError(f"variant {self.name!r}: {field} must be a {kind.__name__} strategy, got {value!r}")

    @property
    def uses_cfg(self) -> bool:
        return self.condition.uses_cfg

    @property
    def uses_energy(self) -> bool:
        return self.energy.uses_energy

    @property
    def needs_return_scale(self) -> bool:
        return self.condition.uses_return or self.energy.needs_return_scale


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("tcdp", Condition(), Pairs(), ValueCost(),
            "TCDP: CFG on the remaining budget, energy guidance on the QN reward-to-go, CTGDA pairs"),
    Variant("trebi", NoCondition(), HindsightPairs(), RewardCost(),
            "TREBI: unconditional prior, classifier guidance on beta * (R - n * max(C - b, 0))"),
    Variant("cdd", BudgetReturnCondition(), HindsightPairs(), Energy(),
            "CDD: CFG on (budget, target return r_max(b)), no classifier guidance"),
    Variant("tcdp_no_ctgda", Condition(), HindsightPairs(), ValueCost(), "TCDP without CTGDA (hindsight budget labels)"),
    Variant("tcdp_no_qn", Condition(), Pairs(), RawValueCost(), "TCDP without QN (raw scaled reward-to-go as value)"),
)}


def get_variant(name: str) -> Variant:
    """``VARIANTS[name]``, with a ``ValueError`` naming the valid choices."""
    if name not in VARIANTS:
        raise ValueError(f"unknown diffusion variant {name!r}; valid choices: {sorted(VARIANTS)}")
    return VARIANTS[name]
