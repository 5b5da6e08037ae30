"""Theta: how each position's value changes as time passes with every factor level unchanged.

``theta = dV/dh`` at ``h = 0``, with ``V(h)`` the value in base currency of the position valued at the
as-of date plus ``h`` years (Actual/365 Fixed) at the same factor levels, plus the cash the position
receives meanwhile per year; per year, in base currency (divide by 365 for a day).  It is the exact
derivative of the pricing kernels (``jax.grad`` with respect to ``h``), the time term of the Taylor
expansion of Hull, *Options, Futures and Other Derivatives*, 10th ed., ch. 19 ("Theta").

Conventions (the model of each instrument is that of its pricing module):

* Zero yields keep their tenor, so the curve rolls down: a time ``t`` on a curve becomes ``t - h``
  and its zero yield is read again at ``t - h``, linearly between the tenors ``lo`` and ``hi`` that
  bracket it, ``w_hi = (t - h - T_lo) / (T_hi - T_lo)``; flat extrapolation outside the grid has zero
  slope.  A time exactly on an interior tenor moves into the segment below it (time runs forward).
* Options: ``expiry``, ``fwd_time``, ``basis_time`` and the curve points at the expiry shift; the vol
  surface (whose parameters keep their meaning) is read at the shorter time to expiry.
* FX forwards and commodity futures: the maturity shifts; rate futures: ``t1`` and ``t2`` shift.
  Futures settle daily, so a future's theta is ``units x dPrice/dh x X``.
* Bonds: every flow time shifts (a flow on the as-of date is not in the book).  Swaps: the fixed leg
  as a bond; the floating leg, worth par, accrues at the curve's zero yield at time 0 (flat
  extrapolation: the shortest tenor), which adds ``-units x z(0) x X``.
* CDS: period times shift; the first period now starts at the valuation date, so its accrual
  fractions ``tau`` and ``tau_mid`` shrink by ``h x 365/360`` (the model values the premium from the
  valuation date), and the premium accrued goes to cash: ``+units x coupon x 365/360 x X``.
* VIX futures and options: the expiry (and an option's curve point) shifts, so the future rolls along
  the surface's ATM term structure (:mod:`kernels._vix`); a future's theta is ``units x dF/dh x X``.
* Equities and equity futures: 0 (no dividends or futures basis are modelled).

The shifted arrays are exact in ``h`` only inside the curve segments of ``h = 0``; they serve the
derivative at ``h = 0``.  FX translation ``X`` is held at its level.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stressgrid.core import factor_spec

from ._common import DAYS_PER_YEAR, CurvePoints, curve_factors, fx_level
from ._credit import ACCRUAL_DAYS, CdsBook, _cds_value_base
from ._forwards import CommodityFutureBook, FxForwardBook, futures_price, fx_forward_value
from ._linear import LinearBook
from ._options import OptionBook, option_value_one
from ._rates import CashflowBook, RateFutureBook, cashflow_value_one, rate_future_price
from ._revalue import PreparedBook
from ._tuning import ONCE_COMPILER_OPTIONS
from ._vix import VixFutureBook, VixOptionBook, vix_future_value, vix_option_value

__all__ = ["CurveGrid", "ThetaRule", "THETA_RULES", "curve_grid", "roll", "shift", "theta_one", "theta"]


class CurveGrid(NamedTuple):
    """The tenor grid of every curve column of a factor list (all ``[F]``).

    years : tenor in years of each ``IR.*`` column, 0 elsewhere
    prev : column of the next shorter tenor of the same curve (the column itself for the shortest
        tenor and for every other factor)
    first : column of the curve's shortest tenor (the column itself for every other factor)
    """

    years: np.ndarray
    prev: np.ndarray
    first: np.ndarray


def curve_grid(factors) -> CurveGrid:
    """:class:`CurveGrid` of the factor list ``factors[F]``: each currency's grid of
    :func:`kernels.curve_tenors` where the list holds all of it, else its ``IR.<CCY>.*`` factors."""
    factors = list(factors)
    idx = {f: i for i, f in enumerate(factors)}
    F = len(factors)
    years = np.zeros(F)
    prev = np.arange(F, dtype=np.int64)
    first = np.arange(F, dtype=np.int64)
    by_ccy: dict[str, list[tuple[float, int]]] = {}
    for i, f in enumerate(factors):
        if f.startswith("IR."):
            spec = factor_spec(f)
            years[i] = spec.tenor_years
            by_ccy.setdefault(spec.currency, []).append((spec.tenor_years, i))
    for ccy, pts in by_ccy.items():
        names = curve_factors(ccy)
        cols = [idx[n] for n in names] if all(n in idx for n in names) else [i for _, i in sorted(pts)]
        for k, c in enumerate(cols):
            prev[c] = cols[k - 1] if k else c
            first[c] = cols[0]
    return CurveGrid(years, prev, first)


def roll(pts: CurvePoints, t, h, grid: CurveGrid) -> CurvePoints:
    """The interpolation ``pts`` of a curve at times ``t`` moved to ``t - h`` (jax, any shape).

    A point exactly on an interior tenor (``w_hi = 0`` at ``T_lo``) is first rewritten on the segment
    below, with the same value; then inside a segment ``w_hi`` falls by ``h / (T_hi - T_lo)``, and
    outside the grid (flat extrapolation) the weights stay.
    """
    y = grid.years
    node = (pts.lo != pts.hi) & (pts.w_hi == 0.0) & (t == y[pts.lo]) & (grid.prev[pts.lo] != pts.lo)
    lo = jnp.where(node, grid.prev[pts.lo], pts.lo)
    hi = jnp.where(node, pts.lo, pts.hi)
    w_lo = jnp.where(node, 0.0, pts.w_lo)
    w_hi = jnp.where(node, 1.0, pts.w_hi)
    span = y[hi] - y[lo]
    slides = (lo != hi) & (w_hi > 0.0) & (t <= y[hi]) & (span > 0.0)
    d = jnp.where(slides, h / jnp.where(slides, span, 1.0), 0.0)
    return CurvePoints(lo, hi, w_lo + d, w_hi - d)


def _shift_option(o: OptionBook, h, grid: CurveGrid) -> OptionBook:
    T = o.expiry
    return o._replace(
        expiry=T - h,
        fwd_time=o.fwd_time - h,
        basis_time=jnp.where(o.basis_time != 0.0, o.basis_time - h, 0.0),
        dom=roll(o.dom, T, h, grid),
        forn=roll(o.forn, T, h, grid),
    )


def _shift_cashflow(b: CashflowBook, h, grid: CurveGrid) -> CashflowBook:
    return b._replace(times=b.times - h, pts=roll(b.pts, b.times, h, grid))


def _shift_rate_future(r: RateFutureBook, h, grid: CurveGrid) -> RateFutureBook:
    return r._replace(t1=r.t1 - h, t2=r.t2 - h, p1=roll(r.p1, r.t1, h, grid), p2=roll(r.p2, r.t2, h, grid))


def _shift_fx_forward(f: FxForwardBook, h, grid: CurveGrid) -> FxForwardBook:
    return f._replace(mat=f.mat - h, forn=roll(f.forn, f.mat, h, grid), dom=roll(f.dom, f.mat, h, grid))


def _shift_commodity(c: CommodityFutureBook, h, grid: CurveGrid) -> CommodityFutureBook:
    return c._replace(mat=c.mat - h)


def _shift_vix_future(v: VixFutureBook, h, grid: CurveGrid) -> VixFutureBook:
    return v._replace(expiry=v.expiry - h)


def _shift_vix_option(o: VixOptionBook, h, grid: CurveGrid) -> VixOptionBook:
    return o._replace(expiry=o.expiry - h, dom=roll(o.dom, o.expiry, h, grid))


def _shift_cds(c: CdsBook, h, grid: CurveGrid) -> CdsBook:
    first = jnp.arange(jnp.shape(c.t_start)[-1]) == 0  # the period running at the as-of date
    accrued = h * DAYS_PER_YEAR / ACCRUAL_DAYS
    return c._replace(
        t_start=jnp.where(first, c.t_start, c.t_start - h),
        t_end=c.t_end - h,
        t_mid=c.t_mid - h,
        tau=jnp.where(first, c.tau - accrued, c.tau),
        tau_mid=jnp.where(first, c.tau_mid - accrued, c.tau_mid),
        p_end=roll(c.p_end, c.t_end, h, grid),
        p_mid=roll(c.p_mid, c.t_mid, h, grid),
    )


def _future_value(price: Callable):
    def value(inst, L):
        return inst.units * price(inst, L) * fx_level(L, inst.fx_idx)

    return value


def _swap_float_carry(b: CashflowBook, L, grid: CurveGrid):
    # const is -1 for a swap's floating leg (0 for a bond): it accrues at the zero yield at time 0
    z0 = L[grid.first[b.pts.lo[..., 0]]]
    return b.units * b.const * z0 * fx_level(L, b.fx_idx)


def _cds_premium_carry(c: CdsBook, L, grid: CurveGrid):
    return c.units * c.coupon * (DAYS_PER_YEAR / ACCRUAL_DAYS) * fx_level(L, c.fx_idx)


class ThetaRule(NamedTuple):
    """How one arrays type ages: ``value(inst, L[F])`` (base currency; for a future ``units x price x
    X``), ``shift(inst, h, grid)`` (the instrument valued ``h`` years later), ``carry(inst, L, grid)``
    (cash received per year, or None).  ``value`` None: theta is 0."""

    value: Callable | None
    shift: Callable | None = None
    carry: Callable | None = None


_rate_future_value = _future_value(rate_future_price)
_commodity_value = _future_value(futures_price)

#: arrays type -> its :class:`ThetaRule`; a type absent here gets a NaN theta
THETA_RULES: dict[type, ThetaRule] = {
    LinearBook: ThetaRule(None),
    OptionBook: ThetaRule(option_value_one, _shift_option),
    CashflowBook: ThetaRule(cashflow_value_one, _shift_cashflow, _swap_float_carry),
    RateFutureBook: ThetaRule(_rate_future_value, _shift_rate_future),
    FxForwardBook: ThetaRule(fx_forward_value, _shift_fx_forward),
    CommodityFutureBook: ThetaRule(_commodity_value, _shift_commodity),
    CdsBook: ThetaRule(_cds_value_base, _shift_cds, _cds_premium_carry),
    VixFutureBook: ThetaRule(vix_future_value, _shift_vix_future),
    VixOptionBook: ThetaRule(vix_option_value, _shift_vix_option),
}


def shift(arrays: NamedTuple, h, grid: CurveGrid) -> NamedTuple:
    """``arrays`` (one instrument or a whole group, any type of :data:`THETA_RULES`) valued ``h``
    years later, under the conventions of the module docstring (jax; exact derivative at ``h = 0``)."""
    rule = THETA_RULES[type(arrays)]
    return arrays if rule.shift is None else rule.shift(arrays, h, grid)


def theta_one(rule: ThetaRule, inst: NamedTuple, L, grid: CurveGrid):
    """Theta of one instrument at levels ``L[F]``: ``d value(shift(inst, h), L) / dh`` at 0 plus its
    carry (base currency per year)."""
    if rule.value is None:
        return jnp.zeros(())
    dv = jax.grad(lambda h: rule.value(rule.shift(inst, h, grid), L))(jnp.zeros(()))
    return dv if rule.carry is None else dv + rule.carry(inst, L, grid)


@partial(jax.jit, static_argnums=0, compiler_options=ONCE_COMPILER_OPTIONS)
def _group_theta(rule: ThetaRule, rows, base, grid: CurveGrid):
    # jitted with the rule as a static argument: compiled once per arrays type and book shape, without
    # XLA's costly passes (kernels._tuning.ONCE_COMPILER_OPTIONS)
    return jax.vmap(lambda inst: theta_one(rule, inst, base, grid))(rows)


def theta(book: PreparedBook, base: np.ndarray) -> np.ndarray:
    """Theta ``[n]`` of every position at the levels ``base[F]``: base currency per year.

    0 for positions without a pricer; NaN for a group whose arrays type has no rule in
    :data:`THETA_RULES`, and for every position of a book valued at a horizon (``book.offset`` set:
    the swaps' ``const`` there holds cash, not the floating leg).
    """
    base = np.asarray(base, dtype=float)
    out = np.zeros(book.n)
    if getattr(book, "offset", None) is not None:
        out[book.priced] = np.nan
        return out
    grid = curve_grid(book.factors)
    grid_j = CurveGrid(*(jnp.asarray(a) for a in grid))
    for g in book.groups:
        rule = THETA_RULES.get(type(g.arrays))
        if rule is None:
            out[g.columns] = np.nan
        elif rule.value is not None:
            rows = g.pricer.rows(g.arrays) if g.pricer.rows is not None else g.arrays
            out[g.columns] = np.asarray(_group_theta(rule, rows, jnp.asarray(base), grid_j))
    return out
