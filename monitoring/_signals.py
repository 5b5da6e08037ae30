"""Regime signals computed daily from the factor history, each with a threshold.

Every signal is a daily series computed from data up to its date only; :func:`evaluate_signals` reads
it on the as-of date (its last observation on or before it, if not older than ``max_stale_days``) and
says whether it fired.  Daily moves follow the factor grammar: log-returns for prices, differences for
yields, spreads and vols.

=================  ===========================================================================  ========
signal             value                                                                        fires
=================  ===========================================================================  ========
``avg_corr``       mean pairwise correlation of the basket's daily moves over ``window`` days   above
``avg_corr_jump``  ``avg_corr`` minus its value ``days`` trading days earlier                    above
``dispersion``     share of the cross-sectional dispersion in the vol-standardised basket moves  below
                   over ``window`` days, relative to its median over the ``baseline`` days
                   before
``vol_of_vol``     sd over ``window`` days of daily changes of log vol, relative to its median   above
                   over the ``baseline`` days before (vol: implied ``vol_factor`` where observed,
                   else the EWMA vol of ``equity``)
``equity_bond``    correlation over ``window`` days of equity returns and bond price moves       flip
                   (``-dy`` of the ``bond`` yield); fires when its sign differs from the mean
                   over the ``baseline`` days before and its size is at least the threshold
``iv_term``        implied-vol term slope: the ``VOL.U.TERM`` factor (negative = inverted,       below
                   docs/kernels.md), else ``long - short`` implied vols, else a proxy: the
                   ``baseline``-day mean of ATM implied vol minus today's (spot vol far above
                   its recent mean, when short-dated implied vols sit above longer ones)
``credit_spread``  largest change over ``days`` trading days among the ``factors`` (credit or    above
                   funding spreads, ``CR.*``)
=================  ===========================================================================  ========

A signal whose factors the history lacks, or whose data are stale on the as-of date, is reported with
value NaN, ``fired`` false and the reason in ``detail``: never silently zero.

The dispersion standardises each move by its one-day-ahead EWMA volatility (RiskMetrics 1996, decay
0.94), ``z_ti = x_ti / s_ti``, and measures ``D_t = sum_u cs_var(z_u) / sum_u mean_i(z_ui^2)`` over the
window: the share of the standardised moves' second moment that is dispersion across names, about
``(1 - rho)(K - 1)/K`` for an average pairwise correlation ``rho`` whatever the level (or surprise) of
volatility.  A collapse relative to its own baseline is the basket moving as one, seen over a shorter
window than ``avg_corr``.
"""

from __future__ import annotations

import fnmatch
from typing import Optional

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stressgrid.core import ConfigError, History, factor_moves, factor_spec, log_mask

from ._returns import gap_mask
from ._var_backtest import ewma_vol

__all__ = [
    "SIGNALS",
    "SignalThresholds",
    "AvgCorrSignal",
    "AvgCorrJumpSignal",
    "DispersionSignal",
    "VolOfVolSignal",
    "EquityBondSignal",
    "IVTermSignal",
    "CreditSpreadSignal",
    "evaluate_signals",
    "signal_history",
    "average_correlation",
]

#: signal names, in report order
SIGNALS = ("avg_corr", "avg_corr_jump", "dispersion", "vol_of_vol", "equity_bond", "iv_term", "credit_spread")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _globs(v):
    v = [v] if isinstance(v, str) else list(v)
    if not v:
        raise ValueError("give at least one factor name or glob")
    return v


class AvgCorrSignal(_Strict):
    """``avg_corr``: fires when the basket's average pairwise correlation is above ``threshold``."""

    enabled: bool = True
    threshold: float = Field(default=0.6, ge=-1.0, le=1.0)
    window: int = Field(default=60, ge=10)
    basket: list[str] = ["EQ.*"]

    @field_validator("basket", mode="before")
    @classmethod
    def _basket(cls, v):
        return _globs(v)


class AvgCorrJumpSignal(_Strict):
    """``avg_corr_jump``: fires when ``avg_corr`` rose by more than ``threshold`` over ``days`` trading days
    (same basket and window as ``avg_corr``)."""

    enabled: bool = True
    threshold: float = Field(default=0.2, gt=0.0, le=2.0)
    days: int = Field(default=20, ge=1)


