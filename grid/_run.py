"""Run a batch end to end: inputs, plan, execute, reduce, write."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from stressgrid import kernels
from stressgrid import scenarios
from stressgrid.core import (
    Book,
    ConfigError,
    DataError,
    TaskError,
    History,
    MarketSnapshot,
    ScenarioSet,
    concat_scenarios,
    load_book,
    load_history,
    snapshot_from_history,
)
from stressgrid.core.storage import location

from ._batch import Batch
from ._executor import Executor, TaskFailure
from ._plan import Task, auto_block_size, auto_chunk_size, plan_tasks, tail_chunk_size
from ._reduce import merge_families, reduce_results, tail_plan
from ._store import TaskStore
from ._worker import ChunkResult, Payload, TailPayload, group_sensitivities, run_tail_chunk

__all__ = ["RunInputs", "RunResult", "RunPlan", "prepare_inputs", "plan_run", "run_plan", "reduce_run", "execute",
           "build_manifest", "write_outputs"]


@dataclass
class RunInputs:
    batch: Batch
    batch_hash: str
    history: History
    book: Book
    market: MarketSnapshot
    scenarios: ScenarioSet
    prepared: kernels.PreparedBook
    timings: dict[str, float] = field(default_factory=dict)
    sens: object = None  # kernels.Sensitivities at the snapshot, for the delta-gamma-vega comparison
    #: family -> (rows in ``scenarios``, daily cumulative factor paths ``[s, H, F]`` on the market's
    #: factors), for the families whose kind keeps paths
    family_paths: dict = field(default_factory=dict)
    #: factors held flat on purpose (``market.flat``): factor -> reason
    flat: dict = field(default_factory=dict)
    #: ``[F]`` the share of the book's gross exposure resting on each factor (the coverage table's column)
    exposure_share: object = None
    #: the memory and output size estimated before the scenarios were generated (:mod:`._resources`)
    estimate: object = None
    #: a streamed run's families (:class:`._stream.FamilySource`, batch order); ``scenarios`` is then None
    sources: list | None = None
    #: the book as revalued: ``books[0]`` is ``prepared`` (at the as-of date), the others valued at a
    #: horizon (:func:`kernels.age`); ``family_books``: family name -> index into ``books``
    books: tuple = ()
    family_books: dict = field(default_factory=dict)
    #: tables that describe how scenarios were designed (``reverse_shocks``), written with the results
    design_tables: dict = field(default_factory=dict)
    #: when the run began: before its inputs were read (the manifest's ``started``)
    started: datetime | None = None

    def book_codes(self, families: list[str]) -> np.ndarray:
        """int ``[len(families)]``: the index into ``books`` of each family's book."""
        return np.array([self.family_books.get(f, 0) for f in families], dtype=np.int64)

    @property
    def n_scenarios(self) -> int:
        return sum(s.n for s in self.sources) if self.sources is not None else len(self.scenarios)

    @property
    def streamed(self) -> bool:
        return self.sources is not None


@dataclass
class RunResult:
    inputs: RunInputs
    pnl: np.ndarray | None  # [S, N], kept when the scenario_pnl table or a section needs it (see keeps_positions)
    tasks: list[Task]
    results: list[ChunkResult]
    tables: dict[str, pd.DataFrame]
    timings: dict[str, float]
    started: datetime
    finished: datetime
    workers: int
    resumed_tasks: int = 0
    gpus_per_task: float = 0.0
    notes: dict = field(default_factory=dict)  # section -> notes for the manifest (e.g. liquidity's NAV)
    tasks_in_driver: int = 0  # kernel tasks a Ray executor ran in this process (a plan of one task)
    block_size: int = 0  # scenarios per kernel call within a task
    #: checkpoints found on --resume that did not verify ("FILE: reason"); their tasks ran again
    rejected_checkpoints: list = field(default_factory=list)

    #: the tables the tasks of a streamed run wrote as folders of parts (none for an in-memory run)
    streamed_tables: list = field(default_factory=list)


def prepare_inputs(batch: Batch, batch_hash: str, history_path: str | Path | None = None,
                   out: str | Path | None = None, force: bool = False,
                   on_loaded: Callable[[], None] | None = None) -> RunInputs:
    """Load and validate everything a batch reads, and generate its scenarios (:func:`_prepare_inputs`),
    with one BLAS thread.

    The driver's matrices here are small (factors x factors: covariance estimates, nearest-correlation
    projections, GARCH fits), where a BLAS thread pool costs more in synchronisation than it gains, and
    where it spins against the processes a Ray instance starts meanwhile: on two cores, the demo's
    nearest-correlation projections (a thousand eigendecompositions) took minutes instead of a second
    while Ray started.  One thread is also faster on an idle machine.
    """
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS: the limit covers the libraries loaded now)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _prepare_inputs(batch, batch_hash, history_path, out, force, on_loaded)


