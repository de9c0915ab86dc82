"""The benchmark grid: methods x tasks x seeds, each cell trained and evaluated on its own.

One *cell* is a pure function of its config (method, task, seed, steps, episodes, planning, ...)
(:mod:`tcdp_lib.runs.cell`): it trains the method into ``<out>/<task>/<method>/seed<k>/train/``,
evaluates it at the task's budgets with the shared harness, and writes ``result.json``
atomically beside them. A cell whose
``result.json`` holds the same config is not run again, so an interrupted benchmark resumes
where it stopped, and any executor can run cells alone: ``run_benchmark(..., executor="serial")``
runs them one after another in this process, ``executor="ray"`` as Ray tasks on a local Ray or
a cluster (:mod:`tcdp_lib.runs.ray_executor`).

A grid of *arms* (``BenchmarkConfig.arms``, the ``ablations`` preset) runs named (method,
planning) settings: each arm's cells live in ``<out>/<task>/<arm>/seed<k>/``, and the arms of one
method share its training (``<out>/<task>/<method>/seed<k>/train/``): planning settings change no
weight, and training is identified by (task, method, seed, steps, smoke) only. Training a shared
folder is serialised by a file lock, so two cells never train it at once.

``benchmark_table`` turns the cells into DSRL's table: normalised reward and cost per task and
budget, mean +- std over seeds, a cell is *safe* when its normalised cost is <= 1, and the
average over all rows last.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcdp_lib.data.scores import SAFE_NORMALIZED_COST
from tcdp_lib.paths import RUNS_DIR
from tcdp_lib.runs.cell import (cell_dir, cell_name, load_cell_result, run_cell,  # noqa: F401 (the grid's cell API)
                                train_dir, write_cell_result)
from tcdp_lib.runs.methods import METHODS, check_method

BULLET_TASKS = ("OfflineBallCircle-v0", "OfflineBallRun-v0", "OfflineCarCircle-v0")
FAMILY_TASKS = ("OfflinePointCircle1Gymnasium-v0", "OfflineMetadrive-easysparse-v0")
"""One task of each other DSRL family: Safety-Gymnasium and MetaDrive."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """A benchmark grid and how each of its cells is trained and evaluated."""

    methods: tuple[str, ...] = METHODS
    tasks: tuple[str, ...] = BULLET_TASKS
    seeds: tuple[int, ...] = (0,)
    """Each seed trains a model and evaluates it on its own episode seeds."""
    episodes: int = 20
    """Evaluation episodes per budget and seed."""
    family_episodes: dict | None = None
    """Per simulator family, evaluation episodes per budget and seed in place of ``episodes``
    (MetaDrive steps one environment at a time, with episodes of up to 1000 steps)."""
    n_envs: int = 10
    """Environments stepped together while evaluating."""
    diffusion_steps: int | None = None
    """Training steps of the diffusion planners (``None``: ``TrainConfig.steps``)."""
    baseline_steps: int | None = None
    """Training steps of BC-Safe and CDT (``None``: their configs' ``steps``)."""
    smoke: bool = False
    """Tiny models trained for a few steps: checks the pipeline, measures nothing."""
    budgets: tuple[float, ...] | None = None
    """``None``: each task's three DSRL budgets."""
    planning: dict | None = None
    """Per diffusion method, planning-time overrides of ``PlannerConfig`` (``w_cfg``, ``beta``,
    ``cost_weight``, ...) and of the policy's execution (``replan_every``, ``warm_start``); a method
    not named plans with its model config's guidance and the default execution."""
    task_planning: dict | None = None
    """Per diffusion method and task, overrides applied over ``planning``: ``{method: {task:
    {...}}}`` (one setting per task, the same at every budget)."""
    arms: dict | None = None
    """Named settings run in place of one cell per method: ``{label: {"method": m, "planning":
    {...}}}``; an arm's planning is applied over its method's ``planning`` and ``task_planning``.
    Only the arms whose method is in ``methods`` run. A label names the cell's folder; a label
    that is a method's name must be an arm of that method (its folder also holds the method's
    shared training)."""

    def cells(self) -> list[dict]:
        """Every cell's config, in run order (task, then seed, then method or arm). A cell holds
        only what changes its result: its own training steps and planning overrides (and its
        arm's ``label``)."""
        from tcdp_lib.data.tasks import get_task

        common = {k: getattr(self, k) for k in ("n_envs", "smoke", "budgets")}
        by_family = self.family_episodes or {}
        cells = [{"method": m, "task": t, "seed": int(s),
                  "steps": self.steps_of(m, t),
                  "episodes": int(by_family.get(get_task(t).family, self.episodes)),
                  **common, "planning": self.planning_of(m, t, planning),
                  **({} if label is None else {"label": label})}
                 for t in self.tasks for s in self.seeds for label, m, planning in self._arms()]
        names = [(c["task"], cell_name(c), c["seed"]) for c in cells]
        if len(set(names)) != len(names):
            raise ValueError("the grid names a (task, method or arm, seed) cell twice; "
                             f"tasks {self.tasks}, seeds {self.seeds}")
        return cells

    def steps_of(self, method: str, task: str) -> int | None:
        """A cell's training steps: ``diffusion_steps`` or, where that is ``None``, the task's
        default (``train.default_train_config``) for a diffusion planner; ``baseline_steps`` for a
        baseline (``None``: its config's)."""
        from tcdp_lib.method.variants import VARIANTS
        from tcdp_lib.runs.train import default_train_config

        if method not in VARIANTS:
            return self.baseline_steps
        if self.diffusion_steps is not None:
            return int(self.diffusion_steps)
        return int(default_train_config(task).steps)

    def missing(self, results: list[dict]) -> list[dict]:
        """The grid's cells that ``results`` (``result.json`` contents) hold no result of, as
        ``{"task", "cell", "seed"}`` (``cell``: the arm's label, else the method), in run order."""
        have = {(r["cell"]["task"], cell_name(r["cell"]), int(r["cell"]["seed"])) for r in results}
        return [{"task": c["task"], "cell": cell_name(c), "seed": c["seed"]} for c in self.cells()
                if (c["task"], cell_name(c), c["seed"]) not in have]

    def planning_of(self, method: str, task: str, arm_planning: dict | None = None) -> dict:
        """A cell's planning overrides: the method's ``planning``, then its ``task_planning`` for
        ``task``, then the arm's own."""
        by_task = (self.task_planning or {}).get(method, {})
        return {**(self.planning or {}).get(method, {}), **by_task.get(task, {}), **(arm_planning or {})}

    def labels(self) -> tuple[str, ...]:
        """The table's columns: the arms' labels, else the methods."""
        return tuple(label if label is not None else m for label, m, _ in self._arms())

    def _arms(self) -> list[tuple[str | None, str, dict]]:
        """``(label or None, method, planning)`` of each column, checked."""
        if not self.arms:
            return [(None, check_method(m), {}) for m in self.methods]
        out = []
        for label, arm in self.arms.items():
            if not isinstance(arm, dict) or "method" not in arm:
                raise ValueError(f"arm {label!r}: expected {{'method': ..., 'planning': {{...}}}}, got {arm!r}")
            method = check_method(arm["method"])
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]*", str(label)):
                raise ValueError(f"arm label {label!r}: letters, digits, '_', '-', '.', '=' only (it names a folder)")
            if label != method and _is_method(label):
                raise ValueError(f"arm {label!r} runs {method!r}: a label that names a method must run that method")
            if method in self.methods:
                out.append((str(label), method, dict(arm.get("planning") or {})))
        return out


