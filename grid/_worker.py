"""The worker function: revalue the book under one chunk of scenarios and summarise it.  Ray runs it as
a task; the serial executor calls it directly, so tests exercise the identical code."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stressgrid import kernels
from stressgrid.kernels import PreparedBook

from ._plan import Task
from ._summary import FamilyPartial, summarise

__all__ = ["Payload", "ChunkResult", "run_chunk", "revalue_chunk", "TailPayload", "TailResult", "run_tail_chunk", "group_sensitivities"]


@dataclass(frozen=True)
class Payload:
    """What every task reads: put into the object store once per batch.

    shocks : ``[S, F]`` all scenarios of the batch
    chunk_size : scenarios per task; block_size : scenarios per block within a task (<= chunk_size; see :func:`_blocks`)
    family_codes : int ``[S]``; weights : ``[S]``
    group_codes : level -> int ``[N]`` (asset class, sleeve) for the per-scenario breakdown
    keep_mass : ``1 - min(confidence)``, the tail mass each task keeps
    keep_positions : return the position-level P&L ``[s, N]`` too (for the scenario_pnl table and the
        sections that need it); otherwise a task returns summaries only
    sens : level -> ``(A [F, G], B [F, G])``, the delta-gamma-vega coefficients summed over each group's
        positions (see :func:`group_sensitivities`), or None
    books : the book valued at the as-of date (``book``, first) and at each horizon of the batch
        (:func:`kernels.age`); family_books : int ``[n_families]``, the index into ``books`` of each
        family's book (None: every family is revalued with ``book``)
    """

    book: PreparedBook
    base_levels: np.ndarray
    is_log: np.ndarray
    shocks: np.ndarray
    chunk_size: int
    block_size: int
    family_codes: np.ndarray
    weights: np.ndarray
    group_codes: dict[str, np.ndarray]
    keep_mass: float
    keep_positions: bool
    sens: dict | None = None  # group_sensitivities(): delta-gamma-vega P&L next to full revaluation
    books: tuple = ()
    family_books: np.ndarray | None = None

    def book_of(self, start: int, stop: int) -> np.ndarray | None:
        """int ``[stop - start]``: the index into ``books`` of each scenario's book (None: all ``book``)."""
        return None if self.family_books is None else self.family_books[self.family_codes[start:stop]]


@dataclass
class ChunkResult:
    """A task's result: small and exact to merge.

    totals : ``[s]`` total P&L per scenario; groups : level -> ``[s, G]`` P&L per group;
    families : family code -> :class:`FamilyPartial`; pnl : ``[s, N]`` or None; market : ``[s]`` the
    instantaneous P&L (today's book under the scenario's levels), None when no scenario of the chunk
    is valued at a horizon (it is then ``totals``).
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
    compile_seconds: float  # first call for this block shape in this process (trace + compile), else 0
    float64: bool
    market: np.ndarray | None = None


#: scenarios a pass of the option and cash-flow kernels' compiled loops (their ``SCENARIO_BLOCK``)
KERNEL_PASS = 64

#: block shapes whose kernels this process has already compiled
_WARM: set[tuple] = set()


def _blocks(payload, shocks: np.ndarray, book_of: np.ndarray | None = None):
    """Revalue ``shocks [s, F]`` block by block: yields ``(a, b, groups, seconds, compile_seconds)`` with
    ``groups`` the P&L of rows ``a:b`` per instrument group (:func:`kernels.revalue_groups`).

    ``book_of`` (int ``[s]``): the index into ``payload.books`` of each row's book (None: ``payload.book``
    for every row); a block whose rows use several books is revalued as one sub-block per book, each
    padded to the block's shape.

    Each block is padded to ``payload.block_size`` rows with zero shocks, so the kernels compile once per
    block shape (not per batch or chunk size) and a block's arrays stay small enough for the caches.
    A block size that fills whole passes of the kernels' compiled loops (:data:`KERNEL_PASS` scenarios)
    is revalued one row short, so that the base levels, which the kernels evaluate after the
    scenarios, take the last column of the last pass instead of a pass of their own
    (``kernels._edge.blocks_with_base``: 64 extra scenarios a call, a quarter of a call of 256).
    """
    B = payload.block_size
    if B > KERNEL_PASS and B % KERNEL_PASS == 0:
        B -= 1
    for a0 in range(0, len(shocks), B):
        b0 = min(a0 + B, len(shocks))
        for a, b, book in _runs(payload, book_of, a0, b0):
            sh = shocks[a:b]
            if b - a < B:
                sh = np.concatenate([sh, np.zeros((B - (b - a), sh.shape[1]))])
            key = (sh.shape, book.n, book.horizon_days, tuple(g.pricer.types for g in book.groups))
            compile_s = 0.0
            if key not in _WARM:
                t0 = time.perf_counter()
                kernels.revalue_groups(book, payload.base_levels, np.zeros_like(sh), payload.is_log)
                compile_s = time.perf_counter() - t0
                _WARM.add(key)
            t0 = time.perf_counter()
            groups = [(cols, pnl[: b - a]) for cols, pnl in kernels.revalue_groups(book, payload.base_levels, sh, payload.is_log)]
            yield a, b, groups, time.perf_counter() - t0, compile_s


def _runs(payload, book_of: np.ndarray | None, a: int, b: int):
    """``(start, stop, book)`` of each run of rows ``[a, b)`` that share a book."""
    if book_of is None:
        yield a, b, payload.book
        return
    codes = book_of[a:b]
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [b - a]])
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        yield a + int(lo), a + int(hi), payload.books[int(codes[lo])]


_BLAS = None


def _one_blas_thread():
    """A context with BLAS on one thread, as in a Ray worker (so the serial executor gives the same
    bits); the libraries are looked up once per process."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def run_chunk(payload: Payload, task: Task) -> ChunkResult:
    """Revalue scenarios ``task.start:task.stop`` and summarise them.

    The chunk is revalued in blocks of ``payload.block_size`` scenarios; each block is reduced to its
    totals and group sums while it is in cache (instrument group by instrument group, in the book's
    group order), and kept whole only when ``payload.keep_positions``.
    """
    kernels.configure_process()  # a no-op after the first call (the CLI's or the worker's start-up hook)
    with _one_blas_thread():
        return _run_chunk(payload, task)


