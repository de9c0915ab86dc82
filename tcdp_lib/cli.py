"""The ``tcdp`` command line: generate-data, dataset-card, train, evaluate, diagnose, benchmark, report.

An error the user can fix (a :class:`tcdp_lib.errors.TcdpError`: a bad dataset or model file, a
bad budget, an unknown task, a missing simulator package) is printed as one line,
``tcdp: error: <message>``, with exit code 2; ``--debug`` or ``TCDP_DEBUG=1`` shows its
traceback instead. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from tcdp_lib.errors import BudgetRangeWarning, TcdpError, check_budget
from tcdp_lib.paths import DATA_DIR, RUNS_DIR


def _cmd_generate(args) -> int:
    from tcdp_lib.data.generate import Phase, generate_dataset, recipe

    overrides = {"seed": args.seed}
    if args.steps is not None:
        # A short run keeps the recipe's shape: first half unconstrained, then a limit sweep.
        half = max(args.steps // 2, 1)
        overrides["phases"] = (Phase(half), Phase(args.steps - half, 5.0, 80.0))
        overrides["stage_steps"] = args.stage_steps or args.steps
    elif args.stage_steps:
        overrides["stage_steps"] = args.stage_steps
    if args.mixture_episodes is not None:
        overrides["mixture_episodes"] = args.mixture_episodes
    if args.n_steps is not None:
        overrides["n_steps"] = args.n_steps
        overrides["batch_size"] = min(64, args.n_steps)
    cfg = recipe(args.task, **overrides)
    out = Path(args.out) if args.out else DATA_DIR / f"{args.task}.hdf5"
    result = generate_dataset(cfg, out=out, work_root=Path(args.work_dir), progress=not args.quiet)
    print(
        f"wrote {result.path}: {result.num_episodes_kept} of {result.num_episodes_logged} episodes, "
        f"{result.num_steps_kept} steps, generator wall time {result.wall_time_s:.0f} s"
    )
    return 0


def _cmd_refilter(args) -> int:
    from tcdp_lib.data.generate import refilter_dataset

    src = Path(args.file) if args.file else DATA_DIR / f"{args.task}.hdf5"
    overrides = {k: v for k, v in (("keep_best_per_budget", args.keep_best), ("max_steps", args.max_steps),
                                   ("frontier", args.frontier)) if v is not None}
    result = refilter_dataset(src, Path(args.out) if args.out else src, **overrides)
    print(f"wrote {result.path}: {result.num_episodes_kept} of the {result.num_episodes_logged} episodes of {src}, "
          f"{result.num_steps_kept} steps")
    return 0


def _cmd_card(args) -> int:
    from tcdp_lib.data.card import dataset_card_markdown

    paths = [Path(p) for p in args.paths] or sorted(DATA_DIR.glob("*.hdf5"))
    text = dataset_card_markdown(paths, task=args.task)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


def _cmd_train(args) -> int:
    import dataclasses
    import time

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.runs.methods import DIFFUSION_METHODS, train_method
    from tcdp_lib.runs.train import default_train_config

    _threads(args.threads)
    ds = load_dataset(args.task, args.dataset)
    train = None
    if args.batch_size is not None:
        if args.method not in DIFFUSION_METHODS:
            raise SystemExit(f"--batch-size applies to the diffusion methods {DIFFUSION_METHODS}, not {args.method!r}")
        train = dataclasses.replace(default_train_config(args.task), batch_size=args.batch_size)
    default = RUNS_DIR / "train" / args.task / f"seed{args.seed}"
    out = Path(args.out) if args.out else (default if args.method == "tcdp" else default.with_name(
        f"{args.method}-seed{args.seed}"))
    t0 = time.time()
    path = train_method(args.method, ds, out, seed=args.seed, steps=args.steps, train_config=train,
                        progress=not args.quiet)
    print(f"{args.method} model: {path} ({time.time() - t0:.0f} s)")
    return 0


def _cmd_evaluate(args) -> int:
    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.planner.planner import PlannerConfig
    from tcdp_lib.runs.evaluate import evaluate
    from tcdp_lib.runs.methods import load_policy, method_of

    _threads(args.threads)
    budgets = None if args.budgets is None else [check_budget(b) for b in args.budgets]  # before anything slow
    ds = load_dataset(args.task, args.dataset)
    budgets = list(ds.meta.budgets) if budgets is None else budgets
    over = {} if args.samples is None else {"n_samples": args.samples}
    pcfg = PlannerConfig(w_cfg=args.w_cfg, beta=args.beta, sampling_steps=args.sampling_steps,
                         cost_weight=args.cost_weight, budget_fraction=args.budget_fraction,
                         ensemble=args.ensemble, cold_samples=args.cold_samples, choice=args.choice, **over)
    model = Path(args.model)
    warm = None if args.warm_start is None else bool(args.warm_start)
    make_policy = load_policy(model, args.task, pcfg, replan_every=args.replan_every, method=args.method,
                              warm_start=warm, budgets=budgets, temporal_ensemble=args.temporal_ensemble)
    method = args.method or method_of(model)
    base = model if model.is_dir() else model.parent
    out = Path(args.out) if args.out else base / "eval"
    _, summary = evaluate(ds, make_policy, budgets=budgets, seeds=tuple(args.seeds),
                          episodes=args.episodes, n_envs=args.n_envs, out_dir=out,
                          progress=not args.quiet,
                          meta={"method": method, "model": str(args.model), "planner": pcfg.__dict__,
                                "replan_every": args.replan_every, "warm_start": warm,
                                "temporal_ensemble": args.temporal_ensemble})
    print(f"{'budget':>7s} {'norm. reward':>14s} {'norm. cost':>12s}  safe")
    for s in summary:
        print(f"{s.budget:7g} {s.normalized_reward:7.3f} ± {s.normalized_reward_std:.3f} "
              f"{s.normalized_cost:6.2f} ± {s.normalized_cost_std:.2f}  {'yes' if s.safe else 'no'}")
    print(f"results: {out}")
    return 0


def _cmd_diagnose(args) -> int:
    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.planner.planner import PlannerConfig
    from tcdp_lib.planner.policy import policy_config
    from tcdp_lib.device import default_device
    from tcdp_lib.runs.checkpoint import load_model, warn_untrained_budgets
    from tcdp_lib.runs.diagnose import diagnose, format_results, write_json

    _threads(args.threads)
    given = [check_budget(b) for b in (*(args.budgets or ()), args.beta_budget, args.exec_budget)
             if b is not None]  # before anything slow
    model, _ = load_model(Path(args.model), task=args.task)  # refuses a model of another task
    model = model.to(default_device())
    warn_untrained_budgets(model, given)
    ds = load_dataset(args.task, args.dataset)
    pcfg = PlannerConfig(**({} if args.samples is None else {"n_samples": args.samples}))
    policy = policy_config(args.replan_every, None if args.warm_start is None else bool(args.warm_start), args.seed)
    results = diagnose(ds, model, budgets=args.budgets, episodes=args.episodes, betas=args.betas,
                       beta_budget=args.beta_budget, exec_budget=args.exec_budget, n_envs=args.n_envs,
                       seed=args.seed, planner_config=pcfg, policy_config=policy, n_windows=args.windows,
                       skip=args.skip, progress=not args.quiet)
    print(f"diagnose {args.task}: model {args.model} ({model.config.variant}), seed {args.seed}, "
          f"{args.episodes} episodes per rollout row, {pcfg.n_samples} plans per replan, "
          f"replanning every {policy.replan_every} steps{' (warm start)' if policy.warm_start else ''}\n")
    print(format_results(results))
    if args.out:
        meta = {"task": args.task, "model": str(args.model), "variant": model.config.variant, "seed": args.seed,
                "episodes": args.episodes, "n_envs": args.n_envs, "windows": args.windows,
                "planner": pcfg.__dict__, "policy": policy.__dict__, "skip": list(args.skip or ())}
        print(f"\nresults: {write_json(results, Path(args.out), meta)}")
    return 0


def _cmd_benchmark(args) -> int:
    import dataclasses

    import pandas as pd

    from tcdp_lib.runs.benchmark import PRESETS, benchmark_table, format_table, results_frame, run_benchmark, write_table

    if args.executor == "serial":
        _threads(args.threads)
        given = [f"--{k.replace('_', '-')}" for k in ("address", "workers", "gpus_per_cell")
                 if getattr(args, k) is not None]
        if given:
            raise TcdpError(f"{', '.join(given)} apply to --executor ray")
        options = {}
    else:
        options = {"threads": args.threads or 1, "workers": args.workers, "address": args.address,
                   "gpus_per_cell": args.gpus_per_cell, "retries": args.retries}
    overrides = {k: v for k, v in (("methods", args.methods), ("tasks", args.tasks), ("seeds", args.seeds),
                                   ("episodes", args.episodes), ("n_envs", args.n_envs),
                                   ("diffusion_steps", args.diffusion_steps),
                                   ("baseline_steps", args.baseline_steps)) if v is not None}
    if args.episodes is not None:
        overrides["family_episodes"] = None  # one episode count for every task
    cfg = dataclasses.replace(PRESETS[args.preset],
                              **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    out = Path(args.out) if args.out else RUNS_DIR / "benchmark" / args.preset
    results = run_benchmark(cfg, out, progress=not args.quiet, executor=args.executor, **options)
    table = benchmark_table(results_frame(results), cfg.labels())
    csv, _ = write_table(table, out)
    if args.export:
        from tcdp_lib.runs.benchmark import export_results

        print(f"exported {len(export_results(results, Path(args.export)))} cell results to {args.export}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(format_table(table))
    print(f"table: {csv}")
    return 0


def _cmd_export(args) -> int:
    from tcdp_lib.runs.checkpoint import export_model

    out = export_model(Path(args.model), Path(args.out), w_cfg=args.w_cfg, beta=args.beta, half=args.half,
                       budget_fraction=args.budget_fraction, ensemble=args.ensemble,
                       temporal_ensemble=args.temporal_ensemble, cold_samples=args.cold_samples,
                       choice=args.choice)
    print(f"wrote {out}")
    return 0


def _threads(n: int | None) -> None:
    """This process's torch threads: ``--threads``, else the workbench default (``device.set_threads``)."""
    from tcdp_lib.device import set_threads

    set_threads(n)


