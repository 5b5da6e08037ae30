"""Rates instruments off a zero curve: fixed-coupon bonds, interest-rate swaps, short-rate futures.

The ``underlying`` of a rates position is any ``IR.<CCY>.*`` factor; it names the curve (currency
``CCY``), and the position is discounted off that currency's whole tenor grid
(:func:`kernels._common.curve_tenors`), interpolated linearly in zero yield over time and flat outside
(``core.curves``).  Times are Actual/365 Fixed from the as-of date.

Bond (per unit of face, dirty price; Fabozzi, *Bond Markets, Analysis and Strategies*, ch. 2)::

    P = sum_j a_j exp(-(z(t_j) + s) t_j)

with coupons ``a_j = c / f`` on dates stepped back from ``maturity`` by ``12 / f`` months (unadjusted),
the face (1) added at maturity, ``z`` the zero yield (continuously compounded) and ``s`` the issuer
spread, the level of the optional ``spread_factor`` (``CR.*``, continuously compounded, 0 if none).
Flows on or before the as-of date are excluded.  Position value: ``quantity x multiplier x P``.

Swap (receiver of the fixed ``coupon`` for ``quantity > 0``): the fixed leg as above without issuer
spread minus a floating leg valued at par at the as-of date (a floating-rate note is worth par on a
reset date; Hull, ch. 7), ``V = P_fixed - 1``.  The fixing already set for the current floating period
is not modelled.

Short-rate future (e.g. a 3M SOFR or Eurodollar future; ``maturity`` is the start of the rate period,
``frequency`` the periods a year, 4 by default)::

    price = 100 (1 - f),   f = (DF(T1) / DF(T2) - 1) / (T2 - T1)

the simply compounded forward rate over ``[T1, T2]`` (Hull, ch. 4), without a futures convexity
adjustment; P&L ``quantity x multiplier x (price' - price)`` (a Eurodollar contract has multiplier
2,500 per price point).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, factor_spec, fx_factor

from ._common import DAYS_PER_YEAR, CurvePoints, curve_factors, curve_points, fx_index, fx_level, year_fraction, zero_at
from ._edge import make_kernel, numpy_pnl, settled_diff, value_diff
from ._flows import FlowLayout, flow_layout, layout_pnl, layout_pnl_into

__all__ = [
    "cashflow_pnl_into",
    "CashflowBook",
    "RateFutureBook",
    "coupon_schedule",
    "bond_cashflows",
    "cashflow_value_one",
    "cashflow_pnl",
    "cashflow_pnl_numpy",
    "rate_future_pnl",
    "rate_future_pnl_numpy",
]


class CashflowBook(NamedTuple):
    """Struct-of-arrays of ``n`` cash-flow instruments (bonds, swaps) padded to ``J`` flows.

    times : ``[n, J]`` years (padding: 0)
    amounts : ``[n, J]`` per unit of face (padding: 0)
    pts : curve interpolation at ``times``, fields ``[n, J]``
    spread_idx : ``[n]`` column of the issuer spread factor (0 with ``spread_w`` 0 if none)
    spread_w : ``[n]`` 1 or 0
    const : ``[n]`` value added at time 0 (-1 for a swap's floating leg, 0 for bonds)
    units : ``[n]`` quantity x multiplier
    fx_idx : ``[n]`` column converting the position currency to the base (-1: none)
    layout : the same flows packed for the batched kernel (:func:`kernels._flows.flow_layout`), built
        by :func:`cashflow_build`; None: :func:`cashflow_pnl` packs them on each call

    The padded fields serve the one-instrument kernel (automatic differentiation) and the numpy twin.
    """

    times: np.ndarray
    amounts: np.ndarray
    pts: CurvePoints
    spread_idx: np.ndarray
    spread_w: np.ndarray
    const: np.ndarray
    units: np.ndarray
    fx_idx: np.ndarray
    layout: FlowLayout | None = None

    def rows(self) -> "CashflowBook":
        """The padded per-instrument arrays only (what ``vmap`` over instruments needs)."""
        return self._replace(layout=None)


class RateFutureBook(NamedTuple):
    """Struct-of-arrays of ``n`` short-rate futures (all ``[n]``).

    t1, t2 : start and end of the rate period (years); p1, p2 : curve interpolation at them
    """

    t1: np.ndarray
    t2: np.ndarray
    p1: CurvePoints
    p2: CurvePoints
    units: np.ndarray
    fx_idx: np.ndarray


# ---------------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------------


def _schedule_days(as_of: pd.Timestamp, maturity, frequency: int) -> np.ndarray:
    """Coupon dates after ``as_of`` as ``datetime64[D]``, increasing (see :func:`coupon_schedule`)."""
    mat = pd.Timestamp(maturity)
    step = 12 // int(frequency)
    months_back = (mat.year - as_of.year) * 12 + (mat.month - as_of.month)
    k = np.arange(months_back // step + 2)[::-1]  # enough steps to reach back past as_of
    month = np.datetime64(f"{mat.year:04d}-{mat.month:02d}", "M") - k * step
    first = month.astype("datetime64[D]")
    days_in_month = ((month + 1).astype("datetime64[D]") - first).astype(np.int64)
    dates = first + (np.minimum(mat.day, days_in_month) - 1)
    return dates[dates > np.datetime64(as_of.normalize().date(), "D")]


def coupon_schedule(as_of: pd.Timestamp, maturity, frequency: int) -> list[pd.Timestamp]:
    """Coupon dates after ``as_of``, stepped back from ``maturity`` by ``12/frequency`` months.

    Each date is ``maturity - k * 12/frequency months`` (unadjusted, the day clipped to the month's
    end as in QuantLib's backward ``Schedule``), increasing.
    """
    return [pd.Timestamp(d) for d in _schedule_days(pd.Timestamp(as_of), maturity, frequency)]


def bond_cashflows(as_of: pd.Timestamp, maturity, coupon: float, frequency: int) -> tuple[np.ndarray, np.ndarray]:
    """Times (years, Actual/365F) and amounts per unit face of a fixed-coupon bond's remaining flows."""
    as_of = pd.Timestamp(as_of)
    dates = _schedule_days(as_of, maturity, frequency)
    t = (dates - np.datetime64(as_of.normalize().date(), "D")).astype(np.int64) / DAYS_PER_YEAR
    a = np.full(len(dates), coupon / frequency)
    if len(a):  # none left: matured (a book valued at a horizon)
        a[-1] += 1.0
    return t, a


# ---------------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------------


def cashflow_value_one(b: CashflowBook, L):
    """Value in base currency of one cash-flow position at levels ``L[F]`` (jax)."""
    z = zero_at(L, b.pts) + b.spread_w * L[b.spread_idx]
    pv = jnp.sum(b.amounts * jnp.exp(-z * b.times)) + b.const
    return b.units * pv * fx_level(L, b.fx_idx)


#: one bond or swap's full-revaluation P&L from ``base[F]`` to ``new[F]`` (what automatic
#: differentiation uses), and its plain ``vmap`` over the padded flows
cashflow_pnl_one, _cashflow_pnl_vmap = make_kernel(cashflow_value_one)


def cashflow_pnl(b: CashflowBook, base, new):
    """Full-revaluation P&L ``[S, n]`` (base currency) of bonds and swaps from ``base[F]`` to each
    row of ``new[S, F]``: :func:`cashflow_value_one`'s sum over the flows, from the flows packed by
    :func:`kernels._flows.flow_layout` (``b.layout``, or packed now); compiled once per layout and
    ``S``."""
    layout = b.layout if b.layout is not None else flow_layout(b)
    return layout_pnl(layout, b.const, b.units, b.fx_idx, base, new)


def cashflow_pnl_into(b: CashflowBook, base, new, out: np.ndarray) -> np.ndarray:
    """:func:`cashflow_pnl` written into ``out[S, n]`` (fastest when ``out`` is Fortran-ordered)."""
    layout = b.layout if b.layout is not None else flow_layout(b)
    return layout_pnl_into(layout, b.const, b.units, b.fx_idx, base, new, out)


def _cf_value_numpy(b: CashflowBook, L: np.ndarray) -> np.ndarray:
    # L [S, F] -> [S, n]
    z = b.pts.w_lo * L[:, b.pts.lo] + b.pts.w_hi * L[:, b.pts.hi] + (b.spread_w * L[:, b.spread_idx])[:, :, None]
    pv = np.einsum("snj,nj->sn", np.exp(-z * b.times), b.amounts) + b.const
    return b.units * pv * fx_level(L, b.fx_idx)


def cashflow_values_numpy(b: CashflowBook, L: np.ndarray) -> np.ndarray:
    """Present value ``[S, n]`` in base currency of ``b.units`` of each cash-flow instrument at factor
    levels ``L [S, F]``."""
    return _cf_value_numpy(b, np.atleast_2d(np.asarray(L, dtype=float)))


def cashflow_pnl_numpy(b: CashflowBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Plain numpy twin of :func:`cashflow_pnl`, ``[S, n]``."""
    return numpy_pnl(_cf_value_numpy, value_diff, b, base, new)


def rate_future_price(r: RateFutureBook, L):
    """``100 (1 - f)`` with ``f`` the simple forward rate over ``[t1, t2]`` (jax or numpy)."""
    xp = np if isinstance(L, np.ndarray) else jnp
    z1, z2 = zero_at(L, r.p1), zero_at(L, r.p2)
    growth = xp.exp(z2 * r.t2 - z1 * r.t1)  # DF(t1) / DF(t2)
    return 100.0 * (1.0 - (growth - 1.0) / (r.t2 - r.t1))


def _rf_state(r: RateFutureBook, L):
    return rate_future_price(r, L), fx_level(L, r.fx_idx)


rate_future_pnl_one, rate_future_pnl = make_kernel(_rf_state, settled_diff)


def rate_future_pnl_numpy(r: RateFutureBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`rate_future_pnl`, ``[S, n]``."""
    return numpy_pnl(_rf_state, settled_diff, r, base, new)


# ---------------------------------------------------------------------------------------------------
# book -> arrays
# ---------------------------------------------------------------------------------------------------


def _curve_ccy(und: str) -> str:
    return factor_spec(und).currency


def _opt(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def rates_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    out = []
    for _, row in df.iterrows():
        ccy = _curve_ccy(row["underlying"])
        fs = curve_factors(ccy)
        sf = _opt(row.get("spread_factor"))
        if sf and row["type"] == "bond":
            fs.append(sf)
        fx = fx_factor(row["currency"], base_ccy)
        out.append(fs + ([fx] if fx else []))
    return out


def cashflow_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp, pack: bool = True) -> CashflowBook:
    """Bonds and swaps at ``as_of``; ``pack`` False leaves ``layout`` None (for a caller that packs
    several books' flows together, as :func:`kernels.path_book` does)."""
    flows = []
    for _, row in df.iterrows():
        t, a = bond_cashflows(as_of, row["maturity"], float(row["coupon"]), int(row["frequency"]))
        flows.append((t, a))
    n = len(flows)
    J = max(len(t) for t, _ in flows)
    times = np.zeros((n, J))
    amounts = np.zeros((n, J))
    for i, (t, a) in enumerate(flows):
        times[i, : len(t)] = t
        amounts[i, : len(a)] = a
    pts = [curve_points(_curve_ccy(u), times[i], idx) for i, u in enumerate(df["underlying"])]
    pts = CurvePoints(*(np.stack([getattr(p, f) for p in pts]) for f in CurvePoints._fields))
    sp_idx, sp_w = [], []
    for sf, typ in zip(df["spread_factor"] if "spread_factor" in df else [None] * n, df["type"]):
        sf = _opt(sf)
        use = bool(sf) and typ == "bond"
        sp_idx.append(idx[sf] if use else 0)
        sp_w.append(1.0 if use else 0.0)
    book = CashflowBook(
        times=times,
        amounts=amounts,
        pts=pts,
        spread_idx=np.array(sp_idx, dtype=np.int64),
        spread_w=np.array(sp_w),
        const=np.where(df["type"].to_numpy() == "swap", -1.0, 0.0),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        fx_idx=np.array([fx_index(c, base_ccy, idx) for c in df["currency"]], dtype=np.int64),
    )
    if not pack:
        return book
    curve_ids = pd.factorize(pd.Series([_curve_ccy(u) for u in df["underlying"]]))[0]
    return book._replace(layout=flow_layout(book, curve_ids=curve_ids))


def rate_future_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> RateFutureBook:
    t1, t2, p1, p2 = [], [], [], []
    for _, row in df.iterrows():
        f = _opt(row.get("frequency")) or 4
        start = pd.Timestamp(row["maturity"])
        end = start + pd.DateOffset(months=12 // int(f))
        a, b = year_fraction(as_of, [start, end])
        if a <= 0.0:  # the rate period has started (a book valued at a horizon): fixed on that day's curve
            a, b = 0.0, b - a
        ccy = _curve_ccy(row["underlying"])
        t1.append(a)
        t2.append(b)
        p1.append(curve_points(ccy, np.array(a), idx))
        p2.append(curve_points(ccy, np.array(b), idx))
    stack = lambda ps: CurvePoints(*(np.array([getattr(p, f) for p in ps]) for f in CurvePoints._fields))  # noqa: E731
    if not len(df):
        raise ConfigError("no rate futures")
    return RateFutureBook(
        t1=np.array(t1),
        t2=np.array(t2),
        p1=stack(p1),
        p2=stack(p2),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        fx_idx=np.array([fx_index(c, base_ccy, idx) for c in df["currency"]], dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------------
# valued at a horizon (:func:`kernels.age`)
# ---------------------------------------------------------------------------------------------------


def cashflow_age(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp, at: pd.Timestamp,
                 base: np.ndarray, pack: bool = True) -> CashflowBook:
    """Bonds and swaps valued at the later date ``at``: the flows after ``at`` on the curve (whose zero
    yields keep their tenor, so every time shrinks), and in ``const`` the cash paid since ``as_of``
    per unit of face, held without interest: the bond's coupons and face; for a swap the fixed
    coupons less the floating leg's growth ``exp(z(tau) tau)`` over ``tau = min(at, maturity) - as_of``,
    with ``z`` today's zero yield at ``tau`` (the floating leg, worth par today, accrues at the rate
    fixed today and is worth par again at ``at``; after maturity the swap holds its cash)."""
    book = cashflow_build(df, idx, base_ccy, at, pack=pack)
    end = np.datetime64(pd.Timestamp(at).normalize().date(), "D")
    const = np.zeros(len(df))
    for i, (_, row) in enumerate(df.iterrows()):
        freq = int(row["frequency"])
        dates = _schedule_days(pd.Timestamp(as_of), row["maturity"], freq)
        amounts = np.full(len(dates), float(row["coupon"]) / freq)
        if len(amounts):
            amounts[-1] += 1.0
        const[i] = float(amounts[dates <= end].sum())
        if row["type"] == "swap":
            tau = float(min(year_fraction(as_of, [at])[0], year_fraction(as_of, [row["maturity"]])[0]))
            z = float(zero_at(np.asarray(base, float), curve_points(_curve_ccy(row["underlying"]), np.array(tau), idx)))
            const[i] -= math.exp(z * tau)
    return book._replace(const=const)


def cashflow_mark(b: CashflowBook, L) -> np.ndarray:
    return cashflow_values_numpy(b, L)


def rate_future_mark(r: RateFutureBook, L) -> np.ndarray:
    L = np.atleast_2d(np.asarray(L, dtype=float))
    return r.units * rate_future_price(r, L) * fx_level(L, r.fx_idx)
