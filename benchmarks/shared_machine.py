"""Does the workbench share the machine? A report alone, then beside a CPU-bound training job.

    python benchmarks/shared_machine.py [--params reports/params/default.yaml] [--notebooks 04_training ...]
                                        [--threads N] [--job-threads N] [--skip-alone]

Runs ``tcdp report`` alone and times it; then starts a training run (``tcdp train
OfflineBallRun-v0`` with far more steps than it gets to take, into a temporary folder), lets it
run 20 s, runs the same report again beside it, and stops it. Prints both wall times, each
notebook's, and the ratio (the target is at most 3: two jobs on the cores, each with its share).

``--threads`` sets the report kernels' torch threads and ``--job-threads`` the training's (both
default to the workbench's choice, ``tcdp_lib.device.default_threads``: ``$TCDP_THREADS``, else
half the CPUs); ``--threads 2 --job-threads 2`` on a 2-core machine is torch's own default (a
thread per CPU in each process), the oversubscribed case.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def report(params: str, out: Path, name: str, notebooks, threads) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "tcdp_lib.cli", "report", "--params", params, "--out", str(out), "--name", name]
    if notebooks:
        cmd += ["--notebooks", *notebooks]
    if threads:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    run = json.loads((out / name / "run.json").read_text())
    return wall, {nb["notebook"]: nb["wall_time_s"] for nb in run["notebooks"]} | {"kernel threads": run["threads"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="reports/params/default.yaml")
    ap.add_argument("--notebooks", nargs="*", default=None, help="only these notebooks (default: all)")
    ap.add_argument("--threads", type=int, default=None, help="the report kernels' torch threads")
    ap.add_argument("--job-threads", type=int, default=None, help="the training job's torch threads")
    ap.add_argument("--skip-alone", action="store_true", help="only the report beside the job")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tcdp-shared-"))
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} before; reports in {tmp}")

    alone = None
    if not args.skip_alone:
        alone, per = report(args.params, tmp, "alone", args.notebooks, args.threads)
        print(f"report alone: {alone:.0f} s  {json.dumps({k: round(v) for k, v in per.items()})}")

    job = [sys.executable, "-m", "tcdp_lib.cli", "train", "OfflineBallRun-v0", "--steps", "1000000",
           "--out", str(tmp / "job"), "--quiet"]
    if args.job_threads:
        job += ["--threads", str(args.job_threads)]
    proc = subprocess.Popen(job, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        time.sleep(20)
        if proc.poll() is not None:
            raise SystemExit(f"the training job ended early (exit {proc.returncode}): {' '.join(job)}")
        beside, per = report(args.params, tmp, "beside", args.notebooks, args.threads)
        load = os.getloadavg()[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    print(f"report beside a training job: {beside:.0f} s  {json.dumps({k: round(v) for k, v in per.items()})}"
          f"  (load average {load:.2f})")
    if alone:
        print(f"ratio beside / alone: {beside / alone:.2f} (target <= 3)")


if __name__ == "__main__":
    main()
