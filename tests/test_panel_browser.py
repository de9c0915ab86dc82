"""Notebook 05's budget panel in a real browser: JupyterLab in headless Chromium.

The test starts JupyterLab on a copy of ``notebooks/05_budget_planner.ipynb`` whose parameters
are the smoke run's (``reports/params/smoke.yaml``), opens it in headless Chromium driven by
Selenium (Debian's ``chromium`` and ``chromium-driver``: ``make test`` installs them), runs all
cells, drags the panel's budget slider and checks that the plans figure and the status line follow
the new budget and that no cell shows an error.

Without ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` the test is skipped, except under CI
(``CI`` set), where it fails. ``TCDP_SCREENSHOT_DIR``: where to save a screenshot of the panel
after the move (none when unset).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tcdp_lib.paths import ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOTEBOOK = ROOT / "notebooks" / "05_budget_planner.ipynb"
SMOKE = ROOT / "reports" / "params" / "smoke.yaml"

# Generous limits: CI has two cores, which other work may share.
SERVER_TIMEOUT_S = 120
KERNEL_TIMEOUT_S = 180
RUN_ALL_TIMEOUT_S = 600
RELEASE_TIMEOUT_S = 300

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1500,2200",
)


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    why = (f"{' and '.join(missing)} missing: the browser test needs Debian's chromium and chromium-driver "
           f"(`make test` installs them as root; else `sudo apt-get install chromium chromium-driver`)")
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def _wait_for(what: str, check, timeout: float, interval: float = 0.5, show=None):
    """Poll ``check()`` until it returns something truthy (returned); fail after ``timeout`` s,
    with ``show()`` (what was seen) in the message."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    seen = show() if show is not None else last
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; seen: {seen!r}")


