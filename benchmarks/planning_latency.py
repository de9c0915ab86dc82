"""Planning latency per replan, its FLOPs, and the machine's matmul rate.

    python benchmarks/planning_latency.py [--model data/checkpoints/OfflineBallCircle-v0/model.pt]
                                          [--threads 2] [--repeats 50]

Prints, for batch 1 and batch 16 (environments planned together): median wall time of one
replan (default sampler and steps, CFG pair + energy gradient), the FLOPs counted by
``torch.utils.flop_counter``, the FLOP rate a plain matmul reaches here, and the ratio of the
measured time to that floor. Target on a 2-core CPU: <= 30 ms per replan at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from tcdp_lib.method.model import TCDP, TCDPConfig
from tcdp_lib.method.windows import Normalizer
from tcdp_lib.paths import shipped_model
from tcdp_lib.planner.planner import Planner


def matmul_gflops(n: int = 256, repeats: int = 200) -> float:
    """FLOP rate of an (n x n) @ (n x n) float32 matmul, the size of the model's layers."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(10):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def replan_flops(model: TCDP, planner: Planner, obs, budget) -> float:
    """FLOPs of one replan: the guided backbone passes counted by ``FlopCounterMode`` (run with
    beta = 0, since the counter cannot follow ``autograd.grad``), plus the energy gradient at each
    sampling step estimated as 3 x 2 x (energy parameters) x batch (forward + backward)."""
    import dataclasses

    no_energy = Planner(model, dataclasses.replace(planner.config, beta=0.0, w_cfg=planner.w_cfg))
    with FlopCounterMode(display=False) as counter:
        no_energy.plan(obs, budget, generator=0)
    flops = counter.get_total_flops()
    if planner.beta:
        n_energy = sum(p.numel() for p in model.energy.parameters())
        flops += 3 * 2 * n_energy * len(obs) * len(planner.timesteps)
    return float(flops)


def load(path: str | None, obs_dim: int = 8) -> tuple[TCDP, str]:
    if path:
        from tcdp_lib.runs.checkpoint import load_model

        return load_model(path)[0], path
    default = shipped_model("OfflineBallCircle-v0")
    if default.exists():
        from tcdp_lib.runs.checkpoint import load_model

        return load_model(default)[0], str(default)
    import dataclasses

    cfg = TCDPConfig()
    cfg = dataclasses.replace(cfg, budget=dataclasses.replace(cfg.budget, b_max=100.0, budget_scale=100.0))
    norm = Normalizer(np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32))
    return TCDP(cfg, obs_dim, 2, norm, -np.ones(2), np.ones(2)).eval(), "untrained default config"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, source = load(args.model)
    planner = Planner(model)
    rate = matmul_gflops()
    print(f"model: {source}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
          f"sampler {model.config.diffusion.sampler}, {model.config.diffusion.sampling_steps} steps, "
          f"w_cfg {planner.w_cfg}, beta {planner.beta}; torch threads {args.threads}")
    print(f"matmul rate (256x256 float32): {rate:.1f} GFLOP/s")
    print(f"{'batch':>5s} {'median ms':>10s} {'p90 ms':>8s} {'GFLOP/replan':>13s} {'floor ms':>9s} {'ratio':>6s}")
    for batch in (1, 16):
        obs = np.zeros((batch, model.obs_dim), np.float32)
        budget = np.full(batch, 20.0)
        flops = replan_flops(model, planner, obs, budget)
        times = []
        for i in range(args.repeats + 3):
            t0 = time.perf_counter()
            planner.plan(obs, budget, generator=i)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times) * 1e3
        p90 = sorted(times)[int(0.9 * len(times))] * 1e3
        floor = flops / (rate * 1e9) * 1e3
        print(f"{batch:5d} {med:10.1f} {p90:8.1f} {flops / 1e9:13.3f} {floor:9.2f} {med / floor:6.1f}")


if __name__ == "__main__":
    main()
