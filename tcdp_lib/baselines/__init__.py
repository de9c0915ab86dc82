"""Baselines compared with TCDP: BC-Safe and a small Constrained Decision Transformer.

- ``policy``: the ``Policy`` interface (``reset(n_envs, budget)``, ``act(obs, reward, cost)``).
- ``bc_safe``: behaviour cloning on the episodes with ``C <= b``; one model per budget.
- ``cdt``: Constrained Decision Transformer; one model for all budgets.
- ``BASELINES``: name -> ``Baseline`` (config class, train, load, save, per-budget flag).

Imports only from ``tcdp_lib.data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tcdp_lib.baselines.bc_safe import (
    BCSafe,
    BCSafeConfig,
    BCSafePolicy,
    load_bc_safe,
    safe_transitions,
    save_bc_safe,
    train_bc_safe,
)
from tcdp_lib.baselines.cdt import (
    CDT,
    CDTConfig,
    CDTPolicy,
    load_cdt,
    pareto_frontier,
    relabel_targets,
    save_cdt,
    target_return,
    train_cdt,
)
from tcdp_lib.baselines.policy import PerBudgetPolicy, Policy
from tcdp_lib.data.episodes import Episodes


def _train_bc_safe_all(episodes, budgets, config, seed, steps, progress, device):
    return {b: train_bc_safe(episodes, b, config, seed, steps, progress, device) for b in budgets}


def _train_cdt_all(episodes, budgets, config, seed, steps, progress, device):
    policy = train_cdt(episodes, config, seed, steps, progress, device)
    return {b: policy for b in budgets}


@dataclass(frozen=True)
class Baseline:
    """One baseline method: how to configure, train, save and load it."""

    config_cls: type
    """Its frozen config dataclass."""
    train: Callable[..., Policy]
    """``train(episodes, [budget,] config, seed, steps, progress=True) -> Policy``."""
    load: Callable[..., Policy]
    """``load(path, device=None) -> Policy``."""
    save: Callable[[Policy, object], None]
    """``save(policy, path)``."""
    per_budget: bool
    """True if one model serves one budget (its ``train`` takes the budget)."""
    train_for_budgets: Callable[..., dict]
    """``(episodes, budgets, config, seed, steps, progress, device) -> {budget: Policy}``."""


BASELINES: dict[str, Baseline] = {
    "bc_safe": Baseline(BCSafeConfig, train_bc_safe, load_bc_safe, save_bc_safe, True, _train_bc_safe_all),
    "cdt": Baseline(CDTConfig, train_cdt, load_cdt, save_cdt, False, _train_cdt_all),
}


def get_baseline(name: str) -> Baseline:
    """``BASELINES[name]``, with a ``ValueError`` naming the valid choices."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid choices: {sorted(BASELINES)}")
    return BASELINES[name]


def train_policies(
    name: str,
    episodes: Episodes,
    budgets,
    config=None,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    device=None,
) -> dict[float, Policy]:
    """``{b: policy}`` for every budget: one model per budget (BC-Safe) or one shared model (CDT)."""
    budgets = [float(b) for b in budgets]
    return get_baseline(name).train_for_budgets(episodes, budgets, config, seed, steps, progress, device)


__all__ = [
    "BASELINES",
    "BCSafe",
    "BCSafeConfig",
    "BCSafePolicy",
    "Baseline",
    "CDT",
    "CDTConfig",
    "CDTPolicy",
    "PerBudgetPolicy",
    "Policy",
    "get_baseline",
    "load_bc_safe",
    "load_cdt",
    "pareto_frontier",
    "relabel_targets",
    "safe_transitions",
    "save_bc_safe",
    "save_cdt",
    "target_return",
    "train_bc_safe",
    "train_cdt",
    "train_policies",
]
