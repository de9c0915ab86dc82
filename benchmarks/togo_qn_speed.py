"""Time of the energy's training target per batch: the reward-to-go ranks of ``qn.ToGoQN``.

    python benchmarks/togo_qn_speed.py [--tasks OfflineBallRun-v0 OfflineCarCircle-v0] [--batch 256]

Every training step ranks a batch of windows' reward-to-go among the reference windows of their
bucket of steps left that fit their remaining budgets (up to 4096 a bucket). Printed per task:
milliseconds per batch over ``--calls`` batches drawn like training's (random windows, budgets
from below to above their cost-to-go), and the share of the batches' entries that are NaN (no
reference within the budget).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="*", default=["OfflineBallRun-v0", "OfflineCarCircle-v0"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.method.qn import ToGoQN
    from tcdp_lib.method.windows import Windows
    from tcdp_lib.runs.train import default_model_config

    for task in args.tasks:
        ds = load_dataset(task)
        windows = Windows.from_episodes(ds.episodes, default_model_config(task).horizon)
        qn = ToGoQN.from_windows(windows, rng=np.random.default_rng(args.seed))
        rng = np.random.default_rng(args.seed + 1)
        spent, nan = 0.0, 0
        for _ in range(args.calls):
            batch = windows.gather(rng.integers(len(windows), size=args.batch))
            budget = batch.cost_to_go * rng.uniform(0.5, 2.0, args.batch)
            t0 = time.perf_counter()
            out = qn(batch.reward_to_go, budget, batch.steps_left)
            spent += time.perf_counter() - t0
            nan += int(np.isnan(out).sum())
        print(f"{task}: {1e3 * spent / args.calls:.2f} ms per batch of {args.batch} "
              f"({len(windows)} windows; NaN {nan / (args.calls * args.batch):.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
