"""CDT: a small Constrained Decision Transformer (Liu et al., 2023, "Constrained Decision
Transformer for Offline Safe Reinforcement Learning").

One model for all budgets: the policy is conditioned on a target return-to-go and a target
cost-to-go, and the budget enters only as the initial cost-to-go.

Token layout
------------
Each timestep ``t`` of a context of ``K`` steps gives four tokens, in this order
(``TOKEN_TYPES``)::

    position 4t + 0   return-to-go  R_t = sum_{t' >= t} r_t'      (scaled by 1 / return_scale)
    position 4t + 1   cost-to-go    C_t = sum_{t' >= t} c_t'      (scaled by 1 / cost_scale)
    position 4t + 2   state         s_t                           (normalised with data mean / std)
    position 4t + 3   action        a_t

so the embedded sequence is ``(B, 4K, d)``:
``[R_0, C_0, s_0, a_0, R_1, C_1, s_1, a_1, ..., R_{K-1}, C_{K-1}, s_{K-1}, a_{K-1}]``. Every token
of step ``t`` also gets a learned embedding of the absolute episode timestep. A causal mask lets
position ``i`` attend to positions ``j <= i`` only, so the action ``a_t`` is predicted from the
output at the *state* token ``4t + 2``, which has seen ``R_<=t, C_<=t, s_<=t, a_<t`` and nothing
later. Contexts shorter than ``K`` (the first steps of an episode) are left-padded; padded
positions are hidden from every real position by the same mask (each padded position attends
only to itself, so no attention row is empty).

Training windows end at a uniformly drawn transition ``t`` and hold steps ``t-K+1 .. t`` of its
episode with their reward-to-go and cost-to-go; the loss is the MSE of the predicted actions at
every real position. Acting keeps the last ``K`` steps per environment and starts from
``C_0 = b`` and ``R_0 = max{R_e : C_e <= b}`` (``target_return``).

Return relabelling (the paper's data augmentation, Sec. 4.3; OSRL ``augmentation``)
-----------------------------------------------------------------------------------
A fraction ``augment_prob`` of each batch is drawn from targets ``(rho, kappa)`` on or above
the data's reward/cost Pareto frontier: ``kappa ~ U[min C, max C]``,
``rho ~ U[r_max(kappa), max R]``. Each target is answered by the best episode feasible at
``kappa`` (``relabel_targets``), with its labels shifted to start at the target. The model
learns: asked for more reward than the data achieves at cost ``kappa``, behave like the best
episode that is safe at ``kappa`` (safety first). The frontier here is the exact step function
``r_max`` of the data, not the polynomial fit and nearest-point search of OSRL.

Kept small on purpose: deterministic tanh-squashed action head with an MSE loss; the paper's
stochastic policy with entropy regularisation and its auxiliary return prediction are left out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

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
    resolve_device,
    save_checkpoint,
    squash_to_box,
)
from tcdp_lib.baselines.policy import check_n_envs, check_step_inputs
from tcdp_lib.data.episodes import Episodes
from tcdp_lib.data.frontier import Frontier, episodes_frontier, pareto_frontier

METHOD = "cdt"

TOKEN_TYPES = ("return_to_go", "cost_to_go", "state", "action")
"""The four tokens of one timestep, in sequence order."""
N_TOKEN_TYPES = len(TOKEN_TYPES)
STATE_TOKEN = TOKEN_TYPES.index("state")
"""Offset of the state token within a timestep: the action is read from its output."""


# --------------------------------------------------------------------------------------------
#                                   Pareto frontier, targets
# --------------------------------------------------------------------------------------------


# ``Frontier`` and ``pareto_frontier`` live in ``tcdp_lib.data.frontier`` (re-exported here).


def target_return(episodes: Episodes, budget: float) -> float:
    """``R_0(b) = max{R_e : C_e <= b}``: the best feasible episode return in the data.

    ``ValueError`` (naming ``b`` and the smallest episode cost) if no episode is feasible.
    """
    b = check_budget(budget)
    return float(episodes_frontier(episodes).best_return(b))


@dataclass(frozen=True, eq=False)
class Relabeled:
    """Which episode answers each target, and the shifts of its return / cost labels."""

    episode: np.ndarray
    """``(M,)`` ``e*(kappa)``, the best episode feasible at the target cost."""
    return_shift: np.ndarray
    """``(M,)`` ``rho - R_{e*}``, added to every return-to-go of the episode."""
    cost_shift: np.ndarray
    """``(M,)`` ``kappa - C_{e*} >= 0``, added to every cost-to-go of the episode."""


def relabel_targets(returns, costs, target_return, target_cost) -> Relabeled:
    """CDT return relabelling: a target ``(rho, kappa)`` is answered by

        e*(kappa) = argmax_{e : C_e <= kappa} R_e,

    whose labels are shifted so that they start at the target:

        R^_t = R_t^{e*} + (rho - R_{e*}),    C^_t = C_t^{e*} + (kappa - C_{e*}).

    For ``rho > r_max(kappa)`` (a target above the frontier, which no episode achieves) this is the
    paper's relabelling: the infeasible request gets the maximal return achievable at that cost.
    ``ValueError`` if some ``kappa`` is below every episode cost.
    """
    rho = np.asarray(target_return, dtype=np.float64).reshape(-1)
    kappa = np.asarray(target_cost, dtype=np.float64).reshape(-1)
    if rho.shape != kappa.shape:
        raise ValueError(f"target_return and target_cost must have equal length, got {rho.shape} and {kappa.shape}")
    if not np.all(np.isfinite(rho)):
        raise ValueError("target returns must be finite (got NaN or inf)")
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    e = pareto_frontier(r, c).best_episode(kappa)
    return Relabeled(episode=e, return_shift=rho - r[e], cost_shift=kappa - c[e])


def sample_frontier_targets(rng: np.random.Generator, frontier: Frontier, max_return: float, n: int):
    """``n`` targets on or above the frontier: ``kappa ~ U[min C, max C]``,
    ``rho ~ U[r_max(kappa), max R]``. Returns ``(rho (n,), kappa (n,))``."""
    kappa = rng.uniform(frontier.costs[0], frontier.costs[-1], size=n)
    lo = frontier.best_return(kappa)
    rho = lo + rng.random(n) * (max(max_return, frontier.returns[-1]) - lo)
    return rho, kappa


# --------------------------------------------------------------------------------------------
#                                          Config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CDTConfig:
    """Everything that defines a CDT model and its training; saved with every checkpoint.

    Fields left ``None`` are resolved from the data by ``resolve_cdt_config``.
    """

    context_len: int = 10
    """``K``: timesteps of context (``4K`` tokens)."""
    embed_dim: int = 128
    """Token width ``d``."""
    n_layers: int = 3
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads (must divide ``embed_dim``)."""
    ff_mult: int = 4
    """Feed-forward width as a multiple of ``embed_dim``."""
    dropout: float = 0.1
    """Dropout in the transformer blocks and on the embedded tokens."""
    max_timestep: int | None = None
    """Size of the timestep embedding; ``None``: the longest episode. Later steps reuse the last row."""
    return_scale: float | None = None
    """Return-to-go tokens are ``R_t / return_scale``; ``None``: ``max_e |R_e|``."""
    cost_scale: float | None = None
    """Cost-to-go tokens are ``C_t / cost_scale``; ``None``: ``max_e C_e``."""
    augment_prob: float = 0.2
    """Fraction of each batch drawn from the return relabelling (``relabel_targets``); 0 disables it."""
    batch_size: int = 64
    """Windows per gradient step."""
    lr: float = 1e-4
    """AdamW learning rate (after warm-up)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warm-up."""
    grad_clip: float = 0.25
    """Gradient-norm clip."""
    steps: int = 10_000
    """Gradient steps when ``train_cdt`` is not given ``steps``."""

    def __post_init__(self):
        for name in ("context_len", "embed_dim", "n_layers", "n_heads", "ff_mult", "batch_size", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.n_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must divide embed_dim ({self.embed_dim})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.augment_prob <= 1.0:
            raise ValueError(f"augment_prob must be in [0, 1], got {self.augment_prob}")
        if self.max_timestep is not None and self.max_timestep < 1:
            raise ValueError(f"max_timestep must be >= 1 or None, got {self.max_timestep}")
        for name in ("return_scale", "cost_scale"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be > 0 or None, got {v}")
        if not self.lr > 0 or self.warmup_steps < 0 or not self.grad_clip > 0:
            raise ValueError(
                f"need lr > 0, warmup_steps >= 0, grad_clip > 0; got {self.lr}, {self.warmup_steps}, {self.grad_clip}"
            )

    @property
    def resolved(self) -> bool:
        return None not in (self.max_timestep, self.return_scale, self.cost_scale)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CDTConfig":
        return config_from_dict(cls, d)


def resolve_cdt_config(config: CDTConfig | None, episodes: Episodes) -> CDTConfig:
    """Fill the ``None`` fields from the data: ``max_timestep = max_e len_e``,
    ``return_scale = max_e |R_e|``, ``cost_scale = max_e C_e``."""
    config = config or CDTConfig()
    if episodes.num_episodes == 0:
        raise ValueError("the data has no complete episode")
    max_t = config.max_timestep or int(episodes.lengths.max())
    r_scale = config.return_scale or float(np.max(np.abs(episodes.returns)))
    c_scale = config.cost_scale or float(np.max(episodes.cost_returns))
    if not r_scale > 0:
        raise ValueError(f"return_scale resolved to {r_scale} (all episode returns are 0); set config.return_scale")
    if not c_scale > 0:
        raise ValueError(f"cost_scale resolved to {c_scale} (the data has no cost); set config.cost_scale")
    return dataclasses.replace(config, max_timestep=max_t, return_scale=r_scale, cost_scale=c_scale)


# --------------------------------------------------------------------------------------------
#                                    Token layout and mask
# --------------------------------------------------------------------------------------------


def interleave(*streams: torch.Tensor) -> torch.Tensor:
    """``n`` streams ``(B, K, d)`` -> ``(B, n K, d)`` with position ``n t + k`` = ``streams[k][:, t]``."""
    x = torch.stack(streams, dim=2)  # (B, K, n, d)
    return x.reshape(x.shape[0], -1, x.shape[-1])  # (B, n K, d)


def token_attention_mask(valid: torch.Tensor, n_types: int = N_TOKEN_TYPES) -> torch.Tensor:
    """``blocked[b, i, j] = (j > i) or (not v[b, j] and j != i)``, ``v`` = ``valid`` repeated per token.

    ``valid (B, K)`` bool -> ``(B, n K, n K)`` bool, ``True`` where attention is forbidden:
    causal, and padded keys are hidden from every other position.
    """
    v = valid.repeat_interleave(n_types, dim=1)  # (B, L)
    L = v.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=valid.device).triu(1)  # (L, L) j > i
    eye = torch.eye(L, dtype=torch.bool, device=valid.device)  # (L, L)
    return causal | (~v[:, None, :] & ~eye)  # (B, L, L)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``sum_{b,t valid, j} (pred - target)^2 / (#valid * act_dim)``."""
    w = valid.unsqueeze(-1).to(pred.dtype)  # (B, K, 1)
    return (((pred - target) ** 2) * w).sum() / (w.sum() * pred.shape[-1]).clamp_min(1.0)


# --------------------------------------------------------------------------------------------
#                                          Model
# --------------------------------------------------------------------------------------------


class CDT(nn.Module):
    """``forward(rtg, ctg, states, actions, timesteps, valid) -> actions (B, K, act_dim)``.

    Inputs are raw (unscaled, unnormalised): ``rtg, ctg (B, K)``, ``states (B, K, obs_dim)``,
    ``actions (B, K, act_dim)``, ``timesteps (B, K)`` int, ``valid (B, K)`` bool. The normaliser,
    the action box and the data's Pareto frontier are buffers.
    """

    def __init__(self, config: CDTConfig, obs_dim: int, act_dim: int, obs_mean, obs_std, action_low, action_high, frontier: Frontier):
        super().__init__()
        if not config.resolved:
            raise ValueError(
                "CDTConfig.max_timestep, return_scale and cost_scale must be set; "
                f"build with build_cdt / resolve_cdt_config to take them from the data (got {config})"
            )
        self.config = config
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        d = config.embed_dim
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean, np.float32).reshape(obs_dim)))
        self.register_buffer("obs_std", torch.as_tensor(np.asarray(obs_std, np.float32).reshape(obs_dim)))
        self.register_buffer("action_low", torch.as_tensor(np.asarray(action_low, np.float32).reshape(act_dim)))
        self.register_buffer("action_high", torch.as_tensor(np.asarray(action_high, np.float32).reshape(act_dim)))
        self.register_buffer("frontier_costs", torch.as_tensor(np.asarray(frontier.costs, np.float64)))
        self.register_buffer("frontier_returns", torch.as_tensor(np.asarray(frontier.returns, np.float64)))
        self.register_buffer("frontier_episode", torch.as_tensor(np.asarray(frontier.episode, np.int64)))

        self.embed_return = nn.Linear(1, d)
        self.embed_cost = nn.Linear(1, d)
        self.embed_state = nn.Linear(self.obs_dim, d)
        self.embed_action = nn.Linear(self.act_dim, d)
        self.embed_timestep = nn.Embedding(config.max_timestep, d)
        self.embed_norm = nn.LayerNorm(d)
        self.embed_drop = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d, config.n_heads, config.ff_mult * d, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.action_head = nn.Linear(d, self.act_dim)

    @property
    def frontier(self) -> Frontier:
        return Frontier(
            self.frontier_costs.cpu().numpy(), self.frontier_returns.cpu().numpy(), self.frontier_episode.cpu().numpy()
        )

    def embed(self, rtg, ctg, states, actions, timesteps) -> torch.Tensor:
        """The token sequence ``(B, 4K, d)`` in the order of ``TOKEN_TYPES`` per timestep."""
        cfg = self.config
        t = self.embed_timestep(timesteps.clamp(0, cfg.max_timestep - 1))  # (B, K, d)
        r = self.embed_return((rtg / cfg.return_scale).unsqueeze(-1)) + t  # (B, K, d)
        c = self.embed_cost((ctg / cfg.cost_scale).unsqueeze(-1)) + t  # (B, K, d)
        s = self.embed_state((states - self.obs_mean) / self.obs_std) + t  # (B, K, d)
        a = self.embed_action(actions) + t  # (B, K, d)
        return self.embed_norm(interleave(r, c, s, a))  # (B, 4K, d)

    def forward(self, rtg, ctg, states, actions, timesteps, valid) -> torch.Tensor:
        x = self.embed_drop(self.embed(rtg, ctg, states, actions, timesteps))  # (B, 4K, d)
        mask = token_attention_mask(valid).repeat_interleave(self.config.n_heads, dim=0)  # (B * heads, 4K, 4K)
        h = self.transformer(x, mask=mask)  # (B, 4K, d)
        h_state = h[:, STATE_TOKEN::N_TOKEN_TYPES]  # (B, K, d) outputs at the state tokens
        return squash_to_box(self.action_head(h_state), self.action_low, self.action_high)  # (B, K, act_dim)


