"""The worker function: revalue the book under one chunk of scenarios.  Ray runs it as a task; the
serial executor calls it directly, so tests exercise the identical code."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import kernels
from kernels import PreparedBook

from ._plan import Task

__all__ = ["Payload", "ChunkResult", "run_chunk"]


@dataclass(frozen=True)
class Payload:
    """What every task reads: put into the object store once per batch."""

    book: PreparedBook
    base_levels: np.ndarray  # [F]
    is_log: np.ndarray  # [F]
    shocks: np.ndarray  # [S, F], all scenarios of the batch
    chunk_size: int


@dataclass(frozen=True)
class ChunkResult:
    task_id: int
    start: int
    pnl: np.ndarray  # [stop - start, N]
    seconds: float  # kernel time of this chunk, compilation excluded
    compile_seconds: float  # first call for this chunk shape in this process (trace + compile), else 0
    float64: bool


#: chunk shapes whose kernels this process has already compiled
_WARM: set[tuple] = set()


def run_chunk(payload: Payload, task: Task) -> ChunkResult:
    """P&L of every position under scenarios ``task.start:task.stop``.

    The chunk is padded to ``payload.chunk_size`` rows with zero shocks, so the kernels compile once
    per chunk shape, not once per batch size.
    """
    shocks = payload.shocks[task.start : task.stop]
    pad = payload.chunk_size - len(shocks)
    if pad > 0:
        shocks = np.concatenate([shocks, np.zeros((pad, shocks.shape[1]))])
    key = (shocks.shape, payload.book.n, tuple(g.pricer.types for g in payload.book.groups))
    compile_s = 0.0
    if key not in _WARM:
        t0 = time.perf_counter()
        kernels.revalue(payload.book, payload.base_levels, np.zeros_like(shocks), payload.is_log)
        compile_s = time.perf_counter() - t0
        _WARM.add(key)
    t0 = time.perf_counter()
    pnl = kernels.revalue(payload.book, payload.base_levels, shocks, payload.is_log)[: task.size]
    return ChunkResult(task.task_id, task.start, pnl, time.perf_counter() - t0, compile_s, kernels.x64_enabled())
