"""The ``tcdp`` command line: ``tcdp generate-data``, ``tcdp dataset-card``, ``tcdp report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def _cmd_card(args) -> int:
    from tcdp_lib.data.card import dataset_card_markdown

    paths = [Path(p) for p in args.paths] or sorted(DATA_DIR.glob("*.hdf5"))
    text = dataset_card_markdown(paths)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


def _cmd_report(args) -> int:
    from tcdp_lib.runs.report import run_report

    index = run_report(params_file=Path(args.params), out_root=Path(args.out), name=args.name,
                       notebooks=args.notebooks or None)
    print(f"report index: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcdp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate-data", help="make a DSRL-format dataset in the real simulator")
    g.add_argument("task", help="DSRL task id, e.g. OfflineBallCircle-v0")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, default=None,
                   help="total environment steps (default: the task's recipe)")
    g.add_argument("--stage-steps", type=int, default=None, help="steps between checkpoints")
    g.add_argument("--n-steps", type=int, default=None, help="PPO rollout length")
    g.add_argument("--out", default=None, help="output .hdf5 (default: data/TASK.hdf5)")
    g.add_argument("--work-dir", default=str(RUNS_DIR / "generate"),
                   help="where stages are checkpointed (resumed when present)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)

    c = sub.add_parser("dataset-card", help="figures of datasets as a markdown table")
    c.add_argument("paths", nargs="*")
    c.add_argument("--out", default=None)
    c.set_defaults(func=_cmd_card)

    r = sub.add_parser("report", help="execute the notebooks headless into reports/")
    r.add_argument("--params", default="reports/params/default.yaml",
                   help="parameters file (reports/params/default.yaml, smoke.yaml or full.yaml)")
    r.add_argument("--out", default="reports")
    r.add_argument("--name", default=None, help="run name (default: the parameters file's name)")
    r.add_argument("--notebooks", nargs="*", help="only these notebooks")
    r.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
