import ast
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import tcdp_lib.planner.planner as planner_module
from tcdp_lib.data.episodes import Episodes
from tcdp_lib.errors import SettingError
from tcdp_lib.method import (
    TCDP,
    BackboneConfig,
    DiffusionConfig,
    EnergyConfig,
    GuidanceConfig,
    InverseDynamicsConfig,
    TCDPConfig,
    Windows,
    sample_batch,
)
from tcdp_lib.planner import Plan, Planner, PlannerConfig, online_remaining_budget
from tcdp_lib.planner.planner import choose, energy_scores
import dataclasses

from tcdp_lib.method.config import CHOICES, ActionModelConfig
from tcdp_lib.method.inverse_dynamics import gap_pairs
from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
from tcdp_lib.runs.train import fit_action_model

OBS, ACT, H = 4, 2, 8


def random_walk_episodes(seed=0, n_episodes=6, length=30):
    """A random walk whose actions are its steps: s' = s + 0.3 a, a in [-1, 1]^2 (padded to obs 4);
    costs fall on steps where the first coordinate is positive. Episodes end on terminals, the
    last on a timeout."""
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    actions = rng.uniform(-1, 1, size=(n, ACT)).astype(np.float32)
    obs = np.zeros((n, OBS), np.float32)
    nxt = np.zeros((n, OBS), np.float32)
    for e in range(n_episodes):
        s = rng.normal(size=OBS).astype(np.float32)
        for t in range(e * length, (e + 1) * length):
            obs[t] = s
            s = s.copy()
            s[:ACT] += 0.3 * actions[t]
            nxt[t] = s
    ends = np.arange(1, n_episodes + 1) * length - 1
    terminals, timeouts = np.zeros(n), np.zeros(n)
    terminals[ends[:-1]] = 1
    timeouts[ends[-1]] = 1
    return Episodes.from_arrays(
        dict(
            observations=obs,
            next_observations=nxt,
            actions=actions,
            rewards=obs[:, 1].astype(np.float64),
            costs=(obs[:, 0] > 0).astype(np.float64),
            terminals=terminals,
            timeouts=timeouts,
        )
    )


def tiny_config(**kw):
    return TCDPConfig(
        horizon=H,
        backbone=BackboneConfig(d_model=32, depth=1, n_heads=2, patch_size=2),
        energy=EnergyConfig(hidden=(32,), t_embed_dim=8),
        inverse_dynamics=InverseDynamicsConfig(hidden=(32,)),
        diffusion=DiffusionConfig(n_diffusion_steps=20, sampling_steps=5),
        **kw,
    )


