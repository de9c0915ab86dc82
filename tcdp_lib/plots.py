"""Plotly figures the notebooks share. Figures only: every number comes from the library."""

from __future__ import annotations

import numpy as np

from tcdp_lib.data.frontier import episodes_frontier
from tcdp_lib.data.scores import SAFE_NORMALIZED_COST

BUDGET_COLORS = ("#2ca02c", "#ff7f0e", "#d62728")


def setup_notebook() -> None:
    """Render figures as the plotly mimetype only: JupyterLab draws it (the jupyterlab-plotly
    extension that plotly installs) and a saved notebook holds each figure's JSON once, with no
    copy of plotly.js. The report's HTML export draws the same JSON with one shared plotly.js
    (``tcdp_lib.runs.report``)."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype"


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
    best = episodes_frontier(ep).r_max(grid, infeasible="nan")
    fig.add_trace(go.Scatter(x=grid, y=best, mode="lines", name="feasible frontier",
                             line=dict(color="black", shape="hv")))
    for b, color in zip(dataset.meta.budgets, BUDGET_COLORS):
        fig.add_vline(x=b, line=dict(color=color, dash="dash"), annotation_text=f"b={b:g}")
    fig.update_layout(title=title or f"{dataset.task.task_id}: episodes", xaxis_title="episode cost C",
                      yaxis_title="episode reward R", template="plotly_white", height=420)
    return fig


def _binned(values, bins: int, name: str):
    """A histogram of ``values`` counted here, drawn as bars: the figure holds ``bins`` counts,
    not every value (a dataset's per-step arrays would make megabytes of figure)."""
    import plotly.graph_objects as go

    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name=name,
                  hovertemplate="%{x:.3g}: %{y} steps<extra></extra>")


def step_histograms(dataset):
    """Histograms of per-step reward and per-step cost."""
    from plotly.subplots import make_subplots

    ep = dataset.episodes
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per-step reward", "per-step cost"))
    fig.add_trace(_binned(ep.rewards, 60, "reward"), row=1, col=1)
    fig.add_trace(_binned(ep.costs, 20, "cost"), row=1, col=2)
    fig.update_yaxes(title_text="steps", row=1, col=1)
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


def _png_source(frame: np.ndarray) -> str | None:
    """An RGB frame as a PNG data URI (rendered frames: 20-50 times smaller in a figure than
    the raw pixels); ``None`` without Pillow (installed with matplotlib and MetaDrive)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    import base64
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def frame_strip(frames: np.ndarray, steps=None, title: str = "rollout"):
    """A row of rendered frames (each a PNG in the figure)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    steps = list(range(len(frames))) if steps is None else list(steps)
    fig = make_subplots(rows=1, cols=len(frames), subplot_titles=[f"t={s}" for s in steps],
                        horizontal_spacing=0.005)
    for i, frame in enumerate(frames, start=1):
        source = _png_source(frame)
        fig.add_trace(go.Image(z=frame) if source is None else go.Image(source=source), row=1, col=i)
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


def planned_states(data_states: np.ndarray, plans_by_budget: dict, dims=(0, 1), title: str = "",
                   max_points: int = 8000):
    """Planned state trajectories (one colour per budget) over the dataset's state cloud
    (thinned to ``max_points``: the whole dataset would make megabytes of figure)."""
    import plotly.graph_objects as go

    i, j = dims
    fig = go.Figure()
    cloud = _thin(data_states, max_points)
    fig.add_trace(go.Scattergl(x=cloud[:, i], y=cloud[:, j], mode="markers", name="dataset states",
                               marker=dict(size=2, color="rgba(120,120,120,0.25)")))
    for (b, plans), color in zip(plans_by_budget.items(), BUDGET_COLORS * 3):
        for k, plan in enumerate(plans):
            fig.add_trace(go.Scatter(x=plan[:, i], y=plan[:, j], mode="lines+markers", name=f"b = {b:g}",
                                     legendgroup=str(b), showlegend=k == 0, marker=dict(size=3),
                                     line=dict(color=color, width=2)))
    fig.update_layout(title=title, xaxis_title=f"state[{i}]", yaxis_title=f"state[{j}]",
                      template="plotly_white", height=460)
    return fig


# --------------------------------------------------------------------------------------------
# The interactive budget planner (notebook 05, tcdp_lib.widgets)
# --------------------------------------------------------------------------------------------

def mime_bundle(fig) -> dict:
    """What ``fig.show()`` displays, as a mime bundle, to update a display in place
    (``handle.update(bundle, raw=True)``), with the renderers of :func:`setup_notebook`."""
    import plotly.io as pio

    return pio.renderers._build_mime_bundle(fig.to_dict())