def revalue_chunk(payload, shocks: np.ndarray, keep_positions: bool, book_of: np.ndarray | None = None):
    """Revalue ``shocks [s, F]`` block by block (:func:`_blocks`), reducing each block while it is in cache.

    Returns ``(totals [s], groups, pnl, sens_groups, seconds, compile_seconds, market)``: the total P&L,
    level -> ``[s, G]`` P&L per group of ``payload.group_codes``, the position P&L ``[s, N]`` when
    ``keep_positions`` (else None), the delta-gamma-vega P&L per group when ``payload.sens`` is set, and
    the instantaneous total P&L (today's book, ``payload.book``) when some row's book (``book_of``, an
    index into ``payload.books``) is valued at a horizon, else None."""
    s, N = len(shocks), payload.book.n
    H = np.concatenate([_indicator(codes) for codes in payload.group_codes.values()], axis=1)
    totals, sums = np.zeros(s), np.zeros((s, H.shape[1]))
    pnl = np.zeros((s, N)) if keep_positions else None
    seconds = compile_s = 0.0
    for a, b, groups, sec, comp in _blocks(payload, shocks, book_of):
        for cols, g in groups:
            totals[a:b] += g.sum(axis=1)
            sums[a:b] += g @ H[cols]
            if pnl is not None:
                kernels.place(pnl[a:b], cols, g)
        seconds += sec
        compile_s += comp
    sens_groups = None
    if payload.sens is not None:
        base = np.asarray(payload.base_levels, dtype=float)
        dL = kernels.shocked_levels(base, shocks, payload.is_log) - base
        dL2 = 0.5 * dL * dL
        sens_groups = {level: dL @ c[0] + dL2 @ c[1] for level, c in payload.sens.items()}
        dt = None if book_of is None else _years(payload)[book_of]
        for level, c in payload.sens.items():
            if len(c) > 2:  # rate convexity per curve, where a curve moves; theta over each row's horizon
                dlam = dL @ c[3].T
                if np.any(dlam != 0.0):
                    sens_groups[level] = sens_groups[level] + 0.5 * (dlam * dlam) @ c[2]
                if dt is not None and np.any(dt != 0.0):
                    sens_groups[level] = sens_groups[level] + dt[:, None] * c[4][None, :]
    market = None
    if book_of is not None and np.any(book_of != 0):
        market = totals.copy()
        aged = np.flatnonzero(book_of != 0)
        inst = np.zeros(len(aged))
        for a, b, groups, sec, comp in _blocks(payload, shocks[aged]):
            for _, g in groups:
                inst[a:b] += g.sum(axis=1)
            seconds += sec
            compile_s += comp
        market[aged] = inst
    return totals, _split_levels(sums, payload.group_codes), pnl, sens_groups, seconds, compile_s, market