def _is_method(name: str) -> bool:
    try:
        check_method(name)
    except ValueError:
        return False
    return True


TCDP_PLANNING = {"w_cfg": 1.5, "beta": 1.0, "budget_fraction": 0.5}
"""TCDP's planning in the ``full`` and ``ablations`` presets where :data:`TCDP_TASK_PLANNING` names
nothing else."""

TCDP_TASK_PLANNING: dict[str, dict] = {
    # the model trained with balanced windows (train.TASK_MODELS), seed 0, 20 episodes,
    # b = 10 / 20 / 40: normalised reward / cost 0.571 / 0.66, 0.720 / 0.55, 0.837 / 0.56 at w_cfg 3
    # against 0.591 / 0.77, 0.702 / 0.64, 0.806 / 0.63 at 1.5 (uniform windows: 0.89 / 1.02 at 10).
    # CarCircle at 3 spent more (15.9 / 21.7 / 35.0 against 12.6 / 16.6 / 30.3) and
    # PointCircle1 no less (104 / 74 at b = 20 / 80, 10 episodes): they keep 1.5.
    "OfflineBallCircle-v0": {"w_cfg": 3.0},
    # BallRun acts through an action model at gap 4 (train.TASK_MODELS) on the mean of the last 8
    # plans' actions for the step (temporal ensembling). Seed 0, 10 episodes, b = 10 / 20 / 40
    # (BC-Safe, 3 seeds x 20: 0.624 / 0.623 / 0.631 at cost 0): as before 0.590 / 0.41, 0.603 /
    # 0.52, 0.615 / 0.62; gap 4 0.604 / 0.33, 0.613 / 0.65, 0.623 / 0.70; with 8 plans averaged
    # 0.603 / 0.04, 0.613 / 0.45, 0.628 / 0.58 (action jitter 0.09 against 0.55); beta 3 and
    # w_cfg 1 0.611 / 0.11, 0.620 / 0.49, 0.632 / 0.63; budget_fraction 0.75 0.615 / 0.44, 0.623 /
    # 0.69, 0.637 / 0.85 (1.0: 0.618 / 0.77, 0.626 / 0.84, 0.648 / 0.94; 16 plans averaged: 0.611 /
    # 0.45, 0.624 / 0.69, 0.642 / 0.81).
    "OfflineBallRun-v0": {"w_cfg": 1.0, "beta": 3.0, "budget_fraction": 0.75, "temporal_ensemble": 8},
    # CarCircle (its action model at gap 12) on the mean of its last 8 plans' actions, planning for
    # 0.75 of the remaining budget. 10 episodes, b = 10 / 20 / 40 (BC-Safe, 3 seeds x 20: 0.612 /
    # 0.36, 0.648 / 0.44, 0.669 / 0.71); seed 0: as before 0.624 / 0.28, 0.667 / 0.70 (b = 10 / 20);
    # 0.75 alone 0.641 / 0.84, 0.691 / 0.86; 4 plans averaged 0.643 / 0.88, 0.692 / 0.85, 0.733 /
    # 0.96; 8 plans 0.639 / 0.74, 0.690 / 0.85, 0.724 / 0.94. Seed 1 at 0.75: alone 0.627 / 1.01,
    # 0.670 / 0.94; 4 plans 0.640 / 0.80, 0.686 / 0.87. At 0.65 with 4 plans seed 2 earned 0.559 /
    # 0.34 at b = 10 (0.622 / 0.66 at 0.75).
    # The plan followed is the sample of highest guided energy (``choice`` "energy") instead of the
    # best-valued one that fits: at b = 10 no sample fits in 34-62% of a start's replans, and an
    # episode that took the only fitting one, worth nothing (predicted value 0.00 against 0.4-0.7),
    # stayed in it, warm start after warm start, and stood for the rest of the episode (3 of the 60
    # cell episodes at b = 10, normalised reward 0.005-0.018). The shipped seed-0 model, 20 episodes,
    # b = 10 / 20 / 40: feasible 0.582 / 0.67 (worst 0.011), 0.663 / 0.86, 0.710 / 0.93; energy
    # 0.632 / 0.81 (worst 0.484), 0.677 / 0.89, 0.712 / 0.94. The cells (models trained again on
    # a faster machine, 3 seeds x 20): 0.616 / 0.78, 0.670 / 0.94, 0.706 / 0.97; the feasible rule on
    # the same models at b = 10: 0.612 / 0.72; with 2 of 8 samples cold as well: 0.619 / 0.72, 0.665
    # / 0.90, 0.702 / 0.95 (a stall moved from seeds 0 and 1 to seed 2), not adopted.
    "OfflineCarCircle-v0": {"budget_fraction": 0.75, "temporal_ensemble": 8, "choice": "energy"},
}
"""Per task, TCDP's planning and execution where they differ from :data:`TCDP_PLANNING`: one
setting per task, the same at every budget, each chosen with ``benchmarks/planner_sweep.py``."""

