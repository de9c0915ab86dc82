"""BC-Safe: behaviour cloning on the episodes that satisfy the budget (DSRL / OSRL baseline).

For a budget ``b``, keep the transitions of the episodes with ``C <= b`` and fit an MLP policy
``pi(s)`` to their actions. One model per budget: a new budget means a new training run.

The policy is an MLP on the normalised observation with a tanh output mapped affinely onto the
action box ``[low, high]``, so every action it returns is valid. Two losses (``LOSSES``):
- ``"mse"``: ``|| mu(s) - a ||^2``;
- ``"nll"``: the negative log-likelihood of ``a`` under ``N(mu(s), diag sigma(s)^2)``, where the
  mean ``mu`` is the squashed output and ``log sigma`` a second head clamped to
  ``[min_log_std, max_log_std]``. Acting uses the mean ``mu(s)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import trange

from tcdp_lib.baselines.common import (
    action_box,
    check_budget,
    config_from_dict,
    fit_obs_stats,
    load_checkpoint,
    require_feasible,
    resolve_device,
    save_checkpoint,
    squash_to_box,
)
from tcdp_lib.baselines.policy import check_n_envs, check_step_inputs
from tcdp_lib.data.episodes import Episodes

METHOD = "bc_safe"


# --------------------------------------------------------------------------------------------
#                                      The data filter
# --------------------------------------------------------------------------------------------


def safe_transitions(episodes: Episodes, budget: float) -> np.ndarray:
    """Flat indices of the transitions of the feasible episodes: ``{i : i in e, C_e <= b}``.

    Ascending ``int64``. ``ValueError`` (naming ``b`` and the smallest episode cost) if no
    episode is feasible.
    """
    feasible = require_feasible(episodes.cost_returns, budget)
    bounds = episodes.bounds[feasible]
    if len(bounds) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in bounds])


# --------------------------------------------------------------------------------------------
#                                          Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BCSafeConfig:
    """Everything that defines a BC-Safe model and its training; saved with every checkpoint."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP."""
    loss: str = "mse"
    """Training loss, a key of ``LOSSES``: ``"mse"`` or ``"nll"`` (Gaussian negative log-likelihood)."""
    min_log_std: float = -5.0
    """Lower clamp of ``log sigma`` for the ``"nll"`` loss."""
    max_log_std: float = 1.0
    """Upper clamp of ``log sigma`` for the ``"nll"`` loss."""
    batch_size: int = 256
    """Transitions per gradient step (drawn uniformly, with replacement, from the safe set)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    steps: int = 10_000
    """Gradient steps when ``train_bc_safe`` is not given ``steps``."""

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown BC-Safe loss {self.loss!r}; valid choices: {sorted(LOSSES)}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {self.hidden!r}")
        if not self.min_log_std < self.max_log_std:
            raise ValueError(f"need min_log_std < max_log_std, got {self.min_log_std} and {self.max_log_std}")
        for name in ("batch_size", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BCSafeConfig":
        return config_from_dict(cls, d)


# --------------------------------------------------------------------------------------------
#                                          Losses
# --------------------------------------------------------------------------------------------


def mse_loss(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """``mean_{i,j} (mu_ij - a_ij)^2`` (``log_std`` unused)."""
    return ((mean - action) ** 2).mean()


def gaussian_nll_loss(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """``mean_{i,j} [ (a_ij - mu_ij)^2 / (2 sigma_ij^2) + log sigma_ij + log(2 pi) / 2 ]``."""
    z = (action - mean) * torch.exp(-log_std)
    return (0.5 * z**2 + log_std + 0.5 * math.log(2.0 * math.pi)).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse_loss,
    "nll": gaussian_nll_loss,
}
"""Behaviour-cloning losses ``(mean, log_std, action) -> scalar``."""


# --------------------------------------------------------------------------------------------
#                                          Model
# --------------------------------------------------------------------------------------------


class ActionDistribution(NamedTuple):
    """A diagonal Gaussian over actions; ``mean`` lies in the action box."""

    mean: torch.Tensor  # (B, act_dim)
    log_std: torch.Tensor  # (B, act_dim)


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class BCSafe(nn.Module):
    """``forward(obs (B, obs_dim)) -> ActionDistribution``; normaliser and action box as buffers."""

    def __init__(self, config: BCSafeConfig, obs_dim: int, act_dim: int, obs_mean, obs_std, action_low, action_high):
        super().__init__()
        self.config = config
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean, np.float32).reshape(obs_dim)))
        self.register_buffer("obs_std", torch.as_tensor(np.asarray(obs_std, np.float32).reshape(obs_dim)))
        self.register_buffer("action_low", torch.as_tensor(np.asarray(action_low, np.float32).reshape(act_dim)))
        self.register_buffer("action_high", torch.as_tensor(np.asarray(action_high, np.float32).reshape(act_dim)))
        self.net = _mlp(self.obs_dim, config.hidden, 2 * self.act_dim)  # mean logits and log std

    def forward(self, obs: torch.Tensor) -> ActionDistribution:
        z = (obs - self.obs_mean) / self.obs_std  # (B, obs_dim)
        out = self.net(z)  # (B, 2 * act_dim)
        raw_mean, raw_log_std = out.chunk(2, dim=-1)  # (B, act_dim) each
        mean = squash_to_box(raw_mean, self.action_low, self.action_high)  # (B, act_dim)
        log_std = raw_log_std.clamp(self.config.min_log_std, self.config.max_log_std)  # (B, act_dim)
        return ActionDistribution(mean, log_std)

    def loss(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The configured ``LOSSES[config.loss]`` on a batch of transitions."""
        dist = self(obs)
        return LOSSES[self.config.loss](dist.mean, dist.log_std, action)


