"""A report opens offline from its folder: one shared plotly.js, no page loading anything from the
internet, widgets as static HTML, pages titled after their notebooks, an index with the headline
results, and no machine paths. Notebooks 04 and 05 run in smoke mode (a progress-bar widget, the
budget panel's widgets, plotly figures, printed model files)."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tcdp_lib.paths import BENCHMARK_DIR, ROOT
from tcdp_lib.runs.benchmark import benchmark_table, collect_results, format_table
from tcdp_lib.runs.report import PLOTLY_JS, benchmark_summary, readable_table, run_report

PLOTLY_BANNER = "* plotly.js v"  # the first lines of plotly.min.js
NOTEBOOKS = {"04_training": "04 · Training TCDP", "05_budget_planner": "05 · Interactive budget planner"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    params = tmp / "offline.yaml"
    smoke = yaml.safe_load((ROOT / "reports" / "params" / "smoke.yaml").read_text())["notebooks"]
    params.write_text(yaml.safe_dump({
        "name": "offline", "common": {"smoke": True, "seed": 0, "task": "OfflineBallCircle-v0"},
        "notebooks": {name: smoke[name] for name in ("04_training.ipynb", "05_budget_planner.ipynb")},  # smoke sizes
    }))
    return run_report(params, out_root=tmp / "reports", progress=False).parent


def _pages(report):
    return sorted(report.glob("*.html"))


class _Tags(HTMLParser):
    """Every tag's attributes, and the text of inline scripts."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def _parse(page: Path) -> _Tags:
    tags = _Tags()
    tags.feed(page.read_text())
    return tags


def test_plotly_js_is_one_shared_file_beside_the_pages(report):
    holders = [p.name for p in report.iterdir() if p.is_file() and PLOTLY_BANNER in p.read_text(errors="ignore")]
    assert holders == [PLOTLY_JS]
    for stem in NOTEBOOKS:
        page = report / f"{stem}.html"
        srcs = [a["src"] for t, a in _parse(page).tags if t == "script" and "src" in a]
        assert srcs == [PLOTLY_JS], (page.name, srcs)
        text = page.read_text()
        assert "Plotly.newPlot" in text  # the figures are drawn by it
        arrays = re.findall(r'"bdata":"([^"]*)"', text)  # base64 arrays (the rollout's frames), kept compact
        assert arrays and not any("\\u002f" in a for a in arrays)
        # Neither the page nor the executed notebook carries a copy of plotly.js.
        assert page.stat().st_size < (report / PLOTLY_JS).stat().st_size / 2
        executed = json.loads((report / f"{stem}.ipynb").read_text())
        mimes = {m for c in executed["cells"] for o in c.get("outputs", []) for m in o.get("data", {})}
        assert "application/vnd.plotly.v1+json" in mimes
        html_outputs = "".join("".join(o["data"]["text/html"]) for c in executed["cells"]
                               for o in c.get("outputs", []) if "text/html" in o.get("data", {}))
        assert "Plotly.newPlot" not in html_outputs  # each figure's JSON once, as the plotly mimetype


def test_pages_fetch_nothing_from_the_internet(report):
    for page in [*_pages(report)]:
        parsed = _parse(page)
        for tag, attrs in parsed.tags:
            for key in ("src", "href"):
                url = attrs.get(key) or ""
                if tag in ("script", "link", "img", "iframe") or (key == "src"):
                    assert not re.match(r"(https?:)?//", url), (page.name, tag, url)
        scripts = "\n".join(parsed.scripts)
        for remote in ("cdn.", "cdnjs", "unpkg", "jsdelivr", "require.js", "mathjax/", "embed-amd",
                       "import(\"http", "https://", "http://"):
            assert remote not in scripts, (page.name, remote)
        assert "application/vnd.jupyter.widget-view+json" not in page.read_text()  # no widget manager needed


def test_widgets_show_their_last_state_as_static_html(report):
    panel = (report / "05_budget_planner.html").read_text()
    for control in ("budget b", "w_cfg (CFG)", "beta (energy)", "rollout steps"):
        assert f"<label>{control}</label>" in panel, control
    assert re.search(r"<button disabled[^>]*>replan</button>", panel)
    assert "they act when the notebook runs in Jupyter" in panel
    assert "plan + " in panel  # the panel's status line
    training = (report / "04_training.html").read_text()
    assert re.search(r"<progress max=\"20(\.0)?\"[^>]*value=\"20(\.0)?\"", training)  # the training bar, at its end


def test_pages_are_titled_after_their_notebooks(report):
    index = (report / "index.html").read_text()
    for stem, title in NOTEBOOKS.items():
        assert f"<title>{title}</title>" in (report / f"{stem}.html").read_text()
        assert f"<a href='{stem}.html'>{title}</a>" in index  # one line per notebook, linked
    run = json.loads((report / "run.json").read_text())
    assert [n["title"] for n in run["notebooks"]] == list(NOTEBOOKS.values())