def _prepare_inputs(batch: Batch, batch_hash: str, history_path: str | Path | None = None,
                    out: str | Path | None = None, force: bool = False,
                    on_loaded: Callable[[], None] | None = None) -> RunInputs:
    """Load and validate everything a batch reads, and generate its scenarios.

    ``history_path`` (the ``--history`` option) wins over the batch file's ``history``.  Sets up the
    process for the kernels first (:func:`stressgrid.kernels.configure_process`; a no-op when done).
    Before the scenarios are generated, the batch's memory and output size are estimated and checked
    against the machine's available memory and the free space of ``out`` (:mod:`._resources`);
    ``force`` skips the check.  ``on_loaded`` is called once the book, the history and the market
    snapshot are loaded and checked (the errors of a mistyped input come before it), before the
    sensitivities and the scenarios.
    """
    kernels.configure_process()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc)
    from stressgrid.core.sources import (ProxySpec, apply_proxies, check_near_misses, complete_curves, default_proxies,
                                         load_source, merge_histories)

    from ._coverage import check_coverage, check_unmodelled_share, exposure_shares, resolve_flat
    from ._resources import check_resources, estimate_resources

    book = load_book(batch.book)
    base = batch.base_currency
    factors = kernels.required_factors(book.positions, base)
    if not factors:
        types = sorted(set(book.positions["type"]))
        raise ConfigError(f"portfolio file {book.source}: no position can be priced yet (types: {', '.join(types)})")
    curve = [f for f in factors if f not in batch.market.overrides]
    # each source completes its own curves first, so that a day's curve comes whole from one source;
    # then the merged history fills what is still missing from the tenors of other sources
    loaded = [load_source(s) for s in batch.history_sources(history_path)]
    check_near_misses(loaded, factors, {p.factor for p in (batch.proxies or {}).values()} | set(batch.proxies or {}))
    history = merge_histories([complete_curves(h, curve) for h in loaded])
    history = complete_curves(history, curve)
    source = batch.source
    from ._stream import wants_stream

    counted = estimate_resources(batch, history, len(book.positions), factors, streamed=False)
    streamed = wants_stream(batch, counted.total, len(book.positions), len(factors), source)
    estimate = estimate_resources(batch, history, len(book.positions), factors, streamed=streamed) if streamed else counted
    if not streamed:  # outputs.scenario_pnl: true over the driver's limit is refused before any work
        keeps_positions(batch, counted.total, len(book.positions))
    check_resources(estimate, source, None if out is None else Path(out), force)
    if batch.proxies:
        for f in batch.proxies:
            if f not in factors:
                raise ConfigError(f"{source}, field 'proxies.{f}': not a factor the book needs "
                                  f"(the book needs {', '.join(factors[:6])}{' ...' if len(factors) > 6 else ''})")
            own = f in history.snapshot.columns and history.snapshot[f].notna().any()
            if not own and f not in batch.market.overrides:
                raise ConfigError(f"{source}, field 'proxies.{f}': {f} has no history of its own, so its level "
                                  "must be given under market.overrides (the proxy gives its moves only)")
        history = apply_proxies(history, {f: ProxySpec(p.factor, p.beta, p.residual_sd) for f, p in batch.proxies.items()},
                                f"{source}, proxies")
    flat = resolve_flat(batch.market.flat, factors, source)
    if batch.default_proxies:
        auto, auto_flat = default_proxies([f for f in factors if f not in flat], history,
                                          _as_of_levels(history, factors, batch.market.as_of, batch.market.overrides))
        history = apply_proxies(history, auto, f"{source}, default_proxies")
        flat = {**flat, **auto_flat}
    check_coverage(history, factors, flat, source)
    try:
        market = snapshot_from_history(
            history, factors, batch.market.as_of, batch.market.max_stale_days, batch.market.overrides
        )
    except DataError as exc:  # name the batch field each problem comes from
        raise DataError("\n".join(f"{source}, field 'market.as_of': {line}" for line in str(exc).splitlines())) from None
    book.check_dates(market.as_of)
    prepared = kernels.prepare(book.positions, market.factors, base, market.as_of, levels=market.levels)
    _check_sections(batch, book, market, prepared, history, source)
    timings["load_inputs"] = time.perf_counter() - t0
    if on_loaded is not None:
        on_loaded()
    # the sensitivities compile their derivative programs on a thread of their own (XLA compiles
    # without the interpreter lock) while the scenarios are generated here
    from concurrent.futures import ThreadPoolExecutor

    second_order = batch.outputs.sensitivity  # the first derivatives alone give the coverage shares

    def timed_sensitivities():
        t = time.perf_counter()
        return kernels.sensitivities(prepared, market.levels, second_order), time.perf_counter() - t

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stressgrid-sensitivities")
    sens_future = pool.submit(timed_sensitivities)
    pool.shutdown(wait=False)  # the thread ends with its one job

    def sensitivities_and_shares():
        """The sensitivities, and the share of gross exposure on proxied and flat factors checked
        against its limit: before any task runs."""
        sens, timings["sensitivities"] = sens_future.result()
        staged = RunInputs(batch, batch_hash, history, book, market, None, prepared, sens=sens, flat=flat)
        shares = exposure_shares(staged)
        check_unmodelled_share(replace(staged, exposure_share=shares), shares, batch.market.max_unmodelled_share)
        return (sens if second_order else None), shares

    t0 = time.perf_counter()
    # one child seed per batch-file entry; every point of a sweep shares its entry's seed, so the points
    # differ by their parameters only (common random numbers)
    origins = batch.origins
    children = np.random.SeedSequence(batch.seed).spawn(max(origins) + 1)
    # a factor held flat on purpose takes no move from any history
    moving = history if not flat else replace(
        history, levels=history.levels.drop(columns=[f for f in flat if f in history.levels.columns]),
        snapshot_levels=None if history.snapshot_levels is None else
        history.snapshot_levels.drop(columns=[f for f in flat if f in history.snapshot_levels.columns]))
    # the book as each family values it (today's, or aged to its horizon): reverse stress tests search on it
    books, family_books = _horizon_books(prepared, book, market, base, [(sp.name, sp) for sp in batch.scenarios])

    shock_rows: list[pd.DataFrame] = []
    view_rows: list[pd.DataFrame] = []

    def generate(spec, seed):
        family_book = books[family_books.get(spec.name, 0)]
        s = _generate(spec, moving, market, seed, family_book, batch)
        if spec.kind == "reverse" and len(s):
            levels = dict(zip(market.factors, market.levels))
            shock_rows.append(scenarios.reverse_shocks(spec, s.reorder(market.factors), moving, levels, market.as_of))
        if getattr(spec, "views", None) and len(s):
            s, table = _with_views(spec, s, family_book, market, batch)
            view_rows.append(table)
        return s

    def design() -> dict:
        out = {"reverse_shocks": pd.concat(shock_rows, ignore_index=True)} if shock_rows else {}
        if view_rows:
            out["views"] = pd.concat(view_rows, ignore_index=True)
        return out

    if streamed:
        sources = _family_sources(batch, moving, market, children, origins, generate)
        timings["generate_scenarios"] = time.perf_counter() - t0
        sens, shares = sensitivities_and_shares()
        return RunInputs(batch, batch_hash, history, book, market, None, prepared, timings, sens, {}, flat, shares,
                         estimate, sources, books=books, family_books=family_books, design_tables=design(), started=started)
    sets = [generate(spec, children[o]) for spec, o in zip(batch.scenarios, origins)]
    try:
        scen = concat_scenarios(sets).reorder(market.factors)
    except ValueError as exc:
        raise ConfigError(f"{batch.source}, scenarios: {exc}") from None
    fam = np.asarray(scen.family)
    family_paths = {}
    for s in sets:
        if s.paths is not None and len(s):
            r = s.reorder(market.factors)
            family_paths[s.family[0]] = (np.flatnonzero(fam == s.family[0]), r.paths)
    timings["generate_scenarios"] = time.perf_counter() - t0
    sens, shares = sensitivities_and_shares()
    return RunInputs(batch, batch_hash, history, book, market, scen, prepared, timings, sens, family_paths, flat, shares,
                     estimate, books=books, family_books=family_books, design_tables=design(), started=started)