# --------------------------------------------------------------------------------------------
#                                          Policy
# --------------------------------------------------------------------------------------------


class BCSafePolicy:
    """A trained BC-Safe model for one budget, behind the ``Policy`` interface.

    ``reset`` refuses a budget other than the one the model was trained for (BC-Safe trains one
    model per budget). ``losses`` holds the training loss of each step (empty after loading).
    """

    def __init__(self, model: BCSafe, budget: float, device: str | torch.device | None = None, losses=()):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.budget = check_budget(budget)
        self.losses = np.asarray(losses, dtype=np.float64)
        self._n_envs: int | None = None

    @property
    def config(self) -> BCSafeConfig:
        return self.model.config

    def reset(self, n_envs: int, budget: float) -> None:
        b = check_budget(budget)
        if not np.isclose(b, self.budget, rtol=1e-9, atol=1e-9):
            raise ValueError(
                f"this BC-Safe policy was trained for budget {self.budget:g}, got budget {b:g}; "
                "train one policy per budget"
            )
        self._n_envs = check_n_envs(n_envs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: np.ndarray, cost: np.ndarray) -> np.ndarray:
        obs, _, _ = check_step_inputs(obs, reward, cost, self._n_envs, self.model.obs_dim)
        mean = self.model(torch.as_tensor(obs, device=self.device)).mean  # (B, act_dim)
        return mean.cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------------------------
#                                          Training
# --------------------------------------------------------------------------------------------


def build_bc_safe(episodes: Episodes, config: BCSafeConfig | None = None, action_low=None, action_high=None) -> BCSafe:
    """An untrained model whose normaliser is fitted on all observations and whose action box
    is ``[action_low, action_high]`` (default: the data's min / max action)."""
    config = config or BCSafeConfig()
    stats = fit_obs_stats(episodes.observations)
    low, high = action_box(episodes, action_low, action_high)
    return BCSafe(config, episodes.obs_dim, episodes.act_dim, stats.mean, stats.std, low, high)


def train_bc_safe(
    episodes: Episodes,
    budget: float,
    config: BCSafeConfig | None = None,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    action_low=None,
    action_high=None,
) -> BCSafePolicy:
    """Fit BC-Safe for ``budget`` on ``safe_transitions(episodes, budget)``.

    ``steps`` defaults to ``config.steps``. Reproducible: ``torch.manual_seed(seed)`` before the
    model is built and a ``numpy`` ``Generator(seed)`` for the batches.
    """
    config = config or BCSafeConfig()
    steps = config.steps if steps is None else int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    budget = check_budget(budget)
    idx = safe_transitions(episodes, budget)
    device = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_bc_safe(episodes, config, action_low, action_high).to(device)
    obs = torch.as_tensor(episodes.observations[idx], device=device)  # (n, obs_dim)
    act = torch.as_tensor(episodes.actions[idx], device=device)  # (n, act_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    losses = np.zeros(steps)
    model.train()
    bar = trange(steps, desc=f"BC-Safe b={budget:g}", disable=not progress)
    for step in bar:
        batch = torch.as_tensor(rng.integers(0, len(idx), size=config.batch_size), device=device)
        loss = model.loss(obs[batch], act[batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.item()
        if step % 100 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{losses[step]:.4f}")
    return BCSafePolicy(model, budget, device, losses)


# --------------------------------------------------------------------------------------------
#                                         Save / load
# --------------------------------------------------------------------------------------------


def save_bc_safe(policy: BCSafePolicy, path) -> None:
    """One file: the budget, the config (as a dict), the dimensions and the weights."""
    m = policy.model
    save_checkpoint(
        path,
        METHOD,
        budget=policy.budget,
        config=m.config.to_dict(),
        obs_dim=m.obs_dim,
        act_dim=m.act_dim,
        state_dict={k: v.detach().cpu() for k, v in m.state_dict().items()},
    )


def load_bc_safe(path, device: str | torch.device | None = None) -> BCSafePolicy:
    """The ``BCSafePolicy`` saved by ``save_bc_safe`` at ``path``."""
    ckpt = load_checkpoint(path, METHOD, ("budget", "config", "obs_dim", "act_dim", "state_dict"))
    sd = ckpt["state_dict"]
    model = BCSafe(
        BCSafeConfig.from_dict(ckpt["config"]),
        ckpt["obs_dim"],
        ckpt["act_dim"],
        sd["obs_mean"].numpy(),
        sd["obs_std"].numpy(),
        sd["action_low"].numpy(),
        sd["action_high"].numpy(),
    )
    model.load_state_dict(sd)
    return BCSafePolicy(model, ckpt["budget"], device)
