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
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

from stressgrid.core import ConfigError

from . import _tuning as tuning
from ._flows import FlowLayout, flow_layout
from ._rates import CashflowBook
from ._revalue import PRICERS, PreparedBook, _Group, revalue
from ._time import curve_grid

__all__ = ["age", "horizon_date", "path_book", "path_books", "path_days", "revalue_path", "settlement_days", "stack_arrays"]

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
    groups, offset = _aged_groups(book, positions, base_ccy, as_of, at, base, {f: i for i, f in enumerate(book.factors)})
    return replace(book, groups=tuple(groups), offset=offset, horizon_days=int(days), at=at,
                   horizon_years=(at - as_of).days / 365.0)


def _aged_groups(book: PreparedBook, positions: pd.DataFrame, base_ccy: str, as_of: pd.Timestamp, at: pd.Timestamp,
                 levels: np.ndarray, idx: dict[str, int], pack: bool = True,
                 frames: list[pd.DataFrame] | None = None) -> tuple[list[_Group], np.ndarray]:
    """The groups of ``book`` rebuilt at ``at`` against the factor index ``idx``, and each position's
    time component ``[n]`` at the unchanged levels ``levels`` (indexed as ``idx`` says; today's groups
    read ``levels[:F]``); ``pack`` is passed to the pricers' ``age`` hooks.  ``frames``, if given, are
    the rows of ``positions`` of each group of ``book`` (to share between the days of a path)."""
    groups: list[_Group] = []
    offset = np.zeros(book.n)
    row = levels[None, :]
    for i, g in enumerate(book.groups):
        if g.pricer.mark is None:
            raise ConfigError(f"instrument type(s) {', '.join(g.pricer.types)}: the pricer has no mark, so the book cannot "
                              "be valued at a horizon; use revaluation: instantaneous")
        df = positions.iloc[g.columns] if frames is None else frames[i]
        if g.pricer.age is not None:
            parts = g.pricer.age(df, idx, base_ccy, as_of, at, levels, pack=pack)
        else:
            parts = [(np.ones(len(df), dtype=bool), g.pricer, g.pricer.build(df, idx, base_ccy, at))]
        offset[g.columns] -= g.pricer.mark(g.arrays, row)[0]
        for mask, pricer, arrays in parts:
            cols = g.columns[np.asarray(mask, dtype=bool)]
            groups.append(_Group(pricer, cols, arrays))
            offset[cols] += pricer.mark(arrays, row)[0]
    return groups, offset