def placeholder(text: str, height: int = 420):
    """An empty figure holding ``text``: the place a figure will be drawn."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template="plotly_white", height=height)
    return fig


def _thin(states: np.ndarray, max_points: int) -> np.ndarray:
    """Every ``k``-th row so at most ``max_points`` remain (light figures redraw fast)."""
    states = np.asarray(states)
    return states[:: max(1, int(np.ceil(len(states) / max(1, max_points))))]


def plan_samples(data_states: np.ndarray, plan, env: int = 0, dims=(0, 1), executed: np.ndarray | None = None,
                 title: str = "", max_points: int = 4000):
    """The sampled plans of environment ``env`` of a ``Plan`` (thin lines), the chosen one (highest
    predicted value) highlighted, over the dataset's state cloud (thinned to ``max_points``);
    ``executed (T, obs_dim)`` adds the path the policy took."""
    import plotly.graph_objects as go

    i, j = dims
    states, values, chosen = plan.states[env], plan.values[env], int(plan.chosen[env])  # (S, H, C), (S,)
    cloud = _thin(data_states, max_points)
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=cloud[:, i], y=cloud[:, j], mode="markers", name="dataset states",
                               marker=dict(size=2, color="rgba(120,120,120,0.25)"), hoverinfo="skip"))
    others = [k for k in range(len(states)) if k != chosen]
    for n, k in enumerate(others):
        fig.add_trace(go.Scatter(x=states[k, :, i], y=states[k, :, j], mode="lines", name="other samples",
                                 legendgroup="others", showlegend=n == 0,
                                 line=dict(color="rgba(31,119,180,0.5)", width=1.5),
                                 hovertemplate=f"sample {k}: value {values[k]:.3f}<extra></extra>"))
    if executed is not None:
        executed = np.asarray(executed)
        fig.add_trace(go.Scatter(x=executed[:, i], y=executed[:, j], mode="lines", name="executed path",
                                 line=dict(color="black", width=2, dash="dot")))
    fig.add_trace(go.Scatter(x=states[chosen, :, i], y=states[chosen, :, j], mode="lines+markers",
                             name=f"chosen plan (value {values[chosen]:.3f})", marker=dict(size=4),
                             line=dict(color="#d62728", width=3)))
    fig.add_trace(go.Scatter(x=[states[chosen, 0, i]], y=[states[chosen, 0, j]], mode="markers", name="start",
                             marker=dict(symbol="star", size=14, color="black")))
    fig.update_layout(title=title, xaxis_title=f"state[{i}]", yaxis_title=f"state[{j}]", template="plotly_white",
                      height=440)
    return fig


def rollout_panel(rollout, title: str = "", steps: int | None = None):
    """Cumulative cost against the budget line, and cumulative reward, along a ``Rollout``.

    ``steps``: the step axis spans ``[0, steps]`` (a rollout drawn while it runs keeps its axis;
    ``None``: the rollout's length)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    t = np.arange(1, rollout.length + 1)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("cumulative cost", "cumulative reward"))
    fig.add_trace(go.Scatter(x=t, y=rollout.cum_cost, mode="lines", name="cost spent", line=dict(color="#d62728")),
                  row=1, col=1)
    fig.add_hline(y=rollout.budget, line=dict(color="black", dash="dash"), annotation_text=f"budget {rollout.budget:g}",
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=rollout.cum_reward, mode="lines", name="reward", line=dict(color="#1f77b4")),
                  row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    if steps:
        fig.update_xaxes(range=[0, steps])
        top = max(rollout.budget, float(rollout.cum_cost[-1]) if rollout.length else 0.0)
        fig.update_yaxes(range=[0, 1.1 * top + 1], row=1, col=1)  # the budget line stays in view
    fig.update_layout(title=title or f"b = {rollout.budget:g}: reward {rollout.total_reward:.1f}, "
                                     f"cost {rollout.total_cost:g} in {rollout.length} steps",
                      template="plotly_white", height=420, showlegend=False)
    return fig


def panel_figures(data_states: np.ndarray, replan, rollout=None, dims=(0, 1), max_points: int = 4000):
    """The budget panel's two figures from a ``ReplanResult`` and an optional ``Rollout``:
    ``(plan samples with the executed path, rollout panel or None)``."""
    executed = None if rollout is None else rollout.observations
    b = float(np.asarray(replan.budget).reshape(-1)[0])
    plan_fig = plan_samples(data_states, replan.plan, dims=dims, executed=executed, max_points=max_points,
                            title=f"{replan.plan.states.shape[1]} sampled plans at b = {b:g} "
                                  f"({replan.wall_ms:.0f} ms)")
    return plan_fig, (None if rollout is None else rollout_panel(rollout))


def budget_sweep_curve(points, dataset, title: str = "", mark: float | None = None):
    """Mean episode cost and reward (± one standard deviation over episodes) against the budget.

    Left: cost with the line ``cost = budget``. Right: reward with the dataset's episodes at
    their own cost and the feasible frontier (best dataset reward with ``C <= b``) for context.
    ``mark``: a budget to mark on both curves (a vertical line, and a diamond at the cost and
    reward the sweep puts there, ``interactive.sweep_at``), as the budget panel does.
    """
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    ep = dataset.episodes
    b = np.array([p.budget for p in points])
    top = max(float(b.max()), max(dataset.meta.budgets))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("episode cost vs budget", "episode reward vs budget"))
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="cost = budget",
                             line=dict(color="black", dash="dash")), row=1, col=1)
    fig.add_trace(go.Scatter(x=b, y=[p.cost for p in points], mode="lines+markers", name="TCDP cost",
                             error_y=dict(type="data", array=[p.cost_std for p in points]),
                             line=dict(color="#d62728")), row=1, col=1)
    fig.add_trace(go.Scattergl(x=ep.cost_returns, y=ep.returns, mode="markers", name="dataset episodes (at C)",
                               marker=dict(size=4, color="rgba(120,120,120,0.35)")), row=1, col=2)
    grid = np.linspace(0, top, 200)
    best = episodes_frontier(ep).r_max(grid, infeasible="nan")
    fig.add_trace(go.Scatter(x=grid, y=best, mode="lines", name="dataset frontier",
                             line=dict(color="black", shape="hv")), row=1, col=2)
    fig.add_trace(go.Scatter(x=b, y=[p.reward for p in points], mode="lines+markers", name="TCDP reward",
                             error_y=dict(type="data", array=[p.reward_std for p in points]),
                             line=dict(color="#1f77b4")), row=1, col=2)
    if mark is not None:
        from tcdp_lib.runs.interactive import sweep_at

        cost, reward = sweep_at(points, mark)
        top = max(top, float(mark))
        for col, y, name in ((1, cost, "cost"), (2, reward, "reward")):
            fig.add_vline(x=mark, line=dict(color="#2ca02c", dash="dot"), row=1, col=col)
            fig.add_trace(go.Scatter(x=[mark], y=[y], mode="markers", name=f"b = {mark:g}: {name} {y:.1f}",
                                     marker=dict(symbol="diamond", size=12, color="#2ca02c")), row=1, col=col)
    pad = 0.05 * top + 1
    fig.update_xaxes(title_text="budget b", range=[-pad, top + pad])
    fig.update_yaxes(title_text="episode cost C", row=1, col=1)
    fig.update_yaxes(title_text="episode reward R", row=1, col=2)
    fig.update_layout(title=title or f"{dataset.task.task_id}: budget sweep", template="plotly_white", height=420)
    return fig


