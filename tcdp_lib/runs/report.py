"""Execute the notebooks headless with papermill into ``reports/<run-name>/``.

One parameters file (YAML) drives a run: ``common`` parameters for every notebook, and
per-notebook overrides. A notebook runs again with other parameters under a key
``NAME.ipynb@LABEL`` (e.g. ``01_data_inspection.ipynb@metadrive: {task: ...}``); that run's
files are named ``NAME-LABEL.*``. The run directory holds the executed notebooks, their HTML exports,
each notebook's recorded figures (JSON), ``run.json`` (parameters, seed, package versions,
device, wall times) and ``index.html`` linking them.

A run executes into ``reports/.<name>.partial/`` and replaces ``reports/<name>/`` only when every
notebook succeeded: a failed notebook stops the run with its cell's error, and the earlier
report of that name stays intact (the partial folder is kept to inspect the failure).
"""

from __future__ import annotations

import html
import json
import platform
import shutil
import time
from pathlib import Path

from tcdp_lib.device import device_name
from tcdp_lib.paths import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"


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


def _export_html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    out = executed.with_suffix(".html")
    out.write_text(body)
    return out


def _write_index(run_dir: Path, run: dict) -> Path:
    rows = []
    for item in run["notebooks"]:
        name = item["notebook"]
        stem = Path(name).stem
        figs = run_dir / f"{stem}.figures.json"
        rows.append(
            f"<tr><td>{html.escape(stem)}</td><td><a href='{stem}.html'>HTML</a></td>"
            f"<td><a href='{name}'>notebook</a></td>"
            f"<td>{'<a href=' + repr(figs.name) + '>figures</a>' if figs.exists() else '-'}</td>"
            f"<td>{item['wall_time_s']:.0f} s</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tcdp report {html.escape(run['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 12px;text-align:left}}</style></head>
<body><h1>tcdp report: {html.escape(run['name'])}</h1>
<p>device: {html.escape(run['device'])}; seed: {run['seed']}; total {run['wall_time_s']:.0f} s;
<a href="run.json">run.json</a> (parameters and package versions)</p>
<table><tr><th>notebook</th><th>report</th><th>executed</th><th>figures</th><th>wall time</th></tr>
{''.join(rows)}</table></body></html>"""
    index = run_dir / "index.html"
    index.write_text(page)
    return index


def run_report(params_file: Path, out_root: Path = ROOT / "reports", name: str | None = None,
               notebooks: list[str] | None = None, progress: bool = True) -> Path:
    """Run the notebooks of ``params_file`` in order; returns the path of the index page."""
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
    run = {"name": name, "params_file": str(params_file), "seed": seed, "device": device_name(),
           "versions": _versions(), "notebooks": [], "wall_time_s": 0.0}
    t_run = time.time()
    for key in tqdm(selected, desc=f"report {name}", unit="notebook", disable=not progress):
        nb_name, stem = notebook_source(key)
        source = NOTEBOOK_DIR / nb_name
        if not source.exists():
            raise FileNotFoundError(f"{params_file} names notebook {nb_name}, not found in {NOTEBOOK_DIR}")
        params = {**common, **(cfg["notebooks"][key] or {})}
        params["figures_path"] = str((work_dir / f"{stem}.figures.json").resolve())
        executed = work_dir / f"{stem}.ipynb"
        t0 = time.time()
        try:
            pm.execute_notebook(str(source), str(executed), parameters=params, kernel_name="python3",
                                cwd=str(NOTEBOOK_DIR), progress_bar=False)
        except pm.PapermillExecutionError as err:
            _export_html(executed)
            raise NotebookFailed(
                f"notebook {key} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                f"executed copy: {executed}; earlier report in {final_dir} left intact"
            ) from None
        _export_html(executed)
        run["notebooks"].append({"notebook": executed.name, "source": nb_name, "parameters": params,
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
