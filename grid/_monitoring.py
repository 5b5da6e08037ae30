"""The batch's ``monitoring`` section through the grid: the book's P&L history, forecasters validated
walk-forward (each step a grid task), regime signals, declared rules, VaR backtests, and the stress batch
re-run on the book the rules produce.

The tables are written under the results schema's names (:func:`output_table`): a date range is
``window_start``/``window_end``, the VaR backtest's estimation window ``lookback_days``, a position
``position_id``, and the signals a rule reads a list of names."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

__all__ = ["book_pnl_history", "monitoring_tables", "output_table"]

#: trading days of the book's daily P&L history, beyond the VaR window
PNL_HISTORY_DAYS = 1000
#: monitoring's column names -> the results schema's (no reserved SQL word as a column name)
_OUTPUT_NAMES = {"start": "window_start", "end": "window_end", "window": "lookback_days", "id": "position_id"}


def output_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """A monitoring table under the results schema's column names; ``rules_fired.signal`` (the signals a
    rule reads, or those that fired, joined with commas) as a list of names."""
    out = df.rename(columns=_OUTPUT_NAMES)
    if name == "rules_fired" and "signal" in out.columns:
        out["signal"] = pd.Series([None if not isinstance(v, str) else [x.strip() for x in v.split(",") if x.strip()]
                                   for v in out["signal"]], index=out.index, dtype=object)
    return out


def _daily_replay(inputs, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(moves [T, F], pnl [T, N])``: each of the last ``days`` trading days' factor moves up to the as-of date
    (columns: the snapshot's factors) and today's book's P&L under them (columns: position ids)."""
    from stressgrid import kernels
    from stressgrid import scenarios
    from stressgrid.scenarios import RollingSpec

    lv = inputs.history.levels.loc[: inputs.market.as_of]
    start = lv.index[max(0, len(lv) - int(days * 1.1) - 10)]  # margin for dates only some series trade on
    spec = RollingSpec(kind="rolling", name="daily", horizon_days=1, start=start.date(), end=inputs.market.as_of.date())
    s = scenarios.generate(spec, inputs.history, inputs.market.factors, seed=0, market=inputs.market).reorder(inputs.market.factors)
    pnl = kernels.revalue(inputs.prepared, inputs.market.levels, s.shocks, inputs.market.is_log)
    dates = pd.to_datetime(s.info.set_index("scenario").loc[list(s.names), "end"].to_numpy())  # the day of the move
    moves = pd.DataFrame(s.shocks, index=dates, columns=list(inputs.market.factors)).iloc[-days:]
    return moves, pd.DataFrame(pnl, index=dates, columns=list(inputs.book.positions["id"])).iloc[-days:]


def book_pnl_history(inputs, days: int) -> pd.DataFrame:
    """Daily P&L ``[T, N]`` of today's book under each of the last ``days`` trading days' factor moves
    up to the as-of date (columns: position ids; index: the day), through the kernels."""
    return _daily_replay(inputs, days)[1]


class _Families(Mapping):
    """Scenario family name -> :class:`monitoring.StressFamily` (the book revalued over the family, as the run
    values it: at the family's horizon), computed when a rule asks for it."""

    def __init__(self, inputs):
        self.inputs = inputs
        scen = inputs.scenarios
        self.names = list(dict.fromkeys(scen.family)) if scen is not None else []
        self.done: dict = {}

    def __getitem__(self, name: str):
        from stressgrid import kernels
        from stressgrid.monitoring import StressFamily

        if name not in self.names:
            raise KeyError(name)
        if name not in self.done:
            inputs, scen = self.inputs, self.inputs.scenarios
            rows = np.flatnonzero(np.asarray(scen.family) == name)
            book = inputs.books[inputs.family_books.get(name, 0)] if inputs.books else inputs.prepared
            shocks = scen.shocks[rows]
            pnl = kernels.revalue(book, inputs.market.levels, shocks, inputs.market.is_log)
            self.done[name] = StressFamily(pnl, shocks, np.asarray(scen.weights)[rows], int(book.horizon_days))
        return self.done[name]

    def __contains__(self, name) -> bool:  # without revaluing the family
        return name in self.names

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _trade_cost(inputs):
    """``cost(trade_values [N]) -> base currency`` of the liquidity model (the batch's ``liquidity.params``,
    else the defaults), built on its first call."""
    model: list = []

    def cost(trades: np.ndarray) -> float:
        from stressgrid import liquidity

        if not model:
            if inputs.batch.liquidity is not None:
                from ._liquidity import build_model

                m, _ = build_model(inputs.batch.liquidity, inputs, inputs.batch.source)
            else:
                m = liquidity.model_from_market(inputs.book, inputs.market, inputs.prepared, inputs.history,
                                                inputs.batch.base_currency, nav=inputs.batch.nav)
            model.append((m, liquidity.cost_fn(m)))
        m, fn = model[0]
        return float(fn(np.asarray(trades, dtype=float) / m.nav)) * m.nav

    return cost


def start_walk_forward(settings, inputs, executor):
    """The section's walk-forward started on a thread of its own (:class:`._background.Background`), its
    steps as tasks on ``executor``, or None where that gains nothing: a serial executor, or one that runs
    one task at a time.  It reads only the history, so it runs while the driver reduces the stress run and
    computes the liquidity, factor model and optimise sections."""
    from stressgrid import monitoring

    from ._background import Background
    from ._executor import SerialExecutor

    if isinstance(executor, SerialExecutor) or (executor.concurrency or 1) < 2:
        return None
    own = copy.copy(executor)  # its counters are its own: the driver's thread maps on the run's executor
    return Background(lambda: monitoring.monitoring_walk_forward(settings, inputs.history, inputs.market.as_of, own),
                      "stressgrid-walk-forward")