def build_cdt(episodes: Episodes, config: CDTConfig | None = None, action_low=None, action_high=None) -> CDT:
    """An untrained model: config resolved from the data, normaliser fitted on all observations,
    action box ``[action_low, action_high]`` (default: the data's min / max action), frontier of the data."""
    config = resolve_cdt_config(config, episodes)
    stats = fit_obs_stats(episodes.observations)
    low, high = action_box(episodes, action_low, action_high)
    frontier = episodes_frontier(episodes)
    return CDT(config, episodes.obs_dim, episodes.act_dim, stats.mean, stats.std, low, high, frontier)


# --------------------------------------------------------------------------------------------
#                                       Training windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WindowBatch:
    """``B`` context windows of ``K`` steps, left-padded with zeros where before the episode start."""

    returns_to_go: np.ndarray
    """``(B, K)`` return-to-go labels (relabelled ones shifted)."""
    costs_to_go: np.ndarray
    """``(B, K)`` cost-to-go labels (relabelled ones shifted)."""
    states: np.ndarray
    """``(B, K, obs_dim)`` raw states."""
    actions: np.ndarray
    """``(B, K, act_dim)`` actions."""
    timesteps: np.ndarray
    """``(B, K)`` step index within the episode."""
    valid: np.ndarray
    """``(B, K)`` bool: real steps (not padding)."""

    def tensors(self, device) -> dict:
        f = lambda a, dt=torch.float32: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
        return dict(
            rtg=f(self.returns_to_go), ctg=f(self.costs_to_go), states=f(self.states), actions=f(self.actions),
            timesteps=f(self.timesteps, torch.int64), valid=f(self.valid, torch.bool),
        )


