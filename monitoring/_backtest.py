"""Rebalancing backtest of the portfolios each forecaster's covariance builds, net of trading costs.

At every walk-forward step the portfolio is rebalanced to the step's weights (computed from data up to
the forecast date) and held, buy-and-hold, until the next step: within a holding period the asset
values drift with their returns, so the daily portfolio return is
``V_d / V_{d-1} - 1`` with ``V_d = sum_i w_i prod_{u <= d} (1 + r_{u,i})``.  At a rebalance the trade
is the new weight minus the drifted one, ``dw = w_new - w_drift``; it costs ``cost_fn(dw)`` (a fraction
of NAV, taken off the value at the start of the holding period).  The backtest starts invested in the
first step's portfolio (the initial build is neither a trade nor a cost).

Reported per forecaster and method (daily returns ``r``, benchmark returns ``r_b``, 252 days a year;
returns are not in excess of cash):

* ``ann_return`` ``252 mean(r)``; ``ann_vol`` ``sqrt(252) sd(r)``; ``sharpe`` their ratio (Sharpe 1966,
  without a risk-free rate);
* ``max_drawdown``: ``max_t (1 - V_t / max_{u <= t} V_u)`` of the net value path;
* ``turnover``: ``sum |dw|_1`` per year (two-way; 2.0 = the whole book replaced once a year);
* ``costs``: trading costs per year, fraction of NAV;
* ``information_ratio``: ``sqrt(252) mean(r - r_b) / sd(r - r_b)`` against the benchmark forecaster
  with the same method (Grinold and Kahn, "Active Portfolio Management", 2nd ed. (2000), ch. 5);
  ``tracking_error`` ``sqrt(252) sd(r - r_b)``; NaN for the benchmark itself.

Trading costs come from a ``cost_fn(trade [K]) -> fraction of NAV`` callable; the default,
:func:`proportional_costs`, charges a fixed number of basis points per unit of weight traded (the
liquidity model's cost function replaces it in a grid run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, DataError

__all__ = ["CostFn", "proportional_costs", "BacktestResult", "rebalance_backtest", "performance"]

CostFn = Callable[[np.ndarray], float]

#: trading days per year
YEAR = 252


def proportional_costs(bps: float | Mapping[str, float] | Sequence[float] = 5.0,
                       assets: Sequence[str] | None = None) -> CostFn:
    """A cost function charging ``bps`` basis points of NAV per unit of weight traded:
    ``cost(dw) = sum_i |dw_i| bps_i / 1e4``.

    ``bps``: one number for every asset, a sequence ``[K]``, or a mapping ``{asset: bps}`` (with
    ``assets`` giving the order; a ``default`` key covers the rest).
    """
    if isinstance(bps, Mapping):
        if assets is None:
            raise ConfigError("cost_bps: a mapping of basis points per asset needs the asset order")
        d = float(bps.get("default", 0.0))
        unknown = sorted(set(bps) - set(assets) - {"default"})
        if unknown:
            raise ConfigError(f"backtest, field 'cost_bps': {unknown[0]!r} is not one of the assets {', '.join(assets)}")
        rate = np.array([float(bps.get(a, d)) for a in assets])
    else:
        rate = np.asarray(bps, dtype=float)
    if np.any(~np.isfinite(rate)) or np.any(rate < 0):
        raise ConfigError(f"backtest, field 'cost_bps': expected non-negative basis points (got {bps!r})")
    rate = rate / 1e4

    def cost(trade: np.ndarray) -> float:
        return float(np.sum(np.abs(trade) * rate))

    return cost


@dataclass
class BacktestResult:
    """``summary``: one row per forecaster and method (module docstring); ``returns``: daily net
    returns, one column per ``forecaster/method``; ``values``: the net value paths (start 1)."""

    summary: pd.DataFrame
    returns: pd.DataFrame
    values: pd.DataFrame


def _simulate(r: np.ndarray, starts: np.ndarray, w: np.ndarray, cost_fn: CostFn) -> tuple[np.ndarray, float, float]:
    """Daily net returns over rows ``[starts[0], end)`` of ``r``, total two-way turnover and total costs."""
    T = len(r)
    out = []
    turnover = costs = 0.0
    drift = None
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else T
        target = w[i]
        c = 0.0
        if drift is not None:
            trade = target - drift
            turnover += float(np.abs(trade).sum())
            c = float(cost_fn(trade))
            if not np.isfinite(c) or c < 0:
                raise DataError(f"cost_fn: returned {c!r} for a trade; expected a non-negative fraction of NAV")
            costs += c
        growth = np.cumprod(1.0 + r[s:e], axis=0) * target  # asset values, per unit start value
        v = growth.sum(axis=1)
        prev = np.concatenate([[1.0], v[:-1]])
        daily = v / prev - 1.0
        daily[0] = (1.0 - c) * v[0] - 1.0
        out.append(daily)
        drift = growth[-1] / v[-1]
    return np.concatenate(out), turnover, costs


def performance(daily: np.ndarray, benchmark: np.ndarray | None = None) -> dict:
    """Annualised statistics of daily returns (module docstring)."""
    daily = np.asarray(daily, dtype=float)
    sd = daily.std(ddof=1) if len(daily) > 1 else float("nan")
    value = np.cumprod(1.0 + daily)
    peak = np.maximum.accumulate(np.concatenate([[1.0], value]))[1:]
    out = {
        "ann_return": YEAR * float(daily.mean()),
        "ann_vol": float(np.sqrt(YEAR) * sd),
        "sharpe": float(np.sqrt(YEAR) * daily.mean() / sd) if sd > 0 else float("nan"),
        "max_drawdown": float(np.max(1.0 - value / peak)) if len(value) else float("nan"),
        "information_ratio": float("nan"),
        "tracking_error": float("nan"),
    }
    if benchmark is not None:
        a = daily - np.asarray(benchmark, dtype=float)
        te = a.std(ddof=1) if len(a) > 1 else 0.0
        out["tracking_error"] = float(np.sqrt(YEAR) * te)
        out["information_ratio"] = float(np.sqrt(YEAR) * a.mean() / te) if te > 1e-15 else float("nan")
    return out


def rebalance_backtest(returns: pd.DataFrame, weights: pd.DataFrame, cost_fn: CostFn | None = None,
                       benchmark: str = "sample") -> BacktestResult:
    """Backtest every (forecaster, method) portfolio of a weights table.

    Parameters
    ----------
    returns : DataFrame ``[T, K]`` of daily simple returns (the walk-forward's returns)
    weights : long table ``date, forecaster, method, asset, weight`` (``WalkForwardResult.weights``):
        the portfolio chosen on each forecast date, held from the next row of ``returns``
    cost_fn : ``cost_fn(trade [K]) -> fraction of NAV`` (default :func:`proportional_costs` at 5 bp)
    benchmark : forecaster label the information ratio is measured against (same method)

    Returns
    -------
    :class:`BacktestResult`
    """
    if weights.empty:
        raise DataError("rebalance backtest: the weights table is empty (run the walk-forward with methods)")
    cols = list(returns.columns)
    cost_fn = cost_fn or proportional_costs(5.0, cols)
    labels = list(dict.fromkeys(weights["forecaster"]))
    if benchmark not in labels:
        raise ConfigError(
            f"backtest, field 'benchmark': {benchmark!r} is not among the forecasters ({', '.join(labels)}); "
            f"add it to 'forecasters'"
        )
    r = returns.to_numpy(dtype=float)
    idx = returns.index
    series: dict[tuple[str, str], np.ndarray] = {}
    extra: dict[tuple[str, str], tuple[float, float]] = {}
    dates = None
    for (label, method), g in weights.groupby(["forecaster", "method"], sort=False):
        w = g.pivot_table(index="date", columns="asset", values="weight", aggfunc="first").reindex(columns=cols)
        if w.isna().any().any():
            raise DataError(f"rebalance backtest: weights of {label}/{method} miss an asset on some date")
        starts = idx.searchsorted(w.index, side="right")  # held from the row after the forecast date
        if np.any(starts >= len(idx)):
            raise DataError(f"rebalance backtest: {label}/{method} has a forecast date on the last day of the returns")
        daily, turnover, costs = _simulate(r, starts, w.to_numpy(), cost_fn)
        series[(label, method)] = daily
        extra[(label, method)] = (turnover, costs)
        dates = idx[starts[0]:]
    years = len(dates) / YEAR
    rows = []
    for (label, method), daily in series.items():
        bench = series.get((benchmark, method))
        perf = performance(daily, bench if label != benchmark and bench is not None else None)
        turnover, costs = extra[(label, method)]
        rows.append({"forecaster": label, "method": method, "start": dates[0], "end": dates[-1], "days": len(daily),
                     **{k: perf[k] for k in ("ann_return", "ann_vol", "sharpe", "max_drawdown")},
                     "turnover": turnover / years, "costs": costs / years,
                     "information_ratio": perf["information_ratio"], "tracking_error": perf["tracking_error"],
                     "benchmark": benchmark})
    rets = pd.DataFrame({f"{l}/{m}": v for (l, m), v in series.items()}, index=dates)
    return BacktestResult(pd.DataFrame(rows), rets, (1.0 + rets).cumprod())
