"""Why the planner works: ``tcdp diagnose TASK --model M``.

Five diagnostics of a trained diffusion planner, each a pure, seeded function returning a
pandas ``DataFrame`` (or a ``dict``):

- :func:`budget_response`: realised reward and cost of rollouts per budget. Does the policy
  spend more when allowed more, and stay within what it is allowed?
- :func:`execution_stats`: rollouts at one budget, recorded step by step. Does the agent reach
  the state its plan predicted (planned-vs-realised next-state error, next to the size of a
  step)? Are its actions as smooth as the data's (action jitter)?
- :func:`denoising_loss_by_k`: the epsilon loss per noise level with the true, the null and a
  shuffled budget condition, on the same noise. Does the backbone use the budget at all, and
  at which noise levels?
- :func:`energy_accuracy`: per noise level, how well the energy's value head tracks its target
  and the cost head the true cost-to-go. Can guidance and the choice among samples trust them?
- :func:`beta_sweep`: realised reward and cost against the energy-guidance scale ``beta`` at one
  budget. Does the reward pull pay, and when does it break the budget?

Rollouts go through :func:`~tcdp_lib.runs.evaluate.run_episodes`; per-step figures come from
:class:`StepRecorder`, a policy wrapper that delegates to the
:class:`~tcdp_lib.planner.policy.TCDPPolicy`. Seeds: environment ``i`` of a rollout is reset
with ``1000 * seed + i`` (as in ``tcdp evaluate``), and the planner's noise is seeded by the
policy config's ``seed`` (``seed`` when no policy config is given); the offline diagnostics draw
their windows, budgets and permutation from ``numpy.random.default_rng(seed)`` and the noise of
level ``k`` from ``SeedSequence([seed, k])``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from tcdp_lib.data.dataset import Dataset
from tcdp_lib.errors import check_budget
from tcdp_lib.method.diffusion import apply_conditioning, epsilon_loss, q_sample
from tcdp_lib.method.model import TCDP, sample_batch
from tcdp_lib.method.windows import Windows
from tcdp_lib.planner.planner import PlannerConfig
from tcdp_lib.planner.policy import PolicyConfig, TCDPPolicy
from tcdp_lib.runs.evaluate import run_episodes

DEFAULT_EPISODES = 4
"""Rollout episodes per budget (or beta) unless asked for more: a diagnosis, not an evaluation."""
DEFAULT_WINDOWS = 256
"""Windows (CTGDA pairs) per noise level in the offline diagnostics."""
DEFAULT_N_LEVELS = 10
"""Noise levels spread over ``0 .. K-1`` in the offline diagnostics."""

SECTIONS = {
    "budget_response": (
        "Budget response",
        "Realised cost should rise with the budget and stay at or below it (within_budget near 1); "
        "reward should rise with the budget until it reaches the data's best.",
    ),
    "execution": (
        "Execution (planned vs realised)",
        "plan_error well below step_size means the agent reaches the states its plan predicts; "
        "a jitter_ratio near 1 means actions are as smooth as the data's, far above 1 that plans flip between steps; "
        "predicted_cost_to_go near realised_cost_to_go (the chosen plans' cost model against what the episode "
        "then spent) means the choice among plans sees the spending ahead, below it that the choice is optimistic.",
    ),
    "denoising": (
        "Denoising loss by noise level k",
        "ratio_uncond_cond above 1 means the budget condition helps predict the noise; loss_shuffled "
        "near loss_cond means the backbone reads that a budget is given but not its value.",
    ),
    "energy": (
        "Energy accuracy by noise level k",
        "Value correlations and cost R^2 should be high at small k (where plans are scored and "
        "chosen) and may fall toward 0 as k grows and the window drowns in noise.",
    ),
    "beta_sweep": (
        "Energy guidance sweep (beta)",
        "Reward should rise with beta while cost stays within the budget; a cost jump at large "
        "beta means the reward pull overrides the budget.",
    ),
}
"""Per diagnostic: the heading and one sentence saying what to look for."""


# --------------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------------


def default_budgets(dataset: Dataset) -> tuple[float, ...]:
    """0, 5, 10, 20, 40 and twice the task's largest DSRL budget, sorted and distinct."""
    return tuple(sorted({0.0, 5.0, 10.0, 20.0, 40.0, 2.0 * float(max(dataset.meta.budgets))}))


