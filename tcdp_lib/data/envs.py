"""One factory for the simulators behind DSRL ids, and one rendering function.

Bullet-Safety-Gym and Safety-Gymnasium ids are made with ``gymnasium.make``; the compatibility
fixes of :mod:`tcdp_lib.data.compat` are applied first.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from tcdp_lib.data import compat
from tcdp_lib.data.tasks import FAMILY_PACKAGES, get_task


class FamilyUnavailableError(ImportError):
    """The simulator family of a task could not be imported."""


def ensure_family(task_id: str) -> None:
    """Register dsrl's ids; raise :class:`FamilyUnavailableError` naming the missing package."""
    task = get_task(task_id)
    status = compat.apply()
    error = status.get(task.family)
    if error is not None:
        raise FamilyUnavailableError(
            f"task {task_id} needs the {task.family} family (package {FAMILY_PACKAGES[task.family]}), "
            f"which failed to import: {error}"
        )


def make_env(task_id: str, **kwargs):
    """Make the gymnasium environment of a DSRL id (time limit included).

    The step's cost is ``info["cost"]``, as in DSRL.
    """
    ensure_family(task_id)
    task = get_task(task_id)
    if task.family == "metadrive":
        raise FamilyUnavailableError(
            f"task {task_id}: the metadrive family is not installed in this workbench yet "
            f"(package {FAMILY_PACKAGES['metadrive']})"
        )
    import gymnasium

    return gymnasium.make(task_id, **kwargs)


@contextlib.contextmanager
def global_numpy_seed(seed: int):
    """Seed numpy's global RNG inside the block and restore its state after.

    Cause: bullet-safety-gym's ``reset`` ignores its ``seed`` argument and draws the start state
    from the global ``np.random``, so ``reset(seed=s)`` alone gives a different start each time.
    Its ``step`` draws nothing from it, so seeding around the resets fixes whole episodes.
    Safety-Gymnasium honours ``seed``; for it this is harmless.
    """
    state = np.random.get_state()
    np.random.seed(int(seed))
    try:
        yield
    finally:
        np.random.set_state(state)


def seeded_reset(env, seed: int):
    """``env.reset(seed=seed)`` that gives the same start on every family (see :func:`global_numpy_seed`)."""
    with global_numpy_seed(seed):
        return env.reset(seed=int(seed))


def render_frame(env, width: int = 320, height: int = 240) -> np.ndarray:
    """An RGB frame ``(height, width, 3)`` of the environment's current state, on CPU.

    Bullet: pybullet's TinyRenderer through the environment's own camera. Safety-Gymnasium:
    MuJoCo offscreen (``MUJOCO_GL=egl`` or ``osmesa``), with a fixed far camera.
    """
    base = env.unwrapped
    if hasattr(base, "bc") and hasattr(base, "world"):  # bullet-safety-gym EnvironmentBuilder
        base.world.camera.render_width, base.world.camera.render_height = width, height
        frame = base.render(mode="rgb_array")  # through the wrappers it fails: call the base
        return np.asarray(frame, dtype=np.uint8)[..., :3]
    if hasattr(base, "render_parameters"):  # safety-gymnasium Builder
        os.environ.setdefault("MUJOCO_GL", "egl")
        from safety_gymnasium.builder import RenderConf

        base.render_parameters = RenderConf("rgb_array", width, height, None, "fixedfar")
        return np.asarray(base.render(), dtype=np.uint8)[..., :3]
    raise TypeError(f"no renderer for environment {type(base).__name__}")


def replay_frames(task_id: str, actions: np.ndarray, seed: int = 0, every: int = 10,
                  width: int = 240, height: int = 180) -> tuple[np.ndarray, np.ndarray]:
    """Replay an action sequence open-loop from ``reset(seed)`` and render every ``every`` steps.

    Returns ``(frames (F, height, width, 3), steps (F,))``. A dataset episode replayed this way
    starts from a fresh reset, so its path is close to, not identical with, the logged one.
    """
    env = make_env(task_id)
    try:
        env.reset(seed=seed)
        frames, steps = [render_frame(env, width, height)], [0]
        for t, action in enumerate(np.asarray(actions), start=1):
            _, _, terminated, truncated, _ = env.step(action)
            if t % every == 0:
                frames.append(render_frame(env, width, height))
                steps.append(t)
            if terminated or truncated:
                break
        return np.stack(frames), np.asarray(steps)
    finally:
        env.close()
