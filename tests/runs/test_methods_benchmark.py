"""Every method through the same train / load / evaluate calls, and the resumable benchmark grid."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import tcdp_lib.runs.benchmark as bench
from tcdp_lib.baselines import PerBudgetPolicy
from tcdp_lib.cli import main
from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.files import CheckpointError
from tcdp_lib.runs.benchmark import (PRESETS, benchmark_table, collect_results, export_results, format_table,
                                     results_frame, run_benchmark, write_table)
from tcdp_lib.runs.methods import load_policy, method_of, train_method

SMOKE = dataclasses.replace(PRESETS["smoke"], episodes=1, n_envs=1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, run_benchmark(SMOKE, out, progress=False)


def test_every_cell_writes_its_result(grid):
    out, results = grid
    assert [r["cell"]["method"] for r in results] == list(SMOKE.methods)
    for r in results:
        cell_dir = bench.cell_dir(out, r["cell"])
        assert json.loads((cell_dir / "result.json").read_text()) == r
        assert (cell_dir / "eval" / "episodes.csv").exists()
        assert [s["budget"] for s in r["summary"]] == [10.0, 20.0, 40.0]
        assert all(np.isfinite(s["normalized_reward"]) and s["normalized_cost"] >= 0 for s in r["summary"])
        assert r["train_wall_time_s"] > 0 and r["eval_wall_time_s"] > 0


def test_finished_cells_are_not_run_again(grid, monkeypatch):
    out, results = grid

    def fail(*a, **k):
        raise AssertionError("a finished cell ran again")

    monkeypatch.setattr(bench, "run_cell", fail)
    assert run_benchmark(SMOKE, out, progress=False) == results
    # another cell config (more episodes) is a new cell: it runs
    with pytest.raises(AssertionError, match="ran again"):
        run_benchmark(dataclasses.replace(SMOKE, episodes=2), out, progress=False)


def test_table_has_every_method_budget_and_the_average(grid, tmp_path):
    _, results = grid
    table = benchmark_table(results_frame(results), SMOKE.methods)
    rows = table[table["task"] != "average"]
    assert len(rows) == 3 * len(SMOKE.methods)
    assert set(table.loc[table["task"] == "average", "method"]) == set(SMOKE.methods)
    for m in SMOKE.methods:
        mean = rows.loc[rows["method"] == m, "reward"].mean()
        avg = table.loc[(table["task"] == "average") & (table["method"] == m), "reward"].item()
        assert avg == pytest.approx(mean)
    assert (rows["safe"] == (rows["cost"] <= 1.0)).all()
    for m in SMOKE.methods:  # the average is safe only when every row it covers is
        avg_safe = table.loc[(table["task"] == "average") & (table["method"] == m), "safe"].item()
        assert avg_safe == bool(rows.loc[rows["method"] == m, "safe"].all())
    wide = format_table(table)
    assert list(wide.columns) == list(SMOKE.methods) and wide.index[-1][0] == "average"
    csv, js = write_table(table, tmp_path)
    assert len(json.loads(js.read_text())) == len(table) and csv.read_text().startswith("task,budget,method")


def test_load_policy_checks_task_and_method(grid):
    out, results = grid
    cdt = bench.cell_dir(out, results[-1]["cell"]) / "train"
    bc = bench.cell_dir(out, results[-2]["cell"]) / "train"
    tcdp = bench.cell_dir(out, results[0]["cell"]) / "train" / "model.pt"
    assert method_of(cdt) == "cdt" and method_of(bc) == "bc_safe" and method_of(tcdp) == "tcdp"
    assert isinstance(load_policy(bc, "OfflineBallCircle-v0")(0), PerBudgetPolicy)
    with pytest.raises(CheckpointError, match="not on 'OfflineBallRun-v0'"):
        load_policy(cdt, "OfflineBallRun-v0")
    with pytest.raises(CheckpointError, match="not on the requested task"):
        load_policy(tcdp, "OfflineBallRun-v0")
    with pytest.raises(CheckpointError, match="not the requested method 'cdd'"):
        load_policy(tcdp, "OfflineBallCircle-v0", method="cdd")


def test_per_budget_policy_refuses_an_untrained_budget(grid):
    out, results = grid
    policy = load_policy(bench.cell_dir(out, results[-2]["cell"]) / "train", "OfflineBallCircle-v0")(0)
    with pytest.raises(ValueError, match="trained budgets: \\[10.0, 20.0, 40.0\\]"):
        policy.reset(1, 15.0)
    with pytest.raises(RuntimeError, match="reset"):
        PerBudgetPolicy({10.0: object()}).act(np.zeros((1, 8)), np.zeros(1), np.zeros(1))


def test_cli_trains_and_evaluates_a_baseline(small_file, tmp_path, capsys):
    path, _ = small_file
    run = tmp_path / "bc"
    assert main(["train", "OfflineBallCircle-v0", "--method", "bc_safe", "--dataset", str(path), "--steps", "5",
                 "--out", str(run), "--quiet"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["b10.pt", "b20.pt", "b40.pt", "method.json"]
    assert main(["evaluate", "OfflineBallCircle-v0", "--model", str(run), "--dataset", str(path), "--seeds", "0",
                 "--episodes", "1", "--n-envs", "1", "--quiet"]) == 0
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["method"] == "bc_safe" and len(summary["summary"]) == 3
    assert "norm. reward" in capsys.readouterr().out


def test_a_finished_baseline_run_is_not_retrained(small_file, tmp_path):
    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    first = train_method("cdt", ds, tmp_path / "cdt", steps=3, progress=False)
    stamp = (tmp_path / "cdt" / "model.pt").stat().st_mtime_ns
    assert train_method("cdt", ds, tmp_path / "cdt", steps=3, progress=False) == first
    assert (tmp_path / "cdt" / "model.pt").stat().st_mtime_ns == stamp


def test_exported_results_read_back_as_the_same_table(grid, tmp_path):
    _, results = grid
    export_results(results, tmp_path / "shipped")
    assert not list((tmp_path / "shipped").rglob("*.pt"))  # results only, no models
    back = collect_results(tmp_path / "shipped")
    assert sorted(json.dumps(r, sort_keys=True) for r in back) == sorted(json.dumps(r, sort_keys=True) for r in results)


def test_family_episodes_set_the_episodes_of_a_family_only():
    from tcdp_lib.runs.benchmark import BenchmarkConfig

    cfg = BenchmarkConfig(methods=("tcdp",), tasks=("OfflineBallRun-v0", "OfflineMetadrive-easysparse-v0"),
                          episodes=20, family_episodes={"metadrive": 10})
    assert [c["episodes"] for c in cfg.cells()] == [20, 10]
    assert {c["task"] for c in PRESETS["full"].cells()} >= {"OfflinePointCircle1Gymnasium-v0",
                                                            "OfflineMetadrive-easysparse-v0"}


def test_metadrive_trains_its_family_model():
    from tcdp_lib.method.model import TCDPConfig
    from tcdp_lib.runs.train import default_model_config

    md = default_model_config("OfflineMetadrive-easysparse-v0")
    assert md.energy.hidden == (64, 64) and md.inverse_dynamics.hidden == (128, 128)
    assert default_model_config("OfflineBallRun-v0") == dataclasses.replace(
        TCDPConfig(), action_model=dataclasses.replace(TCDPConfig().action_model, gap=4))


def test_pointcircle1_trains_its_cost_head_on_an_upper_quantile():
    from tcdp_lib.runs.train import default_model_config

    assert default_model_config("OfflinePointCircle1Gymnasium-v0").energy.cost_quantile == 0.97
    for task in ("OfflineBallCircle-v0", "OfflineBallRun-v0", "OfflineCarCircle-v0"):
        assert default_model_config(task).energy.cost_quantile is None


def test_ballcircle_trains_on_windows_balanced_over_episode_cost():
    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.method.model import TCDP
    from tcdp_lib.method.windows import Windows
    from tcdp_lib.runs.train import default_model_config

    ball = default_model_config("OfflineBallCircle-v0")
    assert (ball.budget.cost_balance, ball.budget.prior_power) == (1.0, 2.0)
    for task in ("OfflineBallRun-v0", "OfflineCarCircle-v0", "OfflinePointCircle1Gymnasium-v0"):
        assert default_model_config(task).budget.cost_balance == 0.0
    # the setting reaches the window draw: windows of BallCircle's cheap episodes are drawn more often
    ds = load_dataset("OfflineBallCircle-v0")
    model = TCDP.from_episodes(ds.episodes, dataclasses.replace(ball, horizon=8))
    assert model.budget_prior().power == 2.0
    windows = Windows.from_episodes(ds.episodes, 8)
    cdf = model.window_cdf(windows)
    p = np.diff(cdf, prepend=0.0)
    cheap = windows.episode_cost <= 10
    assert p[cheap].sum() > 1.5 * cheap.mean()


def test_average_leaves_out_tasks_some_method_lacks(grid):
    _, results = grid
    frame = results_frame(results)
    extra = frame[frame["method"] == "tcdp"].assign(task="OfflineBallRun-v0", normalized_reward=9.0)
    table = benchmark_table(pd.concat([frame, extra], ignore_index=True), SMOKE.methods)
    assert (table["task"] == "OfflineBallRun-v0").sum() == 3  # tabulated
    avg = table.loc[(table["task"] == "average") & (table["method"] == "tcdp"), "reward"].item()
    mean = frame.loc[frame["method"] == "tcdp", "normalized_reward"].mean()
    assert avg == pytest.approx(mean)  # but not averaged: only tcdp has it


def test_average_is_unsafe_when_any_of_its_rows_is(grid):
    """One row at cost 1.5 among rows at 0.1: the mean stays under 1, the average row is unsafe."""
    _, results = grid
    frame = results_frame(results).copy()
    frame["normalized_cost"] = 0.1
    first = frame.index[(frame["method"] == "tcdp") & (frame["budget"] == frame["budget"].min())]
    frame.loc[first, "normalized_cost"] = 1.5
    table = benchmark_table(frame, SMOKE.methods)
    avg = table[table["task"] == "average"].set_index("method")
    assert avg.loc["tcdp", "cost"] < 1 and not avg.loc["tcdp", "safe"]
    assert avg.drop(index="tcdp")["safe"].all()
    assert "(unsafe)" in format_table(table).iloc[-1]["tcdp"]


def test_missing_names_the_cells_without_a_result(grid):
    _, results = grid
    assert SMOKE.missing(results) == []
    assert SMOKE.missing(results[1:]) == [{"task": "OfflineBallCircle-v0", "cell": SMOKE.methods[0], "seed": 0}]
    two_seeds = dataclasses.replace(SMOKE, seeds=(0, 1))
    assert [(m["cell"], m["seed"]) for m in two_seeds.missing(results)] == [(m, 1) for m in SMOKE.methods]
    # an arm is named by its label, and a result of another arm of the same method does not count
    ablations = PRESETS["ablations"]
    tcdp = next(c for c in ablations.cells() if c.get("label") == "tcdp")
    missing = ablations.missing([{"cell": tcdp}])
    assert len(missing) == len(ablations.cells()) - 1
    assert {"task": tcdp["task"], "cell": "tcdp", "seed": tcdp["seed"]} not in missing
    assert {"task": tcdp["task"], "cell": "cfg_only", "seed": tcdp["seed"]} in missing


def test_ablations_preset_shares_one_training_per_method_task_and_seed(tmp_path):
    cfg = PRESETS["ablations"]
    cells = cfg.cells()
    assert {c["task"] for c in cells} == {"OfflineBallCircle-v0", "OfflineBallRun-v0"}
    assert {c["seed"] for c in cells} == {0, 1, 2} and {c["episodes"] for c in cells} == {20}
    assert len(cells) == 2 * 3 * len(cfg.arms) and len({bench.cell_dir(tmp_path, c) for c in cells}) == len(cells)
    assert len({bench.train_dir(tmp_path, c) for c in cells}) == 2 * 3 * 3  # tcdp, no_ctgda, no_qn
    by_label = {c["label"]: c for c in cells if c["task"] == "OfflineBallRun-v0" and c["seed"] == 1}
    assert {k: v["method"] for k, v in by_label.items() if v["method"] != "tcdp"} == {
        "no_ctgda": "tcdp_no_ctgda", "no_qn": "tcdp_no_qn"}
    tuned = cfg.planning_of("tcdp", "OfflineBallRun-v0")  # TCDP's own planning on the task
    assert by_label["tcdp"]["planning"] == tuned == by_label["no_qn"]["planning"] == by_label["no_ctgda"]["planning"]
    sweep = {c["planning"]["beta"] for c in by_label.values()
             if c["method"] == "tcdp" and c["planning"]["w_cfg"] == tuned["w_cfg"]}
    assert sweep == set(bench.ABLATION_BETAS) | {tuned["beta"]}
    assert by_label["cfg_only"]["planning"] == {**tuned, "beta": 0.0}
    assert by_label["energy_only"]["planning"] == {**tuned, "w_cfg": 0.0}
    assert cfg.labels() == tuple(cfg.arms)
    assert dataclasses.replace(cfg, methods=("tcdp_no_qn",)).labels() == ("no_qn",)


def test_task_planning_overrides_the_method_planning_on_its_task_only():
    cfg = dataclasses.replace(SMOKE, tasks=("OfflineBallCircle-v0", "OfflineBallRun-v0"), methods=("tcdp", "cdd"),
                              planning={"tcdp": {"w_cfg": 1.5, "beta": 1.0}, "cdd": {"w_cfg": 2.0}},
                              task_planning={"tcdp": {"OfflineBallCircle-v0": {"w_cfg": 3.0}}})
    plan = {(c["task"], c["method"]): c["planning"] for c in cfg.cells()}
    assert plan["OfflineBallCircle-v0", "tcdp"] == {"w_cfg": 3.0, "beta": 1.0}
    assert plan["OfflineBallRun-v0", "tcdp"] == {"w_cfg": 1.5, "beta": 1.0}
    assert plan["OfflineBallCircle-v0", "cdd"] == plan["OfflineBallRun-v0", "cdd"] == {"w_cfg": 2.0}
    full = PRESETS["full"]
    for task, over in bench.TCDP_TASK_PLANNING.items():  # the shipped grid plans each task as tuned
        assert full.planning_of("tcdp", task) == {**bench.TCDP_PLANNING, **over}


def test_arms_of_one_method_share_its_training(tmp_path):
    arms = {"tcdp": {"method": "tcdp", "planning": {"beta": 1.0}},
            "cfg_only": {"method": "tcdp", "planning": {"beta": 0.0}}}
    cfg = dataclasses.replace(SMOKE, methods=("tcdp",), arms=arms)
    results = run_benchmark(cfg, tmp_path, progress=False)
    root = tmp_path / "OfflineBallCircle-v0"
    assert (root / "tcdp" / "seed0" / "train" / "model.pt").exists()
    assert not (root / "cfg_only" / "seed0" / "train").exists()
    assert (root / "cfg_only" / "seed0" / "eval" / "episodes.csv").exists()
    assert results[0]["train_wall_time_s"] == results[1]["train_wall_time_s"]
    frame = results_frame(results)
    assert set(frame["method"]) == {"tcdp", "cfg_only"} and set(frame["trained_method"]) == {"tcdp"}
    assert sorted(set(frame["beta"])) == [0.0, 1.0]
    assert list(format_table(benchmark_table(frame, cfg.labels())).columns) == ["tcdp", "cfg_only"]


@pytest.mark.parametrize("arms, match", [
    ({"cdd": {"method": "tcdp"}}, "a label that names a method must run that method"),
    ({"a/b": {"method": "tcdp"}}, "names a folder"),
    ({"x": {"planning": {}}}, "expected"),
    ({"x": {"method": "nope"}}, "unknown method"),
])
def test_arms_are_checked(arms, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SMOKE, arms=arms).cells()


def test_cli_presets_are_the_benchmark_presets():
    from tcdp_lib.cli import build_parser

    bench_parser = build_parser()._subparsers._group_actions[0].choices["benchmark"]
    preset = next(a for a in bench_parser._actions if a.dest == "preset")
    assert list(preset.choices) == list(PRESETS)


def test_the_shipped_results_are_the_presets_cells():
    """Each shipped TCDP and BC-Safe result of the four main tasks, and each ablation cell, is the
    result of its preset's cell as the preset now stands: changing a task's planning or the
    ablations' without running the cells again fails here (the shipped table would no longer be
    what the preset runs)."""
    from tcdp_lib.paths import BENCHMARK_DIR
    from tcdp_lib.runs.cell import load_cell_result

    main = ("OfflineBallCircle-v0", "OfflineBallRun-v0", "OfflineCarCircle-v0", "OfflinePointCircle1Gymnasium-v0")
    full = dataclasses.replace(PRESETS["full"], tasks=main, methods=("tcdp", "bc_safe"), seeds=(0, 1, 2))
    stale = [(c["task"], c["method"], c["seed"]) for c in full.cells() if load_cell_result(BENCHMARK_DIR, c) is None]
    assert not stale, stale
    ablations = PRESETS["ablations"]
    stale = [(c["task"], c["label"], c["seed"]) for c in ablations.cells()
             if load_cell_result(BENCHMARK_DIR / "ablations", c) is None]
    assert not stale, stale


def test_a_tasks_default_training_reaches_its_cells_and_its_runs(small_file, tmp_path, monkeypatch):
    """``train.TASK_TRAIN`` sets what a cell records and what ``train_method`` trains when no steps
    are given; the ablation study keeps the training it ran with."""
    import tcdp_lib.runs.train as train

    full = PRESETS["full"]
    steps = {(c["task"], c["method"]): c["steps"] for c in full.cells()}
    for task in ("OfflineBallRun-v0", "OfflineCarCircle-v0"):
        assert steps[task, "tcdp"] == steps[task, "trebi"] == steps[task, "cdd"] == train.TASK_TRAIN[task]["steps"]
        assert train.TASK_TRAIN[task]["steps"] != train.TrainConfig().steps
    assert steps["OfflineBallCircle-v0", "tcdp"] == train.TrainConfig().steps
    assert steps["OfflineBallRun-v0", "bc_safe"] == full.baseline_steps
    assert {c["steps"] for c in PRESETS["ablations"].cells()} == {bench.ABLATION_STEPS}

    path, _ = small_file
    ds = load_dataset("OfflineBallCircle-v0", path)
    monkeypatch.setitem(train.TASK_TRAIN, "OfflineBallCircle-v0",
                        {"steps": 3, "batch_size": 8, "checkpoint_every": 2, "log_every": 1, "warmup_steps": 1})
    train_method("tcdp", ds, tmp_path / "run", model_config=train.SMOKE_MODEL, progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["steps"] == 3
    assert json.loads((tmp_path / "run" / "history.json").read_text())[-1]["step"] == 3
