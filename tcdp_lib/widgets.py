"""ipywidgets controls for the interactive budget planner (notebook 05).

The panel: its controls, their ranges (:func:`control_ranges`, from the model's config and the
data) and its task choices (:func:`available_tasks`), and two output areas. Every other number
shown comes from a call into :mod:`tcdp_lib.runs.interactive` (planning, rollouts, timings) and
every figure from :mod:`tcdp_lib.plots`. Sliders use ``continuous_update=False``: a plan is made
when the slider is released, not while it moves.

A release draws the sampled plans first and clears the old rollout at once; the rollout (the
whole episode by default, its first plan the one just drawn) then runs in a background thread
(:func:`tcdp_lib.runs.interactive.start_rollout`) and redraws its figure every ``stream_every``
steps; the next release cancels it (MetaDrive's simulator stays on the main thread: there the
rollout streams in the release's callback, :data:`FOREGROUND_FAMILIES`). Each control carries a one-line explanation
(:data:`EXPLANATIONS`).

The figures go to two IPython display areas (``display(..., display_id=True)``) that each
release updates in place, not to ``ipywidgets.Output`` widgets: headless runs (papermill,
nbclient) imitate an Output widget by sending its state back to the kernel, and executions
that do so can hang (jupyter/nbclient#312); display updates are plain output messages, and an
exported report keeps the last figures. JupyterLab's plotly renderer ignores updates of a figure
it has drawn: see :meth:`BudgetPlannerPanel._show`.

Importing this module loads ipywidgets only; torch, the simulators and the library's planning
code load when a panel is built. Nothing in ``tcdp_lib`` imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W

W_CFG_SLIDER_MAX = 5.0
"""The CFG slider reaches at least this, or twice the model's trained ``w_cfg``."""
BETA_SLIDER_MAX = 1.0
"""The energy-guidance slider reaches at least this, or ten times the model's trained ``beta``."""

EXPLANATIONS = {
    "budget": "the episode's cost budget, in cost units per episode (BallCircle: unsafe steps); "
              "the planner aims to spend at most b",
    "w_cfg": "classifier-free guidance on the budget: 0 ignores it, 1 is the conditional model, "
             "above 1 pushes the plans further toward the budget's kind",
    "beta": "energy guidance: pulls plans toward higher predicted reward, predicted cost beyond "
            "the budget penalised; 0 switches it off",
    "sampling_steps": "denoising steps per plan: fewer is faster and coarser",
    "n_samples": "plans sampled per replan; the best predicted one within the budget is kept",
    "rollout_steps": "steps of the rollout drawn below (default: the whole episode), streamed as it runs",
    "seed": "the planner's noise: another seed gives other samples",
}
"""The one-line explanation under each control of the panel."""

FOREGROUND_FAMILIES = frozenset({"metadrive"})
"""Task families whose simulator must run in the main thread (MetaDrive installs signal
handlers): their rollouts stream in the release's callback and cannot be cancelled."""


# --------------------------------------------------------------------------------------------
# The controls' ranges and the task choices
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ControlRanges:
    """Ranges and starting values of the panel's controls, from the model and the data."""

    budget_max: float
    """The model's budget prior reaches ``b_max``; beyond it the condition is extrapolated."""
    budget: float
    """Starting budget: the middle DSRL budget of the task."""
    w_cfg: float
    w_cfg_max: float
    beta: float
    beta_max: float
    sampling_steps: int
    """The model config's sampler steps."""
    max_sampling_steps: int
    """The number of diffusion steps the model was trained with."""
    episode_steps: int
    """The task's time limit."""
    budget_step: float = 1.0
    """Budget slider step (costs count unsafe steps)."""
    max_samples: int = 16
    """Most plans per replan the sample-count slider offers."""
    slider_resolution: int = 100
    """Guidance sliders move in steps of ``max / slider_resolution``."""

    @property
    def w_cfg_step(self) -> float:
        return self.w_cfg_max / self.slider_resolution

    @property
    def beta_step(self) -> float:
        return self.beta_max / self.slider_resolution


