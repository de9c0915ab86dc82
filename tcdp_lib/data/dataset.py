"""Load a DSRL-format dataset through ``dsrl``'s own loader, validate it, attach its metadata.

Where the file comes from, in order:

1. an explicit ``path``;
2. ``$DSRL_DATASET_DIR/<task>.hdf5`` (a file made by ``tcdp generate-data``), or dsrl's own
   file name for the task in that folder (an official DSRL file placed there by hand);
3. the workbench's shipped ``data/<task>.hdf5``;
4. otherwise dsrl's download path runs (``env.get_dataset()`` with no path). Without network
   it fails, and :class:`DatasetNotFoundError` says which files were looked for where, and how
   to make one.

A local file is checked before dsrl's loader reads it (keys, dtypes, shapes: :func:`check_layout`)
and its values after (:func:`validate_arrays`); what h5py or dsrl raise on a broken file becomes a
:class:`DatasetError` naming the file. Of the file's root attributes only the workbench's own
are read (:func:`read_meta`); any other attribute is ignored.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tcdp_lib.data.envs import make_env
from tcdp_lib.data.episodes import Episodes
from tcdp_lib.data.scores import normalized_scores
from tcdp_lib.data.tasks import TaskInfo, get_task
from tcdp_lib.errors import DatasetError, DatasetNotFoundError
from tcdp_lib.paths import DATA_DIR

REQUIRED_KEYS = ("observations", "next_observations", "actions", "rewards", "costs", "terminals", "timeouts")


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


def _text(value) -> str | None:
    """An attribute as text (h5py gives str, or bytes for fixed-length strings); ``None`` otherwise."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _finite(value, path, key) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        raise DatasetError(f"{path}: attribute {key!r} is {value!r}, expected a finite number")
    return x


def generator_info(value) -> dict:
    """The ``generator`` attribute: how the file was made, a JSON object. Anything else (a file
    from another tool may hold plain text there) is ignored: ``{}``."""
    try:
        info = json.loads(_text(value) or "")
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def read_meta(attrs: dict, path, task: TaskInfo) -> DatasetMeta:
    """The metadata of a file from its root attributes. Only the workbench's own are read, each
    checked: ``task_id``, ``budgets`` (a JSON list), ``min_episode_reward`` and
    ``max_episode_reward`` (dsrl's reference values when absent), and ``generator`` (descriptive:
    ignored unless a JSON object). Any other attribute is ignored."""
    from dsrl import infos

    file_task = attrs.get("task_id")
    if file_task is not None:
        if _text(file_task) is None:
            raise DatasetError(f"{path}: attribute 'task_id' is {file_task!r}, expected a task id such as "
                               f"{task.task_id!r}")
        if _text(file_task) != task.task_id:
            raise DatasetError(
                f"{path}: holds data of task {_text(file_task)!r}, not of the requested task {task.task_id!r}"
            )
    budgets = task.budgets
    if "budgets" in attrs:
        raw = attrs["budgets"]
        try:
            values = json.loads(_text(raw)) if _text(raw) is not None else np.asarray(raw).tolist()
            budgets = tuple(float(b) for b in values)
        except (json.JSONDecodeError, TypeError, ValueError):
            budgets = ()
        if not budgets or not all(math.isfinite(b) and b >= 0 for b in budgets):
            raise DatasetError(f"{path}: attribute 'budgets' is {raw!r}, expected a JSON list of finite numbers >= 0")
    if "min_episode_reward" in attrs and "max_episode_reward" in attrs:
        rmin = _finite(attrs["min_episode_reward"], path, "min_episode_reward")
        rmax = _finite(attrs["max_episode_reward"], path, "max_episode_reward")
    else:  # an official DSRL file: dsrl's reference values
        rmin = float(infos.MIN_EPISODE_REWARD[task.name])
        rmax = float(infos.MAX_EPISODE_REWARD[task.name])
    return DatasetMeta(task.task_id, rmin, rmax, budgets, generator_info(attrs.get("generator")), str(path))


_DTYPE_KINDS = {"S": "byte strings", "U": "text", "O": "text or objects", "V": "records", "c": "complex numbers",
                "M": "dates", "m": "time spans"}


