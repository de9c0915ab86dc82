"""Plotly figures the notebooks share. Figures only: every number comes from the library."""

from __future__ import annotations

import numpy as np

from tcdp_lib.data.card import frontier

BUDGET_COLORS = ("#2ca02c", "#ff7f0e", "#d62728")


def setup_notebook() -> None:
    """Render figures both for JupyterLab (plotly mimetype) and for HTML export (embedded
    plotly.js, so exported reports work offline)."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


def cost_reward_scatter(dataset, title: str | None = None):
    """Episode cost vs reward, the budget lines, and the feasible frontier (best reward with C <= b)."""
    import plotly.graph_objects as go

    ep = dataset.episodes
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=ep.cost_returns, y=ep.returns, mode="markers", name="episodes",
        marker=dict(size=5, color="rgba(31,119,180,0.45)"),
        hovertemplate="cost %{x:.0f}<br>reward %{y:.1f}<extra></extra>",
    ))
    grid = np.linspace(0, max(ep.cost_returns.max(), max(dataset.meta.budgets)), 200)
    _, best = frontier(ep, grid)
    fig.add_trace(go.Scatter(x=grid, y=best, mode="lines", name="feasible frontier",
                             line=dict(color="black", shape="hv")))
    for b, color in zip(dataset.meta.budgets, BUDGET_COLORS):
        fig.add_vline(x=b, line=dict(color=color, dash="dash"), annotation_text=f"b={b:g}")
    fig.update_layout(title=title or f"{dataset.task.task_id}: episodes", xaxis_title="episode cost C",
                      yaxis_title="episode reward R", template="plotly_white", height=420)
    return fig


def step_histograms(dataset):
    """Histograms of per-step reward and per-step cost."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    ep = dataset.episodes
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per-step reward", "per-step cost"))
    fig.add_trace(go.Histogram(x=ep.rewards, nbinsx=60, name="reward"), row=1, col=1)
    fig.add_trace(go.Histogram(x=ep.costs, nbinsx=20, name="cost"), row=1, col=2)
    fig.update_layout(template="plotly_white", height=320, showlegend=False)
    return fig


def state_traces(dataset, episode_ids, dims=None):
    """State dimensions over time for a few episodes (one panel per dimension)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    ep = dataset.episodes
    dims = list(range(min(ep.obs_dim, 4))) if dims is None else list(dims)
    fig = make_subplots(rows=len(dims), cols=1, shared_xaxes=True,
                        subplot_titles=[f"state[{d}]" for d in dims])
    for i in episode_ids:
        obs = ep.episode(int(i))["observations"]
        for row, d in enumerate(dims, start=1):
            fig.add_trace(go.Scatter(y=obs[:, d], mode="lines", name=f"episode {i}",
                                     legendgroup=str(i), showlegend=row == 1), row=row, col=1)
    fig.update_layout(template="plotly_white", height=170 * len(dims), xaxis_title="step")
    return fig


def frame_strip(frames: np.ndarray, steps=None, title: str = "rollout"):
    """A row of rendered frames."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    steps = list(range(len(frames))) if steps is None else list(steps)
    fig = make_subplots(rows=1, cols=len(frames), subplot_titles=[f"t={s}" for s in steps],
                        horizontal_spacing=0.005)
    for i, frame in enumerate(frames, start=1):
        fig.add_trace(go.Image(z=frame), row=1, col=i)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=220, margin=dict(l=5, r=5, t=60, b=5))
    return fig


def remaining_budget_curves(costs_to_go: np.ndarray, episode_cost: float, budgets, title: str = ""):
    """CTGDA along one episode: ``b_t = C_t + (b - C_0)`` for several budgets, with ``C_t``."""
    import plotly.graph_objects as go

    from tcdp_lib.method.ctgda import relabel

    fig = go.Figure()
    t = np.arange(len(costs_to_go))
    fig.add_trace(go.Scatter(x=t, y=costs_to_go, name="cost-to-go C_t", line=dict(color="black", width=3)))
    for b in budgets:
        rel = relabel(costs_to_go, episode_cost, b)
        name = f"b = {b:g}" + ("" if rel.keep.all() else " (infeasible: pair dropped)")
        fig.add_trace(go.Scatter(x=t, y=rel.remaining_budget, name=name,
                                 line=dict(dash="solid" if rel.keep.all() else "dot")))
    fig.update_layout(title=title, xaxis_title="step t", yaxis_title="remaining budget b_t",
                      template="plotly_white", height=380)
    return fig


def histograms_by_budget(values_by_budget: dict, title: str, xaxis: str, nbins: int = 30):
    """One overlaid histogram per budget (``{budget: values}``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for (b, values), color in zip(values_by_budget.items(), BUDGET_COLORS * 3):
        fig.add_trace(go.Histogram(x=values, name=f"b = {b:g} ({len(values)} episodes)", nbinsx=nbins,
                                   opacity=0.55, marker_color=color, histnorm="probability density"))
    fig.update_layout(barmode="overlay", title=title, xaxis_title=xaxis, template="plotly_white", height=340)
    return fig


def loss_curves(history: list[dict], title: str = "training losses"):
    """Diffusion, energy and inverse-dynamics losses over steps (log scale)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    steps = [h["step"] for h in history]
    for key in ("diffusion", "energy", "inv"):
        fig.add_trace(go.Scatter(x=steps, y=[h[key] for h in history], mode="lines", name=key))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", yaxis_type="log",
                      template="plotly_white", height=340)
    return fig


class LiveLosses:
    """A loss figure that redraws while training runs (a FigureWidget in Jupyter).

    Use ``callback=live.update`` with :func:`tcdp_lib.runs.train.train_tcdp`. Without a widget
    front end (papermill), ``show()`` after training draws the final curves.
    """

    def __init__(self, title: str = "training losses (live)"):
        import plotly.graph_objects as go

        self.history: list[dict] = []
        try:
            self.widget = go.FigureWidget(loss_curves([], title))
        except Exception:  # noqa: BLE001 - no ipywidgets front end
            self.widget = None

    def update(self, record: dict) -> None:
        self.history.append(record)
        if self.widget is not None:
            with self.widget.batch_update():
                for trace, key in zip(self.widget.data, ("diffusion", "energy", "inv")):
                    trace.x = [h["step"] for h in self.history]
                    trace.y = [h[key] for h in self.history]


def planned_states(data_states: np.ndarray, plans_by_budget: dict, dims=(0, 1), title: str = ""):
    """Planned state trajectories (one colour per budget) over the dataset's state cloud."""
    import plotly.graph_objects as go

    i, j = dims
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=data_states[:, i], y=data_states[:, j], mode="markers", name="dataset states",
                               marker=dict(size=2, color="rgba(120,120,120,0.25)")))
    for (b, plans), color in zip(plans_by_budget.items(), BUDGET_COLORS * 3):
        for k, plan in enumerate(plans):
            fig.add_trace(go.Scatter(x=plan[:, i], y=plan[:, j], mode="lines+markers", name=f"b = {b:g}",
                                     legendgroup=str(b), showlegend=k == 0, marker=dict(size=3),
                                     line=dict(color=color, width=2)))
    fig.update_layout(title=title, xaxis_title=f"state[{i}]", yaxis_title=f"state[{j}]",
                      template="plotly_white", height=460)
    return fig