def path_days(n_positions: int, n_factors: int) -> int:
    """Days of a path that one :func:`path_book` holds: as many as keep a kernel call of the fewest rows
    (:data:`kernels._tuning.CALL_ROWS`) within :data:`kernels._tuning.CALL_CELLS` cells, so that a call
    over a path book needs no more memory than a call over the book of one day would at that size; at
    least 1.  The demo book (49 positions on 95 factors) takes 43 days in one book, a book of 2,000
    positions 2."""
    width = max(int(n_positions), int(n_factors), 1)
    return max(1, int(tuning.CALL_CELLS) // (int(tuning.CALL_ROWS[0]) * width))


def path_book(book: PreparedBook, positions: pd.DataFrame, base_ccy: str, as_of, days: int, base: np.ndarray,
              first: int = 1) -> PreparedBook:
    """Days ``first`` to ``first + days - 1`` of a path of ``book`` as one book, to revalue them in one call.

    Its factors are the book's ``F`` factors once per day (``"<factor>@<k>"``, the ``i``-th day of the
    book in columns ``i F`` to ``(i+1) F - 1``) and its positions the book's ``n`` once per day (the
    ``i``-th day in columns ``i n`` to ``(i+1) n - 1``): position ``(k, j)`` is position ``j`` valued ``k``
    business days after ``as_of`` (:func:`age`) on day ``k``'s factors, its ``offset`` the time component
    of day ``k``.  Revalued (:func:`kernels.revalue`) at the base levels repeated ``days`` times under
    the days' cumulative shocks laid out day after day (``[S, days F]``), its P&L ``[S, days n]`` is
    the days' ``[S, days, n]``: each pricer's kernel runs once over every day's instruments.
    """
    base = np.asarray(base, dtype=float)
    H, F, n, first = int(days), len(book.factors), book.n, int(first)
    if H < 1 or first < 1:
        raise ConfigError(f"path book of {days} days from day {first}: needs at least one day, from day 1")
    as_of = pd.Timestamp(as_of).normalize()
    levels = np.tile(base, H)
    by_pricer: dict[tuple, list[tuple[np.ndarray, NamedTuple]]] = {}
    offset = np.zeros(H * n)
    frames = [positions.iloc[g.columns] for g in book.groups]
    for i in range(H):
        idx = {f: c + i * F for c, f in enumerate(book.factors)}
        groups, off = _aged_groups(book, positions, base_ccy, as_of, horizon_date(as_of, first + i), levels, idx, pack=False,
                                   frames=frames)
        offset[i * n: (i + 1) * n] = off
        for g in groups:
            by_pricer.setdefault(g.pricer.types, []).append((g.columns + i * n, g.arrays))
    grid = curve_grid(book.factors)
    groups = []
    for types, parts in by_pricer.items():
        arrays = stack_arrays([a for _, a in parts], [len(c) for c, _ in parts])
        if isinstance(arrays, CashflowBook):
            # one list of curve nodes per currency and block of days (kernels._tuning.PATH_CURVE_DAYS); a
            # flow's curve is the column of its currency's shortest tenor, on its day
            lo = np.asarray(arrays.pts.lo)[:, 0]
            curve = grid.first[lo % F] + lo // F // max(int(tuning.PATH_CURVE_DAYS), 1) * F
            arrays = arrays._replace(layout=flow_layout(arrays, curve_ids=curve))
        groups.append(_Group(PRICERS[types[0]], np.concatenate([c for c, _ in parts]), arrays))
    factors = tuple(f"{f}@{k}" for k in range(first, first + H) for f in book.factors)
    last = first + H - 1
    at = horizon_date(as_of, last)
    return replace(book, n=H * n, factors=factors, groups=tuple(groups), priced=np.tile(book.priced, H),
                   ids=tuple(book.ids) * H, offset=offset, horizon_days=last, at=at, horizon_years=(at - as_of).days / 365.0)


def path_books(book: PreparedBook, positions: pd.DataFrame, base_ccy: str, as_of, days: int,
               base: np.ndarray) -> dict[tuple[int, int], PreparedBook]:
    """The :func:`path_book` of each block of :func:`path_days` days of a ``days``-day path, keyed by
    ``(first day, days)``: one book for the whole path unless the book is large."""
    return {(a, m): path_book(book, positions, base_ccy, as_of, m, base, first=a)
            for a, m in _blocks(path_days(book.n, len(book.factors)), days)}


def _blocks(per_book: int, days: int) -> list[tuple[int, int]]:
    """``(first day, days)`` of each block of at most ``per_book`` days of a ``days``-day path."""
    return [(a, min(per_book, int(days) - a + 1)) for a in range(1, int(days) + 1, per_book)]


def stack_arrays(parts: list[NamedTuple], sizes: list[int]) -> NamedTuple:
    """The struct-of-arrays of one pricer's instruments ``parts`` (``sizes[i]`` instruments each) as one:
    every per-instrument field concatenated (trailing axes, such as flows or premium periods, padded
    with zeros, which every builder's padding is: no amount, no period); a field that is one scalar for
    the whole part is repeated per instrument unless every part has the same.  A packed cash-flow
    ``layout`` is left as the first part's (None where the parts were built unpacked): the caller packs
    the stacked flows."""

    def cat(*leaves):
        if isinstance(leaves[0], FlowLayout):
            return leaves[0]
        arrs = [np.asarray(a) for a in leaves]
        if all(a.ndim == 0 for a in arrs) and all(np.array_equal(a, arrs[0]) for a in arrs):
            return leaves[0]
        arrs = [np.broadcast_to(a, (m,)) if a.ndim == 0 else a for a, m in zip(arrs, sizes)]
        width = tuple(max(a.shape[d] for a in arrs) for d in range(1, arrs[0].ndim))
        return np.concatenate([np.pad(a, [(0, 0)] + [(0, w - n) for w, n in zip(width, a.shape[1:])]) for a in arrs])

    # the fields are walked as a pytree; a packed layout is one leaf, left to the caller
    return jax.tree.map(cat, *parts, is_leaf=lambda x: isinstance(x, FlowLayout))


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
                 paths: np.ndarray, is_log: np.ndarray, cache: dict | None = None) -> np.ndarray:
    """Cumulative P&L ``[S, H, n]`` (base currency) of ``book`` (prepared at ``as_of`` from ``positions``)
    along daily paths ``[S, H, F]`` of cumulative shocks from ``base``: day ``k`` (``1..H``) is the book
    valued ``k`` business days later (:func:`age`) under the day's levels, its time component included.

    A position that expires or matures on day ``e`` (:func:`settlement_days`) keeps its day-``e`` P&L
    on every later day.  The days are revalued together, through the :func:`path_books` of the path
    (one book for every day unless the book is large); ``cache``, if given, holds those books by
    ``(first day, days)`` (made with the same arguments) and receives the ones it lacks, for the next
    paths of the same book.
    """
    paths = np.asarray(paths, dtype=float)
    S, H, F = paths.shape
    if F != len(book.factors):
        raise ValueError(f"paths have {F} factors, the book {len(book.factors)}")
    cache = {} if cache is None else cache
    blocks = _blocks(path_days(book.n, F), H)
    if any(b not in cache for b in blocks):
        cache.update(path_books(book, positions, base_ccy, as_of, H, base))
    base = np.asarray(base, dtype=float)
    is_log = np.asarray(is_log, dtype=bool)
    out = np.empty((S, H, book.n))
    for a, m in blocks:
        day = paths[:, a - 1: a - 1 + m].reshape(S, m * F)
        if m == H:  # one book for the whole path: straight into out
            revalue(cache[(a, m)], np.tile(base, m), day, np.tile(is_log, m), out=out.reshape(S, H * book.n))
        else:
            out[:, a - 1: a - 1 + m] = revalue(cache[(a, m)], np.tile(base, m), day, np.tile(is_log, m)).reshape(S, m, book.n)
    settle = settlement_days(positions, as_of, H)
    for j in np.flatnonzero((settle > 0) & (settle < H)):
        out[:, settle[j]:, j] = out[:, settle[j] - 1, j][:, None]
    return out
