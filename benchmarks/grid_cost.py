"""What a benchmark grid costs: seconds per cell from measured cells, and predicted wall times.

Measured cells are the ``result.json`` files under ``data/benchmark/``, ``runs/benchmark/`` and
``runs/grid_cost/`` (where ``measure`` writes; ``--results`` adds folders). Each holds its
training time (``train_wall_time_s``: the optimiser's time over all sessions, setup left out)
and its evaluation time (``eval_wall_time_s``); cells run since the Ray executor also record the
whole cell's wall time, the device, the torch threads and when they started.

The model. One cell costs

    training steps x (s per step) + evaluated env steps x (s per env step) + overhead,

with the rates per (simulator family, method, model size: smoke or full, CPU or GPU) the median
over the measured cells of that kind. Evaluated env steps are budgets x episodes x the task's
episode limit: an upper bound (episodes that end early cost less), counted the same way when the
rates are measured. A training shared by several cells (arms of one method) counts once. The
overhead (loading the dataset and the model, starting environments) is the median of
``wall - train - eval`` over the cells that trained in the same call; where none recorded it,
``--overhead-s``. Where a kind was not measured, the rate comes from a stand-in, printed beside
it: TREBI, CDD and the TCDP ablations from TCDP (the same backbone, sampler and planner); another
family's rate (evaluation scaled by the two families' BC-Safe evaluation rates when both have
them); on a GPU, the CPU's rates divided by ``--gpu-train-speedup`` and ``--gpu-eval-speedup``,
ASSUMED, unless a cell run on CUDA was measured.

Wall time on W workers: the cells in grid order on W workers, each starting when a worker frees
(as the Ray executor submits them), cells sharing a training after the first of them. Cells on W
workers run as fast as the measured ones: measure at the thread count the grid will use
(``--threads`` keeps only cells measured at that count).

Commands (``dsrl`` is the default):

    python benchmarks/grid_cost.py                          # rates, then the DSRL grid on CPUs and GPUs
    python benchmarks/grid_cost.py dsrl --cpu-workers 2 64 512 --gpus 1 8 --gpu-train-speedup 10
    python benchmarks/grid_cost.py measure --methods bc_safe tcdp --steps 200 --episodes 1   # real models, short
    python benchmarks/grid_cost.py measure --smoke --tasks OfflineBallCircle-v0 OfflineBallRun-v0
    python benchmarks/grid_cost.py grid --preset smoke --tasks OfflineBallCircle-v0 OfflineBallRun-v0 \\
        --methods bc_safe tcdp --seeds 0 1 --workers 2 --out runs/benchmark/check

``grid`` predicts a local grid (the same options as ``tcdp benchmark``) on ``--workers`` workers,
from rates that leave out the cells in ``--out``; when the grid's cells are finished there, it
also prints the measured span (first cell's start to last ``result.json``) and the ratio. To check
the model: ``measure`` its kinds of cell, ``grid`` it before running, run it
(``tcdp benchmark --executor ray --workers W --out DIR ...``), then ``grid ... --out DIR``. Use
cells of a minute or more (smoke cells with ``--diffusion-steps 3000 --baseline-steps 3000
--episodes 10``, say) on a machine with nothing else running: smoke cells of a few seconds are
mostly start-up, and measured here with two other trainings on the two cores, 8 smoke cells on 2
Ray workers took 15.3 s against 8.2 s predicted from serially measured ones (each worker ran at
about half the speed of the serial measurement).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import importlib.util
import json
import statistics
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from tcdp_lib.paths import BENCHMARK_DIR, RUNS_DIR

ROOTS = (BENCHMARK_DIR, RUNS_DIR / "benchmark", RUNS_DIR / "grid_cost")
DSRL_METHODS = ("tcdp", "trebi", "cdd", "bc_safe", "cdt")
STAND_IN = {"trebi": "tcdp", "cdd": "tcdp", "tcdp_no_ctgda": "tcdp", "tcdp_no_qn": "tcdp"}
"""Methods measured through another one (the same backbone, sampler and planner)."""


# --------------------------------------------------------------------------------------------
#                                      Tasks and steps
# --------------------------------------------------------------------------------------------


def dsrl_tasks() -> list[tuple[str, str, int]]:
    """DSRL's 38 tasks as ``(name, family, episode limit)``, from ``dsrl.infos`` (read as a file:
    importing the ``dsrl`` package registers every family's environments)."""
    spec = importlib.util.find_spec("dsrl")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("dsrl is not installed (make install)")
    path = Path(spec.submodule_search_locations[0]) / "infos.py"
    file_spec = importlib.util.spec_from_file_location("_dsrl_infos", path)
    infos = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(infos)
    out = []
    for name, limit in infos.DEFAULT_MAX_EPISODE_STEPS.items():
        if name.islower():
            family = "metadrive"  # easysparse, ..., harddense
        elif name[-1].isdigit() or name.endswith("Velocity"):
            family = "safety_gymnasium"
        else:
            family = "bullet"
        out.append((name, family, int(limit)))
    counts = {f: sum(1 for _, g, _ in out if g == f) for f in ("bullet", "safety_gymnasium", "metadrive")}
    if len(out) != 38 or counts != {"bullet": 8, "safety_gymnasium": 21, "metadrive": 9}:
        raise SystemExit(f"dsrl.infos lists {len(out)} tasks {counts}, not DSRL's 38 (8 / 21 / 9)")
    return out


