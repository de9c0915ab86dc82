"""The budget panel's figure areas: each redraw gives JupyterLab a fresh plotly renderer."""

from tcdp_lib import plots
from tcdp_lib.widgets import BudgetPlannerPanel

PLOTLY = "application/vnd.plotly.v1+json"


class Area:
    """Records ``DisplayHandle.update`` calls."""

    def __init__(self):
        self.updates = []

    def update(self, obj, raw=False):
        assert raw
        self.updates.append(obj)


def test_show_switches_mimetype_before_each_figure(monkeypatch):
    import plotly.io as pio

    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")  # JupyterLab's part of setup_notebook()
    area, fig = Area(), plots.placeholder("x", height=333)
    BudgetPlannerPanel._show(area, fig)
    BudgetPlannerPanel._show(area, fig)
    # JupyterLab reuses a plotly renderer (which ignores new data) while the preferred mimetype stays
    # the same: a blank HTML block of the figure's height goes between two figures
    assert [sorted(u) for u in area.updates[::2]] == [["text/html"]] * 2
    assert 'height: 333px' in area.updates[0]["text/html"]
    assert all(PLOTLY in u for u in area.updates[1::2])
    assert area.updates[1][PLOTLY] == plots.mime_bundle(fig)[PLOTLY]  # the last update is the figure


def test_show_without_area_or_figure_does_nothing():
    area = Area()
    BudgetPlannerPanel._show(None, plots.placeholder("x"))
    BudgetPlannerPanel._show(area, None)
    assert area.updates == []


# --------------------------------------------------------------------------------------------
# A release: plans first, the old rollout cleared, the rollout streamed and cancelled by the next
# --------------------------------------------------------------------------------------------

import threading  # noqa: E402

import pytest  # noqa: E402

TASK = "OfflineBallCircle-v0"


class Log:
    """Both figure areas' updates in order: ``(area, title of the figure)``, blanks left out."""

    def __init__(self):
        self.events = []

    def area(self, name):
        log = self

        class Named:
            def update(self, obj, raw=False):
                fig = obj.get(PLOTLY)
                if fig is not None:
                    layout = fig.get("layout", {})
                    title = (layout.get("title") or {}).get("text") or (layout.get("annotations") or [{}])[0].get("text")
                    log.events.append((name, str(title), fig))
        return Named()

    def titles(self, name):
        return [t for a, t, _ in self.events if a == name]


@pytest.fixture(autouse=True)
def plotly_mimetype(monkeypatch):
    """Figures render as the plotly mimetype, as in the notebook (``plots.setup_notebook()``)."""
    import plotly.io as pio

    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")


@pytest.fixture(scope="module")
def shipped():
    import torch

    from tcdp_lib.data.dataset import load_dataset
    from tcdp_lib.paths import shipped_model
    from tcdp_lib.runs.interactive import load_planner_model

    if not shipped_model(TASK).exists():
        pytest.skip("no shipped BallCircle checkpoint")
    torch.set_num_threads(1)
    ds = load_dataset(TASK)
    return ds, load_planner_model(ds).model


def make_panel(shipped, **kw):
    ds, model = shipped
    log = Log()
    panel = BudgetPlannerPanel(ds, model, **{"n_samples": 2, "rollout_steps": 12, "stream_every": 4, **kw})
    panel.plan_area, panel.rollout_area = log.area("plan"), log.area("rollout")
    return panel, log


@pytest.fixture()
def gated(monkeypatch):
    """The panel's rollouts wait at a gate (or until cancelled, 5 s at most: a rollout run in the
    release's callback then fails the test instead of hanging it) before they start stepping."""
    import time

    from tcdp_lib.runs import interactive as I

    gate, started = threading.Event(), []
    real = I.rollout

    def waiting(*a, cancel=None, **kw):
        started.append(kw.get("first_plan"))
        deadline = time.monotonic() + 5.0
        while not gate.is_set() and not cancel.is_set() and time.monotonic() < deadline:
            gate.wait(0.01)
        return real(*a, cancel=cancel, **kw)

    monkeypatch.setattr(I, "rollout", waiting)
    return gate, started


def test_a_release_draws_the_plans_and_clears_the_rollout_before_the_rollout_runs(shipped, gated):
    gate, _ = gated
    panel, log = make_panel(shipped)
    panel.budget.value = 7.0
    gate.set()
    panel.wait()
    gate.clear()
    log.events.clear()
    panel.budget.value = 33.0
    # the callback returned: the new plans are drawn, the old rollout is gone, the rollout has not run
    assert log.titles("plan") == ["2 sampled plans at b = 33 (" + log.titles("plan")[0].split("(")[1]]
    assert log.titles("rollout") == ["rolling out at b = 33 ..."]
    assert [a for a, _, _ in log.events] == ["plan", "rollout"]  # plans first
    assert panel.rollout_task.running and float(panel.last.replan.budget[0]) == 7.0
    assert "rolling out" in panel.status.value
    gate.set()
    up = panel.wait()
    assert float(up.replan.budget[0]) == 33.0 and up.rollout.length == 12
    streamed = log.titles("rollout")[1:]
    # streamed every 4 steps, then the whole rollout; the step axis spans the rollout throughout
    assert [t.split(":")[1].split(",")[0] for t in streamed[:2]] == [" step 4 of 12", " step 8 of 12"]
    assert len(streamed) == 3 and "in 12 steps" in streamed[-1]
    final = [f for a, _, f in log.events if a == "rollout"][-1]
    assert final["layout"]["xaxis"]["range"] == [0, 12]
    assert final["layout"]["shapes"][0]["y0"] == 33.0  # the budget line
    assert final == plots.mime_bundle(up.figures[1])[PLOTLY]
    assert list(up.figures[1].data[0].y) == list(up.rollout.cum_cost)  # the episode's cumulative cost
    assert any(t["name"] == "executed path" for t in log.events[-2][2]["data"])  # plans redrawn with the path
    assert 0 < up.plan_s < up.total_s