def monitoring_tables(settings, inputs, executor, walk_forward=None) -> tuple[dict[str, pd.DataFrame], dict, object]:
    """Tables of the monitoring section, notes for the manifest, and the adapted book (None when no
    rule changed it).  ``walk_forward``: the :func:`start_walk_forward` of the same settings and inputs,
    or None (the walk-forward runs here)."""
    from stressgrid import liquidity
    from stressgrid import monitoring

    families = _Families(inputs)
    if settings.rules:  # what the rules need of the market and the batch, before the long parts run
        monitoring.check_rules(settings.rules, inputs.market, inputs.batch.base_currency, inputs.book.positions, list(families))
    moves, pnl_hist = _daily_replay(inputs, settings.var_backtest.window + PNL_HISTORY_DAYS)
    specs = [s.model_dump(mode="json", exclude_none=True) for s in inputs.batch.scenarios]
    unit = liquidity.unit_values(inputs.book, inputs.market, inputs.prepared, inputs.batch.base_currency)
    res = monitoring.run_monitoring(
        settings, inputs.history, book_pnl_history=pnl_hist, executor=executor, positions=inputs.book.positions,
        nav=inputs.batch.nav, scenario_specs=specs, as_of=inputs.market.as_of,
        market=inputs.market, base_ccy=inputs.batch.base_currency, unit_values=unit, trade_cost=_trade_cost(inputs),
        daily_moves=moves, stress=families, walk_forward=None if walk_forward is None else walk_forward.result(),
    )
    tables = {k: output_table(k, v) for k, v in res.items() if isinstance(v, pd.DataFrame)}
    notes = {"book_pnl_history_days": int(len(pnl_hist)), "first_day": str(pnl_hist.index[0].date()),
             "last_day": str(pnl_hist.index[-1].date())}
    adapted = None
    book_changed = res.positions is not None and not res.positions.equals(inputs.book.positions)
    specs_changed = res.scenario_specs is not None and [
        (s if isinstance(s, dict) else s.model_dump(mode="json", exclude_none=True)) for s in res.scenario_specs] != specs
    if book_changed or specs_changed:
        adapted = (res.positions if book_changed else None, res.scenario_specs if specs_changed else None)
    notes["rules_fired"] = int(tables["rules_fired"]["fired"].sum()) if "rules_fired" in tables and "fired" in tables["rules_fired"] else 0
    return tables, notes, adapted


def rerun_adapted(inputs, adapted, executor) -> dict[str, pd.DataFrame]:
    """The stress batch on the book (and scenario specs) the rules produced: its risk metrics and
    positions (an overlay's hedge among them, held 0 before), in tables ``adapted_risk_metrics`` and
    ``adapted_positions``."""
    from stressgrid import kernels
    from stressgrid.core import Book, concat_scenarios

    from ._run import execute

    positions, specs = adapted
    batch = inputs.batch.model_copy(update={"monitoring": None, "liquidity": None, "optimise": None, "factor_model": None})
    book = inputs.book if positions is None else Book(positions.reset_index(drop=True), f"{inputs.book.source} (adapted by the monitoring rules)")
    prepared = inputs.prepared if positions is None else kernels.prepare(
        book.positions, inputs.market.factors, batch.base_currency, inputs.market.as_of, levels=inputs.market.levels)
    scen = inputs.scenarios
    if specs is not None:
        from ._batch import Batch

        checked = Batch.model_validate({**batch.model_dump(mode="json", exclude={"limits"}), "scenarios": [
            s if isinstance(s, dict) else s.model_dump(mode="json", exclude_none=True) for s in specs]})
        batch = batch.model_copy(update={"scenarios": checked.scenarios})
    # the adapted book valued at each family's horizon, as the original run valued its book
    from ._run import _generate, _horizon_books, specs_by_name

    if specs is not None:
        books, family_books = _horizon_books(prepared, book, inputs.market, batch.base_currency,
                                             [(sp.name, sp) for sp in batch.scenarios])
        children = np.random.SeedSequence(batch.seed).spawn(max(inputs.batch.origins) + 1)
        sets = [_generate(sp, inputs.history, inputs.market, children[o], books[family_books.get(sp.name, 0)], batch)
                for sp, o in zip(batch.scenarios, inputs.batch.origins)]
        scen = concat_scenarios(sets).reorder(inputs.market.factors)
    else:
        families = list(dict.fromkeys(scen.family))
        books, family_books = _horizon_books(prepared, book, inputs.market, batch.base_currency,
                                             list(zip(families, specs_by_name(batch, families))))
    again = replace(inputs, batch=batch, book=book, prepared=prepared, scenarios=scen, sens=None, family_paths={},
                    books=books, family_books=family_books)
    res = execute(again, executor)
    out = {"adapted_risk_metrics": res.tables["risk_metrics"]}
    pos = book.positions[["id", "type", "underlying", "quantity", "asset_class", "sleeve"]].copy()
    before = inputs.book.positions.set_index("id")["quantity"]
    # a position a rule added (an overlay) was not held: 0 before
    pos.insert(4, "quantity_before", pos["id"].map(before).fillna(0.0).to_numpy(dtype=float))
    out["adapted_positions"] = output_table("adapted_positions", pos)
    return out