ABLATION_STEPS = 6000
"""The training the ablation study's models had (its shipped cells), on both of its tasks."""

ABLATION_TASK_PLANNING: dict[str, dict] = {"OfflineBallCircle-v0": {"w_cfg": 3.0}}
"""The per-task planning the ablation study ran with (its shipped cells, ``data/benchmark/ablations``):
BallRun's arms plan at :data:`TCDP_PLANNING`, as TCDP did when the grid ran."""

ABLATION_BETAS = (0.0, 0.5, 1.0, 2.0, 4.0)
"""Planning-time energy scales of the ablations' beta sweep (on TCDP's model at its task's ``w_cfg``)."""

ABLATION_METHODS = ("tcdp", "tcdp_no_ctgda", "tcdp_no_qn")
"""The trained variants of the ablation study."""


def _ablation_arms() -> dict:
    """TCDP and the ablations that test each of its parts, and a beta sweep on TCDP's model.

    Trained variants: ``tcdp``, ``no_ctgda`` (hindsight budget labels, ``tcdp_no_ctgda``),
    ``no_qn`` (the value head on the raw scaled reward-to-go, ``tcdp_no_qn``). Planning settings on
    TCDP's model (its training is shared): ``cfg_only`` (``beta`` 0: no energy guidance),
    ``energy_only`` (``w_cfg`` 0: the backbone never sees the budget; the energy still reads it),
    and ``beta_<x>``. Each arm's planning is what it changes from TCDP's planning on that task
    (``planning`` and ``task_planning`` of the preset). The beta sweep is every arm of ``tcdp``'s
    model at the task's ``w_cfg``: ``cfg_only`` is beta 0 (each cell evaluates every budget)."""
    arms = {
        "tcdp": {"method": "tcdp", "planning": {}},
        "no_ctgda": {"method": "tcdp_no_ctgda", "planning": {}},
        "no_qn": {"method": "tcdp_no_qn", "planning": {}},
        "cfg_only": {"method": "tcdp", "planning": {"beta": 0.0}},
        "energy_only": {"method": "tcdp", "planning": {"w_cfg": 0.0}},
    }
    for beta in ABLATION_BETAS:
        if beta not in (0.0, TCDP_PLANNING["beta"]):  # cfg_only, and tcdp where its task keeps that beta
            arms[f"beta_{beta:g}"] = {"method": "tcdp", "planning": {"beta": float(beta)}}
    return arms