def task_info(task: str) -> tuple[str, int]:
    """``(family, episode limit)`` of one of the workbench's task ids."""
    from tcdp_lib.data.tasks import get_task

    info = get_task(task)
    return info.family, info.max_episode_steps


def train_steps(method: str, steps, smoke: bool, task: str | None = None) -> int:
    """The optimiser steps a cell trains (its ``steps``, else its method's default on ``task``)."""
    from tcdp_lib.baselines import BCSafeConfig, CDTConfig
    from tcdp_lib.method.variants import VARIANTS
    from tcdp_lib.runs.train import SMOKE_TRAIN, TrainConfig, default_train_config

    if steps is not None:
        return int(steps)
    if method in VARIANTS:
        return (SMOKE_TRAIN if smoke else (TrainConfig() if task is None else default_train_config(task))).steps
    return {"bc_safe": BCSafeConfig(), "cdt": CDTConfig()}[method].steps


# --------------------------------------------------------------------------------------------
#                                      Measured cells
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One measured cell, reduced to what the model needs."""

    family: str
    method: str
    smoke: bool
    gpu: bool
    train_key: tuple
    train_s_per_step: float
    eval_s_per_env_step: float
    overhead_s: float | None
    threads: int | None
    path: Path


def load_measurements(roots, exclude=()) -> list[Measured]:
    """Every ``result.json`` under ``roots`` (not under ``exclude``), the same body counted once."""
    exclude = [Path(e).resolve() for e in exclude]
    seen, out = set(), []
    for root in roots:
        for path in sorted(Path(root).rglob("result.json")) if Path(root).exists() else ():
            if any(path.resolve().is_relative_to(e) for e in exclude):
                continue
            body = json.loads(path.read_text())
            c = body.get("cell")
            if not isinstance(c, dict) or "train_wall_time_s" not in body:
                continue
            key = json.dumps([c, body["train_wall_time_s"], body["eval_wall_time_s"]], sort_keys=True)
            if key in seen:  # data/benchmark holds copies of runs/benchmark cells
                continue
            seen.add(key)
            try:
                family, limit = task_info(c["task"])
            except KeyError:
                continue
            budgets = len(c.get("budgets") or (0, 0, 0))
            env_steps = budgets * int(c["episodes"]) * limit
            steps = train_steps(c["method"], c.get("steps"), bool(c.get("smoke")), c["task"])
            train, evaluate = float(body["train_wall_time_s"]), float(body["eval_wall_time_s"])
            wall = body.get("wall_time_s")
            overhead = wall - train - evaluate if wall is not None and wall >= train + evaluate else None
            out.append(Measured(family, c["method"], bool(c.get("smoke")), str(body.get("device", "cpu")).startswith("cuda"),
                                (c["task"], c["method"], c["seed"], c.get("steps"), bool(c.get("smoke"))),
                                train / steps, evaluate / env_steps, overhead, body.get("threads"), path))
    return out


@dataclass(frozen=True)
class Rate:
    train_s_per_step: float
    eval_s_per_env_step: float
    overhead_s: float
    source: str


class Rates:
    """Rates per (family, method, smoke, gpu), with stand-ins for the kinds not measured."""

    def __init__(self, measured: list[Measured], overhead_s: float, gpu_train_speedup: float,
                 gpu_eval_speedup: float):
        self.groups: dict[tuple, list[Measured]] = {}
        for m in measured:
            self.groups.setdefault((m.family, m.method, m.smoke, m.gpu), []).append(m)
        self.default_overhead = overhead_s
        self.speedup = (gpu_train_speedup, gpu_eval_speedup)
        self.used: dict[tuple, Rate] = {}

    def _measured(self, key) -> Rate | None:
        ms = self.groups.get(key)
        if not ms:
            return None
        trains = {m.train_key: m.train_s_per_step for m in ms}  # a shared training once
        overheads = [m.overhead_s for m in ms if m.overhead_s is not None]
        overhead = statistics.median(overheads) if overheads else self.default_overhead
        return Rate(statistics.median(trains.values()), statistics.median(m.eval_s_per_env_step for m in ms),
                    overhead, f"measured, {len(ms)} cell(s)" + ("" if overheads else ", overhead assumed"))

    def _family_scale(self, family: str, other: str, smoke: bool, gpu: bool) -> float | None:
        a, b = (self._measured((f, "bc_safe", smoke, gpu)) for f in (family, other))
        return None if a is None or b is None else a.eval_s_per_env_step / b.eval_s_per_env_step

    def _cpu_or_gpu(self, family, method, smoke, gpu) -> Rate | None:
        rate = self._measured((family, method, smoke, gpu))
        if rate is not None:
            return rate
        others = sorted(f for (f, m, s, g) in self.groups if m == method and s == smoke and g == gpu and f != family)
        if not others:
            return None
        rates = [self._measured((f, method, smoke, gpu)) for f in others]
        scales = [self._family_scale(family, f, smoke, gpu) for f in others]
        evals = [r.eval_s_per_env_step * (s or 1.0) for r, s in zip(rates, scales)]
        how = "scaled by BC-Safe's" if all(s is not None for s in scales) else "unscaled"
        return Rate(statistics.median(r.train_s_per_step for r in rates), statistics.median(evals),
                    statistics.median(r.overhead_s for r in rates), f"from {'+'.join(others)} (eval {how})")

    def rate(self, family: str, method: str, smoke: bool, gpu: bool = False) -> Rate:
        key = (family, method, smoke, gpu)
        if key in self.used:
            return self.used[key]
        rate, names = None, [method] + ([STAND_IN[method]] if method in STAND_IN else [])
        for name in names:
            rate = self._cpu_or_gpu(family, name, smoke, gpu)
            if rate is not None:
                if name != method:
                    rate = dataclasses.replace(rate, source=f"as {name}: {rate.source}")
                break
        if rate is None and gpu:
            cpu = self.rate(family, method, smoke, False)
            t, e = self.speedup
            rate = Rate(cpu.train_s_per_step / t, cpu.eval_s_per_env_step / e, cpu.overhead_s,
                        f"CPU / ASSUMED speed-up {t:g} (train), {e:g} (eval)")
        if rate is None:
            raise SystemExit(f"no measured cell of {method!r} ({'smoke' if smoke else 'full'} model) in any family; "
                             f"run: python benchmarks/grid_cost.py measure --methods {method}"
                             f"{' --smoke' if smoke else ''}")
        self.used[key] = rate
        return rate


# --------------------------------------------------------------------------------------------
#                                         Prediction
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellCost:
    name: str
    group: str
    """Cells of one group share a training: the first trains, the others wait for it."""
    train_s: float
    eval_s: float
    overhead_s: float


def cell_cost(rates: Rates, name: str, family: str, limit: int, method: str, steps, smoke: bool, episodes: int,
              budgets: int, group: str, gpu: bool = False) -> CellCost:
    r = rates.rate(family, method, smoke, gpu)
    return CellCost(name, group, train_steps(method, steps, smoke) * r.train_s_per_step,
                    budgets * episodes * limit * r.eval_s_per_env_step, r.overhead_s)


def simulate(cells: list[CellCost], workers: int, worker_start_s: float = 0.0) -> float:
    """Seconds until the last cell ends: ``cells`` in order on ``workers`` workers, each started
    when a worker frees; the later cells of a group start after its first and do not train. The
    first ``workers`` cells also pay ``worker_start_s`` (a fresh process importing the simulators)."""
    groups: dict[str, deque] = {}
    for i, c in enumerate(cells):
        groups.setdefault(c.group, deque()).append(i)
    leaders = {g[0] for g in groups.values()}
    ready = deque(sorted(g.popleft() for g in groups.values()))
    running: list[tuple[float, int]] = []
    t, started = 0.0, 0
    while ready or running:
        while ready and len(running) < workers:
            i = ready.popleft()
            c = cells[i]
            first = worker_start_s if started < workers else 0.0
            started += 1
            heapq.heappush(running, (t + first + c.overhead_s + c.eval_s + (c.train_s if i in leaders else 0.0), i))
        t, i = heapq.heappop(running)
        if i in leaders:
            ready.extend(groups[cells[i].group])
            groups[cells[i].group].clear()
    return t


def _hours(s: float) -> str:
    return f"{s / 3600:,.1f} h" if s >= 3600 else f"{s / 60:,.1f} min" if s >= 60 else f"{s:,.1f} s"


def print_rates(rates: Rates) -> None:
    print(f"{'family':17s} {'method':14s} {'model':5s} {'dev':4s} {'train s/1k steps':>16s} "
          f"{'eval ms/env step':>16s} {'overhead s':>10s}  source")
    for (family, method, smoke, gpu), r in sorted(rates.used.items()):
        print(f"{family:17s} {method:14s} {'smoke' if smoke else 'full':5s} {'gpu' if gpu else 'cpu':4s} "
              f"{1000 * r.train_s_per_step:16.2f} {1000 * r.eval_s_per_env_step:16.3f} {r.overhead_s:10.1f}  {r.source}")


def dsrl_grid(rates: Rates, episodes: int, metadrive_episodes: int, seeds: int, gpu: bool) -> list[CellCost]:
    """The full DSRL grid as cells: 38 tasks x seeds x our methods, each cell evaluating the task's
    3 budgets; training steps of the ``full`` preset."""
    from tcdp_lib.runs.benchmark import PRESETS

    full = PRESETS["full"]
    cells = []
    for name, family, limit in dsrl_tasks():
        for seed in range(seeds):
            for m in DSRL_METHODS:
                steps = full.steps_of(m, name)
                eps = metadrive_episodes if family == "metadrive" else episodes
                cells.append(cell_cost(rates, f"{name}/{m}/seed{seed}", family, limit, m, steps, False, eps, 3,
                                       f"{name}/{m}/{seed}", gpu))
    return cells


def cmd_dsrl(args, rates: Rates) -> None:
    cpu = dsrl_grid(rates, args.episodes, args.metadrive_episodes, args.seeds, gpu=False)
    gpu = dsrl_grid(rates, args.episodes, args.metadrive_episodes, args.seeds, gpu=True)
    print_rates(rates)
    total = sum(c.train_s + c.eval_s + c.overhead_s for c in cpu)
    print(f"\nDSRL grid: 38 tasks x 3 budgets x {args.seeds} seeds x {len(DSRL_METHODS)} methods "
          f"({', '.join(DSRL_METHODS)}) = {len(cpu)} cells of 3 budgets; {args.episodes} episodes per budget "
          f"({args.metadrive_episodes} on MetaDrive); training steps of the full preset")
    by = {}
    for c in cpu:
        m = c.name.split("/")[1]
        by[m] = by.get(m, 0.0) + c.train_s + c.eval_s + c.overhead_s
    print("cell time by method: " + ", ".join(f"{m} {_hours(s)}" for m, s in by.items()))
    print(f"CPU: {_hours(total)} of cell time in all (one worker = one cell at the measured thread count)")
    for w in args.cpu_workers:
        print(f"  {w:5d} CPU workers: {_hours(simulate(cpu, w))}  (even split {_hours(total / w)}, "
              f"longest cell {_hours(max(c.train_s + c.eval_s + c.overhead_s for c in cpu))})")
    measured_gpu = any(k[3] and "measured" in r.source and "ASSUMED" not in r.source for k, r in rates.used.items())
    total_gpu = sum(c.train_s + c.eval_s + c.overhead_s for c in gpu)
    print(f"GPU ({args.cells_per_gpu} cell(s) at once per GPU; "
          f"{'some rates measured on CUDA, see the table' if measured_gpu else 'speed-ups ASSUMED, not measured'}): "
          f"{_hours(total_gpu)} of cell time")
    for n in args.gpus:
        print(f"  {n:5d} GPUs: {_hours(simulate(gpu, n * args.cells_per_gpu))}")


def cmd_grid(args, rates: Rates) -> None:
    from tcdp_lib.runs.benchmark import PRESETS, cell_dir, cell_name, train_dir

    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in (
        ("methods", args.methods), ("tasks", args.tasks), ("seeds", args.seeds), ("episodes", args.episodes),
        ("diffusion_steps", args.diffusion_steps), ("baseline_steps", args.baseline_steps)) if v is not None}
    if args.episodes is not None:
        overrides["family_episodes"] = None
    cfg = dataclasses.replace(PRESETS[args.preset], **overrides)
    cells = cfg.cells()
    costs = []
    for c in cells:
        family, limit = task_info(c["task"])
        costs.append(cell_cost(rates, f"{c['task']}/{cell_name(c)}/seed{c['seed']}", family, limit, c["method"],
                               c["steps"], bool(c["smoke"]), c["episodes"], len(c["budgets"] or (0, 0, 0)),
                               str(train_dir(Path("."), c)), gpu=args.gpu))
    print_rates(rates)
    print(f"\n{'cell':52s} {'train s':>8s} {'eval s':>8s} {'overhead s':>10s}")
    for c in costs:
        print(f"{c.name:52s} {c.train_s:8.1f} {c.eval_s:8.1f} {c.overhead_s:10.1f}")
    predicted = simulate(costs, args.workers, args.worker_start_s) + args.startup_s
    print(f"\npredicted: {len(cells)} cells on {args.workers} worker(s): {_hours(predicted)}"
          + (f" (with {args.startup_s:g} s start-up)" if args.startup_s else ""))
    if args.out is None:
        return
    bodies = [json.loads(p.read_text()) if (p := cell_dir(args.out, c) / "result.json").exists() else None
              for c in cells]
    done = [(b, cell_dir(args.out, c) / "result.json") for b, c in zip(bodies, cells)
            if b is not None and b.get("cell") == json.loads(json.dumps(c)) and "started_at" in b]
    if len(done) < len(cells):
        print(f"measured: {len(done)} of {len(cells)} cells finished in {args.out} with start times; no comparison")
        return
    span = max(p.stat().st_mtime for _, p in done) - min(b["started_at"] for b, _ in done)
    print(f"measured: {_hours(span)} from the first cell's start to the last result in {args.out}; "
          f"predicted / measured = {(predicted - args.startup_s) / span:.2f}")


def cmd_measure(args) -> None:
    import torch

    from tcdp_lib.runs.benchmark import BenchmarkConfig, cell_dir, cell_name, run_benchmark

    torch.set_num_threads(args.threads or 1)
    cfg = BenchmarkConfig(methods=tuple(args.methods), tasks=tuple(args.tasks), seeds=(0,), episodes=args.episodes,
                          n_envs=args.n_envs, smoke=args.smoke, diffusion_steps=args.steps, baseline_steps=args.steps)
    out = Path(args.out)
    results = run_benchmark(cfg, out, progress=True)
    for r in results:
        c = r["cell"]
        print(f"{c['task']:34s} {cell_name(c):10s} train {r['train_wall_time_s']:7.1f} s  "
              f"eval {r['eval_wall_time_s']:7.1f} s  cell {r.get('wall_time_s', float('nan')):7.1f} s  "
              f"({r.get('threads')} thread(s), {r.get('device')}) -> {cell_dir(out, c)}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--results", nargs="*", default=[], help="more folders of result.json files")
    common.add_argument("--threads", type=int, default=None,
                        help="use only cells measured at this many torch threads (cells that recorded it)")
    common.add_argument("--overhead-s", type=float, default=5.0,
                        help="per-cell overhead where no measured cell recorded its whole wall time (ASSUMED)")
    common.add_argument("--gpu-train-speedup", type=float, default=10.0,
                        help="GPU over one CPU worker, training (ASSUMED unless a CUDA cell was measured)")
    common.add_argument("--gpu-eval-speedup", type=float, default=2.0,
                        help="GPU over one CPU worker, evaluation: the simulators stay on the CPU (ASSUMED)")
    sub = ap.add_subparsers(dest="command")

    d = sub.add_parser("dsrl", parents=[common], help="the full DSRL grid on N CPU workers and N GPUs")
    d.add_argument("--cpu-workers", type=int, nargs="*", default=[2, 16, 64, 256, 1024])
    d.add_argument("--gpus", type=int, nargs="*", default=[1, 8, 64])
    d.add_argument("--cells-per-gpu", type=int, default=1, help="cells sharing one GPU at once")
    d.add_argument("--seeds", type=int, default=3)
    d.add_argument("--episodes", type=int, default=20, help="evaluation episodes per budget and seed")
    d.add_argument("--metadrive-episodes", type=int, default=10)

    g = sub.add_parser("grid", parents=[common], help="a local grid on W workers (and its measured span)")
    g.add_argument("--preset", default="smoke")
    g.add_argument("--methods", nargs="*", default=None)
    g.add_argument("--tasks", nargs="*", default=None)
    g.add_argument("--seeds", type=int, nargs="*", default=None)
    g.add_argument("--episodes", type=int, default=None)
    g.add_argument("--diffusion-steps", type=int, default=None)
    g.add_argument("--baseline-steps", type=int, default=None)
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--gpu", action="store_true", help="the workers are GPUs")
    g.add_argument("--startup-s", type=float, default=0.0,
                   help="added once: a local Ray's start (about 12 s on this 2-core machine)")
    g.add_argument("--worker-start-s", type=float, default=3.0,
                   help="added to each worker's first cell: a fresh process importing the simulators "
                        "(2-6 s measured on this 2-core machine)")
    g.add_argument("--out", type=Path, default=None,
                   help="the grid's results folder: left out of the rates, and its span measured when finished")

    m = sub.add_parser("measure", help="run a few cells at one seed to measure their rates (resumable)")
    m.add_argument("--tasks", nargs="*", default=["OfflineBallCircle-v0"])
    m.add_argument("--methods", nargs="*", default=["bc_safe", "tcdp"])
    m.add_argument("--smoke", action="store_true", help="the smoke models (default: the real ones)")
    m.add_argument("--steps", type=int, default=None,
                   help="training steps (default: 20 with --smoke, else 200: a rate needs no full training)")
    m.add_argument("--episodes", type=int, default=1, help="evaluation episodes per budget")
    m.add_argument("--n-envs", type=int, default=10)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--out", default=None, help="default: runs/grid_cost/smoke or runs/grid_cost/full")

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in sub.choices and argv[0] not in ("-h", "--help"):
        argv = ["dsrl", *argv]
    args = ap.parse_args(argv)
    if args.command == "measure":
        if args.steps is None:
            args.steps = 20 if args.smoke else 200
        args.out = args.out or str(RUNS_DIR / "grid_cost" / ("smoke" if args.smoke else "full"))
        return cmd_measure(args)
    measured = load_measurements([*ROOTS, *args.results], exclude=[args.out] if getattr(args, "out", None) else [])
    if args.threads is not None:
        measured = [x for x in measured if x.threads == args.threads]
    rates = Rates(measured, args.overhead_s, args.gpu_train_speedup, args.gpu_eval_speedup)
    print(f"{len(measured)} measured cells under {', '.join(str(r) for r in [*ROOTS, *args.results])}\n")
    (cmd_dsrl if args.command == "dsrl" else cmd_grid)(args, rates)


if __name__ == "__main__":
    main()
