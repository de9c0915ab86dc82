"""Benchmark cells as Ray tasks: ``tcdp benchmark --executor ray``.

Each cell not finished yet becomes one Ray task that calls :func:`~tcdp_lib.runs.benchmark.run_cell`
in a worker: ``num_cpus`` = its torch threads (set inside the task with ``torch.set_num_threads``),
a share of a GPU when the cluster has GPUs, and ``max_retries``, so a cell whose worker dies (a
``kill -9``, a node lost) runs again; an exception raised by the cell itself is not retried and
is reported at the end. Finished cells are never rerun: the driver submits only cells without a
matching ``result.json``, and the task checks again before it starts (a retry of a cell whose
first attempt wrote its result before dying returns that result). A stopped grid resumes the same
way, and a diffusion cell's training resumes from its last checkpoint.

Cells that share a training (arms of one method, see ``BenchmarkConfig.arms``) are not started
together: the first trains, the others start once it has finished and load its model; the file
lock in ``run_cell`` guards the same folder against other drivers.

Where results go. The worker writes the cell's files (training, ``eval/``, ``result.json``,
atomically) under the ``out_root`` path the driver gives, and also returns the result body to the
driver, which writes ``result.json`` there itself when it does not see the worker's copy. So:

- on one machine (a local Ray) the out folder is simply shared;
- on a cluster, give ``--out`` an absolute path on a filesystem every node mounts (NFS, a
  cluster file system) to keep the trained models and episode files of every cell in one place
  and to let a resumed grid reuse partial trainings; without one, each node needs that path to be
  writable, the driver still gets every ``result.json`` (the table needs nothing else), and the
  models and ``eval/`` folders stay on the nodes that ran them.

A cluster also needs this project installed at the same path and version on every node (the
workers import ``tcdp_lib``), the datasets where the loader looks (``data/`` or
``$DSRL_DATASET_DIR``); the driver passes ``TCDP_DEVICE``, ``DSRL_DATASET_DIR``, ``TCDP_DATA_DIR``,
``MUJOCO_GL`` and ``SDL_VIDEODRIVER`` from its environment to the tasks when it joins a cluster.

Progress: a tqdm bar of cells done out of all, with the cells running and failed and an ETA; the
Ray dashboard's address when Ray started one. Worker output goes to Ray's log folder
(``/tmp/ray/session_latest/logs`` on each node), not to the driver's terminal.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path

from tcdp_lib.errors import CellsFailedError, TcdpError
from tcdp_lib.runs.cell import cell_name, load_cell_result, run_cell, train_dir, write_cell_result

RAY_INSTALL = "pip install 'ray[tune]==2.60.0' 'pyarrow<21' (make install does)"
FORWARDED_ENV = ("TCDP_DEVICE", "DSRL_DATASET_DIR", "TCDP_DATA_DIR", "MUJOCO_GL", "SDL_VIDEODRIVER")
"""Environment variables a cluster's tasks get from the driver (a local Ray inherits them all)."""


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise TcdpError(f"the Ray executor needs ray ({err}); {RAY_INSTALL}") from None
    return ray


def cell_task(cell: dict, out_root: str, threads: int, device=None) -> dict:
    """The body of one Ray task: the cell's result, run here unless it is already finished."""
    from tcdp_lib.device import set_threads

    set_threads(int(threads))
    return load_cell_result(Path(out_root), cell) or run_cell(cell, Path(out_root), progress=False, device=device)


def _label(cell: dict) -> str:
    return f"{cell['task']}/{cell_name(cell)}/seed{cell['seed']}"