@pytest.fixture(scope="module")
def trained():
    """A tiny TCDP trained for a few steps on CPU."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    episodes = random_walk_episodes()
    model = TCDP.from_episodes(episodes, tiny_config(), action_low=[-1, -1], action_high=[1, 1])
    windows = Windows.from_episodes(episodes, H)
    prior = model.budget_prior()
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        batch = sample_batch(rng, windows, prior, 64)
        loss = model.loss_diffusion(batch) + model.loss_energy(batch) + model.loss_inv(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return episodes, model


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver_2m"])
def test_end_to_end_plan_for_two_envs(trained, sampler):
    episodes, model = trained
    obs = episodes.observations[[0, 45]]
    planner = Planner(model, PlannerConfig(sampler=sampler, beta=0.05, n_samples=1))
    plan = planner.plan(obs, np.array([3.0, 10.0]), generator=0)
    assert isinstance(plan, Plan)
    assert plan.states.shape == (2, 1, H, OBS)
    assert plan.actions.shape == (2, ACT) and plan.values.shape == (2, 1) and plan.chosen.shape == (2,)
    assert plan.costs.shape == (2, 1)  # TCDP's energy has a cost head: a prediction per sample
    for a in (plan.states, plan.actions, plan.values, plan.costs):
        assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(plan.states[:, 0, 0], obs)  # inpainted first state
    assert np.all(plan.actions >= -1) and np.all(plan.actions <= 1)
    assert model.training  # the planner restores the caller's mode
    # same seed, same plan; another seed, another plan
    again = planner.plan(obs, np.array([3.0, 10.0]), generator=0)
    np.testing.assert_array_equal(again.states, plan.states)
    other = planner.plan(obs, np.array([3.0, 10.0]), generator=1)
    assert not np.array_equal(other.states, plan.states)


def test_n_samples_selects_best_within_budget_and_actions_follow(trained):
    episodes, model = trained
    obs = episodes.observations[[3, 70, 100]]
    plan = Planner(model, PlannerConfig(n_samples=4)).plan(obs, [1.0, 2.0, 3.0], generator=torch.Generator().manual_seed(5))
    assert plan.states.shape == (3, 4, H, OBS) and plan.values.shape == (3, 4) and plan.costs.shape == (3, 4)
    assert np.all(np.isfinite(plan.costs))
    # the chosen sample: highest value among those predicted within the budget, else the cheapest
    for e in range(3):
        fits = plan.costs[e] <= plan.remaining_budget[e]
        if fits.any():
            assert fits[plan.chosen[e]] and plan.values[e, plan.chosen[e]] == plan.values[e, fits].max()
        else:
            assert plan.costs[e, plan.chosen[e]] == plan.costs[e].min()
    np.testing.assert_array_equal(plan.value, plan.values[np.arange(3), plan.chosen])
    np.testing.assert_array_equal(plan.states[:, :, 0], np.repeat(obs[:, None], 4, axis=1))
    # actions are inverse dynamics on the chosen plan's first two (normalised) states
    with torch.no_grad():
        best = model.normalize(torch.as_tensor(plan.best_states))
        want = model.inv_dyn(best[:, 0], best[:, 1]).numpy()
    np.testing.assert_allclose(plan.actions, want, atol=1e-4)


def test_warm_start_and_budget_clipping(trained):
    episodes, model = trained
    obs = episodes.observations[[0, 1]]
    planner = Planner(model, PlannerConfig(warm_start_level=0.3, warm_shift=1, budget_fraction=1.0))
    assert len(planner.warm_timesteps) < len(planner.timesteps)
    first = planner.plan(obs, [-2.0, 5.0], generator=0)
    np.testing.assert_array_equal(first.remaining_budget, [0.0, 5.0])  # clipped at 0
    nxt = episodes.observations[[1, 2]]
    warm = planner.plan(nxt, [0.0, 4.0], generator=0, warm_start=first)
    assert warm.states.shape == first.states.shape and np.all(np.isfinite(warm.states))
    np.testing.assert_array_equal(warm.states[:, 0, 0], nxt)
    with pytest.raises(ValueError, match="warm_start plan"):
        planner.plan(nxt[:1], [1.0], warm_start=first)
    with pytest.raises(ValueError, match="obs must have shape"):
        planner.plan(np.zeros((2, OBS + 1)), [1.0, 1.0])
    with pytest.raises(ValueError, match="remaining_budget"):
        planner.plan(obs, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(online_remaining_budget(10.0, [3.0, 12.0]), [7.0, 0.0])


def test_cold_samples_start_from_noise_beside_the_warm_started_ones(trained):
    """With a warm start, the last ``cold_samples`` samples of each environment are the samples a
    plan without a warm start draws (same noise, whole chain); the others are the warm-started
    samples; the model's guidance config sets the default."""
    episodes, model = trained
    obs, nxt = episodes.observations[[0, 1]], episodes.observations[[1, 2]]
    base = dict(n_samples=4, warm_start_level=0.3, budget_fraction=1.0)
    first = Planner(model, PlannerConfig(**base)).plan(obs, [1.0, 5.0], generator=0)
    plans = {cold: Planner(model, PlannerConfig(cold_samples=cold, **base)).plan(nxt, [1.0, 4.0], generator=1,
                                                                                  warm_start=first)
             for cold in (0, 2, 4, 9)}
    fresh = Planner(model, PlannerConfig(**base)).plan(nxt, [1.0, 4.0], generator=1)
    s0, s2, s4 = plans[0].states, plans[2].states, plans[4].states
    assert not np.allclose(s0, fresh.states, atol=1e-3)  # the warm start changes the samples
    np.testing.assert_allclose(s4, fresh.states, atol=1e-5)  # all cold: no warm start at all
    np.testing.assert_allclose(plans[9].states, fresh.states, atol=1e-5)  # at most n_samples are cold
    np.testing.assert_allclose(s2[:, 2:], fresh.states[:, 2:], atol=1e-5)  # the last two of each env: cold
    np.testing.assert_allclose(s2[:, :2], s0[:, :2], atol=1e-5)  # the first two: warm-started
    m2 = copy.deepcopy(model)
    m2.config = dataclasses.replace(model.config, guidance=dataclasses.replace(model.config.guidance, cold_samples=2))
    np.testing.assert_allclose(Planner(m2, PlannerConfig(**base)).plan(nxt, [1.0, 4.0], generator=1,
                                                                       warm_start=first).states, s2, atol=1e-5)
    with pytest.raises(SettingError, match="cold_samples"):
        PlannerConfig(cold_samples=-1)
    with pytest.raises(ValueError, match="cold_samples"):
        GuidanceConfig(cold_samples=-1)



