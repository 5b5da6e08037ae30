"""European options on equity indices, FX rates and commodity futures, on a parametric vol surface.

Models (all in the Black form, ``price = DF * omega * (F N(omega d1) - K N(omega d2))``,
``d1 = ln(F/K) / (sigma sqrt T) + sigma sqrt T / 2``, ``d2 = d1 - sigma sqrt T``, ``omega = +1`` for a
call and ``-1`` for a put; Hull, *Options, Futures and Other Derivatives*, 10th ed., ch. 15, 17, 18):

=================  =========================================  ===========================
underlying         forward ``F``                              model
=================  =========================================  ===========================
``EQ.X``           ``S exp((r_d - q) T)``                     Black-Scholes-Merton with a
                                                              continuous dividend yield ``q``
``FX.AAABBB``      ``S exp((r_BBB - r_AAA) T)``               Garman-Kohlhagen (1983)
``CMD.X``          ``S exp(b T_f)``, the futures price        Black (1976) on the future
=================  =========================================  ===========================

``DF = exp(-r_d T)`` with ``r_d`` the zero yield of the premium currency's curve at the expiry ``T``
(``r_AAA`` the foreign curve, ``b`` the commodity's annualised basis ``BASIS.X``, ``T_f`` the
futures maturity, defaulting to the expiry).  Times are Actual/365 Fixed from the as-of date.

Implied-vol surface
-------------------
Four factors per underlying ``U`` (``U`` is the underlying's name without its prefix, e.g. ``SPX``,
``EURUSD``, ``WTI``), all absolute decimals::

    sigma(k, T) = ATM + TERM * ln(T / T0) + SKEW * x + CURV * x**2,    x = k / sqrt(T),  k = ln(K / F)

``VOL.U.ATM`` is the at-the-money vol at ``T0 = 30/365`` (one month, like the VIX), ``VOL.U.TERM``
the slope of the ATM term structure per unit of log-maturity (negative: inverted), ``VOL.U.SKEW`` the
slope in standardised log-moneyness ``x`` (negative: puts richer than calls), ``VOL.U.CURV`` the
curvature (smile).  Standardising by ``sqrt(T)`` keeps one skew number meaningful across expiries
(the moneyness scaling of e.g. Natenberg, *Option Volatility and Pricing*, 2nd ed., ch. 24).  The
forward in ``k`` is the shocked forward, so the smile moves with the underlying (sticky moneyness).
Vols below :data:`VOL_FLOOR` are floored there.  Shocking ATM, TERM, SKEW and CURV separately moves
the level, inverts the term structure, steepens the skew or deepens the smile.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, DataError, fx_factor

from . import _tuning as tuning
from ._common import (
    CurvePoints,
    curve_factors,
    curve_points,
    fx_index,
    fx_level,
    norm_cdf,
    norm_cdf_numpy,
    normal_tail_ratio,
    stack_points,
    year_fraction,
    zero_at,
)
from ._edge import (
    block_differences,
    blocks_with_base,
    fill_blocks,
    make_kernel,
    numpy_pnl,
    value_diff,
    write_block_differences,
)

__all__ = [
    "OptionBook",
    "VOL_PARAMS",
    "VOL_FLOOR",
    "T0_YEARS",
    "black",
    "black_numpy",
    "surface_vol",
    "surface_vol_numpy",
    "option_value_one",
    "option_pnl_one",
    "option_pnl",
    "option_pnl_into",
    "option_pnl_numpy",
    "option_factors",
    "option_build",
    "option_model",
]

#: vol-surface parameters, in the order of the factor columns
VOL_PARAMS = ("ATM", "SKEW", "CURV", "TERM")
#: reference maturity of ``VOL.U.ATM`` (years)
T0_YEARS = 30.0 / 365.0
#: smallest implied vol the surface returns (decimal)
VOL_FLOOR = 0.01


class OptionBook(NamedTuple):
    """Struct-of-arrays of ``n`` European options (every field ``[n]``, curve points ``[n]``).

    spot_idx : column of the underlying's level ``S``
    fx_idx : column of the factor converting the premium currency to the base currency (-1: none)
    strike : ``K``, in units of the underlying's quote
    expiry : ``T``, years to expiry
    fwd_time : ``T_f``, years to the underlying future's maturity (commodities; ``T`` otherwise)
    omega : +1 call, -1 put
    units : quantity x multiplier
    dom : interpolation of the premium currency's zero yield at ``T``
    rd_in_fwd : 1 where ``r_d`` enters the forward (equity, FX), 0 for Black-76
    forn : interpolation of the foreign zero yield at ``T`` (FX; weight 0 otherwise)
    basis_idx : column of ``BASIS.X`` (commodities; 0 with ``basis_time`` 0 otherwise)
    basis_time : ``T_f`` for commodities, 0 otherwise
    div_yield : continuous dividend yield ``q`` (equity; 0 otherwise)
    vol_idx : ``[n, 4]`` columns of ``VOL.U.{ATM,SKEW,CURV,TERM}``
    """

    spot_idx: np.ndarray
    fx_idx: np.ndarray
    strike: np.ndarray
    expiry: np.ndarray
    fwd_time: np.ndarray
    omega: np.ndarray
    units: np.ndarray
    dom: CurvePoints
    rd_in_fwd: np.ndarray
    forn: CurvePoints
    basis_idx: np.ndarray
    basis_time: np.ndarray
    div_yield: np.ndarray
    vol_idx: np.ndarray


# ---------------------------------------------------------------------------------------------------
# formulas (one option; jax and numpy)
# ---------------------------------------------------------------------------------------------------


def black(F, K, sd, omega, log_fk=None):
    """Undiscounted Black price ``omega (F N(omega d1) - K N(omega d2))`` (Black 1976; Hull eq. 18.9).

    ``sd = sigma sqrt(T)``; all arguments broadcast.  Units of ``F`` and ``K``.  ``log_fk``, if
    given, is ``ln(F / K)`` (saves a logarithm when the caller has it).
    """
    d1 = (jnp.log(F / K) if log_fk is None else log_fk) / sd + 0.5 * sd
    d2 = d1 - sd
    return omega * (F * norm_cdf(omega * d1) - K * norm_cdf(omega * d2))


def black_numpy(F, K, sd, omega, log_fk=None):
    """Numpy twin of :func:`black` (``scipy.special.ndtr``)."""
    d1 = (np.log(F / K) if log_fk is None else log_fk) / sd + 0.5 * sd
    d2 = d1 - sd
    return omega * (F * norm_cdf_numpy(omega * d1) - K * norm_cdf_numpy(omega * d2))


def surface_vol(atm, skew, curv, term, k, T):
    """Implied vol of the module's surface at log-moneyness ``k = ln(K/F)`` and expiry ``T`` (years)."""
    x = k / jnp.sqrt(T)
    v = atm + term * jnp.log(T / T0_YEARS) + skew * x + curv * x * x
    return jnp.maximum(v, VOL_FLOOR)


