"""The ablation study read back: what each part of TCDP contributes, and whether one beta serves
every budget (``tcdp benchmark --preset ablations``; notebook 07 draws it).

The grid's arms (``benchmark._ablation_arms``) are TCDP, two trained ablations (``no_ctgda``:
hindsight budget labels; ``no_qn``: the value head on the raw scaled reward-to-go), two planning
ablations on TCDP's model (``cfg_only``: beta 0; ``energy_only``: ``w_cfg`` 0, the backbone never
sees the budget) and a beta sweep on TCDP's model (``cfg_only``, ``beta_0.5``, ``tcdp``,
``beta_2``, ``beta_4`` at the task's ``w_cfg``). Everything here is computed from the cells'
``result.json`` files through :func:`~tcdp_lib.runs.benchmark.results_frame`: the words the
notebook prints are built from the measured numbers, never written ahead of them.
"""

from __future__ import annotations

import numpy as np

from tcdp_lib.data.scores import SAFE_NORMALIZED_COST
from tcdp_lib.runs.benchmark import benchmark_table

ARMS = {
    "tcdp": "TCDP",
    "no_ctgda": "without CTGDA (hindsight budget labels)",
    "no_qn": "without QN (value on the raw reward-to-go)",
    "cfg_only": "CFG only (beta 0: no energy guidance)",
    "energy_only": "energy only (w_cfg 0: no budget condition in the backbone)",
}
"""The study's arms other than the beta sweep, in the order they are discussed."""

def arm_order(frame) -> list[str]:
    """The arms present in ``frame``: :data:`ARMS` first, then the beta arms by their beta."""
    present = list(dict.fromkeys(frame["method"]))
    first = [a for a in ARMS if a in present]
    beta = frame.groupby("method")["beta"].first()
    return first + sorted((a for a in present if a not in ARMS), key=lambda a: (beta[a], a))


def ablation_table(frame):
    """``benchmark_table`` of the study (per task, budget and arm: mean and std over seeds of the
    normalised reward and cost, ``safe``), arms in :func:`arm_order`."""
    return benchmark_table(frame, tuple(arm_order(frame)))


def arm_effects(frame):
    """Per (task, ablation: an arm of :data:`ARMS` other than ``tcdp``): the arm's normalised
    reward and cost minus TCDP's, on the seeds both have (paired: an arm measured on fewer seeds
    is compared with TCDP on those), averaged over the budgets both have; the standard deviation
    over seeds of each seed's change (NaN with one seed); the seeds compared, and the number of
    budgets each is safe at (mean over those seeds). Tasks without a ``tcdp`` result
    are left out; the beta arms are :func:`beta_grid`'s. ``frame``: ``results_frame`` rows."""
    import pandas as pd

    rows = []
    for task, g in frame.groupby("task", sort=False):
        ref_all = g[g["method"] == "tcdp"]
        if ref_all.empty:
            continue
        for arm in (a for a in ARMS if a != "tcdp"):
            a_all = g[g["method"] == arm]
            seeds = sorted(set(a_all["seed"]) & set(ref_all["seed"]))
            if not seeds:
                continue
            cols = ["normalized_reward", "normalized_cost"]
            per = lambda f: f[f["seed"].isin(seeds)].groupby(["seed", "budget"])[cols].mean()  # noqa: E731
            a_per, ref_per = per(a_all), per(ref_all)
            common = sorted(set(a_per.index.get_level_values("budget")) & set(ref_per.index.get_level_values("budget")))
            if not common:
                continue
            a_per = a_per[a_per.index.get_level_values("budget").isin(common)]
            ref_per = ref_per[ref_per.index.get_level_values("budget").isin(common)]
            a, ref = a_per.groupby("budget").mean(), ref_per.groupby("budget").mean()
            # each seed's change (its arm against its TCDP, mean over the budgets): the spread
            by_seed = (a_per - ref_per).groupby("seed").mean()
            spread = by_seed.std(ddof=1) if len(by_seed) > 1 else by_seed.mean() * np.nan
            rows.append({
                "task": task, "arm": arm, "seeds": len(seeds), "budgets": len(common),
                "reward_change": float((a["normalized_reward"] - ref["normalized_reward"]).mean()),
                "cost_change": float((a["normalized_cost"] - ref["normalized_cost"]).mean()),
                "reward_change_std": float(spread["normalized_reward"]),
                "cost_change_std": float(spread["normalized_cost"]),
                "safe_budgets": int((a["normalized_cost"] <= SAFE_NORMALIZED_COST).sum()),
                "tcdp_safe_budgets": int((ref["normalized_cost"] <= SAFE_NORMALIZED_COST).sum()),
            })
    return pd.DataFrame(rows, columns=["task", "arm", "seeds", "budgets", "reward_change", "cost_change",
                                       "reward_change_std", "cost_change_std", "safe_budgets", "tcdp_safe_budgets"])


def beta_grid(frame):
    """The beta sweep: per (task, beta, budget) the mean over seeds of the normalised reward and
    cost of TCDP's model at its task's ``w_cfg``, with the number of seeds. The cells are those of
    TCDP's trained model whose ``w_cfg`` is the ``tcdp`` arm's (so ``energy_only`` is left out),
    on the seeds every beta of the task has (a sweep still running compares like with like)."""
    import pandas as pd

    f = frame[frame["trained_method"] == "tcdp"]
    keep = []
    for task, g in f.groupby("task", sort=False):
        w = g.loc[g["method"] == "tcdp", "w_cfg"]
        if w.empty:
            continue
        g = g[np.isclose(g["w_cfg"], w.iloc[0])]
        seeds = set.intersection(*(set(x["seed"]) for _, x in g.groupby("beta")))
        keep.append(g[g["seed"].isin(seeds)])
    if not keep:
        return pd.DataFrame(columns=["task", "beta", "budget", "reward", "cost", "seeds"])
    f = pd.concat(keep)
    g = f.groupby(["task", "beta", "budget"])
    return pd.DataFrame({"reward": g["normalized_reward"].mean(), "cost": g["normalized_cost"].mean(),
                         "seeds": g["seed"].nunique()}).reset_index()