PRESETS: dict[str, BenchmarkConfig] = {
    "smoke": BenchmarkConfig(tasks=("OfflineBallCircle-v0",), episodes=2, n_envs=2, smoke=True,
                             diffusion_steps=20, baseline_steps=20),
    # The shipped results (data/benchmark/): each task's default training for every diffusion
    # planner (``train.default_train_config``: 6000 steps, BallRun and CarCircle 10000), one
    # training seed, 20 episodes per budget. TREBI's guidance was chosen on BallCircle from beta
    # in {0.1, 1, 5, 20} x n in {10, 50}: with beta 0.1 its cost did not depend on the budget;
    # CDD keeps TCDP's w_cfg (1.5 and 8 were no safer). BC-Safe and CDT train 3000 steps (CDT's
    # default 10000 take over an hour per task on this CPU).
    # The grid covers the three Bullet tasks and one task of each other family.
    # TCDP plans with one (w_cfg, beta, budget_fraction) per task, the same at every budget.
    "full": BenchmarkConfig(tasks=BULLET_TASKS + FAMILY_TASKS,
                            planning={"tcdp": dict(TCDP_PLANNING),
                                      "trebi": {"beta": 5.0, "cost_weight": 10.0}},
                            task_planning={"tcdp": TCDP_TASK_PLANNING},
                            baseline_steps=3000, family_episodes={"metadrive": 10}),
    # The ablation study (issue 14): each part of TCDP left out in turn, and a beta sweep at every
    # budget, on two Bullet tasks, 3 training seeds x 20 episodes. 8 arms on 3 trainings per
    # (task, seed): 48 cells, 18 trainings of the default 6000 steps.
    "ablations": BenchmarkConfig(methods=ABLATION_METHODS,
                                 tasks=("OfflineBallCircle-v0", "OfflineBallRun-v0"), seeds=(0, 1, 2),
                                 episodes=20, arms=_ablation_arms(), diffusion_steps=ABLATION_STEPS,
                                 planning={m: dict(TCDP_PLANNING) for m in ABLATION_METHODS},
                                 task_planning={m: ABLATION_TASK_PLANNING for m in ABLATION_METHODS}),
}


