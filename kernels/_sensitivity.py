"""Sensitivity-based (delta-gamma-vega-theta) P&L from the same kernels, by automatic differentiation.

For a position with full-revaluation P&L ``V(L') - V(L)`` the approximation is the second-order
Taylor expansion in the factor *levels* ``dL = L' - L`` (Hull, *Options, Futures and Other
Derivatives*, 10th ed., sec. 22.6, "delta-gamma" and "quadratic model"), keeping

* every first-order term: delta of price factors (EQ, CMD, FX), DV01 of curve tenors, CS01 of
  spreads, vega of each vol-surface parameter, basis sensitivity;
* the diagonal second-order terms of price factors only (gamma);
* rate convexity per curve: the second derivative ``C_c`` with respect to a parallel shift of every
  tenor of curve ``c`` (Hull, ch. 4, "Convexity"), applied to the curve's parallel move
  ``dlambda_c``, the mean change of its tenor levels;
* theta ``Theta``, the value's change per year as time passes at unchanged levels
  (:mod:`kernels._time`), applied to a horizon ``dt`` in years::

      dV ~= sum_f g_f dL_f + 1/2 sum_{f price} G_f dL_f**2 + Theta dt + 1/2 sum_c C_c dlambda_c**2

  with ``g = dV/dL``, ``G_f = d2V/dL_f2`` and ``C_c = e_c' H e_c``, ``H`` the Hessian in the levels and
  ``e_c`` the indicator of curve ``c``'s tenor columns.

Cross-gammas, volga, vanna and key-rate (non-parallel) convexity are left out on purpose: the point
of reporting this next to full revaluation is to show how much such a model misses in a stress.  For a
log factor ``dL = L (exp(s) - 1)``; otherwise ``dL = s``.  ``g``, ``G``, ``C`` and ``Theta`` are exact
derivatives of the pricing kernels (``jax.grad`` and Hessian-vector products), evaluated once at the
base levels.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import Book, MarketSnapshot, factor_spec, log_mask

from ._revalue import PreparedBook, prepare, required_factors, shocked_levels
from ._time import theta
from ._tuning import ONCE_COMPILER_OPTIONS

__all__ = [
    "Sensitivities",
    "sensitivities",
    "sensitivity_pnl",
    "revalue_sensitivity",
    "curve_directions",
    "position_sensitivities",
]


class Sensitivities(NamedTuple):
    """First and second derivatives of each position's value in base currency, and its theta.

    grad : ``[n, F]``, ``dV/dL`` per unit of each factor's level (currency per level unit)
    gamma : ``[n, F]``, ``d2V/dL2``, non-zero only for price factors
    priced : bool ``[n]``, False for positions without a pricer (their rows are 0)
    theta : ``[n]``, ``dV/dt`` at unchanged levels, currency per year (:func:`kernels._time.theta`);
        None if not computed
    convexity : ``[n, C]``, ``d2V/dlambda_c2`` for a parallel shift ``lambda_c`` of every tenor of
        curve ``c`` (currency per unit of rate squared); None if not computed
    curves : the ``C`` curve currencies, in first-appearance order in the factor list
    curve_mean : ``[C, F]``, row ``c`` averages curve ``c``'s tenor levels (``1/K_c`` on its ``K_c``
        columns): ``dL @ curve_mean.T`` is each curve's parallel move
    """

    grad: np.ndarray
    gamma: np.ndarray
    priced: np.ndarray
    theta: np.ndarray | None = None
    convexity: np.ndarray | None = None
    curves: tuple[str, ...] = ()
    curve_mean: np.ndarray | None = None


def curve_directions(factors) -> tuple[tuple[str, ...], np.ndarray]:
    """``(curves, E)``: the currencies of the ``IR.<CCY>.*`` factors of ``factors[F]`` in first-appearance
    order and ``E [C, F]``, the indicator of each curve's tenor columns."""
    factors = list(factors)
    ccy = [factor_spec(f).currency if f.startswith("IR.") else None for f in factors]
    curves = tuple(dict.fromkeys(c for c in ccy if c is not None))
    E = np.array([[1.0 if c == cur else 0.0 for c in ccy] for cur in curves]).reshape(len(curves), len(factors))
    return curves, E


