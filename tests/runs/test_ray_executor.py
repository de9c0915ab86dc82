"""The Ray executor of ``tcdp benchmark``: same results as the serial run, finished cells skipped,
a worker killed mid-cell retried, cells sharing a training released after it.

A local Ray with 2 CPUs (no dashboard) serves every test of this module; the cells are smoke cells
on BallCircle (tiny models, 2 episodes per budget), at one torch thread on both paths.
"""

import dataclasses
import json
import os
import signal
import threading
import time

import pytest
import ray

import tcdp_lib.runs.benchmark as bench
from tcdp_lib.cli import main
from tcdp_lib.errors import CellsFailedError
from tcdp_lib.runs.benchmark import PRESETS, run_benchmark

BC = dataclasses.replace(PRESETS["smoke"], methods=("bc_safe",), seeds=(0, 1))
"""BC-Safe smoke cells on one task, two seeds."""
ARMS = dataclasses.replace(PRESETS["smoke"], methods=("tcdp",), seeds=(0,), arms={
    "tcdp": {"method": "tcdp", "planning": {"beta": 1.0}},
    "beta_2": {"method": "tcdp", "planning": {"beta": 2.0}},
})
"""Two arms on one TCDP smoke training."""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _ray(config, out, **options):
    return run_benchmark(config, out, progress=False, executor="ray", threads=1, workers=2, **options)


def _summaries(results):
    return {(r["cell"]["task"], bench.cell_name(r["cell"]), r["cell"]["seed"]): r["summary"] for r in results}


def test_ray_results_equal_the_serial_run_and_finished_cells_are_skipped(local_ray, tmp_path):
    serial = run_benchmark(BC, tmp_path / "serial", progress=False)
    results = _ray(BC, tmp_path / "ray")
    assert [r["cell"] for r in results] == [r["cell"] for r in serial]
    assert _summaries(results) == _summaries(serial)
    assert all(r["threads"] == 1 and r["device"] == "cpu" for r in results)

    files = {bench.cell_dir(tmp_path / "ray", c) / "result.json" for c in BC.cells()}
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert _ray(BC, tmp_path / "ray") == results  # nothing to run: no task starts
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    lost = bench.cell_dir(tmp_path / "ray", BC.cells()[1]) / "result.json"
    lost.unlink()  # a grid stopped before its last cell: only that cell runs
    assert _summaries(_ray(BC, tmp_path / "ray")) == _summaries(serial)
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files if p != lost)


def test_a_worker_killed_mid_cell_is_retried_and_arms_share_one_training(local_ray, tmp_path):
    serial = run_benchmark(ARMS, tmp_path / "serial", progress=False)
    out = tmp_path / "ray"
    leader = bench.cell_dir(out, ARMS.cells()[0])
    box = {}
    run = threading.Thread(target=lambda: box.update(results=_ray(ARMS, out)))
    run.start()
    deadline = time.time() + 600  # generous: a loaded machine starts Ray workers slowly
    while not ((leader / "running.json").exists() and (leader / "train" / "checkpoint.pt").exists()):
        assert time.time() < deadline and run.is_alive(), "the first cell never started training"
        time.sleep(0.02)
    pid = json.loads((leader / "running.json").read_text())["pid"]
    assert not (leader / "result.json").exists()  # mid-cell
    assert not (bench.cell_dir(out, ARMS.cells()[1]) / "running.json").exists()  # waits for the training
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    run.join(timeout=900)
    assert not run.is_alive()
    results = box["results"]
    assert _summaries(results) == _summaries(serial)
    assert results[0]["started_at"] > killed_at  # the retry's result, not the killed attempt's
    for cell in ARMS.cells():
        assert not (bench.cell_dir(out, cell) / "running.json").exists()
        assert bench.load_cell_result(out, cell) is not None
    assert results[0]["summary"] != results[1]["summary"]  # beta 1 and beta 2 plan differently
    assert not (bench.cell_dir(out, ARMS.cells()[1]) / "train").exists()  # one training, in tcdp/seed0/train
    assert results[0]["train_wall_time_s"] == results[1]["train_wall_time_s"]


def test_a_failing_cell_is_reported_and_the_others_finish(local_ray, tmp_path):
    bad = dataclasses.replace(BC, tasks=("OfflineBallCircle-v0",), seeds=(0,), methods=("bc_safe", "tcdp"),
                              planning={"tcdp": {"budget_fraction": 2.0}})  # PlannerConfig refuses it
    with pytest.raises(CellsFailedError, match=r"1 of 2 cells failed \(OfflineBallCircle-v0/tcdp/seed0: "
                                               r".*budget_fraction must lie in"):
        _ray(bad, tmp_path)
    assert bench.load_cell_result(tmp_path, bad.cells()[0]) is not None


def test_cli_refuses_ray_options_without_ray(capsys):
    assert main(["benchmark", "--preset", "smoke", "--workers", "2", "--quiet"]) == 2
    assert "--workers apply to --executor ray" in capsys.readouterr().err
