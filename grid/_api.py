"""``run_batch``: a batch run end to end from Python, as the command line runs it."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from stressgrid.core import ConfigError
from stressgrid.core.storage import Location, is_uri, stage_dir

from ._batch import Batch, load_batch
from ._executor import RayExecutor, SerialExecutor
from ._run import RunResult, build_manifest, chunk_size, execute, prepare_inputs, write_outputs

__all__ = ["Progress", "Results", "run_batch"]


@dataclass(frozen=True)
class Progress:
    """Where a run stands, passed to ``run_batch``'s ``progress`` after every finished task."""

    scenarios_done: int
    scenarios_total: int
    tasks_done: int
    tasks_total: int


@dataclass
class Results:
    """What a run produced.

    tables : every table of the run directory, by name (``risk_metrics``, ``contributions``, ...)
    manifest : the manifest (``manifest.json``)
    run_dir : where the tables were written (None when ``out`` was not given; for a URI, the local staging
        folder that holds the run's copy, :mod:`core.storage`)
    uri : the URI the run was written to (None for a local ``out``)
    run : the full :class:`RunResult` (inputs, tasks, summaries, the gathered P&L when kept)
    """

    tables: dict[str, pd.DataFrame]
    manifest: dict
    run_dir: Path | None
    run: RunResult
    uri: str | None = None

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def check_out_dir(out: str | Path) -> None:
    """Check, before any work, that the run directory ``out`` can be created and written: its nearest
    existing ancestor (or itself) must be a folder in which a file can be written.  Nothing is left
    behind; otherwise one :class:`ConfigError` naming it and the reason."""
    p = Path(out)
    base = p
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"--out {p}: cannot be used as the run directory ({base} is a file, not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".stressgrid-write-check-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--out {p}: cannot be used as the run directory ({exc.strerror or exc} in {base})") from None


def _load(batch: str | Path | Batch, batch_hash: str | None) -> tuple[Batch, str]:
    if isinstance(batch, Batch):
        return batch, batch_hash or "in-memory"
    if isinstance(batch, (str, Path)):
        return load_batch(batch)
    raise ConfigError(f"run_batch: batch must be a path to a batch file or a Batch (got {type(batch).__name__})")


class _Preparing:
    """``prepare(loaded)`` run on a thread of its own (:class:`._background.Background`); ``prepare`` calls
    ``loaded()`` once its inputs are loaded and checked."""

    def __init__(self, prepare: Callable):
        import threading

        from ._background import Background

        self._loaded = threading.Event()
        self._job = Background(lambda: prepare(self._loaded.set), "stressgrid-prepare", after=self._loaded.set)

    def wait_loaded(self) -> None:
        """Wait until the inputs are loaded; raise now if loading them failed."""
        self._loaded.wait()
        if self._job.failed():
            self._job.result()

    def result(self):
        return self._job.result()


def worker_preload(batch: Batch) -> tuple[str, ...]:
    """The modules the tasks of ``batch`` import, which each Ray worker imports in the background as it
    starts (``stressgrid.cluster.connect``'s ``preload``): the grid's task functions, and the
    optimisers, forecasters and their libraries where the batch has those sections."""
    names = ["stressgrid.grid"]
    if batch.optimise:
        names += ["stressgrid.portfolios", "cvxpy"]
    if batch.monitoring is not None:
        names.append("stressgrid.monitoring")
        kinds = {f.name for f in batch.monitoring.forecasters}
        if "ml_gbm" in kinds:
            names.append("sklearn.ensemble")
        if "ml_lstm" in kinds:
            names.append("optax")
    if batch.liquidity is not None:
        names.append("stressgrid.liquidity")
    return tuple(names)


