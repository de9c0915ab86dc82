"""The DSRL tasks the workbench knows: family, budgets and episode length of each.

Budgets follow DSRL's protocol: 10/20/40 for Bullet-Safety-Gym and MetaDrive,
20/40/80 for Safety-Gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcdp_lib.errors import UnknownTaskError

FAMILY_BUDGETS = {
    "bullet": (10.0, 20.0, 40.0),
    "safety_gymnasium": (20.0, 40.0, 80.0),
    "metadrive": (10.0, 20.0, 40.0),
}

# The package each family needs, for error messages.
FAMILY_PACKAGES = {
    "bullet": "bullet-safety-gym",
    "safety_gymnasium": "safety-gymnasium",
    "metadrive": "metadrive-simulator",
}


@dataclass(frozen=True)
class TaskInfo:
    """One DSRL task."""

    task_id: str
    """The DSRL id, e.g. ``OfflineBallCircle-v0``."""
    family: str
    """``bullet``, ``safety_gymnasium`` or ``metadrive``."""
    name: str
    """dsrl's short name (the key of ``dsrl.infos`` tables), e.g. ``BallCircle``."""
    max_episode_steps: int
    """The time limit dsrl registers for the task."""

    @property
    def budgets(self) -> tuple[float, float, float]:
        return FAMILY_BUDGETS[self.family]


def _bullet(name: str, steps: int) -> TaskInfo:
    return TaskInfo(f"Offline{name}-v0", "bullet", name, steps)


def _sg(name: str, steps: int) -> TaskInfo:
    return TaskInfo(f"Offline{name}Gymnasium-v0", "safety_gymnasium", name, steps)


TASKS: dict[str, TaskInfo] = {
    t.task_id: t
    for t in [
        _bullet("BallCircle", 200),
        _bullet("BallRun", 100),
        _bullet("CarCircle", 300),
        _bullet("CarRun", 200),
        _bullet("DroneCircle", 300),
        _bullet("DroneRun", 200),
        _bullet("AntCircle", 500),
        _bullet("AntRun", 200),
        _sg("PointCircle1", 500),
        _sg("PointCircle2", 500),
        _sg("PointGoal1", 1000),
        _sg("CarCircle1", 500),
        _sg("CarGoal1", 1000),
        TaskInfo("OfflineMetadrive-easysparse-v0", "metadrive", "easysparse", 1000),
    ]
}

DEFAULT_TASK = "OfflineBallCircle-v0"


def get_task(task_id: str) -> TaskInfo:
    """The :class:`TaskInfo` of ``task_id``; a clear error lists the known ids otherwise."""
    try:
        return TASKS[task_id]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {task_id!r}; known tasks: {', '.join(sorted(TASKS))}"
        ) from None
