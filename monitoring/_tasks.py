"""Running monitoring tasks through the grid's executor protocol without importing the grid.

A grid executor (``grid.SerialExecutor``, ``grid.RayExecutor``) has ``fn(payload, task) -> result`` and
``map(payload, tasks, on_result) -> results in task order``; every result carries the ``task_id`` of its
task.  Monitoring hands it a copy of the executor with its own worker function, so Ray (the payload put
into the object store once, results collected as they complete, worker deaths retried) is the grid's.
"""

from __future__ import annotations

import copy
from typing import Callable

from stressgrid.core import TaskError

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
    if not hasattr(executor, "map") or not hasattr(executor, "fn"):
        raise TypeError("executor: expected a grid executor (SerialExecutor or RayExecutor) with 'fn' and 'map'")
    ex = copy.copy(executor)
    ex.fn = fn
    try:
        return ex.map(payload, tasks, on_result)
    except TaskError:
        raise
    except Exception as exc:
        task = getattr(exc, "task", None)  # grid.TaskFailure carries the task and the reason
        if task is None:
            raise
        raise TaskError(f"{what(task)} failed: {getattr(exc, 'reason', _reason(exc))}") from None
