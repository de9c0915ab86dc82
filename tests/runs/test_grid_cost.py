"""benchmarks/grid_cost.py: the cost model's scheduling, its rates and their stand-ins."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parents[2] / "benchmarks" / "grid_cost.py"
_spec = importlib.util.spec_from_file_location("grid_cost", _path)
grid_cost = importlib.util.module_from_spec(_spec)
sys.modules["grid_cost"] = grid_cost  # dataclasses look their module up
_spec.loader.exec_module(grid_cost)


def test_dsrl_has_38_tasks_in_three_families():
    tasks = grid_cost.dsrl_tasks()
    assert len(tasks) == 38 and ("BallCircle", "bullet", 200) in tasks and ("easysparse", "metadrive", 1000) in tasks


def test_simulate_schedules_in_order_and_shared_trainings_after_their_first():
    cell = lambda name, group, train, ev: grid_cost.CellCost(name, group, train, ev, 0.0)  # noqa: E731
    alone = [cell(f"c{i}", f"g{i}", 10.0, 0.0) for i in range(4)]
    assert grid_cost.simulate(alone, 1) == 40 and grid_cost.simulate(alone, 2) == 20 and grid_cost.simulate(alone, 8) == 10
    assert grid_cost.simulate(alone, 2, worker_start_s=3.0) == 23
    # two arms on one training: the second waits for the first and does not train
    shared = [cell("a", "g", 10.0, 1.0), cell("b", "g", 10.0, 1.0), cell("c", "h", 5.0, 0.0)]
    assert grid_cost.simulate(shared, 2) == 12


def _result(root, task, method, train, ev, episodes=2, steps=20, wall=None, device="cpu"):
    cell = {"method": method, "task": task, "seed": 0, "steps": steps, "episodes": episodes, "n_envs": 2,
            "smoke": True, "budgets": None, "planning": {}}
    path = root / task / method / "seed0" / "result.json"
    path.parent.mkdir(parents=True)
    body = {"cell": cell, "summary": [], "train_wall_time_s": train, "eval_wall_time_s": ev, "device": device}
    if wall is not None:
        body["wall_time_s"] = wall
    path.write_text(json.dumps(body))


def test_rates_from_measured_cells_with_their_stand_ins(tmp_path):
    # 3 budgets x 2 episodes x 200 steps: 1200 env steps per BallCircle cell, 3000 per PointCircle1 cell
    _result(tmp_path, "OfflineBallCircle-v0", "tcdp", train=2.0, ev=1.2, wall=4.2)  # 0.1 s/step, 1 ms/env step
    _result(tmp_path, "OfflineBallCircle-v0", "bc_safe", train=1.0, ev=1.2)
    _result(tmp_path, "OfflinePointCircle1Gymnasium-v0", "bc_safe", train=1.0, ev=6.0)  # 500-step episodes: 2 ms
    rates = grid_cost.Rates(grid_cost.load_measurements([tmp_path]), overhead_s=5.0, gpu_train_speedup=10.0,
                            gpu_eval_speedup=2.0)
    tcdp = rates.rate("bullet", "tcdp", smoke=True)
    assert tcdp.train_s_per_step == pytest.approx(0.1) and tcdp.eval_s_per_env_step == pytest.approx(1e-3)
    assert tcdp.overhead_s == pytest.approx(1.0) and tcdp.source.startswith("measured")
    assert rates.rate("bullet", "bc_safe", smoke=True).overhead_s == 5.0  # no wall time recorded: assumed
    assert rates.rate("bullet", "cdd", smoke=True).source.startswith("as tcdp")
    sg = rates.rate("safety_gymnasium", "tcdp", smoke=True)  # BC-Safe evaluates 2x slower per step there
    assert sg.eval_s_per_env_step == pytest.approx(2e-3) and "scaled by BC-Safe" in sg.source
    gpu = rates.rate("bullet", "tcdp", smoke=True, gpu=True)
    assert gpu.train_s_per_step == pytest.approx(0.01) and "ASSUMED" in gpu.source
    with pytest.raises(SystemExit, match="no measured cell of 'cdt'"):
        rates.rate("bullet", "cdt", smoke=True)