def gather_windows(episodes: Episodes, ends, context_len: int, return_shift=None, cost_shift=None) -> WindowBatch:
    """The windows whose last step is the flat index ``ends[b]``: steps ``ends[b]-K+1 .. ends[b]`` of
    its episode, positions before the episode start padded. ``return_shift`` / ``cost_shift``
    (``(B,)``, default 0) are added to the window's return-to-go / cost-to-go labels."""
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    n = len(episodes.rewards)
    if np.any(ends < 0) or np.any(ends >= n):
        raise ValueError(f"window ends must be in [0, {n}), got min {ends.min()} max {ends.max()}")
    ep = np.searchsorted(episodes.bounds[:, 1], ends, side="right")  # (B,) episode of each end
    start = episodes.bounds[ep, 0]  # (B,)
    idx = ends[:, None] - (context_len - 1) + np.arange(context_len)  # (B, K)
    valid = idx >= start[:, None]  # (B, K)
    safe = np.where(valid, idx, ends[:, None])  # (B, K) any real index where padded
    zero = lambda a: np.where(valid.reshape(valid.shape + (1,) * (a.ndim - 2)), a, 0)  # noqa: E731
    rs = np.zeros(len(ends)) if return_shift is None else np.asarray(return_shift, np.float64).reshape(-1)
    cs = np.zeros(len(ends)) if cost_shift is None else np.asarray(cost_shift, np.float64).reshape(-1)
    return WindowBatch(
        returns_to_go=zero(episodes.rewards_to_go[safe] + rs[:, None]).astype(np.float32),
        costs_to_go=zero(episodes.costs_to_go[safe] + cs[:, None]).astype(np.float32),
        states=zero(episodes.observations[safe]).astype(np.float32),
        actions=zero(episodes.actions[safe]).astype(np.float32),
        timesteps=zero(idx - start[:, None]).astype(np.int64),
        valid=valid,
    )


