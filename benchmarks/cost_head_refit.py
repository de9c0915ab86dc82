"""Refit a trained TCDP's cost head on a quantile of the cost-to-go, then roll it out.

The screening behind ``EnergyConfig.cost_quantile``: the backbone, the value head and the inverse
dynamics stay as trained; only the cost head (``ValueCostEnergy.cost``) continues from its
weights for ``--steps`` steps of the pinball loss at ``--quantile`` on noisy windows drawn as in
training, and the planner then chooses and guides with it. Prints the rollouts' reward and cost
per budget (DSRL-normalised) and the share of episodes within the budget. A quick answer to
"would an upper quantile keep this model within its budgets?", minutes where a retraining takes
half an hour; a setting it suggests is then trained from scratch (``tcdp benchmark``).

    .venv/bin/python benchmarks/cost_head_refit.py OfflinePointCircle1Gymnasium-v0 \\
        --model runs/benchmark/full/OfflinePointCircle1Gymnasium-v0/tcdp/seed0/train/model.pt \\
        --quantile 0.97 --episodes 10 --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task")
    p.add_argument("--model", required=True)
    p.add_argument("--quantile", type=float, default=0.97)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--budgets", type=float, nargs="*", default=None, help="default: the task's budgets")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--w-cfg", type=float, default=None)
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)

    import torch

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.device import set_threads
    from tcdp_lib.method.diffusion import pinball_loss, q_sample
    from tcdp_lib.method.guidance import ValueCostEnergy
    from tcdp_lib.method.model import sample_batch
    from tcdp_lib.method.qn import ToGoQN
    from tcdp_lib.method.windows import Windows
    from tcdp_lib.planner.planner import PlannerConfig
    from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
    from tcdp_lib.runs.checkpoint import load_model
    from tcdp_lib.runs.evaluate import evaluate

    set_threads(args.threads)
    torch.manual_seed(args.seed)
    ds = load_dataset(args.task)
    model, _ = load_model(args.model, task=args.task)
    model.eval()
    if not isinstance(model.energy, ValueCostEnergy):
        raise SystemExit(f"{args.model}: no TCDP cost head to refit (variant {model.config.variant!r})")
    if not 0 < args.quantile < 1:
        raise SystemExit(f"--quantile must lie in (0, 1), got {args.quantile}")
    windows = Windows.from_episodes(ds.episodes, model.horizon)
    rng = np.random.default_rng(args.seed)
    qn = ToGoQN.from_windows(windows, rng=np.random.default_rng(args.seed))
    cost = model.energy.cost
    for prm in model.parameters():
        prm.requires_grad_(False)
    for prm in cost.parameters():
        prm.requires_grad_(True)
    opt = torch.optim.AdamW(cost.parameters(), lr=args.lr)
    k_max = model.config.diffusion.n_diffusion_steps
    scale = model.energy.budget_scale
    t0 = time.time()
    for i in range(args.steps):
        batch = sample_batch(rng, windows, model.budget_prior(), 256, pairs=model.variant.pairs, qn=qn)
        x0 = model.encode(batch.states, batch.actions)  # (B, H, C)
        k = torch.randint(0, k_max, (len(x0),))
        x_k = q_sample(x0, k, torch.randn_like(x0), model.alphas_cumprod)
        loss = pinball_loss(cost(x_k, k, None, batch.steps_left), batch.cost_to_go / scale, args.quantile)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 1000 == 0 or i == args.steps - 1:
            print(f"step {i}: pinball loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    for prm in cost.parameters():
        prm.requires_grad_(False)

    over = {k: v for k, v in (("w_cfg", args.w_cfg), ("beta", args.beta)) if v is not None}
    pcfg = PlannerConfig(**over)

    def make_policy(seed):
        return TCDPPolicy(model, pcfg, PolicyConfig(seed=seed))

    results, summary = evaluate(ds, make_policy, budgets=args.budgets, seeds=(args.seed,), episodes=args.episodes,
                                n_envs=min(10, args.episodes), progress=False)
    for s in summary:
        within = np.mean([r.cost <= s.budget for r in results if r.budget == s.budget])
        print(f"quantile {args.quantile:g}, b = {s.budget:g}: reward {s.reward:.1f} cost {s.cost:.2f} "
              f"normalised {s.normalized_reward:.3f} / {s.normalized_cost:.2f}, within the budget {within:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
