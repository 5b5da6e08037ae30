"""Running monitoring tasks through the grid's executor protocol without importing the grid.

A grid executor follows :class:`stressgrid.core.executor.Executor`: ``map(payload, tasks, on_result,
fn=...)`` returns the results in task order.  Monitoring passes its own worker function, so Ray (the
payload put into the object store once, results collected as they complete, worker deaths retried) is
the grid's.
"""

from __future__ import annotations

from typing import Callable

from stressgrid.core import TaskError
from stressgrid.core.executor import Executor, TaskFailure

__all__ = ["run_tasks"]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}".strip()


def run_tasks(fn: Callable, executor, payload, tasks: list, on_result: Callable | None, what: Callable[[object], str]) -> list:
    """``[fn(payload, t) for t in tasks]``, here or on ``executor``.

    Raises
    ------
    TaskError
        Naming the task (``what(task)``) and the reason, if a task raises.
    """
    if executor is None:
        out = []
        for t in tasks:
            try:
                r = fn(payload, t)
            except Exception as exc:  # a task's failure names the task
                raise TaskError(f"{what(t)} failed: {_reason(exc)}") from exc
            out.append(r)
            if on_result:
                on_result(r)
        return out
    if not isinstance(executor, Executor):
        raise TypeError(f"executor: expected a grid executor (SerialExecutor or RayExecutor), got {type(executor).__name__}")
    try:
        return executor.map(payload, tasks, on_result, fn=fn, cpu_only=True)
    except TaskFailure as exc:
        raise TaskError(f"{what(exc.task)} failed: {exc.reason}") from None
