"""Learned correlation forecasters: gradient-boosted trees (``ml_gbm``) and a small LSTM (``ml_lstm``).

Both sit behind the :class:`CovarianceForecaster` interface and are trained inside :meth:`fit`, on the
training window alone (in a walk-forward, inside each step's grid task).  They predict the next
``target_days``' correlation of every pair of assets from what is known on the forecast date.

Features, known on day ``s`` (row ``s`` of the window, every quantity from rows ``<= s``)
----------------------------------------------------------------------------------------
Of the date (shared by every pair):

* ``avg_corr_20``, ``avg_corr_60``: the mean pairwise correlation of the returns over the last 20 and
  60 days, and ``avg_corr_20_chg``, its change over :data:`CHANGE_DAYS` days;
* ``dispersion_20``, ``dispersion_60``: the cross-sectional standard deviation of the assets' 20-day
  (60-day) returns, each divided by its own realised volatility over those days (0 when the assets move
  as one, about 1 when they are independent), and ``dispersion_20_chg``;
* ``vol_ratio``: the mean over assets of ``ln(sd_20 / sd_60)``, realised volatility now against its
  recent level;
* the market features given to :meth:`~CovarianceForecaster.fit` (:func:`market_features`: implied
  vol and its term slope, the yield-curve slope, credit spreads), each with its change over
  :data:`CHANGE_DAYS` days (``<name>:chg``).

Of the pair ``(i, j)``: ``z_20``, ``z_60``, ``z_window``, its own Fisher-z correlation over the last 20
and 60 days and since the window's first row.

Correlations are the zero-mean realised ones, ``sum r_i r_j / sqrt(sum r_i^2 sum r_j^2)``, as the
walk-forward evaluates against.

Target and training samples
---------------------------
The target of day ``s`` and pair ``(i, j)`` is the Fisher-z ``arctanh(rho)`` [F15] of the realised
correlation over the next ``target_days`` rows ``(s, s + target_days]``; only days whose target lies
inside the window are samples.  Samples are taken every ``stride`` days, counted back from the last
day with a target, starting once the 60-day features and their 20-day changes exist (row 59 of the
window; ``ml_lstm`` needs ``sequence_days - 1`` more), at least :data:`MIN_TRAIN_DATES` of them.  One
model serves every pair (each pair a row with its own ``z_*``); the prediction is made at the window's
last row.

From a prediction to a covariance
---------------------------------
The predicted ``z`` of each pair gives ``rho = tanh(z)``; the matrix of those is repaired to the nearest
correlation matrix [H02] (:func:`scenarios.nearest_correlation`) and, if its smallest eigenvalue is
below a floor, blended with the identity just enough to lift it there (the blend keeps the unit
diagonal).  The floor is the smallest eigenvalue of the window's own correlation, capped at
:data:`EIGENVALUE_FLOOR_CAP` and at least :data:`MIN_EIGENVALUE`: pairs predicted one by one need not
agree, and the near-zero eigenvalues the repair would leave are directions in which a minimum-variance
portfolio would load up on a hedge the data do not show.  Volatilities are the zero-mean EWMA of the
window [RM96] (decay ``lam``), so ``covariance_ = D R D`` and ``forecast(h) = h covariance_``.

Determinism
-----------
Everything is seeded: the trees by ``seed`` (scikit-learn's ``random_state``; no early stopping, no
subsampling at these sizes), the LSTM by the JAX key ``PRNGKey(seed)`` and a fixed number of full-batch
epochs, with its gradient summed in a fixed order (``kernels.fit_lstm``).  The walk-forward step runs the
trees on one thread; the numbers are the same in every process set up alike (tested: a serial run and
Ray workers).

References
----------
.. [F15] R. A. Fisher, "Frequency distribution of the values of the correlation coefficient in samples
   from an indefinitely large population", Biometrika 10 (1915) 507-521.
.. [H02] N. J. Higham, "Computing the nearest correlation matrix - a problem from finance", IMA Journal
   of Numerical Analysis 22 (2002) 329-343.
.. [RM96] J.P. Morgan/Reuters, "RiskMetrics - Technical Document", 4th ed. (1996), section 5.2.1.
.. [K17] G. Ke et al., "LightGBM: a highly efficient gradient boosting decision tree", NeurIPS (2017)
   (the histogram gradient boosting of scikit-learn's ``HistGradientBoostingRegressor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, DataError, History
from stressgrid.scenarios import nearest_correlation

from ._forecast import CovarianceForecaster, ewma_covariance

__all__ = [
    "FEATURE_WINDOWS",
    "CHANGE_DAYS",
    "MAX_FILL_DAYS",
    "MIN_EIGENVALUE",
    "EIGENVALUE_FLOOR_CAP",
    "MIN_TRAIN_DATES",
    "market_features",
    "align_features",
    "GBMCorrelation",
    "LSTMCorrelation",
]

#: trailing windows (rows) of the realised correlation and dispersion features
FEATURE_WINDOWS = (20, 60)
#: rows over which a feature's change is taken
CHANGE_DAYS = 20
#: a market level is carried forward over at most this many missing rows of the history
MAX_FILL_DAYS = 5
#: smallest eigenvalue of a predicted correlation matrix: the window's own correlation's smallest
#: eigenvalue, capped at EIGENVALUE_FLOOR_CAP, and at least MIN_EIGENVALUE
MIN_EIGENVALUE = 1e-4
EIGENVALUE_FLOOR_CAP = 0.05
#: fewest training dates (each with a target inside the window) a learned forecaster is fitted on
MIN_TRAIN_DATES = 8
#: first row of a window whose features all exist
_FIRST = max(FEATURE_WINDOWS) - 1
_RHO_CLIP = 0.999


def market_features(history: History, index, max_fill_days: int = MAX_FILL_DAYS) -> pd.DataFrame:
    """Market levels a learned forecaster reads, on the dates ``index`` (the returns' dates).

    Columns, each where the history has the factors: ``VOL.SPX.ATM`` (S&P 500 implied vol, decimal),
    ``VOL.SPX.TERM`` (its term slope), ``IR.USD.10Y-2Y`` (the Treasury zero curve's 10y minus 2y, decimal)
    and every credit spread ``CR.*``.  A level is the history's on that date, carried forward over at
    most ``max_fill_days`` rows of the history where it is missing; NaN beyond that and where the history
    has none.  A row uses history rows up to its own date only.

    Returns
    -------
    DataFrame ``[len(index), F]`` (``F`` may be 0), indexed by ``index``.
    """
    idx = pd.DatetimeIndex(index)
    lv = history.levels
    if len(idx):
        lv = lv.loc[:idx[-1]]
    cols: dict[str, pd.Series] = {}
    for name in ("VOL.SPX.ATM", "VOL.SPX.TERM"):
        if name in lv.columns:
            cols[name] = lv[name]
    if "IR.USD.10Y" in lv.columns and "IR.USD.2Y" in lv.columns:
        cols["IR.USD.10Y-2Y"] = lv["IR.USD.10Y"] - lv["IR.USD.2Y"]
    for name in sorted(c for c in lv.columns if str(c).startswith("CR.")):
        cols[name] = lv[name]
    frame = pd.DataFrame(cols, index=lv.index).astype(float)
    frame = frame.ffill(limit=max_fill_days) if max_fill_days > 0 else frame
    return frame.reindex(idx)



def align_features(features: pd.DataFrame, index) -> pd.DataFrame:
    """``features`` (DatetimeIndex, numbers, NaN where missing) on the dates ``index``: a date they lack
    is a row of NaN.

    Raises
    ------
    DataError
        If ``features`` is not such a table, has a date twice or an infinite value (named).
    """
    if not isinstance(features, pd.DataFrame) or not isinstance(features.index, pd.DatetimeIndex):
        raise DataError("features: expected a DataFrame of market features with a DatetimeIndex")
    if features.index.has_duplicates:
        d = features.index[features.index.duplicated()][0]
        raise DataError(f"features: the date {d.date()} appears twice")
    try:
        out = features.reindex(pd.DatetimeIndex(index)).astype(float)
    except (TypeError, ValueError):
        raise DataError("features: expected numbers (NaN where missing) in every column") from None
    inf = np.isinf(out.to_numpy())
    if inf.any():
        r, c = np.argwhere(inf)[0]
        raise DataError(f"features: column {out.columns[c]!r} on {out.index[r].date()}: {out.iat[r, c]!r} is not "
                        "a finite number (NaN marks a missing value)")
    return out

@dataclass
class _Design:
    """The samples of one window: features per day, per pair, targets, and the training days."""

    common: np.ndarray  # [T, Fc] features of the day (NaN where not defined yet)
    names: list[str]  # Fc names
    pair: np.ndarray  # [T, P, 3] the pair's Fisher z over FEATURE_WINDOWS and since the window's start
    target: np.ndarray  # [T, P] Fisher z over (s, s + h]; NaN where s + h is past the window
    days: np.ndarray  # training days s, ascending
    iu: tuple[np.ndarray, np.ndarray]  # pair (i, j), i < j


def _window_sums(c: np.ndarray, w: int) -> np.ndarray:
    """``sum`` over rows ``(s - w, s]`` of the cumulative sums ``c`` (with a leading zero row): row ``s``
    of the result for ``s >= w - 1``, NaN before."""
    T = len(c) - 1
    out = np.full((T,) + c.shape[1:], np.nan)
    if T >= w:
        out[w - 1:] = c[w:] - c[:T - w + 1]
    return out


def _corr_of(s: np.ndarray) -> np.ndarray:
    """Correlations ``[..., K, K]`` from sums of outer products (0 where a variance is 0)."""
    d = np.sqrt(np.clip(np.einsum("...ii->...i", s), 0.0, None))
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    return s * inv[..., :, None] * inv[..., None, :]


def _corr_matrix(rho: np.ndarray, iu, K: int) -> np.ndarray:
    """The symmetric ``[K, K]`` matrix with unit diagonal and ``rho [P]`` at the pairs ``iu``."""
    r = np.eye(K)
    r[iu] = rho
    r[(iu[1], iu[0])] = rho
    return r


def _fisher(rho: np.ndarray) -> np.ndarray:
    return np.arctanh(np.clip(rho, -_RHO_CLIP, _RHO_CLIP))


def _lagged_change(a: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(a, np.nan)
    out[lag:] = a[lag:] - a[:-lag]
    return out


def _design(x: np.ndarray, market: Optional[np.ndarray], market_names: list[str], h: int, stride: int,
            first: int, who: str) -> _Design:
    T, K = x.shape
    if K < 2:
        raise DataError(f"{who} forecaster: needs at least 2 series to forecast a correlation (got {K})")
    iu = np.triu_indices(K, 1)
    outer = x[:, :, None] * x[:, None, :]
    c_outer = np.concatenate([np.zeros((1, K, K)), np.cumsum(outer, axis=0)])
    c_sum = np.concatenate([np.zeros((1, K)), np.cumsum(x, axis=0)])
    common, names, pair = [], [], []
    sd = {}
    for w in FEATURE_WINDOWS:
        s = _window_sums(c_outer, w)
        corr = _corr_of(s)[:, iu[0], iu[1]]  # [T, P]
        pair.append(_fisher(corr))
        avg = corr.mean(axis=1)
        var = np.einsum("tii->ti", s)  # [T, K]
        sd[w] = np.sqrt(np.clip(var, 0.0, None))
        move = _window_sums(c_sum, w)  # w-day returns [T, K]
        std_move = np.where(sd[w] > 0, move / np.where(sd[w] > 0, sd[w], 1.0), 0.0)
        disp = std_move.std(axis=1)
        common += [avg, disp]
        names += [f"avg_corr_{w}", f"dispersion_{w}"]
        if w == FEATURE_WINDOWS[0]:
            common += [_lagged_change(avg, CHANGE_DAYS), _lagged_change(disp, CHANGE_DAYS)]
            names += [f"avg_corr_{w}_chg", f"dispersion_{w}_chg"]
    w0, w1 = FEATURE_WINDOWS
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log((sd[w0] / np.sqrt(w0)) / (sd[w1] / np.sqrt(w1)))
    ratio = np.where(np.isfinite(ratio), ratio, 0.0).mean(axis=1)
    ratio[np.isnan(sd[w1]).any(axis=1) | np.isnan(sd[w0]).any(axis=1)] = np.nan
    common.append(ratio)
    names.append("vol_ratio")
    if market is not None:
        for f, name in enumerate(market_names):
            common += [market[:, f], _lagged_change(market[:, f], CHANGE_DAYS)]
            names += [name, f"{name}:chg"]
    target = np.full((T, len(iu[0])), np.nan)
    if T > h:
        fwd = c_outer[1 + h:] - c_outer[1:T + 1 - h]  # rows (s, s + h] for s = 0 .. T-1-h
        target[:T - h] = _fisher(_corr_of(fwd)[:, iu[0], iu[1]])
    last = T - 1 - h
    days = np.arange(last, first - 1, -stride)[::-1] if last >= first else np.zeros(0, dtype=int)
    if len(days) < MIN_TRAIN_DATES:
        raise DataError(
            f"{who} forecaster: a window of {T} days gives {len(days)} training date(s) with target_days={h} "
            f"and stride={stride}; need at least {MIN_TRAIN_DATES} (a training window of at least "
            f"{first + h + 1 + (MIN_TRAIN_DATES - 1) * stride} days, or a shorter target_days or stride)"
        )
    pair.append(_fisher(_corr_of(c_outer[1:])[:, iu[0], iu[1]]))  # z_window: rows [0, s]
    return _Design(np.column_stack(common), names, np.stack(pair, axis=2), target, days, iu)


def _as_market(features, T: int) -> tuple[Optional[np.ndarray], list[str]]:
    if features is None:
        return None, []
    if isinstance(features, pd.DataFrame):
        names = [str(c) for c in features.columns]
        try:
            a = features.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise DataError("features: expected numbers (NaN where missing) in every column") from None
    else:
        a = np.asarray(features, dtype=float)
        if a.ndim == 1:
            a = a[:, None]
        names = [f"feature_{i}" for i in range(a.shape[1])] if a.ndim == 2 else []
    if a.ndim != 2 or len(a) != T:
        raise DataError(f"features: expected {T} rows aligned with the returns' rows, got shape {a.shape}")
    inf = np.isinf(a)
    if inf.any():
        r, c = np.argwhere(inf)[0]
        raise DataError(f"features: column {names[c]!r}, row {r + 1}: {a[r, c]!r} is not a finite number (NaN marks a missing value)")
    return a, names


def _check_int(who: str, field: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ConfigError(f"{who} forecaster, field '{field}': expected a whole number >= {lo} (got {v!r})")
    return int(v)


def _check_float(who: str, field: str, v, lo: float, hi: float, lo_open: bool = True, hi_open: bool = True) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.floating)) and np.isfinite(v)
    if ok:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{who} forecaster, field '{field}': expected a number in {span} (got {v!r})")
    return float(v)


class _LearnedCorrelation(CovarianceForecaster):
    """Shared part of the learned forecasters: samples, the covariance from predicted pair z (module docstring)."""

    uses_features = True
    #: rows of history a sample needs before its day beyond the features' own (the LSTM's sequence)
    _extra_rows = 0

    def _common_settings(self, target_days, stride, lam, seed) -> None:
        who = self.name
        self.target_days = _check_int(who, "target_days", target_days, 1)
        self.stride = _check_int(who, "stride", stride, 1)
        self.lam = _check_float(who, "lam", lam, 0.0, 1.0)
        self.seed = _check_int(who, "seed", seed, 0)

    def _fit(self, x: np.ndarray, features=None) -> np.ndarray:
        market, mnames = _as_market(features, len(x))
        d = _design(x, market, mnames, self.target_days, self.stride, _FIRST + self._extra_rows, self.name)
        z = self._predict_z(d)
        K = x.shape[1]
        corr, dist, _ = nearest_correlation(_corr_matrix(np.tanh(z), d.iu, K))
        lo = float(np.linalg.eigvalsh(corr).min())
        window = float(np.linalg.eigvalsh(_corr_matrix(np.tanh(d.pair[-1, :, 2]), d.iu, K)).min())
        floor = max(MIN_EIGENVALUE, min(EIGENVALUE_FLOOR_CAP, window))
        blend = 0.0
        if lo < floor:
            blend = (floor - lo) / (1.0 - lo)
            corr = (1.0 - blend) * corr + blend * np.eye(K)
        sd = np.sqrt(np.diag(ewma_covariance(x, self.lam)))
        self.details_.update(train_dates=int(len(d.days)), samples=int(len(d.days) * len(d.iu[0])),
                             repair_distance=float(dist), eigenvalue_floor=floor, identity_blend=float(blend))
        return corr * sd[:, None] * sd[None, :]

    def _predict_z(self, d: _Design) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class GBMCorrelation(_LearnedCorrelation):
    """Pairwise correlation by gradient-boosted trees: scikit-learn's ``HistGradientBoostingRegressor``
    [K17] on the module's features, one model over all pairs, trained on the window at each fit.

    Parameters
    ----------
    target_days : rows of the realised correlation each sample predicts (set it to the walk-forward's
        ``horizon_days``)
    stride : rows between training dates
    lam : EWMA decay of the volatilities
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization : the regressor's
        (boosting rounds, shrinkage, leaves per tree, fewest samples per leaf, L2 penalty on leaf values);
        no early stopping
    seed : the regressor's ``random_state``

    Market feature columns with no value in the window are left out; other missing values are the
    trees' own (scikit-learn sends NaN down the side learned for it).
    """

    name = "ml_gbm"

    def __init__(self, target_days: int = 20, stride: int = 5, lam: float = 0.94, max_iter: int = 100,
                 learning_rate: float = 0.05, max_leaf_nodes: int = 15, min_samples_leaf: int = 20,
                 l2_regularization: float = 0.0, seed: int = 0):
        self._common_settings(target_days, stride, lam, seed)
        who = self.name
        self.max_iter = _check_int(who, "max_iter", max_iter, 1)
        self.learning_rate = _check_float(who, "learning_rate", learning_rate, 0.0, 1.0, hi_open=False)
        self.max_leaf_nodes = _check_int(who, "max_leaf_nodes", max_leaf_nodes, 2)
        self.min_samples_leaf = _check_int(who, "min_samples_leaf", min_samples_leaf, 1)
        self.l2_regularization = _check_float(who, "l2_regularization", l2_regularization, 0.0, np.inf, lo_open=False)

    def _predict_z(self, d: _Design) -> np.ndarray:
        from sklearn.ensemble import HistGradientBoostingRegressor

        P = len(d.iu[0])
        T = len(d.common)

        def rows(days):
            n = len(days)
            return np.column_stack([np.repeat(d.common[days], P, axis=0), d.pair[days].reshape(n * P, -1)])

        x_train = rows(d.days)
        y_train = d.target[d.days].reshape(-1)
        x_now = rows(np.array([T - 1]))
        keep = ~np.isnan(x_train).all(axis=0)
        names = d.names + ["z_20", "z_60", "z_window"]
        model = HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=self.seed)
        model.fit(x_train[:, keep], y_train)
        self.details_["features"] = [n for n, k in zip(names, keep) if k]
        return model.predict(x_now[:, keep])


class LSTMCorrelation(_LearnedCorrelation):
    """Pairwise correlation by a small LSTM in JAX (``kernels.fit_lstm``): the sequence of the last
    ``sequence_days`` days' date features through an LSTM of ``hidden`` units; its last state, the last
    day's date features and the pair's ``z_20``, ``z_60``, ``z_window`` through one hidden layer of
    ``hidden`` units (with a linear term in the last day's and the pair's features beside it) to the
    pair's next-period z; trained full batch with AdamW for ``epochs``.

    Parameters
    ----------
    target_days, stride, lam : as :class:`GBMCorrelation`
    sequence_days : days of date features in each input sequence
    hidden : LSTM and head units
    epochs : full-batch Adam steps
    learning_rate : Adam's step size
    weight_decay : decoupled weight decay (AdamW)
    seed : the JAX key of the initial weights

    Inputs and targets are standardised by their means and standard deviations over the training
    samples.  Market feature columns with a missing value anywhere in the rows the sequences read are
    left out (the recurrence has no missing-value path).  JAX is imported on the first fit.
    """

    name = "ml_lstm"

    def __init__(self, target_days: int = 20, stride: int = 5, lam: float = 0.94, sequence_days: int = 20,
                 hidden: int = 16, epochs: int = 50, learning_rate: float = 0.01, weight_decay: float = 1e-4,
                 seed: int = 0):
        self._common_settings(target_days, stride, lam, seed)
        who = self.name
        self.sequence_days = _check_int(who, "sequence_days", sequence_days, 1)
        self.hidden = _check_int(who, "hidden", hidden, 1)
        self.epochs = _check_int(who, "epochs", epochs, 1)
        self.learning_rate = _check_float(who, "learning_rate", learning_rate, 0.0, 1.0, hi_open=False)
        self.weight_decay = _check_float(who, "weight_decay", weight_decay, 0.0, 1.0, lo_open=False, hi_open=False)
        self._extra_rows = self.sequence_days - 1

    def _predict_z(self, d: _Design) -> np.ndarray:
        from stressgrid.kernels import fit_lstm, lstm_predict

        L = self.sequence_days
        T = len(d.common)
        P = len(d.iu[0])
        days = np.r_[d.days, T - 1]  # training days, then the forecast date
        lo = int(days[0]) - L + 1
        keep = ~np.isnan(d.common[lo:]).any(axis=0)
        common = d.common[:, keep]
        seq = np.stack([common[s - L + 1:s + 1] for s in days])  # [B, L, F]
        mu = common[d.days].mean(axis=0)
        sig = common[d.days].std(axis=0)
        sig = np.where(sig > 0, sig, 1.0)
        seq = (seq - mu) / sig
        pair = d.pair[days]  # [B, P, 3]
        pm = pair[:-1].reshape(-1, pair.shape[2]).mean(axis=0)
        ps = pair[:-1].reshape(-1, pair.shape[2]).std(axis=0)
        pair = (pair - pm) / np.where(ps > 0, ps, 1.0)
        y = d.target[d.days]  # [B - 1, P]
        ym, ys = float(y.mean()), float(y.std()) or 1.0
        params, loss = fit_lstm(seq[:-1], pair[:-1], (y - ym) / ys, hidden=self.hidden, head=self.hidden,
                                epochs=self.epochs, learning_rate=self.learning_rate,
                                weight_decay=self.weight_decay, seed=self.seed)
        self.details_.update(features=[nm for nm, k in zip(d.names, keep) if k] + ["z_20", "z_60", "z_window"],
                             train_loss=loss)
        now = lstm_predict(params, seq[-1:], pair[-1:])[0]
        return now * ys + ym
