"""QN: quantile normalisation of episode returns, per budget.

Raw returns mean different things under different budgets. For a budget ``b`` take the
episodes feasible under it (``C_0 <= b``) and map a return to its empirical-CDF rank among
them, in ``[0, 1]``. The energy model is trained on this value, so one ``beta`` pushes toward
"the best feasible behaviour" equally at every budget.

The rank used (the *mid rank*, stable under ties, with exact edges). With ``r`` the feasible
returns, ``n = |r|`` and ``m(v) = #{r < v} + #{r <= v}`` (twice the mid-CDF ``n F_mid(v)``):

    u(v) = (m(v) - m(min r)) / (m(max r) - m(min r)),  clipped to [0, 1].

- distinct returns: the ``i``-th smallest (0-based) gets ``i / (n - 1)``, i.e. values uniform on
  ``{0, 1/(n-1), ..., 1}``;
- ties get one equal value (the average of their ranks, rescaled);
- edges are exact: the smallest feasible return gets 0 and the largest 1 whenever there are at
  least two distinct feasible returns;
- degenerate: one feasible episode, or all feasible returns equal, gives 0.5 (the mid-CDF of a
  point mass: no information about better or worse);
- an episode that is infeasible at the budget has no place in ``q(tau | C <= b)`` and gets NaN;
  no feasible episode at all gives NaN everywhere.
"""

from __future__ import annotations

import numpy as np


def mid_rank_normalize(values, reference) -> np.ndarray:
    """``u(v) = (m(v) - m(min r)) / (m(max r) - m(min r))``, ``m(v) = #{r < v} + #{r <= v}``.

    Clipped to ``[0, 1]`` (values outside the reference range map to the edges); 0.5 when all
    reference values are equal; NaN when the reference is empty.
    """
    v = np.asarray(values, dtype=np.float64)
    ref = np.sort(np.asarray(reference, dtype=np.float64).reshape(-1))
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(v))):
        raise ValueError("returns must be finite (got NaN or inf)")
    n = ref.size
    if n == 0:
        return np.full(v.shape, np.nan)
    m = np.searchsorted(ref, v, side="left") + np.searchsorted(ref, v, side="right")
    lo = np.searchsorted(ref, ref[0], side="right")  # m(min r) = 0 + count of the minimum
    hi = 2 * n - (n - np.searchsorted(ref, ref[-1], side="left"))  # m(max r) = 2n - count of the max
    if hi == lo:
        return np.full(v.shape, 0.5)
    return np.clip((m - lo) / (hi - lo), 0.0, 1.0)