def sample_windows(rng: np.random.Generator, episodes: Episodes, frontier: Frontier, context_len: int, batch_size: int, augment_prob: float) -> WindowBatch:
    """A training batch: ``Binomial(batch_size, augment_prob)`` relabelled windows (targets from
    ``sample_frontier_targets``, episode and shifts from ``relabel_targets``, end step uniform in
    that episode), the rest ending at a uniformly drawn transition."""
    n_aug = int(rng.binomial(batch_size, augment_prob)) if augment_prob > 0 else 0
    ends = rng.integers(0, len(episodes.rewards), size=batch_size - n_aug)
    rshift, cshift = np.zeros(batch_size), np.zeros(batch_size)
    if n_aug:
        rho, kappa = sample_frontier_targets(rng, frontier, float(np.max(episodes.returns)), n_aug)
        rel = relabel_targets(episodes.returns, episodes.cost_returns, rho, kappa)
        s, e = episodes.bounds[rel.episode, 0], episodes.bounds[rel.episode, 1]
        ends = np.concatenate([ends, s + (rng.random(n_aug) * (e - s)).astype(np.int64)])
        rshift[batch_size - n_aug:], cshift[batch_size - n_aug:] = rel.return_shift, rel.cost_shift
    return gather_windows(episodes, ends, context_len, rshift, cshift)


