"""CDT: token layout, causal/padding mask, training windows, and the policy end to end."""

import numpy as np
import pytest
import torch

from tcdp_lib.baselines import CDTConfig, Policy, load_cdt, save_cdt, target_return, train_cdt
from tcdp_lib.baselines.cdt import (
    N_TOKEN_TYPES,
    TOKEN_TYPES,
    build_cdt,
    gather_windows,
    interleave,
    masked_mse,
    pareto_frontier,
    sample_windows,
    token_attention_mask,
)

B, K = 2, 4


def inputs(model, valid=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        rtg=torch.randn(B, K, generator=g) * 5,
        ctg=torch.rand(B, K, generator=g) * 5,
        states=torch.randn(B, K, model.obs_dim, generator=g),
        actions=torch.rand(B, K, model.act_dim, generator=g) * 2 - 1,
        timesteps=torch.arange(K).repeat(B, 1) + 3,
        valid=torch.ones(B, K, dtype=torch.bool) if valid is None else valid,
    )


@pytest.fixture
def model(episodes, tiny_cdt):
    return build_cdt(episodes, tiny_cdt).eval()


# ------------------------------------------------------------------------------ token layout


def test_token_types_order():
    assert TOKEN_TYPES == ("return_to_go", "cost_to_go", "state", "action")


def test_interleave_puts_stream_k_of_step_t_at_4t_plus_k():
    streams = [torch.full((B, K, 3), float(k)) + 10 * torch.arange(K).view(1, K, 1) for k in range(4)]
    x = interleave(*streams)
    assert x.shape == (B, 4 * K, 3)
    for t in range(K):
        for k in range(4):
            assert torch.all(x[:, 4 * t + k] == 10 * t + k)


@pytest.mark.parametrize("field, offsets", [
    ("rtg", [0]), ("ctg", [1]), ("states", [2]), ("actions", [3]), ("timesteps", [0, 1, 2, 3]),
])
def test_embedded_sequence_layout(model, field, offsets):
    """Changing one input of step t changes exactly the tokens of that type at step t."""
    x = inputs(model)
    embed = lambda d: model.embed(d["rtg"], d["ctg"], d["states"], d["actions"], d["timesteps"])  # noqa: E731
    base = embed(x)
    assert base.shape == (B, N_TOKEN_TYPES * K, model.config.embed_dim)
    t = 2
    y = {k: v.clone() for k, v in x.items()}
    y[field][:, t] = y[field][:, t] + 1
    changed = (embed(y) - base).abs().amax(dim=(0, 2)) > 1e-6  # (4K,)
    expected = torch.zeros(4 * K, dtype=torch.bool)
    expected[[4 * t + o for o in offsets]] = True
    assert torch.equal(changed, expected)


# ------------------------------------------------------------------------------ mask


def test_attention_mask_matches_naive():
    valid = torch.tensor([[False, False, True, True], [True, True, True, True], [False, True, True, True]])
    mask = token_attention_mask(valid)
    L = 4 * K
    assert mask.shape == (3, L, L)
    for b in range(3):
        for i in range(L):
            for j in range(L):
                vj = bool(valid[b, j // 4])
                assert bool(mask[b, i, j]) == (j > i or (not vj and j != i))
    assert not mask.all(dim=-1).any()  # every query attends to something


@pytest.mark.parametrize("train_mode", [False, True])
def test_causal_action_at_t_ignores_later_tokens(model, train_mode):
    model.train(train_mode)  # dropout is 0: train mode only switches the attention code path
    x = inputs(model)
    with torch.set_grad_enabled(train_mode):
        base = model(**x)
        for t in range(K):
            y = {k: v.clone() for k, v in x.items()}
            y["actions"][:, t:] += 1.0  # a_t is after s_t's token
            for f in ("rtg", "ctg", "states"):
                y[f][:, t + 1:] += 1.0
            out = model(**y)
            torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1], rtol=0, atol=1e-5)
            if t + 1 < K:
                assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])
            z = {k: v.clone() for k, v in x.items()}
            z["ctg"][:, t] += 1.0  # C_t precedes s_t: the prediction at t can see it
            assert not torch.allclose(model(**z)[:, t], base[:, t])