class DispersionSignal(_Strict):
    """``dispersion``: fires when the basket's standardised dispersion falls below ``threshold`` times its
    baseline median (same basket as ``avg_corr``)."""

    enabled: bool = True
    threshold: float = Field(default=0.7, gt=0.0)
    window: int = Field(default=20, ge=2)
    baseline: int = Field(default=250, ge=20)


class VolOfVolSignal(_Strict):
    """``vol_of_vol``: fires when vol-of-vol exceeds ``threshold`` times its baseline median."""

    enabled: bool = True
    threshold: float = Field(default=2.0, gt=0.0)
    equity: str = "EQ.SPX"
    vol_factor: Optional[str] = "VOL.SPX.ATM"
    window: int = Field(default=20, ge=5)
    baseline: int = Field(default=250, ge=20)


class EquityBondSignal(_Strict):
    """``equity_bond``: fires on a sign flip of the equity / bond-price correlation of size >= ``threshold``."""

    enabled: bool = True
    threshold: float = Field(default=0.2, ge=0.0, le=1.0)
    equity: str = "EQ.SPX"
    bond: str = "IR.USD.10Y"
    window: int = Field(default=60, ge=10)
    baseline: int = Field(default=250, ge=20)


class IVTermSignal(_Strict):
    """``iv_term``: fires when the implied-vol term slope is below ``threshold`` (``proxy_threshold`` for
    the ATM-versus-its-mean proxy)."""

    enabled: bool = True
    threshold: float = 0.0
    proxy_threshold: float = -0.05
    term_factor: Optional[str] = "VOL.SPX.TERM"
    short: Optional[str] = None
    long: Optional[str] = None
    atm_factor: Optional[str] = "VOL.SPX.ATM"
    baseline: int = Field(default=250, ge=20)


class CreditSpreadSignal(_Strict):
    """``credit_spread``: fires when a spread widened by more than ``threshold`` (decimal; 0.0025 = 25bp)
    over ``days`` trading days."""

    enabled: bool = True
    threshold: float = Field(default=0.0025, gt=0.0)
    factors: list[str] = ["CR.*"]
    days: int = Field(default=20, ge=1)

    @field_validator("factors", mode="before")
    @classmethod
    def _factors(cls, v):
        return _globs(v)


class SignalThresholds(_Strict):
    """The batch file's ``monitoring.signals``: one block per signal (module docstring), each with
    ``enabled``, ``threshold`` and its windows; ``max_stale_days``: a signal whose last data precede the
    as-of date by more is not evaluated."""

    max_stale_days: int = Field(default=7, ge=0)
    avg_corr: AvgCorrSignal = AvgCorrSignal()
    avg_corr_jump: AvgCorrJumpSignal = AvgCorrJumpSignal()
    dispersion: DispersionSignal = DispersionSignal()
    vol_of_vol: VolOfVolSignal = VolOfVolSignal()
    equity_bond: EquityBondSignal = EquityBondSignal()
    iv_term: IVTermSignal = IVTermSignal()
    credit_spread: CreditSpreadSignal = CreditSpreadSignal()


# ----------------------------------------------------------------------------------------------- helpers


def _match(globs: list[str], names: list[str]) -> list[str]:
    return [n for n in names if any(n == g or fnmatch.fnmatchcase(n, g) for g in globs)]


def _moves(levels: pd.DataFrame) -> pd.DataFrame:
    """Daily moves between consecutive rows (all columns observed) of ``levels``, leaving out moves across
    a gap longer than ``MAX_GAP_DAYS`` calendar days."""
    lv = levels.dropna(how="any")
    x = lv.to_numpy(dtype=float)
    m = factor_moves(x[:-1], x[1:], log_mask(list(lv.columns)))
    keep = gap_mask(lv.index)
    return pd.DataFrame(m[keep], index=lv.index[1:][keep], columns=lv.columns)


def _fresh(history: History, names: list[str], end: pd.Timestamp, stale: int) -> tuple[list[str], list[str]]:
    """``names`` split into those observed within ``stale`` days before ``end`` and the rest."""
    ok, old = [], []
    lv = history.levels.loc[:end]
    for f in names:
        s = lv[f].dropna() if f in lv.columns else pd.Series(dtype=float)
        (ok if len(s) and (end - s.index[-1]).days <= stale else old).append(f)
    return ok, old