# --------------------------------------------------------------------------------------------
#                                          Policy
# --------------------------------------------------------------------------------------------


class CDTPolicy:
    """A trained CDT behind the ``Policy`` interface; one model for every budget.

    ``reset(n_envs, b)`` sets ``C_0 = b`` and ``R_0 = r_max(b)`` (the best feasible episode return
    in the training data, kept in the model) unless ``target_return`` is given. Each ``act``
    first subtracts the received reward / cost (``R_t = R_{t-1} - r_{t-1}``, ``C_t = C_{t-1} -
    c_{t-1}``, unclipped, as in OSRL; the values passed to the first ``act`` are ignored), then
    appends ``(R_t, C_t, s_t)`` to the last ``K`` steps kept per environment, and returns the
    action predicted at the newest state token. All environments step in lockstep.
    """

    def __init__(self, model: CDT, device: str | torch.device | None = None, losses=()):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.losses = np.asarray(losses, dtype=np.float64)
        self._n_envs: int | None = None

    @property
    def config(self) -> CDTConfig:
        return self.model.config

    def reset(self, n_envs: int, budget: float, target_return: float | None = None) -> None:
        b = check_budget(budget)
        r0 = float(self.model.frontier.best_return(b)) if target_return is None else float(target_return)
        if not np.isfinite(r0):
            raise ValueError(f"target_return must be finite, got {target_return!r}")
        B, K, m = check_n_envs(n_envs), self.config.context_len, self.model
        self._n_envs, self._t = B, 0
        self.budget, self.initial_return = b, r0
        self.returns_to_go = np.full(B, r0)  # (B,) current R_t
        self.costs_to_go = np.full(B, b)  # (B,) current C_t
        self._rtg = np.zeros((B, K), np.float32)
        self._ctg = np.zeros((B, K), np.float32)
        self._states = np.zeros((B, K, m.obs_dim), np.float32)
        self._actions = np.zeros((B, K, m.act_dim), np.float32)
        self._timesteps = np.zeros((B, K), np.int64)
        self._valid = np.zeros((B, K), bool)

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: np.ndarray, cost: np.ndarray) -> np.ndarray:
        obs, reward, cost = check_step_inputs(obs, reward, cost, self._n_envs, self.model.obs_dim)
        if self._t > 0:
            self.returns_to_go = self.returns_to_go - reward
            self.costs_to_go = self.costs_to_go - cost
        for buf in (self._rtg, self._ctg, self._states, self._actions, self._timesteps, self._valid):
            buf[:, :-1] = buf[:, 1:].copy()  # drop the oldest step
        self._rtg[:, -1], self._ctg[:, -1] = self.returns_to_go, self.costs_to_go
        self._states[:, -1], self._actions[:, -1] = obs, 0.0  # a_t is not visible to s_t's token
        self._timesteps[:, -1], self._valid[:, -1] = self._t, True
        batch = WindowBatch(self._rtg, self._ctg, self._states, self._actions, self._timesteps, self._valid)
        action = self.model(**batch.tensors(self.device))[:, -1].cpu().numpy().astype(np.float32)  # (B, act_dim)
        self._actions[:, -1] = action
        self._t += 1
        return action


