"""Which action model under the plan: roll out one trained diffusion planner acting through
action models of several gaps, ``a_t = f(s_t, planned s_{t+gap})``.

    .venv/bin/python benchmarks/action_gap.py OfflineCarCircle-v0 \
        --model runs/benchmark/full/OfflineCarCircle-v0/tcdp/seed0/train/model.pt --gaps 0 1 4 8 \
        --episodes 10 --threads 1

For each gap the rest of the model is the file's, frozen; the action model is fitted on the data
(``train.fit_action_model``, the stage ``tcdp train`` runs) with the seed given. Gap 0 is the model
as the file has it without an action model (its planned action, or one-step inverse dynamics).
Printed per gap and budget: raw and normalised reward and cost, the share of episodes within the
budget and the mean step-to-step change of the executed actions. This is the table that chose
``ActionModelConfig.gap`` per task (``runs.train.TASK_MODELS``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task")
    p.add_argument("--model", required=True)
    p.add_argument("--gaps", type=int, nargs="+", default=[0, 4, 8])
    p.add_argument("--steps", type=int, default=None, help="the action model's training steps (default: its config's)")
    p.add_argument("--budgets", type=float, nargs="*", default=None, help="default: the task's budgets")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="CSV file for the table")
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.method.config import ActionModelConfig
    from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
    from tcdp_lib.runs.checkpoint import model_from_payload, read_model_file
    from tcdp_lib.runs.evaluate import run_episodes
    from tcdp_lib.runs.train import fit_action_model

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.task)
    payload = read_model_file(args.model)
    budgets = ds.meta.budgets if args.budgets is None else args.budgets
    rows = []
    for gap in args.gaps:
        t0 = time.time()
        config = ActionModelConfig(gap=gap)
        if args.steps is not None:
            config = dataclasses.replace(config, steps=args.steps)
        model = model_from_payload(payload, action_model=config).eval()
        if gap:
            fit_action_model(model, ds.episodes, config, seed=args.seed, progress=False)
        for b in budgets:
            policy = TCDPPolicy(model, None, PolicyConfig(seed=args.seed))
            changes = []  # the executed actions' step-to-step change, within each batch

            def on_step(t, o, a, r, c, d, last=[None]):
                a = np.asarray(a, dtype=np.float64).copy()
                if t > 1:
                    changes.append(np.abs(a - last[0]).mean())
                last[0] = a

            records = run_episodes(args.task, policy, float(b), args.episodes, args.seed, n_envs=args.n_envs,
                                   on_step=on_step)
            totals = np.array([[e["reward"], e["cost"]] for e in records])
            norm = np.array([ds.normalized(r, c, b) for r, c in totals])
            rows.append({"gap": gap, "budget": float(b), "reward": totals[:, 0].mean(), "cost": totals[:, 1].mean(),
                         "norm_reward": norm[:, 0].mean(), "norm_cost": norm[:, 1].mean(),
                         "within_budget": float((totals[:, 1] <= b).mean()),
                         "jitter": float(np.mean(changes)), "wall_s": time.time() - t0})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print("\nall gaps:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
