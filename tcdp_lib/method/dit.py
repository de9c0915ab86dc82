"""A 1-D DiT over time for state trajectories ``(N, H, obs_dim)``.

Follows facebookresearch/DiT ``models.py`` (Peebles & Xie, 2023) with the image patchify
replaced by a patchify over time: ``p`` consecutive time steps make one token, so a horizon
``H`` gives ``H / p`` tokens. Every block is conditioned through adaLN-Zero on one vector
``c = embed(k) + cond`` (diffusion step ``k`` plus the budget embedding from
``condition.BudgetEncoder``). The backbone never sees a classifier-free dropout flag: the
condition encoder owns that.

Sizes live in ``DIT_PRESETS``. Only ``"S"`` meets the planner's 30 ms replan target on two CPU
cores (DESIGN.md: d 128 depth 2 with 4 steps a token costs about 2 ms a CFG-pair pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------
#                                   Shared small layers
# --------------------------------------------------------------------------------------------


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation=nn.SiLU) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear``: the plain MLP used by the energy, inverse dynamics
    and budget encoder."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def sinusoidal_frequencies(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``omega_i = max_period^(-i / (dim / 2))`` for ``i = 0 .. dim/2 - 1``, shape ``(dim/2,)``."""
    if dim <= 0 or dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be a positive even number, got {dim}")
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)