def _run_chunk(payload: Payload, task: Task) -> ChunkResult:
    sl = slice(task.start, task.stop)
    totals, groups, pnl, sens_groups, seconds, compile_s, market = revalue_chunk(
        payload, payload.shocks[sl], payload.keep_positions, payload.book_of(task.start, task.stop))
    families = summarise(totals, task.start, payload.family_codes[sl], payload.weights[sl], payload.keep_mass)
    return ChunkResult(task.task_id, task.start, task.stop, totals, groups, families, pnl, sens_groups, seconds,
                       compile_s, kernels.x64_enabled(), market)


@dataclass(frozen=True)
class TailPayload:
    """The second pass of the Euler allocation: the tail scenarios of every family and confidence level.

    shocks : ``[U, F]`` shocks of the union of the tail scenarios
    coef : ``[U, K]`` each scenario's weight in each of the K (family, confidence) tails: ``-t / (1 - alpha)``
    books, rows_book : the books and each tail scenario's index into them (see :class:`Payload`)
    """

    book: PreparedBook
    base_levels: np.ndarray
    is_log: np.ndarray
    shocks: np.ndarray
    coef: np.ndarray
    block_size: int
    books: tuple = ()
    rows_book: np.ndarray | None = None


@dataclass
class TailResult:
    task_id: int
    sums: np.ndarray  # [K, N]: sum over this task's scenarios of coef * position P&L
    seconds: float
    float64: bool


def run_tail_chunk(payload: TailPayload, task: Task) -> TailResult:
    """``coef[a:b].T @ pnl[a:b]`` over tail scenarios ``task.start:task.stop``: additive across tasks."""
    kernels.configure_process()
    with _one_blas_thread():
        return _run_tail_chunk(payload, task)


def _run_tail_chunk(payload: TailPayload, task: Task) -> TailResult:
    sl = slice(task.start, task.stop)
    coef = payload.coef[sl]
    sums = np.zeros((coef.shape[1], payload.book.n))
    seconds = 0.0
    for a, b, groups, sec, _ in _blocks(payload, payload.shocks[sl], None if payload.rows_book is None else payload.rows_book[sl]):
        for cols, g in groups:
            sums[:, cols] += coef[a:b].T @ g
        seconds += sec
    return TailResult(task.task_id, sums, seconds, kernels.x64_enabled())


def _group_sums(pnl: np.ndarray, group_codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """level -> ``[s, G]``: each row's P&L summed over the positions of each group."""
    H = np.concatenate([_indicator(codes) for codes in group_codes.values()], axis=1)
    return _split_levels(pnl @ H, group_codes)


def _split_levels(sums: np.ndarray, group_codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns of ``pnl @ H`` (``H`` the 0/1 group indicators of every level side by side) split by
    level.  The products with 0 and 1 are exact and adding zeros changes nothing, so each entry is the
    sum of its group's P&L, computed per row: a scenario's sums do not depend on the other scenarios
    of its block."""
    out, at = {}, 0
    for level, codes in group_codes.items():
        G = int(codes.max()) + 1 if len(codes) else 0
        out[level] = np.ascontiguousarray(sums[:, at : at + G])
        at += G
    return out


def _indicator(codes: np.ndarray) -> np.ndarray:
    """``H [N, G]`` with ``H[i, codes[i]] = 1``."""
    H = np.zeros((len(codes), int(codes.max()) + 1 if len(codes) else 0))
    H[np.arange(len(codes)), codes] = 1.0
    return H


def group_sensitivities(sens, group_codes: dict[str, np.ndarray]) -> dict[str, tuple]:
    """The coefficients of :class:`kernels.Sensitivities` summed over each group: level -> ``(grad.T @ H,
    gamma.T @ H)`` with ``H [N, G]`` the group indicator, and when the sensitivities have theta and rate
    convexity also ``convexity.T @ H [C, G]``, ``curve_mean [C, F]`` and ``theta @ H [G]``.  A group's
    approximate P&L under factor-level changes ``dL [s, F]`` over ``dt`` years is then ``dL @ A + 1/2
    dL**2 @ B + 1/2 (dL @ curve_mean.T)**2 @ Cv + dt theta``, the sum of its positions' approximations
    (:func:`kernels.sensitivity_pnl`) without the ``[s, N]`` matrix."""
    out = {}
    for level, codes in group_codes.items():
        H = _indicator(codes)
        c = (sens.grad.T @ H, sens.gamma.T @ H)
        if getattr(sens, "convexity", None) is not None and getattr(sens, "theta", None) is not None:
            c = c + (sens.convexity.T @ H, sens.curve_mean, sens.theta @ H)
        out[level] = c
    return out


def _years(payload) -> np.ndarray:
    """``[len(books)]``: years (Actual/365) from the as-of date to each book's valuation date."""
    return np.array([b.horizon_years for b in payload.books])
