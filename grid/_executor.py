"""Executors: run the worker function over the planned tasks, serially or as Ray tasks."""

from __future__ import annotations

from typing import Callable

from stressgrid.core.executor import Executor, TaskFailure

from ._plan import Task
from ._worker import ChunkResult, Payload, run_chunk

__all__ = ["Executor", "SerialExecutor", "RayExecutor", "TaskFailure"]

OnResult = Callable[[ChunkResult], None]
WorkerFn = Callable[[Payload, Task], ChunkResult]


def _apply(fn: WorkerFn, payload: Payload, task: Task) -> ChunkResult:
    """The Ray task body: the worker function travels as an argument, so any callable works."""
    return fn(payload, task)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}".strip()


class SerialExecutor:
    """Runs every task in this process, in order (the :class:`~stressgrid.core.executor.Executor` protocol)."""

    workers = 1
    num_gpus = 0.0
    ran_in_driver = 0  # counts only the tasks a Ray executor keeps in the driver
    concurrency = 1

    def __init__(self, fn: WorkerFn = run_chunk):
        self.fn = fn

    def map(self, payload: Payload, tasks: list[Task], on_result: OnResult | None = None, *,
            fn: WorkerFn | None = None, cpu_only: bool = False, keep: bool = True) -> list[ChunkResult]:
        fn = fn or self.fn
        out = []
        for t in tasks:
            try:
                r = fn(payload, t)
            except Exception as exc:
                raise TaskFailure(t, _reason(exc)) from exc
            if keep:
                out.append(r)
            if on_result:
                on_result(r)
        return out


class RayExecutor:
    """Runs tasks on Ray.

    ``workers`` caps the tasks in flight (for sharing a cluster).  By default (None) twice the cluster's
    CPUs plus two are in flight: Ray runs one per CPU and hands the next queued task to a worker as soon
    as it is free, without waiting for this loop (measured on 2 cores: about 2 ms per task with a queue
    against 4 to 28 ms with one task per CPU in flight).

    The payload is put into the object store once; results are collected with ``ray.wait`` as they
    complete (``on_result`` is called for each, e.g. to checkpoint it) and returned in task order.  A task
    whose worker process dies is retried up to ``max_retries`` times by Ray; a task that raises is not
    retried and fails the batch with :class:`TaskFailure`, after cancelling the tasks in flight.

    ``num_gpus`` > 0 asks for that share of a GPU per task (for clusters with GPU workers).

    A plan of a single task runs in this process when ``inline_single`` (the default) and no GPU is asked
    for: one task cannot be spread over workers, and sending it to one costs a round trip and a copy of
    the payload into the object store (measured: 20-30 ms against about 35 ms of work for the demo-sized
    batch).  ``ran_in_driver`` says how many tasks did so.
    """

    def __init__(self, workers: int | None = None, max_retries: int = 3, num_gpus: float = 0.0, fn: WorkerFn = run_chunk,
                 inline_single: bool = True):
        self.workers = workers
        self.inline_single = inline_single
        self.ran_in_driver = 0
        self.concurrency: int | None = None  # tasks that can run at once, known once ``map`` has run
        self.max_retries = max_retries
        self.num_gpus = num_gpus
        self.fn = fn

    def map(self, payload: Payload, tasks: list[Task], on_result: OnResult | None = None, *,
            fn: WorkerFn | None = None, cpu_only: bool = False, keep: bool = True) -> list[ChunkResult]:
        import ray

        from stressgrid.cluster import ray_available_cpus

        fn = fn or self.fn
        gpus = 0.0 if cpu_only else self.num_gpus
        cpus = max(ray_available_cpus(), 1)
        self.concurrency = min(self.workers, cpus) if self.workers else cpus
        if len(tasks) == 1 and self.inline_single and not gpus:
            self.ran_in_driver += 1
            return SerialExecutor(fn).map(payload, tasks, on_result, keep=keep)
        opts = dict(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        if gpus:
            opts["num_gpus"] = gpus
        remote = ray.remote(**opts)(_apply)
        ref = ray.put(payload)
        limit = self.workers or 2 * cpus + 2
        queue = list(tasks)
        pending: dict = {}
        done: dict[int, ChunkResult] = {}
        while queue or pending:
            while queue and len(pending) < limit:
                t = queue.pop(0)
                pending[remote.remote(fn, ref, t)] = t
            ready, _ = ray.wait(list(pending), num_returns=1)
            for obj in ready:
                task = pending.pop(obj)
                try:
                    r = ray.get(obj)
                except ray.exceptions.RayError as exc:
                    for other in pending:
                        ray.cancel(other)
                    cause = getattr(exc, "cause", None) or exc
                    raise TaskFailure(task, _reason(cause)) from None
                if keep:
                    done[r.task_id] = r
                if on_result:
                    on_result(r)
                del r
        return [done[t.task_id] for t in tasks] if keep else []
