"""Credit default swaps and credit indices: a flat hazard rate from the spread, mid-point legs.

Model (per unit notional, protection *seller*, i.e. long credit, for ``quantity > 0``):

* hazard rate from the spread factor ``s`` (the level of the position's ``CR.*`` underlying) and the
  recovery ``R`` by the credit triangle, ``lambda = s / (1 - R)``; survival ``Q(t) = exp(-lambda t)``
  (Hull, *Options, Futures and Other Derivatives*, 10th ed., eq. 24.2; O'Kane, *Modelling Single-name
  and Multi-name Credit Derivatives*, 2008, ch. 6);
* premium periods stepped back quarterly from ``maturity`` (unadjusted), the first starting at the
  as-of date; accrual fraction ``tau_i`` Actual/360; times on curves Actual/365 Fixed;
* risky annuity (RPV01) with accrual paid on default at the period's mid-point ``m_i``::

      A = sum_i tau_i DF(t_i) Q(t_i) + tau(start_i, m_i) DF(m_i) (Q(start_i) - Q(t_i))

* protection leg, default paid at the mid-point: ``Pr = (1 - R) sum_i DF(m_i) (Q(start_i) - Q(t_i))``;
* value ``V = c A - Pr`` with ``c`` the contractual running coupon (the ``coupon`` column, e.g. 0.01
  for CDX IG, 0.05 for CDX HY).

This is the mid-point discretisation of QuantLib's ``MidPointCdsEngine`` (the tests compare it
to QuantLib to 1e-10).  A spread shock moves ``lambda``; the jump-to-default P&L of
:func:`jump_to_default` is the loss if the reference name (or one of an index's ``constituents``
equally weighted names) defaults now: ``u / m x (-(1 - R) - V)`` for ``m`` constituents,
with ``V`` the value per unit notional before the default (premium accrued since the last coupon
is not included).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import fx_factor

from ._common import CurvePoints, curve_factors, curve_points, fx_index, fx_level, year_fraction, zero_at
from ._edge import make_kernel, numpy_pnl, value_diff

__all__ = ["CdsBook", "cds_periods", "cds_value", "cds_pnl", "cds_pnl_numpy", "jump_to_default_pnl"]

#: accrual day count of the premium leg
ACCRUAL_DAYS = 360.0


class CdsBook(NamedTuple):
    """``n`` CDS positions padded to ``J`` premium periods (period fields ``[n, J]``, others ``[n]``).

    t_start, t_end, t_mid : years from the as-of date to the period's effective start, end (payment)
        and default mid-point; tau, tau_mid : Actual/360 accrual of the full period and to the
        mid-point; mask : 1 for real periods, 0 for padding; p_end, p_mid : curve interpolation at
        ``t_end`` and ``t_mid``; spread_idx, recovery, coupon, units, fx_idx; constituents: names
        in the index (1 for a single name), used only by :func:`jump_to_default_pnl`; cash: premium
        received since the as-of date per unit notional, held as cash (0 unless the book is valued
        at a horizon: :func:`kernels.age`).
    """

    t_start: np.ndarray
    t_end: np.ndarray
    t_mid: np.ndarray
    tau: np.ndarray
    tau_mid: np.ndarray
    mask: np.ndarray
    p_end: CurvePoints
    p_mid: CurvePoints
    spread_idx: np.ndarray
    recovery: np.ndarray
    coupon: np.ndarray
    units: np.ndarray
    fx_idx: np.ndarray
    constituents: np.ndarray
    cash: np.ndarray | float = 0.0


def cds_periods(as_of: pd.Timestamp, maturity) -> dict[str, np.ndarray]:
    """Premium periods of a CDS from ``as_of``: quarterly dates stepped back from ``maturity``.

    Returns arrays ``[J]``: ``t_start``, ``t_end``, ``t_mid`` (years, Actual/365F), ``tau`` and
    ``tau_mid`` (Actual/360).  The mid-point is ``start + floor(days / 2)`` days.
    """
    as_of = pd.Timestamp(as_of).normalize()
    mat = pd.Timestamp(maturity)
    ends = []
    k = 0
    while True:
        d = mat - pd.DateOffset(months=3 * k)
        if d <= as_of:
            break
        ends.append(d)
        k += 1
    ends = ends[::-1]
    starts = [as_of] + ends[:-1]
    days = np.array([(e - s).days for s, e in zip(starts, ends)])
    mids = [s + pd.Timedelta(days=int(d // 2)) for s, d in zip(starts, days)]
    return dict(
        t_start=year_fraction(as_of, starts),
        t_end=year_fraction(as_of, ends),
        t_mid=year_fraction(as_of, mids),
        tau=days / ACCRUAL_DAYS,
        tau_mid=np.array([(m - s).days for s, m in zip(starts, mids)]) / ACCRUAL_DAYS,
    )


def cds_value(c: CdsBook, L):
    """Value per unit notional to the protection seller, ``c A - Pr`` (jax or numpy; ``L[..., F]``)."""
    xp = np if isinstance(L, np.ndarray) else jnp
    s = L[..., c.spread_idx]
    lam = (s / (1.0 - c.recovery))[..., None]
    q_start = xp.exp(-lam * c.t_start)
    q_end = xp.exp(-lam * c.t_end)
    df_end = xp.exp(-zero_at(L, c.p_end) * c.t_end)
    df_mid = xp.exp(-zero_at(L, c.p_mid) * c.t_mid)
    dq = (q_start - q_end) * c.mask
    annuity = xp.sum(c.mask * c.tau * df_end * q_end + c.tau_mid * df_mid * dq, axis=-1)
    protection = (1.0 - c.recovery) * xp.sum(df_mid * dq, axis=-1)
    return c.coupon * annuity - protection


def _cds_value_base(c: CdsBook, L):
    return c.units * (cds_value(c, L) + c.cash) * fx_level(L, c.fx_idx)


#: one CDS position's full-revaluation P&L from ``base[F]`` to ``new[F]``, and the jitted batch ``[S, n]``
cds_pnl_one, cds_pnl = make_kernel(_cds_value_base)


def cds_pnl_numpy(c: CdsBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`cds_pnl`, ``[S, n]``."""
    return numpy_pnl(_cds_value_base, value_diff, c, base, new)


