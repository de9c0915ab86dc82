"""The budget condition encoder: it owns classifier-free guidance (CFG) dropout.

``BudgetEncoder`` embeds the remaining budget ``b_t`` (divided by a budget scale from config)
into the backbone's width ``D``. A learned null embedding stands for "unconditional": during
training each row is replaced by it with probability ``p_uncond`` (Ho & Salimans, 2022), and a
caller can ask for it explicitly (``mask`` rows, or ``null(n)``). The backbone only ever sees
an ``(N, D)`` vector.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from tcdp_lib.method.dit import TimestepEmbedder


class BudgetEncoder(nn.Module):
    """``forward(budget (N,), mask (N,) bool | None) -> (N, D)``; mask rows get the null embedding.

    The scaled budget ``b / budget_scale`` (about [0, 1]) is stretched to ``[0, resolution]`` and
    embedded like a diffusion step (sinusoidal features, then an MLP), so the budget vector has
    the same kind and size as the step embedding it is added to. (An MLP on the raw scalar gave
    a vector 20x smaller than the step embedding, and the backbone learned to ignore it.)
    """

    def __init__(self, d_model: int, budget_scale: float, p_uncond: float, resolution: float = 1000.0,
                 time_scale: float | None = None, return_scale: float | None = None):
        super().__init__()
        if not (math.isfinite(budget_scale) and budget_scale > 0):
            raise ValueError(f"budget_scale must be a finite number > 0, got {budget_scale}")
        if not 0 <= p_uncond < 1:
            raise ValueError(f"p_uncond must lie in [0, 1), got {p_uncond}")
        self.budget_scale = float(budget_scale)
        self.p_uncond = float(p_uncond)
        self.resolution = float(resolution)
        self.embedder = TimestepEmbedder(d_model)
        # The steps left in the episode, embedded the same way (``time_scale``: the episode
        # length). The remaining budget alone is ambiguous: 10 cost units left with 190 steps
        # to go and with 10 steps to go call for different behaviour.
        self.time_scale = None if time_scale is None else float(time_scale)
        self.time_embedder = TimestepEmbedder(d_model) if time_scale is not None else None
        # A target return-to-go, embedded the same way (CDD's second condition; ``return_scale``:
        # the data's largest episode return). Dropped together with the budget by CFG dropout.
        if return_scale is not None and not (math.isfinite(return_scale) and return_scale > 0):
            raise ValueError(f"return_scale must be None or a finite number > 0, got {return_scale}")
        self.return_scale = None if return_scale is None else float(return_scale)
        self.return_embedder = TimestepEmbedder(d_model) if return_scale is not None else None
        # The learned "no condition" embedding, at the scale of a budget embedding.
        self.null_embedding = nn.Parameter(torch.randn(d_model))

    def null(self, n: int, steps_left: torch.Tensor | None = None) -> torch.Tensor:
        """The unconditional embedding for ``n`` rows, ``(n, D)``: the learned null embedding in
        place of the budget (and target return), plus the steps-left embedding when this encoder
        has one. CFG's unconditional branch drops only the cost condition; with the steps left
        dropped too, ``w_cfg > 1`` also exaggerated the time signal (measured: twice the plans'
        kinematic inconsistency from ``w_cfg`` 1 to 4)."""
        null = self.null_embedding.unsqueeze(0).expand(int(n), -1)  # (n, D)
        if self.time_embedder is None:
            return null
        return null + self._time(steps_left, null.dtype)  # (n, D)

    def _time(self, steps_left: torch.Tensor | None, dtype) -> torch.Tensor:
        if steps_left is None:
            raise ValueError("this encoder is conditioned on the steps left: pass steps_left")
        frac = steps_left.to(dtype).clamp(0, self.time_scale) / self.time_scale * self.resolution
        return self.time_embedder(frac)  # (N, D)

    def forward(
        self,
        budget: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        steps_left: torch.Tensor | None = None,
        target_return: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed ``budget / budget_scale`` (plus the steps left and the target return when this
        encoder has them); rows in ``mask`` (and, in training, a random ``p_uncond`` share of
        rows) get the null embedding in place of the budget; the steps left are always embedded."""
        scaled = budget.to(self.null_embedding.dtype) / self.budget_scale * self.resolution  # (N,)
        emb = self.embedder(scaled)  # (N, D)
        if self.return_embedder is not None:
            if target_return is None:
                raise ValueError("this encoder is conditioned on a target return: pass target_return")
            frac = (target_return.to(emb.dtype) / self.return_scale).clamp(0, 2) * self.resolution
            emb = emb + self.return_embedder(frac)  # (N, D)
        drop = mask
        if self.training and self.p_uncond > 0:
            u = torch.rand(budget.shape[0], generator=generator, device=budget.device)  # (N,)
            drop = (u < self.p_uncond) if drop is None else (drop | (u < self.p_uncond))
        if drop is not None:
            emb = torch.where(drop.unsqueeze(-1), self.null_embedding, emb)  # (N, D)
        if self.time_embedder is not None:  # kept in both CFG branches (see ``null``)
            emb = emb + self._time(steps_left, emb.dtype)  # (N, D)
        return emb