def test_no_machine_paths_in_the_report(report):
    machine = [str(ROOT), str(report.parent.parent), ".offline.partial", "/tmp/"]
    for f in report.iterdir():
        if f.name == PLOTLY_JS:
            continue
        text = f.read_text()
        for path in machine:
            assert path not in text, (f.name, path)
    run = json.loads((report / "run.json").read_text())
    assert run["params_file"] == "offline.yaml"  # outside the checkout: its name
    for item in run["notebooks"]:
        stem = Path(item["notebook"]).stem
        assert item["parameters"]["figures_path"] == f"{stem}.figures.json"  # relative to the report folder
        executed = json.loads((report / item["notebook"]).read_text())
        injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert f'figures_path = "{stem}.figures.json"' in "".join(injected[0]["source"])
        assert executed["metadata"]["papermill"]["input_path"] == f"notebooks/{item['source']}"
    figs = json.loads((report / "05_budget_planner.figures.json").read_text())
    if figs["model_source"].startswith("shipped checkpoint"):  # named by its path in the checkout
        assert figs["model_source"] == "shipped checkpoint data/checkpoints/OfflineBallCircle-v0/model.pt"


def test_index_has_the_headline_results(report):
    index = (report / "index.html").read_text()
    assert "<h2>Benchmark</h2>" in index and "<h2>Budget response</h2>" in index
    for method in dict.fromkeys(r["cell"]["method"] for r in collect_results(BENCHMARK_DIR)):
        assert f"<th>{method}</th>" in index, method
    assert not re.search(r"\bnan\b", index, re.IGNORECASE)
    sweep = json.loads((report / "05_budget_planner.figures.json").read_text())["sweep"]
    for point in sweep:
        assert f"<tr><td>{point['budget']:g}</td><td>{point['reward']:.1f}</td>" in index
    assert "OfflineBallCircle-v0" in index


def _frame(rows):
    return pd.DataFrame([{"method": m, "task": t, "seed": s, "budget": b, "normalized_reward": r,
                          "normalized_cost": c} for m, t, s, b, r, c in rows])


def test_readable_table_shows_a_spread_only_over_seeds_and_no_nan():
    frame = _frame([
        ("tcdp", "A", 0, 10.0, 0.5, 0.8), ("tcdp", "A", 1, 10.0, 0.7, 1.0),  # two seeds
        ("cdt", "A", 0, 10.0, 0.6, 0.6),                                       # one seed, std 0
        ("tcdp", "B", 0, 20.0, 0.9, 1.5),                                      # cdt did not run B
    ])
    table = benchmark_table(frame, ("tcdp", "cdt"))
    one_seed = (table["seeds"] == 1) & (table["task"] != "average")
    assert table.loc[one_seed, ["reward_std", "cost_std"]].isna().all().all()  # no "± 0.000" over one seed
    assert format_table(table).loc[("A", "10"), "cdt"] == "0.600 / 0.60"
    wide = readable_table(table)
    assert list(wide.columns) == ["tcdp", "cdt"]
    assert wide.loc[("A", "10"), "tcdp"] == "0.600 ± 0.100 / 0.90 ± 0.10"
    assert wide.loc[("A", "10"), "cdt"] == "0.600 / 0.60"
    assert wide.loc[("B", "20"), "tcdp"] == "0.900 / 1.50 (unsafe)"
    assert wide.loc[("B", "20"), "cdt"] == "not run"
    assert not wide.isna().any().any()


def test_benchmark_summary_of_the_shipped_results():
    wide = benchmark_summary(BENCHMARK_DIR)
    assert wide is not None and not wide.isna().any().any()
    assert not wide.apply(lambda col: col.str.contains("nan", case=False)).any().any()
    seeds = benchmark_table(*_shipped_frame()).set_index(["task", "budget", "method"])["seeds"]
    for (task, budget, method), n in seeds.items():
        if task != "average" and n == 1:
            assert "±" not in wide.loc[(task, f"{budget:g}"), method], (task, budget, method)


def _shipped_frame():
    from tcdp_lib.runs.benchmark import results_frame
    from tcdp_lib.runs.methods import METHODS

    frame = results_frame(collect_results(BENCHMARK_DIR))
    order = [m for m in METHODS if m in set(frame["method"])]
    return frame, tuple(order + sorted(set(frame["method"]) - set(order)))


def test_no_benchmark_results_no_table(tmp_path):
    assert benchmark_summary(tmp_path) is None


def test_figures_stay_light():
    """Figures hold what they draw, not the raw data: counted histograms, PNG frames, a thinned cloud."""
    import plotly.io as pio

    from tcdp_lib import plots
    from tcdp_lib.data.dataset import load_dataset

    ds = load_dataset("OfflineBallCircle-v0")
    hist = plots.step_histograms(ds)
    assert len(pio.to_json(hist)) < 50_000 < ds.episodes.rewards.nbytes
    assert hist.data[0].y.sum() == len(ds.episodes.rewards)  # every step counted
    frames = np.zeros((3, 180, 240, 3), np.uint8)
    frames[:, 60:120, 80:160] = [200, 30, 30]
    strip = plots.frame_strip(frames, [0, 40, 80])
    assert all(t.source.startswith("data:image/png;base64,") and t.z is None for t in strip.data)
    assert len(pio.to_json(strip)) < frames.nbytes / 10
    plans = {10.0: np.zeros((2, 8, ds.episodes.observations.shape[1]))}
    cloud = plots.planned_states(ds.episodes.observations, plans).data[0]
    assert len(cloud.x) <= 8000 < len(ds.episodes.observations)