def run_batch(
    batch: str | Path | Batch,
    out: str | Path | None = None,
    *,
    history: str | Path | None = None,
    serial: bool | None = None,
    address: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    progress: Callable[[Progress], None] | None = None,
    batch_hash: str | None = None,
    force: bool = False,
) -> Results:
    """Run a stress batch: load and validate it, generate its scenarios, run the tasks, reduce, and (with
    ``out``) write the Parquet tables and ``manifest.json``.

    Parameters
    ----------
    batch : a batch file (YAML) or a validated :class:`Batch`
    out : the run directory; None keeps everything in memory (no checkpoints, no ``--resume``).  A URI
        (``s3://bucket/prefix``, ``gs://...``, any file system Arrow opens) writes the run there: the tasks
        write the per-scenario part files to it and the driver its checkpoints; the driver keeps the other
        files in a local staging folder (:func:`core.storage.stage_dir`) and copies them to the URI when the
        run ends (:func:`reports.publish_run`; call it again after writing more files, e.g. the report)
    history : a factor history file that replaces the batch's (the ``--history`` option)
    serial : run every task in this process (default: the batch's ``execution.executor``)
    address : join this Ray cluster instead of starting an embedded local instance
    workers : CPUs of the embedded instance, or a cap on the tasks in flight on a cluster; the numbers
        do not depend on it
    resume : continue an interrupted run in ``out`` (only tasks without a checkpoint run)
    progress : called after every finished task with a :class:`Progress`
    batch_hash : the SHA-256 recorded for a :class:`Batch` passed in memory
    force : run even when the estimated memory or output size exceeds what the machine or ``out`` has

    Returns
    -------
    Results
        The tables as DataFrames, the manifest as a dict.

    This call sets up the process (:func:`stressgrid.kernels.configure_process`) before its first kernel.
    """
    from stressgrid import kernels

    kernels.configure_process()
    t_start = time.perf_counter()
    if resume and out is None:
        raise ConfigError("run_batch: resume=True needs the run directory 'out' of the interrupted run")
    b, digest = _load(batch, batch_hash)
    remote = None
    if out is not None and is_uri(out):
        remote = Location(out)
        remote.check()
        out = stage_dir(remote.target)
    if out is not None:
        check_out_dir(out)
    if remote is not None and not resume:
        from ._stream import STREAM_TABLES, clear_tables

        # a reader of the URI must not take an earlier run's manifest, part files, breaches or report for
        # this run's (its other tables are read only where the new manifest lists them)
        remote.delete_file("manifest.json")
        clear_tables(remote, STREAM_TABLES)
        for name in ("breaches.parquet", "report.html"):
            remote.delete_file(name)
    parts = None if remote is None else remote.target
    check_out = None if remote is not None else out  # object storage has no free space to check
    use_serial = b.execution.executor == "serial" if serial is None else serial
    n_workers = workers or b.execution.workers
    counts = {"scenarios": 0, "tasks": 0}

    def callbacks(inputs):
        if progress is None:
            return None
        n_scen = inputs.n_scenarios
        n_tasks = -(-n_scen // chunk_size(inputs))

        def callback(r) -> None:
            counts["scenarios"] += r.stop - r.start
            counts["tasks"] += 1
            progress(Progress(counts["scenarios"], n_scen, counts["tasks"], n_tasks))

        return callback

    ray_start = 0.0
    if use_serial:
        inputs = prepare_inputs(b, digest, history_path=history, out=check_out, force=force)
        result = execute(inputs, SerialExecutor(), callbacks(inputs), run_dir=out, resume=resume, parts=parts)
    else:
        from stressgrid.cluster import connect, gpu_request

        # Ray starts while the sensitivities and the scenarios are computed: the inputs are loaded and
        # checked first, so a mistyped book or history fails before any process is started
        preparing = _Preparing(lambda loaded: prepare_inputs(b, digest, history_path=history, out=check_out,
                                                             force=force, on_loaded=loaded))
        preparing.wait_loaded()
        t0 = time.perf_counter()
        with connect(address, num_cpus=n_workers, preload=worker_preload(b)) as started:
            ray_start = time.perf_counter() - t0
            gpus = gpu_request(b.execution.gpu, b.execution.gpu_per_task)
            inputs = preparing.result()
            # an instance started here has exactly n_workers CPUs, which caps the tasks running at
            # once: let Ray queue more so that no worker waits for the driver between tasks
            cap = None if started else n_workers
            result = execute(inputs, RayExecutor(workers=cap, num_gpus=gpus), callbacks(inputs), run_dir=out,
                             resume=resume, parts=parts)
    result.timings["start_ray"] = ray_start
    if out is not None:
        manifest = write_outputs(result, out)
    else:
        manifest = build_manifest(result)
    if remote is not None:
        manifest["storage"] = {"uri": remote.target, **({"parts": remote.target} if result.streamed_tables else {})}
    result.timings["total"] = time.perf_counter() - t_start
    manifest["timings_seconds"]["total"] = round(result.timings["total"], 4)
    if out is not None:
        import json

        (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    if remote is not None:
        from stressgrid.reports import publish_run

        publish_run(out, remote.target)
    return Results(result.tables, manifest, Path(out) if out is not None else None, result,
                   None if remote is None else remote.target)