def test_energy_scores_trade_value_against_the_cost_beyond_the_budget():
    values = torch.tensor([[0.05, 0.6, 0.9]])
    costs = torch.tensor([[7.0, 9.0, 30.0]])  # raw cost units; the budget is 8
    b = torch.tensor([8.0])
    assert int(choose(values, costs, b)) == 0  # the only one that fits, worth nothing
    score = energy_scores(values, costs, b, cost_weight=10.0, budget_scale=80.0)
    torch.testing.assert_close(score, torch.tensor([[0.05, 0.6 - 10 * 1 / 80, 0.9 - 10 * 22 / 80]]))
    assert int(score.argmax()) == 1  # a little over the budget, much better valued
    assert int(energy_scores(values, costs, b, cost_weight=1000.0, budget_scale=80.0).argmax()) == 0
    no_cost = energy_scores(values, torch.full_like(costs, float("nan")), b, 10.0, 80.0)
    torch.testing.assert_close(no_cost, values)  # no cost prediction: the value alone


def test_energy_choice_follows_the_best_scored_sample(trained):
    """With ``choice="energy"`` the plan followed (its states, its action) is the sample of highest
    ``value - cost_weight * max(cost - b, 0) / budget_scale``; the default keeps the feasible rule.
    A budget that no sample fits makes the two rules pick differently."""
    episodes, model = trained
    obs = episodes.observations[[0, 30, 60, 90]]
    b = np.array([0.0, 0.5, 2.0, 50.0])
    cfg = dict(n_samples=6, budget_fraction=1.0, cost_weight=0.5)
    feasible = Planner(model, PlannerConfig(**cfg)).plan(obs, b, generator=3)
    energy = Planner(model, PlannerConfig(choice="energy", **cfg)).plan(obs, b, generator=3)
    np.testing.assert_allclose(energy.states, feasible.states)  # the same samples, ranked otherwise
    v, c, rb = (torch.as_tensor(x) for x in (energy.values, energy.costs, energy.remaining_budget))
    want = energy_scores(v, c, rb, 0.5, model.energy.budget_scale).argmax(dim=1).numpy()
    np.testing.assert_array_equal(energy.chosen, want)
    np.testing.assert_array_equal(feasible.chosen, choose(v, c, rb).numpy())
    assert not np.array_equal(energy.chosen, feasible.chosen)
    same = energy.chosen == feasible.chosen  # the action is the followed plan's
    np.testing.assert_allclose(energy.actions[same], feasible.actions[same], atol=1e-6)
    assert not np.allclose(energy.actions[~same], feasible.actions[~same], atol=1e-4)
    assert set(planner_module.CHOICE_RULES) == set(CHOICES)  # a rule for every name the configs accept
    with pytest.raises(SettingError, match="unknown choice"):
        PlannerConfig(choice="best")
    with pytest.raises(ValueError, match="unknown choice"):
        GuidanceConfig(choice="best")