def control_ranges(model, dataset) -> ControlRanges:
    """Slider ranges: budgets up to the model's ``b_max`` (else twice the largest DSRL budget),
    guidance scales up to :data:`W_CFG_SLIDER_MAX` / :data:`BETA_SLIDER_MAX` or beyond the trained
    values. ``model``: a :class:`~tcdp_lib.method.model.TCDP` (only its config is read)."""
    mc = model.config
    budgets = dataset.meta.budgets
    b_max = mc.budget.b_max if mc.budget.b_max is not None else 2 * max(budgets)
    return ControlRanges(
        budget_max=float(b_max), budget=float(budgets[len(budgets) // 2]),
        w_cfg=float(mc.guidance.w_cfg), w_cfg_max=float(max(W_CFG_SLIDER_MAX, 2 * mc.guidance.w_cfg)),
        beta=float(mc.guidance.beta), beta_max=float(max(BETA_SLIDER_MAX, 10 * mc.guidance.beta)),
        sampling_steps=int(mc.diffusion.sampling_steps), max_sampling_steps=int(mc.diffusion.n_diffusion_steps),
        episode_steps=int(dataset.task.max_episode_steps),
    )


def available_tasks() -> list[str]:
    """Task ids with a local dataset file (the panel's task choices)."""
    from tcdp_lib.data.dataset import resolve_path
    from tcdp_lib.data.tasks import TASKS

    return [t for t in TASKS if resolve_path(t) is not None]


# --------------------------------------------------------------------------------------------
# The panel
# --------------------------------------------------------------------------------------------


class BudgetPlannerPanel:
    """A budget slider, guidance controls, a task choice and a replan button, each control with a
    one-line explanation, above three figure areas: the sampled plans (chosen one highlighted,
    executed path dotted), the rollout's cumulative cost against the budget line and cumulative
    reward, and the budget response (a budget sweep's cost and reward against the budget) with
    the slider's budget marked on it, once a sweep is given (:meth:`set_response`).

    ``panel = BudgetPlannerPanel(dataset, model)``; ``display(panel)`` shows the controls and the
    figure areas; ``panel.update()`` draws once (afterwards, releasing a control redraws). An
    update draws the plans and clears the rollout figure before it returns; the rollout then
    streams into its figure from a background thread (``panel.wait()`` waits for it; the next
    update cancels it). Without a display (tests, scripts) the figures are computed and not shown.
    """

    def __init__(self, dataset, model, *, model_source: str = "", tasks=None, n_samples: int = 8,
                 rollout_steps: int | None = None, replan_every: int | None = None, seed: int = 0,
                 start_obs_seed: int = 0, dims=(0, 1), stream_every: int = 20):
        self.dataset, self.model, self.model_source = dataset, model, model_source
        self.dims, self.replan_every, self.start_obs_seed = tuple(dims), replan_every, start_obs_seed
        self.stream_every = int(stream_every)
        self.last = None
        """The last finished release, a :class:`~tcdp_lib.runs.interactive.PanelUpdate` whose
        ``plan_s`` is release -> plans drawn and ``total_s`` release -> last redraw (``None``
        before the first)."""
        self.rollout_task = None
        """The :class:`~tcdp_lib.runs.interactive.RolloutTask` of the last release (``None``: none)."""
        self.response = None
        """The budget sweep (``interactive.budget_sweep`` points) the slider's budget is marked on
        (``None`` until :meth:`set_response`; cleared when the task changes)."""
        self._quiet = False
        task = dataset.task.task_id
        style = {"description_width": "110px"}
        release = dict(continuous_update=False, style=style, layout=W.Layout(width="340px"))
        self.task = W.Dropdown(options=sorted(set(tasks or [task]) | {task}), value=task, description="task",
                               style=style)
        self.budget = W.FloatSlider(description="budget b", readout_format=".0f", **release)
        self.w_cfg = W.FloatSlider(description="w_cfg (CFG)", readout_format=".2f", **release)
        self.beta = W.FloatSlider(description="beta (energy)", readout_format=".3f", **release)
        self.sampling_steps = W.IntSlider(description="sampling steps", min=1, **release)
        self.n_samples = W.IntSlider(description="samples", min=1, **release)
        self.rollout_steps = W.IntSlider(description="rollout steps", min=0, **release)
        self.seed = W.IntText(value=seed, description="seed", continuous_update=False, style=style,
                              layout=W.Layout(width="200px"))
        self.replan_button = W.Button(description="replan", button_style="primary", icon="refresh")
        self.status = W.HTML()
        self.plan_area = self.rollout_area = self.response_area = None
        """IPython display handles of the three figures (set by ``display(panel)``)."""
        self._set_ranges(rollout_steps, n_samples)

        for w in (self.budget, self.w_cfg, self.beta, self.sampling_steps, self.n_samples, self.rollout_steps,
                  self.seed):
            w.observe(self._on_release, names="value")
        self.task.observe(self._on_task, names="value")
        self.replan_button.on_click(lambda _: self.update())
        self.explanations = {name: W.HTML(f"<small>{text}</small>", layout=W.Layout(width="340px"))
                             for name, text in EXPLANATIONS.items()}
        """One line under each control (:data:`EXPLANATIONS`)."""

        def explained(name):
            return W.VBox([getattr(self, name), self.explanations[name]])

        self.widget = W.VBox([
            W.HBox([self.task, explained("budget"), self.replan_button]),
            W.HBox([explained("w_cfg"), explained("beta"), explained("sampling_steps")]),
            W.HBox([explained("n_samples"), explained("rollout_steps"), explained("seed")]),
            self.status,
        ])

    def _ipython_display_(self) -> None:
        """``display(panel)``: the controls, then the three figure areas that releases update
        (placeholder figures first, so plotly.js is on the page before the areas)."""
        from IPython.display import display

        from tcdp_lib.plots import mime_bundle, placeholder

        display(self.widget)
        self.plan_area = display(mime_bundle(placeholder("the sampled plans appear here")), raw=True,
                                 display_id=True)
        self.rollout_area = display(mime_bundle(placeholder("the rollout appears here")), raw=True,
                                    display_id=True)
        self.response_area = display(mime_bundle(self._response_figure(float(self.budget.value))), raw=True,
                                     display_id=True)

    # -- controls ------------------------------------------------------------------------------

    def _set_ranges(self, rollout_steps=None, n_samples=None) -> None:
        """Slider ranges and values from the model and the data (:func:`control_ranges`); the
        rollout steps at ``rollout_steps`` (``None``: the whole episode)."""
        r = control_ranges(self.model, self.dataset)
        self._quiet = True
        try:
            for slider, lo, hi, step, value in (
                (self.budget, 0.0, r.budget_max, r.budget_step, r.budget),
                (self.w_cfg, 0.0, r.w_cfg_max, r.w_cfg_step, r.w_cfg),
                (self.beta, 0.0, r.beta_max, r.beta_step, r.beta),
            ):
                slider.min, slider.max = lo, hi  # min first: the old max may lie below the new min
                slider.step, slider.value = step, value
            self.sampling_steps.max = r.max_sampling_steps
            self.sampling_steps.value = r.sampling_steps
            self.n_samples.max = max(r.max_samples, n_samples or 1)
            if n_samples is not None:
                self.n_samples.value = n_samples
            self.rollout_steps.max = r.episode_steps
            self.rollout_steps.value = r.episode_steps if rollout_steps is None else min(r.episode_steps,
                                                                                        rollout_steps)
        finally:
            self._quiet = False

    def _on_release(self, _change) -> None:
        if not self._quiet:
            self.update()

    def _on_task(self, change) -> None:
        if self._quiet:
            return
        from tcdp_lib.data.dataset import load_dataset
        from tcdp_lib.runs.interactive import load_planner_model

        self.stop()
        self.status.value = f"loading {change['new']} ..."
        try:
            dataset = load_dataset(change["new"])
            loaded = load_planner_model(dataset)
        except Exception as err:  # noqa: BLE001 - shown in the panel, the previous task stays
            self._quiet = True
            self.task.value = change["old"]
            self._quiet = False
            self.status.value = f"<b>cannot switch to {change['new']}</b>: {type(err).__name__}: {err}"
            return
        self.dataset, self.model, self.model_source = dataset, loaded.model, loaded.source
        self.response = None  # the sweep was of the other task
        self._set_ranges()
        self._show(self.response_area, self._response_figure(float(self.budget.value)))
        self.update()

    # -- drawing -------------------------------------------------------------------------------

    @staticmethod
    def _show(area, fig) -> None:
        """Replace the figure in a display area (nothing without a display or a figure).

        JupyterLab's plotly renderer (jupyterlab-plotly) draws once: re-rendering an output that
        already holds a graph returns at once (plotly/plotly.py#3053), so updating the plotly
        mimetype in place leaves the old figure on screen. JupyterLab reuses an output's renderer
        only while its preferred mimetype stays the same, so the area first becomes a blank HTML
        block of the figure's height and then the figure, which gets a fresh renderer. Headless
        runs (papermill) keep the last update only.

        The figure's mime bundle is sent raw: a plotly figure displays itself through
        ``_ipython_display_``, which would append a new output instead of updating this one.
        """
        from tcdp_lib.plots import mime_bundle

        if area is not None and fig is not None:
            area.update({"text/html": f'<div style="height: {fig.layout.height or 450}px"></div>'}, raw=True)
            area.update(mime_bundle(fig), raw=True)

    def set_response(self, points) -> None:
        """Mark the slider's budget on this budget sweep (``interactive.budget_sweep`` points of the
        panel's task and model) from now on: the response figure and a line in the status."""
        points = list(points)
        if not points:
            raise ValueError("set_response needs the points of a budget sweep, got none")
        self.response = points
        self._show(self.response_area, self._response_figure(float(self.budget.value)))

    def _response_figure(self, b: float):
        from tcdp_lib import plots

        if not self.response:
            return plots.placeholder("the budget response appears here once a budget sweep is given "
                                     "(panel.set_response(points), notebook 05's sweep)", height=200)
        return plots.budget_sweep_curve(self.response, self.dataset, mark=b,
                                        title=f"budget response: where b = {b:g} lies on the sweep")

    def _response_line(self, b: float) -> str:
        """`` · the sweep puts b = ... at cost ..., reward ...`` (empty without a sweep)."""
        if not self.response:
            return ""
        from tcdp_lib.runs.interactive import sweep_at

        cost, reward = sweep_at(self.response, b)
        return f" &middot; the budget sweep puts b = {b:g} at cost {cost:.1f}, reward {reward:.1f}"

    def stop(self) -> None:
        """Cancel the running rollout and wait for it to stop (after its current step)."""
        task = self.rollout_task
        if task is not None:
            task.cancel()
            task.join()

    def wait(self, timeout: float | None = None):
        """Wait for the running rollout to end (at most ``timeout`` seconds); returns :attr:`last`."""
        if self.rollout_task is not None:
            self.rollout_task.join(timeout)
        return self.last

    def _model_line(self) -> str:
        return f"<br><small>model: {self.model_source}</small>" if self.model_source else ""

    def update(self):
        """Cancel the running rollout, plan at the controls' values, draw the plans, clear the
        rollout figure and start the rollout that streams into it (a background thread reusing
        the plan as its first one). Returns the plan, a
        :class:`~tcdp_lib.runs.interactive.ReplanResult` (``None`` when planning failed: see
        ``status``); :attr:`last` holds the release once its rollout has ended."""
        import time

        from tcdp_lib import plots
        from tcdp_lib.runs.interactive import PanelUpdate, replan, start_observation, start_rollout

        t0 = time.perf_counter()
        self.stop()
        self.rollout_task = None
        b = float(self.budget.value)
        task_id = self.dataset.task.task_id
        cloud = self.dataset.episodes.observations
        settings = dict(beta=self.beta.value, w_cfg=self.w_cfg.value, sampling_steps=self.sampling_steps.value,
                        seed=self.seed.value, n_samples=self.n_samples.value)
        self.status.value = f"planning at b = {b:g} ..."
        try:
            rp = replan(self.model, start_observation(task_id, self.start_obs_seed), b, **settings)
            self._show(self.plan_area, plots.panel_figures(cloud, rp, dims=self.dims)[0])
        except Exception as err:  # noqa: BLE001 - shown in the panel instead of killing the callback
            self.status.value = f"<b>error</b>: {type(err).__name__}: {err}"
            return None
        plan_s = time.perf_counter() - t0
        if self.response:
            self._show(self.response_area, self._response_figure(b))
        steps = int(self.rollout_steps.value)
        head = (f"plans at b = {b:g} drawn in {1000 * plan_s:.0f} ms (plan {rp.wall_ms:.0f} ms)"
                f"{self._response_line(b)}")
        if steps == 0:
            self._show(self.rollout_area, plots.placeholder("no rollout (rollout steps = 0)"))
            self.status.value = head + self._model_line()
            self.last = PanelUpdate(replan=rp, rollout=None, figures=None, plan_s=plan_s, total_s=plan_s)
            return rp
        self._show(self.rollout_area, plots.placeholder(f"rolling out at b = {b:g} ..."))
        self.status.value = f"{head} &middot; rolling out ...{self._model_line()}"

        def progress(ro):
            if task.cancelled:
                return
            self._show(self.rollout_area, plots.rollout_panel(
                ro, title=f"b = {b:g}: step {ro.length} of {steps}, cost {ro.total_cost:g}", steps=steps))
            self.status.value = (f"{head} &middot; rollout step {ro.length} of {steps}: cost {ro.total_cost:g} "
                                 f"(budget {b:g} cost units per episode){self._model_line()}")

        def done(ro):
            if ro.cancelled:
                return  # a newer release owns the figures
            figs = plots.panel_figures(cloud, rp, ro, dims=self.dims)
            rollout_fig = plots.rollout_panel(ro, steps=steps)
            self._show(self.plan_area, figs[0])
            self._show(self.rollout_area, rollout_fig)
            total_s = time.perf_counter() - t0
            over = "over" if ro.total_cost > b else "within"
            self.status.value = (
                f"{head} &middot; {ro.length}-step rollout drawn {total_s:.2f} s after the release &middot; "
                f"reward {ro.total_reward:.1f}, cost {ro.total_cost:g}: {over} the budget {b:g} "
                f"(cost units per episode){self._model_line()}")
            self.last = PanelUpdate(replan=rp, rollout=ro, figures=(figs[0], rollout_fig), plan_s=plan_s,
                                    total_s=total_s)

        def failed(err):
            self.status.value = f"<b>rollout error</b>: {type(err).__name__}: {err}{self._model_line()}"

        task = start_rollout(task_id, self.model, b, on_progress=progress, progress_every=self.stream_every,
                             on_done=done, on_error=failed, start=False, steps=steps, first_plan=rp,
                             replan_every=self.replan_every, start_obs_seed=self.start_obs_seed, **settings)
        self.rollout_task = task
        if self.dataset.task.family in FOREGROUND_FAMILIES:
            task.run()  # streamed all the same; the next release waits for it
        else:
            task.start()
        return rp
