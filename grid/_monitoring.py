"""The batch's ``monitoring`` section through the grid: the book's P&L history, forecasters validated
walk-forward (each step a grid task), regime signals, declared rules, VaR backtests, and the stress batch
re-run on the book the rules produce.

The tables are written under the results schema's names (:func:`output_table`): a date range is
``window_start``/``window_end``, the VaR backtest's estimation window ``lookback_days``, a position
``position_id``, and the signals a rule reads a list of names."""

from __future__ import annotations

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


def book_pnl_history(inputs, days: int) -> pd.DataFrame:
    """Daily P&L ``[T, N]`` of today's book under each of the last ``days`` trading days' factor moves
    up to the as-of date (columns: position ids; index: the day), through the kernels."""
    from stressgrid import kernels
    from stressgrid import scenarios
    from stressgrid.scenarios import RollingSpec

    lv = inputs.history.levels.loc[: inputs.market.as_of]
    start = lv.index[max(0, len(lv) - int(days * 1.1) - 10)]  # margin for dates only some series trade on
    spec = RollingSpec(kind="rolling", name="daily", horizon_days=1, start=start.date(), end=inputs.market.as_of.date())
    s = scenarios.generate(spec, inputs.history, inputs.market.factors, seed=0, market=inputs.market).reorder(inputs.market.factors)
    pnl = kernels.revalue(inputs.prepared, inputs.market.levels, s.shocks, inputs.market.is_log)
    dates = pd.to_datetime(s.info.set_index("scenario").loc[list(s.names), "end"].to_numpy())  # the day of the move
    return pd.DataFrame(pnl, index=dates, columns=list(inputs.book.positions["id"])).iloc[-days:]


def monitoring_tables(settings, inputs, executor) -> tuple[dict[str, pd.DataFrame], dict, object]:
    """Tables of the monitoring section, notes for the manifest, and the adapted book (None when no
    rule changed it)."""
    from stressgrid import monitoring

    pnl_hist = book_pnl_history(inputs, settings.var_backtest.window + PNL_HISTORY_DAYS)
    specs = [s.model_dump(mode="json", exclude_none=True) for s in inputs.batch.scenarios]
    res = monitoring.run_monitoring(
        settings, inputs.history, book_pnl_history=pnl_hist, executor=executor, positions=inputs.book.positions,
        nav=inputs.batch.nav, scenario_specs=specs, as_of=inputs.market.as_of,
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
    positions, in tables ``adapted_risk_metrics`` and ``adapted_positions``."""
    from stressgrid import kernels
    from stressgrid.core import Book, concat_scenarios

    from ._run import execute

    positions, specs = adapted
    batch = inputs.batch.model_copy(update={"monitoring": None, "liquidity": None, "optimise": None})
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
    pos.insert(4, "quantity_before", pos["id"].map(before).to_numpy())
    out["adapted_positions"] = output_table("adapted_positions", pos)
    return out
