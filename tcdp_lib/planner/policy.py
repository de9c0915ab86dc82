"""TCDP as a :class:`~tcdp_lib.baselines.policy.Policy`: receding-horizon planning while acting.

At every ``replan_every``-th step the planner samples a new plan from the current observations
under the remaining budget ``b - cost spent so far``; between replans the policy follows the
chosen plan with inverse dynamics on its consecutive states. With ``warm_start`` each replan
starts from the previous plan, shifted and partly re-noised.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from tcdp_lib.baselines.policy import check_n_envs, check_step_inputs
from tcdp_lib.errors import SettingError, check_budget
from tcdp_lib.planner.planner import Plan, Planner, PlannerConfig, online_remaining_budget


@dataclass(frozen=True)
class PolicyConfig:
    """How planning is interleaved with acting."""

    replan_every: int = 1
    """Environment steps between two plans (1: replan at every step)."""
    warm_start: bool = True
    """Start each replan from the previous plan (shifted by ``replan_every``): consecutive plans
    agree, so the agent follows one plan instead of jittering between fresh samples (measured on
    BallCircle: reward 355 / cost 15.2 at b = 10 warm, 319 / 30.0 cold, 5 episodes)."""
    seed: int = 0
    """Seeds the sampler's noise (reset by ``reset``)."""
    temporal_ensemble: int | None = None
    """Plans whose actions for this step are averaged (``GuidanceConfig.temporal_ensemble``);
    ``None``: the model config's."""

    def __post_init__(self):
        if self.replan_every < 1:
            raise SettingError(f"replan_every must be >= 1, got {self.replan_every}")
        if self.temporal_ensemble is not None and self.temporal_ensemble < 1:
            raise SettingError(f"temporal_ensemble must be >= 1, got {self.temporal_ensemble}")


EXECUTION_KEYS = ("replan_every", "warm_start", "temporal_ensemble")
"""The :class:`PolicyConfig` fields a benchmark cell's ``planning`` may set (the rest go to
``PlannerConfig``)."""


def policy_config(replan_every: int | None = None, warm_start: bool | None = None, seed: int = 0,
                  temporal_ensemble: int | None = None) -> PolicyConfig:
    """A :class:`PolicyConfig` with ``None`` fields at their defaults (the callers' one place for them)."""
    over = {k: v for k, v in (("replan_every", replan_every), ("warm_start", warm_start),
                              ("temporal_ensemble", temporal_ensemble)) if v is not None}
    return PolicyConfig(seed=int(seed), **over)


