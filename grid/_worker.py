"""The worker function: revalue the book under one chunk of scenarios and summarise it.  Ray runs it as
a task; the serial executor calls it directly, so tests exercise the identical code."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import kernels
from kernels import PreparedBook

from ._plan import Task
from ._summary import FamilyPartial, summarise

__all__ = ["Payload", "ChunkResult", "run_chunk"]


@dataclass(frozen=True)
class Payload:
    """What every task reads: put into the object store once per batch.

    shocks : ``[S, F]`` all scenarios of the batch
    family_codes : int ``[S]``; weights : ``[S]``
    group_codes : level -> int ``[N]`` (asset class, sleeve) for the per-scenario breakdown
    keep_mass : ``1 - min(confidence)``, the tail mass each task keeps
    keep_positions : return the position-level P&L ``[s, N]`` too (for the scenario_pnl table)
    """

    book: PreparedBook
    base_levels: np.ndarray
    is_log: np.ndarray
    shocks: np.ndarray
    chunk_size: int
    family_codes: np.ndarray
    weights: np.ndarray
    group_codes: dict[str, np.ndarray]
    keep_mass: float
    keep_positions: bool
    sens: object = None  # kernels.Sensitivities: delta-gamma-vega P&L next to full revaluation


@dataclass
class ChunkResult:
    """A task's result: small and exact to merge.

    totals : ``[s]`` total P&L per scenario; groups : level -> ``[s, G]`` P&L per group;
    families : family code -> :class:`FamilyPartial`; pnl : ``[s, N]`` or None.
    """

    task_id: int
    start: int
    stop: int
    totals: np.ndarray
    groups: dict[str, np.ndarray]
    families: dict[int, FamilyPartial]
    pnl: np.ndarray | None
    sens_groups: dict[str, np.ndarray] | None  # level -> [s, G] of the sensitivity-based P&L
    seconds: float  # kernel time of this chunk, compilation excluded
    compile_seconds: float  # first call for this chunk shape in this process (trace + compile), else 0
    float64: bool


#: chunk shapes whose kernels this process has already compiled
_WARM: set[tuple] = set()


def run_chunk(payload: Payload, task: Task) -> ChunkResult:
    """Revalue scenarios ``task.start:task.stop`` and summarise them.

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
    seconds = time.perf_counter() - t0
    sl = slice(task.start, task.stop)
    groups = _group_sums(pnl, payload.group_codes)
    families = summarise(pnl, task.start, payload.family_codes[sl], payload.weights[sl], payload.keep_mass)
    sens_groups = None
    if payload.sens is not None:
        approx = kernels.sensitivity_pnl(payload.sens, payload.base_levels, shocks[: task.size], payload.is_log)
        sens_groups = _group_sums(approx, payload.group_codes)
    return ChunkResult(task.task_id, task.start, task.stop, pnl.sum(axis=1), groups, families,
                       pnl if payload.keep_positions else None, sens_groups, seconds, compile_s, kernels.x64_enabled())


def _group_sums(pnl: np.ndarray, group_codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        level: np.stack([pnl[:, codes == g].sum(axis=1) for g in range(int(codes.max()) + 1)], axis=1)
        for level, codes in group_codes.items()
    }