def one_beta(grid, beta: float):
    """Does ``beta`` serve every budget? Per (task, budget): the best-rewarded safe beta of the
    sweep, ``beta``'s reward and cost there, and its shortfall against that best (0 when it is the
    best; NaN when no beta is safe at that budget)."""
    import pandas as pd

    rows = []
    for (task, b), g in grid.groupby(["task", "budget"], sort=False):
        safe = g[g["cost"] <= SAFE_NORMALIZED_COST]
        at = g[np.isclose(g["beta"], beta)]
        best = safe.loc[safe["reward"].idxmax()] if not safe.empty else None
        rows.append({
            "task": task, "budget": b,
            "best_beta": np.nan if best is None else float(best["beta"]),
            "best_reward": np.nan if best is None else float(best["reward"]),
            "reward": float(at["reward"].iloc[0]) if not at.empty else np.nan,
            "cost": float(at["cost"].iloc[0]) if not at.empty else np.nan,
        })
    out = pd.DataFrame(rows, columns=["task", "budget", "best_beta", "best_reward", "reward", "cost"])
    out["safe"] = out["cost"] <= SAFE_NORMALIZED_COST
    out["shortfall"] = out["best_reward"] - out["reward"]
    return out


def conclusions(frame, beta: float) -> list[str]:
    """Sentences, one per (task, part left out) and one per task for the beta sweep, built from
    the measured cells (``results_frame`` rows): what leaving each part out changed against TCDP
    on the same seeds, and whether ``beta`` served every budget."""
    lines = []
    for r in arm_effects(frame).itertuples():
        name = ARMS.get(r.arm, r.arm)
        verdict = _verdict(r.reward_change, r.cost_change, r.safe_budgets, r.tcdp_safe_budgets)
        seeds = f"{r.seeds} seed{'s' if r.seeds != 1 else ''}"
        if r.seeds > 1:
            reward = f"reward {r.reward_change:+.3f} ± {r.reward_change_std:.3f}"
            cost = f"cost {r.cost_change:+.2f} ± {r.cost_change_std:.2f}"
            seeds += "; ± the standard deviation of the seeds' changes"
            noise = [what for what, d, sd in (("reward", r.reward_change, r.reward_change_std),
                                              ("cost", r.cost_change, r.cost_change_std)) if abs(d) < sd]
            if noise:
                verdict += (f" (the {' and '.join(noise)} changes are smaller than their spreads over seeds)"
                            if len(noise) > 1 else f" (the {noise[0]} change is smaller than its spread over seeds)")
        else:
            reward, cost = f"reward {r.reward_change:+.3f}", f"cost {r.cost_change:+.2f}"
        lines.append(f"{r.task}, {name}: {reward}, {cost} against TCDP "
                     f"(mean over {r.budgets} budgets, {seeds}); safe at {r.safe_budgets} of {r.budgets} budgets, "
                     f"TCDP at {r.tcdp_safe_budgets}: {verdict}.")
    grid = beta_grid(frame)
    for task, g in one_beta(grid, beta).groupby("task", sort=False):
        measured = sorted(grid.loc[grid["task"] == task, "beta"].unique())
        if len(measured) < 2:
            lines.append(f"{task}: only beta {', '.join(f'{b:g}' for b in measured)} measured so far: "
                         "no beta sweep to compare.")
            continue
        unsafe = [f"{b:g}" for b in g.loc[~g["safe"], "budget"]]
        worst = g["shortfall"].max()
        bests = ", ".join(f"b={b:g}: {'none safe' if np.isnan(x) else f'{x:g}'}" for b, x in zip(g["budget"], g["best_beta"]))
        if unsafe:
            lines.append(f"{task}: beta {beta:g} is unsafe at b = {', '.join(unsafe)}; the best safe beta per budget: {bests}.")
        else:
            lines.append(f"{task}: beta {beta:g} is safe at every budget and at most {worst:.3f} normalised reward "
                         f"below the best safe beta of each budget among betas {', '.join(f'{b:g}' for b in measured)} "
                         f"({bests}).")
    return lines


def _verdict(d_reward: float, d_cost: float, safe: int, tcdp_safe: int, reward_tol: float = 0.01,
             cost_tol: float = 0.05) -> str:
    """What leaving one part out changed, in words (changes below ``reward_tol`` / ``cost_tol``
    in normalised reward / cost count as none)."""
    said = []
    if safe < tcdp_safe:
        said.append("without it, unsafe at more budgets")
    elif safe > tcdp_safe:
        said.append("without it, safe at more budgets")
    if d_reward < -reward_tol:
        said.append("without it, less reward")
    elif d_reward > reward_tol:
        said.append("without it, more reward")
    if d_cost < -cost_tol:
        said.append("without it, less cost")
    elif d_cost > cost_tol:
        said.append("without it, more cost")
    return "; ".join(said) if said else "no change beyond the tolerances (the part does not show here)"