def test_padded_positions_are_invisible(model):
    valid = torch.tensor([[False, False, True, True], [False, True, True, True]])
    x = inputs(model, valid)
    base = model(**x)
    y = {k: (v.clone() if k == "valid" else v + 3.0 * (~valid).view(B, K, *([1] * (v.dim() - 2))))
         for k, v in x.items()}
    y["timesteps"] = y["timesteps"].long()
    out = model(**y)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[valid], base[valid], rtol=0, atol=1e-5)


def test_masked_mse_ignores_padding():
    pred, target = torch.zeros(1, 3, 2), torch.tensor([[[9.0, 9.0], [1.0, 1.0], [2.0, 0.0]]])
    valid = torch.tensor([[False, True, True]])
    assert masked_mse(pred, target, valid).item() == pytest.approx((1 + 1 + 4 + 0) / 4)


# ------------------------------------------------------------------------------ training windows


def test_gather_windows_match_naive_loop(episodes):
    ends = np.array([0, 3, 6, 7, 25, 41, 55])
    w = gather_windows(episodes, ends, K, return_shift=np.arange(7.0), cost_shift=-np.arange(7.0))
    for b, end in enumerate(ends):
        e = int(np.flatnonzero((episodes.bounds[:, 0] <= end) & (end < episodes.bounds[:, 1]))[0])
        start = episodes.bounds[e, 0]
        for k in range(K):
            i = end - (K - 1) + k
            assert w.valid[b, k] == (i >= start)
            if i >= start:
                assert w.timesteps[b, k] == i - start
                assert w.returns_to_go[b, k] == pytest.approx(episodes.rewards_to_go[i] + b, abs=1e-5)
                assert w.costs_to_go[b, k] == pytest.approx(episodes.costs_to_go[i] - b, abs=1e-5)
                np.testing.assert_array_equal(w.states[b, k], episodes.observations[i])
                np.testing.assert_array_equal(w.actions[b, k], episodes.actions[i])
            else:
                assert w.returns_to_go[b, k] == 0 and not w.states[b, k].any() and not w.actions[b, k].any()


def test_relabelled_windows_come_from_frontier_episodes_with_constant_shift(episodes):
    f = pareto_frontier(episodes.returns, episodes.cost_returns)
    w = sample_windows(np.random.default_rng(0), episodes, f, K, 64, augment_prob=1.0)
    frontier_eps = set(f.episode.tolist())
    for b in range(64):
        ts = w.timesteps[b][w.valid[b]]
        last = ts[-1]
        candidates = [e for e in frontier_eps if last < episodes.lengths[e]
                      and np.array_equal(episodes.observations[episodes.bounds[e, 0] + last], w.states[b, -1])]
        assert len(candidates) == 1
        idx = episodes.bounds[candidates[0], 0] + ts
        dr = w.returns_to_go[b][w.valid[b]] - episodes.rewards_to_go[idx]
        dc = w.costs_to_go[b][w.valid[b]] - episodes.costs_to_go[idx]
        np.testing.assert_allclose(dr, dr[0], atol=1e-4)  # one shift for the whole window
        np.testing.assert_allclose(dc, dc[0], atol=1e-4)
        assert dc[0] >= -1e-5


# ------------------------------------------------------------------------------ policy end to end


def rollout(policy, obs_seq, rewards, costs, budget, n_envs=3):
    policy.reset(n_envs, budget)
    acts, r, c = [], np.zeros(n_envs), np.zeros(n_envs)
    for t, obs in enumerate(obs_seq):
        acts.append(policy.act(obs, r, c))
        r, c = rewards[t], costs[t]
    return acts


def test_end_to_end_act_in_bounds_tracks_targets_and_save_load(episodes, tiny_cdt, tmp_path):
    policy = train_cdt(episodes, tiny_cdt, seed=0, steps=3, progress=False)
    assert isinstance(policy, Policy) and len(policy.losses) == 3 and np.all(np.isfinite(policy.losses))
    rng = np.random.default_rng(0)
    T = 6  # more steps than the context K = 4
    obs_seq = [rng.normal(size=(3, 3)) * (1e3 if t == 2 else 1.0) for t in range(T)]
    rewards, costs = rng.normal(size=(T, 3)), rng.random((T, 3))
    acts = rollout(policy, obs_seq, rewards, costs, budget=2.0)
    low, high = episodes.actions.min(0), episodes.actions.max(0)
    for a in acts:
        assert a.shape == (3, 2) and a.dtype == np.float32
        assert np.all(np.isfinite(a)) and np.all(a >= low) and np.all(a <= high)
    r0 = target_return(episodes, 2.0)
    assert policy.initial_return == r0
    np.testing.assert_allclose(policy.returns_to_go, r0 - rewards[:T - 1].sum(0))  # rewards after the last act unseen
    np.testing.assert_allclose(policy.costs_to_go, 2.0 - costs[:T - 1].sum(0))

    path = tmp_path / "cdt.pt"
    save_cdt(policy, path)
    loaded = load_cdt(path)
    assert loaded.config == policy.config and loaded.config.resolved
    for a, b in zip(acts, rollout(loaded, obs_seq, rewards, costs, budget=2.0)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"budget 0\.5.*smallest episode cost in the data is 1\b"):
        loaded.reset(3, 0.5)