EXECUTORS = ("serial", "ray")


def run_benchmark(config: BenchmarkConfig, out_root: Path | None = None, progress: bool = True,
                  device=None, executor: str = "serial", **executor_options) -> list[dict]:
    """Run every cell not finished yet; returns the results of all finished cells, in cell order.

    ``executor="serial"`` runs the cells in order in this process (at the torch thread count the
    caller set) and stops at the first error. ``executor="ray"`` runs them as Ray tasks with
    ``executor_options`` (``workers``, ``threads``, ``address``, ``gpus_per_cell``, ``retries``,
    ``dashboard``; see :func:`tcdp_lib.runs.ray_executor.run_cells_ray`); a cell that fails does
    not stop the others, and a :class:`~tcdp_lib.errors.CellsFailedError` at the end names it.
    Either way a finished cell is never run again."""
    out_root = Path(out_root) if out_root is not None else RUNS_DIR / "benchmark"
    cells = config.cells()
    if executor == "ray":
        from tcdp_lib.runs.ray_executor import run_cells_ray

        return run_cells_ray(cells, out_root, progress=progress, device=device, **executor_options)
    if executor != "serial":
        raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if executor_options:
        raise TypeError(f"the serial executor takes no options, got {sorted(executor_options)}")
    from tqdm.auto import tqdm

    results = []
    with tqdm(total=len(cells), desc="benchmark", unit="cell", disable=not progress) as bar:
        for cell in cells:
            bar.set_postfix(method=cell_name(cell), task=cell["task"], seed=cell["seed"])
            result = load_cell_result(out_root, cell)
            if result is None:
                result = run_cell(cell, out_root, progress=False, device=device)
            results.append(result)
            bar.update(1)
    return results


def collect_results(out_root: Path) -> list[dict]:
    """Every ``result.json`` under ``out_root`` (finished cells of any grid)."""
    return [json.loads(p.read_text()) for p in sorted(Path(out_root).glob("*/*/seed*/result.json"))]


def export_results(results: list[dict], dest: Path) -> list[Path]:
    """Copy the cells' ``result.json`` bodies to ``dest/<task>/<method>/seed<k>/result.json`` (the
    shipped results live in ``data/benchmark/``; models and episode files stay behind)."""
    return [write_cell_result(dest, r) for r in results]


def results_frame(results: list[dict]):
    """One row per (method, task, seed, budget) with the normalised reward and cost. ``method`` is
    the table's column (the arm's label in a grid of arms); ``trained_method`` the method trained,
    and ``w_cfg``, ``beta``, ``budget_fraction`` the cell's planning overrides (NaN: the model's)."""
    import pandas as pd

    rows = []
    for r in results:
        c = r["cell"]
        plan = c.get("planning") or {}
        for s in r["summary"]:
            rows.append({"method": cell_name(c), "trained_method": c["method"],
                         **{k: float(plan.get(k, np.nan)) for k in ("w_cfg", "beta", "budget_fraction")},
                         "task": c["task"], "seed": c["seed"], "budget": s["budget"],
                         "normalized_reward": s["normalized_reward"], "normalized_cost": s["normalized_cost"],
                         "reward": s["reward"], "cost": s["cost"], "episodes": s["episodes"],
                         "train_wall_time_s": r["train_wall_time_s"], "eval_wall_time_s": r["eval_wall_time_s"]})
    return pd.DataFrame(rows)