def test_energy_guidance_raises_predicted_value(trained):
    episodes, model = trained
    obs = episodes.observations[[0, 30, 60, 90]]
    b = np.full(4, 5.0)
    base = Planner(model, PlannerConfig(beta=0.0)).plan(obs, b, generator=0)
    pushed = Planner(model, PlannerConfig(beta=2.0)).plan(obs, b, generator=0)
    assert pushed.values.mean() > base.values.mean()


def test_planner_imports_only_method_and_data():
    tree = ast.parse(Path(planner_module.__file__).read_text())
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    internal = [m for m in modules if m and m.startswith("tcdp_lib")]
    # tcdp_lib.errors is the bottom layer (it imports nothing of the workbench)
    assert internal and all(m.startswith(("tcdp_lib.method", "tcdp_lib.data", "tcdp_lib.errors")) for m in internal), internal


def test_planner_config_validation(trained):
    _, model = trained
    with pytest.raises(SettingError, match="n_samples"):  # a TcdpError: the CLI prints one line
        PlannerConfig(n_samples=0)
    with pytest.raises(ValueError, match="unknown sampler"):
        Planner(model, PlannerConfig(sampler="euler"))
    with pytest.raises(ValueError, match="warm_shift"):
        Planner(model, PlannerConfig(warm_shift=H))
    # guidance defaults come from the model config
    p = Planner(model)
    assert (p.w_cfg, p.beta) == (GuidanceConfig().w_cfg, GuidanceConfig().beta)


# --- the action model under the plan: the pairs it learns from, its stage of training, and the
# planner and policy acting through it toward the chosen plan's state ``gap`` steps on

GAP = 3


def test_gap_pairs_stay_within_their_episode():
    episodes = random_walk_episodes(n_episodes=4, length=30)
    s, s_ahead, a = gap_pairs(episodes, GAP)
    assert len(s) == 4 * (30 - GAP)
    obs, act = np.asarray(episodes.observations), np.asarray(episodes.actions)
    for i, (start, end) in enumerate(episodes.bounds):
        rows = slice(i * (30 - GAP), (i + 1) * (30 - GAP))
        np.testing.assert_array_equal(s[rows], obs[start:end - GAP])
        np.testing.assert_array_equal(s_ahead[rows], obs[start + GAP:end])
        np.testing.assert_array_equal(a[rows], act[start:end - GAP])
    with pytest.raises(ValueError, match="gap must be >= 1"):
        gap_pairs(episodes, 0)
    with pytest.raises(ValueError, match="no episode is longer"):
        gap_pairs(episodes, 30)


def test_action_model_config_is_checked():
    with pytest.raises(ValueError, match="below the horizon"):
        tiny_config(action_model=ActionModelConfig(gap=H))
    with pytest.raises(ValueError, match=">= 0"):
        ActionModelConfig(gap=-1)


def _with_action_model(trained, gap=GAP, steps=300):
    """The trained tiny model with an action model of ``gap`` fitted on its episodes."""
    episodes, base = trained
    config = dataclasses.replace(base.config, action_model=ActionModelConfig(gap=gap, steps=steps, batch_size=64))
    model = TCDP(config, base.obs_dim, base.act_dim, base.normalizer, base.inv_dyn.action_low.numpy(),
                 base.inv_dyn.action_high.numpy())
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("action_model.") for k in missing) and missing
    losses = fit_action_model(model, episodes, config.action_model, seed=0, progress=False)
    return episodes, model.eval(), losses


