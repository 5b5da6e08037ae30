"""Daily asset returns from the factor history: what a forecaster and a rebalancing backtest read.

* ``EQ.*``, ``CMD.*``, ``FX.*`` (prices): simple returns ``L_t / L_{t-1} - 1``;
* ``IR.CCY.TENOR`` (zero yields, continuously compounded): the total return of a constant-maturity
  zero-coupon bond of that tenor, bought at ``t-1`` at ``P = exp(-y_{t-1} T)`` and valued at ``t`` with
  ``T - dt`` left at the day's yield of the same tenor (roll-down along the curve ignored)::

      ln(P_t / P_{t-1}) = y_{t-1} T - y_t (T - dt),   dt = calendar days / 365,

  which is ``y dt`` (carry) for an unchanged yield and ``-T dy`` (duration) for a move over a day.
* spreads, vols and bases are not asset prices: they have no return and are refused.

A "daily" return is taken only between consecutive common dates at most :data:`MAX_GAP_DAYS` calendar
days apart: a series that stops for years (the 30-year Treasury between 2002 and 2006 in the bundled
history) must not turn its gap into one day's move.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, DataError, History, factor_spec

__all__ = ["DEFAULT_FACTORS", "MAX_GAP_DAYS", "asset_returns", "default_factors", "gap_mask"]

#: a small cross-asset universe of the bundled history (equity, FX, commodities, the Treasury curve)
DEFAULT_FACTORS = ("EQ.SPX", "FX.EURUSD", "FX.JPYUSD", "FX.GBPUSD", "FX.AUDUSD", "CMD.WTI", "CMD.GOLD",
                   "IR.USD.2Y", "IR.USD.5Y", "IR.USD.10Y")

#: longest calendar gap between two dates whose move still counts as one day's (a long weekend with
#: holidays, an exchange closure such as September 2001)
MAX_GAP_DAYS = 10


def gap_mask(index: pd.DatetimeIndex, max_gap_days: int = MAX_GAP_DAYS) -> np.ndarray:
    """True ``[T - 1]`` for the moves between consecutive dates of ``index`` at most ``max_gap_days`` apart."""
    d = np.diff(index.to_numpy()).astype("timedelta64[D]").astype(int)
    return d <= max_gap_days


def default_factors(history: History) -> list[str]:
    """:data:`DEFAULT_FACTORS` that ``history`` has; if fewer than two, every price and zero-yield
    factor of the history."""
    have = [f for f in DEFAULT_FACTORS if f in history.levels.columns]
    if len(have) >= 2:
        return have
    return [f for f in history.levels.columns if factor_spec(f).kind in ("price", "rate")]


def asset_returns(history: History, factors: Sequence[str], start=None, end=None,
                  max_gap_days: int = MAX_GAP_DAYS) -> pd.DataFrame:
    """Daily simple returns ``[T, K]`` of the assets behind ``factors`` (module docstring), on the
    dates every one of them is observed, between ``start`` and ``end`` (inclusive; the first date
    on or after ``start`` is the base of the first return); a move across more than ``max_gap_days``
    calendar days is left out.

    Raises
    ------
    ConfigError
        If a factor is not in the history or is not a price or zero yield.
    DataError
        If fewer than two dates have all the factors.
    """
    factors = list(factors)
    if len(factors) == 0:
        raise ConfigError("monitoring, field 'factors': give at least one factor")
    missing = [f for f in factors if f not in history.levels.columns]
    if missing:
        raise ConfigError(
            f"monitoring, field 'factors': {', '.join(missing)} not in the history {history.source} "
            f"(it has {', '.join(history.factors[:10])}{' ...' if len(history.factors) > 10 else ''})"
        )
    specs = [factor_spec(f) for f in factors]
    bad = [s.name for s in specs if s.kind not in ("price", "rate")]
    if bad:
        raise ConfigError(
            f"monitoring, field 'factors': {', '.join(bad)} have no asset return (spreads, vols and bases are "
            f"not prices); give price factors (EQ, CMD, FX) or zero yields (IR)"
        )
    lv = history.levels[factors].loc[pd.Timestamp(start) if start is not None else None:
                                     pd.Timestamp(end) if end is not None else None].dropna(how="any")
    if len(lv) < 2:
        raise DataError(
            f"monitoring, field 'factors': {', '.join(factors)} are observed together on {len(lv)} date(s) "
            f"in {start or 'the start'}..{end or 'the end'} of the history; need at least 2"
        )
    x = lv.to_numpy(dtype=float)
    out = np.empty((len(x) - 1, len(factors)))
    dt = np.diff(lv.index.to_numpy()).astype("timedelta64[D]").astype(float) / 365.0
    for j, s in enumerate(specs):
        if s.kind == "price":
            out[:, j] = x[1:, j] / x[:-1, j] - 1.0
        else:
            T = s.tenor_years
            out[:, j] = np.expm1(x[:-1, j] * T - x[1:, j] * np.maximum(T - dt, 0.0))
    keep = gap_mask(lv.index, max_gap_days)
    return pd.DataFrame(out[keep], index=lv.index[1:][keep], columns=factors)