def _cmd_report(args) -> int:
    from tcdp_lib.runs.report import run_report

    index = run_report(params_file=Path(args.params), out_root=Path(args.out), name=args.name,
                       notebooks=args.notebooks or None, threads=args.threads)
    print(f"report index: {index}")
    return 0


def _method_choices() -> list[str]:
    from tcdp_lib.method.variants import VARIANTS

    return [*VARIANTS, "bc_safe", "cdt"]


def build_parser() -> argparse.ArgumentParser:
    # --debug is accepted before and after the command; SUPPRESS keeps a subcommand's unset
    # default from overwriting the top-level value.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error (also: TCDP_DEBUG=1)")
    parser = argparse.ArgumentParser(prog="tcdp", description=__doc__, parents=[debug])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[debug], **kwargs)

    g = command("generate-data", help="make a DSRL-format dataset in the real simulator")
    g.add_argument("task", help="DSRL task id, e.g. OfflineBallCircle-v0")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, default=None,
                   help="total environment steps (default: the task's recipe)")
    g.add_argument("--stage-steps", type=int, default=None, help="steps between checkpoints")
    g.add_argument("--n-steps", type=int, default=None, help="PPO rollout length")
    g.add_argument("--mixture-episodes", type=int, default=None,
                   help="episodes switching between the run's safe and bold policies (default: the recipe's)")
    g.add_argument("--out", default=None, help="output .hdf5 (default: data/TASK.hdf5)")
    g.add_argument("--work-dir", default=str(RUNS_DIR / "generate"),
                   help="where stages are checkpointed (resumed when present)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)

    f = command("refilter-data", help="thin a generated dataset again with a stricter filter (no work dir needed)")
    f.add_argument("task")
    f.add_argument("--file", default=None, help="the dataset to thin (default: data/TASK.hdf5)")
    f.add_argument("--out", default=None, help="where to write (default: over the input, atomically)")
    f.add_argument("--keep-best", type=int, default=None, help="best feasible episodes kept per budget")
    f.add_argument("--max-steps", type=int, default=None, help="steps kept at most")
    f.add_argument("--frontier", choices=["levels", "pareto"], default=None,
                   help="frontier episodes always kept: best of each cost level, or the Pareto frontier only")
    f.set_defaults(func=_cmd_refilter)

    c = command("dataset-card", help="figures of datasets as a markdown table")
    c.add_argument("paths", nargs="*")
    c.add_argument("--task", default=None, help="the files' task (default: the task each file name says)")
    c.add_argument("--out", default=None)
    c.set_defaults(func=_cmd_card)

    t = command("train", help="train TCDP (diffusion, energy, inverse dynamics) on a task's dataset")
    t.add_argument("task")
    t.add_argument("--method", default="tcdp", choices=_method_choices(),
                   help="tcdp (default), a diffusion planner compared with it (trebi, cdd), an ablation, "
                        "or a baseline (bc_safe, cdt)")
    t.add_argument("--dataset", default=None, help="dataset file (default: the loader's search)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="optimiser steps (default: the task's, train.default_train_config)")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--out", default=None, help="run directory (default: runs/train/TASK/seedN for tcdp, "
                   "runs/train/TASK/METHOD-seedN otherwise); resumed when present")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $TCDP_THREADS, else half the CPUs)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = command("evaluate", help="roll out a trained model at the task's budgets")
    e.add_argument("task")
    e.add_argument("--model", required=True,
                   help="model.pt of a diffusion run, or the run directory of any method (from tcdp train)")
    e.add_argument("--method", default=None, choices=_method_choices(),
                   help="expected method (default: read from the model file); another method is refused")
    e.add_argument("--dataset", default=None)
    e.add_argument("--budgets", type=float, nargs="*", default=None, help="default: the task's three budgets")
    e.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    e.add_argument("--episodes", type=int, default=20, help="episodes per budget and seed")
    e.add_argument("--n-envs", type=int, default=10, help="environments stepped together")
    e.add_argument("--samples", type=int, default=None, help="plans sampled per replan (default: PlannerConfig's)")
    e.add_argument("--w-cfg", type=float, default=None)
    e.add_argument("--beta", type=float, default=None)
    e.add_argument("--budget-fraction", type=float, default=None,
                   help="share of the remaining budget planned for (default: the model's)")
    e.add_argument("--sampling-steps", type=int, default=None)
    e.add_argument("--cost-weight", type=float, default=None, help="TREBI's cost penalty n")
    e.add_argument("--ensemble", type=int, default=None,
                   help="act on the mean action of this many best samples within the budget (default: the model's)")
    e.add_argument("--temporal-ensemble", type=int, default=None,
                   help="act on the mean of the last this-many plans' actions for the step (default: the model's)")
    e.add_argument("--cold-samples", type=int, default=None,
                   help="samples of a warm-started replan that start from pure noise (default: the model's)")
    e.add_argument("--choice", default=None,
                   help="how the plan to follow is picked among the samples: feasible or energy (default: the model's)")
    e.add_argument("--replan-every", type=int, default=None,
                   help="environment steps between plans (default: PolicyConfig's)")
    e.add_argument("--warm-start", type=int, choices=[0, 1], default=None,
                   help="start each plan from the previous one (default: PolicyConfig's)")
    e.add_argument("--out", default=None, help="result folder (default: beside the model, eval/)")
    e.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $TCDP_THREADS, else half the CPUs)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_evaluate)

    d = command("diagnose", help="why a trained planner works: budget response, execution, "
                "denoising loss and energy accuracy by noise level, beta sweep")
    d.add_argument("task")
    d.add_argument("--model", required=True, help="model.pt of a diffusion run (from tcdp train)")
    d.add_argument("--dataset", default=None)
    d.add_argument("--budgets", type=float, nargs="*", default=None,
                   help="budget response budgets (default: 0 5 10 20 40 and twice the task's largest budget)")
    d.add_argument("--episodes", type=int, default=4, help="episodes per budget (and per beta)")
    d.add_argument("--betas", type=float, nargs="*", default=None,
                   help="energy guidance scales to sweep (default: 0, 0.5, 1 and 2 times the model's beta)")
    d.add_argument("--beta-budget", type=float, default=None, help="budget of the beta sweep (default: the middle one)")
    d.add_argument("--exec-budget", type=float, default=None,
                   help="budget of the execution statistics (default: the middle one)")
    d.add_argument("--n-envs", type=int, default=4, help="environments stepped together")
    d.add_argument("--samples", type=int, default=None, help="plans sampled per replan (default: PlannerConfig's)")
    d.add_argument("--replan-every", type=int, default=None, help="default: PolicyConfig's")
    d.add_argument("--warm-start", type=int, choices=[0, 1], default=None, help="default: PolicyConfig's")
    d.add_argument("--windows", type=int, default=256, help="windows per noise level in the loss tables")
    d.add_argument("--seed", type=int, default=0, help="seeds environment resets, planner noise and window draws")
    d.add_argument("--skip", nargs="*", default=[], choices=["rollouts", "losses"],
                   help="leave out the simulator rollouts or the offline loss tables")
    d.add_argument("--out", default=None, help="folder for diagnose.json (all results, written atomically)")
    d.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $TCDP_THREADS, else half the CPUs)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_diagnose)

    b = command("benchmark", help="train and evaluate every method over tasks x seeds (resumable), "
                "in this process or on Ray")
    b.add_argument("--preset", default="full", choices=["smoke", "full", "ablations"],
                   help="smoke: one task, tiny models, seconds; full: the Bullet tasks and one task of each other "
                        "family, full training; ablations: TCDP without each of its parts and a beta sweep, "
                        "on BallCircle and BallRun, 3 seeds")
    b.add_argument("--methods", nargs="*", default=None, choices=_method_choices(),
                   help="only these methods (with --preset ablations: the arms on these methods' models)")
    b.add_argument("--tasks", nargs="*", default=None)
    b.add_argument("--seeds", type=int, nargs="*", default=None)
    b.add_argument("--episodes", type=int, default=None, help="evaluation episodes per budget and seed")
    b.add_argument("--n-envs", type=int, default=None)
    b.add_argument("--diffusion-steps", type=int, default=None, help="training steps of the diffusion planners")
    b.add_argument("--baseline-steps", type=int, default=None, help="training steps of BC-Safe and CDT")
    b.add_argument("--out", default=None, help="results folder (default: runs/benchmark/PRESET); finished cells are kept")
    b.add_argument("--export", default=None,
                   help="also copy each cell's result.json there (e.g. data/benchmark, what the main job reads)")
    b.add_argument("--executor", default="serial", choices=["serial", "ray"],
                   help="serial: the cells one after another in this process (default); ray: each cell a Ray "
                        "task, on a local Ray or the cluster of --address")
    b.add_argument("--address", default=None,
                   help="with --executor ray: join this Ray cluster ('auto', 'ray://HOST:10001') instead of "
                        "starting a local Ray; --out must then be a path every node can write (best: shared)")
    b.add_argument("--workers", type=int, default=None,
                   help="with --executor ray: cells run at once (default: the cluster's CPUs // --threads)")
    b.add_argument("--gpus-per-cell", type=float, default=None,
                   help="with --executor ray: GPU share of each cell (default: the cluster's GPUs over --workers, "
                        "at most 1; none without GPUs)")
    b.add_argument("--retries", type=int, default=3,
                   help="with --executor ray: runs again of a cell whose worker died (default 3)")
    b.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads: of this process (serial; default $TCDP_THREADS, else half the CPUs), "
                        "of each cell (ray, default 1)")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_cmd_benchmark)

    x = command("export-model", help="copy a model file with its planning guidance scales set")
    x.add_argument("model")
    x.add_argument("out", help="e.g. data/checkpoints/TASK/model.pt")
    x.add_argument("--w-cfg", type=float, default=None)
    x.add_argument("--beta", type=float, default=None)
    x.add_argument("--budget-fraction", type=float, default=None, help="share of the remaining budget planned for")
    x.add_argument("--ensemble", type=int, default=None, help="samples whose actions are averaged")
    x.add_argument("--temporal-ensemble", type=int, default=None, help="plans whose actions for a step are averaged")
    x.add_argument("--cold-samples", type=int, default=None,
                   help="samples of a warm-started replan that start from pure noise")
    x.add_argument("--choice", default=None, help="how the plan to follow is picked among the samples: feasible or energy")
    x.add_argument("--half", action="store_true", help="store the weights in float16 (half the file)")
    x.set_defaults(func=_cmd_export)

    r = command("report", help="execute the notebooks headless into reports/")
    r.add_argument("--params", default="reports/params/default.yaml",
                   help="parameters file (reports/params/default.yaml, smoke.yaml or full.yaml)")
    r.add_argument("--out", default="reports")
    r.add_argument("--name", default=None, help="run name (default: the parameters file's name)")
    r.add_argument("--notebooks", nargs="*", help="only these notebooks")
    r.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of each notebook's kernel (default: $TCDP_THREADS, else half the CPUs)")
    r.set_defaults(func=_cmd_report)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    if issubclass(category, BudgetRangeWarning):
        print(f"tcdp: warning: {message}", file=sys.stderr if file is None else file)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("TCDP_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except TcdpError as err:
            if debug:
                raise
            message = " ".join(str(err).split())  # one line
            print(f"tcdp: error: {message}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
