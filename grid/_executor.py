"""Executors: run the worker function over the planned tasks, serially or as Ray tasks."""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

from core import TaskError

from ._plan import Task
from ._worker import ChunkResult, Payload, run_chunk

__all__ = ["Executor", "SerialExecutor", "RayExecutor"]

Progress = Callable[[ChunkResult], None]


class Executor(Protocol):
    def map(self, payload: Payload, tasks: list[Task], progress: Progress | None = None) -> list[ChunkResult]: ...


class SerialExecutor:
    """Runs every task in this process, in order."""

    workers = 1

    def map(self, payload: Payload, tasks: list[Task], progress: Progress | None = None) -> list[ChunkResult]:
        out = []
        for t in tasks:
            r = run_chunk(payload, t)
            out.append(r)
            if progress:
                progress(r)
        return out


class RayExecutor:
    """Runs tasks on Ray with at most ``workers`` in flight (default: the cluster's CPUs).

    The payload is put into the object store once; results are collected with ``ray.wait`` as they
    complete and returned in task order.  A task whose worker process dies is retried up to
    ``max_retries`` times.
    """

    def __init__(self, workers: int | None = None, max_retries: int = 3):
        self.workers = workers
        self.max_retries = max_retries

    def map(self, payload: Payload, tasks: list[Task], progress: Progress | None = None) -> list[ChunkResult]:
        import ray

        from cluster import ray_available_cpus

        remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(run_chunk)
        ref = ray.put(payload)
        limit = self.workers or max(ray_available_cpus(), 1)
        queue = list(tasks)
        pending: dict = {}
        done: dict[int, ChunkResult] = {}
        while queue or pending:
            while queue and len(pending) < limit:
                t = queue.pop(0)
                pending[remote.remote(ref, t)] = t
            ready, _ = ray.wait(list(pending), num_returns=1)
            for obj in ready:
                task = pending.pop(obj)
                try:
                    r = ray.get(obj)
                except ray.exceptions.RayError as exc:
                    for other in pending:
                        ray.cancel(other)
                    cause = getattr(exc, "cause", None) or exc
                    raise TaskError(
                        f"task {task.task_id} (scenarios {task.start}..{task.stop - 1}) failed: "
                        f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
                    ) from None
                done[r.task_id] = r
                if progress:
                    progress(r)
        return [done[t.task_id] for t in tasks]