def surface_vol_numpy(atm, skew, curv, term, k, T):
    """Numpy twin of :func:`surface_vol`."""
    x = k / np.sqrt(T)
    v = atm + term * np.log(T / T0_YEARS) + skew * x + curv * x * x
    return np.maximum(v, VOL_FLOOR)


def option_model(o: OptionBook, L):
    """Forward, discount factor and vol of one option (or a numpy batch) at levels ``L[..., F]``.

    Returns ``(F, DF, sigma, k)`` in the premium currency, ``k = ln(K / F)``.
    """
    xp = np if isinstance(L, np.ndarray) else jnp
    S = L[..., o.spot_idx]
    T = o.expiry
    rd = zero_at(L, o.dom)
    rf = zero_at(L, o.forn)
    b = L[..., o.basis_idx]
    log_carry = (o.rd_in_fwd * rd - rf - o.div_yield) * T + b * o.basis_time
    F = S * xp.exp(log_carry)
    DF = xp.exp(-rd * T)
    vol = L[..., o.vol_idx[..., 0]], L[..., o.vol_idx[..., 1]], L[..., o.vol_idx[..., 2]], L[..., o.vol_idx[..., 3]]
    k = xp.log(o.strike / F)
    sig = (surface_vol if xp is jnp else surface_vol_numpy)(*vol, k, T)
    return F, DF, sig, k


