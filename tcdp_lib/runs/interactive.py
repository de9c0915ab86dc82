"""The computations behind the interactive budget planner (notebook 05 and its widget panel).

Nothing here draws or holds a widget: :mod:`tcdp_lib.widgets` (the panel: its controls and
their ranges) calls these functions when a slider is released, and the notebook's plain cells
call the same ones at a fixed budget.

- :func:`load_planner_model`: the shipped checkpoint of a task (or a given file); in smoke runs,
  a tiny model trained in seconds when there is none. Its ``source`` names the file relative to
  the checkout (``tcdp_lib.paths.display_path``), so the panel shows no machine path.
- :func:`replan`: one plan from an observation at a budget, timed.
- :func:`rollout`: one episode (or its first ``steps``) of the TCDP policy in one environment,
  with per-step traces, the plans it made and rendered frames.
- :func:`budget_sweep`: mean reward and cost of evaluation episodes at each budget.
- :func:`panel_update`: what one slider release does (plan, rollout reusing the plan, redraw), timed.
- :func:`start_rollout`: the panel's rollout in a background thread, reporting progress every few
  steps and cancelled by the next release (:class:`RolloutTask`).
- :func:`measure_latency`: :func:`panel_update` repeated; the two figures the panel targets.

Guidance settings left at ``None`` (``beta``, ``w_cfg``, ``sampling_steps``) take the model
config's values, as :class:`~tcdp_lib.planner.planner.PlannerConfig` does.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tcdp_lib.data.dataset import Dataset
from tcdp_lib.data.envs import global_numpy_seed, make_env, max_live_envs, render_frame, seeded_reset
from tcdp_lib.data.scores import SAFE_NORMALIZED_COST
from tcdp_lib.errors import check_budget
from tcdp_lib.method.model import TCDP
from tcdp_lib.paths import RUNS_DIR, display_path, shipped_model
from tcdp_lib.planner.planner import Plan, Planner, PlannerConfig
from tcdp_lib.planner.policy import TCDPPolicy, policy_config
from tcdp_lib.runs.checkpoint import load_model
from tcdp_lib.runs.evaluate import step_episodes
from tcdp_lib.runs.train import SMOKE_MODEL, SMOKE_TRAIN, RunConfig, train_tcdp

PLAN_TARGET_S = 0.5
"""Slider release -> plan ready: the panel's latency target (seconds)."""
TOTAL_TARGET_S = 3.0
"""Slider release -> plan, short rollout and figures ready: the panel's latency target (seconds)."""


# --------------------------------------------------------------------------------------------
# Model and start
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PlannerModel:
    """A model to plan with and where it came from."""

    model: TCDP
    source: str
    """Human-readable origin: ``"shipped checkpoint <path>"``, ``"<path>"`` or the smoke run, the
    path relative to the checkout's root when the file lies inside it (``display_path``)."""
    path: Path
    """The model file (as given or found: absolute for the shipped checkpoint)."""


def load_planner_model(dataset: Dataset, model_path=None, *, train_if_missing: bool = False, seed: int = 0,
                       run_dir=None) -> PlannerModel:
    """The model of ``dataset``'s task: ``model_path``, else the shipped checkpoint
    (``data/checkpoints/<task>/model.pt``).

    When that file is missing: with ``train_if_missing`` (smoke runs), train :data:`SMOKE_MODEL`
    with :data:`SMOKE_TRAIN` into ``run_dir`` (default: a new folder under ``runs/``);
    otherwise raise :class:`FileNotFoundError` saying how to make one.
    """
    task = dataset.task.task_id
    shipped = model_path is None
    path = Path(shipped_model(task) if shipped else model_path)
    shown = display_path(path)
    if path.exists():
        model, _ = load_model(path, task=task)
        return PlannerModel(model, f"shipped checkpoint {shown}" if shipped else shown, path)
    if not train_if_missing:
        what = f"the shipped checkpoint of {task}" if shipped else "the model file given as model_path"
        raise FileNotFoundError(
            f"no model file at {shown} ({what}). Train one with `tcdp train {task}` and pass "
            f"model_path='runs/train/{task}/seed0/model.pt' (or copy it to {display_path(shipped_model(task))}); "
            f"smoke=True trains a tiny model instead."
        )
    run = RunConfig(task=task, seed=seed, model=SMOKE_MODEL, train=SMOKE_TRAIN)
    if run_dir is None:
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        run_dir = tempfile.mkdtemp(prefix="tcdp-05-", dir=RUNS_DIR)
    result = train_tcdp(dataset, run, run_dir=Path(run_dir), progress=False)
    source = f"tiny smoke model trained here ({SMOKE_TRAIN.steps} steps; no file at {shown})"
    return PlannerModel(result.model, source, result.model_path)


