"""The interactive budget planner's library: replan, rollout, sweep, latency, figures and panel,
with the tiny smoke model trained once on the shipped BallCircle data."""

import ast
import subprocess
import sys

import numpy as np
import pytest
import torch

from tcdp_lib import plots
from tcdp_lib.data.dataset import load_dataset
from tcdp_lib.errors import BudgetError
from tcdp_lib.paths import ROOT, shipped_model
from tcdp_lib.runs import interactive as I
from tcdp_lib.runs.train import SMOKE_MODEL

TASK = "OfflineBallCircle-v0"


@pytest.fixture(scope="module")
def ds():
    return load_dataset(TASK)


@pytest.fixture(scope="module")
def loaded(ds, tmp_path_factory):
    """A missing model file in a smoke run: the tiny model is trained (the notebook's fallback)."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("interactive")
    return I.load_planner_model(ds, tmp / "missing.pt", train_if_missing=True, seed=0, run_dir=tmp / "run")


@pytest.fixture(scope="module")
def model(loaded):
    return loaded.model


def test_missing_model_trains_only_when_asked(ds, loaded, tmp_path):
    assert "tiny smoke model" in loaded.source and loaded.path.exists()
    assert loaded.model.config.horizon == SMOKE_MODEL.horizon
    with pytest.raises(FileNotFoundError, match=r"no model file at .*nope\.pt.*tcdp train OfflineBallCircle-v0"):
        I.load_planner_model(ds, tmp_path / "nope.pt")
    again = I.load_planner_model(ds, loaded.path)  # the file it wrote loads as a given model file
    assert again.source == str(loaded.path)
    for a, b in zip(again.model.state_dict().values(), loaded.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_shipped_model_source_names_the_file_in_the_checkout(ds):
    loaded = I.load_planner_model(ds)
    assert loaded.path.is_absolute() and loaded.path == shipped_model(TASK)
    assert loaded.source == f"shipped checkpoint data/checkpoints/{TASK}/model.pt"
    inside = I.load_planner_model(ds, shipped_model(TASK))  # an absolute path in the checkout: relative too
    assert inside.source == f"data/checkpoints/{TASK}/model.pt"
    with pytest.raises(FileNotFoundError) as err:
        I.load_planner_model(ds, ROOT / "runs" / "nope" / "model.pt")
    assert str(ROOT) not in str(err.value) and "no model file at runs/nope/model.pt" in str(err.value)


def test_control_ranges_come_from_model_and_data(model, ds):
    from tcdp_lib.widgets import control_ranges

    r = control_ranges(model, ds)
    assert r.budget_max == model.config.budget.b_max
    assert r.budget == ds.meta.budgets[1]
    assert 0 < r.w_cfg < r.w_cfg_max and 0 < r.beta < r.beta_max
    assert 1 <= r.sampling_steps <= r.max_sampling_steps == model.config.diffusion.n_diffusion_steps
    assert r.episode_steps == ds.task.max_episode_steps == 200


def test_start_is_reproducible_and_leaves_numpy_global_rng_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    I._start_observation.cache_clear()
    a = I.start_observation(TASK, 7)
    I._start_observation.cache_clear()  # made again from a new env, not read from the cache
    b = I.start_observation(TASK, 7)
    np.testing.assert_array_equal(a, b)  # bullet's reset ignores its seed: the global RNG is seeded
    assert not np.array_equal(a, I.start_observation(TASK, 8))
    assert np.random.random() == expected  # and restored


def test_a_start_is_made_once_per_process_and_handed_out_as_a_copy(monkeypatch):
    I._start_observation.cache_clear()
    made = []
    real = I.seeded_start
    monkeypatch.setattr(I, "seeded_start", lambda task, seed=0: made.append(seed) or real(task, seed))
    a = I.start_observation(TASK, 3)
    a[:] = 1e9  # a caller's change does not reach the kept start
    b = I.start_observation(TASK, 3)
    assert made == [3] and not np.array_equal(a, b)


def test_replan_samples_starts_at_the_observation_and_keeps_the_best(model):
    obs = np.stack([I.start_observation(TASK, s) for s in (0, 1)])
    res = I.replan(model, obs, [5.0, 30.0], seed=3, n_samples=3)
    p = res.plan
    assert p.states.shape == (2, 3, model.horizon, model.obs_dim)
    np.testing.assert_array_equal(p.states[:, :, 0], np.repeat(obs[:, None], 3, axis=1))
    for e in range(2):  # the best predicted plan within the budget (else the cheapest)
        fits = p.costs[e] <= p.remaining_budget[e]
        if fits.any():
            assert fits[p.chosen[e]] and p.values[e, p.chosen[e]] == p.values[e, fits].max()
        else:
            assert p.costs[e, p.chosen[e]] == p.costs[e].min()
    np.testing.assert_array_equal(res.budget, [5.0, 30.0])
    assert res.wall_ms > 0
    same = I.replan(model, obs, [5.0, 30.0], seed=3, n_samples=3).plan
    np.testing.assert_array_equal(same.states, p.states)
    other = I.replan(model, obs, [5.0, 30.0], seed=4, n_samples=3).plan
    assert not np.allclose(other.states[:, :, 1:], p.states[:, :, 1:])
    single = I.replan(model, obs[0], 5.0, seed=3, n_samples=3)  # one observation, one budget
    assert single.plan.states.shape == (1, 3, model.horizon, model.obs_dim)


def test_replan_refuses_bad_settings(model):
    obs = I.start_observation(TASK, 0)
    with pytest.raises(BudgetError, match=r"budget -1.0: expected a finite number >= 0"):
        I.replan(model, obs, -1.0)
    with pytest.raises(BudgetError, match=r"budget nan"):
        I.replan(model, obs, [5.0, float("nan")])
    k = model.config.diffusion.n_diffusion_steps
    with pytest.raises(ValueError, match=rf"sampling_steps must lie in \[1, {k}\].*got {k + 1}"):
        I.replan(model, obs, 5.0, sampling_steps=k + 1)


def test_rollout_traces_plans_and_frames(model):
    kw = dict(seed=2, steps=12, n_samples=3, replan_every=2, plans_every=4, render_every=5,
              frame_size=(64, 48), start_obs_seed=5)
    ro = I.rollout(TASK, model, 10.0, **kw)
    assert ro.length == 12 and not ro.done
    assert ro.observations.shape == (13, model.obs_dim) and ro.actions.shape == (12, model.act_dim)
    np.testing.assert_array_equal(ro.observations[0], I.start_observation(TASK, 5))
    np.testing.assert_allclose(ro.cum_cost, np.cumsum(ro.costs))
    assert ro.total_cost == ro.cum_cost[-1] and ro.total_reward == pytest.approx(ro.cum_reward[-1])
    assert ro.plan_steps.tolist() == [0, 4, 8]
    assert ro.frame_steps.tolist() == [0, 5, 10] and ro.frames.shape == (3, 48, 64, 3)
    # The first plan is the panel's plan: same start, seed, budget and settings.
    first = I.replan(model, ro.observations[0], 10.0, seed=2, n_samples=3).plan
    np.testing.assert_array_equal(ro.plans[0].states, first.states)
    np.testing.assert_array_equal(ro.actions[0], first.actions[0])
    again = I.rollout(TASK, model, 10.0, **kw)
    np.testing.assert_array_equal(again.actions, ro.actions)
    none = I.rollout(TASK, model, 10.0, seed=2, steps=3, plans_every=0)
    assert none.plans == () and none.frames is None and len(none.frame_steps) == 0
    with pytest.raises(ValueError, match="steps must be >= 1"):
        I.rollout(TASK, model, 10.0, steps=0)


def test_rollout_is_the_evaluation_loop(model, ds):
    """A whole-episode rollout reproduces ``run_episodes`` (via the sweep) from the same start."""
    ro = I.rollout(TASK, model, 20.0, seed=1, n_samples=2, replan_every=4, start_obs_seed=1000, plans_every=0)
    (point,) = I.budget_sweep(TASK, model, ds, [20.0], episodes=1, seed=1, n_envs=1, n_samples=2,
                              replan_every=4, progress=False)
    assert ro.done and ro.length == ds.task.max_episode_steps
    assert point.episode_costs == (ro.total_cost,)
    assert point.episode_rewards[0] == pytest.approx(ro.total_reward, rel=1e-9)


def test_budget_sweep_points(model, ds):
    pts = I.budget_sweep(TASK, model, ds, [0, 20], episodes=2, seed=0, n_envs=2, n_samples=2, replan_every=4,
                         progress=False)
    assert [p.budget for p in pts] == [0.0, 20.0] and [p.episodes for p in pts] == [2, 2]
    for p in pts:
        assert p.reward == pytest.approx(np.mean(p.episode_rewards))
        assert p.cost == pytest.approx(np.mean(p.episode_costs))
        assert p.reward_std == pytest.approx(np.std(p.episode_rewards))
        nr, _ = ds.normalized(p.reward, p.cost, p.budget)  # the normalised reward is affine in R
        assert p.normalized_reward == pytest.approx(float(nr))
    assert pts[0].normalized_cost == pytest.approx(pts[0].cost + 1.0)  # DSRL at b = 0
    assert pts[1].normalized_cost == pytest.approx(pts[1].cost / 20.0)
    assert pts[1].safe == (pts[1].cost <= 20.0)
    with pytest.raises(ValueError, match="not of the requested task 'OfflineBallRun-v0'"):
        I.budget_sweep("OfflineBallRun-v0", model, ds, [10], episodes=1)
    with pytest.raises(ValueError, match="at least one budget"):
        I.budget_sweep(TASK, model, ds, [], episodes=1)
    with pytest.raises(ValueError, match=r"budget -5.0: expected a finite number >= 0"):
        I.budget_sweep(TASK, model, ds, [-5], episodes=1, progress=False)


def test_panel_update_order_and_latency(model, ds):
    calls = []
    up = I.panel_update(TASK, model, 15.0, seed=0, n_samples=2, rollout_steps=4,
                        on_plan=lambda rp: calls.append(("plan", rp)),
                        redraw=lambda rp, ro: calls.append(("redraw", ro)) or "figs")
    assert [c[0] for c in calls] == ["plan", "redraw"] and calls[0][1] is up.replan and calls[1][1] is up.rollout
    assert up.figures == "figs" and up.rollout.length == 4
    assert 0 < up.plan_s <= up.total_s
    np.testing.assert_array_equal(up.rollout.plans[0].states, up.replan.plan.states)

    redraws = []
    lat = I.measure_latency(TASK, model, 15.0, n_samples=2, rollout_steps=3, repeats=2,
                            redraw=lambda rp, ro: redraws.append(ro.length))
    assert redraws == [3, 3, 3]  # one cold release, then the timed ones
    assert np.isfinite([lat.plan_s, lat.total_s, lat.cold_plan_s, lat.cold_total_s]).all()
    assert 0 < lat.plan_s <= lat.plan_s_max and 0 < lat.total_s <= lat.total_s_max
    assert lat.plan_s <= lat.total_s and (lat.plan_target_s, lat.total_target_s) == (0.5, 3.0)
    assert lat.meets_targets == (lat.plan_s < 0.5 and lat.total_s < 3.0)
    no_rollout = I.panel_update(TASK, model, 15.0, rollout_steps=0)
    assert no_rollout.rollout is None and no_rollout.figures is None


def test_figures(model, ds):
    obs = I.start_observation(TASK, 0)
    rp = I.replan(model, obs, 10.0, n_samples=3)
    ro = I.rollout(TASK, model, 10.0, steps=6)
    plan_fig, ro_fig = plots.panel_figures(ds.episodes.observations, rp, ro, max_points=500)
    names = [t.name for t in plan_fig.data]
    assert names[0] == "dataset states" and len(plan_fig.data[0].x) <= 500
    assert names.count("other samples") == 2 and "executed path" in names and names[-1] == "start"
    chosen = next(t for t in plan_fig.data if t.name.startswith("chosen plan"))
    np.testing.assert_allclose(chosen.x, rp.plan.best_states[0, :, 0], rtol=1e-6)
    np.testing.assert_allclose(ro_fig.data[0].y, ro.cum_cost)
    np.testing.assert_allclose(ro_fig.data[1].y, ro.cum_reward)
    assert ro_fig.layout.shapes[0].y0 == 10.0  # the budget line
    assert plots.panel_figures(ds.episodes.observations, rp)[1] is None

    pts = [I.SweepPoint(0.0, 2, 1.0, 3.0, 0.1, 0.2, 0.5, 4.0), I.SweepPoint(20.0, 2, 2.0, 9.0, 0.1, 0.2, 0.6, 0.45)]
    fig = plots.budget_sweep_curve(pts, ds)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["TCDP cost"].y) == [3.0, 9.0] and list(by_name["TCDP reward"].y) == [1.0, 2.0]
    assert len(by_name["dataset episodes (at C)"].x) == ds.episodes.num_episodes


def test_widget_panel_calls_the_library(model, ds, monkeypatch):
    from tcdp_lib import widgets

    shown = []
    monkeypatch.setattr(widgets.BudgetPlannerPanel, "_show", staticmethod(lambda out, fig: shown.append(fig)))
    panel = widgets.BudgetPlannerPanel(ds, model, n_samples=2, rollout_steps=3, model_source="tiny")
    r = widgets.control_ranges(model, ds)
    assert (panel.budget.max, panel.budget.value, panel.sampling_steps.max) == (r.budget_max, r.budget,
                                                                              r.max_sampling_steps)
    assert not panel.budget.continuous_update and not panel.beta.continuous_update
    rp = panel.update()
    up = panel.wait()
    assert up is panel.last and up.replan is rp and up.rollout.length == 3
    assert len(shown) == 4  # plans, rollout cleared, then plans with the executed path and the rollout
    assert 0 < up.plan_s <= up.total_s
    assert "ms" in panel.status.value and "tiny" in panel.status.value and "cost units per episode" in panel.status.value
    panel.budget.value = 33.0  # a slider release replans
    assert panel.wait() is not up and float(panel.last.replan.budget[0]) == 33.0
    panel.task.options = [TASK, "OfflineNope-v0"]
    panel.task.value = "OfflineNope-v0"  # a task that cannot load: message, previous task kept
    assert panel.task.value == TASK and "cannot switch to OfflineNope-v0" in panel.status.value


def test_rollout_given_the_first_plan_does_not_plan_it_again(model, monkeypatch):
    from tcdp_lib.planner.planner import Planner

    calls = []
    real = Planner.plan
    monkeypatch.setattr(Planner, "plan", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    kw = dict(seed=4, steps=9, n_samples=3, replan_every=3, plans_every=3)
    alone = I.rollout(TASK, model, 12.0, **kw)
    assert len(calls) == 3
    rp = I.replan(model, I.start_observation(TASK, 0), 12.0, seed=4, n_samples=3)
    calls.clear()
    reused = I.rollout(TASK, model, 12.0, first_plan=rp, **kw)
    assert len(calls) == 2  # steps 3 and 6; step 0 acts on the given plan
    # the same rollout: its later plans draw the noise they would have drawn
    np.testing.assert_array_equal(reused.actions, alone.actions)
    np.testing.assert_array_equal(reused.plans[1].states, alone.plans[1].states)
    assert reused.plans[0] is rp.plan
    with pytest.raises(ValueError, match="the first plan was made for budget 12.*this episode's is 13"):
        I.rollout(TASK, model, 13.0, first_plan=rp, **kw)
    with pytest.raises(ValueError, match="must start from this episode's first observations"):
        I.rollout(TASK, model, 12.0, first_plan=rp, start_obs_seed=5, **kw)
    from tcdp_lib.planner.policy import TCDPPolicy

    policy = TCDPPolicy(model, I.planner_config(model, n_samples=3))
    policy.reset(1, 12.0)
    policy.act(rp.plan.states[:, 0, 0], np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="start_with goes between reset"):  # too late: step 0 is planned
        policy.start_with(rp.plan, rp.generator_state)
    calls.clear()  # panel_update plans once per replan too
    I.panel_update(TASK, model, 12.0, seed=4, n_samples=3, rollout_steps=9, replan_every=3)
    assert len(calls) == 3


def test_rollout_reports_progress_and_stops_when_cancelled(model):
    import threading

    seen = []
    whole = I.rollout(TASK, model, 10.0, steps=10, n_samples=2, on_progress=lambda ro: seen.append(ro),
                      progress_every=4)
    assert [ro.length for ro in seen] == [4, 8] and not whole.cancelled and whole.length == 10
    np.testing.assert_array_equal(seen[1].costs, whole.costs[:8])
    assert seen[0].steps == 10
    cancel = threading.Event()
    stopped = I.rollout(TASK, model, 10.0, steps=10, n_samples=2, on_progress=lambda ro: cancel.set(),
                        progress_every=3, cancel=cancel)
    assert stopped.cancelled and stopped.length == 3 and not stopped.done
    task = I.start_rollout(TASK, model, 10.0, steps=5, n_samples=2, progress_every=0)
    assert task.join(60) and task.result.length == 5 and task.error is None
    failed = I.start_rollout(TASK, model, -1.0, steps=5, on_error=lambda err: seen.append(err))
    assert failed.join(60) and isinstance(failed.error, BudgetError) and seen[-1] is failed.error


def test_panel_status_line_shows_no_machine_path(ds, monkeypatch):
    """The notebook's panel on the shipped checkpoint: its status line names the model file
    relative to the checkout, never by its absolute path."""
    from tcdp_lib import widgets

    monkeypatch.setattr(widgets.BudgetPlannerPanel, "_show", staticmethod(lambda out, fig: None))
    loaded = I.load_planner_model(ds)
    panel = widgets.BudgetPlannerPanel(ds, loaded.model, model_source=loaded.source, n_samples=1, rollout_steps=1)
    assert panel.update() is not None and panel.wait() is not None
    assert f"model: shipped checkpoint data/checkpoints/{TASK}/model.pt" in panel.status.value
    assert str(ROOT) not in panel.status.value and str(loaded.path) not in panel.status.value


def test_widgets_module_is_light_and_nothing_imports_it():
    code = ("import sys, tcdp_lib.widgets; "
            "print(sorted(m for m in ('torch', 'gymnasium', 'pybullet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    users = []
    for path in (ROOT / "tcdp_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "tcdp_lib.widgets" or n.startswith("tcdp_lib.widgets.") for n in names):
                users.append(path.name)
    assert users == []


def test_the_rollout_steps_through_the_evaluation_loop(model, monkeypatch):
    """One episode loop: the rollout is a trace of ``evaluate.step_episodes``, not a loop of its own."""
    import inspect

    from tcdp_lib.runs import evaluate

    assert ".step(" not in inspect.getsource(I)
    calls = []
    real = evaluate.step_episodes
    monkeypatch.setattr(I, "step_episodes", lambda *a, **k: calls.append(k.get("max_steps")) or real(*a, **k))
    ro = I.rollout(TASK, model, 10.0, seed=0, steps=5, n_samples=2)
    assert calls == [5] and ro.length == 5


def test_a_sweep_says_how_long_it_will_take(model, ds):
    steps, live = I.sweep_steps(TASK, ds, [0, 10, 20], episodes=5, n_envs=2)
    assert live == 2 and steps == 3 * 3 * ds.task.max_episode_steps  # 3 batches of 2, 2, 1 per budget
    assert I.sweep_steps(TASK, ds, [0], episodes=3, n_envs=10) == (ds.task.max_episode_steps, 3)
    est, parts = I.expected_sweep_s(TASK, model, ds, [0, 10], episodes=3, n_envs=2, n_samples=2, replan_every=4)
    assert parts["steps"] == 2 * 2 * ds.task.max_episode_steps and parts["live"] == 2 and parts["replan_every"] == 4
    assert parts["plan_s"] > 0 and parts["sim_step_s"] > 0
    assert est == pytest.approx(parts["steps"] * (parts["plan_s"] / 4 + 2 * parts["sim_step_s"]))
