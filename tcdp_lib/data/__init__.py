"""Data layer: DSRL-format datasets, the simulators behind them, and the dataset generator."""

from tcdp_lib.data.episodes import (
    Episodes,
    episode_sums,
    reward_to_go,
    split_episodes,
)
from tcdp_lib.data.scores import normalized_cost, normalized_reward, normalized_scores
from tcdp_lib.data.tasks import TASKS, TaskInfo, get_task

__all__ = [
    "Episodes",
    "TASKS",
    "TaskInfo",
    "episode_sums",
    "get_task",
    "normalized_cost",
    "normalized_reward",
    "normalized_scores",
    "reward_to_go",
    "split_episodes",
]