def seeded_start(task: str, seed: int = 0):
    """A new environment of ``task`` and its first observation after :func:`seeded_reset`
    (``seed``): the same start every time, on every family; ``run_episodes`` starts its episode
    ``i`` of evaluation seed ``s`` with ``seeded_reset(env, 1000 * s + i)``.
    Returns ``(env, obs)``; the caller closes ``env``."""
    with global_numpy_seed(seed):  # building a bullet env draws from numpy's global RNG too
        env = make_env(task)
    obs, _ = seeded_reset(env, seed)
    return env, np.asarray(obs, dtype=np.float32)


def start_observation(task: str, seed: int = 0) -> np.ndarray:
    """``(obs_dim,)`` the first observation of :func:`seeded_start`.

    The start is a function of ``(task, seed)``, so it is made once per process and kept: a slider
    release then plans without building a simulator (a Safety-Gymnasium or MetaDrive env takes
    seconds to build)."""
    return _start_observation(task, int(seed)).copy()


@functools.lru_cache(maxsize=64)
def _start_observation(task: str, seed: int) -> np.ndarray:
    env, obs = seeded_start(task, seed)
    env.close()
    return obs


def _check_budget(budget) -> np.ndarray:
    """The budget (a number or one per environment) as an array, each checked by ``check_budget``."""
    b = np.asarray(budget, dtype=np.float64)
    for v in b.reshape(-1):
        check_budget(v)
    return b


def planner_config(model: TCDP, *, n_samples: int | None = None, beta=None, w_cfg=None, sampling_steps=None) -> PlannerConfig:
    """A :class:`PlannerConfig`, with ``sampling_steps`` checked against the model's diffusion steps."""
    k = model.config.diffusion.n_diffusion_steps
    if sampling_steps is not None and not 1 <= int(sampling_steps) <= k:
        raise ValueError(f"sampling_steps must lie in [1, {k}] (the model's diffusion steps), got {sampling_steps}")
    over = {} if n_samples is None else {"n_samples": int(n_samples)}
    return PlannerConfig(beta=beta, w_cfg=w_cfg, sampling_steps=None if sampling_steps is None else int(sampling_steps),
                         **over)


# --------------------------------------------------------------------------------------------
# One plan
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ReplanResult:
    """One replan and how long it took."""

    plan: Plan
    """``states (B, S, H, obs_dim)``, ``chosen (B,)``, ``values (B, S)``, ``actions (B, act_dim)``."""
    wall_ms: float
    """Planner construction and sampling, in milliseconds."""
    budget: np.ndarray
    """``(B,)`` the budgets asked for (before clipping at 0)."""
    generator_state: Any = None
    """The noise generator's state after this plan: a rollout given this plan as its first one
    (``rollout(first_plan=...)``) continues from it, so its later plans are those it would make
    had it planned the first one itself."""


