import pytest
import torch

from tcdp_lib.method.condition import BudgetEncoder
from tcdp_lib.method.diffusion import SAMPLERS, make_alphas_cumprod, sampling_timesteps
from tcdp_lib.method.guidance import EnergyGradient, EnergyModel, cfg_combine, energy_guide, guided_eps


def test_cfg_combine_edges():
    eps_u, eps_c = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert torch.equal(cfg_combine(eps_u, eps_c, 0.0), eps_u)
    torch.testing.assert_close(cfg_combine(eps_u, eps_c, 1.0), eps_c)
    torch.testing.assert_close(cfg_combine(eps_u, eps_c, 2.0), 2 * eps_c - eps_u)


class CondBackbone(torch.nn.Module):
    """eps = mean of the condition vector (so conditional and null differ), counting calls."""

    calls = 0

    def forward(self, x, t, cond):
        self.calls += 1
        return x * 0 + cond.mean(-1).view(-1, 1, 1)


@pytest.fixture
def parts():
    enc = BudgetEncoder(8, budget_scale=10.0, p_uncond=0.2).eval()
    return CondBackbone(), enc, torch.tensor([1.0, 7.0]), make_alphas_cumprod("cosine", 20)


def test_guided_eps_w0_unconditional_w1_conditional(parts):
    bb, enc, b, ab = parts
    x, t = torch.randn(2, 4, 3), torch.full((2,), 5)
    eps_c = bb(x, t, enc(b))
    eps_u = bb(x, t, enc.null(2))
    assert not torch.allclose(eps_c, eps_u)
    torch.testing.assert_close(guided_eps(bb, enc, b, ab, w_cfg=0.0)(x, t), eps_u)
    torch.testing.assert_close(guided_eps(bb, enc, b, ab, w_cfg=1.0)(x, t), eps_c)
    bb.calls = 0
    out = guided_eps(bb, enc, b, ab, w_cfg=1.5)(x, t)
    assert bb.calls == 1  # conditional and unconditional passes batched in one forward
    torch.testing.assert_close(out, cfg_combine(eps_u, eps_c, 1.5))


class LinearEnergy:
    """Hand-set energy E(x) = <w, x>, gradient w."""

    def __init__(self, w):
        self.w = w

    def value(self, x):
        return (x * self.w).flatten(1).sum(-1)

    def gradients(self, x, t, c=None, steps_left=None):
        return EnergyGradient(self.value(x), self.w.expand_as(x))


def test_energy_guide_closed_form():
    eps, g = torch.randn(3, 2, 2), torch.randn(3, 2, 2)
    a = torch.tensor(0.36)
    torch.testing.assert_close(energy_guide(eps, g, a, 0.5), eps - 0.5 * 0.8 * g)
    assert torch.equal(energy_guide(eps, g, a, 0.0), eps)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_energy_guidance_moves_samples_to_higher_value(parts, name):
    bb, enc, b, ab = parts
    energy = LinearEnergy(torch.randn(1, 4, 3))
    x_T = torch.randn(2, 4, 3)
    ts = sampling_timesteps(20, 5)
    plain = SAMPLERS[name](guided_eps(bb, enc, b, ab, 1.0), x_T, ab, ts)
    guided = SAMPLERS[name](guided_eps(bb, enc, b, ab, 1.0, beta=0.05, energy=energy), x_T, ab, ts)
    assert torch.all(energy.value(guided) > energy.value(plain))
    # and one step: the guided x0 estimate has higher value than the unguided one
    t = torch.full((2,), 10)
    a = ab[10]
    x0 = lambda eps: (x_T - (1 - a).sqrt() * eps) / a.sqrt()  # noqa: E731
    e0 = guided_eps(bb, enc, b, ab, 1.0)(x_T, t)
    e1 = guided_eps(bb, enc, b, ab, 1.0, beta=0.05, energy=energy)(x_T, t)
    assert torch.all(energy.value(x0(e1)) > energy.value(x0(e0)))


def test_energy_model_gradients_match_finite_differences_under_inference_mode():
    em = EnergyModel(horizon=4, obs_dim=2, hidden=(16,), t_embed_dim=8, budget_scale=10.0).double()
    x, t, c = torch.randn(3, 4, 2, dtype=torch.float64), torch.tensor([0, 5, 9]), torch.tensor([1.0, 2.0, 3.0])
    with torch.inference_mode():
        value, grad = em.gradients(x, t, c)
    assert value.shape == (3,) and grad.shape == x.shape
    h = 1e-6
    dx = torch.zeros_like(x)
    dx[1, 2, 1] = h
    with torch.no_grad():
        fd = (em(x + dx, t, c) - em(x - dx, t, c))[1] / (2 * h)
    assert grad[1, 2, 1].item() == pytest.approx(fd.item(), rel=1e-5)
    with pytest.raises(ValueError, match="budget-conditioned"):
        em(x, t)
    assert EnergyModel(4, 2, hidden=(8,))(x.float(), t).shape == (3,)  # unconditioned variant


def test_beta_without_energy_is_an_error(parts):
    bb, enc, b, ab = parts
    with pytest.raises(ValueError, match="energy"):
        guided_eps(bb, enc, b, ab, 1.0, beta=1.0)