@partial(jax.jit, static_argnums=0, compiler_options=ONCE_COMPILER_OPTIONS)
def _group_gradients(pnl_one, arrays, base: jnp.ndarray):
    # the first derivatives alone (see _group_derivatives)
    d_new = jax.grad(pnl_one, argnums=2)
    return jax.vmap(lambda inst: d_new(inst, base, base))(arrays)


@partial(jax.jit, static_argnums=0, compiler_options=ONCE_COMPILER_OPTIONS)
def _group_derivatives(pnl_one, arrays, base: jnp.ndarray, price_cols: jnp.ndarray, curve_dirs: jnp.ndarray):
    # jitted with the kernel as a static argument: compiled once per kernel and book shape, not per call;
    # without XLA's costly passes (it runs once per batch: kernels._tuning.ONCE_COMPILER_OPTIONS).
    # One Hessian-vector product per direction: the unit vector of each price factor (its gamma is the
    # product's own entry) and each curve's indicator e (its convexity is e' H e).
    d_new = jax.grad(pnl_one, argnums=2)
    P, C = price_cols.shape[0], curve_dirs.shape[0]
    dirs = jnp.concatenate([jnp.zeros((P, base.shape[0]), base.dtype).at[jnp.arange(P), price_cols].set(1.0), curve_dirs])
    cols = jnp.concatenate([price_cols, jnp.zeros((C,), price_cols.dtype)])

    def one(inst):
        g = d_new(inst, base, base)

        def along(e, col):
            _, hv = jax.jvp(lambda L: d_new(inst, base, L), (base,), (e,))
            return hv[col], hv @ e

        if P + C:
            own, quad = jax.vmap(along)(dirs, cols)
        else:
            own = quad = jnp.zeros((0,))
        return g, own[:P], quad[P:]

    return jax.vmap(one)(arrays)


def sensitivities(book: PreparedBook, base: np.ndarray, second_order: bool = True) -> Sensitivities:
    """Delta, DV01, CS01, vega (``grad``), price-factor gammas, theta and rate convexity per curve
    of every position at ``base[F]``.

    Computed once per batch (cost ~ a few revaluations per position); pass the result to
    :func:`sensitivity_pnl` for each chunk of scenarios.  ``second_order=False`` gives ``grad`` alone
    (``gamma`` zero, ``theta`` and ``convexity`` None): its derivative programs compile in about half
    the time, for a caller that needs the first-order exposures only (the grid's coverage shares).
    """
    base = np.asarray(base, dtype=float)
    F = len(base)
    price_cols = np.flatnonzero(log_mask(book.factors)).astype(np.int64)
    curves, E = curve_directions(book.factors)
    grad = np.zeros((book.n, F))
    gamma = np.zeros((book.n, F))
    convexity = np.zeros((book.n, len(curves)))
    priced = np.zeros(book.n, dtype=bool)
    for g in book.groups:
        if g.pricer.pnl_one is None:
            continue
        rows = g.pricer.rows(g.arrays) if g.pricer.rows is not None else g.arrays
        if not second_order:
            grad[g.columns] = np.asarray(_group_gradients(g.pricer.pnl_one, rows, jnp.asarray(base)))
            priced[g.columns] = True
            continue
        gr, ga, cv = _group_derivatives(g.pricer.pnl_one, rows, jnp.asarray(base), jnp.asarray(price_cols), jnp.asarray(E))
        grad[g.columns] = np.asarray(gr)
        if len(price_cols):
            gamma[np.ix_(g.columns, price_cols)] = np.asarray(ga)
        convexity[g.columns] = np.asarray(cv)
        priced[g.columns] = True
    mean = E / np.maximum(E.sum(axis=1, keepdims=True), 1.0)
    if not second_order:
        return Sensitivities(grad, gamma, priced, None, None, curves, mean)
    th = theta(book, base)
    th[~priced] = 0.0
    return Sensitivities(grad, gamma, priced, th, convexity, curves, mean)