def middle_budget(dataset: Dataset) -> float:
    """The task's middle DSRL budget (e.g. 20 of 10, 20, 40)."""
    b = sorted(float(x) for x in dataset.meta.budgets)
    return b[len(b) // 2]


def default_ks(model: TCDP, n_levels: int = DEFAULT_N_LEVELS) -> tuple[int, ...]:
    """``n_levels`` noise levels spread evenly over ``0 .. K-1`` (distinct, ascending)."""
    k = model.config.diffusion.n_diffusion_steps
    return tuple(int(x) for x in np.unique(np.round(np.linspace(0, k - 1, n_levels)).astype(int)))


def default_betas(model: TCDP, planner_config: PlannerConfig | None = None) -> tuple[float, ...]:
    """0, half, once and twice the planning beta (the planner config's, else the model's; 1 if 0)."""
    beta = planner_config.beta if planner_config is not None and planner_config.beta is not None else None
    beta = model.config.guidance.beta if beta is None else beta
    beta = float(beta) or 1.0
    return (0.0, 0.5 * beta, beta, 2.0 * beta)


def _check_ks(model: TCDP, ks) -> tuple[int, ...]:
    k_max = model.config.diffusion.n_diffusion_steps
    ks = default_ks(model) if ks is None else tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one noise level")
    for k in ks:
        if int(k) != k or not 0 <= k < k_max:
            raise ValueError(f"noise level k must be an integer in [0, {k_max}), got {k!r}")
    return tuple(int(k) for k in ks)


def _check_model_fits(dataset: Dataset, model: TCDP) -> None:
    if model.obs_dim != dataset.episodes.obs_dim or model.act_dim != dataset.episodes.act_dim:
        raise ValueError(f"the model (obs {model.obs_dim}, act {model.act_dim}) does not fit task "
                         f"{dataset.task.task_id} (obs {dataset.episodes.obs_dim}, act {dataset.episodes.act_dim})")


def _check_rollout_args(episodes: int, n_envs: int) -> None:
    if int(episodes) != episodes or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    if int(n_envs) != n_envs or n_envs < 1:
        raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")


@contextlib.contextmanager
def _eval_mode(model: TCDP):
    """The model in eval mode (no CFG dropout) and without gradients; its mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _level_noise(shape, seed: int, k: int, device) -> torch.Tensor:
    """The fixed noise of level ``k``: the same for every condition and whichever ``ks`` are asked."""
    s = int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])
    g = torch.Generator(device=device).manual_seed(s)
    return torch.randn(shape, generator=g, device=device)


def _policy_config(policy_config: PolicyConfig | None, seed: int) -> PolicyConfig:
    return PolicyConfig(seed=int(seed)) if policy_config is None else policy_config


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not progress)


def _summary(dataset: Dataset, records: list[dict], budget: float) -> dict:
    """Means of raw and DSRL-normalised reward and cost over episodes, and the share within budget."""
    reward = np.array([r["reward"] for r in records], dtype=np.float64)
    cost = np.array([r["cost"] for r in records], dtype=np.float64)
    nr, nc = dataset.normalized(reward, cost, budget)
    return {
        "budget": float(budget), "episodes": len(records),
        "reward": float(reward.mean()), "reward_std": float(reward.std()),
        "cost": float(cost.mean()), "cost_std": float(cost.std()),
        "normalized_reward": float(np.mean(nr)), "normalized_cost": float(np.mean(nc)),
        "within_budget": float(np.mean(cost <= budget)),
    }


# --------------------------------------------------------------------------------------------
# Rollout diagnostics
# --------------------------------------------------------------------------------------------


def budget_response(dataset: Dataset, model: TCDP, budgets=None, episodes: int = DEFAULT_EPISODES, seed: int = 0,
                    planner_config: PlannerConfig | None = None, policy_config: PolicyConfig | None = None,
                    n_envs: int = 4, progress: bool = True):
    """One row per budget: mean realised raw reward and cost (with their spreads over episodes),
    DSRL's normalised reward and cost, and ``within_budget``, the share of episodes with
    ``cost <= budget``. ``budgets`` default to :func:`default_budgets`; each budget sees the
    same start states."""
    import pandas as pd

    _check_model_fits(dataset, model)
    _check_rollout_args(episodes, n_envs)
    budgets = default_budgets(dataset) if budgets is None else tuple(budgets)
    budgets = [check_budget(b) for b in budgets]
    if not budgets:
        raise ValueError("budgets must name at least one budget")
    task = dataset.task.task_id
    policy = TCDPPolicy(model, planner_config, _policy_config(policy_config, seed))
    rows = []
    bar = _bar(len(budgets) * episodes * dataset.task.max_episode_steps, "budget response", progress)
    try:
        for b in budgets:
            records = run_episodes(task, policy, b, episodes, seed, n_envs, progress=bar)
            rows.append(_summary(dataset, records, b))
    finally:
        bar.close()
    return pd.DataFrame(rows)


class StepRecorder:
    """A policy wrapper that records, per step, the planned-vs-realised next-state error and the
    actions, and otherwise delegates to a :class:`~tcdp_lib.planner.policy.TCDPPolicy`.

    After each ``act`` it notes the state the policy is heading for,
    ``last_plan.best_states[:, offset + 1]`` (``offset`` the step within the replan chunk, capped
    at the horizon as the policy does); at the next ``act`` it measures the distance from the
    observation reached to that state, in normalised units (``/ obs_std``), and the length of
    the step actually taken, in the same units. At each replan it also notes the chosen plan's
    predicted cost-to-go (``Plan.costs``; NaN without a cost model) and the costs the episode
    pays, to set the prediction beside the cost the episode then spent from that step on. One
    list of per-step arrays per ``reset`` (batch of environments); :meth:`summary` keeps only
    steps of live episodes.
    """

    def __init__(self, policy):
        self.policy = policy
        self.obs_std = np.asarray(policy.model.obs_std.detach().cpu().numpy(), dtype=np.float64)
        self.horizon = int(policy.model.horizon)
        self.replan_every = int(policy.config.replan_every)
        self.batches: list[dict] = []

    def reset(self, n_envs: int, budget: float) -> None:
        self.policy.reset(n_envs, budget)
        self.t = 0
        self._pred = None
        self._prev = None
        self._cur = {"n": int(n_envs), "error": [], "step": [], "offset": [], "actions": [], "paid": [],
                     "predicted_ctg": []}
        self.batches.append(self._cur)

    def act(self, obs, reward, cost) -> np.ndarray:
        obs = np.array(obs, dtype=np.float64)  # a copy: run_episodes updates its array in place
        if self._pred is not None:
            self._cur["error"].append(np.linalg.norm((obs - self._pred) / self.obs_std, axis=-1))  # (n,)
            self._cur["step"].append(np.linalg.norm((obs - self._prev) / self.obs_std, axis=-1))  # (n,)
        offset = self.t % self.replan_every
        actions = self.policy.act(obs, reward, cost)
        plan = self.policy.last_plan
        self._cur["paid"].append(np.array(cost, dtype=np.float64).reshape(-1))  # (n,) cost of the previous step
        costs = getattr(plan, "costs", None)
        predicted = (np.full(self._cur["n"], np.nan) if costs is None or offset != 0
                     else np.asarray(costs, dtype=np.float64)[np.arange(self._cur["n"]), plan.chosen])
        self._cur["predicted_ctg"].append(predicted)  # (n,) NaN between replans
        self._pred = np.array(plan.best_states[:, min(offset + 1, self.horizon - 1)], dtype=np.float64)
        self._prev = obs
        self._cur["offset"].append(offset)
        self._cur["actions"].append(np.array(actions, dtype=np.float64))  # (n, A)
        self.t += 1
        return actions

    def summary(self, records: list[dict]) -> dict:
        """Figures of the recorded steps, with ``records`` the ``run_episodes`` result of the same
        rollout (its episode lengths tell which steps were live). The transition of an episode's
        last step is measured only when another environment of its batch was still running."""
        lengths = [int(r["length"]) for r in records]
        if len(lengths) != sum(b["n"] for b in self.batches):
            raise ValueError(f"{len(lengths)} episode records for {sum(b['n'] for b in self.batches)} recorded episodes")
        errors, steps, replan, sequences, predicted, realised = [], [], [], [], [], []
        first = 0
        for b in self.batches:
            n = b["n"]
            length = np.array(lengths[first:first + n])  # (n,)
            first += n
            if b["error"]:
                err = np.stack(b["error"])  # (T-1, n): transition after call e, live iff e < length
                stp = np.stack(b["step"])
                live = np.arange(len(err))[:, None] < length[None, :]  # (T-1, n)
                errors.append(err[live])
                steps.append(stp[live])
                replan.append(np.broadcast_to(np.array(b["offset"][: len(err)])[:, None] == 0, err.shape)[live])
            acts = np.stack(b["actions"]) if b["actions"] else np.zeros((0, n, 0))  # (T, n, A)
            sequences += [acts[: length[i], i] for i in range(n)]
            if b["paid"]:
                total = np.array([float(r["cost"]) for r in records[first - n:first]])  # (n,)
                paid = np.cumsum(np.stack(b["paid"]), axis=0)  # (T, n) paid before the step of call e
                ctg = total[None, :] - paid  # (T, n) cost from the step of call e to the episode's end
                pred = np.stack(b["predicted_ctg"])  # (T, n)
                live = (np.arange(len(pred))[:, None] < length[None, :]) & ~np.isnan(pred)
                predicted.append(pred[live])
                realised.append(ctg[live])
        err = np.concatenate(errors) if errors else np.zeros(0)
        stp = np.concatenate(steps) if steps else np.zeros(0)
        rep = np.concatenate(replan) if replan else np.zeros(0, dtype=bool)
        mean = lambda a: float(a.mean()) if a.size else float("nan")  # noqa: E731
        plan_error, step_size = mean(err), mean(stp)
        pred = np.concatenate(predicted) if predicted else np.zeros(0)
        real = np.concatenate(realised) if realised else np.zeros(0)
        return {
            "transitions": int(err.size),
            "plan_error": plan_error,
            "plan_error_median": float(np.median(err)) if err.size else float("nan"),
            "plan_error_at_replan": mean(err[rep]),
            "plan_error_between_replans": mean(err[~rep]),
            "step_size": step_size,
            "error_to_step": plan_error / step_size if step_size > 0 else float("nan"),
            "policy_jitter": action_jitter(sequences),
            "plans_scored": int(pred.size),
            "predicted_cost_to_go": mean(pred),
            "realised_cost_to_go": mean(real),
            "cost_to_go_corr": _pearson(pred, real) if pred.size > 1 else float("nan"),
            "predicted_cost_to_go_below_0": mean((pred < 0).astype(float)),
        }


def action_jitter(sequences) -> float:
    """Mean ``|a_t - a_{t-1}|`` over consecutive steps of each action sequence and over action
    dimensions, pooled over sequences: ``sequences`` is one ``(T, A)`` array or a list of them
    (one per episode; a pair never spans two). NaN when no sequence has two steps."""
    if isinstance(sequences, np.ndarray):
        sequences = [sequences]
    total, count = 0.0, 0
    for a in sequences:
        a = np.asarray(a, dtype=np.float64)
        a = a.reshape(len(a), -1)
        if len(a) < 2:
            continue
        d = np.abs(np.diff(a, axis=0))
        total += float(d.sum())
        count += d.size
    return total / count if count else float("nan")


def data_action_jitter(dataset: Dataset) -> float:
    """:func:`action_jitter` of the dataset's episodes (consecutive actions within an episode)."""
    ep = dataset.episodes
    return action_jitter([ep.actions[s:e] for s, e in ep.bounds])


def execution_stats(dataset: Dataset, model: TCDP, budget=None, episodes: int = DEFAULT_EPISODES, seed: int = 0,
                    planner_config: PlannerConfig | None = None, policy_config: PolicyConfig | None = None,
                    n_envs: int = 4, progress: bool = True) -> dict:
    """Rollouts at one ``budget`` (default the task's middle one), recorded with
    :class:`StepRecorder`. Returns a dict:

    - ``plan_error``: mean distance (normalised units) between the observation reached and the
      plan's predicted next state; split ``_at_replan`` (fresh plans) and ``_between_replans``
      (followed plans, with ``replan_every > 1``); ``step_size``: the mean length of a step in
      the same units, and ``error_to_step`` their ratio (1: no better than predicting "stay");
    - ``policy_jitter``, ``data_jitter``: mean ``|a_t - a_{t-1}|`` of the policy's and of the
      dataset's episodes, and ``jitter_ratio`` = policy / data;
    - ``predicted_cost_to_go`` (mean over replans of the chosen plan's predicted cost-to-go),
      ``realised_cost_to_go`` (what the episode spent from those steps to its end), their
      correlation ``cost_to_go_corr``, and ``predicted_cost_to_go_below_0`` (the share of
      predictions under 0, which the chooser reads as "fits any budget");
    - the realised reward, cost and their DSRL-normalised figures, as in :func:`budget_response`.
    """
    _check_model_fits(dataset, model)
    _check_rollout_args(episodes, n_envs)
    budget = middle_budget(dataset) if budget is None else check_budget(budget)
    pcfg = _policy_config(policy_config, seed)
    recorder = StepRecorder(TCDPPolicy(model, planner_config, pcfg))
    bar = _bar(episodes * dataset.task.max_episode_steps, f"execution at b={budget:g}", progress)
    try:
        records = run_episodes(dataset.task.task_id, recorder, budget, episodes, seed, n_envs, progress=bar)
    finally:
        bar.close()
    stats = recorder.summary(records)
    data_jitter = data_action_jitter(dataset)
    pj = stats["policy_jitter"]
    summary = _summary(dataset, records, budget)
    return {
        "budget": budget, "episodes": len(records), "replan_every": int(pcfg.replan_every), **stats,
        "data_jitter": data_jitter,
        "jitter_ratio": pj / data_jitter if data_jitter > 0 else float("nan"),
        **{k: summary[k] for k in ("reward", "cost", "normalized_reward", "normalized_cost", "within_budget")},
    }


def beta_sweep(dataset: Dataset, model: TCDP, budget=None, betas=None, episodes: int = DEFAULT_EPISODES,
               seed: int = 0, planner_config: PlannerConfig | None = None, policy_config: PolicyConfig | None = None,
               n_envs: int = 4, progress: bool = True):
    """One row per ``beta``: mean realised raw reward and cost, their DSRL-normalised figures and
    ``within_budget`` at one ``budget`` (default the task's middle one), the rest of the planner
    config kept. ``betas`` default to :func:`default_betas`. A variant without an energy model
    has no beta to sweep: an empty frame whose ``attrs["skipped"]`` says so."""
    import pandas as pd

    _check_model_fits(dataset, model)
    _check_rollout_args(episodes, n_envs)
    budget = middle_budget(dataset) if budget is None else check_budget(budget)
    betas = default_betas(model, planner_config) if betas is None else tuple(betas)
    for beta in betas:
        if not math.isfinite(float(beta)):
            raise ValueError(f"beta must be a finite number, got {beta!r}")
    if not betas:
        raise ValueError("betas must name at least one beta")
    columns = ["beta", "budget", "episodes", "reward", "reward_std", "cost", "cost_std", "normalized_reward",
               "normalized_cost", "within_budget"]
    if not model.variant.uses_energy:
        frame = pd.DataFrame(columns=columns)
        frame.attrs["skipped"] = (f"variant {model.config.variant!r} has no energy model: the planner ignores beta, "
                                  "so there is nothing to sweep")
        return frame
    base = planner_config or PlannerConfig()
    pcfg = _policy_config(policy_config, seed)
    rows = []
    bar = _bar(len(betas) * episodes * dataset.task.max_episode_steps, f"beta sweep at b={budget:g}", progress)
    try:
        for beta in betas:
            policy = TCDPPolicy(model, dataclasses.replace(base, beta=float(beta)), pcfg)
            records = run_episodes(dataset.task.task_id, policy, budget, episodes, seed, n_envs, progress=bar)
            rows.append({"beta": float(beta), **_summary(dataset, records, budget)})
    finally:
        bar.close()
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# Offline diagnostics (no simulator)
# --------------------------------------------------------------------------------------------


def _pairs(model: TCDP, windows: Windows, n: int, rng: np.random.Generator, pairs: str, qn):
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if windows.horizon != model.horizon:
        raise ValueError(f"windows have horizon {windows.horizon}, the model {model.horizon}")
    return sample_batch(rng, windows, model.budget_prior(), int(n), model.obs_mean.device, pairs=pairs, qn=qn)


def denoising_loss_by_k(model: TCDP, windows: Windows, ks=None, n: int = DEFAULT_WINDOWS, seed: int = 0,
                        pairs: str = "ctgda", qn=None):
    """Per noise level ``k``: the epsilon loss (``diffusion.epsilon_loss``) of the backbone on the
    same ``n`` windows, the same noise and so the same ``x_k``, under three conditions:

    - ``loss_cond``: the true condition (``model.condition`` of the batch, eval mode: no dropout);
    - ``loss_uncond``: the null condition (``model.encoder.null(n, steps_left)``, CFG's
      unconditional branch);
    - ``loss_shuffled``: the condition with the remaining budgets permuted across rows (each
      window keeps its steps left).

    ``ratio_uncond_cond`` = uncond / cond and ``ratio_shuffled_cond`` = shuffled / cond: above 1
    where the budget (its presence, its value) helps. The windows are CTGDA pairs of
    ``sample_batch`` (``pairs``); ``qn`` as there (built from ``windows`` when not given).
    """
    import pandas as pd

    ks = _check_ks(model, ks)
    rng = np.random.default_rng(seed)
    batch = _pairs(model, windows, n, rng, pairs, qn)
    perm = torch.as_tensor(rng.permutation(int(n)), device=batch.remaining_budget.device)
    shuffled = dataclasses.replace(batch, remaining_budget=batch.remaining_budget[perm])
    rows = []
    with _eval_mode(model):
        conds = {
            "cond": model.condition(batch),
            "uncond": model.encoder.null(int(n), batch.steps_left),
            "shuffled": model.condition(shuffled),
        }
        x0 = model.encode(batch.states, batch.actions)  # (n, H, C): states, and actions when planned
        valid = model.valid_entries(batch)
        for k in ks:
            noise = _level_noise(x0.shape, seed, k, x0.device)  # (n, H, C)
            kk = torch.full((int(n),), k, dtype=torch.long, device=x0.device)
            x_k = apply_conditioning(q_sample(x0, kk, noise, model.alphas_cumprod), model.fix_mask, x0)
            loss = {name: float(epsilon_loss(model.backbone(x_k, kk, c), noise, valid, model.fix_mask))
                    for name, c in conds.items()}
            rows.append({
                "k": k, "alpha_bar": float(model.alphas_cumprod[k]),
                "loss_cond": loss["cond"], "loss_uncond": loss["uncond"], "loss_shuffled": loss["shuffled"],
                "ratio_uncond_cond": loss["uncond"] / loss["cond"] if loss["cond"] > 0 else float("nan"),
                "ratio_shuffled_cond": loss["shuffled"] / loss["cond"] if loss["cond"] > 0 else float("nan"),
            })
    frame = pd.DataFrame(rows)
    if not model.variant.uses_cfg:
        frame.attrs["note"] = (f"variant {model.config.variant!r} is unconditional: its true condition is the "
                               "null one, so the three losses agree")
    return frame


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    import pandas as pd

    return pd.Series(x).rank(method="average").to_numpy()


def _r2(pred: np.ndarray, true: np.ndarray) -> float:
    ss_tot = float(((true - true.mean()) ** 2).sum()) if true.size else 0.0
    if ss_tot == 0:
        return float("nan")
    return 1.0 - float(((pred - true) ** 2).sum()) / ss_tot


def energy_accuracy(model: TCDP, windows: Windows, ks=None, n: int = DEFAULT_WINDOWS, seed: int = 0,
                    pairs: str = "ctgda", qn=None):
    """Per noise level ``k``, the energy's two heads (``energy.heads(x_k, k, b_t, steps_left)``)
    on noisy windows against their targets (``model.energy_targets``):

    - value head: ``value_pearson``, ``value_spearman`` and ``value_mse`` against the value
      target (the QN-normalised reward-to-go for ``tcdp``), over the ``value_n`` rows whose
      target is defined;
    - cost head: ``cost_r2``, the R^2 of the predicted cost-to-go against the true one, and
      ``cost_mae`` in raw cost units.

    Same windows and noise scheme as :func:`denoising_loss_by_k`. A model whose energy has no
    ``heads`` (no energy, or TREBI's two unconditioned models) gives an empty frame whose
    ``attrs["skipped"]`` says why.
    """
    import pandas as pd

    columns = ["k", "alpha_bar", "value_n", "value_pearson", "value_spearman", "value_mse", "cost_r2", "cost_mae"]
    energy = getattr(model, "energy", None)
    if energy is None or not hasattr(energy, "heads"):
        frame = pd.DataFrame(columns=columns)
        kind = "no energy model" if energy is None else f"a {type(energy).__name__} without value and cost heads"
        frame.attrs["skipped"] = f"variant {model.config.variant!r} has {kind}: no head accuracy to measure"
        return frame
    ks = _check_ks(model, ks)
    rng = np.random.default_rng(seed)
    batch = _pairs(model, windows, n, rng, pairs, qn)
    scale = float(model.config.budget.budget_scale)
    rows = []
    with _eval_mode(model):
        value_t, cost_t = (t.detach().cpu().numpy().astype(np.float64) for t in model.energy_targets(batch)[:2])
        ok = np.isfinite(value_t)
        x0 = model.encode(batch.states, batch.actions)
        for k in ks:
            noise = _level_noise(x0.shape, seed, k, x0.device)
            kk = torch.full((int(n),), k, dtype=torch.long, device=x0.device)
            x_k = apply_conditioning(q_sample(x0, kk, noise, model.alphas_cumprod), model.fix_mask, x0)
            value, cost = energy.heads(x_k, kk, batch.remaining_budget, batch.steps_left)
            value = value.detach().cpu().numpy().astype(np.float64)
            cost = cost.detach().cpu().numpy().astype(np.float64)
            v, vt = value[ok], value_t[ok]
            rows.append({
                "k": k, "alpha_bar": float(model.alphas_cumprod[k]), "value_n": int(ok.sum()),
                "value_pearson": _pearson(v, vt),
                "value_spearman": _pearson(_ranks(v), _ranks(vt)) if v.size else float("nan"),
                "value_mse": float(np.mean((v - vt) ** 2)) if v.size else float("nan"),
                "cost_r2": _r2(cost, cost_t),
                "cost_mae": float(np.mean(np.abs(cost - cost_t))) * scale,
            })
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# All of them, printed and written
# --------------------------------------------------------------------------------------------


def diagnose(dataset: Dataset, model: TCDP, *, budgets=None, episodes: int = DEFAULT_EPISODES, betas=None,
             beta_budget=None, exec_budget=None, n_envs: int = 4, seed: int = 0,
             planner_config: PlannerConfig | None = None, policy_config: PolicyConfig | None = None,
             n_windows: int = DEFAULT_WINDOWS, ks=None, skip=(), progress: bool = True) -> dict:
    """Every diagnostic, keyed as :data:`SECTIONS`; ``skip`` may hold ``"rollouts"`` (budget
    response, execution, beta sweep) and ``"losses"`` (denoising and energy)."""
    skip = set(skip or ())
    unknown = skip - {"rollouts", "losses"}
    if unknown:
        raise ValueError(f"skip may hold 'rollouts' and 'losses', got {sorted(unknown)}")
    _check_model_fits(dataset, model)
    # check every budget before the first (slow) rollout
    if budgets is not None:
        budgets = [check_budget(b) for b in budgets]
    beta_budget = None if beta_budget is None else check_budget(beta_budget, "beta budget")
    exec_budget = None if exec_budget is None else check_budget(exec_budget, "execution budget")
    out: dict = {}
    if "losses" not in skip:
        from tcdp_lib.method.qn import ToGoQN

        windows = Windows.from_episodes(dataset.episodes, model.horizon)
        qn = ToGoQN.from_windows(windows)
        out["denoising"] = denoising_loss_by_k(model, windows, ks, n_windows, seed, qn=qn)
        out["energy"] = energy_accuracy(model, windows, ks, n_windows, seed, qn=qn)
    if "rollouts" not in skip:
        common = dict(episodes=episodes, seed=seed, planner_config=planner_config, policy_config=policy_config,
                      n_envs=n_envs, progress=progress)
        out["budget_response"] = budget_response(dataset, model, budgets, **common)
        out["execution"] = execution_stats(dataset, model, exec_budget, **common)
        out["beta_sweep"] = beta_sweep(dataset, model, beta_budget, betas, **common)
    return {k: out[k] for k in SECTIONS if k in out}


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def results_to_json(results: dict, meta: dict | None = None) -> dict:
    """A JSON-ready dict: tables as lists of records (NaN as null), notes kept beside them."""
    body: dict = {"meta": _jsonable(meta or {})}
    for key, value in results.items():
        if hasattr(value, "to_dict"):
            entry = {"rows": _jsonable(value.to_dict(orient="records"))}
            entry.update({k: str(v) for k, v in value.attrs.items()})
            body[key] = entry
        else:
            body[key] = _jsonable(value)
    return body


def write_json(results: dict, out_dir: Path, meta: dict | None = None, name: str = "diagnose.json") -> Path:
    """``out_dir/diagnose.json`` with every result, written atomically (temporary file, rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = out_dir / f".{name}.tmp"
    try:
        tmp.write_text(json.dumps(results_to_json(results, meta), indent=1, allow_nan=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def format_results(results: dict) -> str:
    """Each result under its heading, with the sentence saying what to look for."""
    parts = []
    for key, value in results.items():
        title, hint = SECTIONS.get(key, (key, ""))
        lines = [f"== {title} ==", hint]
        if isinstance(value, dict):
            width = max((len(str(k)) for k in value), default=0)
            lines += [f"{str(k):<{width}s}  {_fmt(v)}" for k, v in value.items()]
        else:
            if value.attrs.get("skipped"):
                lines.append(f"(skipped: {value.attrs['skipped']})")
            else:
                lines.append(value.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
            if value.attrs.get("note"):
                lines.append(f"(note: {value.attrs['note']})")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
