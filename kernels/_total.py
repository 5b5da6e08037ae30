"""The book's total P&L as one differentiable function of the factor shocks.

Searches over scenarios (the reverse stress test of :mod:`stressgrid.scenarios`) need the P&L of one
shock vector and its gradient many times over.  :func:`total_pnl` builds that function from the same
unbatched kernels (``Pricer.pnl_one``) that the sensitivities differentiate, jitted once per book.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from stressgrid.core import ConfigError, log_mask

from ._revalue import PreparedBook
from ._x64 import require_x64

__all__ = ["total_pnl"]


def total_pnl(book: PreparedBook, base: np.ndarray) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``f(shock[F]) -> (pnl, gradient[F])``: the book's full-revaluation P&L (base currency) under one
    shock vector on ``book.factors`` and its gradient with respect to the shocks.

    The P&L is the one :func:`revalue` gives the same row (including a horizon book's ``offset``, the
    time that passes at unchanged levels); positions without a pricer count 0.  The gradient is exact
    (``jax.value_and_grad`` through the pricing kernels).  Shocks follow the factor conventions
    (log-returns for price factors, absolute changes otherwise).
    """
    require_x64("stressgrid.kernels.total_pnl")
    base_j = jnp.asarray(np.asarray(base, dtype=float))
    is_log = jnp.asarray(log_mask(book.factors))
    parts = []
    for g in book.groups:
        if g.pricer.pnl_one is None:
            raise ConfigError(f"instrument type {g.pricer.types[0]!r} has no differentiable kernel: it cannot take "
                              "part in a search over scenarios")
        parts.append((g.pricer.pnl_one, g.pricer.rows(g.arrays) if g.pricer.rows is not None else g.arrays))
    offset = 0.0 if book.offset is None else float(np.sum(book.offset))

    def pnl(s):
        new = jnp.where(is_log, base_j * jnp.exp(s), base_j + s)
        total = jnp.asarray(offset)
        for one, rows in parts:
            total = total + jnp.sum(jax.vmap(lambda inst, one=one: one(inst, base_j, new))(rows))
        return total

    value_and_grad = jax.jit(jax.value_and_grad(pnl))

    def f(shock: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = value_and_grad(jnp.asarray(np.asarray(shock, dtype=float)))
        return float(v), np.asarray(g, dtype=float)

    return f