class TCDPPolicy:
    """``reset(n_envs, budget)`` then ``act(obs, reward, cost)`` -> actions, planning as it goes."""

    def __init__(self, model, planner_config: PlannerConfig | None = None, config: PolicyConfig | None = None):
        self.config = config or PolicyConfig()
        pc = planner_config or PlannerConfig()
        if self.config.warm_start and pc.warm_shift != self.config.replan_every:
            pc = PlannerConfig(**{**pc.__dict__, "warm_shift": self.config.replan_every})
        self.planner = Planner(model, pc)
        self.model = model
        # Episodes are as long as the longest one in the training data (DSRL's fixed time limit).
        self.episode_steps = float(model.config.budget.time_scale or model.horizon)
        te = self.config.temporal_ensemble
        self.temporal_ensemble = model.config.guidance.temporal_ensemble if te is None else te
        self.n_envs = None
        self.last_plan: Plan | None = None
        self._older: deque[Plan] = deque(maxlen=self.temporal_ensemble - 1)

    def reset(self, n_envs: int, budget: float) -> None:
        check_budget(budget)
        self.n_envs = check_n_envs(n_envs)
        self.budget = float(budget)
        self.spent = np.zeros(self.n_envs)
        self.collected = np.zeros(self.n_envs)
        # CDD's target return: r_max of the episode budget, less the reward collected (as CDT does)
        self.r_max = None
        if self.model.variant.condition.uses_return:
            b = torch.full((self.n_envs,), self.budget, device=self.model.obs_mean.device)
            self.r_max = self.model.target_return(b).cpu().numpy()
        self.t = 0
        self.last_plan = None
        self._older.clear()
        self._given = None
        device = self.model.obs_mean.device
        self.generator = torch.Generator(device=device).manual_seed(self.config.seed)

    def start_with(self, plan: Plan, generator_state: torch.Tensor) -> None:
        """Act at step 0 on ``plan`` instead of planning it: a plan made beforehand from the
        episode's first observations at the episode budget with this policy's planner settings and
        seed, and ``generator_state`` the noise generator's state after it
        (``torch.Generator.get_state()``). The episode is then the one the policy would have run by
        itself (the budget panel draws its plans first and reuses them this way). The first
        ``act`` checks that the plan starts from the observations it is given."""
        if self.n_envs is None or self.t != 0:
            raise SettingError("start_with goes between reset() and the first act()")
        if plan.states.shape[0] != self.n_envs:
            raise SettingError(f"the first plan has {plan.states.shape[0]} environment(s), this episode {self.n_envs}")
        if not np.allclose(plan.remaining_budget, self.budget * self.planner.budget_fraction):
            made = ", ".join(f"{b:g}" for b in np.asarray(plan.remaining_budget) / self.planner.budget_fraction)
            raise SettingError(f"the first plan was made for budget {made}, this episode's is {self.budget:g}")
        self._given = (plan, generator_state)

    def _target(self, offset: int) -> int:
        """The index in a plan that its action for the step ``offset`` steps after it was made reads:
        the state ``offset + action_gap`` (action model), the planned action ``offset``, or the state
        ``offset + 1`` (inverse dynamics)."""
        m = self.model
        if m.action_gap:
            return offset + m.action_gap
        return offset if m.plan_actions else offset + 1

    @torch.inference_mode()
    def _follow(self, obs: np.ndarray, plans: list[Plan], offsets: list[int]) -> np.ndarray:
        """``(P, B, A)``: for each plan, made ``offset`` steps ago, its action from the current
        observation: the action model's toward its state ``offset + action_gap`` when the model
        has one; else its planned action ``offset`` when the model plans actions; else inverse
        dynamics toward its state ``offset + 1`` (indices past the horizon read its last entry)."""
        m = self.model
        idx = [min(self._target(o), m.horizon - 1) for o in offsets]
        if not m.action_gap and m.plan_actions:
            return np.stack([p.best_actions[:, i] for p, i in zip(plans, idx)])
        device = m.obs_mean.device
        ahead = m.normalize(torch.as_tensor(np.stack([p.best_states[:, i] for p, i in zip(plans, idx)]),
                                            dtype=torch.float32, device=device))  # (P, B, obs)
        s = m.normalize(torch.as_tensor(obs, device=device)).expand_as(ahead)
        net = m.act_toward if m.action_gap else m.inv_dyn
        return net(s, ahead).cpu().numpy()

    def act(self, obs, reward, cost) -> np.ndarray:
        obs, reward, cost = check_step_inputs(obs, reward, cost, self.n_envs, self.model.obs_dim)
        self.spent += cost
        self.collected += reward
        offset = self.t % self.config.replan_every
        if self._given is not None:  # the plan made beforehand for this step (start_with)
            self.last_plan, state = self._given
            self._given = None
            if not np.array_equal(self.last_plan.states[:, 0, 0], obs):
                raise SettingError("the first plan must start from this episode's first observations; "
                                   "start_with's plan starts elsewhere")
            self.generator.set_state(state)
            actions = self.last_plan.actions
        elif offset == 0 or self.last_plan is None:
            if self.last_plan is not None:
                self._older.appendleft(self.last_plan)
            warm = self.last_plan if self.config.warm_start else None
            target = None if self.r_max is None else np.maximum(self.r_max - self.collected, 0.0)
            self.last_plan = self.planner.plan(obs, online_remaining_budget(self.budget, self.spent),
                                               generator=self.generator, warm_start=warm,
                                               steps_left=np.full(self.n_envs, self.episode_steps - self.t),
                                               target_return=target)
            actions = self.last_plan.actions
        else:
            actions = self._follow(obs, [self.last_plan], [offset])[0]
        # temporal ensembling: the older plans' actions for this step, while it is within their horizon
        older = [(plan, offset + self.config.replan_every * (j + 1)) for j, plan in enumerate(self._older)]
        older = [(plan, age) for plan, age in older if self._target(age) < self.model.horizon]
        if older:
            acts = self._follow(obs, [p for p, _ in older], [age for _, age in older])  # (P, B, A)
            actions = np.concatenate([np.asarray(actions, dtype=np.float64)[None], acts]).mean(axis=0)
        self.t += 1
        return np.asarray(actions, dtype=np.float32)