def option_value_one(o: OptionBook, L: jnp.ndarray) -> jnp.ndarray:
    """Value in base currency of one option position at factor levels ``L[F]``."""
    F, DF, sig, k = option_model(o, L)
    px = DF * black(F, o.strike, sig * jnp.sqrt(o.expiry), o.omega, -k)
    return o.units * px * fx_level(L, o.fx_idx)


#: ``option_pnl_one(o, base[F], new[F])``: full-revaluation P&L of one option (base currency), the
#: kernel that automatic differentiation uses; ``_option_pnl_vmap`` is its plain ``vmap`` batch
option_pnl_one, _option_pnl_vmap = make_kernel(option_value_one)


@partial(jax.jit, static_argnames=("block", "key"))
def _option_values(o: OptionBook, spot_cols, spot_of, base, new, block: int, key: tuple = ()):
    """Values in base currency ``[n, nb block]`` of every option: one column per row of ``new[S, F]``,
    then the ``base`` levels in every column left (``nb = ceil((S + 1) / block)``; column ``S`` is
    the base, see :func:`kernels._edge.blocks_with_base`).

    The model of :func:`option_value_one`, rearranged so that the work per option and scenario is
    small:

    * what does not depend on the scenario is computed once per option (``sqrt T``, ``ln K``,
      ``ln(T / T0)``, ``e^{-qT}``), and ``ln S`` once per underlying and scenario (``spot_cols`` the
      distinct spot columns, ``spot_of`` each option's row among them), so ``ln(F/K)`` needs no
      logarithm per option;
    * the price is ``omega (A - B)`` with ``A = DF F N(omega d1)`` and ``B = DF K N(omega d2)``.  Both
      CDFs come from :func:`normal_tail_ratio` and one exponential: ``DF K e^{-d2^2/2} =
      DF F e^{-d1^2/2}`` (because ``d1^2 - d2^2 = 2 ln(F/K)``), so with ``G = DF F e^{-d1^2/2}``,
      ``DF F N(-|d1|) = G m(|d1|)`` and ``DF K N(-|d2|) = G m(|d2|)``; the other side of zero is the
      complement (``DF F - G m(|d1|)``).  The two terms of the price then carry the same rounding of
      the exponential, which keeps deep out-of-the-money prices accurate to a few units in the last
      place (a difference of two erfc-based CDFs loses up to 1e-9 of them there);
    * three exponentials per option and scenario: ``DF = e^{-r_d T}``, ``DF F`` and ``e^{-d1^2/2}``.

    Scenarios run on the minor axis, ``block`` at a time (a loop of the compiled program whose
    arrays stay in cache), and every column, the base ones included, goes through the same loop
    body: a scenario at the base levels gives the base value bit for bit.  ``key``:
    :func:`kernels._tuning.snapshot`.
    """
    LT = blocks_with_base(base, new, block)
    ln_spot = jnp.log(LT[:, spot_cols, :])  # [nb, U, block]: one logarithm per underlying
    T = o.expiry[:, None]
    sqrt_t = jnp.sqrt(o.expiry)[:, None]
    inv_sqrt_t = 1.0 / sqrt_t
    ln_k = jnp.log(o.strike)[:, None]
    ln_tt0 = jnp.log(o.expiry / T0_YEARS)[:, None]
    q_t = (o.div_yield * o.expiry)[:, None]
    K = o.strike[:, None]
    w = o.omega[:, None]
    u = o.units[:, None]

    def value(lt, ls):
        S_ = lt[o.spot_idx]
        rd = o.dom.w_lo[:, None] * lt[o.dom.lo] + o.dom.w_hi[:, None] * lt[o.dom.hi]
        log_carry = o.rd_in_fwd[:, None] * rd * T - q_t
        log_carry = log_carry - (o.forn.w_lo[:, None] * lt[o.forn.lo] + o.forn.w_hi[:, None] * lt[o.forn.hi]) * T
        log_carry = log_carry + lt[o.basis_idx] * o.basis_time[:, None]
        k = ln_k - (ls[spot_of] + log_carry)  # ln(K / F)
        x = k * inv_sqrt_t
        atm, skew, curv, term = (lt[o.vol_idx[:, c]] for c in range(4))
        sig = jnp.maximum(atm + term * ln_tt0 + skew * x + curv * x * x, VOL_FLOOR)
        sd = sig * sqrt_t
        d1 = -k / sd + 0.5 * sd
        d2 = d1 - sd
        df_k = K * jnp.exp(-rd * T)
        df_f = S_ * jnp.exp(log_carry - rd * T)
        if tuning.TAIL_RATIO:
            g = df_f * jnp.exp(-0.5 * d1 * d1)
            t1 = g * normal_tail_ratio(jnp.abs(d1))  # DF F N(-|d1|)
            t2 = g * normal_tail_ratio(jnp.abs(d2))  # DF K N(-|d2|)
            a = jnp.where(w * d1 < 0, t1, df_f - t1)  # DF F N(omega d1)
            b = jnp.where(w * d2 < 0, t2, df_k - t2)  # DF K N(omega d2)
        else:
            a = df_f * norm_cdf(w * d1)
            b = df_k * norm_cdf(w * d2)
        return u * w * (a - b) * jnp.where(o.fx_idx[:, None] >= 0, lt[jnp.maximum(o.fx_idx, 0)], 1.0)

    return fill_blocks(value, (LT, ln_spot), jnp.zeros((o.strike.shape[0], LT.shape[0] * block)), block)


