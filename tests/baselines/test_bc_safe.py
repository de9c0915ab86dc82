import math

import numpy as np
import pytest
import torch

from tcdp_lib.baselines import BCSafeConfig, Policy, load_bc_safe, safe_transitions, save_bc_safe, train_bc_safe
from tcdp_lib.baselines.bc_safe import LOSSES, gaussian_nll_loss, mse_loss
from tcdp_lib.data.episodes import Episodes


def naive_safe_transitions(episodes, budget):
    out = []
    for e, (start, end) in enumerate(episodes.bounds):
        cost = sum(episodes.costs[start:end])
        if cost <= budget:
            out.extend(range(start, end))
    return np.array(out, dtype=np.int64)


# ------------------------------------------------------------------------------ the filter


@pytest.mark.parametrize("budget", [1.0, 1.5, 2.0, 2.999, 3.0, 10.0, 1e6])
def test_safe_transitions_match_naive_loop(episodes, budget):
    idx = safe_transitions(episodes, budget)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, naive_safe_transitions(episodes, budget))


def test_safe_transitions_boundary_is_inclusive(episodes):
    # episode costs are [3, 2, 2, 10, 1, 2]: at b = 2 the three cost-2 episodes are kept
    assert list(episodes.cost_returns) == [3, 2, 2, 10, 1, 2]
    kept = safe_transitions(episodes, 2.0)
    lengths = episodes.lengths
    assert len(kept) == lengths[1] + lengths[2] + lengths[4] + lengths[5]
    assert len(safe_transitions(episodes, 1e6)) == lengths.sum()


@pytest.mark.parametrize("call", [
    lambda ep: safe_transitions(ep, 0.5),
    lambda ep: train_bc_safe(ep, 0.5, BCSafeConfig(hidden=(4,)), steps=1, progress=False),
])
def test_infeasible_budget_names_budget_and_smallest_cost(episodes, call):
    with pytest.raises(ValueError, match=r"budget 0\.5.*smallest episode cost in the data is 1\b"):
        call(episodes)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "ten", None])
def test_non_numeric_budget_rejected(episodes, bad):
    with pytest.raises(ValueError, match="budget must be a finite number"):
        safe_transitions(episodes, bad)


# ------------------------------------------------------------------------------ losses, config


def test_gaussian_nll_matches_torch_normal():
    torch.manual_seed(1)
    mean, log_std, a = torch.randn(5, 3), torch.randn(5, 3) * 0.5, torch.randn(5, 3)
    ref = -torch.distributions.Normal(mean, log_std.exp()).log_prob(a).mean()
    torch.testing.assert_close(gaussian_nll_loss(mean, log_std, a), ref)
    # unit variance: NLL = MSE / 2 + log(2 pi) / 2
    zero = torch.zeros_like(log_std)
    torch.testing.assert_close(gaussian_nll_loss(mean, zero, a), 0.5 * mse_loss(mean, zero, a) + 0.5 * math.log(2 * math.pi))


def test_config_rejects_unknown_loss_naming_choices():
    with pytest.raises(ValueError, match=r"'l1'.*\['mse', 'nll'\]"):
        BCSafeConfig(loss="l1")
    assert set(LOSSES) == {"mse", "nll"}


def test_config_round_trips_through_dict():
    cfg = BCSafeConfig(hidden=(8, 4), loss="nll")
    assert BCSafeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown BCSafeConfig keys"):
        BCSafeConfig.from_dict({**cfg.to_dict(), "bogus": 1})


# ------------------------------------------------------------------------------ training


