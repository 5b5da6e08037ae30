"""The champion-challenger decision on statistical losses or on portfolio results, the correlation drift
alert, and the equity-bond regime view.

**Champion-challenger** (:func:`choose_champion`).  Every forecaster is compared with the champion (the
model in use) on a declared ``metric``:

* a statistical loss of the walk-forward (``cov_error``, ``corr_error``, ``qlike``, ``gmv_variance``):
  lower is better, the improvement is relative, ``1 - loss / loss_champion``, and the test is
  Diebold-Mariano on the per-step loss differences with Newey-West variance (:func:`champion_challenger`);
* a result of the rebalanced portfolio each forecaster builds (``method``: minimum variance or risk
  parity, net of trading costs; :func:`rebalance_backtest`): ``sharpe`` and ``information_ratio``
  (higher is better, the improvement is the difference, in annualised units) or ``max_drawdown`` and
  ``turnover`` (lower is better, relative improvement).  The test is a stationary bootstrap (Politis and
  Romano, "The stationary bootstrap", JASA 89 (1994); the ``arch`` package's ``StationaryBootstrap``)
  of the paired daily net returns of the challenger, the champion and the benchmark, with mean block
  length ``block_days``: the p-value is the share of resamples in which the challenger does not beat
  the champion on the metric.  Turnover is not a function of the daily returns and has no test.

A challenger is promoted only when its improvement exceeds ``margin`` and its p-value is below
``significance``; among several, the best on the metric.  The table has, for every forecaster, the
portfolio results (``sharpe``, ``max_drawdown``, ``turnover``, ``information_ratio`` of ``method``) and
the mean statistical losses, whatever the metric.

**Correlation drift** (:func:`correlation_drift`).  At each walk-forward step, the root-mean-square
error of the forecast pairwise correlations against the realised ones over the horizon,
``||C_f - C_r||_F / sqrt(K (K - 1))`` (the walk-forward's ``corr_error`` scaled to one pair), and its
mean over the last ``window`` steps.  A limit on the metric ``correlation_drift`` (the champion's latest
rolling error) puts it into ``breaches`` and the report like any other limit.

**Regime view** (:func:`regime_view`).  For an equity and a bond factor, the allocation at a target
volatility under the historical correlation (the sample correlation of the daily returns) and under
the correlations a forecaster predicted at the walk-forward dates classed risk-off and risk-on (the
implied-vol level at or above ``risk_off_level``, else the equity's realised 20-day vol where the
history has no implied vol), and under its latest forecast: equal risk contribution weights
``w_i = k / sigma_i`` with ``k`` such that the book's volatility is the target,
``k = target / sqrt(2 (1 + rho))``, and the minimum-variance weights scaled to the same volatility.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, DataError

from ._backtest import YEAR, performance
from ._forecast import cov_to_corr
from ._walkforward import LOSSES, champion_challenger

__all__ = ["PORTFOLIO_METRICS", "choose_champion", "correlation_drift", "regime_view"]

#: metric -> True when higher is better
PORTFOLIO_METRICS = {"sharpe": True, "information_ratio": True, "max_drawdown": False, "turnover": False}
_PORTFOLIO_COLUMNS = ("sharpe", "max_drawdown", "turnover", "information_ratio")


def _metric_of(daily: np.ndarray, bench: np.ndarray | None, metric: str) -> float:
    perf = performance(daily, bench)
    return perf[metric]


def choose_champion(errors: pd.DataFrame, backtest, champion: str, metric: str = "gmv_variance",
                    margin: float = 0.05, significance: float = 0.10, method: str | None = None,
                    benchmark: str | None = None, reps: int = 999, block_days: int = 20,
                    seed: int = 0) -> pd.DataFrame:
    """The champion-challenger table (module docstring).

    Parameters
    ----------
    errors : the walk-forward error table (:func:`walk_forward`)
    backtest : :class:`BacktestResult` of the rebalanced portfolios, or None (no portfolio columns; a
        portfolio metric is then refused)
    champion : the model in use; metric, margin, significance : the decision rule
    method : the portfolio whose results are compared (default: the backtest's first method)
    benchmark : the benchmark forecaster of the information ratio (default: the backtest's)
    reps, block_days, seed : the stationary bootstrap of a portfolio metric's test

    Returns
    -------
    DataFrame, champion first: ``forecaster``, ``role``, ``metric``, ``method``, ``steps``, ``value`` (the
    metric), ``improvement``, ``p_value``, ``test``, ``margin``, ``significance``, ``decision``,
    ``next_champion``, the portfolio results (``sharpe``, ``max_drawdown``, ``turnover``,
    ``information_ratio``), the mean statistical losses (``cov_error``, ...), and the Diebold-Mariano
    columns of :func:`champion_challenger` (``mean_loss``, ``win_rate``, ``dm_stat``, ``dm_pvalue``) on the
    statistical metric (``metric``, or ``gmv_variance`` for a portfolio metric).
    """
    if metric not in LOSSES and metric not in PORTFOLIO_METRICS:
        raise ConfigError(f"monitoring, field 'metric': {metric!r} is not one of "
                          f"{', '.join(LOSSES + tuple(PORTFOLIO_METRICS))}")
    if not 0.0 < significance <= 1.0:
        raise ConfigError(f"monitoring, field 'significance': expected a p-value threshold in (0, 1] (got {significance!r})")
    stat = champion_challenger(errors, champion, margin, metric if metric in LOSSES else "gmv_variance")
    labels = list(stat["forecaster"])
    means = errors.groupby("forecaster")[list(LOSSES)].mean()
    out = stat.copy()
    for c in LOSSES:
        out[c] = out["forecaster"].map(means[c])
    series = None
    if backtest is not None:
        summary = backtest.summary
        method = method or str(summary["method"].iloc[0])
        if method not in set(summary["method"]):
            raise ConfigError(f"monitoring, field 'champion_method': the backtest has no method {method!r} "
                              f"({', '.join(dict.fromkeys(summary['method']))})")
        s = summary[summary["method"] == method].set_index("forecaster")
        for c in _PORTFOLIO_COLUMNS:
            out[c] = out["forecaster"].map(s[c])
        benchmark = benchmark or str(s["benchmark"].iloc[0])
        series = {lab: backtest.returns[f"{lab}/{method}"].to_numpy(float) for lab in labels}
    elif metric in PORTFOLIO_METRICS:
        raise ConfigError(f"monitoring, field 'metric': {metric} is a result of the rebalanced portfolios; "
                          "enable backtest")
    else:
        for c in _PORTFOLIO_COLUMNS:
            out[c] = np.nan
    out.insert(3, "method", method if backtest is not None else None)

    if metric in LOSSES:
        out["value"] = out["mean_loss"]
        out["p_value"] = out["dm_pvalue"]
        out["test"] = np.where(out["role"] == "champion", None, "diebold_mariano")
        better = out["improvement"] > margin
    else:
        higher = PORTFOLIO_METRICS[metric]
        value = out[metric].to_numpy(float).copy()
        if metric == "information_ratio":  # the benchmark's information ratio against itself is 0
            value = np.where(out["forecaster"] == benchmark, 0.0, value)
        out["value"] = value
        base = float(out.loc[out["role"] == "champion", "value"].iloc[0])
        out["improvement"] = (out["value"] - base) if higher else (1.0 - out["value"] / base if base else np.nan)
        out.loc[out["role"] == "champion", "improvement"] = 0.0
        pvals = []
        for lab in out["forecaster"]:
            if lab == champion or metric == "turnover":
                pvals.append(np.nan)
                continue
            pvals.append(_bootstrap_pvalue(series[lab], series[champion], series.get(benchmark), metric, reps,
                                           block_days, seed))
        out["p_value"] = pvals
        out["test"] = [None if (lab == champion or metric == "turnover") else "stationary_bootstrap"
                       for lab in out["forecaster"]]
        better = out["improvement"] > margin
    ok = better & (out["role"] == "challenger") & (out["p_value"].isna() if metric == "turnover"
                                                    else out["p_value"] < significance)
    out["margin"] = float(margin)
    out["significance"] = float(significance)
    winners = out[ok]
    if winners.empty:
        nxt = champion
    else:
        asc = not (metric in PORTFOLIO_METRICS and PORTFOLIO_METRICS[metric])
        nxt = str(winners.sort_values("value", ascending=asc).iloc[0]["forecaster"])
    out["decision"] = [("retain" if nxt == champion else "replaced") if r == "champion" else
                       ("promote" if f == nxt else "reject") for f, r in zip(out["forecaster"], out["role"])]
    out["next_champion"] = nxt
    out["metric"] = metric
    first = ["forecaster", "role", "metric", "method", "steps", "value", "improvement", "p_value", "test", "margin",
             "significance", "decision", "next_champion", *_PORTFOLIO_COLUMNS, *LOSSES]
    rest = [c for c in ("mean_loss", "win_rate", "dm_stat", "dm_pvalue") if c in out.columns]
    return out[first + rest].rename(columns={"mean_loss": "dm_mean_loss", "win_rate": "dm_win_rate"})


def _bootstrap_pvalue(challenger: np.ndarray, champion: np.ndarray, bench: np.ndarray | None, metric: str,
                      reps: int, block: int, seed: int) -> float:
    """Share of stationary-bootstrap resamples of the paired daily returns in which the challenger does
    not beat the champion on ``metric``."""
    from arch.bootstrap import StationaryBootstrap

    higher = PORTFOLIO_METRICS[metric]
    cols = [challenger, champion] + ([bench] if bench is not None else [])
    x = np.column_stack(cols)

    def diff(a: np.ndarray) -> np.ndarray:
        b = a[:, 2] if a.shape[1] > 2 else None
        vc = _metric_of(a[:, 0], b, metric)
        vb = _metric_of(a[:, 1], b, metric) if not (metric == "information_ratio" and np.array_equal(a[:, 1], b)) else 0.0
        d = (vc - vb) if higher else (vb - vc)
        return np.array([d if np.isfinite(d) else 0.0])

    bs = StationaryBootstrap(max(int(block), 1), x, seed=np.random.default_rng(seed))
    d = bs.apply(diff, reps)[:, 0]
    return float(np.mean(d <= 0.0))


def correlation_drift(errors: pd.DataFrame, n_assets: int, champion: str, window: int = 6) -> pd.DataFrame:
    """Per step and forecaster: the RMS pairwise correlation error and its mean over the last ``window``
    steps (module docstring)."""
    if window < 1:
        raise ConfigError(f"monitoring, field 'drift.window': expected a number of steps >= 1 (got {window!r})")
    if n_assets < 2:
        raise DataError("correlation drift: needs two or more factors")
    scale = np.sqrt(n_assets * (n_assets - 1))
    rows = []
    for label, g in errors.groupby("forecaster", sort=False):
        g = g.sort_values("date")
        err = g["corr_error"].to_numpy(float) / scale
        roll = pd.Series(err).rolling(window, min_periods=window).mean().to_numpy()
        rows.append(pd.DataFrame({"date": g["date"].to_numpy(), "forecaster": label,
                                  "role": "champion" if label == champion else "challenger",
                                  "error": err, "rolling_error": roll, "window_steps": int(window)}))
    return pd.concat(rows, ignore_index=True)


def _erc(sig: np.ndarray, rho: float, target: float) -> tuple[float, float]:
    k = target / np.sqrt(2.0 * (1.0 + rho)) if rho > -1.0 else np.nan
    return k / sig[0], k / sig[1]


def _minvar(sig: np.ndarray, rho: float, target: float) -> tuple[float, float]:
    se, sb = sig
    cov = np.array([[se * se, rho * se * sb], [rho * se * sb, sb * sb]])
    w = np.linalg.solve(cov, np.ones(2))
    w = w / w.sum()
    vol = float(np.sqrt(w @ cov @ w))
    return tuple(w * target / vol)


def regime_view(forecasts: Mapping, returns: pd.DataFrame, label: str, equity: str, bond: str, horizon: int,
                regime_level: pd.Series, risk_off_level: float, target_vol: float = 0.10) -> pd.DataFrame:
    """The equity-bond allocation at ``target_vol`` per regime (module docstring).

    Parameters
    ----------
    forecasts : ``{(date, label): covariance over horizon [K, K]}`` of the walk-forward
    returns : the walk-forward's daily returns (columns include ``equity`` and ``bond``)
    label : the forecaster whose forecasts are read; horizon : their horizon in days
    regime_level : the level that classes a date (implied vol, or realised vol), indexed by date
    risk_off_level : a date is risk-off when the level is at or above it
    """
    cols = list(returns.columns)
    for name, f in (("equity", equity), ("bond", bond)):
        if f not in cols:
            raise ConfigError(f"monitoring, field 'regime_view.{name}': {f} is not one of the monitoring factors "
                              f"({', '.join(cols)})")
    i, j = cols.index(equity), cols.index(bond)
    mine = sorted((d, F) for (d, lab), F in forecasts.items() if lab == label)
    if not mine:
        raise DataError(f"regime view: no walk-forward forecast of {label!r}")
    dates = pd.DatetimeIndex([d for d, _ in mine])
    rho = np.array([cov_to_corr(F)[i, j] for _, F in mine])
    sig = np.array([np.sqrt(np.diag(F)[[i, j]] * YEAR / horizon) for _, F in mine])
    level = regime_level.reindex(dates, method="ffill").to_numpy(float)
    off = level >= risk_off_level
    known = np.isfinite(level)
    x = returns[[equity, bond]].to_numpy(float)
    sets = [("historical", float(np.corrcoef(x.T)[0, 1]), x.std(axis=0, ddof=1) * np.sqrt(YEAR), len(x)),
            ("risk_off", *_mean(rho, sig, known & off)),
            ("risk_on", *_mean(rho, sig, known & ~off)),
            ("latest", float(rho[-1]), sig[-1], 1)]
    rows = []
    for name, r, s, n in sets:
        erc = _erc(s, r, target_vol) if n else (np.nan, np.nan)
        mv = _minvar(s, r, target_vol) if n else (np.nan, np.nan)
        rows.append({"regime": name, "forecaster": None if name == "historical" else label, "observations": int(n),
                     "correlation": r, "equity_vol": float(s[0]), "bond_vol": float(s[1]), "target_vol": target_vol,
                     "erc_equity": erc[0], "erc_bond": erc[1], "erc_gross": erc[0] + erc[1],
                     "minvar_equity": mv[0], "minvar_bond": mv[1]})
    out = pd.DataFrame(rows)
    out.attrs.update(equity=equity, bond=bond, risk_off_level=risk_off_level)
    return out


def _mean(rho: np.ndarray, sig: np.ndarray, on: np.ndarray) -> tuple[float, np.ndarray, int]:
    if not on.any():
        return np.nan, np.array([np.nan, np.nan]), 0
    return float(rho[on].mean()), sig[on].mean(axis=0), int(on.sum())
