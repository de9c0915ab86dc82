"""The benchmark grid: methods x tasks x seeds, each cell trained and evaluated on its own.

One *cell* is a pure function of its config (method, task, seed, steps, episodes, ...): it
trains the method into ``<out>/<task>/<method>/seed<k>/train/``, evaluates it at the task's
budgets with the shared harness, and writes ``result.json`` atomically beside them. A cell whose
``result.json`` holds the same config is not run again, so an interrupted benchmark resumes
where it stopped, and any executor (a loop here, a Ray task on a cluster) can run cells alone.

``benchmark_table`` turns the cells into DSRL's table: normalised reward and cost per task and
budget, mean +- std over seeds, a cell is *safe* when its normalised cost is <= 1, and the
average over all rows last.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcdp_lib.paths import RUNS_DIR
from tcdp_lib.runs.methods import METHODS

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

    def cells(self) -> list[dict]:
        """Every cell's config, in run order (task, then seed, then method). A cell holds only
        what changes its result: its own training steps and planning overrides."""
        from tcdp_lib.data.tasks import get_task
        from tcdp_lib.method.variants import VARIANTS

        common = {k: getattr(self, k) for k in ("n_envs", "smoke", "budgets")}
        planning = self.planning or {}
        by_family = self.family_episodes or {}
        return [{"method": m, "task": t, "seed": int(s),
                 "steps": self.diffusion_steps if m in VARIANTS else self.baseline_steps,
                 "episodes": int(by_family.get(get_task(t).family, self.episodes)),
                 **common, "planning": dict(planning.get(m, {}))}
                for t in self.tasks for s in self.seeds for m in self.methods]


PRESETS: dict[str, BenchmarkConfig] = {
    "smoke": BenchmarkConfig(tasks=("OfflineBallCircle-v0",), episodes=2, n_envs=2, smoke=True,
                             diffusion_steps=20, baseline_steps=20),
    # The shipped results (data/benchmark/): TrainConfig's 6000 steps for every diffusion planner,
    # one training seed, 20 episodes per budget. TREBI's guidance was
    # chosen on BallCircle from beta in {0.1, 1, 5, 20} x n in {10, 50}: with beta 0.1 its cost
    # did not depend on the budget; CDD keeps TCDP's w_cfg (1.5 and 8 were no safer). BC-Safe and
    # CDT train 3000 steps (CDT's default 10000 take over an hour per task on this CPU).
    # The grid covers the three Bullet tasks and one task of each other family.
    # TCDP plans with one (w_cfg, beta, budget_fraction) on every task and budget.
    "full": BenchmarkConfig(tasks=BULLET_TASKS + FAMILY_TASKS,
                            planning={"tcdp": {"w_cfg": 1.5, "beta": 1.0, "budget_fraction": 0.5},
                                      "trebi": {"beta": 5.0, "cost_weight": 10.0}},
                            baseline_steps=3000, family_episodes={"metadrive": 10}),
}


def cell_dir(out_root: Path, cell: dict) -> Path:
    return Path(out_root) / cell["task"] / cell["method"] / f"seed{cell['seed']}"


def _json_cell(cell: dict) -> dict:
    return json.loads(json.dumps(cell))


def load_cell_result(out_root: Path, cell: dict) -> dict | None:
    """The finished result of ``cell`` when ``result.json`` holds this exact cell config, else ``None``."""
    path = cell_dir(out_root, cell) / "result.json"
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return result if result.get("cell") == _json_cell(cell) else None


def run_cell(cell: dict, out_root: Path, progress: bool = False, device=None) -> dict:
    """Train and evaluate one cell; writes and returns its ``result.json`` body."""
    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.runs.evaluate import evaluate
    from tcdp_lib.runs.methods import load_policy, train_method, training_wall_time

    cell = _json_cell(cell)
    method, task, seed = cell["method"], cell["task"], int(cell["seed"])
    out = cell_dir(out_root, cell)
    dataset = load_dataset(task)
    kwargs = {}
    if cell["smoke"]:
        from tcdp_lib.baselines import BCSafeConfig, CDTConfig
        from tcdp_lib.runs.train import SMOKE_MODEL, SMOKE_TRAIN

        kwargs = {"model_config": SMOKE_MODEL, "train_config": SMOKE_TRAIN,
                  "baseline_config": {"bc_safe": BCSafeConfig(hidden=(32,), batch_size=32),
                                      "cdt": CDTConfig(embed_dim=16, n_layers=1, n_heads=1, batch_size=8,
                                                       context_len=4)}.get(method)}
    trained = train_method(method, dataset, out / "train", seed=seed, steps=cell["steps"], progress=progress,
                           device=device, **kwargs)
    t_train = training_wall_time(trained)  # all of the training, also when it was resumed
    from tcdp_lib.planner.planner import PlannerConfig

    planning = dict(cell.get("planning", {}))
    execution = {k: planning.pop(k) for k in ("replan_every", "warm_start") if k in planning}
    make_policy = load_policy(trained, task, PlannerConfig(**planning), method=method, **execution)
    budgets = cell["budgets"] or dataset.meta.budgets
    t0 = time.time()
    _, summary = evaluate(dataset, make_policy, budgets=budgets, seeds=(seed,), episodes=cell["episodes"],
                          n_envs=cell["n_envs"], out_dir=out / "eval", progress=progress,
                          meta={"method": method, "model": str(trained)})
    result = {
        "cell": cell,
        "summary": [{**dataclasses.asdict(s), "safe": s.safe} for s in summary],
        "train_wall_time_s": t_train,
        "eval_wall_time_s": time.time() - t0,
    }
    tmp = out / ".result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out / "result.json")
    return result


def run_benchmark(config: BenchmarkConfig, out_root: Path | None = None, progress: bool = True,
                  device=None) -> list[dict]:
    """Run every cell not finished yet (in order); returns all cells' results."""
    from tqdm.auto import tqdm

    out_root = Path(out_root) if out_root is not None else RUNS_DIR / "benchmark"
    cells = config.cells()
    results = []
    with tqdm(total=len(cells), desc="benchmark", unit="cell", disable=not progress) as bar:
        for cell in cells:
            bar.set_postfix(method=cell["method"], task=cell["task"], seed=cell["seed"])
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
    paths = []
    for r in results:
        path = cell_dir(dest, r["cell"]) / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".result.json.tmp")
        tmp.write_text(json.dumps(r, indent=1))
        os.replace(tmp, path)
        paths.append(path)
    return paths