def _check_sections(batch: Batch, book: Book, market: MarketSnapshot, prepared, history: History, source: str) -> None:
    """What the sections ask of the book, the market and the history, before any scenario is drawn: every
    section's first problem at once, one a line (each check stops at its own first)."""
    base = batch.base_currency
    names = [s.name for s in batch.scenarios]
    checks = []
    if batch.monitoring is not None:  # the walk-forward has dates to step through; an overlay's hedge is priceable
        from stressgrid.monitoring import check_rules, check_walk_forward

        def walk_forward():
            try:
                check_walk_forward(batch.monitoring, history, market.as_of)
            except ConfigError as exc:  # named as the batch writes it
                raise ConfigError(str(exc).replace("walk_forward: ", f"{source}, field 'monitoring.walk_forward': ", 1)) from None

        checks.append(walk_forward)
        if batch.monitoring.rules:
            checks.append(lambda: check_rules(batch.monitoring.rules, market, base, book.positions, names))
    if batch.optimise or batch.factor_model is not None:  # names in the optimise and factor_model sections
        from ._optimise import check_sections

        checks.append(lambda: check_sections(batch, book.positions, prepared.priced, history, source))
    if batch.liquidity is not None:  # its parameters, rule and capacity names
        from ._liquidity import check_liquidity

        checks.append(lambda: check_liquidity(batch.liquidity, names, source))
    problems = []
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def explain_rows(inputs: RunInputs, families: list[str], family_codes: np.ndarray) -> tuple:
    """``(time [S], revaluation [S])`` of the scenarios of ``family_codes``: the time component of each
    scenario's book (the sum of its ``offset``) and ``horizon`` or ``instantaneous``; ``(None, None)``
    when no family is valued at a horizon."""
    if len(inputs.books) <= 1:
        return None, None
    codes = inputs.book_codes(families)[np.asarray(family_codes, dtype=np.int64)]
    per_book = np.array([0.0 if b.offset is None else float(b.offset.sum()) for b in inputs.books])
    return per_book[codes], np.where(codes > 0, "horizon", "instantaneous").astype(object)


def horizon_days(spec) -> int:
    """Business days a family's book is valued after the as-of date: its ``horizon_days`` when its
    ``revaluation`` is ``horizon`` (the default of the kinds that have a horizon), else 0."""
    return int(spec.horizon_days) if getattr(spec, "revaluation", None) == "horizon" else 0


def _horizon_books(prepared, book: Book, market: MarketSnapshot, base: str, families) -> tuple[tuple, dict]:
    """``(books, family_books)`` of :class:`RunInputs` from ``families``, ``[(name, spec), ...]``: one book
    valued at each distinct horizon (:func:`kernels.age`)."""
    books, at_days, family_books = [prepared], {0: 0}, {}
    for name, spec in families:
        days = horizon_days(spec) if spec is not None else 0
        if days not in at_days:
            at_days[days] = len(books)
            books.append(kernels.age(prepared, book.positions, base, market.as_of, days, market.levels))
        family_books[name] = at_days[days]
    return tuple(books), family_books


def specs_by_name(batch: Batch, names: list[str]) -> list:
    """The batch-file entry of each family of ``names`` (None for a family no entry is named after)."""
    by_name = {sp.name: sp for sp in batch.scenarios}
    return [by_name.get(n) for n in names]


def _generate(spec, history: History, market: MarketSnapshot, seed, book: kernels.PreparedBook, batch: Batch) -> ScenarioSet:
    """A family's scenarios; a reverse stress test searches on ``book`` (the book as the family values it)."""
    if spec.kind == "reverse":
        return scenarios.generate(spec, history, market.factors, seed=seed, market=market,
                                  revaluer=kernels.total_pnl(book, market.levels), nav=batch.nav,
                                  limits=limit_losses(batch))
    return scenarios.generate(spec, history, market.factors, seed=seed, market=market)


def _with_views(spec, scen: ScenarioSet, book: kernels.PreparedBook, market: MarketSnapshot,
                batch: Batch) -> tuple[ScenarioSet, pd.DataFrame]:
    """``scen`` with the probabilities that meet the family's ``views`` (entropy pooling,
    :func:`scenarios.apply_views`), and the rows of the ``views`` table.  Views on the P&L read the full
    revaluation of ``book``, the book as the family values it."""
    r = scen.reorder(market.factors)
    pnl = None
    if any(v.of == scenarios.PNL for v in spec.views):
        pnl = kernels.revalue(book, market.levels, r.shocks, market.is_log).sum(axis=1)
    q, report = scenarios.apply_views(spec.views, r.shocks, r.factors, r.weights, pnl,
                                      where=f"scenario family {spec.name!r}", nav=batch.nav)
    table = report.reset_index(drop=True).assign(
        family=spec.name, scenarios=len(q), effective_scenarios=float(report.attrs["effective_scenarios"]),
        effective_scenarios_prior=float(report.attrs["effective_scenarios_prior"]),
        relative_entropy=float(report.attrs["relative_entropy"]))
    cols = ["family", "view", "statistic", "op", "target", "prior", "posterior", "holds", "stage", "scenarios",
            "effective_scenarios", "effective_scenarios_prior", "relative_entropy"]
    return replace(scen, weights=np.asarray(q, dtype=float)), table[cols]


def limit_losses(batch: Batch) -> dict[str, float]:
    """Name -> loss (base currency) of the batch's book-level loss limits (``stressed_loss``, ``worst_loss``,
    ``var`` and ``cvar`` with scope ``book``; a limit in units of NAV times the limits' or the batch's NAV),
    for a reverse stress test's ``loss: "limit:NAME"``."""
    if batch.limits is None:
        return {}
    from stressgrid.reports import parse_limits

    lims = parse_limits(batch.limits, f"{batch.source}, limits")
    nav = lims.nav or batch.nav
    out = {}
    for lim in lims.limits:
        if lim.metric in ("stressed_loss", "worst_loss", "var", "cvar") and lim.scope == "book":
            if lim.units == "currency":
                out[lim.name] = float(lim.max)
            elif nav is not None:
                out[lim.name] = float(lim.max) * float(nav)
    return out


def _family_sources(batch: Batch, history: History, market: MarketSnapshot, children, origins, generate) -> list:
    """The families of a streamed run: random kinds fitted here and drawn by the tasks, the others
    generated here by ``generate(spec, seed)`` (they are small)."""
    from ._stream import FamilySource

    out = []
    for spec, o in zip(batch.scenarios, origins):
        if spec.kind in ("montecarlo", "bootstrap"):
            fitted = scenarios.fit(spec, history, market.factors, market=market)
            out.append(FamilySource(spec.name, int(spec.n_scenarios), spec, fitted, children[o],
                                    scenarios.family_info(spec, fitted, history.source)))
        else:
            s = generate(spec, children[o]).reorder(market.factors)
            s = replace(s, paths=None)  # the tasks revalue the shocks; the paths serve only sections that gather
            if len(s):
                out.append(FamilySource(s.family[0], len(s), scenarios=s))
    names = [s.name for s in out]
    dup = pd.Index(names)[pd.Index(names).duplicated()]
    if len(dup):
        raise ConfigError(f"{batch.source}, scenarios: duplicate family name {dup[0]!r}")
    if not out:
        raise ConfigError(f"{batch.source}, scenarios: no scenarios")
    return out


