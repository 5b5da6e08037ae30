"""Streamed runs: each task draws its own scenarios, revalues them and writes its rows of the per-scenario
tables; the driver keeps only mergeable summaries.

A streamed run differs from an in-memory one in where the work and the rows are, not in its numbers:

* **Scenarios.** The driver fits each random family once (:func:`scenarios.fit`: the window's moves, the
  GARCH or DCC fit, the covariance, the stress) and ships the fitted model; a task draws the rows of its
  chunk from the family's seed (:func:`scenarios.draw_range`, bit-identical to the same rows of a full
  generation).  Historical, rolling and predictive families are generated in the driver, as they are
  small, and shipped once.
* **Tables.** Each task writes its rows of ``scenarios``, ``breakdown``, ``sensitivity``, ``liquidity``
  and (when asked for) ``scenario_pnl`` as Parquet part files, one per task and family, under
  ``<run>/<table>/part-<task>-<family>.parquet`` (:data:`STREAM_TABLES`).  Read in file-name order the
  parts give the rows in scenario order.  ``<run>`` is the run directory or, for a run written to a URI
  (:mod:`core.storage`), that URI: each task writes its parts there itself.
* **Summaries.** A task returns, per family, the weighted moments, the worst loss and its largest losses
  (:class:`FamilyPartial`, totals only), the same for the delta-gamma-vega P&L, the coverage counts per
  factor, the tail guard's tally of its scenarios' moves (:func:`._guards.guard_tally`), and the
  position P&L of its largest losses (:data:`ROW_MARGIN`).  The driver merges them in
  task order, cutting each family's tail to ``1 - min(confidence)`` after every merge, so it holds about
  that share of the scenarios' totals and position rows (the Euler contributions need the rows of the
  tail scenarios), never a whole ``[S, N]`` matrix or a per-scenario table.
* **Rows the tasks did not keep.** A task keeps the position rows of about twice its share of the tail;
  scenarios of a random family are independent draws, so the global tail almost never needs more.  The
  driver checks it exactly: where a tail scenario's row is missing, the task that holds it runs again
  for those rows only (:func:`run_stream_rows`).  The numbers never depend on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stressgrid import kernels
from stressgrid import scenarios as scenario_kinds
from stressgrid.core import ConfigError, ScenarioSet
from stressgrid.core.storage import Location, location
from stressgrid.kernels import PreparedBook

from ._guards import guard_tally, merge_tallies
from ._plan import Task
from ._reduce import per_scenario_tables, scenario_table, sensitivity_rows, sql_names
from ._summary import FamilyPartial, _kept, merge_partials, summarise
from ._worker import _blocks, _one_blas_thread, revalue_chunk

__all__ = ["STREAM_TABLES", "STREAM_CELLS", "FamilySource", "StreamPayload", "StreamResult", "StreamMerger",
           "run_stream_chunk", "run_stream_rows", "wants_stream", "not_streamed_because", "part_name", "clear_tables"]

#: the tables a streamed run's tasks write as part files (a folder each)
STREAM_TABLES = ("scenarios", "breakdown", "scenario_pnl", "sensitivity", "liquidity")
#: ``execution.stream: auto`` streams a batch with more scenario x max(positions, factors) cells than this
#: (about 100,000 scenarios of the demo book), when no section needs every scenario's P&L in one process
STREAM_CELLS = 5_000_000
#: the sections that read the gathered ``[S, N]`` P&L or the whole scenario set in the driver
GATHERING_SECTIONS = ("liquidity", "factor_model", "optimise", "monitoring")
#: a task keeps the position rows of its largest losses up to ``ROW_MARGIN`` times its share of the tail
#: mass, and at least ``ROW_FLOOR`` more rows
ROW_MARGIN = 2.0
ROW_FLOOR = 64


def gathering(batch) -> list[str]:
    """What of ``batch`` needs every scenario in the driver: the sections of :data:`GATHERING_SECTIONS` it
    has, and ``views`` when a family re-weights its scenarios by entropy pooling (the probabilities of a
    family depend on all its scenarios, and on their P&L for views on it)."""
    out = [s for s in GATHERING_SECTIONS if getattr(batch, s) is not None]
    views = [sp.name for sp in batch.scenarios if getattr(sp, "views", None)]
    if views:
        out.append(f"views (of {', '.join(repr(v) for v in views[:3])}{' ...' if len(views) > 3 else ''})")
    return out


def wants_stream(batch, n_scenarios: int, n_positions: int, n_factors: int, source: str) -> bool:
    """Whether the batch runs streamed (``execution.stream``): ``true`` always, ``false`` never, ``auto``
    above :data:`STREAM_CELLS` cells.  A section that needs every scenario in the driver
    (:data:`GATHERING_SECTIONS`) cannot stream: with ``true`` that is an error naming it, with ``auto``
    the run stays in memory (within the limits of those sections)."""
    setting = batch.execution.stream
    sections = gathering(batch)
    views = [sp.name for sp in batch.scenarios if getattr(sp, "views", None)]
    if setting is True and views:
        raise ConfigError(f"{source}, field 'execution.stream': true cannot run a family with views (family "
                          f"{views[0]!r}): its scenario probabilities depend on all its scenarios, so it runs in "
                          "memory; set execution.stream to auto or false")
    sections = [x for x in sections if not x.startswith("views")]
    if setting is True and sections:
        raise ConfigError(
            f"{source}, field 'execution.stream': true cannot run the {', '.join(sections)} section"
            f"{'s' if len(sections) > 1 else ''}: {'they need' if len(sections) > 1 else 'it needs'} every "
            "scenario's position P&L in one process; set execution.stream to auto or false, or run the "
            "section in a batch of its own with fewer scenarios")
    if setting is False or sections or views:
        return False
    return setting is True or n_scenarios * max(n_positions, n_factors, 1) > STREAM_CELLS


def not_streamed_because(batch, n_scenarios: int, n_positions: int, n_factors: int) -> str | None:
    """Why a batch large enough to stream runs in memory (None when it streams or is small): the sections
    that need every scenario in the driver, and the bound that then applies."""
    sections = gathering(batch)
    large = n_scenarios * max(n_positions, n_factors, 1) > STREAM_CELLS
    if batch.execution.stream is False or not sections or not large:
        return None
    from ._run import MAX_POSITION_CELLS

    return (f"the {', '.join(sections)} section{'s' if len(sections) > 1 else ''} need{'' if len(sections) > 1 else 's'} "
            "every scenario's position P&L in the driver, so this batch runs in memory: its driver memory grows "
            f"with the scenarios, and those sections are limited to {MAX_POSITION_CELLS:,} scenario x position "
            "cells; run them in a batch of their own to stream the rest")


def part_name(task_id: int, family_code: int) -> str:
    """The file name of a task's part of one family: ``part-<task:06d>-<family:04d>.parquet``."""
    return f"part-{task_id:06d}-{family_code:04d}.parquet"