def test_fit_action_model_learns_the_data_and_touches_nothing_else(trained):
    """On the random walk ``s' = s + 0.3 a`` the one-step action is exact: the fit drives the loss
    far below the actions' variance (1/3); the other weights stay as they were."""
    _, base = trained
    before = {k: v.clone() for k, v in base.state_dict().items()}
    _, model, losses = _with_action_model(trained, gap=1, steps=600)
    assert losses[-1] < 0.2 * losses[0] and losses[-1] < 0.03
    for k, v in before.items():
        torch.testing.assert_close(model.state_dict()[k], v)


def test_planner_acts_toward_the_plan_state_gap_steps_on(trained):
    episodes, model, _ = _with_action_model(trained)
    obs = episodes.observations[[3, 70]]
    plan = Planner(model, PlannerConfig(n_samples=2)).plan(obs, [2.0, 5.0], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        best = model.normalize(torch.as_tensor(plan.best_states))
        toward = model.act_toward(best[:, 0], best[:, GAP]).numpy()
        next_state = model.act_toward(best[:, 0], best[:, 1]).numpy()
        one_step = model.inv_dyn(best[:, 0], best[:, 1]).numpy()
    np.testing.assert_allclose(plan.actions, toward, atol=1e-4)
    # the state it reads is the one GAP steps on: not the next one, and not inverse dynamics
    assert np.abs(plan.actions - next_state).max() > 1e-3
    assert np.abs(plan.actions - one_step).max() > 1e-3
    assert plan.actions.shape == (2, ACT) and np.all(np.abs(plan.actions) <= 1)


def test_policy_between_plans_acts_toward_the_state_gap_steps_past_its_offset(trained):
    episodes, model, _ = _with_action_model(trained)
    policy = TCDPPolicy(model, PlannerConfig(n_samples=1), PolicyConfig(replan_every=2))
    policy.reset(2, 5.0)
    obs = episodes.observations[[3, 70]]
    policy.act(obs, np.zeros(2), np.zeros(2))  # plans
    nxt = episodes.observations[[4, 71]]
    got = policy.act(nxt, np.zeros(2), np.zeros(2))  # step 1 of the plan: no replan
    with torch.no_grad():
        s = model.normalize(torch.as_tensor(nxt))
        ahead = model.normalize(torch.as_tensor(policy.last_plan.best_states[:, 1 + GAP], dtype=torch.float32))
        want = model.act_toward(s, ahead).numpy()
        wrong = model.act_toward(s, model.normalize(torch.as_tensor(policy.last_plan.best_states[:, GAP],
                                                                    dtype=torch.float32))).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - wrong).max() > 1e-4


def test_a_model_without_action_model_refuses_to_act_through_one(trained):
    _, model = trained
    assert model.action_gap == 0 and not hasattr(model, "action_model")
    with pytest.raises(ValueError, match="no action model"):
        model.act_toward(torch.zeros(1, model.obs_dim), torch.zeros(1, model.obs_dim))
    assert isinstance(model.config, TCDPConfig)


# --- the action averaged over the best feasible samples (``GuidanceConfig.ensemble``)


def test_ensemble_weights_average_the_best_samples_that_fit():
    values = torch.tensor([[0.9, 0.5, 0.7, 0.1], [0.9, 0.5, 0.7, 0.1], [0.2, 0.8, 0.4, 0.6], [1.0, 2.0, 3.0, 4.0]])
    costs = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 1.0, 1.0, 1.0], [9.0, 9.0, 9.0, 9.0],
                          [float("nan")] * 4])
    budget = torch.tensor([2.0, 2.0, 2.0, 2.0])
    chosen = planner_module.choose(values, costs, budget)
    w = planner_module.ensemble_weights(values, costs, budget, chosen, k=2)
    # row 0: the two best of four that fit; row 1: the best fitting one (0.9) is over the budget
    np.testing.assert_allclose(w[0].numpy(), [0.5, 0, 0.5, 0])
    np.testing.assert_allclose(w[1].numpy(), [0, 0.5, 0.5, 0])
    # none fits, or no cost prediction: the chosen sample alone (the cheapest, the best value)
    assert w[2, chosen[2]] == 1 and w[2].sum() == 1
    np.testing.assert_allclose(w[3].numpy(), [0, 0, 0, 1])
    # k larger than the samples that fit: only those
    costs1 = torch.tensor([[1.0, 9.0, 1.0, 9.0]])
    w1 = planner_module.ensemble_weights(values[:1], costs1, budget[:1], planner_module.choose(values[:1], costs1, budget[:1]), k=4)
    np.testing.assert_allclose(w1[0].numpy(), [0.5, 0, 0.5, 0])


