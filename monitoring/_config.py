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
from ._ml import market_features
from ._portfolio import PORTFOLIO_METHODS
from ._returns import asset_returns, default_factors
from ._rules import Rule, apply_rules
from ._signals import SignalThresholds, evaluate_signals, signal_history
from ._var_backtest import model_var_series, var_backtest
from ._champion import choose_champion, correlation_drift, regime_view
from ._walkforward import WalkForwardResult, plan_walk_forward, run_walk_forward

__all__ = [
    "WalkForwardSettings",
    "BacktestSettings",
    "VarBacktestSettings",
    "MonitoringSettings",
    "MonitoringResult",
    "run_monitoring",
    "monitoring_walk_forward",
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
                raise ValueError(f"a confidence level must be in [0.5, 1) (got {a!r})")
        return sorted(set(v), reverse=True)


class DriftSettings(_Strict):
    """``drift``: the correlation drift of each forecaster: the RMS pairwise correlation error per
    walk-forward step and its mean over the last ``window`` steps (a limit on ``correlation_drift``
    puts the champion's latest value into ``breaches``)."""

    window: int = Field(default=6, ge=1)


class RegimeViewSettings(_Strict):
    """``regime_view``: the equity-bond allocation at ``target_vol`` under the historical correlation and
    the forecaster's risk-off and risk-on predictions (default forecaster: the champion); a date is
    risk-off when ``vol_factor`` (implied vol, decimal) is at or above ``risk_off_level``, or where the
    history has none, when the equity's realised 20-day vol is."""

    enabled: bool = True
    equity: str = "EQ.SPX"
    bond: str = "IR.USD.10Y"
    target_vol: float = Field(default=0.10, gt=0.0, le=1.0)
    forecaster: Optional[str] = None
    vol_factor: str = "VOL.SPX.ATM"
    risk_off_level: float = Field(default=0.20, gt=0.0)  # VIX 20: about its long-run mean


class MonitoringSettings(_Strict):
    """The batch file's ``monitoring`` section (module docstring; docs/monitoring.md lists every key)."""

    as_of: Optional[date] = None
    factors: Optional[list[str]] = None
    forecasters: list[ForecasterSpec] = Field(default_factory=lambda: [ForecasterSpec(name=n) for n in ("sample", "ewma", "ledoit_wolf")],
                                              min_length=1)
    walk_forward: WalkForwardSettings = WalkForwardSettings()
    champion: str = "sample"
    margin: float = Field(default=0.05, ge=0.0, lt=1.0)
    #: a statistical loss of the walk-forward, or a result of the rebalanced portfolios (champion_method)
    metric: Literal["cov_error", "corr_error", "qlike", "gmv_variance", "sharpe", "max_drawdown", "turnover",
                    "information_ratio"] = "gmv_variance"
    #: a challenger is promoted only when its test's p-value is below this (1: the margin alone decides)
    significance: float = Field(default=0.10, gt=0.0, le=1.0)
    #: the rebalanced portfolio whose results the table reports and a portfolio metric compares
    champion_method: Optional[Literal["min_variance", "risk_parity"]] = None
    bootstrap_reps: int = Field(default=999, ge=99)
    drift: DriftSettings = DriftSettings()
    regime_view: RegimeViewSettings = RegimeViewSettings()
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
        if self.metric in ("sharpe", "max_drawdown", "turnover", "information_ratio") and not self.backtest.enabled:
            raise ValueError(f"metric {self.metric} is a result of the rebalanced portfolios; enable backtest")
        if self.champion_method is not None and self.champion_method not in self.backtest.methods:
            raise ValueError(f"champion_method {self.champion_method!r} is not one of backtest.methods "
                             f"({', '.join(self.backtest.methods)})")
        if self.regime_view.forecaster is not None and self.regime_view.forecaster not in labels:
            raise ValueError(f"regime_view.forecaster {self.regime_view.forecaster!r} is not one of the forecasters "
                             f"({', '.join(labels)})")
        return self


class MonitoringResult(dict):
    """The tables of :func:`run_monitoring` (``name -> DataFrame``), with the adapted book and scenario
    specs as attributes ``positions`` and ``scenario_specs`` (None when no book was given)."""

    positions: pd.DataFrame | None = None
    scenario_specs: list | None = None


def _regime_level(history: History, view: "RegimeViewSettings", as_of) -> pd.Series:
    """The level that classes a date risk-off or risk-on: the implied vol where the history has it, else
    the equity's realised 20-day vol (annualised), up to ``as_of``."""
    lv = history.levels.loc[:as_of]
    implied = lv[view.vol_factor].dropna() if view.vol_factor in lv.columns else pd.Series(dtype=float)
    eq = lv[view.equity].dropna() if view.equity in lv.columns else pd.Series(dtype=float)
    realised = np.log(eq).diff().rolling(20).std() * np.sqrt(252)
    return implied.combine_first(realised).dropna()


def _checked(settings: MonitoringSettings | Mapping) -> MonitoringSettings:
    if isinstance(settings, MonitoringSettings):
        return settings
    from pydantic import ValidationError

    try:
        return MonitoringSettings.model_validate(dict(settings))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"monitoring, field '{loc}': {err['msg'].removeprefix('Value error, ')}") from None


