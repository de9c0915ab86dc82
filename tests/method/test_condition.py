import torch

from tcdp_lib.method.condition import BudgetEncoder


def test_dropout_only_in_training_at_rate_p():
    enc = BudgetEncoder(8, budget_scale=10.0, p_uncond=0.3)
    b = torch.linspace(0, 20, 4000)
    enc.train()
    out = enc(b, generator=torch.Generator().manual_seed(0))
    is_null = (out == enc.null_embedding).all(-1)
    assert abs(is_null.float().mean().item() - 0.3) < 0.03
    enc.eval()
    assert not (enc(b) == enc.null_embedding).all(-1).any()


def test_mask_rows_get_null_and_null_shape():
    enc = BudgetEncoder(8, budget_scale=10.0, p_uncond=0.0).eval()
    b = torch.tensor([1.0, 2.0, 3.0])
    mask = torch.tensor([True, False, True])
    out = enc(b, mask)
    torch.testing.assert_close(out[mask], enc.null(2))
    torch.testing.assert_close(out[1], enc(b)[1])
    assert enc.null(5).shape == (5, 8)


def test_budget_is_divided_by_scale():
    e1 = BudgetEncoder(8, budget_scale=1.0, p_uncond=0.0).eval()
    e2 = BudgetEncoder(8, budget_scale=40.0, p_uncond=0.0).eval()
    e2.load_state_dict(e1.state_dict())
    b = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(e2(40.0 * b), e1(b))


def test_bad_arguments():
    import pytest

    with pytest.raises(ValueError, match="budget_scale"):
        BudgetEncoder(8, budget_scale=0.0, p_uncond=0.1)
    with pytest.raises(ValueError, match="p_uncond"):
        BudgetEncoder(8, budget_scale=1.0, p_uncond=1.0)


def test_time_conditioned_encoder_depends_on_steps_left_and_requires_it():
    import pytest
    import torch

    from tcdp_lib.method.condition import BudgetEncoder

    torch.manual_seed(0)
    enc = BudgetEncoder(16, budget_scale=10.0, p_uncond=0.0, time_scale=200.0).eval()
    b = torch.tensor([5.0, 5.0])
    early, late = enc(b, steps_left=torch.tensor([200.0, 10.0]))
    assert not torch.allclose(early, late)
    with pytest.raises(ValueError, match="steps_left"):
        enc(b)
