"""Notebooks run headless in smoke mode through the report runner; their recorded figures are checked."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tcdp_lib.data.card import budget_figures
from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.data.tasks import get_task
from tcdp_lib.device import default_threads
from tcdp_lib.paths import ROOT, shipped_model
from tcdp_lib.runs.report import NotebookFailed, notebook_source, run_report
from tcdp_lib.runs.train import budget_prior_max, default_model_config

SMOKE = ROOT / "reports" / "params" / "smoke.yaml"


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    index = run_report(SMOKE, out_root=out, progress=False)
    return index.parent


SMOKE_STEMS = [notebook_source(k)[1] for k in yaml.safe_load(SMOKE.read_text())["notebooks"]]
INSPECTION_RUNS = [s for s in SMOKE_STEMS if s.startswith("01_data_inspection")]
PLANNER_RUNS = [s for s in SMOKE_STEMS if s.startswith("05_budget_planner")]


def test_every_notebook_is_in_the_smoke_run():
    names = {notebook_source(k)[0] for k in yaml.safe_load(SMOKE.read_text())["notebooks"]}
    assert names == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}


def test_the_smoke_run_covers_every_family_in_notebooks_01_and_05(smoke_report):
    for runs in (INSPECTION_RUNS, PLANNER_RUNS):
        tasks = [_figs(smoke_report, stem)["task"] for stem in runs]
        assert {get_task(t).family for t in tasks} == {"bullet", "safety_gymnasium", "metadrive"}, tasks


def test_notebook_keys_with_a_label():
    assert notebook_source("01_data_inspection.ipynb") == ("01_data_inspection.ipynb", "01_data_inspection")
    assert notebook_source("05_budget_planner.ipynb@MetaDrive") == ("05_budget_planner.ipynb", "05_budget_planner-MetaDrive")
    with pytest.raises(ValueError, match="NAME.ipynb@LABEL"):
        notebook_source("05_budget_planner.ipynb@../x")
    with pytest.raises(ValueError, match="NAME.ipynb"):
        notebook_source("05_budget_planner")


def test_report_layout(smoke_report):
    run = json.loads((smoke_report / "run.json").read_text())
    assert run["device"] in ("cpu",) or run["device"].startswith("cuda")
    # every kernel runs on the report's thread count (the workbench default here), unless its
    # parameters say otherwise (the smoke run's 05 asks for 1)
    assert run["threads"] == default_threads()
    assert _figs(smoke_report, "04_training")["torch_threads"] == run["threads"]
    assert run["versions"]["dsrl"] == "0.1.0"
    for item in run["notebooks"]:
        stem = Path(item["notebook"]).stem
        assert (smoke_report / item["notebook"]).exists()
        assert (smoke_report / f"{stem}.html").exists()
    assert "01_data_inspection" in (smoke_report / "index.html").read_text()


@pytest.mark.parametrize("stem", INSPECTION_RUNS)
def test_data_inspection_figures_match_the_library(smoke_report, stem):
    figs = _figs(smoke_report, stem)
    ds = load_dataset(figs["task"])
    expected = budget_figures(ds.episodes, ds.meta.budgets)
    assert figs["num_episodes"] == ds.episodes.num_episodes
    assert figs["feasible_episodes"] == [f.feasible_episodes for f in expected]
    np.testing.assert_allclose(figs["best_feasible_reward"], [f.best_feasible_reward for f in expected])
    assert figs["num_frames"] >= 2


def test_a_failing_notebook_keeps_the_earlier_report(smoke_report, tmp_path):
    out = smoke_report.parent
    before = (smoke_report / "run.json").read_text()
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump({
        "name": smoke_report.name, "common": {"smoke": True},
        "notebooks": {"01_data_inspection.ipynb": {"task": "OfflineNope-v0"}},
    }))
    with pytest.raises(NotebookFailed, match="unknown task 'OfflineNope-v0'"):
        run_report(params, out_root=out, progress=False)
    assert (smoke_report / "run.json").read_text() == before


def _figs(report, stem):
    return json.loads((report / f"{stem}.figures.json").read_text())


def test_ctgda_notebook_invariants(smoke_report):
    figs = _figs(smoke_report, "02_ctgda_relabeling")
    assert figs["infeasible_pairs"] == 0
    assert figs["min_slack"] >= 0 and figs["min_cost_to_go"] >= 0
    assert figs["share_kept"] == sorted(figs["share_kept"])  # more budget, more pairs
    assert 0 < figs["acceptance_rate"] <= 1


def test_ctgda_notebook_draws_the_prior_training_uses(smoke_report):
    figs = _figs(smoke_report, "02_ctgda_relabeling")
    ds = load_dataset(figs["task"])
    sampling = default_model_config(figs["task"]).budget
    prior = figs["prior"]
    assert prior["high"] == budget_prior_max(ds.meta.budgets, ds.episodes.cost_returns)
    assert prior["high"] < figs["max_episode_cost"]  # BallCircle: 2 x 40 = 80, not its costliest episode (123)
    assert (prior["power"], prior["p_slack"], figs["cost_balance"]) == (
        sampling.prior_power, sampling.p_slack, sampling.cost_balance)
    assert 0 < figs["max_drawn_budget"] <= prior["high"]


def test_qn_notebook_is_uniform_per_budget(smoke_report):
    figs = _figs(smoke_report, "03_quantile_normalization")
    assert figs["qn_min"] == [0.0, 0.0, 0.0] and figs["qn_max"] == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(figs["qn_mean"], 0.5, atol=0.02)


def test_training_notebook_trains_and_samples(smoke_report):
    figs = _figs(smoke_report, "04_training")
    assert figs["steps"] == 20
    assert all(np.isfinite(v) for v in figs["final_losses"].values())
    assert figs["plans_finite"]
    assert figs["sampled_from"] == "this run"


@pytest.mark.parametrize("stem", PLANNER_RUNS)
def test_budget_planner_notebook_records_latency_sweep_and_rollout(smoke_report, stem):
    figs = _figs(smoke_report, stem)
    lat = figs["latency"]
    for key in ("plan_s", "total_s", "plan_s_max", "total_s_max", "cold_plan_s", "cold_total_s"):
        assert np.isfinite(lat[key]) and lat[key] > 0, key
    assert lat["plan_s"] <= lat["total_s"] and lat["rollout_steps"] > 0
    assert lat["meets_targets"] == (lat["plan_s"] < lat["plan_target_s"] and lat["total_s"] < lat["total_target_s"])
    sweep = figs["sweep"]
    assert [p["budget"] for p in sweep] == figs["sweep_budgets"] and len(sweep) == 2  # smoke: 2 budgets x 2 episodes
    for p in sweep:
        assert p["episodes"] == 2 and len(p["episode_costs"]) == 2
        assert np.isfinite([p["reward"], p["cost"], p["normalized_reward"], p["normalized_cost"]]).all()
        assert p["cost"] == pytest.approx(np.mean(p["episode_costs"])) and p["safe"] == (p["normalized_cost"] <= 1)
    timing = figs["sweep_time_s"]  # announced before the sweep, measured after it
    assert timing["expected"] > 0 and timing["measured"] > 0 and timing["live"] >= 1
    ro = figs["rollout"]
    assert ro["length"] > 0 and np.isfinite([ro["reward"], ro["cost"]]).all() and ro["cost"] >= 0
    assert ro["frames"] >= 2 and ro["plans_kept"] >= 1
    assert figs["plan"]["finite"] and figs["plan"]["n_samples"] >= 1
    assert figs["panel"] is not None and 0 < figs["panel"]["plan_s"] <= figs["panel"]["total_s"]
    if shipped_model(figs["task"]).exists():  # the family runs plan with the shipped models
        assert figs["model_source"].startswith("shipped checkpoint"), figs["model_source"]


def test_benchmark_notebook_tabulates_every_method(smoke_report):
    figs = _figs(smoke_report, "06_benchmark")
    assert figs["methods"] == ["tcdp", "trebi", "cdd", "bc_safe", "cdt"] and figs["cells"] == 5
    rows = [r for r in figs["table"] if r["task"] != "average"]
    assert len(rows) == 3 * 5
    assert all(r["safe"] == (r["cost"] <= 1.0) for r in rows)
    for r in figs["table"]:  # the average is safe only when every row it covers is
        if r["task"] == "average":
            assert r["safe"] == all(x["safe"] for x in rows if x["method"] == r["method"])
    assert (smoke_report / "benchmark_table.csv").exists() and (smoke_report / "benchmark_table.json").exists()
    assert figs["missing_cells"] == [] and figs["tasks_in_average"] == figs["tasks"]


def test_ablation_notebook_runs_every_arm_and_reads_the_beta_sweep(smoke_report):
    figs = _figs(smoke_report, "07_ablations")
    assert figs["cells"] == 8 and figs["missing_cells"] == []
    assert set(figs["arms"]) == {"tcdp", "no_ctgda", "no_qn", "cfg_only", "energy_only", "beta_0.5", "beta_2",
                                 "beta_4"}
    assert sorted({r["beta"] for r in figs["beta_grid"]}) == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert len(figs["beta_grid"]) == 5 * 3 and len(figs["one_beta"]) == 3
    assert {r["arm"] for r in figs["effects"]} == {"no_ctgda", "no_qn", "cfg_only", "energy_only"}
    assert len(figs["conclusions"]) == 4 + 1  # one per part left out, one on the beta sweep
