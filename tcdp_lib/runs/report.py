"""Execute the notebooks headless with papermill into ``reports/<run-name>/``.

One parameters file (YAML) drives a run: ``common`` parameters for every notebook, and
per-notebook overrides. A notebook runs again with other parameters under a key
``NAME.ipynb@LABEL`` (e.g. ``01_data_inspection.ipynb@metadrive: {task: ...}``); that run's
files are named ``NAME-LABEL.*``. The run directory holds the executed notebooks, their HTML exports,
each notebook's recorded figures (JSON), ``run.json`` (parameters, seed, package versions,
device, wall times) and ``index.html``: the headline results (the shipped benchmark table, each
budget sweep of notebook 05) and one line per notebook.

A report opens offline, from the folder alone: plotly.js is one shared file beside the pages
(``plotly.min.js``), which the pages load; the executed notebooks hold each figure's JSON once
(the plotly mimetype that JupyterLab draws) and the pages draw it from that JSON; widget outputs
(the budget panel's controls, progress bars) show their last state as static HTML; no page
loads anything from the internet (no require.js, MathJax, Mermaid or widget manager from a
CDN; TeX in markdown cells shows as source). Each page is titled after its notebook. The
kernels run in the report folder and every path stored in the report (parameters, ``run.json``,
the papermill metadata) is relative to it; paths inside the checkout print relative to its root.

A run executes into ``reports/.<name>.partial/`` and replaces ``reports/<name>/`` only when every
notebook succeeded: a failed notebook stops the run with its cell's error, and the earlier
report of that name stays intact (the partial folder is kept to inspect the failure).
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import shutil
import time
from pathlib import Path
from unittest import mock

from tcdp_lib.device import default_threads, device_name, thread_env
from tcdp_lib.paths import BENCHMARK_DIR, ROOT, display_path

NOTEBOOK_DIR = ROOT / "notebooks"

PLOTLY_JS = "plotly.min.js"
"""The report's one copy of plotly.js, beside the pages that load it."""

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"

