"""VIX futures and VIX options, priced off an equity index's implied-vol surface.

The model (``docs/kernels.md``, *VIX futures and options*) in three steps.

1. **The surface's ATM term structure.**  The ATM vol of the surface ``U`` (:mod:`kernels._options`)
   at a tenor ``t`` (years) and its total variance are::

       sigma(t) = max(ATM + TERM ln(t / T0), VOL_FLOOR),    w(t) = sigma(t)**2 t,    w(0) = 0

   with ``ATM`` and ``TERM`` the levels of ``VOL.U.ATM`` and ``VOL.U.TERM`` and ``T0 = 30/365``.

2. **The VIX future** settling at ``T``: the VIX at ``T`` measures the 30-day variance from ``T`` to
   ``T + tau`` (``tau = 30/365``, the VIX's 30 calendar days on an Actual/365 year; CBOE, *VIX White
   Paper*, 2019).  Its value today is the forward variance between the two tenors, read off the
   surface's total variance (total variance is additive in time: Carr and Madan, "Towards a theory of
   volatility trading", 1998; Gatheral, *The Volatility Surface*, 2006, ch. 11)::

       FV(T) = (w(T + tau) - w(T)) / tau,       F(T) = 100 sqrt(max(FV(T), VOL_FLOOR**2))

   in VIX points.  With ``TERM = 0`` the future is ``100 ATM`` at every expiry; at ``T = 0`` (a future
   settling now) it is ``100 sigma(tau) = 100 ATM``, the spot VIX (the bundled ``VOL.SPX.ATM`` is the
   VIX over 100).  Simplifications: the ATM vol stands in for the VIX's strip of out-of-the-money
   options (the skew's contribution to the index is carried by the ATM level; ``SKEW`` and ``CURV``
   do not move a VIX instrument), and there is no convexity adjustment: ``F`` is ``sqrt(E[VIX_T**2])``, which lies above
   ``E[VIX_T]`` by Jensen's inequality.  The future is settled daily: a move pays
   ``u (F' - F) X'`` (``u`` = quantity x multiplier, ``X`` the FX factor of its currency).

3. **The VIX option** expiring at ``T`` is Black-76 on the VIX future of the same expiry, with the
   vol-of-vol ``nu``, the level of ``VOL.U.VOV`` (annualised log-vol of the VIX future, a decimal),
   discounted on the position's currency curve (Black, 1976; Hull, *Options, Futures and Other
   Derivatives*, 10th ed., ch. 18, "Futures options and Black's model")::

       V = u DF(T) omega (F N(omega d1) - K N(omega d2)) X,   d1 = ln(F/K) / (nu sqrt T) + nu sqrt T / 2,
       d2 = d1 - nu sqrt T,   DF(T) = exp(-r(T) T)

   ``K`` in VIX points, ``omega`` +1 for a call, -1 for a put; ``nu`` is floored at ``VOL_FLOOR``.
   One flat vol-of-vol per surface: no term structure or skew of the VIX options' own vols.

An option that expires inside a horizon (:func:`kernels.age`) pays ``max(omega (F(0) - K), 0)`` on the
horizon's levels, ``F(0) = 100 sigma(tau)``, and holds it as cash; a future that settles inside it is
worth ``F(0)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import DataError

from ._common import CurvePoints, curve_factors, curve_points, fx_index, fx_level, stack_points, year_fraction, zero_at
from ._edge import make_kernel, numpy_pnl, settled_diff, value_diff
from ._options import T0_YEARS, VOL_FLOOR, black, black_numpy

__all__ = [
    "VIX_TAU_YEARS",
    "VOV_PARAM",
    "VixFutureBook",
    "VixOptionBook",
    "SettledVixOptionBook",
    "atm_total_variance",
    "vix_forward_variance",
    "vix_futures_level",
    "vix_future_price",
    "vix_future_value",
    "vix_option_value",
    "vix_option_values_numpy",
    "surface_factors",
]

#: the VIX's measurement window (years): 30 calendar days, Actual/365 (equal to the surface's ``T0``)
VIX_TAU_YEARS = 30.0 / 365.0
#: name of the vol-of-vol parameter of a surface, ``VOL.<U>.VOV``
VOV_PARAM = "VOV"
#: VIX points per unit of decimal vol
POINTS = 100.0


class VixFutureBook(NamedTuple):
    """``n`` VIX futures (all ``[n]``).

    atm_idx, term_idx : columns of ``VOL.U.ATM`` and ``VOL.U.TERM``
    expiry : ``T``, years to final settlement (0 for a future settled by the valuation date)
    units : quantity x multiplier (currency per VIX point)
    fx_idx : column of the factor converting the position's currency to the base currency (-1: none)
    """

    atm_idx: np.ndarray
    term_idx: np.ndarray
    expiry: np.ndarray
    units: np.ndarray
    fx_idx: np.ndarray


class VixOptionBook(NamedTuple):
    """``n`` European VIX options (all ``[n]``, curve points ``[n]``).

    atm_idx, term_idx, vov_idx : columns of ``VOL.U.ATM``, ``VOL.U.TERM`` and ``VOL.U.VOV``
    strike : ``K`` in VIX points
    expiry : ``T``, years to expiry (> 0)
    omega : +1 call, -1 put
    units : quantity x multiplier
    dom : interpolation of the discount curve's zero yield at ``T``
    fx_idx : column of the FX factor of the position's currency (-1: none)
    """

    atm_idx: np.ndarray
    term_idx: np.ndarray
    vov_idx: np.ndarray
    strike: np.ndarray
    expiry: np.ndarray
    omega: np.ndarray
    units: np.ndarray
    dom: CurvePoints
    fx_idx: np.ndarray


class SettledVixOptionBook(NamedTuple):
    """``n`` VIX options that expired between the as-of date and a horizon, held as their payoff
    (all ``[n]``; fields as in :class:`VixOptionBook`)."""

    atm_idx: np.ndarray
    term_idx: np.ndarray
    strike: np.ndarray
    omega: np.ndarray
    units: np.ndarray
    fx_idx: np.ndarray


# ---------------------------------------------------------------------------------------------------
# formulas (jax or numpy)
# ---------------------------------------------------------------------------------------------------


def _xp(*arrays):
    """jax.numpy if any argument is a JAX array (or tracer), else numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def atm_total_variance(atm, term, t, floor: bool = True):
    """``w(t) = sigma(t)**2 t`` with ``sigma(t) = ATM + TERM ln(t / T0)`` (floored at
    :data:`VOL_FLOOR` unless ``floor`` is False), and ``w = 0`` where ``t <= 0``.  Broadcasts; jax or
    numpy (jax when any argument is a JAX array)."""
    xp = _xp(atm, term, t)
    live = t > 0
    ts = xp.where(live, t, T0_YEARS)  # a safe argument for the logarithm (and its derivative) at t = 0
    sig = atm + term * xp.log(ts / T0_YEARS)
    if floor:
        sig = xp.maximum(sig, VOL_FLOOR)
    return xp.where(live, sig * sig * ts, 0.0)