def clear_tables(out: str | Path | Location, names=STREAM_TABLES) -> None:
    """Remove the tables ``names`` from the run directory ``out`` (a folder or a URI), as files and as
    folders of parts."""
    out = location(out)
    for name in names:
        out.delete_file(f"{name}.parquet")
        out.delete_dir(name)


@dataclass(frozen=True)
class FamilySource:
    """One scenario family of a streamed run: drawn by the tasks from a fitted model, or generated in
    the driver (``scenarios``, on the market's factor order)."""

    name: str
    n: int
    spec: object = None
    fitted: object = None
    seed: object = None
    info: dict | None = None
    scenarios: ScenarioSet | None = None

    @property
    def drawn(self) -> bool:
        return self.scenarios is None

    def rows(self, a: int, b: int) -> ScenarioSet:
        """Scenarios ``[a, b)`` of the family."""
        if self.scenarios is not None:
            return self.scenarios.subset(slice(a, b))
        return scenario_kinds.draw_range(self.spec, self.fitted, self.seed, self.info, a, b)

    def name_of(self, i: int) -> str:
        return f"{self.name}:{i}" if self.scenarios is None else self.scenarios.names[i]

    def info_columns(self) -> list[str]:
        if self.scenarios is not None:
            return list(self.scenarios.info.columns) if len(self.scenarios.info) else ["scenario", "family"]
        amp = getattr(self.fitted, "amplifier", None)
        guard = scenario_kinds.GUARD_COLUMNS if getattr(self.fitted, "guard", None) is not None else ()
        return ["scenario", "family", *self.info, *(amp.report if amp is not None else {}), *guard]