def _as_of_levels(history, factors, as_of, overrides) -> dict[str, float]:
    """Each factor's level at the as-of date (the history's last date when None): the override, else the
    last snapshot level on or before it."""
    snap = history.snapshot
    at = pd.Timestamp(as_of) if as_of is not None else snap.index[-1]
    out = {}
    for f in factors:
        if f in overrides:
            out[f] = float(overrides[f])
        elif f in snap.columns:
            s = snap[f].loc[:at].dropna()
            if len(s):
                out[f] = float(s.iloc[-1])
    return out


#: ``outputs.scenario_pnl: auto`` writes the scenario x position table up to this many rows
AUTO_POSITION_CELLS = 5_000_000
#: the most scenario x position cells the driver gathers (for the table, liquidity or optimise)
MAX_POSITION_CELLS = 20_000_000


def keeps_positions(batch: Batch, n_scenarios: int, n_positions: int) -> tuple[bool, bool]:
    """``(gather, table)``: whether tasks return their position-level P&L to the driver, and whether the
    ``scenario_pnl`` table is written.  The P&L is gathered for the table and for the ``liquidity`` and
    ``optimise`` sections, up to :data:`MAX_POSITION_CELLS`; otherwise tasks return summaries only.

    Raises :class:`core.ConfigError` for ``outputs.scenario_pnl: true`` over that limit.
    """
    cells = n_scenarios * n_positions
    want = batch.outputs.scenario_pnl
    if want is True and cells > MAX_POSITION_CELLS:
        raise ConfigError(f"{batch.source}, field 'outputs.scenario_pnl': true asks for {n_scenarios:,} scenarios x "
                          f"{n_positions:,} positions = {cells:,} rows, over the limit of {MAX_POSITION_CELLS:,}; "
                          "use auto or false, fewer scenarios, or execution.stream: true (a streamed run's tasks write it in "
                          "parts, at any size)")
    table = want is True or (want == "auto" and cells <= AUTO_POSITION_CELLS)
    sections = batch.liquidity is not None or batch.optimise is not None or batch.factor_model is not None
    return table or (sections and cells <= MAX_POSITION_CELLS), table


def position_table_note(batch: Batch, n_scenarios: int, n_positions: int, streamed: bool) -> str | None:
    """Why the scenario x position table (``scenario_pnl``) is not written when ``outputs.scenario_pnl`` is
    ``auto`` and the batch is over its size; None when it is written, or ``false`` asked for none."""
    rows = n_scenarios * n_positions
    if batch.outputs.scenario_pnl != "auto" or rows <= AUTO_POSITION_CELLS:
        return None
    how = "at any size in this streamed run" if streamed else (f"up to {MAX_POSITION_CELLS:,} rows, or at any size "
                                                                "with execution.stream: true")
    return (f"the scenario x position table (scenario_pnl) is not written: {n_scenarios:,} scenarios x {n_positions:,} "
            f"positions = {rows:,} rows, and outputs.scenario_pnl: auto writes it up to {AUTO_POSITION_CELLS:,} rows "
            f"(true writes it {how}); the other tables hold every scenario")


def windows_after(batch: Batch, as_of) -> dict[str, str]:
    """Family -> the last date of the history window its model, its amplification or its moves are taken
    from, for the drawn and rolling families whose window ends after the as-of date: what a forecast made on
    that date could not have known.  A crisis replay's events are left out: replaying them is their point."""
    out = {}
    for sp in batch.scenarios:
        amplify = getattr(sp, "amplify", None)
        windows = [getattr(sp, "window", None), getattr(amplify, "window", None) if amplify is not None else None]
        ends = [w.end for w in windows if w is not None and w.end is not None]
        if sp.kind == "rolling" and getattr(sp, "end", None) is not None:
            ends.append(sp.end)
        late = [e for e in ends if pd.Timestamp(e) > pd.Timestamp(as_of)]
        if late:
            out[sp.name] = str(max(late))
    return out


def _fingerprint(inputs: RunInputs, chunk: int) -> dict:
    h = inputs.history.levels
    return {
        "batch_sha256": inputs.batch_hash,
        "history": [inputs.history.source, h.shape, str(h.index[-1].date()), float(np.nansum(h.to_numpy()))],
        "book": inputs.book.positions.to_json(),
        "as_of": str(inputs.market.as_of.date()),
        "scenarios": ([len(inputs.scenarios), float(inputs.scenarios.shocks.sum())] if not inputs.streamed else
                      [[s.name, s.n, None if s.drawn else float(s.scenarios.shocks.sum())] for s in inputs.sources]),
        "streamed": inputs.streamed,
        "chunk_size": chunk,
        "code": _versions().get("stressgrid", "dev"),
    }


@dataclass
class RunPlan:
    """What :func:`execute` runs: the tasks over the scenarios and the payload every task reads."""

    tasks: list[Task]
    payload: Payload
    families: list[str]
    family_codes: np.ndarray
    group_names: dict[str, list[str]]
    position_table: bool  # the scenario_pnl table is written
    chunk: int
    block: int


def chunk_size(inputs: RunInputs) -> int:
    """Scenarios per task: the batch's ``execution.chunk_size``, else chosen from the batch's size (never
    from the worker count)."""
    prepared, S = inputs.prepared, inputs.n_scenarios
    chunk = inputs.batch.execution.chunk_size or auto_chunk_size(prepared.n, len(inputs.market.factors), S)
    return min(chunk, S)


def _groups(pos: pd.DataFrame) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """level -> group labels, and level -> int ``[N]`` group code of each position, for the asset class,
    sleeve and instrument type."""
    group_names, group_codes = {}, {}
    for level in ("asset_class", "sleeve", "type"):
        labels = list(dict.fromkeys(pos[level]))
        group_names[level] = labels
        group_codes[level] = np.array([labels.index(v) for v in pos[level]], dtype=np.int64)
    return group_names, group_codes


def plan_run(inputs: RunInputs) -> RunPlan:
    """Chunk tasks, the group codes of the positions, and the payload: the first step of :func:`execute`."""
    batch, scen, prepared = inputs.batch, inputs.scenarios, inputs.prepared
    chunk = chunk_size(inputs)
    block = min(auto_block_size(prepared.n, len(scen.factors)), chunk)
    tasks = plan_tasks(len(scen), chunk, batch.seed)
    families = list(dict.fromkeys(scen.family))
    family_codes = np.array([families.index(f) for f in scen.family], dtype=np.int64)
    group_names, group_codes = _groups(inputs.book.positions)
    conf = batch.risk.confidence
    gather, position_table = keeps_positions(batch, len(scen), prepared.n)
    payload = Payload(
        prepared, inputs.market.levels, inputs.market.is_log, scen.shocks, chunk, block, family_codes, scen.weights,
        group_codes, 1.0 - min(conf), gather,
        None if inputs.sens is None else group_sensitivities(inputs.sens, {"type": group_codes["type"]}),
        inputs.books, inputs.book_codes(families) if len(inputs.books) > 1 else None,
    )
    return RunPlan(tasks, payload, families, family_codes, group_names, position_table, chunk, block)


