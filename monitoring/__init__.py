"""Model monitoring and validation: forecasters, walk-forward evaluation, regime triggers, VaR backtests.

* :mod:`forecasters <monitoring._forecast>`: sample, EWMA, Ledoit-Wolf, denoised, hierarchical and
  GARCH-DCC covariance forecasts behind one estimator interface, by name from the batch file;
* walk-forward validation (one grid task per forecast date) and the champion-challenger decision, on
  statistical losses or on the rebalanced portfolios' results, with a correlation drift alert and the
  equity-bond regime view;
* a rebalancing backtest of the portfolios each forecast builds, net of trading costs;
* daily regime signals with thresholds, and declared rules that adapt the book and the stress batch
  (cut, tighten, stress, boost, re-weight toward liquidity, vol-target, buy a convexity overlay), each
  with its impact on the book's risk and its cost;
* VaR and ES backtests (Kupiec, Christoffersen, Basel traffic light, Acerbi-Szekely, McNeil-Frey).

Everything takes plain inputs (a :class:`core.History`, DataFrames, numpy arrays) and knows nothing of
Ray or files; :func:`run_monitoring` runs the batch file's ``monitoring`` section (docs/monitoring.md).
"""

from ._backtest import BacktestResult, CostFn, performance, proportional_costs, rebalance_backtest
from ._champion import PORTFOLIO_METRICS, choose_champion, correlation_drift, regime_view
from ._config import (
    BacktestSettings,
    DriftSettings,
    MonitoringResult,
    MonitoringSettings,
    RegimeViewSettings,
    VarBacktestSettings,
    WalkForwardSettings,
    monitoring_walk_forward,
    run_monitoring,
)
from ._forecast import (
    FORECASTERS,
    CovarianceForecaster,
    DCCGarch,
    DenoisedCov,
    EWMACov,
    ForecasterSpec,
    HierarchicalCov,
    LedoitWolfCov,
    SampleCov,
    ewma_covariance,
    make_forecaster,
    register_forecaster,
)
from ._tic import TICCov, correlation_matrix_distance, tic_correlation
from ._ml import GBMCorrelation, LSTMCorrelation, market_features
from ._portfolio import PORTFOLIO_METHODS, gmv_weights, min_variance_weights, portfolio_weights, risk_parity_weights
from ._returns import DEFAULT_FACTORS, asset_returns, default_factors
from ._overlay import Hedge, hedge_carry, hedge_factors, hedge_pnl, price_hedge, size_to_cvar
from ._rules import (
    IMPACT_COLUMNS,
    RISK_CONFIDENCE,
    Boost,
    DeleverCluster,
    Overlay,
    OverlayTarget,
    ReweightLiquid,
    Rule,
    RuleOutcome,
    StressedCorrelation,
    StressFamily,
    TightenAdvCaps,
    VolTarget,
    apply_rules,
    check_rules,
    correlated_cluster,
    exposure_signs,
)
from ._signals import SIGNALS, SignalThresholds, average_correlation, evaluate_signals, signal_history
from ._var_backtest import (
    BASEL_PLUS_FACTOR,
    acerbi_szekely_z2,
    basel_zone,
    christoffersen,
    ewma_vol,
    kupiec_pof,
    mcneil_frey,
    model_var_series,
    simulate_z2,
    transition_counts,
    var_backtest,
    z2_critical_value,
    z2_pvalue,
)
from ._walkforward import (
    LOSSES,
    WalkForwardPayload,
    WalkForwardResult,
    WalkForwardStep,
    WalkForwardTask,
    champion_challenger,
    plan_walk_forward,
    run_walk_forward,
    walk_forward,
    walk_forward_step,
)

__all__ = [
    "DriftSettings",
    "PORTFOLIO_METRICS",
    "RegimeViewSettings",
    "choose_champion",
    "correlation_drift",
    "regime_view",
    "BASEL_PLUS_FACTOR",
    "BacktestResult",
    "BacktestSettings",
    "Boost",
    "CostFn",
    "CovarianceForecaster",
    "DCCGarch",
    "DEFAULT_FACTORS",
    "DeleverCluster",
    "DenoisedCov",
    "EWMACov",
    "FORECASTERS",
    "GBMCorrelation",
    "LSTMCorrelation",
    "market_features",
    "ForecasterSpec",
    "Hedge",
    "HierarchicalCov",
    "IMPACT_COLUMNS",
    "LOSSES",
    "LedoitWolfCov",
    "MonitoringResult",
    "MonitoringSettings",
    "Overlay",
    "OverlayTarget",
    "PORTFOLIO_METHODS",
    "RISK_CONFIDENCE",
    "ReweightLiquid",
    "Rule",
    "RuleOutcome",
    "SIGNALS",
    "SampleCov",
    "SignalThresholds",
    "StressFamily",
    "StressedCorrelation",
    "TICCov",
    "TightenAdvCaps",
    "VarBacktestSettings",
    "VolTarget",
    "WalkForwardPayload",
    "WalkForwardResult",
    "WalkForwardSettings",
    "WalkForwardStep",
    "WalkForwardTask",
    "acerbi_szekely_z2",
    "apply_rules",
    "asset_returns",
    "average_correlation",
    "basel_zone",
    "champion_challenger",
    "check_rules",
    "christoffersen",
    "correlated_cluster",
    "correlation_matrix_distance",
    "default_factors",
    "evaluate_signals",
    "ewma_covariance",
    "ewma_vol",
    "exposure_signs",
    "gmv_weights",
    "hedge_carry",
    "hedge_factors",
    "hedge_pnl",
    "kupiec_pof",
    "make_forecaster",
    "mcneil_frey",
    "min_variance_weights",
    "model_var_series",
    "monitoring_walk_forward",
    "performance",
    "plan_walk_forward",
    "portfolio_weights",
    "price_hedge",
    "proportional_costs",
    "rebalance_backtest",
    "register_forecaster",
    "risk_parity_weights",
    "run_monitoring",
    "run_walk_forward",
    "signal_history",
    "simulate_z2",
    "size_to_cvar",
    "tic_correlation",
    "transition_counts",
    "var_backtest",
    "walk_forward",
    "walk_forward_step",
    "z2_critical_value",
    "z2_pvalue",
]
