import numpy as np
import pytest
import torch

from tcdp_lib.method.inverse_dynamics import InverseDynamics


def test_shapes_and_bounds():
    low, high = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 0.5, 2.0])  # last dim degenerate
    inv = InverseDynamics(4, 3, low, high, hidden=(16,))
    s = torch.randn(5, 7, 4) * 1000  # saturate the tanh
    a = inv(s, -s)
    assert a.shape == (5, 7, 3)
    assert torch.all(a >= torch.as_tensor(low, dtype=torch.float32))
    assert torch.all(a <= torch.as_tensor(high, dtype=torch.float32))
    assert torch.all(a[..., 2] == 2.0)
    assert (a[..., 0] > 0.99).any() and (a[..., 0] < -0.99).any()  # reaches both ends


def test_learns_a_simple_inverse_model():
    torch.manual_seed(0)
    inv = InverseDynamics(2, 2, [-1, -1], [1, 1], hidden=(32,))
    s = torch.randn(256, 2)
    a = torch.rand(256, 2) * 1.6 - 0.8
    s_next = s + a  # a = s_next - s
    opt = torch.optim.Adam(inv.parameters(), lr=1e-2)
    first = inv.loss(s, s_next, a).item()
    for _ in range(150):
        loss = inv.loss(s, s_next, a)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_mask_and_bad_bounds():
    inv = InverseDynamics(2, 1, [-1], [1], hidden=(8,))
    s = torch.zeros(2, 2)
    a = torch.tensor([[inv(s, s)[0, 0].item()], [5.0]])
    assert inv.loss(s, s, a, torch.tensor([True, False])).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="low <= high"):
        InverseDynamics(2, 1, [1.0], [-1.0])
    with pytest.raises(ValueError, match="shape"):
        InverseDynamics(2, 2, [0.0], [1.0])
