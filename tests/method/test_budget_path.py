"""The budget reaches the model: from the policy's running cost to the encoder, both CFG branches,
the energy, the x0 clamp and the choice among samples; and the training-side pieces that feed
it (slack pairs, the reward-to-go QN, half-precision export).

Each test is built to fail when one link of that path is cut (the policy not subtracting the
spent cost, the planner passing budget 0, the energy ignoring ``c``, the clamp left out, ...).
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from tcdp_lib.method.ctgda import BudgetPrior, draw_pairs
from tcdp_lib.method.diffusion import SAMPLERS, make_alphas_cumprod, sampling_timesteps
from tcdp_lib.method.model import TCDP
from tcdp_lib.method.qn import ToGoQN
from tcdp_lib.planner.planner import Planner, PlannerConfig, choose
from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
from tcdp_lib.runs.train import SMOKE_MODEL

# --------------------------------------------------------------------------------------------
#                                          helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def model(episodes):
    """A tiny untrained TCDP on the random walk (obs 3, act 2; time scale 20, the longest episode),
    planning for the whole remaining budget (``budget_fraction`` 1; its scaling has its own test)."""
    torch.manual_seed(0)
    config = dataclasses.replace(SMOKE_MODEL, guidance=dataclasses.replace(SMOKE_MODEL.guidance, budget_fraction=1.0))
    return TCDP.from_episodes(episodes, config).eval()


def spy(monkeypatch, obj, name) -> list[dict]:
    """Wrap the bound method ``obj.name``; each call's arguments are recorded by parameter name."""
    real = getattr(obj, name)
    sig = inspect.signature(real)
    calls: list[dict] = []

    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in bound.arguments.items()})
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def per_env(v: torch.Tensor, n_env: int) -> np.ndarray:
    """The planner's ``(B*S,)`` rows (environment-major) as ``(B, S)``."""
    return v.reshape(n_env, -1).numpy()


class CondStub(torch.nn.Module):
    """Backbone whose eps is a fixed function of the condition vector (the same at every step and
    position): a change of the condition changes the plan."""

    def __init__(self, d_model: int, channels: int):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.register_buffer("proj", torch.randn(d_model, channels, generator=g) / d_model ** 0.5)

    def forward(self, x, t, cond):
        return x * 0 + torch.tanh(cond @ self.proj).unsqueeze(1)  # (N, H, C)