# nbconvert's lab template without what it fetches from CDNs (require.js, the widget manager,
# MathJax, Mermaid), loading the report's plotly.js instead.
_PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}
<script src="{{ resources.plotly_js }}" charset="utf-8"></script>
<style>.tcdp-widget{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;margin:4px 0}
.tcdp-widget .row{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:center}
.tcdp-widget .col{display:flex;flex-direction:column;gap:4px}
.tcdp-widget label{display:inline-block;min-width:90px;color:#555}
.tcdp-widget .note{color:#777;font-style:italic}</style>
{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


class NotebookFailed(RuntimeError):
    """A notebook of a report run raised; the message holds the failing cell's error."""


def _versions() -> dict:
    import importlib.metadata as md

    names = ["torch", "numpy", "gymnasium", "gym", "dsrl", "safety-gymnasium", "bullet-safety-gym",
             "pybullet", "mujoco", "metadrive-simulator", "stable-baselines3", "papermill", "plotly", "h5py"]
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    return out


def load_params(params_file: Path) -> dict:
    import yaml

    params_file = Path(params_file)
    if not params_file.exists():
        raise FileNotFoundError(f"parameters file {params_file} does not exist")
    cfg = yaml.safe_load(params_file.read_text()) or {}
    if not isinstance(cfg.get("notebooks"), dict) or not cfg["notebooks"]:
        raise ValueError(f"{params_file}: expected a mapping 'notebooks: {{name.ipynb: {{...}}}}'")
    return cfg


def notebook_source(key: str) -> tuple[str, str]:
    """``(notebook file name, output stem)`` of a params key ``NAME.ipynb`` or ``NAME.ipynb@LABEL``."""
    name, _, label = key.partition("@")
    if not name.endswith(".ipynb") or (label and not label.replace("_", "").replace("-", "").isalnum()):
        raise ValueError(f"notebook key {key!r}: expected NAME.ipynb or NAME.ipynb@LABEL (LABEL: letters, digits, - or _)")
    stem = Path(name).stem
    return name, f"{stem}-{label}" if label else stem


def notebook_title(source: Path, stem: str) -> str:
    """A page's title: the notebook's first heading (``05 · Interactive budget planner``), with the
    run's label for a ``NAME.ipynb@LABEL`` run; the output stem when the notebook has no heading."""
    import nbformat

    label = stem.partition("-")[2]
    try:
        nb = nbformat.read(source, as_version=4)
    except (OSError, ValueError):
        return stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    title = line[2:].strip()
                    return f"{title} ({label})" if label else title
    return stem


_BDATA = re.compile(r'"bdata":"([A-Za-z0-9+=\\u]*)"')


def _figure_html(fig: dict) -> str:
    """A plotly figure (its mimetype JSON) as a div drawn by the page's shared plotly.js.

    plotly escapes ``/`` in the page's JSON as ``\\u002f`` (with ``<`` and ``>``, so that no
    ``</script>`` ends the script early); in the base64 arrays (``bdata``: images, large traces)
    that makes each ``/`` six characters, so there it is put back (base64 holds no ``<``)."""
    import plotly.io as pio

    div = pio.to_html(fig, include_plotlyjs=False, include_mathjax=False, full_html=False, validate=False,
                      default_width="100%", default_height=525)
    return _BDATA.sub(lambda m: '"bdata":"' + m.group(1).replace("\\u002f", "/") + '"', div)


_CONTROLS = ("Slider", "Text", "Dropdown", "Select", "Button", "Checkbox", "Radio", "Toggle", "Combobox",
             "ColorPicker", "DatePicker", "Play")


def _widget_html(model_id: str, state: dict, fallback: str) -> tuple[str, bool]:
    """Static HTML of a widget's last state (``state``: the notebook's widget state by model id)
    and whether it holds controls (sliders, buttons, ...) that act only in a live kernel."""
    model = state.get(model_id)
    if model is None:
        return f"<pre>{html.escape(fallback)}</pre>", False
    name = model.get("model_name", "").removesuffix("Model")
    st = model.get("state", {})
    desc = html.escape(str(st.get("description") or ""))
    label = f"<label>{desc}</label> " if desc else ""
    if name.endswith("Box"):
        parts = [_widget_html(c.removeprefix("IPY_MODEL_"), state, "") for c in st.get("children", [])]
        cls = "col" if name == "VBox" else "row"
        return f"<div class='{cls}'>{''.join(p for p, _ in parts)}</div>", any(c for _, c in parts)
    if name in ("HTML", "HTMLMath"):
        return f"<span>{label}{st.get('value', '')}</span>", False
    if name == "Label":
        return f"<span>{html.escape(str(st.get('value', '')))}</span>", False
    if name.endswith("Progress"):
        color = {"success": "#5cb85c", "danger": "#d9534f", "warning": "#f0ad4e", "info": "#5bc0de"}.get(
            st.get("bar_style") or "", "#2196f3")
        return (f"<span>{label}<progress value='{st.get('value', 0)}' max='{st.get('max', 100)}' "
                f"style='accent-color:{color}'></progress></span>"), False
    if name == "Button":
        return f"<button disabled>{desc}</button>", True
    if any(k in name for k in _CONTROLS):
        value = st.get("value")
        if "_options_labels" in st:
            idx = st.get("index")
            value = st["_options_labels"][idx] if isinstance(idx, int) else idx
        elif isinstance(value, (int, float)) and st.get("readout_format"):
            try:
                value = format(value, st["readout_format"])
            except ValueError:
                pass
        return f"<span>{label}<b>{html.escape(str(value))}</b></span>", True
    return f"<span class='note'>{label}[{html.escape(name)}: shown when the notebook runs in Jupyter]</span>", False


def _static_outputs(nb) -> None:
    """Make ``nb``'s outputs self-contained HTML (in place): plotly figures as divs that the
    report's plotly.js draws, widget outputs as static HTML of their last state, and no widget
    state left for nbconvert to load a widget manager for."""
    widgets = nb.metadata.pop("widgets", None) or {}
    state = (widgets.get(WIDGET_STATE_MIME) or {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                out["data"] = {"text/html": _figure_html(data[PLOTLY_MIME])}
            elif WIDGET_VIEW_MIME in data:
                body, controls = _widget_html(data[WIDGET_VIEW_MIME].get("model_id", ""), state,
                                              data.get("text/plain", ""))
                note = ("<div class='note'>The controls' last values (a static copy): they act when the "
                        "notebook runs in Jupyter.</div>") if controls else ""
                out["data"] = {"text/html": f"<div class='tcdp-widget'>{body}{note}</div>"}


def _export_html(executed: Path, title: str | None = None) -> Path:
    """``executed`` as an HTML page beside it, titled ``title``, that opens offline: it loads the
    report's ``plotly.min.js`` and nothing from the internet (see :func:`_static_outputs`)."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    _static_outputs(nb)
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"tcdp_report.html.j2": _PAGE_TEMPLATE})],
                            template_file="tcdp_report.html.j2")
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": title or executed.stem}, "plotly_js": PLOTLY_JS})
    out = executed.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def _write_plotly_js(run_dir: Path) -> Path:
    """The report's one copy of plotly.js (the installed plotly package's)."""
    from plotly.offline import get_plotlyjs

    dest = run_dir / PLOTLY_JS
    dest.write_text(get_plotlyjs(), encoding="utf-8")
    return dest


def _path_cleaner(run_dir: Path):
    """A function that drops the report folder's path and the checkout's root from every string
    of a JSON-like value: report files by name, checkout files by their path in the checkout."""
    prefixes = sorted({f"{run_dir.resolve()}/", f"{run_dir}/", f"{ROOT}/"}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(p) for p in prefixes))

    def clean(value):
        if isinstance(value, str):
            return pattern.sub("", value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return clean


def _relative_paths(executed: Path, run_dir: Path) -> None:
    """Paths in an executed notebook and its recorded figures made relative (in place): the
    report folder's to the folder itself, the checkout's to its root; papermill's metadata names
    the source notebook by its path in the checkout and the executed copy by its file name."""
    import nbformat

    clean = _path_cleaner(run_dir)
    figures = executed.with_suffix(".figures.json")
    if figures.exists():  # the notebook's recorded figures (05: the model file it loaded)
        figures.write_text(json.dumps(clean(json.loads(figures.read_text())), indent=1))
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        cell.source = clean(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = clean(out["text"])
            if "data" in out:
                out["data"] = clean(out["data"])  # figure titles too (04: "plans from <model file>")
            if "evalue" in out:
                out["evalue"] = clean(out["evalue"])
                out["traceback"] = clean(out.get("traceback", []))
    if "widgets" in nb.metadata:  # the widgets' last state (the panel's status line names its model file)
        nb.metadata["widgets"] = clean(nb.metadata["widgets"])
    pm_meta = nb.metadata.get("papermill")
    if pm_meta is not None:
        if pm_meta.get("input_path"):
            pm_meta["input_path"] = display_path(pm_meta["input_path"])
        pm_meta["output_path"] = Path(pm_meta.get("output_path") or executed).name
        pm_meta["parameters"] = clean(pm_meta.get("parameters", {}))
    nbformat.write(nb, executed)


# -- the index page ------------------------------------------------------------------------------

def readable_table(table):
    """A :func:`~tcdp_lib.runs.benchmark.benchmark_table` as strings to read:
    :func:`~tcdp_lib.runs.benchmark.format_table`'s layout, with ``± std`` only where a cell has
    more than one seed (the mean alone with one seed) and ``not run`` where a method has no
    result for a (task, budget)."""
    from tcdp_lib.runs.benchmark import format_table

    wide = format_table(table)
    order = [m for m in table["method"].cat.categories if m in wide.columns] \
        if hasattr(table["method"], "cat") else list(wide.columns)
    wide = wide[order]
    return wide.astype(object).where(wide.notna(), "not run")


def benchmark_summary(results_dir: Path = BENCHMARK_DIR):
    """:func:`readable_table` of the finished cells under ``results_dir`` (methods in the
    benchmark's order); ``None`` when there are none."""
    from tcdp_lib.runs.benchmark import benchmark_table, collect_results, results_frame
    from tcdp_lib.runs.methods import METHODS

    results = collect_results(results_dir)
    if not results:
        return None
    frame = results_frame(results)
    order = [m for m in METHODS if m in set(frame["method"])]
    order += sorted(set(frame["method"]) - set(order))
    return readable_table(benchmark_table(frame, tuple(order)))


def _benchmark_section(results_dir: Path) -> str:
    try:
        wide = benchmark_summary(results_dir)
    except (OSError, ValueError, KeyError) as err:
        return f"<p>benchmark table unavailable: {html.escape(str(err))}</p>"
    if wide is None:
        return f"<p>no benchmark results in {html.escape(display_path(results_dir))}</p>"
    head = "".join(f"<th>{html.escape(str(m))}</th>" for m in wide.columns)
    rows = []
    for (task, budget), row in wide.iterrows():
        cells = "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
        rows.append(f"<tr><td>{html.escape(str(task))}</td><td>{html.escape(str(budget))}</td>{cells}</tr>")
    return (f"<h2>Benchmark</h2><p>The shipped results ({html.escape(display_path(results_dir))}): normalised "
            "reward / normalised cost per (task, budget), mean &plusmn; std over seeds (the mean alone with one "
            "seed); <i>(unsafe)</i>: normalised cost above 1; the average row covers the rows every method "
            "has. Details in notebook 06.</p>"
            f"<table class='bench'><tr><th>task</th><th>budget</th>{head}</tr>{''.join(rows)}</table>")


def _budget_response_section(run_dir: Path, run: dict) -> str:
    """Notebook 05's budget sweep of each task: mean episode reward and cost per budget."""
    parts = []
    for item in run["notebooks"]:
        stem = Path(item["notebook"]).stem
        figs_file = run_dir / f"{stem}.figures.json"
        if not stem.startswith("05_budget_planner") or not figs_file.exists():
            continue
        figs = json.loads(figs_file.read_text())
        sweep = figs.get("sweep") or []
        if not sweep:
            continue
        rows = "".join(
            f"<tr><td>{p['budget']:g}</td><td>{p['reward']:.1f}</td><td>{p['cost']:.1f}</td>"
            f"<td>{p['normalized_reward']:.3f}</td><td>{p['normalized_cost']:.2f}</td>"
            f"<td>{'yes' if p.get('safe') else 'no'}</td><td>{p['episodes']}</td></tr>" for p in sweep)
        parts.append(
            f"<h3>{html.escape(str(figs.get('task', stem)))} (<a href='{html.escape(stem)}.html'>{html.escape(stem)}</a>)</h3>"
            "<table><tr><th>budget b</th><th>reward</th><th>cost</th><th>normalised reward</th>"
            f"<th>normalised cost</th><th>safe</th><th>episodes</th></tr>{rows}</table>")
    if not parts:
        return ""
    return ("<h2>Budget response</h2><p>TCDP's mean episode reward and cost at each budget of notebook 05's "
            "sweep (the same start states at every budget), and DSRL's normalised reward and cost; safe: "
            "normalised cost at most 1.</p>"
            + "".join(parts))


def _write_index(run_dir: Path, run: dict, results_dir: Path = BENCHMARK_DIR) -> Path:
    rows = []
    for item in run["notebooks"]:
        name = item["notebook"]
        stem = Path(name).stem
        figs = run_dir / f"{stem}.figures.json"
        title = item.get("title") or stem
        rows.append(
            f"<tr><td><a href='{html.escape(stem)}.html'>{html.escape(title)}</a></td>"
            f"<td><a href='{html.escape(name)}'>notebook</a></td>"
            f"<td>{'<a href=' + repr(figs.name) + '>figures</a>' if figs.exists() else '-'}</td>"
            f"<td>{item['wall_time_s']:.0f} s</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tcdp report {html.escape(run['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 12px;text-align:left}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}.bench td{{white-space:nowrap}}</style></head>
<body><h1>tcdp report: {html.escape(run['name'])}</h1>
<p>device: {html.escape(run['device'])}; seed: {run['seed']}; total {run['wall_time_s']:.0f} s;
<a href="run.json">run.json</a> (parameters and package versions). The pages open offline (plotly.js is
<a href="{PLOTLY_JS}">{PLOTLY_JS}</a> beside them); the executed notebooks open in Jupyter.</p>
<h2>Notebooks</h2>
<table><tr><th>notebook (page)</th><th>executed</th><th>figures</th><th>wall time</th></tr>
{''.join(rows)}</table>
{_benchmark_section(results_dir)}
{_budget_response_section(run_dir, run)}
</body></html>"""
    index = run_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def kernel_threads(n: int):
    """Within the block (a context manager), kernels started from this process run on ``n``
    threads: the variables of :func:`tcdp_lib.device.thread_env` are set in ``os.environ`` (a
    kernel inherits it), then restored."""
    return mock.patch.dict(os.environ, thread_env(n))


def run_report(params_file: Path, out_root: Path = ROOT / "reports", name: str | None = None,
               notebooks: list[str] | None = None, progress: bool = True, threads: int | None = None) -> Path:
    """Run the notebooks of ``params_file`` in order; returns the path of the index page.

    Each notebook's kernel runs on ``threads`` torch threads (``None``: the workbench default,
    :func:`tcdp_lib.device.default_threads`), set through its environment (:func:`kernel_threads`)."""
    import papermill as pm
    from tqdm.auto import tqdm

    cfg = load_params(params_file)
    name = name or cfg.get("name") or Path(params_file).stem
    out_root = Path(out_root)
    final_dir = out_root / name
    work_dir = out_root / f".{name}.partial"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    common = dict(cfg.get("common") or {})
    seed = int(common.get("seed", 0))
    def wanted(key: str) -> bool:  # by key, notebook file, notebook stem or output stem
        name, stem = notebook_source(key)
        return not notebooks or bool({key, name, Path(name).stem, stem} & set(notebooks))

    selected = [k for k in cfg["notebooks"] if wanted(k)]
    params_name = display_path(params_file)
    if Path(params_name).is_absolute():  # a file outside the checkout: its name (run.json holds every parameter)
        params_name = Path(params_file).name
    threads = default_threads() if threads is None else threads
    run = {"name": name, "params_file": params_name, "seed": seed, "device": device_name(), "threads": threads,
           "versions": _versions(), "notebooks": [], "wall_time_s": 0.0}
    _write_plotly_js(work_dir)
    t_run = time.time()
    for key in tqdm(selected, desc=f"report {name}", unit="notebook", disable=not progress):
        nb_name, stem = notebook_source(key)
        source = NOTEBOOK_DIR / nb_name
        if not source.exists():
            raise FileNotFoundError(f"{params_file} names notebook {nb_name}, not found in {NOTEBOOK_DIR}")
        params = {**common, **(cfg["notebooks"][key] or {})}
        params["figures_path"] = f"{stem}.figures.json"  # the kernel runs in the report folder
        executed = work_dir / f"{stem}.ipynb"
        title = notebook_title(source, stem)
        t0 = time.time()
        try:
            with kernel_threads(threads):
                pm.execute_notebook(str(source), str(executed.resolve()), parameters=params, kernel_name="python3",
                                    cwd=str(work_dir.resolve()), progress_bar=False)
        except pm.PapermillExecutionError as err:
            _relative_paths(executed, work_dir)
            _export_html(executed, title)
            raise NotebookFailed(
                f"notebook {key} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                f"executed copy: {executed}; earlier report in {final_dir} left intact"
            ) from None
        _relative_paths(executed, work_dir)
        _export_html(executed, title)
        run["notebooks"].append({"notebook": executed.name, "source": nb_name, "title": title, "parameters": params,
                                 "wall_time_s": time.time() - t0})
    run["wall_time_s"] = time.time() - t_run
    (work_dir / "run.json").write_text(json.dumps(run, indent=1))
    _write_index(work_dir, run)
    # Swap the finished run into place.
    old = out_root / f".{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(old)
    work_dir.rename(final_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final_dir / "index.html"
