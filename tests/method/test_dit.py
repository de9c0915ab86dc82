import numpy as np
import pytest
import torch

from tcdp_lib.method.dit import DIT_PRESETS, DiT1D, DiTBlock, TimestepEmbedder, dit_from_size, sincos_pos_embed_1d


def tiny(**kw):
    args = dict(in_dim=3, horizon=8, d_model=16, depth=2, n_heads=2, patch_size=2)
    args.update(kw)
    return DiT1D(**args)


def test_untrained_block_is_identity():
    block = DiTBlock(16, 2)
    x, c = torch.randn(4, 5, 16), torch.randn(4, 16)
    torch.testing.assert_close(block(x, c), x, rtol=0, atol=0)
    model = tiny()
    for b in model.blocks:  # also after the model's own initialise_weights
        torch.testing.assert_close(b(x, c), x, rtol=0, atol=0)


def test_untrained_model_outputs_zeros_with_shapes():
    model = tiny()
    x = torch.randn(5, 8, 3)
    out = model(x, torch.randint(0, 100, (5,)), torch.randn(5, 16))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0


def test_trained_like_model_depends_on_inputs():
    model = tiny()
    with torch.no_grad():  # leave adaLN-Zero: random modulation and output layer
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, t = torch.randn(2, 8, 3), torch.tensor([5, 5])
    c1, c2 = torch.zeros(2, 16), torch.ones(2, 16)
    assert not torch.allclose(model(x, t, c1), model(x, t, c2))
    assert not torch.allclose(model(x, t, c1), model(x, torch.tensor([50, 50]), c1))
    # the patchify is over time: changing the last step changes only the last token's output
    x2 = x.clone()
    x2[:, -1] += 1.0
    model.blocks = torch.nn.ModuleList()  # no attention: tokens stay independent
    d = (model(x2, t, c1) - model(x, t, c1)).abs().sum(-1)  # (N, H)
    assert torch.all(d[:, :-2] == 0) and torch.all(d[:, -2:] > 0)


def test_presets_and_validation():
    s = DIT_PRESETS["S"]
    assert (s.d_model, s.depth, s.n_heads, s.patch_size) == (128, 2, 4, 4)
    assert set(DIT_PRESETS) == {"S", "M", "L"}
    model = dit_from_size(s, in_dim=8, horizon=32)
    assert model.n_tokens == 8
    assert model(torch.randn(2, 32, 8), torch.zeros(2), torch.zeros(2, 128)).shape == (2, 32, 8)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        tiny(horizon=7)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        tiny(n_heads=3)
    with pytest.raises(ValueError, match=r"\(N, 8, 3\)"):
        tiny()(torch.randn(1, 4, 3), torch.zeros(1), torch.zeros(1, 16))


def test_embeddings_closed_forms():
    pe = sincos_pos_embed_1d(4, 3)
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(3)), rtol=1e-6)
    np.testing.assert_allclose(pe[:, 2], np.cos(np.arange(3)), rtol=1e-6)
    np.testing.assert_allclose(pe[:, 1], np.sin(np.arange(3) / 100), rtol=1e-6)
    emb = TimestepEmbedder(8, frequency_embedding_size=4)
    assert emb(torch.tensor([0.0, 3.0])).shape == (2, 8)
