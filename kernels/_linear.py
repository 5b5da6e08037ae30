"""Linear instruments: equities and ETFs, equity index futures, and (spot-only) commodity futures and FX forwards.

One instrument under one scenario; :func:`linear_pnl` batches over instruments and scenarios.

Funded positions (stocks, ETFs) hold the asset: ``PnL = u * (P' X' - P X)``.  Unfunded ones
(futures, forwards) settle the price change: ``PnL = u * (P' - P) * X'``.  ``u`` is quantity times
multiplier, ``P`` the underlying factor level in the position's currency and ``X`` the FX factor
that converts that currency into the base currency (1 for base-currency positions).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


def _fx(levels: jnp.ndarray, idx: jnp.ndarray) -> jnp.ndarray:
    return jnp.where(idx >= 0, levels[jnp.maximum(idx, 0)], 1.0)


def linear_pnl_one(pos: LinearBook, base: jnp.ndarray, new: jnp.ndarray) -> jnp.ndarray:
    """P&L in base currency of one position (scalar fields) from factor levels ``base[F]`` to ``new[F]``."""
    p0, p1 = base[pos.price_idx], new[pos.price_idx]
    x0, x1 = _fx(base, pos.fx_idx), _fx(new, pos.fx_idx)
    return pos.units * jnp.where(pos.funded, p1 * x1 - p0 * x0, (p1 - p0) * x1)


@jax.jit
def linear_pnl(book: LinearBook, base: jnp.ndarray, new: jnp.ndarray) -> jnp.ndarray:
    """P&L ``[S, n]`` of all positions under shocked levels ``new[S, F]`` from ``base[F]``."""
    per_pos = jax.vmap(linear_pnl_one, in_axes=(0, None, None))
    return jax.vmap(per_pos, in_axes=(None, None, 0))(book, base, new)


def linear_pnl_numpy(book: LinearBook, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Plain numpy twin of :func:`linear_pnl`."""
    p0, p1 = base[book.price_idx], new[:, book.price_idx]
    has_fx = book.fx_idx >= 0
    fxi = np.where(has_fx, book.fx_idx, 0)
    x0 = np.where(has_fx, base[fxi], 1.0)
    x1 = np.where(has_fx, new[:, fxi], 1.0)
    return book.units * np.where(book.funded, p1 * x1 - p0 * x0, (p1 - p0) * x1)
