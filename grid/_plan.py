"""Planning: a batch's scenarios split into chunk tasks with child seeds from one root seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stressgrid import kernels

__all__ = ["Task", "plan_tasks", "auto_chunk_size", "auto_block_size", "TASK_CELLS", "TARGET_TASKS", "tail_chunk_size"]


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


#: scenario x position cells per task, at least and at most: at least about 30 ms of kernel time on one
#: core for a mixed book, so that a task's round trip (a few milliseconds) stays a few percent of it,
#: and at most about four times that
TASK_CELLS = (2**22, 2**24)
#: tasks a large batch is split into, when the bounds allow: enough that the last round of a few
#: workers is short, whatever their number
TARGET_TASKS = 16


def auto_block_size(n_positions: int, n_factors: int) -> int:
    """Scenarios per block of a task: one more than the kernels' call size (:func:`kernels.call_rows`, a
    power of two less one), so that a block is one call."""
    return kernels.call_rows(n_positions, n_factors) + 1


def auto_chunk_size(n_positions: int, n_factors: int, n_scenarios: int | None = None) -> int:
    """Scenarios per task from the batch's size alone (never from the worker count, so that results and
    task seeds do not depend on it).

    About ``n_scenarios / TARGET_TASKS``, kept between ``TASK_CELLS`` cells of ``chunk x max(positions,
    factors)``, in whole blocks (:func:`auto_block_size`): among the block counts from half to twice
    that, the one that leaves the last task fullest (a short last task leaves workers idle at the end).
    A batch smaller than the lower bound is one task.  Without ``n_scenarios``, the largest chunk the
    bounds allow.

    A task revalues its chunk block by block and returns summaries, so its memory is set by the block,
    not the chunk; the chunk only sets how much work each round trip to a worker carries.
    """
    width = max(n_positions, n_factors, 1)
    block = auto_block_size(n_positions, n_factors)
    lo, hi = (max(c // width, 1) for c in TASK_CELLS)
    if n_scenarios is None:
        return max(block, hi // block * block)
    if n_scenarios <= lo:
        return int(n_scenarios)
    want = min(max(n_scenarios / TARGET_TASKS, lo), hi) / block  # in blocks
    k_lo, k_hi = max(int(np.ceil(lo / block)), 1), max(int(hi // block), 1)
    candidates = [k for k in range(max(k_lo, int(want / 2)), min(k_hi, int(np.ceil(want * 2))) + 1)] or [max(k_lo, 1)]

    def score(k: int) -> float:  # how full the last task is, then closeness to the wanted size
        last = n_scenarios % (k * block)
        return (1.0 if last == 0 else last / (k * block)) - 0.01 * abs(k - want) / want

    return int(block * max(candidates, key=score))


def tail_chunk_size(n_tail: int, n_positions: int, block: int) -> int:
    """Scenarios per task of the second pass (the Euler contributions over the tail): whole blocks,
    split into as many tasks as the tail has 2**21 cells, at most :data:`TARGET_TASKS`, so that the
    pass spreads over the workers like the first one (it is about ``1 - min(confidence)`` of the
    batch) without tasks so small that their round trip dominates."""
    n_tasks = int(np.clip(n_tail * max(n_positions, 1) // 2**21, 1, TARGET_TASKS))
    return int(block * max(1, np.ceil(n_tail / (n_tasks * block))))


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