def _check_float64(results) -> None:
    if not all(r.float64 for r in results):
        raise RuntimeError("a worker computed in float32; JAX float64 was not enabled in that process")


def run_plan(inputs: RunInputs, plan: RunPlan, executor: Executor, progress: Callable[[ChunkResult], None] | None,
             run_dir: str | Path | None, resume: bool) -> tuple[list[ChunkResult], int, int, list[str]]:
    """Run the plan's tasks (only those without a checkpoint when resuming), checkpointing each as it
    completes; returns every result in scenario order, the count of resumed tasks and of tasks run in the
    driver, and the checkpoints that did not verify on resume (``"FILE: reason"``; their tasks ran again).
    A failing task raises :class:`core.TaskError` naming it, its scenarios and the reason."""
    scen = inputs.scenarios
    store = TaskStore(run_dir, _fingerprint(inputs, plan.chunk), resume) if run_dir is not None else None
    rejected: list[str] = []
    done = store.load(rejected) if (store and resume) else {}  # a checkpoint that does not verify runs again
    todo = [t for t in plan.tasks if t.task_id not in done]

    def on_result(r: ChunkResult) -> None:
        if store:
            store.save(r)
        if progress:
            progress(r)

    if progress:
        for r in done.values():
            progress(r)
    inline_before = executor.ran_in_driver
    try:
        fresh = executor.map(plan.payload, todo, on_result) if todo else []
    except TaskFailure as exc:
        t = exc.task
        kept = f"; {len(store.load())} finished task(s) are kept: rerun with --resume after fixing it" if store else ""
        raise TaskError(
            f"task {t.task_id} (scenarios {t.start}..{t.stop - 1}: {scen.names[t.start]} .. {scen.names[t.stop - 1]}) "
            f"failed: {exc.reason}{kept}"
        ) from None
    in_driver = (executor.ran_in_driver - inline_before) * len(todo)
    results = sorted(list(done.values()) + fresh, key=lambda r: r.start)
    _check_float64(results)
    return results, len(done), in_driver, rejected


def reduce_run(inputs: RunInputs, plan: RunPlan, results: list[ChunkResult], executor: Executor,
               timings: dict[str, float]) -> tuple[dict[str, pd.DataFrame], np.ndarray | None]:
    """The tables of every run from the tasks' summaries (with the second pass over the tail when the
    position-level P&L was not gathered); returns them and the gathered ``[S, N]`` P&L, if any."""
    batch, scen, prepared, pos = inputs.batch, inputs.scenarios, inputs.prepared, inputs.book.positions
    conf = batch.risk.confidence
    pnl = np.concatenate([r.pnl for r in results]) if plan.payload.keep_positions else None
    t0 = time.perf_counter()
    contributions = None
    if pnl is None:  # the second pass: Euler contributions summed over the global tail by tasks
        contributions = _tail_contributions(results, plan.families, conf, plan.payload, executor)
        timings["tail_tasks"] = time.perf_counter() - t0
        t0 = time.perf_counter()
    time_pnl, how = explain_rows(inputs, plan.families, plan.family_codes)
    tables = reduce_results(results, scen.names, plan.families, plan.family_codes, scen.weights, pos, plan.group_names,
                            conf, position_table=plan.position_table, contributions=contributions, pnl=pnl, time=time_pnl,
                            revaluation=how, min_tail=batch.risk.min_tail_scenarios)
    from ._reduce import scenario_table, sql_names

    tables["scenarios"] = scenario_table(tables["scenarios"], scen.info)
    tables["positions"] = _position_table(inputs)
    tables["liquidity"] = sql_names(scen.liquidity_table())
    if all(r.sens_groups is not None for r in results):
        tables["sensitivity"] = _sensitivity_table(results, scen, plan.group_names["type"])
        partials = _sensitivity_partials(results, plan, 1.0 - min(conf))
        tables["risk_metrics"] = pd.concat([tables["risk_metrics"], _sensitivity_metrics(partials, plan.families, conf)],
                                           ignore_index=True)
    tables["jump_to_default"] = pd.DataFrame({"position_id": pos["id"], "type": pos["type"],
                                              "pnl": kernels.jump_to_default(prepared, inputs.market.levels)})
    if batch.sweep_points:
        tables["sweeps"] = _sweep_table(batch)
    from ._coverage import coverage_tables

    tables.update(coverage_tables(inputs))
    timings["reduce"] = time.perf_counter() - t0
    return tables, pnl


def execute(
    inputs: RunInputs,
    executor: Executor,
    progress: Callable[[ChunkResult], None] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    parts: str | None = None,
) -> RunResult:
    """Plan the scenarios into chunk tasks, run them, reduce their summaries into tables, and add the
    tables of the batch's optional sections (liquidity, optimise, monitoring).

    With ``run_dir``, every finished task is checkpointed there as it completes; ``resume=True`` loads
    the checkpoints of an interrupted run of the same plan and runs only the missing tasks.  A task that
    fails raises :class:`core.TaskError` naming it, its scenarios and the reason; finished tasks stay
    checkpointed.  ``parts`` is where the tasks of a streamed run write their part files and where the
    checkpoints go (a URI, :mod:`core.storage`); default ``run_dir``.
    """
    from ._sections import SECTIONS, SectionContext

    if run_dir is not None:
        retire_manifest(run_dir)
    if inputs.streamed:
        result = _execute_streamed(inputs, executor, progress, run_dir, resume, parts)
        result.tables.update(inputs.design_tables)
        return result
    started = inputs.started or datetime.now(timezone.utc)
    timings = dict(inputs.timings)
    plan = plan_run(inputs)
    t0 = time.perf_counter()
    results, resumed, in_driver, rejected = run_plan(inputs, plan, executor, progress,
                                                     parts if parts is not None and run_dir is not None else run_dir,
                                                     resume)
    timings["run_tasks"] = time.perf_counter() - t0
    timings["kernel_seconds_total"] = float(sum(r.seconds for r in results))
    # the first call in each worker process compiles the kernels for the block shape
    timings["compile_seconds_max"] = float(max(r.compile_seconds for r in results))
    shared: dict = {}
    for section in SECTIONS:
        if section.enabled(inputs.batch):
            section.start(inputs, executor, shared)
    tables, pnl = reduce_run(inputs, plan, results, executor, timings)
    tables.update(inputs.design_tables)
    notes: dict = {}
    ctx = SectionContext(inputs, pnl, executor, inputs.batch.source, shared)
    for section in SECTIONS:
        if section.enabled(inputs.batch):
            out = section.run(ctx)
            tables.update(out.tables)
            timings.update(out.timings)
            if out.notes is not None:
                notes[section.name] = out.notes
    return RunResult(inputs, pnl, plan.tasks, results, tables, timings, started, datetime.now(timezone.utc),
                     executor.concurrency or executor.workers or 0, resumed, float(executor.num_gpus or 0.0),
                     notes, in_driver, plan.block, rejected)