def jump_to_default_pnl(c: CdsBook, base: np.ndarray) -> np.ndarray:
    """P&L ``[n]`` (base currency) if the reference name, or one of ``constituents[n]`` equally
    weighted index names, defaults at the as-of date: the seller pays ``1 - R`` on the defaulted
    notional and loses that notional's mark-to-market ``V``."""
    v = cds_value(c, base[None, :])[0]
    return c.units / c.constituents * (-(1.0 - c.recovery) - v) * fx_level(base, c.fx_idx)


def cds_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    out = []
    for und, ccy in zip(df["underlying"], df["currency"]):
        fx = fx_factor(ccy, base_ccy)
        out.append([und] + curve_factors(ccy) + ([fx] if fx else []))
    return out


def cds_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> CdsBook:
    per = [cds_periods(as_of, m) for m in df["maturity"]]
    n, J = len(per), max(len(p["t_end"]) for p in per)
    arr = {k: np.zeros((n, J)) for k in ("t_start", "t_end", "t_mid", "tau", "tau_mid")}
    mask = np.zeros((n, J))
    for i, p in enumerate(per):
        m = len(p["t_end"])
        for k in arr:
            arr[k][i, :m] = p[k]
        mask[i, :m] = 1.0
    ccys = df["currency"].to_list()
    p_end = [curve_points(ccys[i], arr["t_end"][i], idx) for i in range(n)]
    p_mid = [curve_points(ccys[i], arr["t_mid"][i], idx) for i in range(n)]
    stack = lambda ps: CurvePoints(*(np.stack([getattr(p, f) for p in ps]) for f in CurvePoints._fields))  # noqa: E731
    return CdsBook(
        **arr,
        mask=mask,
        p_end=stack(p_end),
        p_mid=stack(p_mid),
        spread_idx=np.array([idx[u] for u in df["underlying"]], dtype=np.int64),
        recovery=df["recovery"].to_numpy(dtype=float),
        coupon=df["coupon"].to_numpy(dtype=float),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        fx_idx=np.array([fx_index(c, base_ccy, idx) for c in ccys], dtype=np.int64),
        constituents=(df["constituents"].fillna(1) if "constituents" in df else pd.Series(np.ones(n))).to_numpy(dtype=float),
        cash=np.zeros(n),
    )


def cds_age(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp, at: pd.Timestamp,
            base: np.ndarray) -> CdsBook:
    """CDS valued at the later date ``at``: the periods left after ``at`` (the model values the premium
    from the valuation date) and in ``cash`` the premium accrued from ``as_of`` to ``at`` (or the
    maturity), ``coupon x days / 360`` per unit notional, held without interest.  No default happens
    inside the horizon (that is the jump-to-default measure's question)."""
    book = cds_build(df, idx, base_ccy, at)
    start = pd.Timestamp(as_of).normalize()
    days = np.array([(min(pd.Timestamp(at).normalize(), pd.Timestamp(m)) - start).days for m in df["maturity"]], dtype=float)
    return book._replace(cash=df["coupon"].to_numpy(dtype=float) * np.maximum(days, 0.0) / ACCRUAL_DAYS)


def cds_mark(c: CdsBook, L) -> np.ndarray:
    return _cds_value_base(c, np.atleast_2d(np.asarray(L, dtype=float)))
