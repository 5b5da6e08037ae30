"""Run a batch end to end: inputs, plan, execute, reduce, write."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

import kernels
import scenarios
from core import (
    Book,
    ConfigError,
    History,
    MarketSnapshot,
    ScenarioSet,
    concat_scenarios,
    load_book,
    load_history,
    snapshot_from_history,
)

from ._batch import Batch
from ._executor import Executor
from ._plan import Task, auto_chunk_size, plan_tasks
from ._reduce import breakdown, contributions, risk_metrics
from ._worker import ChunkResult, Payload

__all__ = ["RunInputs", "RunResult", "prepare_inputs", "execute", "write_outputs"]


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


@dataclass
class RunResult:
    inputs: RunInputs
    pnl: np.ndarray  # [S, N]
    tasks: list[Task]
    results: list[ChunkResult]
    tables: dict[str, pd.DataFrame]
    timings: dict[str, float]
    started: datetime
    finished: datetime
    workers: int


def prepare_inputs(batch: Batch, batch_hash: str, history_path: str | Path | None = None) -> RunInputs:
    """Load and validate everything a batch reads, and generate its scenarios.

    ``history_path`` (the ``--history`` option) wins over the batch file's ``history``.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if history_path is not None:
        history = load_history(history_path)
    elif batch.history is not None:
        h = batch.history
        history = load_history(h.path, mapping=h.columns, date_column=h.date_column)
    else:
        history = load_history()
    book = load_book(batch.book)
    base = batch.base_currency
    factors = kernels.required_factors(book.positions, base)
    if not factors:
        types = sorted(set(book.positions["type"]))
        raise ConfigError(f"portfolio file {book.source}: no position can be priced yet (types: {', '.join(types)})")
    market = snapshot_from_history(
        history, factors, batch.market.as_of, batch.market.max_stale_days, batch.market.overrides
    )
    book.check_dates(market.as_of)
    prepared = kernels.prepare(book.positions, market.factors, base, market.as_of)
    timings["load_inputs"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    children = np.random.SeedSequence(batch.seed).spawn(len(batch.scenarios))
    sets = [scenarios.generate(spec, history, market.factors, seed=child) for spec, child in zip(batch.scenarios, children)]
    try:
        scen = concat_scenarios(sets).reorder(market.factors)
    except ValueError as exc:
        raise ConfigError(f"batch {batch.name!r}, scenarios: {exc}") from None
    timings["generate_scenarios"] = time.perf_counter() - t0
    return RunInputs(batch, batch_hash, history, book, market, scen, prepared, timings)


def execute(inputs: RunInputs, executor: Executor, progress: Callable[[ChunkResult], None] | None = None) -> RunResult:
    """Plan the scenarios into chunk tasks, run them, and reduce the P&L into tables."""
    started = datetime.now(timezone.utc)
    timings = dict(inputs.timings)
    batch, scen, prepared = inputs.batch, inputs.scenarios, inputs.prepared
    chunk = batch.execution.chunk_size or auto_chunk_size(prepared.n, len(scen.factors))
    chunk = min(chunk, len(scen))
    tasks = plan_tasks(len(scen), chunk, batch.seed)
    payload = Payload(prepared, inputs.market.levels, inputs.market.is_log, scen.shocks, chunk)

    t0 = time.perf_counter()
    results = executor.map(payload, tasks, progress)
    timings["run_tasks"] = time.perf_counter() - t0
    timings["kernel_seconds_total"] = float(sum(r.seconds for r in results))
    # the first call in each worker process compiles the kernels for the chunk shape
    timings["compile_seconds_max"] = float(max(r.compile_seconds for r in results))
    if not all(r.float64 for r in results):
        raise RuntimeError("a worker computed in float32; JAX float64 was not enabled in that process")

    t0 = time.perf_counter()
    pnl = np.concatenate([r.pnl for r in sorted(results, key=lambda r: r.start)])
    pos = inputs.book.positions
    conf = batch.risk.confidence
    tables = {
        "risk_metrics": risk_metrics(pnl, scen.weights, scen.family, scen.names, conf),
        "contributions": contributions(pnl, scen.weights, scen.family, pos, conf),
        "breakdown": breakdown(pnl, scen.names, scen.family, pos),
        "scenario_pnl": _scenario_pnl(pnl, scen, pos),
        "scenarios": _scenario_table(pnl, scen),
        "positions": _position_table(inputs),
    }
    timings["reduce"] = time.perf_counter() - t0
    return RunResult(inputs, pnl, tasks, results, tables, timings, started, datetime.now(timezone.utc),
                     getattr(executor, "workers", None) or 0)


def _scenario_pnl(pnl: np.ndarray, scen: ScenarioSet, pos: pd.DataFrame) -> pd.DataFrame:
    S, N = pnl.shape
    return pd.DataFrame({
        "scenario": np.repeat(np.asarray(scen.names, dtype=object), N),
        "family": np.repeat(np.asarray(scen.family, dtype=object), N),
        "position_id": np.tile(pos["id"].to_numpy(dtype=object), S),
        "pnl": pnl.reshape(-1),
    })


def _scenario_table(pnl: np.ndarray, scen: ScenarioSet) -> pd.DataFrame:
    df = pd.DataFrame({"scenario": scen.names, "family": scen.family, "weight": scen.weights, "pnl": pnl.sum(axis=1)})
    if len(scen.info):
        extra = scen.info.drop(columns=[c for c in ("family",) if c in scen.info.columns]).set_index("scenario")
        df = df.join(extra, on="scenario")
    return df


def _position_table(inputs: RunInputs) -> pd.DataFrame:
    pos = inputs.book.positions.copy()
    pos["priced"] = inputs.prepared.priced
    keep = ["id", "type", "underlying", "quantity", "multiplier", "currency", "asset_class", "sleeve", "adv", "bid_ask_bps", "priced"]
    return pos[keep]


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


def write_outputs(result: RunResult, out_dir: str | Path) -> dict:
    """Write the Parquet tables and ``manifest.json`` into ``out_dir`` (each file atomically).

    Returns the manifest.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for name, df in result.tables.items():
        _atomic_write(out / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
    inputs = result.inputs
    scen = inputs.scenarios
    uncovered: dict[str, dict[str, int]] = {}
    fam = np.asarray(scen.family)
    for f in dict.fromkeys(scen.family):
        miss = (~scen.covered[fam == f]).sum(axis=0)
        if miss.any():
            uncovered[f] = {scen.factors[j]: int(miss[j]) for j in np.flatnonzero(miss)}
    result.timings["write"] = time.perf_counter() - t0
    manifest = {
        "schema_version": 1,
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
        "counts": {"positions": int(inputs.prepared.n), "priced": int(inputs.prepared.priced.sum()),
                   "scenarios": len(scen), "factors": len(scen.factors), "tasks": len(result.tasks),
                   "chunk_size": result.tasks[0].size if result.tasks else 0, "workers": result.workers},
        "unpriced_types": list(inputs.prepared.unpriced_types),
        "uncovered_factors": uncovered,  # family -> factor -> scenarios in which it had no data
        "timings_seconds": {k: round(v, 4) for k, v in result.timings.items()},
        "files": sorted(f"{n}.parquet" for n in result.tables),
    }
    _atomic_write(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2, default=str)))
    return manifest
