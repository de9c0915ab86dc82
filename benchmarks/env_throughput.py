"""Simulator and generator throughput: environment steps per second on this machine.

    python benchmarks/env_throughput.py [TASK ...]

Prints, per task: random-action steps/s of the bare environment, steps/s of a short generator
run (PPO training with the Lagrangian wrapper and episode logging, one core), and their ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tcdp_lib.data.envs import make_env
from tcdp_lib.data.generate import Phase, generate_dataset, recipe


def random_steps_per_s(task: str, steps: int = 2000) -> float:
    env = make_env(task)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def generator_steps_per_s(task: str, steps: int = 8192) -> float:
    cfg = recipe(task, phases=(Phase(steps // 2), Phase(steps // 2, 5.0, 40.0)), stage_steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_dataset(cfg, Path(tmp) / "out.hdf5", Path(tmp) / "work", progress=False)
        return steps / (time.perf_counter() - t0)


def main(tasks: list[str]) -> None:
    print(f"{'task':36s} {'env steps/s':>12s} {'generator steps/s':>18s} {'ratio':>6s}")
    for task in tasks:
        env_rate = random_steps_per_s(task)
        gen_rate = generator_steps_per_s(task)
        print(f"{task:36s} {env_rate:12.0f} {gen_rate:18.0f} {gen_rate / env_rate:6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["OfflineBallCircle-v0", "OfflineBallRun-v0"])
