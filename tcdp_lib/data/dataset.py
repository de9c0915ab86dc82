"""Load a DSRL-format dataset through ``dsrl``'s own loader, validate it, attach its metadata.

Where the file comes from, in order:

1. an explicit ``path``;
2. ``$DSRL_DATASET_DIR/<task>.hdf5`` (a file made by ``tcdp generate-data``), or dsrl's own
   file name for the task in that folder (an official DSRL file placed there by hand);
3. the workbench's shipped ``data/<task>.hdf5``;
4. otherwise dsrl's download path runs (``env.get_dataset()`` with no path). Without network
   it fails, and :class:`DatasetNotFoundError` says which files were looked for where, and how
   to make one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tcdp_lib.data.envs import make_env
from tcdp_lib.data.episodes import Episodes
from tcdp_lib.data.scores import normalized_scores
from tcdp_lib.data.tasks import TaskInfo, get_task
from tcdp_lib.paths import DATA_DIR

REQUIRED_KEYS = ("observations", "next_observations", "actions", "rewards", "costs", "terminals", "timeouts")


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent with its task."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No local file for the task, and dsrl's download did not work."""


@dataclass(frozen=True)
class DatasetMeta:
    """Metadata every dataset carries (official DSRL files get dsrl's reference values)."""

    task_id: str
    min_episode_reward: float
    """Reference minimum episode reward, for the normalised reward."""
    max_episode_reward: float
    """Reference maximum episode reward."""
    budgets: tuple[float, ...]
    """The three DSRL budgets of the task's family."""
    generator: dict = field(default_factory=dict)
    """How the file was made (seed, schedule, steps, wall time); empty for official files."""
    source: str = ""
    """The file it was read from."""


@dataclass(frozen=True)
class Dataset:
    """A validated dataset: its episodes, metadata and task."""

    task: TaskInfo
    meta: DatasetMeta
    episodes: Episodes
    path: Path

    def normalized(self, reward, cost, budget: float):
        """DSRL's ``(normalized_reward, normalized_cost)`` with this dataset's references."""
        return normalized_scores(reward, cost, budget, self.meta.min_episode_reward,
                                 self.meta.max_episode_reward)


def _dsrl_file_name(task: TaskInfo) -> str | None:
    from tcdp_lib.data import compat

    compat.apply()  # dsrl's first import goes through the fixes (and stays quiet)
    from dsrl import infos

    url = infos.DATASET_URLS.get(task.name)
    return url.rsplit("/", 1)[-1] if url else None


def candidate_paths(task_id: str) -> list[Path]:
    """The local files looked for, in order of preference."""
    task = get_task(task_id)
    out = []
    env_dir = os.environ.get("DSRL_DATASET_DIR")
    if env_dir:
        out.append(Path(env_dir) / f"{task_id}.hdf5")
        official = _dsrl_file_name(task)
        if official:
            out.append(Path(env_dir) / official)
    out.append(DATA_DIR / f"{task_id}.hdf5")
    return out


