"""State windows of horizon ``H`` over a dataset's episodes, gathered lazily by index.

A window starts at every step ``t`` of every episode and holds the states
``s_t, ..., s_{t+H-1}``. Past the episode end (flat index ``end``) the window repeats the
episode's last ``next_observation`` ``s_end``: position ``t + k == end`` is that real final
state, positions beyond it are padding. ``Windows`` keeps only the index arrays; ``gather``
builds a batch of ``(B, H, obs_dim)`` arrays on demand, so an ``N x H x obs_dim`` array is
never materialised for a large dataset.

The figures each window is conditioned or scored on: its reward-to-go and cost-to-go at ``t``
(``C_t``), and its episode's return ``R`` and cost ``C_0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tcdp_lib.data.episodes import Episodes


# --------------------------------------------------------------------------------------------
#                                    Observation normaliser
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Per-dimension affine map of observations: ``z = (s - mean) / std``."""

    mean: np.ndarray
    """``(obs_dim,)`` data mean."""
    std: np.ndarray
    """``(obs_dim,)`` data standard deviation; a constant dimension gets 1 (it is only centred)."""

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"mean and std must have the same shape, got {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"normaliser needs finite mean and std > 0, got mean={mean}, std={std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, observations: np.ndarray, min_std: float = 1e-6) -> "Normalizer":
        """Mean and std of ``observations (N, obs_dim)``; dimensions with ``std < min_std`` get 1."""
        obs = np.asarray(observations, dtype=np.float64)
        if obs.ndim != 2 or len(obs) == 0:
            raise ValueError(f"observations must be a non-empty (N, obs_dim) array, got shape {obs.shape}")
        std = obs.std(axis=0)
        return cls(mean=obs.mean(axis=0), std=np.where(std < min_std, 1.0, std))

    @property
    def obs_dim(self) -> int:
        return int(self.mean.shape[0])

    def normalize(self, x):
        """``(x - mean) / std`` on a numpy array or a torch tensor (last axis = obs_dim)."""
        mean, std = self._like(x)
        return (x - mean) / std

    def unnormalize(self, x):
        """``x * std + mean``, the inverse of ``normalize``."""
        mean, std = self._like(x)
        return x * std + mean

    def _like(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.std, dtype=x.dtype, device=x.device))
        return self.mean, self.std

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays, for ``np.savez`` or a checkpoint."""
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        missing = {"mean", "std"} - set(d)
        if missing:
            raise ValueError(f"normaliser dict lacks keys {sorted(missing)}; has {sorted(d)}")
        return cls(mean=np.asarray(d["mean"]), std=np.asarray(d["std"]))


# --------------------------------------------------------------------------------------------
#                                           Windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WindowBatch:
    """A gathered batch of windows (numpy arrays, raw unnormalised states)."""

    states: np.ndarray
    """``(B, H, obs_dim)``: ``s_t .. s_{t+H-1}``, past the end repeating the final next-observation."""
    actions: np.ndarray
    """``(B, H, act_dim)``: ``a_t .. a_{t+H-1}``, zero where ``action_mask`` is False."""
    state_mask: np.ndarray
    """``(B, H)`` bool: the state is real (``t + k <= end``), not padding."""
    action_mask: np.ndarray
    """``(B, H)`` bool: ``a_{t+k}`` exists (``t + k < end``); then ``(s_k, s_{k+1})`` is a real transition."""
    episode: np.ndarray
    """``(B,)`` episode id of each window."""
    start: np.ndarray
    """``(B,)`` flat dataset index of ``s_t``."""
    reward_to_go: np.ndarray
    """``(B,)`` reward-to-go at ``t``."""
    cost_to_go: np.ndarray
    """``(B,)`` cost-to-go ``C_t`` at ``t``."""
    episode_return: np.ndarray
    """``(B,)`` return ``R`` of the window's episode."""
    episode_cost: np.ndarray
    """``(B,)`` cost ``C_0`` of the window's episode."""
    steps_left: np.ndarray
    """``(B,)`` steps from ``s_t`` to the episode's end (``end - t``)."""


@dataclass(frozen=True, eq=False)
class Windows:
    """All windows of horizon ``horizon``: one per step of every episode, as index arrays."""

    episodes: Episodes
    """The dataset the windows index into."""
    horizon: int
    """Window length ``H`` in states."""
    episode: np.ndarray = field(repr=False)
    """``(N,)`` episode id of each window."""
    start: np.ndarray = field(repr=False)
    """``(N,)`` flat index of each window's first state ``s_t``."""
    cost_to_go: np.ndarray = field(repr=False)
    """``(N,)`` ``C_t`` of each window (kept for vectorised CTGDA sampling)."""
    episode_cost: np.ndarray = field(repr=False)
    """``(N,)`` ``C_0`` of each window's episode."""

    @classmethod
    def from_episodes(cls, episodes: Episodes, horizon: int = 32) -> "Windows":
        if int(horizon) != horizon or horizon < 2:
            raise ValueError(f"horizon must be an integer >= 2 (two states for inverse dynamics), got {horizon}")
        if episodes.num_episodes == 0:
            raise ValueError("the dataset has no finished episode (no terminals/timeouts flag set)")
        lengths = episodes.lengths
        episode = np.repeat(np.arange(episodes.num_episodes, dtype=np.int64), lengths)
        start = np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in episodes.bounds])
        return cls(
            episodes=episodes,
            horizon=int(horizon),
            episode=episode,
            start=start,
            cost_to_go=np.asarray(episodes.costs_to_go, dtype=np.float64)[start],
            episode_cost=np.asarray(episodes.cost_returns, dtype=np.float64)[episode],
        )

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def steps_left(self) -> np.ndarray:
        """``(N,)`` steps from each window's first state to its episode's end."""
        return self.episodes.bounds[self.episode, 1] - self.start

    @property
    def step(self) -> np.ndarray:
        """``(N,)`` time step ``t`` of each window inside its episode."""
        return self.start - self.episodes.bounds[self.episode, 0]

    def gather(self, idx) -> WindowBatch:
        """The windows ``idx`` (``(B,)`` ints into ``0 .. len - 1``) as arrays."""
        idx = np.asarray(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"idx must be a 1-D integer array, got dtype {idx.dtype} and shape {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"window index out of range [0, {len(self)}): min {idx.min()}, max {idx.max()}")
        ep = self.episodes
        episode = self.episode[idx]  # (B,)
        start = self.start[idx]  # (B,)
        end = ep.bounds[episode, 1][:, None]  # (B, 1)
        pos = start[:, None] + np.arange(self.horizon)  # (B, H)
        inside = pos < end  # (B, H) an observation of the episode
        src = np.minimum(pos, end - 1)  # (B, H)
        final = ep.next_observations[end[:, 0] - 1]  # (B, obs_dim) s_end
        states = np.where(inside[..., None], ep.observations[src], final[:, None, :])  # (B, H, obs_dim)
        actions = np.where(inside[..., None], ep.actions[src], 0.0).astype(ep.actions.dtype)  # (B, H, act_dim)
        return WindowBatch(
            states=states,
            actions=actions,
            state_mask=pos <= end,
            action_mask=inside,
            episode=episode,
            start=start,
            reward_to_go=np.asarray(ep.rewards_to_go)[start],
            cost_to_go=self.cost_to_go[idx],
            episode_return=np.asarray(ep.returns)[episode],
            episode_cost=self.episode_cost[idx],
            steps_left=end[:, 0] - start,
        )