@dataclass(frozen=True)
class StreamPayload:
    """What every task of a streamed run reads (put into the object store once).

    sources : the families in batch order; offsets : ``[n_families + 1]`` first global row of each
    info_columns : the union of the families' info columns (every part of ``scenarios`` has them all)
    out_dir : where the tasks write the part files: the run directory, or a URI (:mod:`core.storage`)
    """

    book: PreparedBook
    base_levels: np.ndarray
    is_log: np.ndarray
    block_size: int
    group_codes: dict[str, np.ndarray]
    group_names: dict[str, list[str]]
    position_ids: tuple[str, ...]
    keep_mass: float
    sens: dict | None
    sources: tuple[FamilySource, ...]
    offsets: np.ndarray
    info_columns: tuple[str, ...]
    out_dir: str
    position_table: bool
    books: tuple = ()  # as in :class:`grid._worker.Payload`
    family_books: np.ndarray | None = None

    def rows_book(self, segs) -> np.ndarray | None:
        """int: the index into ``books`` of each row of ``segs`` (``(code, ..., rows)``; None: all ``book``)."""
        if self.family_books is None:
            return None
        return np.concatenate([np.full(len(s[-1]), self.family_books[s[0]], dtype=np.int64) for s in segs])

    def segments(self, start: int, stop: int):
        """``(family code, first global row, rows within the family [a, b))`` of the rows ``[start, stop)``."""
        for code in range(len(self.sources)):
            lo, hi = int(self.offsets[code]), int(self.offsets[code + 1])
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                yield code, a, a - lo, b - lo


@dataclass
class StreamResult:
    """A streamed task's summary (nothing in it grows with the task's scenarios beyond its tail).

    families / sens_families : family code -> :class:`FamilyPartial` of the total / delta-gamma-vega P&L
        (totals only)
    rows_index, rows : the position P&L ``[k, N]`` of the task's largest losses per family, by global
        scenario index (ascending)
    counts : family code -> int ``[4, F]``: scenarios in which each factor moved, came from data, was
        filled, had no data
    parts : the part files written, relative to the run directory
    guards : family code -> the tail guard's tally of the task's scenarios (:func:`._guards.guard_tally`;
        only the guarded families)
    """

    task_id: int
    start: int
    stop: int
    families: dict[int, FamilyPartial]
    sens_families: dict[int, FamilyPartial] | None
    rows_index: np.ndarray
    rows: np.ndarray
    counts: dict[int, np.ndarray]
    parts: list[str]
    seconds: float
    compile_seconds: float
    draw_seconds: float
    write_seconds: float
    float64: bool
    guards: dict = field(default_factory=dict)


def run_stream_chunk(payload: StreamPayload, task: Task) -> StreamResult:
    """Draw, revalue, write and summarise the rows ``task.start:task.stop`` of a streamed run."""
    kernels.configure_process()
    with _one_blas_thread():
        return _run_stream_chunk(payload, task)


def _counts(seg: ScenarioSet) -> np.ndarray:
    filled = seg.filled_mask
    return np.stack([(seg.shocks != 0).sum(axis=0), (seg.covered & ~filled).sum(axis=0), filled.sum(axis=0),
                     (~seg.covered).sum(axis=0)]).astype(np.int64)


def _run_stream_chunk(p: StreamPayload, task: Task) -> StreamResult:
    t0 = time.perf_counter()
    segs = [(code, g0, p.sources[code].rows(a, b)) for code, g0, a, b in p.segments(task.start, task.stop)]
    shocks = segs[0][2].shocks if len(segs) == 1 else np.concatenate([s.shocks for _, _, s in segs])
    draw_s = time.perf_counter() - t0
    totals, groups, pnl, sens_groups, seconds, compile_s, market = revalue_chunk(p, shocks, keep_positions=True,
                                                                                 book_of=p.rows_book(segs))
    codes = np.concatenate([np.full(len(s), c, dtype=np.int64) for c, _, s in segs])
    weights = np.concatenate([s.weights for _, _, s in segs])
    families = summarise(totals, task.start, codes, weights, p.keep_mass)
    sens_families = None
    if sens_groups is not None:
        sens_families = summarise(sens_groups["type"].sum(axis=1), task.start, codes, weights, p.keep_mass)
    # the position rows of each family's largest losses, about ROW_MARGIN times its share of the tail
    keep_idx = []
    for code, g0, seg in segs:
        at = np.arange(g0 - task.start, g0 - task.start + len(seg))
        loss, w = -totals[at], weights[at]
        k = _kept(loss, w, at, min(ROW_MARGIN * p.keep_mass * float(w.sum()) + ROW_FLOOR * float(w.max()), float(w.sum())))
        keep_idx.append(at[k])
    keep = np.concatenate(keep_idx)
    t0 = time.perf_counter()
    parts = _write_parts(p, task, segs, totals, groups, pnl, sens_groups, market)
    write_s = time.perf_counter() - t0
    guards = {c: g for c, _, s in segs if (g := guard_tally(s.info, s.factors)) is not None}
    return StreamResult(task.task_id, task.start, task.stop, families, sens_families, task.start + keep, pnl[keep],
                        {c: _counts(s) for c, _, s in segs}, parts, seconds, compile_s, draw_s, write_s,
                        kernels.x64_enabled(), guards)