def vix_forward_variance(atm, term, T, floor: bool = True):
    """``FV(T) = (w(T + tau) - w(T)) / tau``: the surface's forward ATM variance over the 30 days the
    VIX measures at ``T`` (decimal variance per year)."""
    return (atm_total_variance(atm, term, T + VIX_TAU_YEARS, floor) - atm_total_variance(atm, term, T, floor)) / VIX_TAU_YEARS


def vix_futures_level(atm, term, T):
    """``F(T) = 100 sqrt(max(FV(T), VOL_FLOOR**2))``: the VIX future settling at ``T``, in VIX points."""
    xp = _xp(atm, term, T)
    return POINTS * xp.sqrt(xp.maximum(vix_forward_variance(atm, term, T), VOL_FLOOR * VOL_FLOOR))


def vix_future_price(v: VixFutureBook | VixOptionBook | SettledVixOptionBook, L, T=None):
    """The VIX future of each instrument at factor levels ``L[..., F]`` (jax or numpy), at its expiry
    (``T`` overrides it; the settled book's is 0)."""
    if T is None:
        T = getattr(v, "expiry", 0.0)
    return vix_futures_level(L[..., v.atm_idx], L[..., v.term_idx], T)


def _future_state(v: VixFutureBook, L):
    return vix_future_price(v, L), fx_level(L, v.fx_idx)


def vix_future_value(v: VixFutureBook, L):
    """``units x F x X``: the future's mark in base currency (a daily-settled future's P&L between two
    valuations is the difference of marks at the same FX level)."""
    return v.units * vix_future_price(v, L) * fx_level(L, v.fx_idx)