def test_policy_matches_model_on_the_gathered_window(episodes, tiny_cdt):
    """Acting along a data episode (target = its own return and cost) feeds the model exactly the
    window ``gather_windows`` builds, with the policy's own past actions in the action slots."""
    policy = train_cdt(episodes, tiny_cdt, seed=1, steps=2, progress=False)
    e = 3
    start, end = episodes.bounds[e]
    policy.reset(1, float(episodes.cost_returns[e]), target_return=float(episodes.returns[e]))
    taken = []
    r, c = np.zeros(1), np.zeros(1)
    for t in range(7):
        i = start + t
        a = policy.act(episodes.observations[i:i + 1], r, c)
        taken.append(a[0])
        r, c = episodes.rewards[i:i + 1], episodes.costs[i:i + 1]
        w = gather_windows(episodes, [i], tiny_cdt.context_len)
        acts = w.actions.copy()
        n = min(t + 1, tiny_cdt.context_len)
        acts[0, -n:] = np.array(taken[-n:])
        acts[0, -1] = 0.0
        x = w.tensors("cpu")
        x["actions"] = torch.as_tensor(acts)
        with torch.no_grad():
            expected = policy.model(**x)[0, -1].numpy()
        np.testing.assert_allclose(a[0], expected, rtol=0, atol=1e-5)
        assert policy.returns_to_go[0] == pytest.approx(episodes.rewards_to_go[i])
        assert policy.costs_to_go[0] == pytest.approx(episodes.costs_to_go[i])


def test_same_seed_same_weights(episodes, tiny_cdt):
    runs = [train_cdt(episodes, tiny_cdt, seed=s, steps=2, progress=False) for s in (3, 3, 4)]
    w = [torch.cat([p.detach().flatten() for p in r.model.parameters()]) for r in runs]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_config_validation_and_resolution(episodes):
    with pytest.raises(ValueError, match=r"n_heads \(3\) must divide embed_dim \(16\)"):
        CDTConfig(embed_dim=16, n_heads=3)
    with pytest.raises(ValueError, match="augment_prob"):
        CDTConfig(augment_prob=1.5)
    m = build_cdt(episodes, CDTConfig(embed_dim=8, n_heads=2, n_layers=1))
    assert m.config.max_timestep == episodes.lengths.max()
    assert m.config.return_scale == pytest.approx(np.abs(episodes.returns).max())
    assert m.config.cost_scale == pytest.approx(episodes.cost_returns.max())
    with pytest.raises(ValueError, match="must be set"):
        type(m)(CDTConfig(), 3, 2, np.zeros(3), np.ones(3), -np.ones(2), np.ones(2), pareto_frontier([1.0], [0.0]))


def test_first_act_ignores_reward_and_cost_passed_after_reset(episodes, tiny_cdt):
    policy = train_cdt(episodes, tiny_cdt, seed=0, steps=1, progress=False)
    obs = np.zeros((3, 3))
    policy.reset(3, 10.0)
    a0 = policy.act(obs, np.full(3, 5.0), np.full(3, 5.0))
    np.testing.assert_array_equal(policy.returns_to_go, target_return(episodes, 10.0))
    np.testing.assert_array_equal(policy.costs_to_go, 10.0)
    policy.reset(3, 10.0)
    np.testing.assert_array_equal(policy.act(obs, np.zeros(3), np.zeros(3)), a0)
    policy.act(obs, np.full(3, 5.0), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(policy.costs_to_go, [9.0, 8.0, 7.0])