# --------------------------------------------------------------------------------------------
#                                          Training
# --------------------------------------------------------------------------------------------


def train_cdt(
    episodes: Episodes,
    config: CDTConfig | None = None,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    action_low=None,
    action_high=None,
) -> CDTPolicy:
    """Fit CDT on windows of all episodes (plus relabelled ones); ``steps`` defaults to ``config.steps``.

    Reproducible: ``torch.manual_seed(seed)`` before the model is built and a ``numpy``
    ``Generator(seed)`` for the batches.
    """
    config = resolve_cdt_config(config, episodes)
    steps = config.steps if steps is None else int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_cdt(episodes, config, action_low, action_high).to(device)
    frontier = model.frontier
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(config.warmup_steps, 1)))
    losses = np.zeros(steps)
    model.train()
    bar = trange(steps, desc="CDT", disable=not progress)
    for step in bar:
        batch = sample_windows(rng, episodes, frontier, config.context_len, config.batch_size, config.augment_prob)
        t = batch.tensors(device)
        pred = model(**t)  # (B, K, act_dim)
        loss = masked_mse(pred, t["actions"], t["valid"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        losses[step] = loss.item()
        if step % 100 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{losses[step]:.4f}")
    return CDTPolicy(model, device, losses)


# --------------------------------------------------------------------------------------------
#                                         Save / load
# --------------------------------------------------------------------------------------------


def save_cdt(policy: CDTPolicy, path) -> None:
    """One file: the resolved config (as a dict), the dimensions and the weights (with the
    normaliser, action box and the data's frontier as buffers)."""
    m = policy.model
    save_checkpoint(
        path,
        METHOD,
        config=m.config.to_dict(),
        obs_dim=m.obs_dim,
        act_dim=m.act_dim,
        state_dict={k: v.detach().cpu() for k, v in m.state_dict().items()},
    )


def load_cdt(path, device: str | torch.device | None = None) -> CDTPolicy:
    """The ``CDTPolicy`` saved by ``save_cdt`` at ``path``."""
    ckpt = load_checkpoint(path, METHOD, ("config", "obs_dim", "act_dim", "state_dict"))
    sd = ckpt["state_dict"]
    frontier = Frontier(sd["frontier_costs"].numpy(), sd["frontier_returns"].numpy(), sd["frontier_episode"].numpy())
    model = CDT(
        CDTConfig.from_dict(ckpt["config"]),
        ckpt["obs_dim"],
        ckpt["act_dim"],
        sd["obs_mean"].numpy(),
        sd["obs_std"].numpy(),
        sd["action_low"].numpy(),
        sd["action_high"].numpy(),
        frontier,
    )
    model.load_state_dict(sd)
    return CDTPolicy(model, device)