def beta_sweep_curve(frame, title: str = ""):
    """Mean episode cost and reward (± one standard deviation) against the energy guidance scale
    ``beta`` at one budget (``frame``: ``tcdp_lib.runs.diagnose.beta_sweep``), with the budget line."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    fig = make_subplots(rows=1, cols=2, subplot_titles=("episode cost vs beta", "episode reward vs beta"))
    beta = frame["beta"].to_numpy()
    budget = float(frame["budget"].iloc[0])
    fig.add_trace(go.Scatter(x=[beta.min(), beta.max()], y=[budget, budget], mode="lines", name=f"budget {budget:g}",
                             line=dict(color="black", dash="dash")), row=1, col=1)
    fig.add_trace(go.Scatter(x=beta, y=frame["cost"], mode="lines+markers", name="cost",
                             error_y=dict(type="data", array=frame["cost_std"]), line=dict(color="#d62728")), row=1, col=1)
    fig.add_trace(go.Scatter(x=beta, y=frame["reward"], mode="lines+markers", name="reward",
                             error_y=dict(type="data", array=frame["reward_std"]), line=dict(color="#1f77b4")),
                  row=1, col=2)
    fig.update_xaxes(title_text="beta")
    fig.update_yaxes(title_text="episode cost C", row=1, col=1)
    fig.update_yaxes(title_text="episode reward R", row=1, col=2)
    fig.update_layout(title=title or f"energy guidance at b = {budget:g}", template="plotly_white", height=380)
    return fig


def loss_by_k_curve(frame, title: str = ""):
    """Denoising loss per noise level with the true, null and shuffled budget condition
    (``frame``: ``tcdp_lib.runs.diagnose.denoising_loss_by_k``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for col, name, color in (("loss_cond", "true budget", "#d62728"), ("loss_uncond", "no budget (null)", "#7f7f7f"),
                             ("loss_shuffled", "shuffled budgets", "#1f77b4")):
        fig.add_trace(go.Scatter(x=frame["k"], y=frame[col], mode="lines+markers", name=name, line=dict(color=color)))
    fig.update_xaxes(title_text="noise level k")
    fig.update_yaxes(title_text="epsilon loss", type="log")
    fig.update_layout(title=title or "does the budget condition help the denoiser?", template="plotly_white", height=360)
    return fig


METHOD_COLORS = {"tcdp": "#d62728", "trebi": "#9467bd", "cdd": "#1f77b4", "bc_safe": "#2ca02c", "cdt": "#ff7f0e"}
BUDGET_SYMBOLS = ("circle", "square", "diamond")


def benchmark_scatter(dataset, frame, title: str = ""):
    """Each method at each budget (mean episode cost and reward over its seeds) over the
    dataset's episodes, with the budget lines and the dataset's feasible frontier.

    ``frame``: ``runs.benchmark.results_frame`` rows of this task."""
    import plotly.graph_objects as go

    fig = cost_reward_scatter(dataset, title or f"{dataset.task.task_id}: methods against the data")
    fig.data[0].marker.color = "rgba(150,150,150,0.35)"
    fig.data[0].name = "dataset episodes"
    means = frame.groupby(["method", "budget"], sort=False)[["cost", "reward"]].mean().reset_index()
    for method, rows in means.groupby("method", sort=False):
        fig.add_trace(go.Scatter(
            x=rows["cost"], y=rows["reward"], mode="markers+lines", name=method,
            line=dict(color=METHOD_COLORS.get(method), width=1, dash="dot"),
            marker=dict(size=11, color=METHOD_COLORS.get(method), line=dict(color="white", width=1),
                        symbol=[BUDGET_SYMBOLS[i % 3] for i in range(len(rows))]),
            text=[f"b={b:g}" for b in rows["budget"]],
            hovertemplate=f"{method} %{{text}}<br>cost %{{x:.1f}}<br>reward %{{y:.1f}}<extra></extra>",
        ))
    return fig


def benchmark_bars(table, task: str, title: str = ""):
    """Normalised reward and cost of every method per budget for one task (``benchmark_table``
    rows), the cost threshold 1 drawn; error bars are the standard deviation over seeds."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    rows = table[table["task"] == task]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("normalised reward", "normalised cost (safe <= 1)"))
    for method, r in rows.groupby("method", sort=False, observed=True):
        x = [f"b={b:g}" for b in r["budget"]]
        color = METHOD_COLORS.get(str(method))
        fig.add_trace(go.Bar(x=x, y=r["reward"], name=str(method), marker_color=color, legendgroup=str(method),
                             error_y=dict(type="data", array=r["reward_std"].fillna(0))), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=r["cost"], name=str(method), marker_color=color, legendgroup=str(method),
                             showlegend=False, error_y=dict(type="data", array=r["cost_std"].fillna(0))),
                      row=1, col=2)
    fig.add_hline(y=1.0, line=dict(color="black", dash="dash"), row=1, col=2)
    fig.update_layout(barmode="group", title=title or task, template="plotly_white", height=380)
    return fig


def beta_budget_heatmaps(grid, task: str, title: str = ""):
    """The ablation study's beta sweep for one task: mean normalised reward (left) and cost
    (right) over seeds, beta down, budget across (``runs.ablations.beta_grid`` rows), each cell
    written out; a cost above 1 (unsafe) is marked with a cross."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    g = grid[grid["task"] == task]
    reward = g.pivot(index="beta", columns="budget", values="reward").sort_index()
    cost = g.pivot(index="beta", columns="budget", values="cost").sort_index()
    x = [f"b={b:g}" for b in reward.columns]
    y = [f"beta {b:g}" for b in reward.index]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("normalised reward", "normalised cost (x: above 1, unsafe)"),
                        horizontal_spacing=0.16)
    fig.add_trace(go.Heatmap(z=reward.to_numpy(), x=x, y=y, colorscale="Blues", colorbar=dict(x=0.42),
                             text=np.vectorize(lambda v: f"{v:.3f}")(reward.to_numpy()), texttemplate="%{text}",
                             hovertemplate="%{y}, %{x}: reward %{z:.3f}<extra></extra>"), row=1, col=1)
    marks = np.vectorize(lambda v: f"{v:.2f}" + (" x" if v > SAFE_NORMALIZED_COST else ""))(cost.to_numpy())
    fig.add_trace(go.Heatmap(z=cost.to_numpy(), x=x, y=y, colorscale="Reds", zmin=0, zmax=max(1.5, float(np.nanmax(cost.to_numpy()))),
                             text=marks, texttemplate="%{text}",
                             hovertemplate="%{y}, %{x}: cost %{z:.2f}<extra></extra>"), row=1, col=2)
    fig.update_layout(title=title or f"{task}: beta x budget", template="plotly_white", height=120 + 60 * len(y))
    return fig
