"""Walk-forward validation of covariance forecasters, one grid task per forecast date, and the
champion-challenger decision.

At step ``s`` with forecast date ``d_{t-1}`` (row ``t - 1`` of the returns), every forecaster is fitted on
rows ``[t - train, t)`` only and forecasts the covariance of the next ``horizon`` days, rows
``[t, t + horizon)``; the step function never reads a row at or after ``t`` before the forecasts are made
(a test plants a spike after the forecast date and checks the forecasts do not move).  Steps are
``roll`` rows apart.

Losses per step and forecaster, all "lower is better"; with ``F`` the forecast and
``R = sum_{u in horizon} r_u r_u'`` the realised covariance of the horizon (zero-mean, the standard
realised covariance estimator):

* ``cov_error``: ``||F - R||_F``;
* ``corr_error``: ``||corr(F) - corr(R)||_F``;
* ``qlike``: ``ln det F + tr(F^-1 R)``, a loss whose ranking of forecasts is robust to the noise in
  ``R`` (Patton, "Volatility forecast comparison using imperfect volatility proxies", J. Econometrics
  160 (2011) 246-256; Laurent, Rombouts and Violante, J. Applied Econometrics 28 (2013) 934-957);
* ``gmv_variance``: ``w' R w``, the realised variance of the global minimum variance portfolio
  ``w = F^-1 1 / 1' F^-1 1`` built from the forecast (Engle and Colacito, "Testing and valuing dynamic
  correlations for asset allocation", JBES 24 (2006) 238-253); ``gmv_forecast`` is ``w' F w``, its
  forecast.

The champion-challenger table compares mean losses over the steps every forecaster completed: a
challenger replaces the champion only if its mean loss is lower by more than ``margin`` (relative).
It also gives the Diebold-Mariano statistic of the loss differences (Diebold and Mariano, "Comparing
predictive accuracy", JBES 13 (1995) 253-263) with a Newey-West variance (Bartlett kernel,
``ceil(horizon / roll) - 1`` lags, the overlap of consecutive evaluation windows) and its one-sided
p-value, for information: the decision rule is the margin the user set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from stressgrid.core import ConfigError, DataError

from ._forecast import CovarianceForecaster, ForecasterSpec, cov_to_corr, make_forecaster
from ._ml import align_features
from ._portfolio import PORTFOLIO_METHODS, gmv_weights, portfolio_weights
from ._tasks import run_tasks

__all__ = [
    "LOSSES",
    "WalkForwardTask",
    "WalkForwardPayload",
    "WalkForwardStep",
    "WalkForwardResult",
    "plan_walk_forward",
    "walk_forward_step",
    "run_walk_forward",
    "walk_forward",
    "champion_challenger",
]

#: the loss columns of the walk-forward table (all: lower is better)
LOSSES = ("cov_error", "corr_error", "qlike", "gmv_variance")


@dataclass(frozen=True)
class WalkForwardTask:
    """One walk-forward step: fit on rows ``[row - train, row)``, evaluate on ``[row, row + horizon)``."""

    task_id: int
    row: int


@dataclass(frozen=True)
class WalkForwardPayload:
    """What every step reads (put into the object store once).

    values : float ``[T, K]`` daily returns; dates : ``[T]`` datetime64; columns : ``K`` names;
    forecasters : ``(label, spec)`` pairs; train, horizon, roll : rows; methods : long-only portfolio
    methods whose weights each step computes (from the forecast over ``roll`` days, the holding
    period); keep_forecasts : keep each forecast matrix in the result; features : float ``[T, F]`` market
    features (rows aligned with ``values``, NaN where missing) or None, with ``feature_names``: a step
    hands a forecaster that uses features (``uses_features``) the rows of its training window only.
    """

    values: np.ndarray
    dates: np.ndarray
    columns: tuple[str, ...]
    forecasters: tuple[tuple[str, object], ...]
    train: int
    horizon: int
    roll: int
    methods: tuple[str, ...] = PORTFOLIO_METHODS
    keep_forecasts: bool = False
    features: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()


@dataclass
class WalkForwardStep:
    """A step's output: ``rows`` (one dict per forecaster), ``weights`` (``(label, method, w [K])``),
    ``forecasts`` (``{label: F [K, K]}`` when kept), ``seconds``."""

    task_id: int
    row: int
    rows: list[dict]
    weights: list[tuple[str, str, np.ndarray]]
    forecasts: dict[str, np.ndarray] | None
    seconds: float


@dataclass
class WalkForwardResult:
    """``errors``: one row per step and forecaster (date, start, end, the :data:`LOSSES`,
    ``gmv_forecast``, ``seconds``); ``weights``: long table (date, forecaster, method, asset, weight) of
    the portfolios built at each step; ``forecasts``: ``{(date, label): F}`` when kept."""

    errors: pd.DataFrame
    weights: pd.DataFrame
    forecasts: dict = field(default_factory=dict)


def plan_walk_forward(dates: Sequence, train: int, horizon: int, roll: int, start=None, end=None) -> list[WalkForwardTask]:
    """The steps over ``dates`` (the returns' index): first row ``t >= train`` with forecast date
    ``dates[t - 1] >= start``, every ``roll`` rows, while ``t + horizon <= T`` and the forecast date is
    on or before ``end``.

    Raises
    ------
    ConfigError
        If a setting is not a positive whole number or no step fits.
    """
    for name, v, lo in (("train_days", train, 20), ("horizon_days", horizon, 1), ("roll_days", roll, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ConfigError(f"walk_forward, field '{name}': expected a whole number >= {lo} (got {v!r})")
    idx = pd.DatetimeIndex(dates)
    T = len(idx)
    first = train
    if start is not None:
        # the forecast date is dates[t - 1]
        first = max(first, int(idx.searchsorted(pd.Timestamp(start), side="left")) + 1)
    last_date = pd.Timestamp(end) if end is not None else None
    rows = []
    t = first
    while t + horizon <= T:
        if last_date is not None and idx[t - 1] > last_date:
            break
        rows.append(t)
        t += roll
    if not rows:
        span = f"{idx[0].date()}..{idx[-1].date()}" if T else "empty"
        raise ConfigError(
            f"walk_forward: no forecast date fits: {T} days of returns ({span}) with train_days={train}, "
            f"horizon_days={horizon}, start={start}, end={None if end is None else pd.Timestamp(end).date()}; "
            f"need train_days + horizon_days <= {T} "
            f"within the dates"
        )
    return [WalkForwardTask(i, r) for i, r in enumerate(rows)]


def _realised(x: np.ndarray) -> np.ndarray:
    """Realised covariance ``sum_u r_u r_u'`` of the rows of ``x [h, K]``."""
    return x.T @ x


def _qlike(f: np.ndarray, r: np.ndarray) -> float:
    sign, logdet = np.linalg.slogdet(f)
    if sign <= 0:
        return float("nan")
    return float(logdet + np.trace(np.linalg.solve(f, r)))


def walk_forward_step(payload: WalkForwardPayload, task: WalkForwardTask) -> WalkForwardStep:
    """The grid worker function of one walk-forward step (see the module docstring).

    Linear algebra runs on one BLAS thread, as in a Ray worker (Ray sets ``OMP_NUM_THREADS=1``): the
    GARCH and DCC optimisers follow a different path when a multi-threaded BLAS sums in another order,
    and a step must give the same numbers in this process and on any worker."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _step(payload, task)


def _step(payload: WalkForwardPayload, task: WalkForwardTask) -> WalkForwardStep:
    t0 = time.perf_counter()
    t = task.row
    p = payload
    # the forecasters see the training window only: rows strictly before the first evaluated day
    window = pd.DataFrame(p.values[t - p.train:t], columns=list(p.columns))
    feats = None if p.features is None else pd.DataFrame(p.features[t - p.train:t], columns=list(p.feature_names))
    fitted: list[tuple[str, CovarianceForecaster, float]] = []
    for label, spec in p.forecasters:
        s0 = time.perf_counter()
        fc = make_forecaster(spec)
        fc = fc.fit(window, feats) if fc.uses_features else fc.fit(window)
        fitted.append((label, fc, time.perf_counter() - s0))
    forecasts = {label: fc.forecast(p.horizon) for label, fc, _ in fitted}
    holding = {label: (fc.forecast(p.roll) if p.roll != p.horizon else forecasts[label]) for label, fc, _ in fitted}
    weights = [(label, m, portfolio_weights(holding[label], m)) for label, _, _ in fitted for m in p.methods]

    # evaluation: the realised horizon, read only now
    realised = _realised(p.values[t:t + p.horizon])
    r_corr = cov_to_corr(realised)
    rows = []
    for label, fc, secs in fitted:
        f = forecasts[label]
        w = gmv_weights(f)
        rows.append({
            "date": pd.Timestamp(p.dates[t - 1]),
            "start": pd.Timestamp(p.dates[t]),
            "end": pd.Timestamp(p.dates[t + p.horizon - 1]),
            "forecaster": label,
            "cov_error": float(np.linalg.norm(f - realised)),
            "corr_error": float(np.linalg.norm(cov_to_corr(f) - r_corr)),
            "qlike": _qlike(f, realised),
            "gmv_variance": float(w @ realised @ w),
            "gmv_forecast": float(w @ f @ w),
            "seconds": secs,
        })
    return WalkForwardStep(task.task_id, t, rows, weights, forecasts if p.keep_forecasts else None,
                           time.perf_counter() - t0)


def _returns_frame(returns: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(returns, pd.DataFrame) or not isinstance(returns.index, pd.DatetimeIndex):
        raise DataError("walk_forward: returns must be a DataFrame of daily returns with a DatetimeIndex")
    if not returns.index.is_monotonic_increasing or returns.index.has_duplicates:
        raise DataError("walk_forward: the returns' dates must be sorted and unique")
    x = returns.to_numpy(dtype=float)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"walk_forward: returns column {returns.columns[c]!r} on {returns.index[r].date()}: {x[r, c]!r} is not "
            f"a finite number (drop or fill missing days first)"
        )
    return returns


def _labelled(forecasters) -> tuple[tuple[str, object], ...]:
    out = []
    for f in forecasters:
        if isinstance(f, CovarianceForecaster):
            label, spec = f.name or type(f).__name__, f
        else:
            spec = f if isinstance(f, ForecasterSpec) else ForecasterSpec.model_validate(f)
            label = spec.key
        make_forecaster(spec)  # checks settings before any task starts
        out.append((label, spec))
    labels = [l for l, _ in out]
    dup = sorted({l for l in labels if labels.count(l) > 1})
    if dup:
        raise ConfigError(f"forecasters: label {dup[0]!r} is used twice; give each entry its own 'label'")
    if not out:
        raise ConfigError("forecasters: give at least one forecaster")
    return tuple(out)


def run_walk_forward(
    returns: pd.DataFrame,
    forecasters: Sequence,
    train: int = 500,
    horizon: int = 20,
    roll: int = 20,
    start=None,
    end=None,
    executor=None,
    methods: Sequence[str] = PORTFOLIO_METHODS,
    keep_forecasts: bool = False,
    on_result: Callable[[WalkForwardStep], None] | None = None,
    features: pd.DataFrame | None = None,
) -> WalkForwardResult:
    """Walk-forward evaluation of ``forecasters`` on ``returns``.

    Parameters
    ----------
    returns : DataFrame ``[T, K]`` of daily returns (DatetimeIndex, no missing values)
    forecasters : names, mappings ``{name, label, settings...}``, :class:`ForecasterSpec` or forecaster
        instances
    train, horizon, roll : training window, forecast horizon and step, in rows (trading days)
    start, end : first and last forecast date (default: as early as ``train`` allows, as late as
        ``horizon`` allows)
    executor : None (steps run here, in order) or a grid executor (``grid.SerialExecutor`` /
        ``grid.RayExecutor``): each step is one task; the numbers do not depend on the executor
    methods : long-only portfolios to build at each step for the rebalancing backtest
    keep_forecasts : keep every forecast matrix (``result.forecasts``)
    features : market features ``[dates, F]`` (DatetimeIndex; NaN where missing), read on the returns'
        dates (a date they lack is NaN) by the forecasters that use them (``ml_gbm``, ``ml_lstm``), each
        step handing over the rows of its training window only; None: those forecasters use only
        features of the returns

    Returns
    -------
    :class:`WalkForwardResult`
    """
    returns = _returns_frame(returns)
    for m in methods:
        if m not in PORTFOLIO_METHODS + ("gmv",):
            raise ConfigError(f"backtest, field 'methods': unknown method {m!r}; expected {', '.join(PORTFOLIO_METHODS)}")
    specs = _labelled(forecasters)
    tasks = plan_walk_forward(returns.index, train, horizon, roll, start, end)
    uses = features is not None and any(make_forecaster(spec).uses_features for _, spec in specs)
    feats = align_features(features, returns.index) if uses else None
    payload = WalkForwardPayload(returns.to_numpy(dtype=float), returns.index.to_numpy(), tuple(map(str, returns.columns)),
                                 specs, int(train), int(horizon), int(roll), tuple(methods), keep_forecasts,
                                 None if feats is None else feats.to_numpy(dtype=float),
                                 () if feats is None else tuple(map(str, feats.columns)))
    dates = returns.index

    def what(task) -> str:
        return f"walk-forward step {task.task_id} (forecast date {dates[task.row - 1].date()})"

    steps = run_tasks(walk_forward_step, executor, payload, tasks, on_result, what)
    steps = sorted(steps, key=lambda s: s.row)
    errors = pd.DataFrame([r for s in steps for r in s.rows])
    cols = list(returns.columns)
    wrows = []
    for s in steps:
        d = pd.Timestamp(dates[s.row - 1])
        for label, m, w in s.weights:
            wrows += [{"date": d, "forecaster": label, "method": m, "asset": a, "weight": float(x)} for a, x in zip(cols, w)]
    weights = pd.DataFrame(wrows, columns=["date", "forecaster", "method", "asset", "weight"])
    forecasts = {}
    if keep_forecasts:
        for s in steps:
            d = pd.Timestamp(dates[s.row - 1])
            forecasts.update({(d, k): v for k, v in (s.forecasts or {}).items()})
    errors.attrs.update(train=int(train), horizon=int(horizon), roll=int(roll))
    return WalkForwardResult(errors, weights, forecasts)


def walk_forward(returns: pd.DataFrame, forecasters: Sequence, train: int = 500, horizon: int = 20, roll: int = 20,
                 start=None, end=None, executor=None) -> pd.DataFrame:
    """The walk-forward error table of :func:`run_walk_forward` (one row per step and forecaster)."""
    return run_walk_forward(returns, forecasters, train, horizon, roll, start, end, executor, methods=()).errors


def _newey_west_var(d: np.ndarray, lags: int) -> float:
    """Long-run variance of ``d`` (Newey and West 1987, Bartlett weights ``1 - l / (lags + 1)``)."""
    n = len(d)
    e = d - d.mean()
    v = float(e @ e) / n
    for l in range(1, min(lags, n - 1) + 1):
        v += 2.0 * (1.0 - l / (lags + 1.0)) * float(e[l:] @ e[:-l]) / n
    return v


def champion_challenger(results: pd.DataFrame, champion: str, margin: float = 0.05, metric: str = "gmv_variance",
                        lags: int | None = None) -> pd.DataFrame:
    """Champion-challenger table from a walk-forward error table.

    Parameters
    ----------
    results : the table of :func:`walk_forward` (``date``, ``forecaster``, loss columns)
    champion : label of the model in use
    margin : a challenger replaces the champion only if
        ``mean_loss(challenger) < (1 - margin) * mean_loss(champion)``; among several, the one with the
        lowest mean loss is promoted
    metric : the loss compared (one of :data:`LOSSES`; lower is better)
    lags : Newey-West lags of the Diebold-Mariano variance (default ``ceil(horizon / roll) - 1`` from the
        table's ``attrs``, else 0)

    Returns
    -------
    DataFrame, one row per forecaster (champion first): ``forecaster``, ``role``, ``metric``,
    ``steps``, ``mean_loss``, ``improvement`` (``1 - mean / mean_champion``), ``win_rate`` (share of steps
    with a lower loss than the champion), ``dm_stat``, ``dm_pvalue`` (one-sided, small when the
    challenger is better), ``margin``, ``decision`` (``retain`` / ``replaced`` for the champion,
    ``promote`` / ``reject`` for challengers) and ``next_champion``.
    """
    if metric not in LOSSES:
        raise ConfigError(f"champion-challenger, field 'metric': {metric!r} is not one of {', '.join(LOSSES)}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0.0 <= margin < 1.0:
        raise ConfigError(f"champion-challenger, field 'margin': expected a relative margin in [0, 1) (got {margin!r})")
    labels = list(dict.fromkeys(results["forecaster"]))
    if champion not in labels:
        raise ConfigError(
            f"champion-challenger, field 'champion': {champion!r} is not among the forecasters evaluated "
            f"({', '.join(labels)})"
        )
    wide = results.pivot_table(index="date", columns="forecaster", values=metric, aggfunc="first")
    wide = wide[labels].dropna(how="any")  # the steps every forecaster completed
    if wide.empty:
        raise DataError(f"champion-challenger: no step has a finite {metric} for every forecaster")
    if lags is None:
        h, r = results.attrs.get("horizon"), results.attrs.get("roll")
        lags = max(math.ceil(h / r) - 1, 0) if h and r else 0
    base = wide[champion].to_numpy()
    base_mean = float(base.mean())
    rows = []
    for label in labels:
        loss = wide[label].to_numpy()
        m = float(loss.mean())
        row = {"forecaster": label, "role": "champion" if label == champion else "challenger", "metric": metric,
               "steps": len(loss), "mean_loss": m,
               "improvement": 1.0 - m / base_mean if base_mean != 0 else float("nan"),
               "win_rate": float(np.mean(loss < base)) if label != champion else float("nan"),
               "dm_stat": float("nan"), "dm_pvalue": float("nan"), "margin": float(margin)}
        if label != champion:
            d = loss - base
            v = _newey_west_var(d, lags)
            if v > 0:
                row["dm_stat"] = float(d.mean() / math.sqrt(v / len(d)))
                row["dm_pvalue"] = float(norm.cdf(row["dm_stat"]))
        rows.append(row)
    out = pd.DataFrame(rows)
    winners = out[(out.role == "challenger") & (out.mean_loss < (1.0 - margin) * base_mean)]
    nxt = champion if winners.empty else str(winners.sort_values("mean_loss").iloc[0]["forecaster"])
    out["decision"] = [
        ("retain" if nxt == champion else "replaced") if r.role == "champion" else ("promote" if r.forecaster == nxt else "reject")
        for r in out.itertuples()
    ]
    out["next_champion"] = nxt
    order = [champion] + [l for l in labels if l != champion]
    return out.set_index("forecaster").loc[order].reset_index()
