"""A book valued at a horizon: time passes between the as-of date and the end of a scenario.

A scenario family with ``horizon_days`` describes the market ``h`` business days after the as-of
date.  Revalued at a horizon, the book is valued at that date, ``at = as_of + h`` business days
(weekends pass, holidays are not modelled), under the scenario's levels, and today's value at the
base levels is subtracted:

    P&L = V_at(L') + C_at(L') - V_0(L)

with ``C`` the cash the positions paid or received meanwhile, converted at the scenario's FX levels.
Conventions (``docs/kernels.md`` lists them with the instruments'):

* zero yields keep their tenor (the curve rolls down: a flow's time to payment shrinks and its
  yield is read at the shorter time); the vol surface is read at the shorter time to expiry;
* a scenario without a daily path moves the factors once: an instrument that expires inside the
  horizon settles on the scenario's levels (an option's payoff, a forward's ``N (S - K)``, a
  future's spot, a rate future's fixing on that curve);
* coupons, a bond's face, a swap's net fixed and floating interest and a CDS's premium accrued are
  paid into cash in the instrument's currency and earn nothing; no default happens in the horizon;
* equities and equity futures are valued on the spot level: no dividends or futures basis accrue.

The P&L splits into the time component (the P&L at unchanged levels, ``offset`` of the aged book,
the same for every scenario), the instantaneous market move (today's book under the scenario's
levels) and the cross term, the rest.

Along a daily path (:func:`revalue_path`) day ``k`` is valued ``k`` business days after the as-of date
under that day's levels, and an instrument that expires or matures on the path settles on the levels
of its last day (the first path day on or after its ``expiry``, or ``maturity`` for types without
one): from then on its P&L stays what it was that day, its settlement and cash converted into the
base currency at that day's levels and held without interest.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError

from ._revalue import PreparedBook, _Group, revalue

__all__ = ["age", "horizon_date", "revalue_path", "settlement_days"]

#: instrument types whose last day is their ``expiry`` (the others: ``maturity``, where the book has it)
EXPIRY_TYPES = ("option", "vix_option", "vix_future")


def horizon_date(as_of, days: int) -> pd.Timestamp:
    """``as_of`` plus ``days`` business days (Monday to Friday)."""
    as_of = pd.Timestamp(as_of).normalize()
    return as_of if int(days) == 0 else as_of + pd.offsets.BDay(int(days))


def age(book: PreparedBook, positions: pd.DataFrame, base_ccy: str, as_of, days: int, base: np.ndarray) -> PreparedBook:
    """``book`` (prepared at ``as_of`` from ``positions``) valued ``days`` business days later.

    Every group is rebuilt at the later date by its pricer's ``age`` hook (by default its ``build``
    at that date); options that expire by then settle into a group of their own.  The returned book
    revalues like any other (:func:`kernels.revalue`), its P&L including the time that passed: its
    ``offset [n]`` is each position's P&L at unchanged levels ``base [F]`` (the time component).
    With ``days == 0`` the book is rebuilt at the as-of date and its P&L equals ``book``'s bit for bit.
    """
    if days < 0:
        raise ConfigError(f"horizon of {days} days: must be >= 0")
    base = np.asarray(base, dtype=float)
    at = horizon_date(as_of, days)
    as_of = pd.Timestamp(as_of).normalize()
    idx = {f: i for i, f in enumerate(book.factors)}
    groups: list[_Group] = []
    offset = np.zeros(book.n)
    for g in book.groups:
        if g.pricer.mark is None:
            raise ConfigError(f"instrument type(s) {', '.join(g.pricer.types)}: the pricer has no mark, so the book cannot "
                              "be valued at a horizon; use revaluation: instantaneous")
        df = positions.iloc[g.columns]
        if g.pricer.age is not None:
            parts = g.pricer.age(df, idx, base_ccy, as_of, at, base)
        else:
            parts = [(np.ones(len(df), dtype=bool), g.pricer, g.pricer.build(df, idx, base_ccy, at))]
        offset[g.columns] -= g.pricer.mark(g.arrays, base[None, :])[0]
        for mask, pricer, arrays in parts:
            cols = g.columns[np.asarray(mask, dtype=bool)]
            groups.append(_Group(pricer, cols, arrays))
            offset[cols] += pricer.mark(arrays, base[None, :])[0]
    return replace(book, groups=tuple(groups), offset=offset, horizon_days=int(days), at=at,
                   horizon_years=(at - as_of).days / 365.0)


def settlement_days(positions: pd.DataFrame, as_of, days: int) -> np.ndarray:
    """``[n]`` int: the path day (1 to ``days``) on which each position expires or matures, the first
    business day after ``as_of`` on or after its ``expiry`` (:data:`EXPIRY_TYPES`) or ``maturity``;
    0 for a position whose last day is not inside the path (or that has none)."""
    n = len(positions)
    last = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    types = positions["type"].to_numpy()
    for col, sel in (("maturity", ~np.isin(types, EXPIRY_TYPES)), ("expiry", np.isin(types, EXPIRY_TYPES))):
        if col in positions.columns and sel.any():
            vals = pd.to_datetime(positions[col], errors="coerce").dt.normalize().to_numpy()
            last[sel] = vals[sel]
    dates = pd.DatetimeIndex([horizon_date(as_of, k) for k in range(1, int(days) + 1)])
    out = np.zeros(n, dtype=np.int64)
    inside = last.notna().to_numpy() & (last.to_numpy() > np.datetime64(pd.Timestamp(as_of).normalize()))
    if inside.any() and len(dates):
        k = dates.searchsorted(pd.DatetimeIndex(last[inside]), side="left") + 1  # first day on or after
        out[inside] = np.where(k <= len(dates), k, 0)
    return out


def revalue_path(book: PreparedBook, positions: pd.DataFrame, base_ccy: str, as_of, base: np.ndarray,
                 paths: np.ndarray, is_log: np.ndarray, aged: dict | None = None) -> np.ndarray:
    """Cumulative P&L ``[S, H, n]`` (base currency) of ``book`` (prepared at ``as_of`` from ``positions``)
    along daily paths ``[S, H, F]`` of cumulative shocks from ``base``: day ``k`` (``1..H``) is the book
    valued ``k`` business days later (:func:`age`) under the day's levels, its time component included.

    A position that expires or matures on day ``e`` (:func:`settlement_days`) keeps its day-``e`` P&L
    on every later day.  Each day is one :func:`kernels.revalue` call over the paths' scenarios.
    ``aged``, if given, maps a day to ``book`` already valued then (:func:`age` with the same arguments);
    the days it lacks are added to it, for the next paths of the same book.
    """
    paths = np.asarray(paths, dtype=float)
    S, H, F = paths.shape
    if F != len(book.factors):
        raise ValueError(f"paths have {F} factors, the book {len(book.factors)}")
    out = np.empty((S, H, book.n))
    day = np.empty((S, book.n))
    aged = {} if aged is None else aged
    for k in range(1, H + 1):
        if k not in aged:
            aged[k] = age(book, positions, base_ccy, as_of, k, base)
        revalue(aged[k], base, paths[:, k - 1, :], is_log, out=day)
        out[:, k - 1, :] = day
    settle = settlement_days(positions, as_of, H)
    for j in np.flatnonzero((settle > 0) & (settle < H)):
        out[:, settle[j]:, j] = out[:, settle[j] - 1, j][:, None]
    return out
