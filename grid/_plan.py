"""Planning: a batch's scenarios split into chunk tasks with child seeds from one root seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "plan_tasks", "auto_chunk_size"]


@dataclass(frozen=True)
class Task:
    """One unit of work: scenarios ``[start, stop)`` of the batch.

    seed : entropy of this task's child of the root ``SeedSequence`` (same task, same seed, whatever
        the number of workers and however often it is retried).
    """

    task_id: int
    start: int
    stop: int
    seed: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.stop - self.start


def auto_chunk_size(n_positions: int, n_factors: int, budget_bytes: int = 8 * 2**20) -> int:
    """Scenarios per task from the book size alone (never from the worker count, so that results and
    task seeds do not depend on it): the largest power of two whose working set, about eight float64
    arrays of ``[chunk, max(positions, factors)]``, fits ``budget_bytes``, within [64, 16384].  The 8 MiB default keeps a task well inside a
    worker's cache-friendly working set and gives a demo-sized batch a few tasks to spread."""
    width = max(n_positions, n_factors, 1)
    chunk = budget_bytes // (8 * 8 * width)
    chunk = int(2 ** np.floor(np.log2(max(chunk, 1))))
    return int(np.clip(chunk, 64, 16384))


def plan_tasks(n_scenarios: int, chunk_size: int, root_seed: int) -> list[Task]:
    """Consecutive chunks of ``chunk_size`` scenarios (the last one may be shorter), each with a child
    seed spawned from ``numpy.random.SeedSequence(root_seed)``."""
    if n_scenarios <= 0:
        raise ValueError("no scenarios to plan")
    starts = list(range(0, n_scenarios, chunk_size))
    children = np.random.SeedSequence(root_seed).spawn(len(starts))
    return [
        Task(i, s, min(s + chunk_size, n_scenarios), tuple(int(x) for x in c.generate_state(4)))
        for i, (s, c) in enumerate(zip(starts, children))
    ]