def results_frame(results: list[dict]):
    """One row per (method, task, seed, budget) with the normalised reward and cost."""
    import pandas as pd

    rows = []
    for r in results:
        c = r["cell"]
        for s in r["summary"]:
            rows.append({"method": c["method"], "task": c["task"], "seed": c["seed"], "budget": s["budget"],
                         "normalized_reward": s["normalized_reward"], "normalized_cost": s["normalized_cost"],
                         "reward": s["reward"], "cost": s["cost"], "episodes": s["episodes"],
                         "train_wall_time_s": r["train_wall_time_s"], "eval_wall_time_s": r["eval_wall_time_s"]})
    return pd.DataFrame(rows)


def benchmark_table(frame, methods: tuple[str, ...] | None = None):
    """DSRL's table as a long frame: per (task, budget, method) the mean and std over seeds of
    the normalised reward and cost and ``safe`` (mean normalised cost <= 1); then, per method,
    the ``average`` row over the (task, budget) rows that every method has (a task not yet run for
    some method stays in the table but out of the average, so the averages compare alike)."""
    import pandas as pd

    if frame.empty:
        raise ValueError("no benchmark results to tabulate")
    g = frame.groupby(["task", "budget", "method"])
    table = pd.DataFrame({
        "reward": g["normalized_reward"].mean(), "reward_std": g["normalized_reward"].std(ddof=0),
        "cost": g["normalized_cost"].mean(), "cost_std": g["normalized_cost"].std(ddof=0),
        "seeds": g["seed"].nunique(),
    }).reset_index()
    avg = table[complete_rows(table)].groupby("method").agg(reward=("reward", "mean"), cost=("cost", "mean"),
                                      seeds=("seeds", "min")).reset_index()
    avg["reward_std"] = np.nan
    avg["cost_std"] = np.nan
    avg["task"], avg["budget"] = "average", np.nan
    table = pd.concat([table, avg[table.columns]], ignore_index=True)
    table["safe"] = table["cost"] <= 1.0
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
