"""The batch file's ``monitoring`` section and the entry point the grid calls.

.. code-block:: yaml

    monitoring:
      as_of: 2017-03-29                 # default: the market's as-of date, else the history's last date
      factors: [EQ.SPX, FX.EURUSD, CMD.GOLD, IR.USD.10Y]   # default: a cross-asset set of the history
      forecasters: [sample, ewma, ledoit_wolf, {name: ewma, lam: 0.97, label: ewma97}, dcc]
      walk_forward: {train_days: 500, horizon_days: 20, roll_days: 20, start: 2005-01-01, end: null}
      champion: sample
      margin: 0.05
      metric: gmv_variance
      backtest: {methods: [min_variance, risk_parity], cost_bps: 5, benchmark: sample}
      signals: {avg_corr: {threshold: 0.6}, vol_of_vol: {threshold: 2.0}}
      rules:
        - {kind: delever_cluster, when: [avg_corr, avg_corr_jump], factor: 0.5}
        - {kind: vol_target, when: [vol_of_vol], target_vol: 0.10}
        - {kind: boost, when: [dispersion], sleeves: [trend], factor: 1.5}
        - {kind: overlay, when: [vol_of_vol], instrument: put, underlying: EQ.SPX, strike: 0.9, expiry_days: 90, budget: 0.002}
      var_backtest: {window: 250, alpha: [0.99, 0.975], method: historical}
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Mapping, Optional, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stressgrid.core import ConfigError, History

from ._backtest import proportional_costs, rebalance_backtest
from ._forecast import ForecasterSpec
from ._portfolio import PORTFOLIO_METHODS
from ._returns import asset_returns, default_factors
from ._rules import Rule, apply_rules
from ._signals import SignalThresholds, evaluate_signals, signal_history
from ._var_backtest import model_var_series, var_backtest
from ._walkforward import champion_challenger, run_walk_forward

__all__ = [
    "WalkForwardSettings",
    "BacktestSettings",
    "VarBacktestSettings",
    "MonitoringSettings",
    "MonitoringResult",
    "run_monitoring",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WalkForwardSettings(_Strict):
    """``walk_forward``: training window, forecast horizon and step (trading days); first and last
    forecast date."""

    train_days: int = Field(default=500, ge=20)
    horizon_days: int = Field(default=20, ge=1)
    roll_days: int = Field(default=20, ge=1)
    start: Optional[date] = None
    end: Optional[date] = None

    @model_validator(mode="after")
    def _order(self) -> "WalkForwardSettings":
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class BacktestSettings(_Strict):
    """``backtest``: long-only portfolios rebalanced at each walk-forward step; trading costs in basis
    points of NAV per unit of weight traded (a number, or ``{factor: bps, default: bps}``);
    the benchmark forecaster of the information ratio."""

    enabled: bool = True
    methods: list[Literal["min_variance", "risk_parity"]] = list(PORTFOLIO_METHODS)
    cost_bps: Union[float, dict[str, float]] = 5.0
    benchmark: str = "sample"

    @field_validator("cost_bps")
    @classmethod
    def _bps(cls, v):
        vals = v.values() if isinstance(v, dict) else [v]
        for x in vals:
            if not np.isfinite(x) or x < 0:
                raise ValueError("trading costs must be non-negative basis points")
        return v


class VarBacktestSettings(_Strict):
    """``var_backtest``: the model's one-day VaR/ES on the book's P&L history, backtested."""

    enabled: bool = True
    method: Literal["historical", "fhs", "normal"] = "historical"
    window: int = Field(default=250, ge=20)
    alpha: list[float] = [0.99, 0.975]
    lam: float = Field(default=0.94, gt=0.0, lt=1.0)
    es_dist: Literal["normal", "t"] = "normal"
    dof: float = Field(default=5.0, gt=1.0)
    n_sim: int = Field(default=20000, ge=1000)
    seed: int = Field(default=0, ge=0)

    @field_validator("alpha", mode="before")
    @classmethod
    def _levels(cls, v):
        v = [v] if isinstance(v, (int, float)) else v
        if not v:
            raise ValueError("give at least one confidence level")
        for a in v:
            if not 0.5 <= a < 1.0:
                raise ValueError(f"confidence level {a!r} must be in [0.5, 1)")
        return sorted(set(v), reverse=True)


class MonitoringSettings(_Strict):
    """The batch file's ``monitoring`` section (module docstring; docs/monitoring.md lists every key)."""

    as_of: Optional[date] = None
    factors: Optional[list[str]] = None
    forecasters: list[ForecasterSpec] = Field(default_factory=lambda: [ForecasterSpec(name=n) for n in ("sample", "ewma", "ledoit_wolf")],
                                              min_length=1)
    walk_forward: WalkForwardSettings = WalkForwardSettings()
    champion: str = "sample"
    margin: float = Field(default=0.05, ge=0.0, lt=1.0)
    metric: Literal["cov_error", "corr_error", "qlike", "gmv_variance"] = "gmv_variance"
    backtest: BacktestSettings = BacktestSettings()
    signals: SignalThresholds = SignalThresholds()
    rules: list[Rule] = []
    var_backtest: VarBacktestSettings = VarBacktestSettings()

    @model_validator(mode="after")
    def _labels(self) -> "MonitoringSettings":
        labels = [f.key for f in self.forecasters]
        dup = sorted({l for l in labels if labels.count(l) > 1})
        if dup:
            raise ValueError(f"forecaster label {dup[0]!r} is used twice; give each entry its own 'label'")
        if self.champion not in labels:
            raise ValueError(f"champion {self.champion!r} is not one of the forecasters ({', '.join(labels)})")
        if self.backtest.enabled and self.backtest.benchmark not in labels:
            raise ValueError(f"backtest benchmark {self.backtest.benchmark!r} is not one of the forecasters ({', '.join(labels)})")
        return self