def _write_parts(p: StreamPayload, task: Task, segs, totals, groups, pnl, sens_groups, market=None) -> list[str]:
    out = location(p.out_dir)
    written = []
    at = 0
    for code, _, seg in segs:
        sl = slice(at, at + len(seg))
        at += len(seg)
        name = p.sources[code].name
        zeros = np.zeros(len(seg), dtype=np.int64)
        book = p.books[int(p.family_books[code])] if p.family_books is not None else p.book
        explain = {}
        if book.offset is not None:
            explain = dict(time=np.full(len(seg), float(book.offset.sum())), market=market[sl],
                           revaluation=np.full(len(seg), "horizon", dtype=object))
        tabs = per_scenario_tables(seg.names, [name], zeros, seg.weights, totals[sl],
                                   {lv: g[sl] for lv, g in groups.items()}, p.group_names, p.position_ids,
                                   pnl[sl] if p.position_table else None, **explain)
        info = seg.info if len(seg.info) else pd.DataFrame({"scenario": list(seg.names), "family": name})
        tabs["scenarios"] = scenario_table(tabs["scenarios"], info.reindex(columns=list(p.info_columns)))
        if sens_groups is not None:
            tabs["sensitivity"] = sensitivity_rows(seg.names, [name], zeros, p.group_names["type"], groups["type"][sl],
                                                   sens_groups["type"][sl])
        tabs["liquidity"] = sql_names(seg.liquidity_table())
        for table, df in tabs.items():
            rel = f"{table}/{part_name(task.task_id, code)}"
            write_part(table, df, out, rel)
            written.append(rel)
    return written


def write_part(name: str, df: pd.DataFrame, out: Location, rel: str) -> None:
    """Write one part of table ``name`` as file ``rel`` of ``out`` atomically (locally a temporary file
    renamed into place; in object storage one upload), every column with the type the results schema
    declares (so every part of a table has the same Arrow schema whatever its family's data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stressgrid.reports import arrow_table, write_table

    if not out.remote:
        path = Path(out.path(rel))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(name, df, path, declared=True)
        return
    sink = pa.BufferOutputStream()
    pq.write_table(arrow_table(name, df, True), sink)
    out.write_bytes(rel, sink.getvalue())


@dataclass
class RowsResult:
    task_id: int
    rows_index: np.ndarray
    rows: np.ndarray
    float64: bool


@dataclass(frozen=True)
class RowsTask:
    """The second look at a task: the position P&L of the rows ``wanted`` (global indices) of ``task``."""

    task: Task
    wanted: np.ndarray

    @property
    def task_id(self) -> int:
        return self.task.task_id


def run_stream_rows(payload: StreamPayload, rt: RowsTask) -> RowsResult:
    """Draw the task's scenarios again and revalue only the rows ``rt.wanted``."""
    kernels.configure_process()
    with _one_blas_thread():
        task = rt.task
        segs = [(c, payload.sources[c].rows(a, b)) for c, _, a, b in payload.segments(task.start, task.stop)]
        shocks = np.concatenate([s.shocks for _, s in segs])[rt.wanted - task.start]
        book_of = payload.rows_book(segs)
        pnl = np.zeros((len(shocks), payload.book.n))
        for a, b, groups, _, _ in _blocks(payload, shocks, None if book_of is None else book_of[rt.wanted - task.start]):
            for cols, g in groups:
                kernels.place(pnl[a:b], cols, g)
        return RowsResult(task.task_id, rt.wanted, pnl, kernels.x64_enabled())