def _execute_streamed(inputs: RunInputs, executor: Executor, progress, run_dir, resume: bool,
                      parts: str | None = None) -> RunResult:
    """A streamed run (:mod:`._stream`): tasks draw, revalue and write their rows; the driver merges their
    summaries in task order and writes the tables that do not grow with the scenarios."""
    from ._reduce import contributions_by_task, risk_tables
    from ._stream import (STREAM_TABLES, RowsTask, StreamMerger, StreamPayload, StreamResult, clear_tables,
                          run_stream_chunk, run_stream_rows)
    batch, prepared, pos, market = inputs.batch, inputs.prepared, inputs.book.positions, inputs.market
    if run_dir is None:
        raise ConfigError(f"{batch.source}: a streamed run (execution.stream) has its tasks write the "
                          "per-scenario tables: give it a run directory")
    started = inputs.started or datetime.now(timezone.utc)
    timings = dict(inputs.timings)
    out = Path(run_dir)
    where = location(parts if parts is not None else out)
    sources = inputs.sources
    S, N = inputs.n_scenarios, prepared.n
    chunk = chunk_size(inputs)
    block = min(auto_block_size(N, len(market.factors)), chunk)
    tasks = plan_tasks(S, chunk, batch.seed)
    families = [src.name for src in sources]
    group_names, group_codes = _groups(pos)
    conf = batch.risk.confidence
    keep_mass = 1.0 - min(conf)
    want = batch.outputs.scenario_pnl
    offsets = np.concatenate([[0], np.cumsum([src.n for src in sources])]).astype(np.int64)
    payload = StreamPayload(
        prepared, market.levels, market.is_log, block, group_codes, group_names, tuple(pos["id"]), keep_mass,
        None if inputs.sens is None else group_sensitivities(inputs.sens, {"type": group_codes["type"]}),
        tuple(sources), offsets, tuple(dict.fromkeys(c for src in sources for c in src.info_columns())), str(where),
        want is True or (want == "auto" and S * N <= AUTO_POSITION_CELLS), inputs.books,
        inputs.book_codes([src.name for src in sources]) if len(inputs.books) > 1 else None)
    store = TaskStore(where, _fingerprint(inputs, chunk), resume)
    if not resume:
        clear_tables(out)
        clear_tables(where)
    else:
        clear_tables(out, [n for n in STREAM_TABLES if (out / f"{n}.parquet").exists()])
    rejected: list[str] = []
    done = store.load(rejected) if resume else {}
    present = {f"{t}/{n}" for t in STREAM_TABLES for n in where.files(t)} if done else set()  # one listing per table
    for tid, r in sorted(done.items()):
        lost = [rel for rel in getattr(r, "parts", ()) if rel not in present]
        if not isinstance(r, StreamResult) or lost:
            why = f"its table part {lost[0]} is missing" if lost else "not a checkpoint of a streamed run"
            rejected.append(f"{store._path(tid)}: {why}")
            del done[tid]
    merger = StreamMerger(len(tasks), keep_mass)
    written: list[str] = []  # every part file the tasks say they wrote

    def on_result(r) -> None:
        store.save(r)
        merger.add(r)
        written.extend(r.parts)
        if progress:
            progress(r)

    for r in sorted(done.values(), key=lambda r: r.task_id):
        merger.add(r)
        written.extend(r.parts)
        if progress:
            progress(r)
    todo = [t for t in tasks if t.task_id not in done]
    t0 = time.perf_counter()
    inline_before = executor.ran_in_driver
    try:
        if todo:
            executor.map(payload, todo, on_result, fn=run_stream_chunk, keep=False)
    except TaskFailure as exc:
        t = exc.task
        first = _scenario_name(sources, offsets, t.start)
        last = _scenario_name(sources, offsets, t.stop - 1)
        raise TaskError(f"task {t.task_id} (scenarios {t.start}..{t.stop - 1}: {first} .. {last}) failed: {exc.reason}; "
                        f"{len(store.load())} finished task(s) are kept: rerun with --resume after fixing it") from None
    if not merger.complete:
        raise TaskError(f"{batch.source}: {len(tasks) - merger._next} task(s) returned no result")
    if not merger.float64:
        raise RuntimeError("a worker computed in float32; JAX float64 was not enabled in that process")
    _check_parts(where, written)
    timings["run_tasks"] = time.perf_counter() - t0
    timings["kernel_seconds_total"] = merger.seconds["kernel"]
    timings["compile_seconds_max"] = merger.seconds["compile_max"]
    timings["draw_seconds_total"] = merger.seconds["draw"]
    timings["write_seconds_total"] = merger.seconds["write"]

    t0 = time.perf_counter()
    plan = tail_plan(merger.families, conf)
    # the position rows of every tail scenario: kept by the tasks, or revalued again where one was not
    wanted = np.unique(np.concatenate([idx[t > 0] for _, _, idx, t in plan.values()]))
    missing = np.setdiff1d(wanted, merger.has_rows())
    starts = np.array([t.start for t in tasks], dtype=np.int64)
    timings["rows_again"] = 0.0
    if len(missing):
        owner = np.searchsorted(starts, missing, side="right") - 1
        again = [RowsTask(tasks[k], missing[owner == k]) for k in np.unique(owner)]
        try:
            extra = executor.map(payload, again, fn=run_stream_rows)
        except TaskFailure as exc:
            raise TaskError(f"task {exc.task.task_id}, revaluing tail scenarios again: {exc.reason}") from None
        for e in extra:
            start = int(tasks[e.task_id].start)
            fam_of = np.searchsorted(offsets, e.rows_index, side="right") - 1
            for code in np.unique(fam_of):
                on = fam_of == code
                merger.add_rows(int(code), start, e.rows_index[on], e.rows[on])
        timings["rows_again"] = time.perf_counter() - t0
    bounds = np.append(starts, S)

    def rows(code: int, idx: np.ndarray) -> np.ndarray:
        return merger.rows_of(code, int(starts[np.searchsorted(starts, idx[0], side="right") - 1]), idx)

    contributions = contributions_by_task(plan, bounds, rows, N)
    counts = {code: src.n for code, src in enumerate(sources)}
    tables = risk_tables(merger.families, plan, contributions, families, counts,
                         lambda i: _scenario_name(sources, offsets, i), pos, conf, batch.risk.min_tail_scenarios)
    if merger.sens:
        tables["risk_metrics"] = pd.concat([tables["risk_metrics"], _sensitivity_metrics(merger.sens, families, conf)],
                                           ignore_index=True)
    tables["positions"] = _position_table(inputs)
    tables["jump_to_default"] = pd.DataFrame({"position_id": pos["id"], "type": pos["type"],
                                              "pnl": kernels.jump_to_default(prepared, market.levels)})
    if batch.sweep_points:
        tables["sweeps"] = _sweep_table(batch)
    from ._coverage import coverage_tables

    tables.update(coverage_tables(inputs, {families[c]: (sources[c].n, merger.counts[c], merger.guards.get(c))
                                           for c in range(len(sources))}))
    timings["reduce"] = time.perf_counter() - t0
    in_driver = (executor.ran_in_driver - inline_before) * len(todo)
    written = {rel.split("/")[0] for rel in merger.parts}
    return RunResult(inputs, None, tasks, [], tables, timings, started, datetime.now(timezone.utc),
                     executor.concurrency or executor.workers or 0, len(done), float(executor.num_gpus or 0.0),
                     {}, in_driver, block, rejected, [n for n in STREAM_TABLES if n in written])