def test_planner_action_is_the_mean_of_the_ensembles_actions(trained):
    episodes, model = trained
    obs = episodes.observations[[3, 70]]
    budget = [50.0, 50.0]  # every sample fits: the ensemble is the top-k by value
    one = Planner(model, PlannerConfig(n_samples=4)).plan(obs, budget, generator=torch.Generator().manual_seed(2))
    ens = Planner(model, PlannerConfig(n_samples=4, ensemble=3)).plan(obs, budget, generator=torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(ens.states, one.states)  # the same samples, the same choice
    np.testing.assert_array_equal(ens.chosen, one.chosen)
    assert np.all(one.costs <= 50.0 * Planner(model).budget_fraction)
    with torch.no_grad():
        s = model.normalize(torch.as_tensor(one.states))  # (B, S, H, obs)
        per_sample = model.inv_dyn(s[:, :, 0], s[:, :, 1]).numpy()  # (B, S, A)
    for e in range(2):
        top = np.argsort(-one.values[e], kind="stable")[:3]
        np.testing.assert_allclose(ens.actions[e], per_sample[e, top].mean(0), atol=1e-4)
        np.testing.assert_allclose(one.actions[e], per_sample[e, one.chosen[e]], atol=1e-4)
    assert np.abs(ens.actions - one.actions).max() > 1e-3
    # the model config's default applies, and the config is checked
    assert Planner(model, PlannerConfig(n_samples=4)).ensemble == GuidanceConfig().ensemble == 1
    with pytest.raises(SettingError, match="ensemble"):
        PlannerConfig(ensemble=0)
    with pytest.raises(ValueError, match="ensemble"):
        GuidanceConfig(ensemble=0)


# --- temporal ensembling: the action averages the last plans' actions for this step


def test_temporal_ensemble_averages_the_last_plans_actions_for_this_step(trained):
    episodes, model = trained
    obs = [episodes.observations[[3 + t, 70 + t]] for t in range(4)]

    def run(k):
        policy = TCDPPolicy(model, PlannerConfig(n_samples=2), PolicyConfig(temporal_ensemble=k))
        policy.reset(2, 5.0)
        acts, plans = [], []
        for o in obs:
            acts.append(policy.act(o, np.zeros(2), np.zeros(2)))
            plans.append(policy.last_plan)
        return np.array(acts), plans

    single, plans = run(1)
    ens, ens_plans = run(3)
    for a, b in zip(plans, ens_plans):  # the same plans: ensembling changes only the action taken
        np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_allclose(ens[0], single[0], atol=1e-6)  # one plan so far: its action
    with torch.no_grad():
        def toward(plan, o, k):  # inverse dynamics from o to the plan's state k + 1
            s = model.normalize(torch.as_tensor(o))
            return model.inv_dyn(s, model.normalize(torch.as_tensor(plan.best_states[:, k + 1]))).numpy()
        # step 3: the newest plan's action and the two plans before it, at ages 1 and 2
        want = np.mean([plans[3].actions, toward(plans[2], obs[3], 1), toward(plans[1], obs[3], 2)], axis=0)
    np.testing.assert_allclose(ens[3], want, atol=1e-5)
    assert np.abs(ens[3] - single[3]).max() > 1e-4
    # the model config's default applies, and the setting is checked
    assert TCDPPolicy(model).temporal_ensemble == GuidanceConfig().temporal_ensemble == 1
    with pytest.raises(SettingError, match="temporal_ensemble"):
        PolicyConfig(temporal_ensemble=0)
