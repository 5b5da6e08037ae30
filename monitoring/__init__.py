"""Model monitoring and validation: forecasters, walk-forward evaluation, regime triggers, VaR backtests.

* :mod:`forecasters <monitoring._forecast>`: sample, EWMA, Ledoit-Wolf, denoised, hierarchical and
  GARCH-DCC covariance forecasts behind one estimator interface, by name from the batch file;
* walk-forward validation (one grid task per forecast date) and the champion-challenger decision;
* a rebalancing backtest of the portfolios each forecast builds, net of trading costs;
* daily regime signals with thresholds, and declared rules that adapt the book and the stress batch;
* VaR and ES backtests (Kupiec, Christoffersen, Basel traffic light, Acerbi-Szekely, McNeil-Frey).

Everything takes plain inputs (a :class:`core.History`, DataFrames, numpy arrays) and knows nothing of
Ray or files; :func:`run_monitoring` runs the batch file's ``monitoring`` section (docs/monitoring.md).
"""

from ._backtest import BacktestResult, CostFn, performance, proportional_costs, rebalance_backtest
from ._config import (
    BacktestSettings,
    MonitoringResult,
    MonitoringSettings,
    VarBacktestSettings,
    WalkForwardSettings,
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
from ._portfolio import PORTFOLIO_METHODS, gmv_weights, min_variance_weights, portfolio_weights, risk_parity_weights
from ._returns import DEFAULT_FACTORS, asset_returns, default_factors
from ._rules import (
    DeleverCluster,
    Rule,
    RuleOutcome,
    StressedCorrelation,
    TightenAdvCaps,
    VolTarget,
    apply_rules,
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
    "BASEL_PLUS_FACTOR",
    "BacktestResult",
    "BacktestSettings",
    "CostFn",
    "CovarianceForecaster",
    "DCCGarch",
    "DEFAULT_FACTORS",
    "DeleverCluster",
    "DenoisedCov",
    "EWMACov",
    "FORECASTERS",
    "ForecasterSpec",
    "HierarchicalCov",
    "LOSSES",
    "LedoitWolfCov",
    "MonitoringResult",
    "MonitoringSettings",
    "PORTFOLIO_METHODS",
    "Rule",
    "RuleOutcome",
    "SIGNALS",
    "SampleCov",
    "SignalThresholds",
    "StressedCorrelation",
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
    "christoffersen",
    "correlated_cluster",
    "default_factors",
    "evaluate_signals",
    "ewma_covariance",
    "ewma_vol",
    "exposure_signs",
    "gmv_weights",
    "kupiec_pof",
    "make_forecaster",
    "mcneil_frey",
    "min_variance_weights",
    "model_var_series",
    "performance",
    "plan_walk_forward",
    "portfolio_weights",
    "proportional_costs",
    "rebalance_backtest",
    "register_forecaster",
    "risk_parity_weights",
    "run_monitoring",
    "run_walk_forward",
    "signal_history",
    "simulate_z2",
    "transition_counts",
    "var_backtest",
    "walk_forward",
    "walk_forward_step",
    "z2_critical_value",
    "z2_pvalue",
]
