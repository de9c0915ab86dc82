import math

import pytest
import torch

from tcdp_lib.method.diffusion import (
    SAMPLERS,
    apply_conditioning,
    cosine_alphas_cumprod,
    epsilon_loss,
    first_state_mask,
    linear_alphas_cumprod,
    make_alphas_cumprod,
    q_sample,
    sampling_timesteps,
)


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_schedules_decrease_in_unit_interval(name):
    ab = make_alphas_cumprod(name, 100).double()
    assert ab.shape == (100,)
    assert torch.all(ab[1:] < ab[:-1]) and ab[0] < 1 and ab[-1] > 0
    assert ab[0] > 0.99 and ab[-1] < 1e-3


def test_cosine_closed_form_away_from_clipping():
    ab = cosine_alphas_cumprod(50)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for k in (0, 10, 25, 40):
        assert ab[k] == pytest.approx(f((k + 1) / 50) / f(0), rel=1e-9)
    assert linear_alphas_cumprod(100)[0] == pytest.approx(1 - 1e-3)  # beta_0 = 1e-4 * 1000 / K


def test_q_sample_statistics():
    ab = make_alphas_cumprod("cosine", 100)
    k = 60
    x0 = torch.full((20000, 1, 1), 2.0)
    gen = torch.Generator().manual_seed(0)
    xk = q_sample(x0, torch.full((20000,), k), torch.randn(x0.shape, generator=gen), ab)
    a = ab[k].item()
    assert xk.mean().item() == pytest.approx(math.sqrt(a) * 2.0, abs=0.03)
    assert xk.var().item() == pytest.approx(1 - a, rel=0.05)


def oracle(x0, ab):
    """The perfect epsilon predictor for a known x0."""
    return lambda x, t: (x - ab[t].sqrt().view(-1, 1, 1) * x0) / (1 - ab[t]).sqrt().view(-1, 1, 1)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_with_oracle_recovers_x0(name):
    ab = make_alphas_cumprod("cosine", 100).double()
    x0 = torch.randn(3, 8, 2, dtype=torch.float64)
    x = torch.randn(3, 8, 2, dtype=torch.float64)
    out = SAMPLERS[name](oracle(x0, ab), x, ab, sampling_timesteps(100, 10))
    torch.testing.assert_close(out, x0, atol=1e-8, rtol=1e-8)


def test_single_ddim_step_with_oracle_stays_on_the_ray():
    ab = make_alphas_cumprod("cosine", 100).double()
    x0, eps = torch.randn(2, 4, 2, dtype=torch.float64), torch.randn(2, 4, 2, dtype=torch.float64)
    x = q_sample(x0, torch.full((2,), 70), eps, ab)
    out = SAMPLERS["ddim"](oracle(x0, ab), x, ab, [70])  # one step straight to alpha_bar = 1
    torch.testing.assert_close(out, x0)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_inpainted_entries_equal_known_values(name):
    ab = make_alphas_cumprod("cosine", 50)
    mask = first_state_mask(8, 3)
    known = torch.randn(4, 1, 3)
    model_fn = lambda x, t: torch.sin(x) + 0.1  # noqa: E731  an arbitrary eps model
    out = SAMPLERS[name](model_fn, torch.randn(4, 8, 3), ab, sampling_timesteps(50, 5), mask, known, clip_x0=3.0)
    assert torch.equal(out[:, 0], known[:, 0])
    assert torch.isfinite(out).all() and not torch.equal(out[:, 1:], torch.zeros_like(out[:, 1:]))


def test_apply_conditioning_and_loss_mask():
    x = torch.zeros(2, 4, 3)
    mask = first_state_mask(4, 3)
    out = apply_conditioning(x, mask, torch.ones(2, 1, 3))
    assert out[:, 0].eq(1).all() and out[:, 1:].eq(0).all()
    noise = torch.randn(2, 4, 3)
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    pred = noise.clone()
    pred[:, 0] += 100.0  # fixed (inpainted) state: ignored
    pred[0, 3] += 100.0  # padding: ignored
    pred[1, 2:] += 100.0  # padding: ignored
    assert epsilon_loss(pred, noise, valid, mask).item() == 0.0
    pred[0, 1, 0] += 1.0  # one of the 3 * 3 counted entries (rows 1-2 of sample 0, row 1 of sample 1)
    assert epsilon_loss(pred, noise, valid, mask).item() == pytest.approx(1 / 9)


def test_sampling_timesteps():
    assert sampling_timesteps(100, 10) == [99, 88, 77, 66, 55, 44, 33, 22, 11, 0]
    ts = sampling_timesteps(100, 20, t_start=9)
    assert ts == list(range(9, -1, -1))  # capped at the available steps
    with pytest.raises(ValueError, match="t_start"):
        sampling_timesteps(100, 5, t_start=100)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        make_alphas_cumprod("sigmoid", 10)