def vix_option_value(o: VixOptionBook, L):
    """Value in base currency of VIX option positions at factor levels ``L[..., F]`` (jax or numpy):
    Black-76 on the VIX future of the option's expiry with vol ``VOL.U.VOV``."""
    xp = _xp(L, o.expiry)
    F = vix_future_price(o, L)
    nu = xp.maximum(L[..., o.vov_idx], VOL_FLOOR)
    DF = xp.exp(-zero_at(L, o.dom) * o.expiry)
    px = (black_numpy if xp is np else black)(F, o.strike, nu * xp.sqrt(o.expiry), o.omega)
    return o.units * DF * px * fx_level(L, o.fx_idx)


def settled_vix_option_value(o: SettledVixOptionBook, L):
    """``units max(omega (F(0) - K), 0) X``: the payoff of an expired VIX option, ``F(0) = 100 sigma(tau)``
    the VIX at the levels ``L[..., F]``."""
    xp = _xp(L)
    return o.units * xp.maximum(o.omega * (vix_future_price(o, L, 0.0) - o.strike), 0.0) * fx_level(L, o.fx_idx)


#: one-instrument P&L kernels (for automatic differentiation) and their jitted batches ``[S, n]``
vix_future_pnl_one, vix_future_pnl = make_kernel(_future_state, settled_diff)
vix_option_pnl_one, vix_option_pnl = make_kernel(vix_option_value)
settled_vix_option_pnl_one, settled_vix_option_pnl = make_kernel(settled_vix_option_value)