def _check(returns, costs):
    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    if r.shape != c.shape:
        raise ValueError(f"returns and costs must have the same length, got {r.shape} and {c.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise ValueError("returns and costs must be finite (got NaN or inf)")
    return r, c


def quantile_normalize(returns, costs, budget: float) -> np.ndarray:
    """QN of every episode at one budget ``b``: ``u(R_e)`` among ``{R : C <= b}``, NaN if ``C_e > b``.

    ``returns`` and ``costs`` are the episodes' ``(E,)`` returns ``R`` and costs ``C_0``.
    """
    r, c = _check(returns, costs)
    if not np.isfinite(budget):
        raise ValueError(f"budget must be finite, got {budget}")
    feasible = c <= budget
    out = np.full(r.shape, np.nan)
    out[feasible] = mid_rank_normalize(r[feasible], r[feasible])
    return out


def quantile_normalize_pairs(returns, costs, episode, budgets, chunk_size: int = 4096) -> np.ndarray:
    """Per-pair QN: for pair ``i``, ``u(R_{e_i})`` among ``{R : C <= b_i}`` (NaN if ``C_{e_i} > b_i``).

    The training target of the energy model: the QN of each window's episode return at its
    sampled budget. Vectorised over pairs; memory ``chunk_size x E`` booleans per chunk.
    Equal to ``quantile_normalize(returns, costs, b_i)[e_i]`` for each pair.
    """
    r, c = _check(returns, costs)
    episode = np.asarray(episode, dtype=np.int64).reshape(-1)
    b = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if episode.shape != b.shape:
        raise ValueError(f"episode and budgets must have the same length, got {episode.shape} and {b.shape}")
    if len(episode) and (episode.min() < 0 or episode.max() >= len(r)):
        raise ValueError(f"episode ids must lie in [0, {len(r)}), got min {episode.min()}, max {episode.max()}")
    if not np.all(np.isfinite(b)):
        raise ValueError("budgets must be finite")
    out = np.empty(len(b))
    for s in range(0, len(b), chunk_size):
        bb, ee = b[s : s + chunk_size], episode[s : s + chunk_size]
        feas = c[None, :] <= bb[:, None]  # (P, E)
        v = r[ee][:, None]  # (P, 1)
        n = feas.sum(1)  # (P,)
        m = (feas & (r < v)).sum(1) + (feas & (r <= v)).sum(1)  # (P,)
        r_min = np.where(feas, r, np.inf).min(1, keepdims=True)  # (P, 1)
        r_max = np.where(feas, r, -np.inf).max(1, keepdims=True)  # (P, 1)
        lo = (feas & (r == r_min)).sum(1)  # (P,) m(min r)
        hi = 2 * n - (feas & (r == r_max)).sum(1)  # (P,) m(max r)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(hi > lo, (m - lo) / np.maximum(hi - lo, 1), 0.5)
        out[s : s + chunk_size] = np.where(c[ee] <= bb, np.clip(u, 0.0, 1.0), np.nan)
    return out


# --------------------------------------------------------------------------------------------
#                          QN of the reward-to-go (the energy's target)
# --------------------------------------------------------------------------------------------


class ToGoQN:
    """QN of a window's reward-to-go at its remaining budget: a function of what the energy sees.

    The episode-level QN above ranks a whole episode's return at the episode budget ``b``; a
    window's energy sees only the window, the remaining budget ``b_t`` and the steps left, and
    the episode's past is not in it. This map ranks the window's reward-to-go ``R_t`` among the
    reward-to-go of data windows with about as many steps left (the same bucket of
    ``steps_left``) whose cost-to-go is within ``b_t``: the same mid rank in [0, 1], so one
    ``beta`` means "the best feasible continuation" at every budget and every point of an
    episode. NaN where no reference window of the bucket is feasible.

    The reference is a fixed sample of at most ``max_ref`` windows per bucket (exact ranks over
    all windows would cost ``P x N`` comparisons a batch).
    """

    def __init__(self, reward_to_go, cost_to_go, steps_left, n_buckets: int = 8, max_ref: int = 4096,
                 rng: np.random.Generator | None = None):
        r, c = _check(reward_to_go, cost_to_go)
        s = np.asarray(steps_left, dtype=np.float64).reshape(-1)
        if s.shape != r.shape or r.size == 0:
            raise ValueError(f"reward_to_go, cost_to_go and steps_left need one non-empty length, "
                             f"got {r.shape}, {c.shape}, {s.shape}")
        rng = rng or np.random.default_rng(0)
        inner = np.quantile(s, np.linspace(0, 1, n_buckets + 1)[1:-1])
        self.edges = np.unique(inner)  # bucket i: edges[i-1] < s <= edges[i]
        bucket = np.searchsorted(self.edges, s, side="left")
        self._counts: list[_PrefixCounts] = []  # per bucket, its reference windows
        for i in range(len(self.edges) + 1):
            idx = np.flatnonzero(bucket == i)
            if len(idx) > max_ref:
                idx = rng.choice(idx, size=max_ref, replace=False)
            self._counts.append(_PrefixCounts(r[idx], c[idx]))

    @classmethod
    def from_windows(cls, windows, **kwargs) -> "ToGoQN":
        """The reference of every window of a ``Windows`` (its reward-to-go, cost-to-go, steps left)."""
        ep = windows.episodes
        end = ep.bounds[windows.episode, 1]
        return cls(np.asarray(ep.rewards_to_go)[windows.start], windows.cost_to_go, end - windows.start, **kwargs)

    def __call__(self, reward_to_go, remaining_budget, steps_left) -> np.ndarray:
        """``(P,)`` QN values of ``P`` windows' reward-to-go at their remaining budgets."""
        v = np.asarray(reward_to_go, dtype=np.float64).reshape(-1)
        b = np.asarray(remaining_budget, dtype=np.float64).reshape(-1)
        s = np.asarray(steps_left, dtype=np.float64).reshape(-1)
        if not (v.shape == b.shape == s.shape):
            raise ValueError(f"reward_to_go, remaining_budget and steps_left need one length, got "
                             f"{v.shape}, {b.shape}, {s.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("reward_to_go must be finite (got NaN or inf)")
        out = np.full(v.shape, np.nan)
        bucket = np.searchsorted(self.edges, s, side="left")
        for i in np.unique(bucket):
            q = np.flatnonzero(bucket == i)
            out[q] = self._counts[i].mid_rank(v[q], b[q])
        return out


class _PrefixCounts:
    """The mid rank of values among the reference entries whose cost is within a budget, for many
    (value, budget) queries at once, exactly as the dense ``(Q, R)`` comparison gives it.

    Sorted by cost, the entries feasible at ``b`` are a prefix of length ``k(b)``; ``#{j < k: r_j <
    v}`` is counted in blocks of :attr:`BLOCK` entries (each block's rewards as sorted integer ranks,
    searched for all blocks in one call) plus the one partial block compared directly: about
    ``Q (R / BLOCK) log R + Q BLOCK`` operations instead of ``Q R``. Counts are integers, so the
    result equals the dense one bit for bit.
    """

    BLOCK = 64

    def __init__(self, r: np.ndarray, c: np.ndarray):
        order = np.argsort(c, kind="stable")
        self.cost = c[order]
        rs = r[order]
        self.size = n = len(rs)
        self.sorted_r = np.sort(rs)
        self.prefix_min = np.minimum.accumulate(rs)
        self.prefix_max = np.maximum.accumulate(rs)
        rank = np.searchsorted(self.sorted_r, rs, side="left")  # r_i < v  <=>  rank_i < #{r < v}
        self.n_blocks = -(-n // self.BLOCK)
        # rank of each entry, padded to whole blocks with n (never below a query's count)
        self.rank_padded = np.concatenate([rank, np.full(self.n_blocks * self.BLOCK - n + self.BLOCK, n)])
        self.keys = np.sort(np.arange(n) // self.BLOCK * (n + 1) + rank)  # block-major, sorted in each block

    def _count_below(self, limit: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``#{j < k_q : rank_j < limit_q}`` for each query ``q``."""
        B, n = self.BLOCK, self.size
        blocks = np.arange(self.n_blocks)
        per_block = np.searchsorted(self.keys, blocks[None, :] * (n + 1) + limit[:, None], side="left") - blocks * B
        before = np.concatenate([np.zeros((len(k), 1), dtype=np.int64), np.cumsum(per_block, axis=1)], axis=1)
        full = k // B
        idx = full[:, None] * B + np.arange(B)  # the partial block's entries
        partial = ((self.rank_padded[idx] < limit[:, None]) & (idx < k[:, None])).sum(1)
        return before[np.arange(len(k)), full] + partial

    def _count(self, values: np.ndarray, k: np.ndarray, side: str) -> np.ndarray:
        """``#{j < k_q : r_j < v_q}`` (``side`` "left") or ``<= v_q`` ("right")."""
        return self._count_below(np.searchsorted(self.sorted_r, values, side=side), k)

    def mid_rank(self, v: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The clipped mid rank ``u`` of each ``v_q`` among the entries with cost ``<= b_q``; NaN
        where none is."""
        if self.size == 0:
            return np.full(v.shape, np.nan)
        n = np.where(np.isnan(b), 0, np.searchsorted(self.cost, b, side="right"))  # feasible prefix; none at NaN
        last = np.maximum(n - 1, 0)
        m = self._count(v, n, "left") + self._count(v, n, "right")
        lo = self._count(self.prefix_min[last], n, "right")  # entries equal to the feasible minimum
        hi = n + self._count(self.prefix_max[last], n, "left")  # 2n - entries equal to the maximum
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(hi > lo, (m - lo) / np.maximum(hi - lo, 1), 0.5)
        return np.where(n > 0, np.clip(u, 0.0, 1.0), np.nan)