def _scenario_name(sources, offsets: np.ndarray, i: int) -> str:
    code = int(np.searchsorted(offsets, i, side="right") - 1)
    return sources[code].name_of(int(i - offsets[code]))


def _tail_contributions(results: list[ChunkResult], families: list[str], conf: list[float], payload: Payload,
                        executor: Executor) -> dict[tuple[int, float], np.ndarray]:
    """Euler contributions without the position P&L on the driver.

    The merged summaries give every family's global tail (scenarios and their tail mass ``t``) exactly;
    the union of those tails is revalued again by tasks, each returning ``sum coef * pnl`` over its
    scenarios (``coef = -t / (1 - alpha)`` per family and confidence), which adds up across tasks.  The
    tail is split into tasks by a plan that depends only on the tail and the book
    (:func:`tail_chunk_size`, not the worker count), and the partial sums are added in task order, so
    the numbers do not depend on the executor.
    """
    plan = tail_plan(merge_families(results, len(families), 1.0 - min(conf)), conf)
    keys = list(plan)
    union = np.unique(np.concatenate([plan[k][2][plan[k][3] > 0] for k in keys]))
    coef = np.zeros((len(union), len(keys)))
    for j, k in enumerate(keys):
        _, _, idx, t = plan[k]
        on = t > 0
        coef[np.searchsorted(union, idx[on]), j] = -t[on] / (1.0 - k[1])
    tail = TailPayload(payload.book, payload.base_levels, payload.is_log, payload.shocks[union], coef, payload.block_size,
                       payload.books, None if payload.family_books is None else payload.family_books[payload.family_codes[union]])
    chunk = tail_chunk_size(len(union), payload.book.n, payload.block_size)
    tasks = [Task(i, a, min(a + chunk, len(union)), ()) for i, a in enumerate(range(0, len(union), chunk))]
    try:
        parts = sorted(executor.map(tail, tasks, fn=run_tail_chunk), key=lambda r: r.task_id)
    except TaskFailure as exc:
        raise TaskError(f"Euler contributions over the tail scenarios, task {exc.task.task_id}: {exc.reason}") from None
    _check_float64(parts)
    total = np.zeros_like(parts[0].sums)
    for r in parts:
        total += r.sums
    return {k: total[j] for j, k in enumerate(keys)}


def _sensitivity_table(results: list[ChunkResult], scen: ScenarioSet, types: list[str]) -> pd.DataFrame:
    """Full revaluation next to the delta-gamma-vega approximation, per scenario and instrument type."""
    from ._reduce import sensitivity_rows

    families = list(dict.fromkeys(scen.family))
    fam_codes = pd.Categorical(list(scen.family), categories=families).codes
    return sensitivity_rows(scen.names, families, fam_codes, types, np.concatenate([r.groups["type"] for r in results]),
                            np.concatenate([r.sens_groups["type"] for r in results]))


def _sensitivity_metrics(partials: dict, families: list[str], conf: list[float]) -> pd.DataFrame:
    """VaR and CVaR of the sensitivity-based P&L (metrics ``var_sensitivity``, ``cvar_sensitivity``) from
    the merged summaries of its totals (family code -> :class:`FamilyPartial`)."""
    from ._summary import tail_scenarios

    rows = []
    for code, p in partials.items():
        for a in conf:
            var, cvar, _, _ = tail_scenarios(p, a)
            rows.append(dict(family=families[code], metric="var_sensitivity", confidence=a, value=var, scenario=None))
            rows.append(dict(family=families[code], metric="cvar_sensitivity", confidence=a, value=cvar, scenario=None))
    return pd.DataFrame(rows)


def _sensitivity_partials(results: list[ChunkResult], plan: "RunPlan", keep_mass: float) -> dict:
    """The delta-gamma-vega totals of every task summarised per family (as a streamed task does) and
    merged in scenario order."""
    from ._summary import merge_partials, summarise

    merged: dict = {}
    for r in sorted(results, key=lambda r: r.start):
        sl = slice(r.start, r.stop)
        for code, p in summarise(r.sens_groups["type"].sum(axis=1), r.start, plan.family_codes[sl],
                                 plan.payload.weights[sl], keep_mass).items():
            merged[code] = p if code not in merged else merge_partials([merged[code], p], keep_mass)
    return merged


def _sweep_table(batch: Batch) -> pd.DataFrame:
    """One row per sweep point and parameter: ``family``, ``base``, ``parameter``, ``value`` (text) and
    ``value_number`` (the value when it is a number, else NaN)."""
    rows = []
    for pt in batch.sweep_points:
        for k, v in pt.values.items():
            num = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
            rows.append(dict(family=pt.family, base=pt.base, parameter=k, value=str(v), value_number=num))
    return pd.DataFrame(rows, columns=["family", "base", "parameter", "value", "value_number"])


