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