def benchmark_table(frame, methods: tuple[str, ...] | None = None):
    """DSRL's table as a long frame: per (task, budget, method) the mean and std over seeds of
    the normalised reward and cost (std NaN over one seed) and ``safe`` (mean normalised cost <= 1);
    then, per method,
    the ``average`` row over the (task, budget) rows that every method has (a task not yet run for
    some method stays in the table but out of the average, so the averages compare alike), safe
    only when every row it covers is (a mean cost under 1 can hide an unsafe row)."""
    import pandas as pd

    if frame.empty:
        raise ValueError("no benchmark results to tabulate")
    g = frame.groupby(["task", "budget", "method"])
    table = pd.DataFrame({
        "reward": g["normalized_reward"].mean(), "reward_std": g["normalized_reward"].std(ddof=0),
        "cost": g["normalized_cost"].mean(), "cost_std": g["normalized_cost"].std(ddof=0),
        "seeds": g["seed"].nunique(),
    }).reset_index()
    table.loc[table["seeds"] <= 1, ["reward_std", "cost_std"]] = np.nan  # no spread over one seed
    avg = table[complete_rows(table)].groupby("method").agg(reward=("reward", "mean"), cost=("cost", "mean"),
                                      seeds=("seeds", "min")).reset_index()
    avg["reward_std"] = np.nan
    avg["cost_std"] = np.nan
    avg["task"], avg["budget"] = "average", np.nan
    table["safe"] = table["cost"] <= SAFE_NORMALIZED_COST
    avg["safe"] = avg["method"].map(table[complete_rows(table)].groupby("method")["safe"].all())
    table = pd.concat([table, avg[table.columns]], ignore_index=True)
    table["safe"] = table["safe"].astype(bool)
    order = list(methods or dict.fromkeys(frame["method"]))
    table["method"] = pd.Categorical(table["method"], categories=order, ordered=True)
    return table.sort_values(["task", "budget", "method"], key=None).reset_index(drop=True)


def complete_rows(table):
    """Boolean mask of the (task, budget) rows of ``table`` that every method of it has: the rows
    the ``average`` row covers."""
    body = table["task"] != "average"
    per_row = table.groupby(["task", "budget"], dropna=False)["method"].transform("nunique")
    return body & (per_row == table.loc[body, "method"].nunique())


def format_table(table) -> "object":
    """The table in DSRL's layout: rows (task, budget), columns per method ``"r +- s / c +- s"``,
    unsafe cells marked with ``(unsafe)``. A string DataFrame ready to print or export."""
    def fmt(row):
        r = f"{row['reward']:.3f}" + ("" if np.isnan(row["reward_std"]) else f" ± {row['reward_std']:.3f}")
        c = f"{row['cost']:.2f}" + ("" if np.isnan(row["cost_std"]) else f" ± {row['cost_std']:.2f}")
        return f"{r} / {c}" + ("" if row["safe"] else " (unsafe)")

    t = table.copy()
    t["cell"] = t.apply(fmt, axis=1)
    t["budget"] = t["budget"].map(lambda b: "" if np.isnan(b) else f"{b:g}")
    wide = t.pivot(index=["task", "budget"], columns="method", values="cell")
    rows = [i for i in wide.index if i[0] != "average"] + [i for i in wide.index if i[0] == "average"]
    return wide.loc[rows]


def write_table(table, out_dir: Path) -> tuple[Path, Path]:
    """``benchmark_table.csv`` and ``benchmark_table.json`` in ``out_dir``, written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, js = out_dir / "benchmark_table.csv", out_dir / "benchmark_table.json"
    t = table.assign(method=table["method"].astype(str))
    tmp = out_dir / ".benchmark_table.csv.tmp"
    t.to_csv(tmp, index=False)
    os.replace(tmp, csv)
    tmp = out_dir / ".benchmark_table.json.tmp"
    tmp.write_text(t.to_json(orient="records", indent=1))
    os.replace(tmp, js)
    return csv, js
