"""Guidance variants: TCDP and the diffusion planners it is compared with, on one backbone.

Every variant uses the same DiT backbone, noise schedule, samplers, inverse dynamics and
receding-horizon planner; they differ in three small choices:

- ``condition``: what the backbone is conditioned on (with CFG dropout during training);
- ``pairs``: which budget label a training window gets;
- ``energy``: what the energy model predicts, and so what classifier guidance pushes toward.

=========  =====================  =============================  ==========================
variant    condition              pairs (training label)         energy (classifier guidance)
=========  =====================  =============================  ==========================
tcdp       remaining budget b_t   CTGDA: b ~ prior, b_t = C_t    QN return at the budget
                                  + (b - C_0), kept if C_0 <= b
trebi      none (unconditional)   hindsight                      reward-to-go and cost-to-go:
                                                                 ``R - n * max(C - b_t, 0)``
cdd        (b_t, target return)   hindsight: b_t = C_t,          none
                                  return = reward-to-go
=========  =====================  =============================  ==========================

Two ablations of TCDP share the table: ``tcdp_no_ctgda`` (hindsight labels instead of CTGDA)
and ``tcdp_no_qn`` (the energy predicts the raw scaled return instead of its QN).

TREBI's cost term is the *excess* of the predicted cost-to-go over the remaining budget, so
one pair of energy models serves every budget, as in its real-time budget setting; CDD's
target return at budget ``b`` is the best return of an episode with ``C <= b`` in the data,
``r_max(b)``, minus the reward collected so far.
"""

from __future__ import annotations

from dataclasses import dataclass

CONDITIONS = ("budget", "budget_return", "none")
PAIRS = ("ctgda", "hindsight")
ENERGIES = ("qn", "return", "reward_cost", "none")


@dataclass(frozen=True)
class Variant:
    """One diffusion planner, as three choices on the shared model."""

    name: str
    condition: str
    """``budget``: ``(b_t, steps left)``; ``budget_return``: also a target return-to-go;
    ``none``: the backbone always gets the null embedding (an unconditional prior)."""
    pairs: str
    """``ctgda``: budgets drawn from the prior with rejection; ``hindsight``: a window's own
    cost-to-go is its label (every window is used, uniformly)."""
    energy: str
    """``qn``: QN of the episode return at the budget; ``return``: episode return / return scale
    (budget-conditioned); ``reward_cost``: two unconditioned models for the scaled reward-to-go
    and cost-to-go; ``none``: no energy model and no classifier guidance."""
    summary: str

    def __post_init__(self):
        for field, value, valid in (("condition", self.condition, CONDITIONS), ("pairs", self.pairs, PAIRS),
                                    ("energy", self.energy, ENERGIES)):
            if value not in valid:
                raise ValueError(f"variant {self.name!r}: unknown {field} {value!r}; valid: {valid}")

    @property
    def uses_cfg(self) -> bool:
        return self.condition != "none"

    @property
    def uses_energy(self) -> bool:
        return self.energy != "none"


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("tcdp", "budget", "ctgda", "qn",
            "TCDP: CFG on the remaining budget, energy guidance on the QN return, CTGDA pairs"),
    Variant("trebi", "none", "hindsight", "reward_cost",
            "TREBI: unconditional prior, classifier guidance on beta * (R - n * max(C - b, 0))"),
    Variant("cdd", "budget_return", "hindsight", "none",
            "CDD: CFG on (budget, target return r_max(b)), no classifier guidance"),
    Variant("tcdp_no_ctgda", "budget", "hindsight", "qn", "TCDP without CTGDA (hindsight budget labels)"),
    Variant("tcdp_no_qn", "budget", "ctgda", "return", "TCDP without QN (raw scaled return as energy)"),
)}


def get_variant(name: str) -> Variant:
    """``VARIANTS[name]``, with a ``ValueError`` naming the valid choices."""
    if name not in VARIANTS:
        raise ValueError(f"unknown diffusion variant {name!r}; valid choices: {sorted(VARIANTS)}")
    return VARIANTS[name]