def sensitivity_pnl(sens: Sensitivities, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray, dt: float = 0.0) -> np.ndarray:
    """Delta-gamma-vega-theta P&L with rate convexity, ``[S, n]``, under ``shocks[S, F]`` (same
    conventions as :func:`kernels.revalue`) over ``dt`` years.

    ``dL @ grad.T + 1/2 dL**2 @ gamma.T + dt theta + 1/2 dlambda**2 @ convexity.T`` with ``dL = new -
    base`` the change in factor levels and ``dlambda = dL @ curve_mean.T`` each curve's parallel move.
    The theta term is added only for ``dt != 0`` and the convexity term only where a curve moves, so
    without them the result is the delta-gamma-vega P&L bit for bit.
    """
    base = np.asarray(base, dtype=float)
    dL = shocked_levels(base, shocks, is_log) - base
    out = dL @ sens.grad.T + 0.5 * (dL * dL) @ sens.gamma.T
    if dt != 0.0:
        if sens.theta is None:
            raise ValueError(f"dt={dt}: these sensitivities have no theta (compute them with kernels.sensitivities)")
        out = out + dt * sens.theta
    if sens.convexity is not None and len(sens.curves):
        dlam = dL @ sens.curve_mean.T
        if np.any(dlam != 0.0):
            out = out + 0.5 * (dlam * dlam) @ sens.convexity.T
    return out


def revalue_sensitivity(
    book: PreparedBook,
    base: np.ndarray,
    shocks: np.ndarray,
    is_log: np.ndarray,
    sens: Sensitivities | None = None,
    dt: float = 0.0,
) -> np.ndarray:
    """The delta-gamma-vega-theta approximation of :func:`kernels.revalue`: P&L ``[S, n]`` (``dt``:
    the horizon in years, see :func:`sensitivity_pnl`).

    Give ``sens`` (from :func:`sensitivities`) to avoid recomputing the derivatives per call.
    """
    if sens is None:
        sens = sensitivities(book, base)
    return sensitivity_pnl(sens, base, shocks, is_log, dt)


def position_sensitivities(book: Book, market: MarketSnapshot, base_ccy: str) -> pd.DataFrame:
    """Theta and rate convexity of every position of ``book`` at the market snapshot ``market``.

    Parameters
    ----------
    book : :class:`core.Book`; its options must not have expired nor its instruments matured by
        ``market.as_of``
    market : :class:`core.MarketSnapshot` holding every factor the book needs
    base_ccy : currency of the figures

    Returns
    -------
    DataFrame, one row per position in book order, columns

    * ``id``, ``type``;
    * ``priced``: False for a position without a pricer (its figures are 0);
    * ``theta``: ``dV/dt`` at unchanged factor levels, base currency per year (divide by 365 for a
      calendar day), under the conventions of :mod:`kernels._time` (the curve rolls down, the vol
      surface is read at the shorter expiry, accrued premium and floating-leg interest included);
    * ``convexity_<CCY>`` for each curve the book uses, in first-appearance order of the snapshot's
      factors: ``d2V/dlambda2``, base currency per unit of rate squared, for a parallel shift
      ``lambda`` of every tenor of that curve (a shift of 0.01 changes the value by about
      ``1/2 x convexity x 0.0001`` beyond the first-order DV01 term; divide by the value for the
      textbook convexity, Hull, ch. 4).

    Requires float64 (:func:`kernels.configure_process`).
    """
    book.check_dates(market.as_of)
    prepared = prepare(book.positions, market.factors, base_ccy, market.as_of, levels=market.levels)
    sens = sensitivities(prepared, market.levels)
    used = {factor_spec(f).currency for f in required_factors(book.positions, base_ccy) if f.startswith("IR.")}
    out = pd.DataFrame({
        "id": book.positions["id"].to_numpy(),
        "type": book.positions["type"].to_numpy(),
        "priced": sens.priced,
        "theta": sens.theta,
    })
    for c, ccy in enumerate(sens.curves):
        if ccy in used:
            out[f"convexity_{ccy}"] = sens.convexity[:, c]
    return out
