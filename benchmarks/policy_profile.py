"""Where in the episode policies earn their reward and pay their cost: a per-step profile.

    python benchmarks/policy_profile.py OfflineBallRun-v0 \
        --policy tcdp=runs/benchmark/full/OfflineBallRun-v0/tcdp/seed0/train/model.pt \
        --policy bc_safe=runs/benchmark/full/OfflineBallRun-v0/bc_safe/seed1/train \
        --budget 10 --episodes 4 --threads 1

Each ``--policy NAME=PATH`` (a TCDP-family model file, a baseline run folder, anything
``load_policy`` reads) is rolled out on the same episode seeds at ``--budget``. Printed per policy:
the episodes' reward and cost, then per window of steps the reward per step, the cost paid, the
mean |action| and the mean step-to-step action change (jitter), beside the same figures of the
data's episodes (all of them, and the best-rewarded tenth of those that cost at most ``--budget``). TCDP models plan with ``--w-cfg`` / ``--beta`` / ``--budget-fraction`` where given,
else the model's own settings. Episodes run in batches of ``--n-envs`` as a benchmark cell's do
(10), so episode ``k`` of a cell at the same seed and planning is episode ``k`` here; the worst
three episodes are named.

``--trace K`` follows episode ``K`` of a TCDP-family policy: every ``--trace-every`` steps, the
reward and cost so far, the budget the planner plans for, the chosen plan's predicted value and
cost-to-go beside the best value and the cheapest cost-to-go among the samples, the action's size,
and how far the chosen plan moves over its horizon against how far the agent then moves over as
many steps (normalised state units): a plan that moves while the agent stands shows there.

    python benchmarks/policy_profile.py OfflineCarCircle-v0 \
        --policy tcdp=runs/benchmark/full/OfflineCarCircle-v0/tcdp/seed0/train/model.pt \
        --budget 10 --episodes 10 --budget-fraction 0.75 --temporal-ensemble 8 --trace 4 --threads 1
"""

from __future__ import annotations

import argparse

import numpy as np


def windows_of(length: int, edges=(0, 10, 25, 50, 100, 200, 300, 500, 1000)) -> list[tuple[int, int]]:
    """Step windows ``[a, b)`` covering ``length`` steps."""
    cuts = [e for e in edges if e < length] + [length]
    return list(zip(cuts[:-1], cuts[1:]))


def profile(rewards: np.ndarray, costs: np.ndarray, actions: np.ndarray) -> list[dict]:
    """Per step window of ``(T, N)`` rewards and costs and ``(T, N, A)`` actions (NaN after an
    episode's end): reward per step, cost paid per episode, mean |action| and mean
    |a_t - a_{t-1}| (over the window's steps)."""
    jitter = np.abs(np.diff(actions, axis=0))  # (T-1, N, A)
    out = []
    for a, b in windows_of(len(rewards)):
        out.append({"steps": f"{a}-{b}", "reward_per_step": float(np.nanmean(rewards[a:b])),
                    "cost": float(np.nanmean(np.nansum(costs[a:b], axis=0))),
                    "abs_action": float(np.nanmean(np.abs(actions[a:b]))),
                    "jitter": float(np.nanmean(jitter[max(a - 1, 0):b - 1])) if b > 1 else float("nan")})
    return out


def realised_moves(states: np.ndarray, span: int) -> np.ndarray:
    """``(T,)`` distance from the state at step ``t`` to the state ``span`` steps later (``states (T, D)``,
    normalised); NaN where ``t + span`` is past the episode's end."""
    states = np.asarray(states, dtype=np.float64)
    out = np.full(len(states), np.nan)
    if 0 < span < len(states):
        out[: len(states) - span] = np.linalg.norm(states[span:] - states[:-span], axis=-1)
    return out