def check_layout(arrays, path, task_id: str, obs_shape: tuple, act_shape: tuple) -> int:
    """Keys, dtypes and shapes of a DSRL file's arrays (numpy arrays, or h5py datasets, of which
    nothing is read); returns the number of rows. :class:`DatasetError` naming the key otherwise."""
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DatasetError(f"{path}: missing key {key!r} (a DSRL file has {', '.join(REQUIRED_KEYS)})")
    for key in REQUIRED_KEYS:
        dtype = np.dtype(arrays[key].dtype)
        if dtype.kind not in "biuf":
            raise DatasetError(f"{path}: {key!r} holds {_DTYPE_KINDS.get(dtype.kind, dtype.kind)} (dtype {dtype}), "
                               f"expected numbers")
    per_row = {"observations": tuple(obs_shape), "next_observations": tuple(obs_shape), "actions": tuple(act_shape)}
    n = None
    for key in REQUIRED_KEYS:
        shape = tuple(arrays[key].shape)
        row = per_row.get(key, ())
        if not shape or shape[1:] not in ((row,) if row else ((), (1,))):
            raise DatasetError(f"{path}: {key!r} has shape {shape}, expected "
                               f"(N, {', '.join(map(str, row))}) for {task_id}" if row else
                               f"{path}: {key!r} has shape {shape}, expected (N,)")
        n = shape[0] if n is None else n
        if shape[0] != n:
            raise DatasetError(f"{path}: {key!r} has {shape[0]} rows, 'observations' has {n}: "
                               f"expected one row per step in every array")
    if n == 0:
        raise DatasetError(f"{path}: zero episodes (the arrays have no rows)")
    return n


def validate_arrays(data: dict, path, task_id: str, obs_shape: tuple, act_shape: tuple) -> None:
    """:func:`check_layout`, then the values: finite, costs >= 0, at least one episode ends.
    :class:`DatasetError` naming the key and the first bad row otherwise."""
    n = check_layout(data, path, task_id, obs_shape, act_shape)
    for key in ("observations", "next_observations", "actions", "rewards", "costs"):
        arr = np.asarray(data[key], dtype=np.float64).reshape(n, -1)
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DatasetError(
                f"{path}: {key!r} has {len(rows)} rows with NaN or inf (first at row {rows[0]})"
            )
    costs = np.asarray(data["costs"], dtype=np.float64).reshape(-1)
    negative = np.flatnonzero(costs < 0)
    if negative.size:
        raise DatasetError(f"{path}: 'costs' has {negative.size} negative values (first at row {negative[0]}: "
                           f"{costs[negative[0]]:g}), expected costs >= 0")
    ends = (np.asarray(data["terminals"]).reshape(-1) > 0) | (np.asarray(data["timeouts"]).reshape(-1) > 0)
    if not ends.any():
        raise DatasetError(f"{path}: zero episodes (no step has a terminal or timeout flag; {n} steps)")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def inspect_file(path: Path, task_id: str, obs_shape: tuple, act_shape: tuple) -> dict:
    """Open ``path`` with h5py and :func:`check_layout` its arrays (reading no data); returns its
    root attributes. h5py's errors (a truncated or damaged file) become :class:`DatasetError`."""
    import h5py

    if not h5py.is_hdf5(path):
        raise DatasetError(f"{path} is not an hdf5 file")
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            check_layout(arrays, path, task_id, obs_shape, act_shape)
            return dict(f.attrs)
    except (OSError, KeyError) as err:
        raise DatasetError(f"{path}: unreadable hdf5 file, truncated or damaged ({_first_line(err)})") from err


def _read_with_dsrl(offline, path: Path) -> dict:
    """dsrl's own reader, its progress bar silenced; what it raises becomes :class:`DatasetError`."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return offline.get_dataset(h5path=str(path))
    except (AssertionError, OSError, KeyError, ValueError) as err:
        raise DatasetError(f"{path}: dsrl's loader refused the file ({type(err).__name__}: {_first_line(err)})") from err


def load_dataset(task_id: str, path: str | os.PathLike | None = None) -> Dataset:
    """Load ``task_id``'s dataset through dsrl's ``env.get_dataset(h5path=...)`` and validate it."""
    task = get_task(task_id)
    resolved = resolve_path(task_id, path)
    env = make_env(task_id)  # registers dsrl's ids, or names the missing simulator package
    try:
        offline = env.unwrapped
        shapes = (offline.observation_space.shape, offline.action_space.shape)
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
            attrs = inspect_file(resolved, task_id, *shapes)
        else:
            attrs = inspect_file(resolved, task_id, *shapes)  # before dsrl's loader asserts
            data = _read_with_dsrl(offline, resolved)
        validate_arrays(data, resolved, task_id, *shapes)
    finally:
        env.close()
    meta = read_meta(attrs, Path(resolved), task)
    return Dataset(task=task, meta=meta, episodes=Episodes.from_arrays(data), path=Path(resolved))