def average_correlation(moves: pd.DataFrame, window: int) -> pd.Series:
    """Mean pairwise correlation of the columns of ``moves [T, K]`` over each trailing ``window`` rows.

    Uses ``sum_ij C_ij = sum_t (sum_i z_ti)^2 / (W - 1)`` with ``z`` the window's standardised columns
    (columns constant over a window are left out of it); NaN for the first ``window - 1`` rows."""
    x = moves.to_numpy(dtype=float)
    T, K = x.shape
    out = np.full(T, np.nan)
    if T < window or K < 2:
        return pd.Series(out, index=moves.index)
    views = sliding_window_view(x, window, axis=0)  # [N, K, W]
    for a in range(0, len(views), 1024):
        v = views[a:a + 1024]
        c = v - v.mean(axis=2, keepdims=True)
        sd = np.sqrt((c * c).sum(axis=2) / (window - 1))  # [n, K]
        ok = sd > 1e-300
        z = np.where(ok[:, :, None], c / np.where(ok, sd, 1.0)[:, :, None], 0.0)
        k = ok.sum(axis=1).astype(float)
        total = (z.sum(axis=1) ** 2).sum(axis=1) / (window - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[window - 1 + a: window - 1 + a + len(v)] = np.where(k >= 2, (total - k) / (k * (k - 1)), np.nan)
    return pd.Series(out, index=moves.index)


def _baseline_ratio(s: pd.Series, window: int, baseline: int, how: str = "median") -> pd.Series:
    """``s`` divided by its ``how`` over the ``baseline`` rows that end ``window`` rows earlier (the
    previous regime, not overlapping the current window)."""
    prior = s.shift(window).rolling(baseline, min_periods=baseline // 2)
    ref = prior.median() if how == "median" else prior.mean()
    return s / ref


# ------------------------------------------------------------------------------------------- the signals


class _Out:
    """A signal's daily ``value`` series, its ``threshold``, ``direction`` and where it came from."""

    def __init__(self, value: pd.Series | None, threshold: float, direction: str, source: str,
                 fired: pd.Series | None = None, extra: pd.Series | None = None):
        self.value, self.threshold, self.direction, self.source = value, threshold, direction, source
        self.extra = extra
        if value is not None and fired is None:
            fired = (value > threshold) if direction == "above" else (value < threshold)
        self.fired = fired


def _basket(history: History, cfg: AvgCorrSignal, end: pd.Timestamp, stale: int) -> tuple[pd.DataFrame | None, str]:
    names = _match(cfg.basket, history.factors)
    ok, old = _fresh(history, names, end, stale)
    if len(ok) < 3:
        return None, f"basket {', '.join(cfg.basket)}: {len(ok)} factor(s) with fresh data; need 3"
    moves = _moves(history.levels.loc[:end, ok])
    note = f"basket of {len(ok)} factors" + (f" ({len(old)} stale left out)" if old else "")
    return moves, note


def _avg_corr(history, t: SignalThresholds, end, stale) -> tuple[_Out, _Out]:
    moves, note = _basket(history, t.avg_corr, end, stale)
    if moves is None:
        return _Out(None, t.avg_corr.threshold, "above", note), _Out(None, t.avg_corr_jump.threshold, "above", note)
    ac = average_correlation(moves, t.avg_corr.window)
    jump = ac - ac.shift(t.avg_corr_jump.days)
    return (_Out(ac, t.avg_corr.threshold, "above", note),
            _Out(jump, t.avg_corr_jump.threshold, "above", f"{note}, change over {t.avg_corr_jump.days} days"))


def _dispersion(history, t: SignalThresholds, end, stale) -> _Out:
    c = t.dispersion
    moves, note = _basket(history, t.avg_corr, end, stale)
    if moves is None:
        return _Out(None, c.threshold, "below", note)
    x = moves.to_numpy()
    sig = np.column_stack([ewma_vol(x[:, j]) for j in range(x.shape[1])])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sig > 0, x / sig, np.nan)
    z[:20] = np.nan  # the EWMA's start-up
    k = np.isfinite(z).sum(axis=1)
    zz = np.where(np.isfinite(z), z, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = zz.sum(axis=1) / k
        cs_var = np.where(k >= 2, ((zz - mean[:, None]) ** 2 * np.isfinite(z)).sum(axis=1) / (k - 1), np.nan)
        mean_sq = np.where(k >= 2, (zz ** 2).sum(axis=1) / k, np.nan)
    num = pd.Series(cs_var, index=moves.index).rolling(c.window).sum()
    den = pd.Series(mean_sq, index=moves.index).rolling(c.window).sum()
    disp = num / den
    return _Out(_baseline_ratio(disp, c.window, c.baseline), c.threshold, "below", note)


def _vol_of_vol(history, t: SignalThresholds, end, stale) -> _Out:
    c = t.vol_of_vol
    parts, sources = [], []
    if c.vol_factor and c.vol_factor in history.factors:
        ok, _ = _fresh(history, [c.vol_factor], end, stale)
        s = history.levels.loc[:end, c.vol_factor].dropna()
        s = s[s > 0]
        if ok and len(s) > c.window + c.baseline // 2:
            vov = np.log(s).diff().rolling(c.window).std()
            parts.append(_baseline_ratio(vov, c.window, c.baseline))
            sources.append(f"implied {c.vol_factor}")
    if c.equity in history.factors:
        ok, _ = _fresh(history, [c.equity], end, stale)
        if ok:
            m = _moves(history.levels.loc[:end, [c.equity]])[c.equity]
            vol = pd.Series(ewma_vol(m.to_numpy()), index=m.index).iloc[20:]
            vol = vol[vol > 0]
            vov = np.log(vol).diff().rolling(c.window).std()
            parts.append(_baseline_ratio(vov, c.window, c.baseline))
            sources.append(f"EWMA vol of {c.equity}")
    if not parts:
        return _Out(None, c.threshold, "above", f"neither {c.vol_factor} nor {c.equity} has fresh data")
    value = parts[0] if len(parts) == 1 else parts[0].combine_first(parts[1])
    src = sources[0] if len(parts) == 1 else f"{sources[0]} where observed, else {sources[1]}"
    # where the implied series exists on a date it wins; the source of the last value is said in detail
    last_src = sources[0] if len(parts) == 1 or (len(parts[0].dropna()) and parts[0].dropna().index[-1] == value.dropna().index[-1]) else sources[1]
    return _Out(value, c.threshold, "above", f"{src}; latest from {last_src}")


def _equity_bond(history, t: SignalThresholds, end, stale) -> _Out:
    c = t.equity_bond
    need = [c.equity, c.bond]
    missing = [f for f in need if f not in history.factors]
    if missing:
        return _Out(None, c.threshold, "flip", f"{', '.join(missing)} not in the history")
    ok, old = _fresh(history, need, end, stale)
    if old:
        return _Out(None, c.threshold, "flip", f"{', '.join(old)} stale on the as-of date")
    m = _moves(history.levels.loc[:end, need])
    eq = m[c.equity]
    bond = -m[c.bond] if factor_spec(c.bond).kind != "price" else m[c.bond]
    corr = eq.rolling(c.window).corr(bond)
    base = corr.shift(c.window).rolling(c.baseline, min_periods=c.baseline // 2).mean()
    fired = (np.sign(corr) != np.sign(base)) & (corr.abs() >= c.threshold) & base.notna() & (base != 0)
    return _Out(corr, c.threshold, "flip", f"{c.equity} returns vs {c.bond} bond price moves", fired, base)


def _iv_term(history, t: SignalThresholds, end, stale) -> _Out:
    c = t.iv_term
    lv = history.levels.loc[:end]
    if c.term_factor and c.term_factor in history.factors and _fresh(history, [c.term_factor], end, stale)[0]:
        return _Out(lv[c.term_factor].dropna(), c.threshold, "below", f"term slope {c.term_factor}")
    if c.short and c.long:
        need = [c.short, c.long]
        if all(f in history.factors for f in need) and not _fresh(history, need, end, stale)[1]:
            both = lv[need].dropna()
            return _Out(both[c.long] - both[c.short], c.threshold, "below", f"{c.long} - {c.short}")
    if c.atm_factor and c.atm_factor in history.factors and _fresh(history, [c.atm_factor], end, stale)[0]:
        atm = lv[c.atm_factor].dropna()
        proxy = atm.rolling(c.baseline, min_periods=c.baseline // 2).mean() - atm
        return _Out(proxy, c.proxy_threshold, "below",
                    f"proxy: {c.baseline}-day mean of {c.atm_factor} minus today's (no term-structure factor)")
    return _Out(None, c.threshold, "below",
                f"no fresh implied-vol term data ({c.term_factor}, short/long, {c.atm_factor}) in the history")


def _credit(history, t: SignalThresholds, end, stale) -> _Out:
    c = t.credit_spread
    names = _match(c.factors, history.factors)
    ok, _ = _fresh(history, names, end, stale)
    if not ok:
        return _Out(None, c.threshold, "above", f"no fresh spread factor matches {', '.join(c.factors)} in the history")
    lv = history.levels.loc[:end]
    ch = pd.concat({f: lv[f].dropna().diff(c.days) for f in ok}, axis=1)
    return _Out(ch.max(axis=1, skipna=True), c.threshold, "above",
                f"widest of {', '.join(ok)} over {c.days} days")


def _compute(history: History, thresholds: SignalThresholds, end: pd.Timestamp) -> dict[str, _Out]:
    t, stale = thresholds, thresholds.max_stale_days
    out: dict[str, _Out] = {}
    if t.avg_corr.enabled or t.avg_corr_jump.enabled:
        out["avg_corr"], out["avg_corr_jump"] = _avg_corr(history, t, end, stale)
    if t.dispersion.enabled:
        out["dispersion"] = _dispersion(history, t, end, stale)
    if t.vol_of_vol.enabled:
        out["vol_of_vol"] = _vol_of_vol(history, t, end, stale)
    if t.equity_bond.enabled:
        out["equity_bond"] = _equity_bond(history, t, end, stale)
    if t.iv_term.enabled:
        out["iv_term"] = _iv_term(history, t, end, stale)
    if t.credit_spread.enabled:
        out["credit_spread"] = _credit(history, t, end, stale)
    return {k: v for k, v in out.items() if getattr(t, k).enabled}


def _as_of(history: History, as_of) -> pd.Timestamp:
    last = history.levels.index[-1]
    if as_of is None:
        return last
    a = pd.Timestamp(as_of)
    if a < history.levels.index[0]:
        raise ConfigError(f"monitoring, field 'as_of': {a.date()} is before the history's first date {history.levels.index[0].date()}")
    return a


def evaluate_signals(history: History, thresholds: SignalThresholds | None = None, as_of=None) -> pd.DataFrame:
    """Every enabled signal on ``as_of`` (default the history's last date), from data up to it.

    Returns
    -------
    DataFrame, one row per signal: ``signal``, ``value``, ``threshold``, ``direction`` (``above``,
    ``below`` or ``flip``), ``fired``, ``as_of``, ``date`` (of the data read), ``detail``.
    """
    thresholds = thresholds or SignalThresholds()
    end = _as_of(history, as_of)
    rows = []
    for name, o in _compute(history, thresholds, end).items():
        row = {"signal": name, "value": float("nan"), "threshold": o.threshold, "direction": o.direction,
               "fired": False, "as_of": end, "date": pd.NaT, "detail": o.source}
        v = o.value.dropna() if o.value is not None else None
        if v is not None and len(v):
            d = v.index[-1]
            if (end - d).days > thresholds.max_stale_days:
                row["detail"] = f"{o.source}; last value {d.date()} is stale on {end.date()}"
            else:
                row.update(value=float(v.iloc[-1]), date=d, fired=bool(o.fired.loc[d]))
                if o.extra is not None and pd.notna(o.extra.get(d, np.nan)):
                    row["detail"] = f"{o.source}; baseline {float(o.extra.loc[d]):+.2f}"
        elif o.value is not None:
            row["detail"] = f"{o.source}; not enough history for the windows"
        rows.append(row)
    return pd.DataFrame(rows, columns=["signal", "value", "threshold", "direction", "fired", "as_of", "date", "detail"])


def signal_history(history: History, thresholds: SignalThresholds | None = None, start=None, end=None) -> pd.DataFrame:
    """The daily series of every enabled signal between ``start`` and ``end`` (default: the whole
    history), each value from data up to its own date.

    Returns
    -------
    Long DataFrame: ``date``, ``signal``, ``value``, ``threshold``, ``fired``.
    """
    thresholds = thresholds or SignalThresholds()
    e = _as_of(history, end)
    frames = []
    for name, o in _compute(history, thresholds, e).items():
        if o.value is None:
            continue
        v = o.value.loc[pd.Timestamp(start) if start is not None else None:e].dropna()
        frames.append(pd.DataFrame({"date": v.index, "signal": name, "value": v.to_numpy(),
                                    "threshold": o.threshold, "fired": o.fired.reindex(v.index).fillna(False).astype(bool).to_numpy()}))
    if not frames:
        return pd.DataFrame(columns=["date", "signal", "value", "threshold", "fired"])
    return pd.concat(frames, ignore_index=True)
