"""The batch's optional sections, each one object with the same small interface.

A section is enabled by its key in the batch file (``liquidity``, ``factor_model``, ``optimise``,
``monitoring``); it reads
the run's inputs, the gathered position-level P&L (when kept) and the executor, and returns tables, notes
for the manifest and its timings.  :func:`stressgrid.grid.execute` runs the enabled ones in the order of
:data:`SECTIONS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from stressgrid.core.executor import Executor

__all__ = ["Section", "SectionContext", "SectionOutput", "SECTIONS"]


@dataclass(frozen=True)
class SectionContext:
    inputs: object  # RunInputs
    pnl: np.ndarray | None  # [S, N] position-level P&L, when the run gathered it
    executor: Executor
    source: str  # names the batch in error messages
    #: what a section leaves for a later one (the factor model's loadings for the optimise section)
    shared: dict = field(default_factory=dict)


@dataclass
class SectionOutput:
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Section(Protocol):
    name: str

    def enabled(self, batch) -> bool: ...

    def start(self, inputs, executor, shared: dict) -> None:
        """Start, before the stress run is reduced, what needs neither its P&L nor another section (on
        a thread of its own, its tasks on the executor); leave what :meth:`run` collects in ``shared``."""

    def run(self, ctx: SectionContext) -> SectionOutput: ...


class _Nothing:
    def start(self, inputs, executor, shared: dict) -> None:
        """Nothing to start before the run is reduced."""


class LiquiditySection(_Nothing):
    """Days to liquidate, exit costs, liquidity-adjusted VaR/CVaR and drawdowns, capacity."""

    name = "liquidity"

    def enabled(self, batch) -> bool:
        return batch.liquidity is not None

    def run(self, ctx: SectionContext) -> SectionOutput:
        from ._liquidity import liquidity_tables

        t0 = time.perf_counter()
        tables, notes = liquidity_tables(ctx.inputs.batch.liquidity, ctx.inputs, ctx.pnl, ctx.source)
        return SectionOutput(tables, notes, {"liquidity": time.perf_counter() - t0})


class FactorModelSection(_Nothing):
    """Exposures of positions and groups on the declared factors, fitted on a dated family."""

    name = "factor_model"

    def enabled(self, batch) -> bool:
        return batch.factor_model is not None

    def run(self, ctx: SectionContext) -> SectionOutput:
        from ._factors import factor_model_tables

        t0 = time.perf_counter()
        tables, notes, fitted = factor_model_tables(ctx.inputs.batch.factor_model, ctx.inputs, ctx.pnl, ctx.source)
        ctx.shared["factors"] = fitted
        return SectionOutput(tables, notes, {"factor_model": time.perf_counter() - t0})


class OptimiseSection(_Nothing):
    """The book re-optimised under each stress family, one task per family."""

    name = "optimise"

    def enabled(self, batch) -> bool:
        return batch.optimise is not None

    def run(self, ctx: SectionContext) -> SectionOutput:
        from ._optimise import optimise_tables

        t0 = time.perf_counter()
        tables, notes = optimise_tables(ctx.inputs.batch.optimise, ctx.inputs, ctx.pnl, ctx.executor, ctx.source,
                                        ctx.shared.get("factors"))
        return SectionOutput(tables, notes, {"optimise": time.perf_counter() - t0})


class MonitoringSection:
    """Walk-forward forecasts, signals, declared rules (and the batch re-run on the adapted book), VaR
    backtests."""

    name = "monitoring"

    def enabled(self, batch) -> bool:
        return batch.monitoring is not None

    def start(self, inputs, executor, shared: dict) -> None:
        """The walk-forward, on a parallel executor (``grid._monitoring.start_walk_forward``)."""
        from ._monitoring import start_walk_forward

        shared["walk_forward"] = start_walk_forward(inputs.batch.monitoring, inputs, executor)

    def run(self, ctx: SectionContext) -> SectionOutput:
        from ._monitoring import monitoring_tables, rerun_adapted

        t0 = time.perf_counter()
        started = ctx.shared.get("walk_forward")
        tables, notes, adapted = monitoring_tables(ctx.inputs.batch.monitoring, ctx.inputs, ctx.executor, started)
        out = SectionOutput(tables, notes, {"monitoring": time.perf_counter() - t0})
        if started is not None:  # it ran beside the sections before this one
            out.timings["monitoring_walk_forward"] = started.seconds
        if adapted is not None:
            t0 = time.perf_counter()
            out.tables.update(rerun_adapted(ctx.inputs, adapted, ctx.executor))
            out.timings["rerun_adapted_book"] = time.perf_counter() - t0
        return out


#: the sections, in the order they run
SECTIONS: tuple[Section, ...] = (LiquiditySection(), FactorModelSection(), OptimiseSection(), MonitoringSection())