def _setup(s: MonitoringSettings, history: History, as_of) -> tuple:
    """``(as_of_ts, returns)``: the monitoring date and the monitored assets' daily returns up to it."""
    end_date = s.as_of or as_of
    as_of_ts = pd.Timestamp(end_date) if end_date is not None else history.levels.index[-1]
    return as_of_ts, asset_returns(history, s.factors or default_factors(history), end=as_of_ts)


def _last_forecast(s: MonitoringSettings, as_of_ts) -> pd.Timestamp:
    """The walk-forward's last forecast date: its ``end``, never after the monitoring date."""
    return min(pd.Timestamp(s.walk_forward.end), as_of_ts) if s.walk_forward.end else as_of_ts


def _walk_forward(s: MonitoringSettings, history: History, as_of_ts, returns: pd.DataFrame, executor) -> WalkForwardResult:
    wf = s.walk_forward
    end = _last_forecast(s, as_of_ts)
    methods = tuple(s.backtest.methods) if s.backtest.enabled else ()
    # market levels for the forecasters that read them (ml_gbm, ml_lstm), each row from history up to its date
    features = market_features(history, returns.index) if any(f.build().uses_features for f in s.forecasters) else None
    return run_walk_forward(returns, s.forecasters, wf.train_days, wf.horizon_days, wf.roll_days, wf.start, end,
                            executor=executor, methods=methods, keep_forecasts=s.regime_view.enabled, features=features)


def check_walk_forward(settings: MonitoringSettings | Mapping, history: History, as_of=None) -> None:
    """Raise the :class:`ConfigError` the walk-forward would raise for want of dates (``train_days`` longer
    than the history, a ``start`` too late), before anything is computed: its plan only."""
    s = _checked(settings)
    as_of_ts, returns = _setup(s, history, as_of)
    wf = s.walk_forward
    plan_walk_forward(returns.index, wf.train_days, wf.horizon_days, wf.roll_days, wf.start, _last_forecast(s, as_of_ts))


def monitoring_walk_forward(settings: MonitoringSettings | Mapping, history: History, as_of=None,
                            executor=None) -> WalkForwardResult:
    """The walk-forward evaluation of the ``monitoring`` section alone, as :func:`run_monitoring` runs it.

    Pass the result to :func:`run_monitoring` (``walk_forward=``) with the same settings, history and
    ``as_of``.  It reads neither the book nor the stress run, so a caller can run it while other work goes
    on (the grid does, on Ray)."""
    s = _checked(settings)
    return _walk_forward(s, history, *_setup(s, history, as_of), executor)


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
    walk_forward: WalkForwardResult | None = None,
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
    walk_forward : the result of :func:`monitoring_walk_forward` for the same settings, history and
        ``as_of``, computed beforehand (None: computed here)

    Returns
    -------
    :class:`MonitoringResult` with the tables ``walk_forward``, ``champion_challenger`` (:func:`choose_champion`),
    ``correlation_drift``, ``regime_view`` (when the equity and bond factors are monitored),
    ``rebalance_backtest``, ``signals``, ``signal_history``, ``rules_fired``, ``rules_impact`` (one row per
    fired rule), ``var_backtest``, ``var_series`` (a table is absent when its part did not run: no book,
    no book P&L, backtest disabled).
    """
    s = _checked(settings)
    as_of_ts, returns = _setup(s, history, as_of)
    out = MonitoringResult()
    wf = s.walk_forward
    view = s.regime_view
    res = walk_forward if walk_forward is not None else _walk_forward(s, history, as_of_ts, returns, executor)
    out["walk_forward"] = res.errors
    backtest = None
    if s.backtest.enabled:
        costs = cost_fn or proportional_costs(s.backtest.cost_bps, list(returns.columns))
        backtest = rebalance_backtest(returns, res.weights, costs, s.backtest.benchmark)
        out["rebalance_backtest"] = backtest.summary
    out["champion_challenger"] = choose_champion(
        res.errors, backtest, s.champion, s.metric, s.margin, s.significance, s.champion_method,
        s.backtest.benchmark if s.backtest.enabled else None, s.bootstrap_reps, wf.horizon_days)
    out["correlation_drift"] = correlation_drift(res.errors, returns.shape[1], s.champion, s.drift.window)
    if view.enabled and view.equity in returns.columns and view.bond in returns.columns:
        out["regime_view"] = regime_view(res.forecasts, returns, view.forecaster or s.champion, view.equity, view.bond,
                                         wf.horizon_days, _regime_level(history, view, as_of_ts), view.risk_off_level,
                                         view.target_vol)

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