def option_pnl(o: OptionBook, base, new, block: int | None = None):
    """Full-revaluation P&L ``[S, n]`` (base currency) of a book of options from ``base[F]`` to each
    row of ``new[S, F]``: the model of :func:`option_value_one`, batched over options and scenarios
    by hand (see :func:`_option_values`); compiled once per book shape and ``S``.

    Returned as the transpose of an ``[n, S]`` array (a Fortran-ordered numpy view when the inputs are
    concrete; see :func:`kernels._edge.block_differences`).
    """
    new = jnp.asarray(new)
    return block_differences(_values(o, base, new, block), new.shape[0])


def option_pnl_into(o: OptionBook, base, new, out: np.ndarray, block: int | None = None) -> np.ndarray:
    """:func:`option_pnl` written into ``out[S, n]`` (fastest when ``out`` is Fortran-ordered)."""
    return write_block_differences(_values(o, base, jnp.asarray(new), block), out)


def _values(o: OptionBook, base, new, block: int | None = None):
    """:func:`_option_values` of ``new[S, F]``, ``block`` scenarios a pass (default
    :data:`kernels._tuning.SCENARIO_BLOCK`)."""
    block = block or tuning.SCENARIO_BLOCK
    spot_cols, spot_of = o.spot_idx, jnp.arange(jnp.shape(o.spot_idx)[0])  # a logarithm per option
    if tuning.LOG_SPOT_PER_UNDERLYING:
        try:
            spot_cols, spot_of = np.unique(np.asarray(o.spot_idx), return_inverse=True)
            spot_of = spot_of.reshape(-1)
        except jax.errors.TracerArrayConversionError:
            pass
    return _option_values(o, spot_cols, spot_of, jnp.asarray(base), new, block=block, key=tuning.snapshot())


def _value_numpy(o: OptionBook, L: np.ndarray) -> np.ndarray:
    F, DF, sig, k = option_model(o, L)
    return o.units * DF * black_numpy(F, o.strike, sig * np.sqrt(o.expiry), o.omega, -k) * fx_level(L, o.fx_idx)


def option_values_numpy(o: OptionBook, L: np.ndarray) -> np.ndarray:
    """Value ``[S, n]`` in base currency of ``o.units`` of each option at factor levels ``L [S, F]``."""
    return _value_numpy(o, np.atleast_2d(np.asarray(L, dtype=float)))