def _smoke_notebook(dest: Path) -> None:
    """Notebook 05 with the smoke run's parameters in a cell after its ``parameters`` cell, as
    the report runner (papermill) injects them; not executed."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    cfg = yaml.safe_load(SMOKE.read_text())
    params = {**(cfg.get("common") or {}), **(cfg["notebooks"]["05_budget_planner.ipynb"] or {}),
              "figures_path": "05_budget_planner.figures.json"}
    nb = load_notebook_node(str(NOTEBOOK))  # nbformat's node, each cell's tags filled in
    nb = parameterize_notebook(nb, params, kernel_name="python3", language="python")
    for cell in nb.cells:  # Run All is over when every code cell has a count: none to begin with
        if cell.cell_type == "code":
            cell.execution_count, cell.outputs = None, []
    nbformat.write(nb, dest)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a folder that holds the smoke-parameterised notebook 05: ``(url, token,
    notebook name, server log)`` (the log stays in the test's tmp folder)."""
    _require_browser()
    root = tmp_path / "lab"
    root.mkdir()
    name = "05_budget_planner.ipynb"
    _smoke_notebook(root / name)
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path / "jupyter"
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"), "MUJOCO_GL": env.get("MUJOCO_GL", "egl"),
        "SDL_VIDEODRIVER": env.get("SDL_VIDEODRIVER", "dummy"), "PYTHONUNBUFFERED": "1",
    })
    # No news toast over the page (JupyterLab asks whether to fetch news).
    (home / "config" / "labconfig").mkdir(parents=True)
    (home / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    log_path = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait_for("JupyterLab to answer", up, SERVER_TIMEOUT_S)
        yield url, token, name, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def browser(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given: Selenium Manager (which downloads drivers) is not run.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# -- JupyterLab, seen from the page (window.jupyterapp: --LabApp.expose_app_in_browser) -------------

_NOTEBOOK_STATE = """
const app = window.jupyterapp;
if (!app || !app.shell) return {ready: false, why: 'no jupyterapp'};
const panel = app.shell.currentWidget;
if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return {ready: false, why: 'no notebook'};
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.model.toJSON().cells;
const state = [];
for (let i = 0; i < panel.content.model.cells.length; i++) {
  const c = panel.content.model.cells.get(i);
  state.push(c.type === 'code' ? (c.executionState || '') : '');
}
return {ready: panel.context.isReady, kernel: kernel ? kernel.status : null, cells: cells, state: state};
"""


def _notebook(driver) -> dict:
    return driver.execute_script(_NOTEBOOK_STATE)


def _errors(nb: dict) -> list[str]:
    """Error outputs of the notebook's cells, and stderr or plain text that shows a traceback."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
                continue
            text = out.get("text") or (out.get("data") or {}).get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            if (kind == "stream" and out.get("name") == "stderr" and re.search(r"Traceback|Error\b", text)) or \
                    "Traceback (most recent call last)" in text:
                found.append(f"cell {i} ({kind}): {text[-2000:]}")
    return found


def _page_errors(driver) -> list[str]:
    """Error messages JupyterLab shows in the page (a widget or an output that did not render)."""
    return driver.execute_script("""
        const out = [];
        for (const el of document.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], .jupyter-widgets-error-widget'))
          if (/Traceback|Error/.test(el.innerText)) out.push(el.innerText.slice(-2000));
        for (const el of document.querySelectorAll('.jp-OutputArea-output'))
          if (/Error displaying widget|Error rendering output item|Model not found/.test(el.innerText))
            out.push(el.innerText.slice(0, 500));
        return out;
    """)


# -- The panel in the page ---------------------------------------------------------------------

_PANEL_STATE = """
const slider = [...document.querySelectorAll('.widget-slider')]
  .find(s => (s.querySelector('.widget-label') || {}).textContent === 'budget b');
if (!slider) return null;
const panel = slider.closest('.jp-OutputArea');
const figures = [...panel.querySelectorAll('.js-plotly-plot')].map(div => ({
  title: (div.querySelector('.gtitle') || {}).textContent || '',
  text: [...div.querySelectorAll('.annotation-text, .g-gtitle')].map(e => e.textContent).join(' | '),
  paths: [...div.querySelectorAll('.scatterlayer path')].map(p => p.getAttribute('d') || '').join('|'),
}));
const status = [...panel.querySelectorAll('.widget-html-content')]
  .map(e => e.textContent).find(t => /plans at b =|planning at b =|error/.test(t)) || '';
return {
  readout: (slider.querySelector('.widget-readout') || {}).textContent || '',
  plans: figures.find(f => /sampled plans at b =/.test(f.title)) || null,
  rollout: figures.find(f => /cumulative cost/.test(f.text)) || null,
  status: status,
};
"""


def _panel(driver):
    return driver.execute_script(_PANEL_STATE)


def _budget_handle(driver):
    from selenium.webdriver.common.by import By

    for slider in driver.find_elements(By.CSS_SELECTOR, ".widget-slider"):
        if slider.find_element(By.CSS_SELECTOR, ".widget-label").text == "budget b":
            return slider, slider.find_element(By.CSS_SELECTOR, ".noUi-handle")
    return None, None


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.eE+-]", "", text))


def test_budget_slider_replans_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    url, token, name, log_path = lab
    t0 = time.monotonic()
    browser.get(f"{url}/lab/tree/{name}?reset&token={token}")

    def kernel_idle():
        state = _notebook(browser)
        return state.get("ready") and state.get("kernel") == "idle"

    _wait_for("the notebook to open with an idle kernel", kernel_idle, KERNEL_TIMEOUT_S)
    t_open = time.monotonic() - t0
    browser.execute_script("return window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def finished():
        nb = _notebook(browser)
        if not nb.get("cells"):
            return False
        errors = _errors(nb)
        if errors:
            pytest.fail("a cell failed during Run All:\n" + "\n".join(errors))
        code = [(c, s) for c, s in zip(nb["cells"], nb["state"]) if c["cell_type"] == "code"]
        done = all(c.get("execution_count") is not None and s != "running" for c, s in code)
        return done and nb["kernel"] == "idle"

    _wait_for("Run All Cells to finish", finished, RUN_ALL_TIMEOUT_S, interval=2)
    t_run = time.monotonic() - t0 - t_open

    # The panel: its slider at the middle DSRL budget, the first release's plans and rollout drawn.
    browser.execute_script("""
        const s = [...document.querySelectorAll('.widget-slider')]
          .find(s => (s.querySelector('.widget-label') || {}).textContent === 'budget b');
        if (s) s.scrollIntoView({block: 'start'});
    """)
    before = _wait_for("the panel's first drawing",
                       lambda: (p := _panel(browser)) and p["plans"] and "rollout drawn" in p["status"] and p,
                       120, show=lambda: _panel(browser))
    b0 = _number(before["readout"])
    assert f"at b = {b0:g} " in before["plans"]["title"], before
    assert f"plans at b = {b0:g} drawn" in before["status"], before

    # Drag the budget handle to the right (a release: continuous_update=False replans on it).
    slider, handle = _budget_handle(browser)
    track = slider.find_element("css selector", ".noUi-target")
    ActionChains(browser).click_and_hold(handle).move_by_offset(track.size["width"] // 4, 0).pause(0.3) \
        .release().perform()
    b1 = _number(_wait_for("the slider's readout to change",
                           lambda: (r := _panel(browser)["readout"]) != before["readout"] and r, 10))
    assert b1 > b0, (b0, b1)
    t_move = time.monotonic()

    def replanned():
        p = _panel(browser)
        ok = (p["plans"] and f"at b = {b1:g} " in p["plans"]["title"] and f"plans at b = {b1:g} drawn" in p["status"]
              and "rollout drawn" in p["status"])
        if re.search(r"\berror:", p["status"]):
            pytest.fail(f"the panel reports an error: {p['status']}")
        return ok and p

    after = _wait_for(f"the panel to replan at b = {b1:g}", replanned, RELEASE_TIMEOUT_S,
                      show=lambda: _panel(browser))
    t_release = time.monotonic() - t_move

    assert after["plans"]["title"] != before["plans"]["title"]
    assert after["plans"]["paths"] and after["plans"]["paths"] != before["plans"]["paths"], \
        "the plans figure's traces did not change"
    assert after["status"] != before["status"]
    assert re.search(rf"budget {b1:g}\b", after["status"]) and not re.search(rf"budget {b0:g}\b", after["status"]), \
        after["status"]
    assert after["rollout"] and after["rollout"]["paths"] != before["rollout"]["paths"], \
        "the rollout figure did not change"

    # No error anywhere: in the notebook's outputs or in the page.
    nb = _notebook(browser)
    assert not _errors(nb), _errors(nb)
    assert not _page_errors(browser), _page_errors(browser)

    shots = os.environ.get("TCDP_SCREENSHOT_DIR")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        area = browser.execute_script("""
            const area = arguments[0].closest('.jp-OutputArea');
            area.scrollIntoView({block: 'start'});
            return area;
        """, slider)  # the controls and both figures
        area.screenshot(str(Path(shots) / "budget_panel.png"))
    severe = [e["message"] for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    if severe:
        print("browser console errors:", *severe, sep="\n  ")
    print("before:", json.dumps({k: v if k not in ("plans", "rollout") else v and v["title"] for k, v in before.items()}))
    print("after:", json.dumps({k: v if k not in ("plans", "rollout") else v and v["title"] for k, v in after.items()}))
    print(f"notebook open {t_open:.0f} s, Run All {t_run:.0f} s, release b {b0:g} -> {b1:g} "
          f"redrawn in {t_release:.1f} s")