def resolve_path(task_id: str, path: str | os.PathLike | None = None) -> Path | None:
    """The file to load for ``task_id``: ``path`` if given, else the first existing candidate."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DatasetNotFoundError(f"dataset file {p} for task {task_id} does not exist")
        return p
    for p in candidate_paths(task_id):
        if p.exists():
            return p
    return None


def _read_meta(path: Path, task: TaskInfo) -> DatasetMeta:
    import h5py
    from dsrl import infos

    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)

    def _get(key):
        v = attrs.get(key)
        if isinstance(v, bytes):
            v = v.decode()
        return v

    file_task = _get("task_id")
    if file_task is not None and file_task != task.task_id:
        raise DatasetError(
            f"{path} holds data of task {file_task!r}, not of the requested task {task.task_id!r}"
        )
    gen = _get("generator")
    gen = json.loads(gen) if isinstance(gen, str) else {}
    budgets = _get("budgets")
    budgets = tuple(json.loads(budgets)) if isinstance(budgets, str) else task.budgets
    rmin = _get("min_episode_reward")
    rmax = _get("max_episode_reward")
    if rmin is None or rmax is None:  # an official DSRL file: dsrl's reference values
        rmin = infos.MIN_EPISODE_REWARD[task.name]
        rmax = infos.MAX_EPISODE_REWARD[task.name]
    return DatasetMeta(task.task_id, float(rmin), float(rmax), tuple(float(b) for b in budgets),
                       gen, str(path))


def validate_arrays(data: dict, path, obs_shape: tuple, act_shape: tuple) -> None:
    """Check keys, shapes, finiteness and that at least one episode ends; raise DatasetError."""
    for key in REQUIRED_KEYS:
        if key not in data:
            raise DatasetError(f"{path}: missing key {key!r} (a DSRL file has {', '.join(REQUIRED_KEYS)})")
    n = data["observations"].shape[0]
    expect = {
        "observations": (n, *obs_shape), "next_observations": (n, *obs_shape),
        "actions": (n, *act_shape),
    }
    for key, shape in expect.items():
        if tuple(data[key].shape) != tuple(shape):
            raise DatasetError(
                f"{path}: {key!r} has shape {tuple(data[key].shape)}, expected {tuple(shape)} "
                f"for this environment"
            )
    for key in ("rewards", "costs", "terminals", "timeouts"):
        if np.asarray(data[key]).reshape(n, -1).shape != (n, 1):
            raise DatasetError(f"{path}: {key!r} has shape {np.shape(data[key])}, expected ({n},)")
    for key in ("observations", "next_observations", "actions", "rewards", "costs"):
        arr = np.asarray(data[key], dtype=np.float64).reshape(n, -1)
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DatasetError(
                f"{path}: {key!r} has {len(rows)} rows with NaN or inf (first at row {rows[0]})"
            )
    ends = (np.asarray(data["terminals"]).reshape(-1) > 0) | (np.asarray(data["timeouts"]).reshape(-1) > 0)
    if n == 0 or not ends.any():
        raise DatasetError(f"{path}: zero episodes (no step has a terminal or timeout flag; {n} steps)")


def load_dataset(task_id: str, path: str | os.PathLike | None = None) -> Dataset:
    """Load ``task_id``'s dataset through dsrl's ``env.get_dataset(h5path=...)`` and validate it."""
    import h5py

    task = get_task(task_id)
    resolved = resolve_path(task_id, path)
    env = make_env(task_id)  # registers dsrl's ids, or names the missing simulator package
    try:
        offline = env.unwrapped
        if resolved is None:
            looked = ", ".join(str(p) for p in candidate_paths(task_id))
            try:
                data = offline.get_dataset()  # dsrl's download path
            except Exception as err:  # noqa: BLE001 - any failure here means "no data"
                raise DatasetNotFoundError(
                    f"no dataset for {task_id}: looked for {looked}; dsrl's download of "
                    f"{offline.dataset_url} failed ({type(err).__name__}: {err}). Make one with "
                    f"`tcdp generate-data {task_id}` or set DSRL_DATASET_DIR to a folder holding it."
                ) from err
            resolved = Path(offline.dataset_filepath)
        else:
            if not h5py.is_hdf5(resolved):
                raise DatasetError(f"{resolved} is not an hdf5 file")
            with h5py.File(resolved, "r") as f:  # check before dsrl's loader asserts
                raw = {k: f[k] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
                shapes = {k: v.shape for k, v in raw.items()}
            for key in REQUIRED_KEYS:
                if key not in shapes:
                    raise DatasetError(
                        f"{resolved}: missing key {key!r} (a DSRL file has {', '.join(REQUIRED_KEYS)})"
                    )
            obs_shape = offline.observation_space.shape
            act_shape = offline.action_space.shape
            for key, shape in (("observations", obs_shape), ("next_observations", obs_shape), ("actions", act_shape)):
                if tuple(shapes[key][1:]) != tuple(shape):
                    raise DatasetError(
                        f"{resolved}: {key!r} has shape {tuple(shapes[key])}, expected (N, "
                        f"{', '.join(map(str, shape))}) for {task_id}"
                    )
            data = offline.get_dataset(h5path=str(resolved))
        validate_arrays(data, resolved, offline.observation_space.shape, offline.action_space.shape)
    finally:
        env.close()
    meta = _read_meta(Path(resolved), task)
    return Dataset(task=task, meta=meta, episodes=Episodes.from_arrays(data), path=Path(resolved))