def replan(model: TCDP, obs, budget, *, beta=None, w_cfg=None, sampling_steps=None, seed: int = 0,
           n_samples: int | None = None, steps_left=None) -> ReplanResult:
    """Sample ``n_samples`` plans from ``obs`` (``(obs_dim,)`` or ``(B, obs_dim)``) at ``budget``
    (a number or ``(B,)``) and keep the planner's choice (the best predicted value among the plans
    predicted within the budget); ``seed`` seeds the noise.

    ``steps_left=None`` plans as from the start of an episode, as the policy does at step 0.
    """
    obs = np.asarray(obs, dtype=np.float32)
    obs = obs[None] if obs.ndim == 1 else obs
    b = np.broadcast_to(_check_budget(budget), (obs.shape[0],)).copy()
    t0 = time.perf_counter()
    planner = Planner(model, planner_config(model, n_samples=n_samples, beta=beta, w_cfg=w_cfg,
                                            sampling_steps=sampling_steps))
    import torch

    generator = torch.Generator(device=model.obs_mean.device).manual_seed(int(seed))  # as the planner seeds an int
    plan = planner.plan(obs, b, generator=generator, steps_left=steps_left)
    return ReplanResult(plan=plan, wall_ms=1000.0 * (time.perf_counter() - t0), budget=b,
                        generator_state=generator.get_state())


# --------------------------------------------------------------------------------------------
# One episode
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Rollout:
    """One environment driven by the TCDP policy at a fixed budget."""

    task: str
    budget: float
    observations: np.ndarray
    """``(T + 1, obs_dim)``: the reset observation, then the one after each step."""
    actions: np.ndarray
    """``(T, act_dim)``."""
    rewards: np.ndarray
    """``(T,)`` per-step reward."""
    costs: np.ndarray
    """``(T,)`` per-step cost (``info["cost"]``)."""
    plan_steps: np.ndarray
    """``(P,)`` the steps at which the kept plans were made."""
    plans: tuple
    """The kept :class:`Plan` objects (batch of one environment)."""
    frames: np.ndarray | None
    """``(F, height, width, 3)`` rendered frames, or ``None`` without rendering."""
    frame_steps: np.ndarray
    """``(F,)`` the step of each frame (0: after reset)."""
    done: bool
    """The episode ended (terminated or time limit) within the steps asked for."""
    wall_s: float
    """Environment creation, planning, stepping and rendering, in seconds."""
    cancelled: bool = False
    """Stopped early by its ``cancel`` event (a newer slider release)."""
    steps: int | None = None
    """The steps asked for (``None``: the whole episode): a partial rollout reported during the
    run has ``length`` < ``steps``."""

    @property
    def length(self) -> int:
        return int(len(self.rewards))

    @property
    def cum_reward(self) -> np.ndarray:
        """``(T,)`` reward collected up to and including each step."""
        return np.cumsum(self.rewards)

    @property
    def cum_cost(self) -> np.ndarray:
        """``(T,)`` cost spent up to and including each step."""
        return np.cumsum(self.costs)

    @property
    def total_reward(self) -> float:
        return float(self.rewards.sum())

    @property
    def total_cost(self) -> float:
        return float(self.costs.sum())


