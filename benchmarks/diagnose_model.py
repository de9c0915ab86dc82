"""Why a trained planner works: the figures of ``tcdp diagnose``, from the same functions.

    python benchmarks/diagnose_model.py [--task OfflineBallCircle-v0] [--model data/checkpoints/TASK/model.pt]
                                        [--episodes 4] [--n-envs 4] [--samples 4] [--threads 2]
                                        [--seed 0] [--skip rollouts|losses ...] [--out DIR]

Prints the budget response (realised reward and cost per budget), execution statistics
(planned-vs-realised next-state error, action jitter against the data's), the denoising loss per
noise level with the true, null and shuffled budget condition, the energy heads' accuracy per
noise level, and a beta sweep at the task's middle budget (see ``tcdp_lib.runs.diagnose``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.paths import shipped_model
from tcdp_lib.planner.planner import PlannerConfig
from tcdp_lib.planner.policy import PolicyConfig
from tcdp_lib.runs.checkpoint import load_model
from tcdp_lib.runs.diagnose import DEFAULT_EPISODES, DEFAULT_WINDOWS, diagnose, format_results, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="OfflineBallCircle-v0")
    ap.add_argument("--model", default=None, help="default: the task's shipped checkpoint")
    ap.add_argument("--budgets", type=float, nargs="*", default=None)
    ap.add_argument("--betas", type=float, nargs="*", default=None)
    ap.add_argument("--episodes", type=int, default=DEFAULT_EPISODES)
    ap.add_argument("--n-envs", type=int, default=4)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--windows", type=int, default=DEFAULT_WINDOWS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["rollouts", "losses"])
    ap.add_argument("--out", default=None, help="folder for diagnose.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.model) if args.model else shipped_model(args.task)
    model, _ = load_model(path, task=args.task)
    ds = load_dataset(args.task)
    pcfg = PlannerConfig(**({} if args.samples is None else {"n_samples": args.samples}))
    t0 = time.perf_counter()
    results = diagnose(ds, model, budgets=args.budgets, episodes=args.episodes, betas=args.betas,
                       n_envs=args.n_envs, seed=args.seed, planner_config=pcfg,
                       policy_config=PolicyConfig(seed=args.seed), n_windows=args.windows, skip=args.skip)
    print(f"model: {path} ({model.config.variant}); task {args.task}; seed {args.seed}; "
          f"torch threads {args.threads}; {time.perf_counter() - t0:.0f} s\n")
    print(format_results(results))
    if args.out:
        print(f"\nwrote {write_json(results, Path(args.out), {'task': args.task, 'model': str(path)})}")


if __name__ == "__main__":
    main()