def _reason(err: BaseException) -> str:
    """The last line of a Ray error (the cell's exception, or why its worker died)."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


def run_cells_ray(cells: list[dict], out_root: Path, *, workers: int | None = None, threads: int = 1,
                  address: str | None = None, gpus_per_cell: float | None = None, retries: int = 3,
                  dashboard: bool | None = None, device=None, progress: bool = True) -> list[dict]:
    """Run the unfinished ``cells`` as Ray tasks; returns the results of all finished cells in cell order.

    ``workers``: cells run at once (default: the cluster's CPUs // ``threads``); a local Ray is
    started with ``workers * threads`` CPUs. ``address``: join that Ray cluster (``"auto"``, or
    ``"ray://host:10001"``) instead of starting a local one; when this process has already called
    ``ray.init`` that Ray is used (and left running). ``threads``: torch threads and Ray CPUs of
    each cell. ``gpus_per_cell``: the GPU share of each cell (default: the cluster's GPUs spread
    over ``workers``, at most 1; 0 when it has none or ``$TCDP_DEVICE`` is ``cpu``). ``retries``:
    how often a cell whose worker died runs again. ``dashboard``: start Ray's dashboard (default:
    when its packages are installed). Raises :class:`CellsFailedError` naming the cells that failed,
    after all the others have finished.
    """
    from tqdm.auto import tqdm

    out_root = Path(out_root).resolve()
    threads = int(threads)
    if threads < 1:
        raise TcdpError(f"threads per cell must be >= 1, got {threads}")
    if workers is not None and int(workers) < 1:
        raise TcdpError(f"workers must be >= 1, got {workers}")
    results = {i: r for i, c in enumerate(cells) if (r := load_cell_result(out_root, c)) is not None}
    todo = [i for i in range(len(cells)) if i not in results]
    bar = tqdm(total=len(cells), initial=len(results), desc="benchmark (ray)", unit="cell", disable=not progress)
    if not todo:
        bar.close()
        return [results[i] for i in sorted(results)]

    ray = _import_ray()
    started_ray = False
    if not ray.is_initialized():
        init = {"include_dashboard": dashboard, "log_to_driver": False, "logging_level": logging.WARNING}
        if address is None:
            init["num_cpus"] = int(workers or max(1, (os.cpu_count() or 1) // threads)) * threads
        try:
            context = ray.init(address=address, **init)
        except (ConnectionError, ValueError, RuntimeError) as err:
            bar.close()
            raise TcdpError(f"could not start or join Ray (address {address!r}): {_reason(err)}") from None
        started_ray = True
        if getattr(context, "dashboard_url", None):
            bar.write(f"Ray dashboard: http://{context.dashboard_url}")
    try:
        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 0))
        if threads > cpus:
            raise TcdpError(f"{threads} threads per cell, but the Ray cluster has {cpus:g} CPUs")
        workers = int(workers or max(1, cpus // threads))
        if gpus_per_cell is None:
            gpus = float(resources.get("GPU", 0))
            cpu_only = os.environ.get("TCDP_DEVICE", "").strip() == "cpu" or (device is not None and str(device) == "cpu")
            gpus_per_cell = 0.0 if gpus == 0 or cpu_only else min(1.0, gpus / workers)
        options = {"num_cpus": threads, "num_gpus": float(gpus_per_cell), "max_retries": int(retries),
                   "retry_exceptions": False}
        if address is not None:
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            if env:
                options["runtime_env"] = {"env_vars": env}
        remote = ray.remote(cell_task)
        bar.write(f"{len(todo)} of {len(cells)} cells to run on Ray: {workers} at once, {threads} thread(s)"
                  f"{f' and {gpus_per_cell:g} GPU' if gpus_per_cell else ''} each")
        return _drive(ray, remote, options, cells, todo, results, out_root, workers, threads, device, bar)
    finally:
        bar.close()
        if started_ray:
            ray.shutdown()


def _drive(ray, remote, options, cells, todo, results, out_root, workers, threads, device, bar) -> list[dict]:
    """Submit cells as workers free up, collect results, release cells waiting on a shared training."""
    groups: dict[str, deque] = {}
    for i in todo:
        groups.setdefault(str(train_dir(out_root, cells[i])), deque()).append(i)
    trained = {str(train_dir(out_root, cells[i])) for i in results}  # a finished cell: its training is done
    ready: deque = deque()
    for key, group in groups.items():
        if key in trained:
            ready.extend(group)
            group.clear()
        else:
            ready.append(group.popleft())
    ready = deque(sorted(ready))  # cell order
    in_flight: dict = {}
    failed: list[tuple[int, str]] = []

    def status():
        bar.set_postfix(running=len(in_flight), failed=len(failed), refresh=False)

    try:
        while ready or in_flight:
            while ready and len(in_flight) < workers:
                i = ready.popleft()
                ref = remote.options(name=f"cell {_label(cells[i])}", **options).remote(
                    cells[i], str(out_root), threads, device)
                in_flight[ref] = i
            status()
            bar.refresh()
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=2.0)
            for ref in done:
                i = in_flight.pop(ref)
                group = groups[str(train_dir(out_root, cells[i]))]
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:
                    failed.append((i, _reason(err)))
                    bar.write(f"cell {_label(cells[i])} failed: {_reason(err)}")
                    if group:  # the next cell of its training group trains it
                        ready.append(group.popleft())
                    continue
                if load_cell_result(out_root, cells[i]) is None:  # the worker's folder is not ours
                    write_cell_result(out_root, result)
                results[i] = result
                ready.extend(group)
                group.clear()
                bar.update(1)
            status()
    except KeyboardInterrupt:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        raise
    if failed:
        names = "; ".join(f"{_label(cells[i])}: {why}" for i, why in failed)
        raise CellsFailedError(f"{len(failed)} of {len(cells)} cells failed ({names}); the {len(results)} finished "
                               f"ones are kept, run the grid again to retry the others")
    return [results[i] for i in sorted(results)]