def rollout(task: str, model: TCDP, budget: float, *, beta=None, w_cfg=None, sampling_steps=None, seed: int = 0,
            steps: int | None = None, n_samples: int | None = None, replan_every: int | None = None, warm_start: bool | None = None,
            plans_every: int = 10, render_every: int = 0, frame_size: tuple[int, int] = (240, 180),
            start_obs_seed: int = 0, first_plan: ReplanResult | None = None,
            on_progress: Callable[[Rollout], None] | None = None, progress_every: int = 0,
            cancel: threading.Event | None = None) -> Rollout:
    """Run :class:`TCDPPolicy` in one environment of ``task`` from ``seeded_start(task, start_obs_seed)``
    for ``steps`` steps (``None``: until the episode ends).

    ``seed`` seeds the planner's noise, so the first plan equals
    ``replan(model, start_obs, budget, seed=seed, ...)``. The first plan made at or after every
    multiple of ``plans_every`` steps is kept (0 keeps none); a frame of ``frame_size``
    ``(width, height)`` is rendered after reset and every ``render_every`` steps (0: none).

    ``first_plan``: that :func:`replan` result (same start, budget, seed and settings), used as the
    policy's plan at step 0 instead of planning it again; the rollout is the same as without it.
    ``on_progress`` gets the rollout so far every ``progress_every`` steps (0: never) before the
    last; ``cancel``, once set, stops the rollout after the current step (``cancelled`` is then
    true).
    """
    b = float(_check_budget(budget))
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1 or None (a whole episode), got {steps}")
    for name, v in (("plans_every", plans_every), ("render_every", render_every), ("progress_every", progress_every)):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    t0 = time.perf_counter()
    policy = TCDPPolicy(model, planner_config(model, n_samples=n_samples, beta=beta, w_cfg=w_cfg,
                                              sampling_steps=sampling_steps),
                        policy_config(replan_every, warm_start, seed))
    env, obs = seeded_start(task, start_obs_seed)
    try:
        policy.reset(1, b)
        if first_plan is not None:
            if first_plan.generator_state is None:
                raise ValueError("first_plan has no generator state (make it with replan())")
            policy.start_with(first_plan.plan, first_plan.generator_state)
        observations, actions, rewards, costs = [obs], [], [], []
        plans, plan_steps, next_keep = [], [], 0
        frames, frame_steps = [], []
        if render_every:
            frames.append(render_frame(env, *frame_size))
            frame_steps.append(0)
        done, cancelled = False, False
        limit = steps if steps is not None else float("inf")
        seen = [None]  # the last plan looked at

        def so_far():
            return Rollout(
                task=task, budget=b, observations=np.stack(observations),
                actions=np.stack(actions) if actions else np.zeros((0, model.act_dim), np.float32),
                rewards=np.asarray(rewards), costs=np.asarray(costs), plan_steps=np.asarray(plan_steps, dtype=int),
                plans=tuple(plans), frames=np.stack(frames) if frames else None,
                frame_steps=np.asarray(frame_steps, dtype=int), done=done, wall_s=time.perf_counter() - t0,
                cancelled=cancelled, steps=steps,
            )

        def trace(t, obs_now, action, reward, cost, ended):  # one step of the episode loop
            nonlocal next_keep, done
            if plans_every and policy.last_plan is not seen[0] and t - 1 >= next_keep:  # planned at step t - 1
                plans.append(policy.last_plan)
                plan_steps.append(t - 1)
                next_keep = ((t - 1) // plans_every + 1) * plans_every
            seen[0] = policy.last_plan
            observations.append(obs_now[0].copy())
            actions.append(np.asarray(action[0], np.float32))
            rewards.append(float(reward[0]))
            costs.append(float(cost[0]))
            done = bool(ended[0])
            if render_every and t % render_every == 0:
                frames.append(render_frame(env, *frame_size))
                frame_steps.append(t)
            if on_progress is not None and progress_every and t % progress_every == 0 and t < limit and not done:
                on_progress(so_far())

        _, _, cancelled = step_episodes([env], obs[None].copy(), policy, max_steps=limit, on_step=trace,
                                        cancel=cancel)
    finally:
        env.close()
    return so_far()


class RolloutTask:
    """A :func:`rollout` running in a background thread (:func:`start_rollout`), or in the
    caller's thread (``run()``: simulators that must stay on the main thread, MetaDrive's).

    ``cancel()`` asks it to stop after its current step; ``join()`` waits for it. ``result`` is
    the :class:`Rollout` (partial when cancelled), ``error`` the exception it raised, if any.
    ``on_done(result)`` / ``on_error(error)`` run in the thread once it ends.
    """

    def __init__(self, target: Callable[..., Rollout], kwargs: dict, on_done=None, on_error=None):
        self._cancel = threading.Event()
        self.result: Rollout | None = None
        self.error: BaseException | None = None
        self._on_done, self._on_error = on_done, on_error
        self._args = (target, kwargs)
        self._thread = threading.Thread(target=self._run, args=self._args, daemon=True, name="tcdp-panel-rollout")
        self._started = False

    def _run(self, target, kwargs) -> None:
        try:
            self.result = target(cancel=self._cancel, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to on_error, never printed from the thread
            self.error = err
            if self._on_error is not None:
                self._on_error(err)
            return
        if self._on_done is not None:
            self._on_done(self.result)

    def start(self) -> RolloutTask:
        """Run in a background thread."""
        self._started = True
        self._thread.start()
        return self

    def run(self) -> RolloutTask:
        """Run here, in the caller's thread (returns when the rollout has ended)."""
        self._run(*self._args)
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (at most ``timeout`` seconds); true when it has ended."""
        if self._started:
            self._thread.join(timeout)
        return not self._thread.is_alive()


def start_rollout(task: str, model: TCDP, budget: float, *, on_progress=None, progress_every: int = 20,
                  on_done=None, on_error=None, start: bool = True, **kwargs) -> RolloutTask:
    """Start :func:`rollout` (``kwargs``: its keywords, e.g. ``first_plan``) in a background
    thread; ``on_progress`` gets the rollout so far every ``progress_every`` steps. Returns the
    running :class:`RolloutTask` (not yet started with ``start=False``: call its ``start()``)."""
    kw = dict(kwargs, on_progress=on_progress, progress_every=progress_every)
    t = RolloutTask(functools.partial(rollout, task, model, budget), kw, on_done, on_error)
    return t.start() if start else t


# --------------------------------------------------------------------------------------------
# Budget sweep
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepPoint:
    """Evaluation episodes at one budget (means, spreads over episodes, DSRL-normalised means)."""

    budget: float
    episodes: int
    reward: float
    cost: float
    reward_std: float
    cost_std: float
    normalized_reward: float
    normalized_cost: float
    """Mean of DSRL's normalised cost (``C / b``; ``C + 1`` at ``b = 0``): at most 1 is safe."""
    episode_rewards: tuple[float, ...] = field(default=())
    episode_costs: tuple[float, ...] = field(default=())

    @property
    def safe(self) -> bool:
        return self.normalized_cost <= SAFE_NORMALIZED_COST


def sweep_at(points, budget: float) -> tuple[float, float]:
    """``(cost, reward)`` the budget sweep ``points`` puts at ``budget``: the mean episode cost and
    reward interpolated linearly between the two nearest swept budgets (the end points outside
    the swept range)."""
    pts = sorted(points, key=lambda p: p.budget)
    if not pts:
        raise ValueError("a budget sweep of at least one budget is needed, got none")
    b = [p.budget for p in pts]
    return (float(np.interp(budget, b, [p.cost for p in pts])), float(np.interp(budget, b, [p.reward for p in pts])))


def sweep_steps(task: str, dataset: Dataset, budgets, *, episodes: int, n_envs: int) -> tuple[int, int]:
    """``(lockstep steps, live environments)`` of a budget sweep at most: per budget, ``ceil(episodes
    / live)`` batches of a whole episode, ``live`` the environments stepped together
    (``max_live_envs``: MetaDrive one)."""
    live = max_live_envs(task, min(int(n_envs), int(episodes)))
    batches = -(-int(episodes) // live)
    return len(list(budgets)) * batches * dataset.task.max_episode_steps, live


def expected_sweep_s(task: str, model: TCDP, dataset: Dataset, budgets, *, episodes: int, n_envs: int = 10,
                     n_samples: int | None = None, replan_every: int | None = None, seed: int = 0,
                     sim_steps: int = 20) -> tuple[float, dict]:
    """Seconds :func:`budget_sweep` is expected to take here, announced before it runs: its lockstep
    steps (:func:`sweep_steps`, episodes ending early not counted) times a timed replan of all
    live environments (every ``replan_every`` steps) plus their timed simulator steps. Returns
    ``(seconds, parts)`` with the parts (``steps``, ``live``, ``plan_s``, ``sim_step_s``)."""
    steps, live = sweep_steps(task, dataset, budgets, episodes=episodes, n_envs=n_envs)
    every = policy_config(replan_every).replan_every
    start = start_observation(task, seed)
    replan(model, start, 0.0, seed=seed, n_samples=n_samples)  # the first call pays one-off costs
    t0 = time.perf_counter()
    replan(model, np.repeat(start[None], live, 0), float(dataset.meta.budgets[0]), seed=seed, n_samples=n_samples)
    plan_s = time.perf_counter() - t0
    env, obs = seeded_start(task, seed)
    try:
        class Still:  # zero actions: the simulator's own time per step
            def act(self, obs, reward, cost):
                return np.zeros((1, *env.action_space.shape), dtype=np.float32)

        t0 = time.perf_counter()
        _, length, _ = step_episodes([env], obs[None].copy(), Still(), max_steps=sim_steps)
        sim_step_s = (time.perf_counter() - t0) / max(int(length[0]), 1)
    finally:
        env.close()
    parts = {"steps": steps, "live": live, "plan_s": plan_s, "sim_step_s": sim_step_s, "replan_every": every}
    return steps * (plan_s / every + live * sim_step_s), parts


def budget_sweep(task: str, model: TCDP, dataset: Dataset, budgets, *, episodes: int, seed: int = 0,
                 n_envs: int = 10, beta=None, w_cfg=None, sampling_steps=None, n_samples: int | None = None,
                 replan_every: int | None = None, progress: bool = True) -> list[SweepPoint]:
    """Evaluate the TCDP policy at each budget with ``run_episodes`` and return one
    :class:`SweepPoint` per budget, in order.

    Every budget sees the same start states (``run_episodes`` resets with
    :func:`~tcdp_lib.data.envs.seeded_reset`); with ``n_envs=1`` the first episode is
    ``rollout(..., seed=seed, start_obs_seed=1000 * seed)``.
    """
    from tcdp_lib.runs.evaluate import evaluate

    if dataset.task.task_id != task:
        raise ValueError(f"dataset is of task {dataset.task.task_id!r}, not of the requested task {task!r}")
    budgets = [float(b) for b in budgets]
    if not budgets:
        raise ValueError("budgets must name at least one budget, got none")
    if len(set(budgets)) != len(budgets):
        raise ValueError(f"budgets must be distinct, got {budgets}")
    pcfg = planner_config(model, n_samples=n_samples, beta=beta, w_cfg=w_cfg, sampling_steps=sampling_steps)

    def make_policy(s):
        return TCDPPolicy(model, pcfg, policy_config(replan_every, None, s))

    points = []
    for b in budgets:
        rows, _ = evaluate(dataset, make_policy, budgets=(b,), seeds=(int(seed),), episodes=int(episodes),
                           n_envs=int(n_envs), progress=progress)
        rw = np.array([r.reward for r in rows])
        cs = np.array([r.cost for r in rows])
        points.append(SweepPoint(
            budget=b, episodes=len(rows), reward=float(rw.mean()), cost=float(cs.mean()),
            reward_std=float(rw.std()), cost_std=float(cs.std()),
            normalized_reward=float(np.mean([r.normalized_reward for r in rows])),
            normalized_cost=float(np.mean([r.normalized_cost for r in rows])),
            episode_rewards=tuple(float(x) for x in rw), episode_costs=tuple(float(x) for x in cs),
        ))
    return points


# --------------------------------------------------------------------------------------------
# What a slider release does, and its latency
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class PanelUpdate:
    """One slider release: the plan, the short rollout, the redrawn figures and their timings."""

    replan: ReplanResult
    rollout: Rollout | None
    figures: Any
    """What ``redraw(replan, rollout)`` returned (``None`` without ``redraw``)."""
    plan_s: float
    """Release -> plan ready (reset observation and replan), seconds."""
    total_s: float
    """Release -> plan, rollout and figures ready, seconds."""


def panel_update(task: str, model: TCDP, budget: float, *, beta=None, w_cfg=None, sampling_steps=None,
                 seed: int = 0, n_samples: int | None = None, rollout_steps: int | None = 50,
                 replan_every: int | None = None, render_every: int = 0, start_obs_seed: int = 0,
                 redraw: Callable[[ReplanResult, Rollout | None], Any] | None = None,
                 on_plan: Callable[[ReplanResult], None] | None = None) -> PanelUpdate:
    """Plan from ``seeded_start(task, start_obs_seed)`` at ``budget``, call ``on_plan`` (the panel draws
    the plan at once), roll out ``rollout_steps`` steps (0: none; ``None``: the whole episode) with
    that plan as the first one, and call ``redraw``."""
    t0 = time.perf_counter()
    obs = start_observation(task, start_obs_seed)
    rp = replan(model, obs, budget, beta=beta, w_cfg=w_cfg, sampling_steps=sampling_steps, seed=seed,
                n_samples=n_samples)
    plan_s = time.perf_counter() - t0
    if on_plan is not None:
        on_plan(rp)
    ro = None
    if rollout_steps != 0:
        ro = rollout(task, model, budget, beta=beta, w_cfg=w_cfg, sampling_steps=sampling_steps, seed=seed,
                     steps=rollout_steps, n_samples=n_samples, replan_every=replan_every,
                     render_every=render_every, start_obs_seed=start_obs_seed, first_plan=rp)
    figures = redraw(rp, ro) if redraw is not None else None
    return PanelUpdate(replan=rp, rollout=ro, figures=figures, plan_s=plan_s, total_s=time.perf_counter() - t0)


@dataclass(frozen=True)
class Latency:
    """Slider release -> plan and -> plan + rollout + figures, over ``repeats`` warm releases."""

    plan_s: float
    """Median release -> plan, seconds."""
    total_s: float
    """Median release -> plan, ``rollout_steps``-step rollout and figures, seconds."""
    plan_s_max: float
    total_s_max: float
    cold_plan_s: float
    """The first (untimed in the medians) release: lazy imports and allocations included."""
    cold_total_s: float
    rollout_steps: int
    repeats: int
    plan_target_s: float = PLAN_TARGET_S
    total_target_s: float = TOTAL_TARGET_S

    @property
    def meets_targets(self) -> bool:
        return self.plan_s < self.plan_target_s and self.total_s < self.total_target_s


def measure_latency(task: str, model: TCDP, budget: float, *, beta=None, w_cfg=None, sampling_steps=None,
                    seed: int = 0, n_samples: int | None = None, rollout_steps: int = 50, replan_every: int | None = None,
                    repeats: int = 3, start_obs_seed: int = 0,
                    redraw: Callable[[ReplanResult, Rollout | None], Any] | None = None) -> Latency:
    """Time :func:`panel_update` once cold, then ``repeats`` times; medians and maxima in seconds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    kw = dict(beta=beta, w_cfg=w_cfg, sampling_steps=sampling_steps, seed=seed, n_samples=n_samples,
              rollout_steps=rollout_steps, replan_every=replan_every, start_obs_seed=start_obs_seed, redraw=redraw)
    cold = panel_update(task, model, budget, **kw)
    runs = [panel_update(task, model, budget, **kw) for _ in range(repeats)]
    plan = np.array([r.plan_s for r in runs])
    total = np.array([r.total_s for r in runs])
    return Latency(plan_s=float(np.median(plan)), total_s=float(np.median(total)), plan_s_max=float(plan.max()),
                   total_s_max=float(total.max()), cold_plan_s=cold.plan_s, cold_total_s=cold.total_s,
                   rollout_steps=int(rollout_steps), repeats=int(repeats))
