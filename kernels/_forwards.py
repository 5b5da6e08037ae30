"""FX forwards by covered interest parity, commodity futures by spot and basis.

FX forward on ``FX.AAABBB`` (``quantity`` units of AAA bought forward at ``forward_rate`` K, BBB per
AAA, settling at ``maturity`` T).  Covered interest parity gives the forward
``F = S DF_AAA(T) / DF_BBB(T)`` (Hull, *Options, Futures and Other Derivatives*, 10th ed., eq. 5.9
in continuous compounding), and the contract is worth, in BBB::

    V = N (S DF_AAA(T) - K DF_BBB(T)) = N DF_BBB(T) (F - K)

(Hull, eq. 5.5), translated into the base currency at ``FX.BBB<base>``; P&L ``V' X' - V X``.  Both
discount factors come from the currencies' zero curves (``IR.AAA.*``, ``IR.BBB.*``).

Commodity future on ``CMD.X`` maturing at ``T``: the futures price is ``F = S exp(b T)`` with ``S`` the
spot factor and ``b`` the level of ``BASIS.X``, the commodity's annualised log basis (cost of carry
less convenience yield, Hull eq. 5.17/5.18, ``b = r + u - y``).  The future is settled daily, so a
shock pays ``quantity x multiplier x (F' - F) x X'`` in the base currency.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, fx_factor

from ._common import CurvePoints, curve_factors, curve_points, fx_index, fx_level, year_fraction, zero_at
from ._edge import make_kernel, numpy_pnl, value_diff, settled_diff

__all__ = [
    "FxForwardBook",
    "CommodityFutureBook",
    "fx_forward_pnl",
    "fx_forward_pnl_numpy",
    "commodity_future_pnl",
    "commodity_future_pnl_numpy",
]


class FxForwardBook(NamedTuple):
    """``n`` FX forwards (all ``[n]``): spot column, strike ``K``, maturity ``T`` (years), curve
    interpolation of the bought (``forn``, AAA) and paid (``dom``, BBB) currencies at ``T``, units
    (quantity x multiplier, in AAA) and the column converting BBB to the base (-1: none)."""

    spot_idx: np.ndarray
    strike: np.ndarray
    mat: np.ndarray
    forn: CurvePoints
    dom: CurvePoints
    units: np.ndarray
    fx_idx: np.ndarray


class CommodityFutureBook(NamedTuple):
    """``n`` commodity futures (all ``[n]``): spot and basis columns, maturity (years), units, FX column."""

    spot_idx: np.ndarray
    basis_idx: np.ndarray
    mat: np.ndarray
    units: np.ndarray
    fx_idx: np.ndarray


def fx_forward_value(f: FxForwardBook, L):
    """``units (S DF_AAA(T) - K DF_BBB(T)) X`` in the base currency (jax or numpy)."""
    xp = np if isinstance(L, np.ndarray) else jnp
    S = L[..., f.spot_idx]
    df_for = xp.exp(-zero_at(L, f.forn) * f.mat)
    df_dom = xp.exp(-zero_at(L, f.dom) * f.mat)
    return f.units * (S * df_for - f.strike * df_dom) * fx_level(L, f.fx_idx)


fx_forward_pnl_one, fx_forward_pnl = make_kernel(fx_forward_value)


def fx_forward_pnl_numpy(f: FxForwardBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`fx_forward_pnl`, ``[S, n]``."""
    return numpy_pnl(fx_forward_value, value_diff, f, base, new)


def futures_price(c: CommodityFutureBook, L):
    xp = np if isinstance(L, np.ndarray) else jnp
    return L[..., c.spot_idx] * xp.exp(L[..., c.basis_idx] * c.mat)


def _cf_state(c: CommodityFutureBook, L):
    return futures_price(c, L), fx_level(L, c.fx_idx)


commodity_future_pnl_one, commodity_future_pnl = make_kernel(_cf_state, settled_diff)


def commodity_future_pnl_numpy(c: CommodityFutureBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`commodity_future_pnl`, ``[S, n]``."""
    return numpy_pnl(_cf_state, settled_diff, c, base, new)


def _pair(und: str) -> tuple[str, str]:
    return und[3:6], und[6:9]


def fx_forward_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    out = []
    for und in df["underlying"]:
        aaa, bbb = _pair(und)
        fx = fx_factor(bbb, base_ccy)
        out.append([und] + ([fx] if fx else []) + curve_factors(aaa) + curve_factors(bbb))
    return out


def fx_forward_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> FxForwardBook:
    # a forward that settled before ``as_of`` (a book valued at a horizon) is worth N (S - K) X
    T = np.maximum(year_fraction(as_of, df["maturity"].to_numpy()), 0.0)
    forn, dom, fxi = [], [], []
    for j, und in enumerate(df["underlying"]):
        aaa, bbb = _pair(und)
        forn.append(curve_points(aaa, T[j], idx))
        dom.append(curve_points(bbb, T[j], idx))
        fxi.append(fx_index(bbb, base_ccy, idx))
    stack = lambda ps: CurvePoints(*(np.array([getattr(p, f) for p in ps]) for f in CurvePoints._fields))  # noqa: E731
    if df["forward_rate"].isna().any():
        pid = df.loc[df["forward_rate"].isna(), "id"].iloc[0]
        raise ConfigError(f"position {pid!r}, field 'forward_rate': missing (required for fx_forward)")
    return FxForwardBook(
        spot_idx=np.array([idx[u] for u in df["underlying"]], dtype=np.int64),
        strike=df["forward_rate"].to_numpy(dtype=float),
        mat=T,
        forn=stack(forn),
        dom=stack(dom),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        fx_idx=np.array(fxi, dtype=np.int64),
    )


def commodity_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    out = []
    for und, ccy in zip(df["underlying"], df["currency"]):
        fx = fx_factor(ccy, base_ccy)
        out.append([und, "BASIS." + und.split(".", 1)[1]] + ([fx] if fx else []))
    return out


def commodity_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> CommodityFutureBook:
    return CommodityFutureBook(
        spot_idx=np.array([idx[u] for u in df["underlying"]], dtype=np.int64),
        basis_idx=np.array([idx["BASIS." + u.split(".", 1)[1]] for u in df["underlying"]], dtype=np.int64),
        # a future that expired before ``as_of`` (a book valued at a horizon) settles on the spot
        mat=np.maximum(year_fraction(as_of, df["maturity"].to_numpy()), 0.0),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        fx_idx=np.array([fx_index(c, base_ccy, idx) for c in df["currency"]], dtype=np.int64),
    )


def fx_forward_mark(f: FxForwardBook, L) -> np.ndarray:
    return fx_forward_value(f, np.atleast_2d(np.asarray(L, dtype=float)))


def commodity_future_mark(c: CommodityFutureBook, L) -> np.ndarray:
    L = np.atleast_2d(np.asarray(L, dtype=float))
    return c.units * futures_price(c, L) * fx_level(L, c.fx_idx)