def test_learns_only_from_safe_episodes(arrays):
    """Safe episodes act +0.5, unsafe ones -0.5: the clone at a tight budget acts +0.5."""
    data = arrays(lengths=(10, 10, 10, 10))
    starts = [0, 10, 20, 30]
    data["costs"] = np.zeros_like(data["costs"])
    for s, unsafe in zip(starts, [False, True, False, True]):
        data["actions"][s:s + 10] = -0.5 if unsafe else 0.5
        data["costs"][s] = 5.0 if unsafe else 0.0
    data["actions"][-1] = [-1.0, 1.0]  # trailing step (dropped by Episodes): fixes nothing
    ep = Episodes.from_arrays(data)
    policy = train_bc_safe(ep, 1.0, BCSafeConfig(hidden=(16,), batch_size=16, lr=1e-2), seed=0, steps=150,
                           progress=False, action_low=[-1, -1], action_high=[1, 1])
    policy.reset(4, 1.0)
    a = policy.act(ep.observations[:4], np.zeros(4), np.zeros(4))
    np.testing.assert_allclose(a, 0.5, atol=0.1)
    assert policy.losses[-10:].mean() < policy.losses[:10].mean()


def test_same_seed_same_weights_different_seed_different(episodes, tiny_bc):
    runs = [train_bc_safe(episodes, 3.0, tiny_bc, seed=s, steps=3, progress=False) for s in (7, 7, 8)]
    w = [torch.cat([p.detach().flatten() for p in r.model.parameters()]) for r in runs]
    assert torch.equal(w[0], w[1])
    assert not torch.equal(w[0], w[2])


@pytest.mark.parametrize("loss", ["mse", "nll"])
def test_end_to_end_act_in_bounds_and_save_load(episodes, tiny_bc, tmp_path, loss):
    cfg = BCSafeConfig(**{**tiny_bc.to_dict(), "loss": loss, "hidden": (16, 16)})
    policy = train_bc_safe(episodes, 2.0, cfg, seed=0, steps=4, progress=False)
    assert isinstance(policy, Policy)
    low, high = episodes.actions.min(0), episodes.actions.max(0)
    rng = np.random.default_rng(0)
    obs_seq = [rng.normal(size=(3, 3)) * scale for scale in (1.0, 1.0, 1e3, 1e-3)]  # incl. saturating inputs

    def rollout(p):
        p.reset(3, 2.0)
        out, r, c = [], np.zeros(3), np.zeros(3)
        for obs in obs_seq:
            a = p.act(obs, r, c)
            out.append(a)
            r, c = rng.normal(size=3), rng.random(3)
        return out

    acts = rollout(policy)
    for a in acts:
        assert a.shape == (3, 2) and a.dtype == np.float32
        assert np.all(np.isfinite(a)) and np.all(a >= low) and np.all(a <= high)
    assert not np.allclose(acts[0], acts[2])  # depends on the observation

    path = tmp_path / "bc.pt"
    save_bc_safe(policy, path)
    loaded = load_bc_safe(path)
    assert loaded.budget == 2.0 and loaded.config == cfg
    for a, b in zip(acts, rollout(loaded)):
        np.testing.assert_array_equal(a, b)


def test_policy_rejects_wrong_budget_and_bad_inputs(episodes, tiny_bc):
    policy = train_bc_safe(episodes, 2.0, tiny_bc, steps=1, progress=False)
    with pytest.raises(RuntimeError, match="reset"):
        policy.act(np.zeros((3, 3)), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="trained for budget 2.*got budget 3"):
        policy.reset(3, 3.0)
    with pytest.raises(ValueError, match="n_envs"):
        policy.reset(0, 2.0)
    policy.reset(3, 2.0)
    with pytest.raises(ValueError, match=r"obs must have shape \(3, 3\).*\(2, 3\)"):
        policy.act(np.zeros((2, 3)), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="cost must have shape"):
        policy.act(np.zeros((3, 3)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="obs must be finite"):
        policy.act(np.full((3, 3), np.nan), np.zeros(3), np.zeros(3))


def test_load_refuses_other_checkpoints(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"method": "cdt"}, path)
    with pytest.raises(ValueError, match=r"not a 'bc_safe' checkpoint \(method: 'cdt'\)"):
        load_bc_safe(path)
    with pytest.raises(FileNotFoundError):
        load_bc_safe(tmp_path / "missing.pt")
