import dataclasses

import numpy as np
import pytest
import torch

from tcdp_lib.method.ctgda import BudgetPrior, PairSample
from tcdp_lib.method.model import (
    TCDP,
    BackboneConfig,
    BudgetConfig,
    DiffusionConfig,
    EnergyConfig,
    InverseDynamicsConfig,
    TCDPConfig,
    make_batch,
    sample_batch,
)
from tcdp_lib.method.windows import Windows


def tiny_config(**kw):
    return TCDPConfig(
        horizon=8,
        backbone=BackboneConfig(d_model=16, depth=1, n_heads=2, patch_size=2),
        energy=EnergyConfig(hidden=(16,), t_embed_dim=8),
        inverse_dynamics=InverseDynamicsConfig(hidden=(16,)),
        **kw,
    )


def test_config_validation_and_roundtrip():
    with pytest.raises(ValueError, match="unknown DiT preset"):
        BackboneConfig(preset="XL")
    with pytest.raises(ValueError, match="unknown sampler"):
        DiffusionConfig(sampler="euler")
    with pytest.raises(ValueError, match="multiple of the patch size"):
        TCDPConfig(horizon=30)  # S preset: patch 4
    with pytest.raises(ValueError, match="p_uncond"):
        BudgetConfig(p_uncond=1.5)
    cfg = tiny_config(diffusion=DiffusionConfig(sampler="dpm_solver_2m", sampling_steps=15))
    assert TCDPConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TCDPConfig keys"):
        TCDPConfig.from_dict({"horizon": 8, "hoirzon": 8})
    assert TCDPConfig().backbone.size().d_model == 128


def test_from_episodes_resolves_data_fields(episodes):
    model = TCDP.from_episodes(episodes, tiny_config())
    assert model.config.budget.b_max == pytest.approx(episodes.cost_returns.max())
    assert model.config.budget.budget_scale == model.config.budget.b_max
    b = model.config.budget
    assert b.slack_scale == pytest.approx(0.05 * b.b_max)  # None resolves to 5% of b_max
    assert model.budget_prior() == BudgetPrior(0.0, b.b_max, p_slack=b.p_slack, slack_scale=b.slack_scale, power=b.prior_power)
    # the x0 clamp bounds: each dimension's range in the normalised data (observations and next ones)
    z = model.normalizer.normalize(np.concatenate([episodes.observations, episodes.next_observations]))
    np.testing.assert_allclose(model.x_low.numpy(), z.min(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.x_high.numpy(), z.max(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.obs_mean.numpy(), episodes.observations.mean(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="b_max"):
        TCDP(tiny_config(), 3, 2, model.normalizer, [-1, -1], [1, 1])


def test_losses_are_finite_scalars_and_train(episodes):
    model = TCDP.from_episodes(episodes, tiny_config())
    windows = Windows.from_episodes(episodes, 8)
    rng = np.random.default_rng(0)
    batch = sample_batch(rng, windows, model.budget_prior(), 32)
    assert batch.states.shape == (32, 8, 3) and batch.target.shape == (32,)
    assert torch.all((batch.target >= 0) & (batch.target <= 1))
    assert torch.all(batch.remaining_budget >= 0)
    gen = torch.Generator().manual_seed(0)
    losses = [model.loss_diffusion(batch, gen), model.loss_energy(batch, gen), model.loss_inv(batch)]
    for loss in losses:
        assert loss.ndim == 0 and torch.isfinite(loss)
    # a few steps on a fixed batch reduce the summed loss (with fixed noise)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def total():
        g = torch.Generator().manual_seed(1)
        return model.loss_diffusion(batch, g) + model.loss_energy(batch, g) + model.loss_inv(batch)
    model.encoder.p_uncond = 0.0  # deterministic loss for this check
    start = total().item()
    for _ in range(30):
        loss = total()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert total().item() < start


class PaddingBomb(torch.nn.Module):
    """Stub backbone: eps = 0 on the first 3 steps, 1e3 after them (where the window is padding)."""

    def forward(self, x, t, cond):
        out = torch.zeros_like(x)
        out[:, 3:] = 1e3
        return out


def test_diffusion_loss_masks_padding_and_the_inpainted_state(episodes):
    model = TCDP.from_episodes(episodes, tiny_config())
    windows = Windows.from_episodes(episodes, 8)
    end = int(episodes.bounds[0, 1])
    pairs = PairSample(np.array([end - 2]), np.array([1e6]), np.array([1e6]), 1)
    batch = make_batch(windows, pairs)
    assert batch.state_mask[0].tolist() == [True] * 3 + [False] * 5
    model.backbone = PaddingBomb()
    loss = model.loss_diffusion(batch, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # replay the loss's draws: timestep, then noise
    torch.randint(0, 100, (1,), generator=g)
    noise = torch.randn((1, 8, 3), generator=g)
    # counted: steps 1 and 2 (step 0 is inpainted, steps 3.. are padding)
    assert loss.item() == pytest.approx((noise[0, 1:3] ** 2).mean().item(), rel=1e-5)
    none = dataclasses.replace(batch, state_mask=torch.zeros_like(batch.state_mask))
    assert model.loss_diffusion(none).item() == 0.0


class ZeroEps(torch.nn.Module):
    """Stub backbone: eps = 0 everywhere, so the loss is the weighted mean of the noise squared."""

    def forward(self, x, t, cond):
        return torch.zeros_like(x)


@pytest.mark.parametrize("weight", [1.0, 10.0])
def test_first_planned_action_carries_its_weight_in_the_loss(episodes, weight):
    model = TCDP.from_episodes(episodes, tiny_config(plan_actions=True, action_weight=weight))
    o, a = model.obs_dim, model.act_dim
    assert model.x_dim == o + a
    expected_w = torch.ones(1, 8, o + a)
    expected_w[0, 0, o:] = weight  # the action taken now; the first state is inpainted
    torch.testing.assert_close(model.entry_weight, expected_w)
    windows = Windows.from_episodes(episodes, 8)
    batch = make_batch(windows, PairSample(np.array([int(episodes.bounds[0, 0])]), np.array([1e6]), np.array([1e6]), 1))
    model.backbone = ZeroEps()
    loss = model.loss_diffusion(batch, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # replay the loss's draws: timestep, then noise
    torch.randint(0, 100, (1,), generator=g)
    noise = torch.randn((1, 8, o + a), generator=g)
    w = (model.valid_entries(batch) & ~model.fix_mask).float() * expected_w
    assert w[0, 0, :o].sum() == 0 and w[0, 0, o:].sum() == weight * a  # the first action is a real entry
    assert loss.item() == pytest.approx(((noise ** 2) * w).sum().item() / w.sum().item(), rel=1e-5)


def test_action_weight_is_checked_and_idle_without_planned_actions(episodes):
    with pytest.raises(ValueError, match="action_weight"):
        tiny_config(action_weight=0.0)
    model = TCDP.from_episodes(episodes, tiny_config(action_weight=10.0))  # states only: nothing to weight
    assert model.x_dim == model.obs_dim and torch.all(model.entry_weight == 1)


def test_save_load_roundtrip(episodes, tmp_path):
    from tcdp_lib.runs.checkpoint import atomic_save, load_model, model_payload

    model = TCDP.from_episodes(episodes, tiny_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    atomic_save(model_payload(model, "OfflineBallCircle-v0", {"task": "OfflineBallCircle-v0"}), tmp_path / "m.pt")
    back, run_config = load_model(tmp_path / "m.pt", task="OfflineBallCircle-v0")
    assert back.config == model.config and run_config == {"task": "OfflineBallCircle-v0"}
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
