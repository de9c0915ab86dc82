"""Training throughput of a task's default TCDP model and training on this machine.

    python benchmarks/training_throughput.py [--task OfflineBallCircle-v0] [--steps 50] [--threads 2]

Prints seconds per optimiser step, samples (CTGDA pairs) per second, and the projected wall
time of the task's default run (``default_train_config(task).steps`` steps), from a short run
in a scratch folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.device import default_device
from tcdp_lib.runs.train import RunConfig, default_model_config, default_train_config, train_tcdp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="OfflineBallCircle-v0")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.task)
    default = default_train_config(args.task)
    warm = 5
    cfg = dataclasses.replace(default, steps=args.steps + warm, log_every=1, checkpoint_every=10**9)
    times = []

    def tick(record):
        times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        train_tcdp(ds, RunConfig(task=args.task, model=default_model_config(args.task), train=cfg), run_dir=tmp, progress=False, callback=tick)
    per_step = (times[-1] - times[warm - 1]) / args.steps
    print(f"task {args.task}; device {default_device()}; torch threads {args.threads}; batch {cfg.batch_size}")
    print(f"seconds per step: {per_step:.3f}")
    print(f"samples per second: {cfg.batch_size / per_step:.0f}")
    print(f"projected wall time of the default run ({default.steps} steps): {default.steps * per_step / 60:.1f} min")


if __name__ == "__main__":
    main()