def vix_future_pnl_numpy(v: VixFutureBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`vix_future_pnl`, ``[S, n]``."""
    return numpy_pnl(_future_state, settled_diff, v, base, new)


def vix_option_pnl_numpy(o: VixOptionBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`vix_option_pnl`, ``[S, n]``."""
    return numpy_pnl(vix_option_value, value_diff, o, base, new)


def settled_vix_option_pnl_numpy(o: SettledVixOptionBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`settled_vix_option_pnl`, ``[S, n]``."""
    return numpy_pnl(settled_vix_option_value, value_diff, o, base, new)


def vix_option_values_numpy(o: VixOptionBook, L: np.ndarray) -> np.ndarray:
    """Value ``[S, n]`` in base currency of ``o.units`` of each VIX option at factor levels ``L [S, F]``."""
    return vix_option_value(o, np.atleast_2d(np.asarray(L, dtype=float)))


def vix_future_mark(v: VixFutureBook, L) -> np.ndarray:
    return vix_future_value(v, np.atleast_2d(np.asarray(L, dtype=float)))


def vix_option_mark(o: VixOptionBook, L) -> np.ndarray:
    return vix_option_values_numpy(o, L)


def settled_vix_option_mark(o: SettledVixOptionBook, L) -> np.ndarray:
    return settled_vix_option_value(o, np.atleast_2d(np.asarray(L, dtype=float)))


# ---------------------------------------------------------------------------------------------------
# book -> arrays
# ---------------------------------------------------------------------------------------------------


def surface_factors(underlying: str) -> tuple[str, str, str]:
    """``(VOL.U.ATM, VOL.U.TERM, VOL.U.VOV)`` of the surface that ``underlying`` (``VOL.U.ATM``) names."""
    name = underlying.split(".")[1]
    return f"VOL.{name}.ATM", f"VOL.{name}.TERM", f"VOL.{name}.{VOV_PARAM}"


def _fx(ccy: str, base_ccy: str) -> list[str]:
    return [] if ccy == base_ccy else [f"FX.{ccy}{base_ccy}"]


def _disc(row) -> str:
    c = row.get("curve") if hasattr(row, "get") else None
    return c if isinstance(c, str) and c else row["currency"]


def vix_future_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    return [[*surface_factors(und)[:2], *_fx(ccy, base_ccy)] for und, ccy in zip(df["underlying"], df["currency"])]


def vix_option_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    return [[*surface_factors(row["underlying"]), *_fx(row["currency"], base_ccy), *curve_factors(_disc(row))]
            for _, row in df.iterrows()]


def _surface_cols(df: pd.DataFrame, idx: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    names = [surface_factors(u) for u in df["underlying"]]
    return (np.array([idx[a] for a, _, _ in names], dtype=np.int64), np.array([idx[t] for _, t, _ in names], dtype=np.int64))


def _units(df: pd.DataFrame) -> np.ndarray:
    return (df["quantity"] * df["multiplier"]).to_numpy(dtype=float)


def _fx_cols(df: pd.DataFrame, base_ccy: str, idx: dict[str, int]) -> np.ndarray:
    return np.array([fx_index(c, base_ccy, idx) for c in df["currency"]], dtype=np.int64)


def vix_future_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> VixFutureBook:
    atm, term = _surface_cols(df, idx)
    return VixFutureBook(
        atm_idx=atm,
        term_idx=term,
        # a future that settled before ``as_of`` (a book valued at a horizon) is worth the spot VIX
        expiry=np.maximum(year_fraction(as_of, df["expiry"].to_numpy()), 0.0),
        units=_units(df),
        fx_idx=_fx_cols(df, base_ccy, idx),
    )


def vix_option_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> VixOptionBook:
    atm, term = _surface_cols(df, idx)
    T = year_fraction(as_of, df["expiry"].to_numpy())
    pts = stack_points([curve_points(_disc(row), T[j : j + 1], idx) for j, (_, row) in enumerate(df.iterrows())])
    return VixOptionBook(
        atm_idx=atm,
        term_idx=term,
        vov_idx=np.array([idx[surface_factors(u)[2]] for u in df["underlying"]], dtype=np.int64),
        strike=df["strike"].to_numpy(dtype=float),
        expiry=T,
        omega=np.where(df["option_type"].to_numpy() == "call", 1.0, -1.0),
        units=_units(df),
        dom=CurvePoints(*(a[:, 0] for a in pts)),
        fx_idx=_fx_cols(df, base_ccy, idx),
    )


def settled_vix_option_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> SettledVixOptionBook:
    """The payoff of each VIX option of ``df`` (all expired by ``as_of``)."""
    atm, term = _surface_cols(df, idx)
    return SettledVixOptionBook(
        atm_idx=atm,
        term_idx=term,
        strike=df["strike"].to_numpy(dtype=float),
        omega=np.where(df["option_type"].to_numpy() == "call", 1.0, -1.0),
        units=_units(df),
        fx_idx=_fx_cols(df, base_ccy, idx),
    )


def _check_forward_variance(v, base: np.ndarray, ids, factors) -> None:
    atm, term = base[v.atm_idx], base[v.term_idx]
    T = v.expiry
    sig_t = atm + term * np.log(np.where(T > 0, T, T0_YEARS) / T0_YEARS)
    sig_end = atm + term * np.log((T + VIX_TAU_YEARS) / T0_YEARS)
    fv = vix_forward_variance(atm, term, T, floor=False)
    bad = np.flatnonzero(~(atm > 0) | ~(sig_end > 0) | ((T > 0) & ~(sig_t > 0)) | ~(fv > 0))
    if len(bad):
        j = bad[0]
        raise DataError(
            f"position {ids[j]!r}, field 'expiry': the ATM term structure of {factors[v.atm_idx[j]]} "
            f"({atm[j]:.6f}) and {factors[v.term_idx[j]]} ({term[j]:.6f}) gives ATM vols {sig_t[j]:.6f} at "
            f"{T[j]:.4f}y and {sig_end[j]:.6f} at {T[j] + VIX_TAU_YEARS:.4f}y and a forward variance of {fv[j]:.6f} "
            "over the VIX's 30 days; the vols and the forward variance must be > 0 (TERM > -ATM / 2 keeps it so)"
        )


def check_vix_future(v: VixFutureBook, base: np.ndarray, ids, factors) -> None:
    """Reject a surface whose ATM term structure gives a future a non-positive vol or forward variance."""
    _check_forward_variance(v, np.asarray(base, dtype=float), ids, factors)


def check_vix_option(o: VixOptionBook, base: np.ndarray, ids, factors) -> None:
    """:func:`check_vix_future` for the option's future, and a positive vol-of-vol."""
    base = np.asarray(base, dtype=float)
    _check_forward_variance(o, base, ids, factors)
    nu = base[o.vov_idx]
    bad = np.flatnonzero(~(nu > 0))
    if len(bad):
        j = bad[0]
        raise DataError(f"position {ids[j]!r}: vol-of-vol {factors[o.vov_idx[j]]} is {nu[j]:.6f}; it must be > 0 "
                        "(the annualised vol of the VIX future, a decimal: 0.9 = 90%)")
