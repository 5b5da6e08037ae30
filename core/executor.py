"""The executor protocol: how the grid, and the packages it hands work to (monitoring, say), run tasks.

An executor runs a worker function ``fn(payload, task) -> result`` over planned tasks, here or on Ray,
and returns the results in task order; every result carries the ``task_id`` of its task.  It lives in
``core`` so that a package below the grid can take an executor without importing the grid.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

__all__ = ["Executor", "TaskFailure"]


class TaskFailure(Exception):
    """A task raised (bad data, a bug): it is not retried; ``task`` and ``reason`` say which and why."""

    def __init__(self, task, reason: str):
        super().__init__(reason)
        self.task = task
        self.reason = reason


@runtime_checkable
class Executor(Protocol):
    """What the grid needs of an executor (``grid.SerialExecutor``, ``grid.RayExecutor``).

    Attributes
    ----------
    workers : the cap on tasks in flight asked for (None: as many as the cluster runs)
    num_gpus : the share of a GPU each task asks for (0 for CPU only)
    ran_in_driver : how many calls of :meth:`map` ran their tasks in this process
    concurrency : how many tasks can run at once (known once :meth:`map` has run)
    """

    workers: int | None
    num_gpus: float
    ran_in_driver: int

    @property
    def concurrency(self) -> int | None: ...

    def map(self, payload: Any, tasks: list, on_result: Callable[[Any], None] | None = None, *,
            fn: Callable[[Any, Any], Any] | None = None, cpu_only: bool = False, keep: bool = True) -> list:
        """``[fn(payload, t) for t in tasks]`` (``fn`` defaults to the executor's own worker function),
        calling ``on_result`` as each finishes; ``cpu_only`` asks for no GPU; ``keep=False`` hands each
        result to ``on_result`` only and returns an empty list (nothing accumulates).  Raises
        :class:`TaskFailure` naming the first task that raised."""
        ...