def _position_table(inputs: RunInputs) -> pd.DataFrame:
    pos = inputs.book.positions.copy()
    pos["priced"] = inputs.prepared.priced
    keep = ["id", "type", "underlying", "quantity", "multiplier", "currency", "asset_class", "sleeve", "adv", "bid_ask_bps", "priced"]
    return pos[keep].rename(columns={"id": "position_id"})  # the position key of every results table


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("stressgrid", "numpy", "pandas", "scipy", "jax", "jaxlib", "ray", "pyarrow", "pydantic", "cvxpy", "arch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _check_parts(where, written: list[str]) -> None:
    """Every part file the tasks wrote must be where the driver reads it: on a cluster whose run directory
    is a local path, a task on another node writes its parts on that node's disk, and the per-scenario
    tables would silently lack its rows.  Lists each table's folder once."""
    from ._stream import STREAM_TABLES

    present = {f"{t}/{n}" for t in STREAM_TABLES for n in where.files(t)}
    lost = [rel for rel in written if rel not in present]
    if lost:
        raise TaskError(
            f"{len(lost)} of the {len(written)} part files the tasks wrote are not in {where.uri()} (e.g. {lost[0]}): "
            "the tasks ran on other nodes and wrote them to their own disks.  On a cluster the run directory must be "
            "a shared file system mounted at the same path on every node, or object storage (--out s3://BUCKET/PREFIX)")


def retire_manifest(run_dir: str | Path) -> None:
    """Remove the manifest an earlier run left in ``run_dir`` before this run writes anything there: until
    this run's manifest is written, the folder is not a run that ``report`` or ``store`` would read (an
    interrupted run never passes for the finished one it was overwriting)."""
    Path(run_dir, "manifest.json").unlink(missing_ok=True)


def stale_files(out: Path, written: set[str]) -> list[Path]:
    """The files of an earlier run in ``out`` that this run does not write: its tables (as files) that are
    not in ``written``, its ``breaches.parquet`` (this run's limits are evaluated after it) and its
    ``report.html``.  Files of other names are the user's and are left alone."""
    from stressgrid.reports import table_names

    names = [f"{n}.parquet" for n in table_names() if n not in written] + ["breaches.parquet", "report.html"]
    return [out / n for n in dict.fromkeys(names) if (out / n).is_file()]


def write_outputs(result: RunResult, out_dir: str | Path) -> dict:
    """Write the Parquet tables and ``manifest.json`` into ``out_dir`` (each file atomically).

    Returns the manifest.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    from stressgrid.reports import write_table

    from ._stream import STREAM_TABLES, clear_tables

    # a table is a file or a folder of parts, never both: drop what an earlier run in ``out`` left, and
    # the tables this run does not write, which a reader would take for this run's
    clear_tables(out, [n for n in STREAM_TABLES if n not in result.streamed_tables])
    for path in stale_files(out, set(result.tables) | set(result.streamed_tables)):
        path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    for name, df in result.tables.items():
        write_table(name, df, out / f"{name}.parquet")  # atomic; the schema version in the file's metadata
    result.timings["write"] = time.perf_counter() - t0
    manifest = build_manifest(result)
    _atomic_write(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2, default=str)))
    return manifest


def settling_inside(inputs: RunInputs) -> dict[str, list[str]]:
    """Family -> ids of the positions whose expiry or maturity falls inside the family's horizon
    (:func:`kernels.settlement_days`), for the families valued at a horizon: their scenario P&L settles
    those positions on the horizon's levels, their daily paths on the positions' last day."""
    out: dict[str, list[str]] = {}
    ids = inputs.book.positions["id"].astype(str).to_numpy()
    by_days: dict[int, list[str]] = {}
    for fam, code in inputs.family_books.items():
        days = inputs.books[code].horizon_days if 0 < code < len(inputs.books) else 0
        if days > 0:
            if days not in by_days:
                by_days[days] = list(ids[kernels.settlement_days(inputs.book.positions, inputs.market.as_of, days) > 0])
            if by_days[days]:
                out[fam] = by_days[days]
    return out


def build_manifest(result: RunResult) -> dict:
    """The run's manifest (``manifest.json``): batch and its hash, versions, seeds, market dates, counts,
    caveats (uncovered and filled factors) and timings."""
    inputs = result.inputs
    uncovered: dict[str, dict[str, int]] = {}
    filled: dict[str, dict[str, int]] = {}
    cf = result.tables["coverage_families"]
    for f, g in cf.groupby("family", sort=False):
        if (g["no_data"] > 0).any():
            uncovered[f] = {r.factor: int(r.no_data) for r in g.itertuples() if r.no_data > 0}
        if (g["filled"] > 0).any():
            filled[f] = {r.factor: int(r.filled) for r in g.itertuples() if r.filled > 0}
    from stressgrid.reports import DESIGNED_KINDS, SCHEMA_VERSION

    notes = dict(result.notes)
    unwritten = position_table_note(inputs.batch, inputs.n_scenarios, int(inputs.prepared.n), inputs.streamed)
    if unwritten is not None:
        notes["outputs"] = {"scenario_pnl": unwritten}
    late = windows_after(inputs.batch, inputs.market.as_of)
    if late:
        notes["windows"] = {"after_as_of": late}
    settling = settling_inside(inputs)
    if settling:
        notes["horizon"] = {"settle_inside": settling}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "batch": {"name": inputs.batch.name, "sha256": inputs.batch_hash, "book": str(inputs.book.source)},
        "started": result.started.isoformat(),
        "finished": result.finished.isoformat(),
        "versions": _versions(),
        "seeds": {"root": inputs.batch.seed, "tasks": {t.task_id: list(t.seed) for t in result.tasks}},
        "as_of": str(inputs.market.as_of.date()),
        "market_observed": {f: str(d.date()) for f, d in inputs.market.observed.items()},
        "history": {"source": inputs.history.source, "first": str(inputs.history.levels.index[0].date()),
                    "last": str(inputs.history.levels.index[-1].date())},
        "base_currency": inputs.batch.base_currency,
        **({"nav": inputs.batch.nav} if inputs.batch.nav is not None else {}),
        **({"nav": result.notes["liquidity"]["nav"]} if "liquidity" in result.notes and inputs.batch.nav is None else {}),
        **({"notes": notes} if notes else {}),
        "counts": {"positions": int(inputs.prepared.n), "priced": int(inputs.prepared.priced.sum()),
                   "scenarios": inputs.n_scenarios, "factors": len(inputs.market.factors), "tasks": len(result.tasks),
                   "chunk_size": result.tasks[0].size if result.tasks else 0, "workers": result.workers,
                   "tasks_resumed": result.resumed_tasks, "gpus_per_task": result.gpus_per_task,
                   "tasks_in_driver": result.tasks_in_driver, "block_size": result.block_size},
        # lists of stresses, not distributions: the stressed VaR leaves them out (reports.stressed_var)
        "designed_families": [sp.name for sp in inputs.batch.scenarios if sp.kind in DESIGNED_KINDS],
        "unpriced_types": list(inputs.prepared.unpriced_types),
        "checkpoints_rejected": list(result.rejected_checkpoints),  # on --resume: did not verify, ran again
        "uncovered_factors": uncovered,  # family -> factor -> scenarios in which it had no data
        "filled_factors": filled,  # family -> factor -> scenarios in which it was calibrated or propagated, not replayed
        "timings_seconds": {k: round(v, 4) for k, v in result.timings.items()},
        "files": sorted([f"{n}.parquet" for n in result.tables] + [f"{n}/" for n in result.streamed_tables]),
    }
    return manifest