def option_pnl_numpy(o: OptionBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Plain numpy/scipy twin of :func:`option_pnl`, ``[S, n]``."""
    return numpy_pnl(_value_numpy, value_diff, o, base, new)


# ---------------------------------------------------------------------------------------------------
# book -> arrays
# ---------------------------------------------------------------------------------------------------


def vol_factors(underlying: str) -> list[str]:
    name = underlying.split(".", 1)[1]
    return [f"VOL.{name}.{p}" for p in VOL_PARAMS]


def _currencies(row) -> tuple[str, str | None]:
    """(premium currency, foreign currency or None) of an option row."""
    und = row["underlying"]
    if und.startswith("FX."):
        return und[6:9], und[3:6]
    return row["currency"], None


def _get(row, col):
    v = row.get(col) if hasattr(row, "get") else None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT else v


def option_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    out = []
    for _, row in df.iterrows():
        dom, forn = _currencies(row)
        disc = _get(row, "curve") or dom
        fs = [row["underlying"]]
        fx = fx_factor(dom, base_ccy)
        fs += [fx] if fx else []
        fs += curve_factors(disc)
        if forn:
            fs += curve_factors(forn)
        if row["underlying"].startswith("CMD."):
            fs.append("BASIS." + row["underlying"].split(".", 1)[1])
        fs += vol_factors(row["underlying"])
        out.append(fs)
    return out


def option_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> OptionBook:
    n = len(df)
    T = year_fraction(as_of, df["expiry"].to_numpy())
    mat = df["maturity"] if "maturity" in df else pd.Series([None] * n)
    dom_pts, for_pts, fx_i, basis_i, basis_t, rd_in, q, fwd_t, vol_i = [], [], [], [], [], [], [], [], []
    for j, (_, row) in enumerate(df.iterrows()):
        dom, forn = _currencies(row)
        disc = _get(row, "curve") or dom
        und = row["underlying"]
        dom_pts.append(curve_points(disc, T[j : j + 1], idx))
        if forn:
            p = curve_points(forn, T[j : j + 1], idx)
        else:  # no foreign rate: weight 0 on an arbitrary column
            p = CurvePoints(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1), np.zeros(1))
        for_pts.append(p)
        fx_i.append(fx_index(dom, base_ccy, idx))
        m = mat.iloc[j]
        tf = T[j] if m is None or pd.isna(m) else float(year_fraction(as_of, m)[0])
        if und.startswith("CMD."):
            if tf < T[j]:
                raise ConfigError(f"position {row['id']!r}, field 'maturity': the future matures before the option expires")
            basis_i.append(idx["BASIS." + und.split(".", 1)[1]])
            basis_t.append(tf)
            rd_in.append(0.0)
        else:
            basis_i.append(0)
            basis_t.append(0.0)
            rd_in.append(1.0)
        fwd_t.append(tf)
        dy = _get(row, "dividend_yield")
        q.append(float(dy) if dy is not None and und.startswith("EQ.") else 0.0)
        vol_i.append([idx[f] for f in vol_factors(und)])
    dom_p = stack_points(dom_pts)
    for_p = stack_points(for_pts)
    squeeze = lambda p: CurvePoints(*(a[:, 0] for a in p))  # noqa: E731
    return OptionBook(
        spot_idx=np.array([idx[u] for u in df["underlying"]], dtype=np.int64),
        fx_idx=np.array(fx_i, dtype=np.int64),
        strike=df["strike"].to_numpy(dtype=float),
        expiry=T,
        fwd_time=np.array(fwd_t, dtype=float),
        omega=np.where(df["option_type"].to_numpy() == "call", 1.0, -1.0),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        dom=squeeze(dom_p),
        rd_in_fwd=np.array(rd_in, dtype=float),
        forn=squeeze(for_p),
        basis_idx=np.array(basis_i, dtype=np.int64),
        basis_time=np.array(basis_t, dtype=float),
        div_yield=np.array(q, dtype=float),
        vol_idx=np.array(vol_i, dtype=np.int64).reshape(n, len(VOL_PARAMS)),
    )


def check_option_vols(o: OptionBook, base: np.ndarray, ids, factors) -> None:
    """Reject a surface whose vol at an option's strike and expiry is not positive before the floor."""
    F, DF, _, _ = option_model(o, base)
    k = np.log(o.strike / F)
    x = k / np.sqrt(o.expiry)
    atm, skew, curv, term = (base[o.vol_idx[:, i]] for i in range(4))
    raw = atm + term * np.log(o.expiry / T0_YEARS) + skew * x + curv * x * x
    bad = np.flatnonzero(~(raw > 0) | ~(atm > 0))
    if len(bad):
        j = bad[0]
        names = ", ".join(factors[c] for c in o.vol_idx[j])
        raise DataError(
            f"position {ids[j]!r}, field 'strike': implied vol from {names} at strike {o.strike[j]:g}, "
            f"expiry {o.expiry[j]:.4f}y is {raw[j]:.6f} (ATM {atm[j]:.6f}); vols must be > 0"
        )


# ---------------------------------------------------------------------------------------------------
# options that expire inside a horizon (:func:`kernels.age`)
# ---------------------------------------------------------------------------------------------------


class SettledOptionBook(NamedTuple):
    """``n`` options that expired between the as-of date and a horizon, held as their payoff in cash.

    spot_idx, fx_idx, strike, omega, units : as in :class:`OptionBook`
    basis_idx, basis_time : the commodity future's basis column and its time left at the option's
        expiry (``max(T_f - T, 0)``; 0 with any column for equity and FX options)
    """

    spot_idx: np.ndarray
    fx_idx: np.ndarray
    strike: np.ndarray
    omega: np.ndarray
    units: np.ndarray
    basis_idx: np.ndarray
    basis_time: np.ndarray


def settled_option_value(o: SettledOptionBook, L):
    """``units max(omega (F - K), 0) X``: the payoff, in base currency, of an option that expired,
    with ``F`` the underlying at the levels ``L`` (the future's price ``S exp(b (T_f - T))`` for a
    commodity option); jax or numpy ``L[..., F]``."""
    xp = np if isinstance(L, np.ndarray) else jnp
    F = L[..., o.spot_idx] * xp.exp(L[..., o.basis_idx] * o.basis_time)
    return o.units * xp.maximum(o.omega * (F - o.strike), 0.0) * fx_level(L, o.fx_idx)


settled_option_pnl_one, settled_option_pnl = make_kernel(settled_option_value)


def settled_option_pnl_into(o: SettledOptionBook, base, new, out: np.ndarray) -> np.ndarray:
    """:func:`settled_option_pnl` of the first ``len(out)`` rows of ``new`` written into ``out``: so that
    a book aged past an expiry keeps the memory order the option kernel writes fastest
    (:func:`kernels.preferred_order`)."""
    out[:] = np.asarray(settled_option_pnl(o, base, new))[: out.shape[0]]
    return out


def settled_option_pnl_numpy(o: SettledOptionBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`settled_option_pnl`, ``[S, n]``."""
    return numpy_pnl(settled_option_value, value_diff, o, base, new)


def settled_option_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> SettledOptionBook:
    """The payoff of each option of ``df`` (all expired by ``as_of``)."""
    basis_i, basis_t, fx_i = [], [], []
    for _, row in df.iterrows():
        dom, _ = _currencies(row)
        und = row["underlying"]
        fx_i.append(fx_index(dom, base_ccy, idx))
        if und.startswith("CMD."):
            m = _get(row, "maturity")
            left = 0.0 if m is None else max(float(year_fraction(pd.Timestamp(row["expiry"]), m)[0]), 0.0)
            basis_i.append(idx["BASIS." + und.split(".", 1)[1]])
            basis_t.append(left)
        else:
            basis_i.append(0)
            basis_t.append(0.0)
    return SettledOptionBook(
        spot_idx=np.array([idx[u] for u in df["underlying"]], dtype=np.int64),
        fx_idx=np.array(fx_i, dtype=np.int64),
        strike=df["strike"].to_numpy(dtype=float),
        omega=np.where(df["option_type"].to_numpy() == "call", 1.0, -1.0),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        basis_idx=np.array(basis_i, dtype=np.int64),
        basis_time=np.array(basis_t, dtype=float),
    )


def settled_option_mark(o: SettledOptionBook, L) -> np.ndarray:
    return settled_option_value(o, np.atleast_2d(np.asarray(L, dtype=float)))


def option_mark(o: OptionBook, L) -> np.ndarray:
    return option_values_numpy(o, L)
