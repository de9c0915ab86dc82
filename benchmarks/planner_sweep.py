"""Roll out one trained diffusion planner under a grid of planning and execution settings.

Prints, per setting and budget, the mean raw and normalised reward and cost, the share of
episodes within the budget, the worst episode's normalised reward (an agent that stalls for a whole
episode shows there) and the setting's wall time. This is the table that chose the
planner's defaults (samples per plan, replanning interval, warm start, ``w_cfg``, ``beta``).

    .venv/bin/python benchmarks/planner_sweep.py OfflineBallCircle-v0 --model runs/train/.../model.pt \
        --replan-every 1 4 --samples 1 8 --w-cfg 1 2 --beta 0 1 --episodes 10 --threads 1

Every combination of the listed values runs (a product); each combination uses the same
episode seeds. ``--out FILE.csv`` keeps the table.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task")
    p.add_argument("--model", required=True)
    p.add_argument("--budgets", type=float, nargs="*", default=None, help="default: the task's budgets")
    p.add_argument("--replan-every", type=int, nargs="*", default=[None])
    p.add_argument("--warm-start", type=int, nargs="*", default=[None], help="0 or 1")
    p.add_argument("--samples", type=int, nargs="*", default=[None])
    p.add_argument("--w-cfg", type=float, nargs="*", default=[None])
    p.add_argument("--beta", type=float, nargs="*", default=[None])
    p.add_argument("--cost-weight", type=float, nargs="*", default=[None])
    p.add_argument("--sampling-steps", type=int, nargs="*", default=[None])
    p.add_argument("--budget-fraction", type=float, nargs="*", default=[None])
    p.add_argument("--ensemble", type=int, nargs="*", default=[None])
    p.add_argument("--cold-samples", type=int, nargs="*", default=[None],
                   help="samples of a warm-started replan that start from pure noise")
    p.add_argument("--choice", nargs="*", default=[None],
                   help="how the plan to follow is picked among the samples: feasible or energy")
    p.add_argument("--warm-level", type=float, nargs="*", default=[None], help="warm_start_level")
    p.add_argument("--temporal-ensemble", type=int, nargs="*", default=[None])
    p.add_argument("--action-gap", type=int, nargs="*", default=[None],
                   help="act through an action model of this gap, fitted on the data (0: none); default: the file's")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="CSV file for the table")
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.planner.planner import PlannerConfig
    from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
    from tcdp_lib.method.config import ActionModelConfig
    from tcdp_lib.runs.checkpoint import load_model, model_from_payload, read_model_file
    from tcdp_lib.runs.evaluate import evaluate
    from tcdp_lib.runs.train import fit_action_model

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.task)
    file_model, _ = load_model(args.model, task=args.task)
    models = {}

    def model_with_gap(gap):
        """The file's model, or the file's other weights under an action model of ``gap`` fitted here."""
        if gap is None:
            return file_model
        if gap not in models:
            config = ActionModelConfig(gap=gap)
            models[gap] = model_from_payload(read_model_file(args.model), action_model=config).eval()
            if gap:
                fit_action_model(models[gap], ds.episodes, config, seed=args.seed, progress=False)
        return models[gap]

    rows = []
    grid = list(itertools.product(args.action_gap, args.replan_every, args.warm_start, args.samples, args.w_cfg,
                                  args.beta, args.cost_weight, args.sampling_steps, args.budget_fraction, args.ensemble,
                                  args.temporal_ensemble, args.warm_level, args.cold_samples, args.choice))
    for gap, replan, warm, samples, w, beta, n_cost, steps, frac, ens, temporal, level, cold, choice in grid:
        model = model_with_gap(gap)
        over = {k: v for k, v in (("n_samples", samples), ("w_cfg", w), ("beta", beta), ("cost_weight", n_cost),
                                  ("sampling_steps", steps), ("budget_fraction", frac), ("ensemble", ens),
                                  ("warm_start_level", level), ("cold_samples", cold),
                                  ("choice", choice))
                if v is not None}
        pcfg = PlannerConfig(**over)
        pol = {k: v for k, v in (("replan_every", replan), ("warm_start", None if warm is None else bool(warm)),
                                 ("temporal_ensemble", temporal)) if v is not None}

        def make_policy(seed, model=model, pcfg=pcfg, pol=pol):
            return TCDPPolicy(model, pcfg, PolicyConfig(seed=seed, **pol))

        t0 = time.time()
        results, summary = evaluate(ds, make_policy, budgets=args.budgets, seeds=(args.seed,), episodes=args.episodes,
                                    n_envs=args.n_envs, progress=False)
        wall = time.time() - t0
        for s in summary:
            mine = [r for r in results if r.budget == s.budget]
            within = np.mean([r.cost <= s.budget for r in mine])
            worst = min(r.normalized_reward for r in mine)
            rows.append({**({} if gap is None else {"action_gap": gap}), **over, **pol, "budget": s.budget, "reward": s.reward,
                         "cost": s.cost, "norm_reward": s.normalized_reward, "norm_cost": s.normalized_cost,
                         "within_budget": within, "worst_norm_reward": worst, "wall_s": wall})
        print(pd.DataFrame(rows[-len(summary):]).to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print("\nall settings:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