@dataclass
class StreamMerger:
    """Merges :class:`StreamResult` summaries in task order as they arrive (out-of-order ones wait), cutting
    every family's tail to ``keep_mass`` after each merge and dropping the position rows outside it."""

    n_tasks: int
    keep_mass: float
    families: dict[int, FamilyPartial] = field(default_factory=dict)
    sens: dict[int, FamilyPartial] = field(default_factory=dict)
    counts: dict[int, np.ndarray] = field(default_factory=dict)
    #: family -> the tail guard's tally of the merged tasks' scenarios (guarded families only)
    guards: dict[int, tuple] = field(default_factory=dict)
    #: family -> task's first scenario -> (global indices ascending, position rows) of its tail scenarios
    rows: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    _stored: dict[int, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"kernel": 0.0, "compile_max": 0.0, "draw": 0.0,
                                                               "write": 0.0})
    float64: bool = True
    _next: int = 0
    _waiting: dict[int, StreamResult] = field(default_factory=dict)

    def add(self, r: StreamResult) -> None:
        self._waiting[r.task_id] = r
        while self._next in self._waiting:
            self._merge(self._waiting.pop(self._next))
            self._next += 1

    @property
    def complete(self) -> bool:
        return self._next == self.n_tasks

    def _merge(self, r: StreamResult) -> None:
        self.float64 &= bool(r.float64)
        self.seconds["kernel"] += r.seconds
        self.seconds["compile_max"] = max(self.seconds["compile_max"], r.compile_seconds)
        self.seconds["draw"] += r.draw_seconds
        self.seconds["write"] += r.write_seconds
        self.parts += r.parts
        for code, p in r.families.items():
            self.families[code] = p if code not in self.families else merge_partials([self.families[code], p], self.keep_mass)
            self.counts[code] = r.counts[code] + self.counts.get(code, 0)
        for code, g in r.guards.items():
            self.guards[code] = merge_tallies(self.guards.get(code), g)
        for code, p in (r.sens_families or {}).items():
            self.sens[code] = p if code not in self.sens else merge_partials([self.sens[code], p], self.keep_mass)
        for code, p in r.families.items():
            on = np.isin(r.rows_index, p.tail_index, assume_unique=True)
            self.rows.setdefault(code, {})[r.start] = r.rows_index[on], r.rows[on]
            self._stored[code] = self._stored.get(code, 0) + int(on.sum())
            tail = self.families[code].tail_index
            if self._stored[code] > 1.5 * len(tail) + 4096:
                self._trim(code, tail)

    def _trim(self, code: int, tail: np.ndarray) -> None:
        """Keep only the rows of scenarios still in the family's merged tail (one task's rows at a time,
        so that the copies stay small); done when the rows kept exceed the tail by half."""
        n = 0
        for start, (idx, rows) in list(self.rows[code].items()):
            on = np.isin(idx, tail, assume_unique=True)
            if not on.all():
                self.rows[code][start] = idx[on], rows[on]
            n += int(on.sum())
        self._stored[code] = n

    def add_rows(self, code: int, start: int, idx: np.ndarray, rows: np.ndarray) -> None:
        """Rows revalued again for task ``start`` of family ``code``, merged into what it kept."""
        have_idx, have_rows = self.rows.setdefault(code, {}).get(start, (np.zeros(0, np.int64), np.zeros((0, rows.shape[1]))))
        all_idx = np.concatenate([have_idx, idx])
        order = np.argsort(all_idx, kind="stable")
        self.rows[code][start] = all_idx[order], np.concatenate([have_rows, rows])[order]

    def has_rows(self) -> np.ndarray:
        """The global indices of every kept row."""
        parts = [idx for chunks in self.rows.values() for idx, _ in chunks.values()]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def rows_of(self, code: int, start: int, idx: np.ndarray) -> np.ndarray:
        """The kept position rows of the scenarios ``idx`` of family ``code`` in the task starting at
        ``start``; an AssertionError if one is missing."""
        have_idx, have_rows = self.rows[code][start]
        at = np.searchsorted(have_idx, idx)
        if np.any(at >= len(have_idx)) or not np.array_equal(have_idx[np.minimum(at, len(have_idx) - 1)], idx):
            raise AssertionError(f"a tail scenario's position P&L is missing (family {code}, task at {start})")
        return have_rows[at]
