"""Cells per hour of the Ray executor against the serial one, on one machine.

Runs the same small grid twice, each in a fresh temporary out folder and a fresh process (what a
user runs, imports and Ray's start included):

- ``tcdp benchmark --threads 2`` (serial: one cell after another, 2 torch threads);
- ``tcdp benchmark --executor ray --workers 2 --threads 1`` (2 cells at once, 1 thread each);

and prints each one's wall time, cells per hour and the ratio (issue 14 asks for >= 1.6 on this
2-core machine), and whether the two gave the same summaries (they need not: 2 threads and 1
thread may round differently).

The grid: BC-Safe and TCDP smoke models on BallCircle and BallRun, two seeds, trained
``--steps`` steps and evaluated on ``--episodes`` episodes per budget, so that a cell takes tens
of seconds and Ray's start (about 12 s here) does not decide the ratio. ``--quick`` is the
smallest grid (20 steps, 1 episode, one seed): it checks that the script runs, and measures
mostly start-up. Run it on an otherwise idle machine: with two other trainings on the two cores,
the ``--quick`` grid took 241 s serially at 2 threads (2 torch threads on 2 busy cores wait on each
other; the same 4 cells at 1 thread take about 10 s) against 28 s on Ray, a ratio of 8.6 that
says nothing about an idle machine.

    python benchmarks/ray_throughput.py                 # the measurement (minutes)
    python benchmarks/ray_throughput.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(label: str, args: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "tcdp_lib.cli", "benchmark", *args, "--out", str(out), "--quiet"]
    print(f"{label}: {' '.join(cmd[2:])}", flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def summaries(out: Path) -> dict:
    return {str(p.relative_to(out)): json.loads(p.read_text())["summary"] for p in sorted(out.rglob("result.json"))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="*", default=["OfflineBallCircle-v0", "OfflineBallRun-v0"])
    ap.add_argument("--methods", nargs="*", default=["bc_safe", "tcdp"])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--steps", type=int, default=3000, help="training steps of every cell (smoke models)")
    ap.add_argument("--episodes", type=int, default=10, help="evaluation episodes per budget")
    ap.add_argument("--n-envs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial-threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="the smallest grid: checks that the script runs")
    ap.add_argument("--json", default=None, help="also write the measurement there")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.episodes, args.seeds, args.n_envs = 20, 1, [0], 2
    grid = ["--preset", "smoke", "--tasks", *args.tasks, "--methods", *args.methods,
            "--seeds", *map(str, args.seeds), "--episodes", str(args.episodes), "--n-envs", str(args.n_envs),
            "--diffusion-steps", str(args.steps), "--baseline-steps", str(args.steps)]
    cells = len(args.tasks) * len(args.methods) * len(args.seeds)
    print(f"{cells} cells: {', '.join(args.methods)} on {', '.join(args.tasks)}, seeds {args.seeds}, "
          f"{args.steps} training steps, {args.episodes} episodes per budget; {os.cpu_count()} CPUs here")
    with tempfile.TemporaryDirectory(prefix="ray-throughput-") as tmp:
        serial_out, ray_out = Path(tmp) / "serial", Path(tmp) / "ray"
        serial = run(f"serial, {args.serial_threads} threads", [*grid, "--threads", str(args.serial_threads)],
                     serial_out)
        ray = run(f"ray, {args.workers} workers x 1 thread",
                  [*grid, "--executor", "ray", "--workers", str(args.workers), "--threads", "1"], ray_out)
        same = summaries(serial_out) == summaries(ray_out)
    per_hour = {k: cells * 3600 / v for k, v in (("serial", serial), ("ray", ray))}
    ratio = per_hour["ray"] / per_hour["serial"]
    print(f"serial: {serial:7.1f} s  {per_hour['serial']:8.1f} cells/h")
    print(f"ray:    {ray:7.1f} s  {per_hour['ray']:8.1f} cells/h")
    print(f"ratio ray / serial: {ratio:.2f} (issue 14 asks >= 1.6: {'yes' if ratio >= 1.6 else 'no'}); "
          f"same summaries: {'yes' if same else 'no (1 and 2 threads round differently)'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cells": cells, "args": vars(args), "serial_s": serial, "ray_s": ray,
                                               "cells_per_hour": per_hour, "ratio": ratio,
                                               "same_summaries": same}, indent=1))


if __name__ == "__main__":
    main()