def test_a_second_release_cancels_the_first_rollout(shipped, gated):
    gate, started = gated
    panel, log = make_panel(shipped)
    panel.budget.value = 5.0
    first = panel.rollout_task
    panel.budget.value = 50.0  # while the first rollout still waits
    assert not first.running and first.result.cancelled and first.result.length < 12
    assert first.result.budget == 5.0
    gate.set()
    up = panel.wait()
    assert up.rollout.budget == 50.0 and not up.rollout.cancelled
    after = [t for t in log.titles("rollout")[log.titles("rollout").index("rolling out at b = 50 ..."):]]
    assert all("b = 50" in t for t in after)  # nothing of b = 5 drawn after the second release
    assert len(started) == 2


def test_the_first_plan_is_not_planned_twice(shipped, monkeypatch):
    from tcdp_lib.planner.planner import Planner

    calls = []
    real = Planner.plan
    monkeypatch.setattr(Planner, "plan", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    panel, _ = make_panel(shipped, replan_every=4)
    panel.update()
    up = panel.wait()
    assert up.rollout.length == 12 and len(calls) == 3  # steps 0 (the panel's plan), 4 and 8
    assert up.rollout.plans[0] is up.replan.plan


def test_the_rollout_runs_the_whole_episode_by_default(shipped):
    ds, model = shipped
    panel = BudgetPlannerPanel(ds, model)
    assert panel.rollout_steps.value == panel.rollout_steps.max == ds.task.max_episode_steps


def test_each_control_carries_an_explanation(shipped):
    from tcdp_lib.widgets import EXPLANATIONS

    panel, _ = make_panel(shipped)
    assert "cost units per episode" in EXPLANATIONS["budget"]
    assert "guidance" in EXPLANATIONS["w_cfg"] and "reward" in EXPLANATIONS["beta"]

    def tree(w):
        yield w
        for c in getattr(w, "children", ()):
            yield from tree(c)

    shown = list(tree(panel.widget))
    for name, text in EXPLANATIONS.items():
        control, line = getattr(panel, name), panel.explanations[name]
        assert text in line.value and control in shown and line in shown
        box = next(w for w in shown if getattr(w, "children", None) and control in w.children)
        assert line in box.children  # beside its control


def test_a_main_thread_simulator_streams_in_the_callback(shipped, monkeypatch):
    from tcdp_lib import widgets

    monkeypatch.setattr(widgets, "FOREGROUND_FAMILIES", frozenset({"bullet"}))
    panel, log = make_panel(shipped)
    seen = []
    monkeypatch.setattr(widgets.BudgetPlannerPanel, "_show", staticmethod(
        lambda area, fig: seen.append(threading.current_thread() is threading.main_thread())))
    panel.budget.value = 9.0
    assert panel.last.rollout.length == 12 and not panel.rollout_task.running  # done when the callback returns
    assert len(seen) == 6 and all(seen)  # plans, cleared, 2 streamed, plans with the path, rollout


def test_the_panel_marks_its_budget_on_the_budget_response(shipped):
    from tcdp_lib.runs.interactive import SweepPoint, sweep_at

    def point(b, cost, reward):
        return SweepPoint(budget=b, episodes=2, reward=reward, cost=cost, reward_std=0.0, cost_std=0.0,
                          normalized_reward=0.0, normalized_cost=0.0)

    sweep = [point(40.0, 30.0, 500.0), point(0.0, 2.0, 100.0), point(20.0, 14.0, 300.0)]
    assert sweep_at(sweep, 10.0) == (8.0, 200.0) and sweep_at(sweep, 80.0) == (30.0, 500.0)
    panel, log = make_panel(shipped, rollout_steps=0)
    panel.response_area = log.area("response")
    panel.budget.value = 10.0
    assert log.titles("response") == [] and "budget sweep puts" not in panel.status.value  # no sweep yet
    panel.set_response(sweep)
    panel.budget.value = 30.0
    marks = [(t, f) for a, t, f in log.events if a == "response"]
    assert [t for t, _ in marks] == ["budget response: where b = 10 lies on the sweep",
                                     "budget response: where b = 30 lies on the sweep"]
    diamonds = [d for d in marks[-1][1]["data"] if d.get("marker", {}).get("symbol") == "diamond"]
    assert [(d["x"][0], d["y"][0]) for d in diamonds] == [(30.0, 22.0), (30.0, 400.0)]  # cost, reward at b = 30
    assert "the budget sweep puts b = 30 at cost 22.0, reward 400.0" in panel.status.value
    with pytest.raises(ValueError, match="points of a budget sweep"):
        panel.set_response([])