class MonitoringResult(dict):
    """The tables of :func:`run_monitoring` (``name -> DataFrame``), with the adapted book and scenario
    specs as attributes ``positions`` and ``scenario_specs`` (None when no book was given)."""

    positions: pd.DataFrame | None = None
    scenario_specs: list | None = None


def run_monitoring(
    settings: MonitoringSettings | Mapping,
    history: History,
    book_pnl_history: pd.Series | pd.DataFrame | None = None,
    executor=None,
    positions: pd.DataFrame | None = None,
    nav: float | None = None,
    scenario_specs: list | None = None,
    as_of=None,
    cost_fn=None,
    *,
    market=None,
    base_ccy: str | None = None,
    unit_values=None,
    trade_cost=None,
    daily_moves: pd.DataFrame | None = None,
    stress=None,
) -> MonitoringResult:
    """Run every part of the monitoring section.

    Parameters
    ----------
    settings : the validated ``monitoring`` section (or a mapping of it)
    history : the factor history
    book_pnl_history : the book's daily P&L over history (a Series, or one column per position id),
        for the VaR backtest and the ``vol_target`` rule
    executor : a grid executor for the walk-forward steps (None: serial in this process)
    positions, nav, scenario_specs : the book, its NAV and the batch's scenario entries, for the rules
    as_of : the market date (``settings.as_of`` wins; default the history's last date)
    cost_fn : ``cost_fn(trade_weights [K]) -> fraction of NAV`` for the rebalancing backtest (the
        liquidity model's); default: ``backtest.cost_bps`` proportional costs
    market, base_ccy, unit_values, trade_cost, daily_moves, stress : for the rules that price or size
        positions and for each fired rule's impact (:func:`apply_rules`)

    Returns
    -------
    :class:`MonitoringResult` with the tables ``walk_forward``, ``champion_challenger``,
    ``rebalance_backtest``, ``signals``, ``signal_history``, ``rules_fired``, ``rules_impact`` (one row per
    fired rule), ``var_backtest``, ``var_series`` (a table is absent when its part did not run: no book,
    no book P&L, backtest disabled).
    """
    if not isinstance(settings, MonitoringSettings):
        from pydantic import ValidationError

        try:
            settings = MonitoringSettings.model_validate(dict(settings))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"monitoring, field '{loc}': {err['msg'].removeprefix('Value error, ')}") from None
    s = settings
    end_date = s.as_of or as_of
    as_of_ts = pd.Timestamp(end_date) if end_date is not None else history.levels.index[-1]
    out = MonitoringResult()

    factors = s.factors or default_factors(history)
    returns = asset_returns(history, factors, end=as_of_ts)
    wf = s.walk_forward
    end = min(pd.Timestamp(wf.end), as_of_ts) if wf.end else as_of_ts
    methods = tuple(s.backtest.methods) if s.backtest.enabled else ()
    res = run_walk_forward(returns, s.forecasters, wf.train_days, wf.horizon_days, wf.roll_days, wf.start, end,
                           executor=executor, methods=methods)
    out["walk_forward"] = res.errors
    out["champion_challenger"] = champion_challenger(res.errors, s.champion, s.margin, s.metric)
    if s.backtest.enabled:
        costs = cost_fn or proportional_costs(s.backtest.cost_bps, list(returns.columns))
        out["rebalance_backtest"] = rebalance_backtest(returns, res.weights, costs, s.backtest.benchmark).summary

    out["signals"] = evaluate_signals(history, s.signals, as_of_ts)
    out["signal_history"] = signal_history(history, s.signals, None, as_of_ts)

    if positions is not None:
        outcome = apply_rules(positions, out["signals"], s.rules, history, as_of_ts, book_pnl_history, nav, scenario_specs,
                              market=market, base_ccy=base_ccy, unit_values=unit_values, trade_cost=trade_cost,
                              daily_moves=daily_moves, stress=stress)
        out["rules_fired"] = outcome.log
        out["rules_impact"] = outcome.impact
        out.positions, out.scenario_specs = outcome.positions, outcome.scenario_specs

    if book_pnl_history is not None and s.var_backtest.enabled:
        v = s.var_backtest
        pnl = book_pnl_history.sum(axis=1) if isinstance(book_pnl_history, pd.DataFrame) else book_pnl_history
        pnl = pnl.loc[:as_of_ts]
        rows, series = [], []
        for a in v.alpha:
            ser = model_var_series(pnl, v.method, v.window, a, v.lam)
            bt = var_backtest(ser["pnl"], ser["var"], ser["es"], a, v.es_dist, v.dof, v.n_sim, v.seed)
            rows.append({"method": v.method, "window": v.window, **bt})
            series.append(ser.assign(alpha=a).reset_index(names="date"))
        out["var_backtest"] = pd.DataFrame(rows)
        out["var_series"] = pd.concat(series, ignore_index=True)
    return out