class ConstStub(torch.nn.Module):
    """Backbone that ignores its inputs: eps = ``scale`` times +1 on even channels, -1 on odd ones."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x, t, cond):
        sign = torch.where(torch.arange(x.shape[-1]) % 2 == 0, 1.0, -1.0).to(x.dtype)
        return torch.zeros_like(x) + self.scale * sign


STEP_COSTS = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 4.0], [0.5, 2.0], [3.0, 0.0]])
"""Cost reported at each ``act`` call (rows) for two environments: they spend at different rates
and both run out (env 1 at the 4th call, env 0 at the 5th)."""
BUDGET = 5.0


def drive_policy(model, episodes, after_step, n_samples=2):
    """Step a ``TCDPPolicy`` (2 envs, replanning at every step, CFG on) through ``STEP_COSTS``,
    calling ``after_step(t, policy)`` after each ``act``."""
    policy = TCDPPolicy(model, PlannerConfig(n_samples=n_samples, w_cfg=2.0), PolicyConfig(replan_every=1))
    policy.reset(2, BUDGET)
    obs = episodes.observations[[0, 10]]
    for t, cost in enumerate(STEP_COSTS):
        policy.act(obs, np.zeros(2), cost)
        after_step(t, policy)


# --------------------------------------------------------------------------------------------
#                         a, b. the policy's condition: budget and time
# --------------------------------------------------------------------------------------------


def test_policy_conditions_each_env_on_its_remaining_budget(model, episodes, monkeypatch):
    calls = spy(monkeypatch, model.encoder, "forward")
    wants = []

    def check(t, policy):
        want = np.maximum(BUDGET - STEP_COSTS[: t + 1].sum(0), 0.0)  # (2,) b - spent so far, clipped at 0
        wants.append(want)
        assert calls, f"step {t}: the encoder was not called"
        for call in calls:  # every sample of an environment sees that environment's budget
            np.testing.assert_allclose(per_env(call["budget"], 2), np.repeat(want[:, None], 2, 1), atol=1e-6)
        np.testing.assert_allclose(policy.last_plan.remaining_budget, want, atol=1e-6)
        calls.clear()

    drive_policy(model, episodes, check)
    wants = np.array(wants)
    # the case is not degenerate: the envs differ, the budget falls, and the clip at 0 is reached
    assert np.any(wants[:, 0] != wants[:, 1]) and wants[0, 0] > wants[2, 0] > 0 and wants[-1, 0] == 0


def test_steps_left_reach_the_encoder_in_both_cfg_branches(model, episodes, monkeypatch):
    cond_calls = spy(monkeypatch, model.encoder, "forward")
    null_calls = spy(monkeypatch, model.encoder, "null")
    time_scale = model.config.budget.time_scale
    assert time_scale == 20

    def check(t, policy):
        assert cond_calls and null_calls, f"step {t}: w_cfg=2 needs both branches"
        for call in cond_calls + null_calls:
            assert call["steps_left"] is not None
            np.testing.assert_allclose(call["steps_left"].numpy(), time_scale - t)
        cond_calls.clear()
        null_calls.clear()

    drive_policy(model, episodes, check)
    # and the unconditional embedding does carry them (CFG drops only the budget)
    null = model.encoder.null(2, torch.tensor([time_scale, 1.0]))
    assert not torch.allclose(null[0], null[1])


# --------------------------------------------------------------------------------------------
#                                 c. the energy's inputs
# --------------------------------------------------------------------------------------------


def test_energy_reads_the_remaining_budget_and_steps_left(model, episodes, monkeypatch):
    calls = spy(monkeypatch, model.energy, "heads")
    planner = Planner(model, PlannerConfig(n_samples=2, beta=1.0))
    budget, left = np.array([3.0, 0.5]), np.array([15.0, 4.0])
    planner.plan(episodes.observations[[0, 10]], budget, generator=0, steps_left=left)
    assert len(calls) > 1  # the guidance at the sampling steps, then the scoring of the samples
    for call in calls:
        np.testing.assert_allclose(per_env(call["c"], 2), np.repeat(budget[:, None], 2, 1))
        np.testing.assert_allclose(per_env(call["steps_left"], 2), np.repeat(left[:, None], 2, 1))
    # what it reads changes what it says
    x, t = torch.randn(4, model.horizon, model.x_dim), torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        base = model.energy(x, t, torch.full((4,), 1.0), torch.full((4,), 10.0))
        assert not torch.allclose(model.energy(x, t, torch.full((4,), 6.0), torch.full((4,), 10.0)), base)
        assert not torch.allclose(model.energy(x, t, torch.full((4,), 1.0), torch.full((4,), 2.0)), base)


def test_cost_model_is_blind_to_the_budget_and_the_value_is_not(model):
    # CTGDA pairs all have b_t >= C_t: a cost model that read b_t could predict "at most b_t" and
    # call every plan affordable once the budget is spent. The penalty must come from the window.
    x, t = torch.randn(4, model.horizon, model.x_dim), torch.zeros(4, dtype=torch.long)
    left = torch.full((4,), 10.0)
    with torch.no_grad():
        v0, c0 = model.energy.heads(x, t, torch.zeros(4), left)
        v1, c1 = model.energy.heads(x, t, torch.full((4,), 50.0), left)
        _, c2 = model.energy.heads(x, t, torch.zeros(4), torch.full((4,), 2.0))
        _, c3 = model.energy.heads(x + 1.0, t, torch.zeros(4), left)
    torch.testing.assert_close(c0, c1)  # the budget does not move the predicted cost
    assert not torch.allclose(v0, v1)  # it moves the value (QN among windows within b_t)
    assert not torch.allclose(c0, c2)  # the cost reads the steps left
    assert not torch.allclose(c0, c3)  # and the window
    # the guided energy penalises only cost beyond the budget: more budget, less penalty
    with torch.no_grad():
        cost = c0 * model.energy.budget_scale
        e_tight = model.energy(x, t, torch.zeros(4), left, cost_weight=100.0) - v0
        e_loose = model.energy(x, t, cost.clamp_min(0) + 1.0, left, cost_weight=100.0)
        v_loose, _ = model.energy.heads(x, t, cost.clamp_min(0) + 1.0, left)
    torch.testing.assert_close(e_tight, -100.0 * torch.relu(c0))
    torch.testing.assert_close(e_loose, v_loose)


def test_energy_guidance_alone_carries_budget_and_time_into_the_plan(model, episodes):
    model.backbone = ConstStub(0.0)  # the backbone ignores the condition: only the energy sees b

    def states(budget, left, beta):
        planner = Planner(model, PlannerConfig(n_samples=1, beta=beta))
        return planner.plan(episodes.observations[[0]], [budget], generator=0, steps_left=[left]).states

    base = states(0.5, 10.0, 2.0)
    assert not np.allclose(states(6.0, 10.0, 2.0), base)  # another budget, another plan
    assert not np.allclose(states(0.5, 3.0, 2.0), base)  # other steps left, another plan
    np.testing.assert_array_equal(states(0.5, 10.0, 2.0), base)  # deterministic given the seed
    # control: without guidance nothing carries the budget
    np.testing.assert_array_equal(states(6.0, 10.0, 0.0), states(0.5, 10.0, 0.0))


# --------------------------------------------------------------------------------------------
#                               d. the condition reaches the plan
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w_cfg", [1.0, 2.0])
def test_plans_follow_the_budget_through_the_condition(model, episodes, w_cfg):
    model.backbone = CondStub(model.encoder.null_embedding.shape[0], model.x_dim)
    planner = Planner(model, PlannerConfig(n_samples=2, w_cfg=w_cfg, beta=0.0))  # no energy: CFG only

    def states(budget):
        return planner.plan(episodes.observations[[0, 10]], [budget, budget], generator=3,
                            steps_left=[12.0, 12.0]).states

    low, high = states(0.5), states(6.0)
    np.testing.assert_array_equal(states(0.5), low)  # same budget, same seed: the same plans
    assert not np.allclose(high[:, :, 1:], low[:, :, 1:], atol=1e-4)


# --------------------------------------------------------------------------------------------
#                                      e. the x0 clamp
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_clamp_x0_to_per_dimension_bounds(name):
    ab = make_alphas_cumprod("cosine_trunc", 20)
    low, high = torch.tensor([-1.0, 0.5, -3.0]), torch.tensor([2.0, 0.7, -2.0])  # not symmetric
    sign = torch.tensor([1.0, -1.0, 1.0])  # eps >> 0 drives x0 to low, eps << 0 to high

    def model_fn(x, t):
        return torch.zeros_like(x) + 1e6 * sign

    x_T = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0))
    out = SAMPLERS[name](model_fn, x_T, ab, sampling_timesteps(20, 5), clip_x0=(low, high))
    assert torch.isfinite(out).all()
    assert torch.all(out >= low - 1e-5) and torch.all(out <= high + 1e-5)
    want = torch.where(sign > 0, low, high).expand_as(out)  # each channel pinned to the bound it was pushed to
    torch.testing.assert_close(out, want, atol=1e-4, rtol=0)


def test_planner_keeps_plans_inside_the_models_clip_bounds(model, episodes):
    low, high = model.clip_bounds()
    # the data's range (widened by the margin), tighter than a symmetric +-4 std box
    assert torch.all(low > -4) and torch.all(high < 4) and torch.all(low < high)
    model.backbone = ConstStub(1e4)  # eps far too large: x0 estimates are far out of range
    obs = episodes.observations[[0, 10]]
    plan = Planner(model, PlannerConfig(n_samples=3)).plan(obs, [1.0, 4.0], generator=0)
    d = model.obs_dim
    lo = model.unnormalize(low[:d]).numpy()
    hi = model.unnormalize(high[:d]).numpy()
    states = plan.states[:, :, 1:]  # the first state is the observation
    tol = 1e-4 * (1 + np.maximum(np.abs(lo), np.abs(hi)))
    assert np.all(states >= lo - tol) and np.all(states <= hi + tol)
    np.testing.assert_array_equal(plan.states[:, :, 0], np.repeat(obs[:, None], 3, 1))
    # the clamp did the work: every planned state sits at a bound
    assert np.all(np.isclose(states, lo, atol=1e-4) | np.isclose(states, hi, atol=1e-4))


# --------------------------------------------------------------------------------------------
#                                   f. the choice of sample
# --------------------------------------------------------------------------------------------


def test_choose_best_feasible_else_cheapest_else_best_value():
    nan = float("nan")
    values = torch.tensor([
        [0.5, 0.9, 0.1],  # the 0.9 plan costs too much: the best that fits (0)
        [0.5, 0.9, 0.1],  # none fits: the cheapest (2)
        [0.5, 0.9, 0.1],  # no cost prediction: the best value (1)
        [0.2, 0.3, 0.8],  # all fit, one exactly at the budget: the best value (2)
    ])
    costs = torch.tensor([
        [1.0, 3.0, 0.5],
        [4.0, 3.0, 2.5],
        [nan, nan, nan],
        [0.1, 0.2, 2.0],
    ])
    budget = torch.tensor([2.0, 1.0, 1.0, 2.0])
    assert choose(values, costs, budget).tolist() == [0, 2, 1, 2]
    # each row alone gives the same answer (rows do not mix)
    for i, want in enumerate([0, 2, 1, 2]):
        assert choose(values[i : i + 1], costs[i : i + 1], budget[i : i + 1]).item() == want


# --------------------------------------------------------------------------------------------
#                                   g. half-precision export
# --------------------------------------------------------------------------------------------


def test_half_export_halves_weights_and_keeps_buffers(model, tmp_path):
    from tcdp_lib.runs.checkpoint import atomic_save, export_model, load_model, model_payload, safe_load

    src = tmp_path / "run" / "model.pt"
    atomic_save(model_payload(model, "OfflineBallCircle-v0", {"task": "OfflineBallCircle-v0"}), src)
    dst = export_model(src, tmp_path / "ship" / "model.pt", half=True)
    sd, ref = safe_load(dst)["state_dict"], model.state_dict()
    for name in ("alphas_cumprod", "obs_mean", "obs_std", "x_low", "x_high"):
        assert sd[name].dtype == torch.float32, name
        assert torch.equal(sd[name], ref[name]), name
    params = dict(model.named_parameters())
    assert params
    for name, p in params.items():
        assert sd[name].dtype == torch.float16, name
        assert torch.equal(sd[name], p.detach().half()), name
    back, _ = load_model(dst)
    assert torch.equal(back.alphas_cumprod, model.alphas_cumprod)
    assert all(p.dtype == torch.float32 for p in back.parameters())


# --------------------------------------------------------------------------------------------
#                                 h. CTGDA slack pairs
# --------------------------------------------------------------------------------------------


def _window_costs(seed=0, n=500):
    rng = np.random.default_rng(seed)
    episode_cost = rng.uniform(0, 40, n)
    return episode_cost * rng.uniform(0, 1, n), episode_cost  # cost-to-go, episode cost


def test_slack_pairs_sit_just_above_the_episode_cost():
    ctg, ep_cost = _window_costs()
    p = draw_pairs(np.random.default_rng(1), ctg, ep_cost, BudgetPrior(0, 50, p_slack=1.0, slack_scale=2.0), 4000)
    slack = p.budget - ep_cost[p.window_idx]
    assert len(p) == 4000 and np.all(slack >= 0)  # C_0 <= b: still within the budget
    assert slack.mean() == pytest.approx(2.0, abs=0.15)
    np.testing.assert_allclose(p.remaining_budget, ctg[p.window_idx] + slack)  # b_t = C_t + (b - C_0)
    # the uniform prior alone leaves far more slack
    u = draw_pairs(np.random.default_rng(1), ctg, ep_cost, BudgetPrior(0, 50), 4000)
    assert (u.budget - ep_cost[u.window_idx]).mean() > 5


def test_no_slack_share_is_the_uniform_prior():
    ctg, ep_cost = _window_costs()
    a = draw_pairs(np.random.default_rng(2), ctg, ep_cost, BudgetPrior(0, 50), 1000)
    b = draw_pairs(np.random.default_rng(2), ctg, ep_cost, BudgetPrior(0, 50, p_slack=0.0, slack_scale=2.0), 1000)
    for field in ("window_idx", "budget", "remaining_budget"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.n_drawn == b.n_drawn


# --------------------------------------------------------------------------------------------
#                                    i. reward-to-go QN
# --------------------------------------------------------------------------------------------


def test_togo_qn_ranks_among_feasible_references_only():
    r = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    c = np.array([1.0, 2.0, 3.0, 4.0, 9.0])
    qn = ToGoQN(r, c, np.full(5, 10.0), n_buckets=1)
    # at budget 4 the feasible references are r = 1..4: 4 is the best, 1 the worst, 2.5 the middle
    np.testing.assert_allclose(qn([4.0, 1.0, 2.5], [4.0] * 3, [10.0] * 3), [1.0, 0.0, 0.5])
    # raising the budget admits the reference with r = 10: the same reward-to-go ranks lower
    at_9 = qn([4.0], [9.0], [10.0])[0]
    assert 0 < at_9 < 1
    assert np.isnan(qn([4.0], [0.5], [10.0])[0])  # no reference within budget 0.5


def test_togo_qn_compares_windows_with_as_many_steps_left():
    r = np.r_[1.0, 2.0, 3.0, 4.0, 100.0, 200.0, 300.0, 400.0]
    c = np.r_[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]
    s = np.r_[np.full(4, 10.0), np.full(4, 100.0)]
    qn = ToGoQN(r, c, s, n_buckets=2)
    # the long-horizon references (huge reward-to-go) do not count against a short window
    np.testing.assert_allclose(qn([4.0, 4.0], [4.0, 4.0], [10.0, 100.0]), [1.0, 0.0])


def _dense_mid_rank(r, c, v, b):
    """The definition, one query at a time: the mid rank of v among the r whose c <= b."""
    out = np.full(len(v), np.nan)
    for q in range(len(v)):
        ref = r[c <= b[q]]
        if ref.size:
            m = lambda x: (ref < x).sum() + (ref <= x).sum()  # noqa: E731
            lo, hi = m(ref.min()), m(ref.max())
            out[q] = np.clip((m(v[q]) - lo) / max(hi - lo, 1), 0, 1) if hi > lo else 0.5
    return out


@pytest.mark.parametrize("n_ref", [1, 63, 64, 65, 300])
def test_togo_qn_equals_the_definition_with_ties_and_any_budget(n_ref):
    """The blocked prefix counts give the mid rank exactly, bit for bit: ties in reward and in cost,
    budgets below every cost, between and above, a reference spanning several blocks."""
    rng = np.random.default_rng(n_ref)
    r = rng.integers(0, 12, n_ref).astype(float)  # many ties
    c = rng.integers(0, 9, n_ref).astype(float)
    qn = ToGoQN(r, c, np.full(n_ref, 10.0), n_buckets=1)
    v = np.r_[rng.integers(-2, 14, 200).astype(float), r[:5], rng.normal(5, 4, 50)]
    b = np.r_[rng.choice([-1.0, 0.0, 3.0, 3.5, 8.0, 100.0, np.inf], 200), c[:5], rng.uniform(-1, 10, 50)]
    got = qn(v, b, np.full(len(v), 10.0))
    want = _dense_mid_rank(r, c, v, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])
    assert np.isnan(qn([1.0], [np.nan], [10.0])[0])  # no cost is within a NaN budget
    with pytest.raises(ValueError, match="reward_to_go must be finite"):
        qn([np.nan], [5.0], [10.0])


def test_budget_fraction_scales_what_the_planner_plans_for(model, episodes, monkeypatch):
    """The planner conditions on ``budget_fraction x (b - spent)``; 1 (the default) leaves it unchanged."""
    calls = spy(monkeypatch, model.encoder, "forward")
    obs = episodes.observations[:2]
    plan = Planner(model, PlannerConfig(n_samples=1, w_cfg=1.0, beta=0.0, budget_fraction=0.5)).plan(
        obs, np.array([10.0, 4.0]), generator=0)
    np.testing.assert_allclose(plan.remaining_budget, [5.0, 2.0])
    np.testing.assert_allclose(per_env(calls[-1]["budget"], 2).reshape(-1), [5.0, 2.0])
    plan = Planner(model, PlannerConfig(n_samples=1, w_cfg=1.0, beta=0.0)).plan(obs, np.array([10.0, 4.0]), generator=0)
    np.testing.assert_allclose(plan.remaining_budget, [10.0, 4.0])  # the model's fraction, 1 here
    with pytest.raises(ValueError, match="budget_fraction"):
        PlannerConfig(budget_fraction=0.0)
