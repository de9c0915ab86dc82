"""MetaDrive tasks of DSRL behind the gymnasium interface.

dsrl registers its ``OfflineMetadrive-*`` ids in the old ``gym`` registry only, with gym's
spaces; stable-baselines3 and the gymnasium wrappers of this workbench need a
``gymnasium.Env``. :class:`MetaDriveEnv` makes the id with ``gym.make`` (time limit included)
and presents it as one. Made through :func:`tcdp_lib.data.envs.make_env`, which applies the
compatibility fixes first (:mod:`tcdp_lib.data.compat`).

One live environment per process: MetaDrive's engine is a process-wide singleton (a second
environment made while the first is open finds the engine taken and fails at its first reset
with "Current MetaDrive instance is broken"). Making a :class:`MetaDriveEnv` therefore closes
the one made before it, if still open, with a warning; the closed one then raises a
``RuntimeError`` that says so if it is used again.
"""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np

_LIVE: list["MetaDriveEnv"] = []  # the open MetaDriveEnv of this process, if any

# panda3d's notices that a machine without input devices prints at the engine's start
# (":device(error): Error opening directory /dev/input"), and the one a second engine in the
# same process prints (":task(warning): Creating implicit AsyncTaskChain default"), are dropped.
_PANDA3D_QUIET = "notify-level-device fatal\nnotify-level-task error"


def _gymnasium_box(space, what: str) -> gymnasium.spaces.Box:
    if type(space).__name__ != "Box":
        raise TypeError(f"MetaDrive {what} space {space!r}: expected a Box")
    return gymnasium.spaces.Box(low=space.low, high=space.high, shape=space.shape, dtype=space.dtype)


def live_env() -> "MetaDriveEnv | None":
    """The open MetaDrive environment of this process, or ``None``."""
    return _LIVE[0] if _LIVE else None


class MetaDriveEnv(gymnasium.Env):
    """A dsrl MetaDrive task (old ``gym`` registry) behind the gymnasium interface.

    ``reset(seed=s)`` returns ``(obs, info)``; ``step`` returns ``(obs, reward, terminated,
    truncated, info)`` with ``info["cost"]``; the spaces are gymnasium Boxes; ``unwrapped`` is
    dsrl's MetaDrive environment (its ``get_dataset`` included).

    Seeding: a DSRL MetaDrive task has ``environment_num`` maps numbered from ``start_seed``
    (one map in every DSRL task). ``reset(seed=s)`` builds map ``start_seed + s %
    environment_num`` and seeds the traffic with ``s``. Both are needed: dsrl passes ``s`` on as
    the map number, so ``reset(seed=s)`` on dsrl's own env fails with ``KeyError`` for any other
    ``s`` (``KeyError: 0`` on the medium and hard maps, which start at 100 and 200); and dsrl's
    tasks draw new traffic every episode (``random_traffic``) from a generator that MetaDrive
    never reseeds, so the same ``s`` would not otherwise give the same episode.
    ``reset()`` without a seed keeps MetaDrive's behaviour (the traffic generator goes on).
    """

    metadata = {"render_modes": []}

    def __init__(self, task_id: str, **kwargs):
        import gym

        for previous in list(_LIVE):
            warnings.warn(
                f"MetaDrive allows one live environment per process: closing the open "
                f"{previous.task_id} environment before making {task_id}", stacklevel=3)
            previous._close(reason=f"a newer MetaDrive environment ({task_id}) was made after it")
        from panda3d.core import loadPrcFileData

        loadPrcFileData("tcdp", _PANDA3D_QUIET)
        self.task_id = task_id
        self._closed_because: str | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gym's deprecation notices
            # gym's passive checker is left out: it warns of numpy's np.bool8 deprecation on the
            # first reset and step, and the spaces and returns are converted here anyway.
            self._env = gym.make(task_id, disable_env_checker=True, **kwargs)
        self.observation_space = _gymnasium_box(self._env.observation_space, "observation")
        self.action_space = _gymnasium_box(self._env.action_space, "action")
        _LIVE.append(self)

    @property
    def unwrapped(self):
        """dsrl's MetaDrive environment (a MetaDrive ``SafeMetaDriveEnv`` and a dsrl ``OfflineEnv``)."""
        return self._env.unwrapped

    def _check_open(self) -> None:
        if self._closed_because is not None:
            raise RuntimeError(
                f"this {self.task_id} environment is closed: {self._closed_because}. MetaDrive "
                f"allows one live environment per process; make a new one with make_env"
            )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._check_open()
        if seed is not None and int(seed) < 0:
            raise ValueError(f"{self.task_id}: reset seed must be >= 0, got {seed}")
        super().reset(seed=seed)
        sim = self._env.unwrapped
        map_seed = None
        if seed is not None:
            seed = int(seed)
            sim.lazy_init()  # builds the engine and its managers on the first reset
            map_seed = sim.start_seed + seed % sim.env_num
            traffic = sim.engine.traffic_manager
            # What MetaDrive's Randomizable.seed does; its traffic manager skips it under random_traffic.
            traffic.random_seed = seed
            traffic.np_random = np.random.RandomState(seed)
        obs, info = self._env.reset(seed=map_seed)
        renderer = sim.engine._top_down_renderer
        if renderer is not None:  # its fading trail of the last frames would show the old episode
            renderer.history_objects.clear()
        return np.asarray(obs, dtype=np.float32), dict(info)

    def step(self, action):
        self._check_open()
        obs, reward, terminated, truncated, info = self._env.step(np.asarray(action))
        return np.asarray(obs, dtype=np.float32), float(reward), bool(terminated), bool(truncated), info

    def _close(self, reason: str) -> None:
        if self._closed_because is None:
            self._closed_because = reason
            if self in _LIVE:
                _LIVE.remove(self)
            self._env.close()

    def close(self):
        self._close(reason="close() was called")