def sinusoidal_embedding(t: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """``[cos(t * omega), sin(t * omega)]``: ``(N,)`` -> ``(N, 2 * len(omega))``.

    The order (cos first) follows DiT's ``TimestepEmbedder.timestep_embedding``.
    """
    args = t.to(freqs.dtype)[:, None] * freqs[None]  # (N, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, dim)


def sincos_pos_embed_1d(d_model: int, n_tokens: int) -> np.ndarray:
    """Fixed 1-D position embedding ``[sin(pos * omega), cos(pos * omega)]``, ``(T, D)``.

    ``omega_i = 10000^(-2i / D)``; from MAE's ``get_1d_sincos_pos_embed_from_grid``, which DiT
    uses per axis.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even for a sin-cos position embedding, got {d_model}")
    omega = 1.0 / 10000 ** (np.arange(d_model // 2, dtype=np.float64) / (d_model / 2.0))
    out = np.arange(n_tokens, dtype=np.float64)[:, None] * omega[None]  # (T, D/2)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1).astype(np.float32)  # (T, D)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x * (1 + scale) + shift`` with per-sample ``(N, D)`` shift and scale."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _zero_(layer: nn.Linear) -> None:
    nn.init.constant_(layer.weight, 0)
    nn.init.constant_(layer.bias, 0)


# --------------------------------------------------------------------------------------------
#                         Embedding layers for timesteps and tokens
# --------------------------------------------------------------------------------------------


class TimestepEmbedder(nn.Module):
    """Embeds scalar diffusion steps ``k`` into vectors: sinusoidal features, then an MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )
        self.register_buffer("freqs", sinusoidal_frequencies(frequency_embedding_size, max_period), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_freq = sinusoidal_embedding(t, self.freqs)  # (N, F)
        return self.mlp(t_freq)  # (N, D)


class PatchEmbed1D(nn.Module):
    """Patchify over time: ``p`` consecutive states ``(p, C)`` -> one ``D``-dim token.

    The 1-D analogue of DiT's ``PatchEmbed`` (a ``p``-stride convolution), written as a
    reshape plus one linear map.
    """

    def __init__(self, in_dim: int, patch_size: int, d_model: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(patch_size * in_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, c = x.shape
        x = x.reshape(n, h // self.patch_size, self.patch_size * c)  # (N, T, p * C)
        return self.proj(x)  # (N, T, D)


# --------------------------------------------------------------------------------------------
#                                      Core DiT model
# --------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention over the ``T`` time tokens (no mask: tokens see both ways)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.n_heads, d // self.n_heads)  # (N, T, 3, h, D/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (N, h, T, D/h)
        x = F.scaled_dot_product_attention(q, k, v)  # (N, h, T, D/h)
        x = x.transpose(1, 2).reshape(n, t, d)  # (N, T, D)
        return self.proj(x)  # (N, T, D)


class DiTBlock(nn.Module):
    """A DiT block with adaptive layer norm zero (adaLN-Zero) conditioning."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_model))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 6 * d_model))
        # adaLN-Zero: the modulation starts at zero, so both gates are 0 and the block is the
        # identity until training moves it (DiT, Sec. 3.2).
        _zero_(self.adaLN_modulation[-1])

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x (N, D)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))  # (N, T, D)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))  # (N, T, D)
        return x


class FinalLayer(nn.Module):
    """The final layer of DiT: adaLN, then a linear map from each token back to ``p`` states."""

    def __init__(self, d_model: int, patch_size: int, out_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(d_model, patch_size * out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 2 * d_model))
        # Zero-out the modulation and the output layer: the untrained model predicts eps = 0.
        _zero_(self.adaLN_modulation[-1])
        _zero_(self.linear)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2 x (N, D)
        x = modulate(self.norm_final(x), shift, scale)  # (N, T, D)
        return self.linear(x)  # (N, T, p * C)


class DiT1D(nn.Module):
    """Diffusion backbone over time: ``forward(x (N, H, C), t (N,), cond (N, D)) -> (N, H, C)``.

    The output has the shape of the input (an epsilon prediction).
    """

    def __init__(
        self,
        in_dim: int,
        horizon: int,
        d_model: int = 128,
        depth: int = 2,
        n_heads: int = 4,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        learned_pos_embed: bool = False,
    ):
        super().__init__()
        if horizon <= 0 or patch_size <= 0 or horizon % patch_size:
            raise ValueError(f"horizon ({horizon}) must be a positive multiple of patch_size ({patch_size})")
        if in_dim <= 0 or depth <= 0:
            raise ValueError(f"in_dim and depth must be positive, got in_dim={in_dim}, depth={depth}")
        self.in_dim = in_dim
        self.horizon = horizon
        self.patch_size = patch_size
        self.n_tokens = horizon // patch_size
        self.d_model = d_model

        self.x_embedder = PatchEmbed1D(in_dim, patch_size, d_model)
        self.t_embedder = TimestepEmbedder(d_model)
        pos = torch.from_numpy(sincos_pos_embed_1d(d_model, self.n_tokens)).unsqueeze(0)  # (1, T, D)
        if learned_pos_embed:
            self.pos_embed = nn.Parameter(pos)  # starts at the sin-cos table, then trains
        else:
            self.register_buffer("pos_embed", pos)  # fixed sin-cos, as in DiT
        self.blocks = nn.ModuleList([DiTBlock(d_model, n_heads, mlp_ratio) for _ in range(depth)])
        self.final_layer = FinalLayer(d_model, patch_size, in_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # Initialise transformer layers (DiT's _basic_init):
        def _basic_init(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)

        self.apply(_basic_init)
        # Initialise the timestep embedding MLP:
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # Zero-out adaLN modulation layers in DiT blocks (each block starts as the identity):
        for block in self.blocks:
            _zero_(block.adaLN_modulation[-1])
        # Zero-out output layers (the model starts by predicting zeros):
        _zero_(self.final_layer.adaLN_modulation[-1])
        _zero_(self.final_layer.linear)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n, h, c_dim = x.shape
        if h != self.horizon or c_dim != self.in_dim:
            raise ValueError(f"expected x of shape (N, {self.horizon}, {self.in_dim}), got {tuple(x.shape)}")
        x = self.x_embedder(x) + self.pos_embed  # (N, T, D)
        c = self.t_embedder(t) + cond  # (N, D)
        for block in self.blocks:
            x = block(x, c)  # (N, T, D)
        x = self.final_layer(x, c)  # (N, T, p * C)
        return x.reshape(n, h, c_dim)  # (N, H, C)  (unpatchify: tokens are consecutive steps)


# --------------------------------------------------------------------------------------------
#                                        DiT configs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiTSize:
    """One backbone size."""

    d_model: int
    """Token width ``D``."""
    depth: int
    """Number of DiT blocks."""
    n_heads: int
    """Attention heads (``D`` must be divisible by it)."""
    patch_size: int
    """Time steps per token ``p`` (the horizon must be divisible by it)."""
    mlp_ratio: float = 4.0
    """Hidden width of each block's MLP, as a multiple of ``D``."""


DIT_PRESETS: dict[str, DiTSize] = {
    # Default: ~2 ms a CFG-pair pass on 2 CPU cores, so a 10-step replan fits 30 ms.
    "S": DiTSize(d_model=128, depth=2, n_heads=4, patch_size=4),
    # Larger models for quality studies; too slow for the 30 ms replan target on CPU.
    "M": DiTSize(d_model=256, depth=4, n_heads=8, patch_size=4),
    "L": DiTSize(d_model=384, depth=6, n_heads=6, patch_size=4),
}


def dit_from_size(size: DiTSize, in_dim: int, horizon: int, learned_pos_embed: bool = False) -> DiT1D:
    """Build a ``DiT1D`` of the given size."""
    return DiT1D(
        in_dim,
        horizon,
        d_model=size.d_model,
        depth=size.depth,
        n_heads=size.n_heads,
        patch_size=size.patch_size,
        mlp_ratio=size.mlp_ratio,
        learned_pos_embed=learned_pos_embed,
    )
