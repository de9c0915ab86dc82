"""One factory for the simulators behind DSRL ids, and one rendering function.

Bullet-Safety-Gym and Safety-Gymnasium ids are made with ``gymnasium.make``. MetaDrive ids live
only in the old ``gym`` registry: they are made with ``gym.make`` and wrapped in
:class:`tcdp_lib.data.metadrive_env.MetaDriveEnv`, which has the gymnasium interface. The
compatibility fixes of :mod:`tcdp_lib.data.compat` are applied first.

MetaDrive runs one simulator engine per process, so at most one MetaDrive environment is live
at a time: making a new one closes the previous one (with a warning), and the closed one raises
a clear error if it is used again. Batched evaluation therefore runs MetaDrive one environment
at a time (see :data:`MAX_LIVE_ENVS`).
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from tcdp_lib.data import compat
from tcdp_lib.data.tasks import FAMILY_PACKAGES, get_task
from tcdp_lib.errors import FamilyUnavailableError


# Families whose simulator allows only this many live environments in one process.
MAX_LIVE_ENVS = {"metadrive": 1}


def max_live_envs(task_id: str, wanted: int) -> int:
    """How many environments of ``task_id`` can be live at once: ``wanted``, or the family's cap."""
    return min(int(wanted), MAX_LIVE_ENVS.get(get_task(task_id).family, int(wanted)))


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

    The step's cost is ``info["cost"]``, as in DSRL. A MetaDrive id gives a
    :class:`tcdp_lib.data.metadrive_env.MetaDriveEnv`; making one closes the MetaDrive
    environment made before it, if still open.
    """
    ensure_family(task_id)
    task = get_task(task_id)
    if task.family == "metadrive":
        from tcdp_lib.data.metadrive_env import MetaDriveEnv

        return MetaDriveEnv(task_id, **kwargs)
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
    MuJoCo offscreen (``MUJOCO_GL=egl`` or ``osmesa``), with a fixed far camera. MetaDrive:
    its top-down view centred on the ego vehicle (pygame with ``SDL_VIDEODRIVER=dummy``).
    """
    base = env.unwrapped
    if _is_metadrive(base):
        return _render_metadrive(base, width, height)
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


def _is_metadrive(base) -> bool:
    module = sys.modules.get("metadrive.envs.base_env")
    return module is not None and isinstance(base, module.BaseEnv)


# The top-down film holds the whole map, this many times the frame's larger side: the frame,
# centred on the ego vehicle, shows about a third of the map's extent. Films smaller than about
# 400 px lose the dashed lane lines, hence the floor.
METADRIVE_FILM_SCALE = 3
METADRIVE_MIN_FILM = 400


def _render_metadrive(base, width: int, height: int) -> np.ndarray:
    """MetaDrive's top-down renderer, ego-centred, at ``(width, height)``. The renderer fixes its
    sizes when first made, so it is made again when another frame size is asked for."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    if base.engine is None:
        raise RuntimeError(f"render_frame: the {type(base).__name__} environment has no engine yet; "
                           f"reset it before rendering")
    screen = (int(width), int(height))
    side = max(METADRIVE_MIN_FILM, METADRIVE_FILM_SCALE * max(screen))
    film = (side, side)
    renderer = base.engine._top_down_renderer
    if renderer is not None and (tuple(renderer._render_size) != screen
                                 or tuple(renderer._background_size) != film):
        renderer.close()
        base.engine._top_down_renderer = None
    surface = base.render(mode="top_down", film_size=film, screen_size=screen, track_target_vehicle=True)
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2), dtype=np.uint8)


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
