"""Linear instruments: equities and ETFs, equity index futures.

One instrument under one scenario; :func:`linear_pnl` batches over instruments and scenarios.

Funded positions (stocks, ETFs) hold the asset: ``PnL = u * (P' X' - P X)``.  Unfunded ones
(futures) settle the price change: ``PnL = u * (P' - P) * X'``.  ``u`` is quantity times multiplier,
``P`` the underlying factor level in the position's currency and ``X`` the FX factor that converts
that currency into the base currency (1 for base-currency positions).  FX forwards and commodity
futures have their own pricers (``_forwards.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ._common import fx_level
from ._edge import make_kernel, numpy_pnl

__all__ = ["LinearBook", "linear_pnl_one", "linear_pnl", "linear_pnl_numpy"]


class LinearBook(NamedTuple):
    """Struct-of-arrays of ``n`` linear positions.

    price_idx : int ``[n]``, column of the price factor
    fx_idx : int ``[n]``, column of the FX factor, -1 for base-currency positions
    units : float ``[n]``, quantity x multiplier
    funded : bool ``[n]``
    """

    price_idx: np.ndarray
    fx_idx: np.ndarray
    units: np.ndarray
    funded: np.ndarray


def _state(pos: LinearBook, L):
    """Price and FX translation at levels ``L[..., F]``."""
    return L[..., pos.price_idx], fx_level(L, pos.fx_idx)


def _combine(pos: LinearBook, s0, s1):
    (p0, x0), (p1, x1) = s0, s1
    xp = np if isinstance(p1, np.ndarray) else jnp
    return pos.units * xp.where(pos.funded, p1 * x1 - p0 * x0, (p1 - p0) * x1)


#: ``linear_pnl_one(pos, base[F], new[F])``: P&L in base currency of one position;
#: ``linear_pnl(book, base[F], new[S, F]) -> [S, n]``: the jitted batch
linear_pnl_one, linear_pnl = make_kernel(_state, _combine)


def linear_pnl_numpy(book: LinearBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Plain numpy twin of :func:`linear_pnl`."""
    return numpy_pnl(_state, _combine, book, base, new)
