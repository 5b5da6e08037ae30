"""Sensitivity-based (delta-gamma-vega) P&L from the same kernels, by automatic differentiation.

For a position with full-revaluation P&L ``V(L') - V(L)`` the approximation is the second-order
Taylor expansion in the factor *levels* ``dL = L' - L`` (Hull, *Options, Futures and Other
Derivatives*, 10th ed., sec. 22.6, "delta-gamma" and "quadratic model"), keeping

* every first-order term: delta of price factors (EQ, CMD, FX), DV01 of curve tenors, CS01 of
  spreads, vega of each vol-surface parameter, basis sensitivity;
* the diagonal second-order terms of price factors only (gamma):

      dV ~= sum_f g_f dL_f + 1/2 sum_{f price} G_f dL_f**2,   g = dV/dL,  G_f = d2V/dL_f2

Cross-gammas, volga, vanna and rate convexity are left out on purpose: the point of reporting this
next to full revaluation is to show how much such a model misses in a stress.  For a log factor
``dL = L (exp(s) - 1)``; otherwise ``dL = s``.  ``g`` and ``G`` are exact derivatives of the pricing
kernel (``jax.grad`` and a Hessian-vector product), evaluated once at the base levels.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stressgrid.core import log_mask

from ._revalue import PreparedBook, shocked_levels

__all__ = ["Sensitivities", "sensitivities", "sensitivity_pnl", "revalue_sensitivity"]


class Sensitivities(NamedTuple):
    """First and second derivatives of each position's value in base currency.

    grad : ``[n, F]``, ``dV/dL`` per unit of each factor's level (currency per level unit)
    gamma : ``[n, F]``, ``d2V/dL2``, non-zero only for price factors
    priced : bool ``[n]``, False for positions without a pricer (their rows are 0)
    """

    grad: np.ndarray
    gamma: np.ndarray
    priced: np.ndarray


@partial(jax.jit, static_argnums=0)
def _group_derivatives(pnl_one, arrays, base: jnp.ndarray, price_cols: jnp.ndarray):
    # jitted with the kernel as a static argument: compiled once per kernel and book shape, not per call
    d_new = jax.grad(pnl_one, argnums=2)

    def one(inst):
        g = d_new(inst, base, base)

        def curvature(col):
            e = jnp.zeros_like(base).at[col].set(1.0)
            _, hv = jax.jvp(lambda L: d_new(inst, base, L), (base,), (e,))
            return hv[col]

        gam = jax.vmap(curvature)(price_cols) if price_cols.shape[0] else jnp.zeros((0,))
        return g, gam

    return jax.vmap(one)(arrays)


def sensitivities(book: PreparedBook, base: np.ndarray) -> Sensitivities:
    """Delta, DV01, CS01, vega (``grad``) and price-factor gammas of every position at ``base[F]``.

    Computed once per batch (cost ~ a few revaluations per position); pass the result to
    :func:`sensitivity_pnl` for each chunk of scenarios.
    """
    base = np.asarray(base, dtype=float)
    F = len(base)
    price_cols = np.flatnonzero(log_mask(book.factors)).astype(np.int64)
    grad = np.zeros((book.n, F))
    gamma = np.zeros((book.n, F))
    priced = np.zeros(book.n, dtype=bool)
    for g in book.groups:
        if g.pricer.pnl_one is None:
            continue
        rows = g.pricer.rows(g.arrays) if g.pricer.rows is not None else g.arrays
        gr, ga = _group_derivatives(g.pricer.pnl_one, rows, jnp.asarray(base), jnp.asarray(price_cols))
        grad[g.columns] = np.asarray(gr)
        if len(price_cols):
            gamma[np.ix_(g.columns, price_cols)] = np.asarray(ga)
        priced[g.columns] = True
    return Sensitivities(grad, gamma, priced)


def sensitivity_pnl(sens: Sensitivities, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray) -> np.ndarray:
    """Delta-gamma-vega P&L ``[S, n]`` under ``shocks[S, F]`` (same conventions as :func:`kernels.revalue`).

    ``dL @ grad.T + 1/2 dL**2 @ gamma.T`` with ``dL = new - base`` the change in factor levels.
    """
    base = np.asarray(base, dtype=float)
    dL = shocked_levels(base, shocks, is_log) - base
    return dL @ sens.grad.T + 0.5 * (dL * dL) @ sens.gamma.T


def revalue_sensitivity(
    book: PreparedBook,
    base: np.ndarray,
    shocks: np.ndarray,
    is_log: np.ndarray,
    sens: Sensitivities | None = None,
) -> np.ndarray:
    """The delta-gamma-vega approximation of :func:`kernels.revalue`: P&L ``[S, n]``.

    Give ``sens`` (from :func:`sensitivities`) to avoid recomputing the derivatives per call.
    """
    if sens is None:
        sens = sensitivities(book, base)
    return sensitivity_pnl(sens, base, shocks, is_log)
