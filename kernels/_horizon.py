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
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError

from ._revalue import PreparedBook, _Group

__all__ = ["age", "horizon_date"]


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