def data_figures(episodes, budget: float) -> dict:
    """Mean |action| and jitter of the data's episodes: all, and the best-rewarded tenth of those
    that cost at most ``budget``."""
    acts = [episodes.actions[a:b] for a, b in episodes.bounds]
    jitter = np.array([np.abs(np.diff(a, axis=0)).mean() for a in acts])
    size = np.array([np.abs(a).mean() for a in acts])
    returns, costs = np.asarray(episodes.returns), np.asarray(episodes.cost_returns)
    within = costs <= budget
    good = within & (returns >= np.quantile(returns[within], 0.9)) if within.any() else within
    return {"episodes": len(acts), "abs_action": float(size.mean()), "jitter": float(jitter.mean()),
            "good_episodes": int(good.sum()),
            "good_abs_action": float(size[good].mean()) if good.any() else float("nan"),
            "good_jitter": float(jitter[good].mean()) if good.any() else float("nan")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task")
    p.add_argument("--policy", action="append", required=True, metavar="NAME=PATH")
    p.add_argument("--budget", type=float, required=True)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w-cfg", type=float, default=None)
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--budget-fraction", type=float, default=None)
    p.add_argument("--temporal-ensemble", type=int, default=None)
    p.add_argument("--n-envs", type=int, default=10, help="environments stepped together (a cell's: 10)")
    p.add_argument("--trace", type=int, default=None, metavar="K", help="follow episode K (TCDP-family policies)")
    p.add_argument("--trace-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.planner.planner import PlannerConfig
    from tcdp_lib.runs.evaluate import run_episodes
    from tcdp_lib.runs.methods import load_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.task)
    planning = {k: v for k, v in (("w_cfg", args.w_cfg), ("beta", args.beta),
                                  ("budget_fraction", args.budget_fraction)) if v is not None}
    data = data_figures(ds.episodes, args.budget)
    print(f"data: {data['episodes']} episodes, |a| {data['abs_action']:.3f}, jitter {data['jitter']:.3f}; "
          f"the {data['good_episodes']} best rewarded tenth of those costing at most {args.budget:g}: "
          f"|a| {data['good_abs_action']:.3f}, jitter {data['good_jitter']:.3f}")
    for spec in args.policy:
        name, _, path = spec.partition("=")
        if not path:
            p.error(f"--policy {spec!r}: expected NAME=PATH")
        make = load_policy(path, args.task, planner_config=PlannerConfig(**planning) if planning else None,
                           temporal_ensemble=args.temporal_ensemble)
        policy = make(args.seed)
        batches = []  # per batch of environments: {"r", "c", "a"} lists of per-step arrays
        trace = []  # per step of the traced episode
        traced = args.trace is not None and hasattr(policy, "last_plan")
        if args.trace is not None and not traced:
            print(f"{name}: --trace follows TCDP-family policies only")

        def on_step(t, o, a, r, c, done):
            if t == 1:
                batches.append({"r": [], "c": [], "a": [], "ended": np.zeros(len(r), dtype=bool)})
            rows = batches[-1]
            gone = rows["ended"].copy()  # episodes over before this step: NaN from then on
            rows["r"].append(np.where(gone, np.nan, r))
            rows["c"].append(np.where(gone, np.nan, c))
            rows["a"].append(np.where(gone[:, None], np.nan, np.asarray(a, dtype=np.float64)))
            rows["ended"][:] = done
            if traced and len(batches) - 1 == args.trace // args.n_envs and not gone[args.trace % args.n_envs]:
                e, plan = args.trace % args.n_envs, policy.last_plan
                k = int(plan.chosen[e])
                norm = policy.model.normalize(torch.as_tensor(plan.states[e, k], dtype=torch.float32)).numpy()
                trace.append({"state": norm[0], "plan_move": float(np.linalg.norm(norm[-1] - norm[0])),
                              "value": float(plan.values[e, k]), "predicted_cost": float(plan.costs[e, k]),
                              "planned_for": float(plan.remaining_budget[e]), "r": float(r[e]), "c": float(c[e]),
                              "best_value": float(np.max(plan.values[e])), "cheapest": float(np.min(plan.costs[e])),
                              "abs_action": float(np.abs(a[e]).mean())})

        records = run_episodes(args.task, policy, args.budget, args.episodes, args.seed, n_envs=args.n_envs,
                               on_step=on_step)
        steps = max(len(b["r"]) for b in batches)

        def stacked(key):  # (steps, episodes, ...) over the batches, NaN past a batch's last step
            parts = []
            for b in batches:
                x = np.array(b[key], dtype=np.float64)
                pad = np.full((steps - len(x),) + x.shape[1:], np.nan)
                parts.append(np.concatenate([x, pad]))
            return np.concatenate(parts, axis=1)

        table = pd.DataFrame(profile(stacked("r"), stacked("c"), stacked("a")))
        rewards = np.array([e["reward"] for e in records])
        costs = np.array([e["cost"] for e in records])
        lengths = np.array([e["length"] for e in records])
        norm = np.array([ds.normalized(r, c, args.budget) for r, c in zip(rewards, costs)])
        print(f"\n{name}: reward {rewards.mean():.1f} (normalised {norm[:, 0].mean():.3f}), cost {costs.mean():.2f} "
              f"(normalised {norm[:, 1].mean():.2f}), lengths {sorted(set(lengths.tolist()))}")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        worst = np.argsort(norm[:, 0])[:3]
        print("worst episodes (normalised reward / cost): "
              + ", ".join(f"{i}: {norm[i, 0]:.3f} / {norm[i, 1]:.2f}" for i in worst))
        if trace:
            span = policy.model.horizon - 1
            moved = realised_moves(np.stack([x["state"] for x in trace]), span)
            rows, reward, cost = [], 0.0, 0.0
            for t, x in enumerate(trace):
                reward, cost = reward + x["r"], cost + x["c"]
                if t % args.trace_every == 0:
                    rows.append({"step": t, "reward": reward, "cost": cost, "planned_for": x["planned_for"],
                                 "value": x["value"], "predicted_cost": x["predicted_cost"],
                                 "best_value": x["best_value"], "cheapest": x["cheapest"], "abs_action": x["abs_action"],
                                 "plan_move": x["plan_move"], "agent_move": moved[t]})
            print(f"episode {args.trace}, every {args.trace_every} steps (moves over {span} steps, normalised):")
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
