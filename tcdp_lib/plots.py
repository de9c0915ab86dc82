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
