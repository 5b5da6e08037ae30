"""Discount factors of a curve interpolated between Chebyshev nodes, so that instruments paying on
unrelated dates still share their exponentials (the build step of :mod:`kernels._flows`, numpy only).

On each piece of a curve over which the zero yield is linear in time (between two tenors, or flat
outside them) the exponent of a discount factor, ``x(t) = (z(t) + s) t``, is a quadratic in ``t``.
Written in ``u = (t - c) / w`` over a piece ``[c - w, c + w]`` it is ``x0 + x1 u + x2 u^2``, and the
discount factor is ``exp(-x0) exp(-(x1 u + x2 u^2))``: an entire function of ``u`` whose polynomial
interpolant at ``n`` Chebyshev points of the second kind converges geometrically.  If ``f`` is analytic
with ``|f| <= M`` inside the Bernstein ellipse ``E_rho`` (foci -1, 1, semi-axes summing to ``rho``),
the interpolant of degree ``n - 1`` is within ``4 M rho^(1 - n) / (rho - 1)`` of ``f`` on ``[-1, 1]``
(Trefethen, *Approximation Theory and Approximation Practice*, SIAM 2013, Theorem 8.2).  With
``|x1| <= A`` and ``|x2| <= B``, ``M <= exp(A a + B a^2)`` where ``a = (rho + 1/rho) / 2`` is the
ellipse's semi-major axis, and ``|f| >= exp(-A - B)`` on the interval, which bounds the relative
error.  :func:`nodes_needed` takes the smallest ``n`` that puts the bound at most :data:`TOLERANCE`.

``x1 = w (F(c) + s)`` is the half width times the instantaneous forward yield plus spread at the
centre and ``x2 = (z_hi - z_lo) w^2 / h`` on a piece of a tenor interval of length ``h``.  The node
counts are sized for :data:`FORWARD_CAP` and :data:`SLOPE_CAP`; the kernel checks ``|x1|`` and
``|x2|`` of every scenario against the caps and prices a scenario outside them flow by flow.

The nodes' exponent coefficients come from quadratics fitted to the flows' own (``p = w_lo t``,
``q = w_hi t``); they reproduce every flow's to :data:`FIT_TOLERANCE` of its size or the piece is
not interpolated, so a discount factor carries, besides the interpolation error, that rounding of
its exponent.

A piece with at most as many distinct payment dates as the interpolant needs nodes takes those
dates as its nodes instead (exact, weight 1), as does a piece whose exponent coefficients do not fit
a quadratic (which the curve's interpolation rule makes impossible unless it changes).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ._tuning import FORWARD_CAP, MAX_NODES, SLOPE_CAP

__all__ = ["FORWARD_CAP", "SLOPE_CAP", "TOLERANCE", "Piece", "curve_pieces", "nodes_needed", "chebyshev_points", "lagrange_weights"]

#: bound on the relative interpolation error of a discount factor (2^-54: half a unit in the last place)
TOLERANCE = 2.0**-54
#: a fitted exponent coefficient must reproduce every flow's to this share of its size (measured on
#: the benchmark books: at most 3.9e-15)
FIT_TOLERANCE = 1e-13


@lru_cache(maxsize=None)
def nodes_needed(A: float, B: float) -> int | None:
    """Smallest number of Chebyshev points whose interpolant of ``exp(a u + b u^2)`` on ``[-1, 1]``
    has relative error at most :data:`TOLERANCE` for every ``|a| <= A``, ``|b| <= B``, from the
    Bernstein-ellipse bound of the module docstring minimised over ``rho`` on a grid; None if more
    than :data:`MAX_NODES` (a piece hundreds of years wide, where the flat curve beyond the last
    tenor meets a very long bond)."""
    rho = np.exp(np.linspace(0.005, 6.0, 4000))
    semi = 0.5 * (rho + 1.0 / rho)
    log_m = A * semi + B * semi**2 + A + B  # log of M / min |f|
    for n in range(1, MAX_NODES + 1):
        log_bound = np.log(4.0) + log_m - (n - 1) * np.log(rho) - np.log(rho - 1.0)
        if log_bound.min() <= np.log(TOLERANCE):
            return max(n, 2)
    return None


def chebyshev_points(n: int) -> np.ndarray:
    """``n >= 2`` Chebyshev points of the second kind on ``[-1, 1]``, increasing (numpy's ``chebpts2``)."""
    return np.polynomial.chebyshev.chebpts2(n)


def lagrange_weights(nodes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``L[i, j] = l_j(u_i)``, the Lagrange basis of the Chebyshev points of the second kind ``nodes``
    at the points ``u``: scipy's barycentric interpolant of the identity, given the closed-form
    barycentric weights of these points, ``(-1)^j`` halved at both ends (Berrut & Trefethen, SIAM
    Review 46, 2004), so that scipy does not draw a random order to compute them and the same book
    always gets the same weights."""
    from scipy.interpolate import BarycentricInterpolator

    n = len(nodes)
    wi = (-1.0) ** np.arange(n)
    wi[[0, -1]] *= 0.5
    return np.atleast_2d(BarycentricInterpolator(nodes, np.eye(n), wi=wi)(u))


class Piece(NamedTuple):
    """Nodes of one piece of a curve.

    lo, hi : factor columns of the two tenors (the flows' own interpolation columns)
    t, p, q : ``[K]`` node times and exponent coefficients (``x = p z_lo + q z_hi + t s``)
    interpolated : Chebyshev nodes (True) or the flows' own dates (False)
    guard : ``[5]`` ``(p1, q1, t1, p2, q2)``, the ``u`` and ``u^2`` coefficients of ``p``, ``q``, ``t``
        (``x1 = p1 z_lo + q1 z_hi + t1 s``, ``x2 = p2 z_lo + q2 z_hi``); zeros if not interpolated
    cap_a, cap_b : the bounds on ``|x1|``, ``|x2|`` the node count is sized for
    """

    lo: int
    hi: int
    t: np.ndarray
    p: np.ndarray
    q: np.ndarray
    interpolated: bool
    guard: np.ndarray
    cap_a: float
    cap_b: float


def _fit(u: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Coefficients ``[3]`` of the quadratic through ``(u, y)`` (``u`` in ``[-1, 1]``), or None if it
    misses a point by more than :data:`FIT_TOLERANCE` of the values' size."""
    c = np.polynomial.polynomial.polyfit(u, y, 2)
    scale = max(float(np.abs(y).max()), 1e-300)
    c[np.abs(c) < 1e-15 * scale] = 0.0  # e.g. q = 0 on a flat piece, the u^2 term of t
    if np.abs(np.polynomial.polynomial.polyval(u, c) - y).max() > FIT_TOLERANCE * scale:
        return None
    return c


def _exact_piece(lo: int, hi: int, t: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[Piece, np.ndarray, np.ndarray]:
    times, first, inverse = np.unique(t, return_index=True, return_inverse=True)
    piece = Piece(lo, hi, times, p[first], q[first], False, np.zeros(5), 0.0, 0.0)
    return piece, inverse.ravel()[:, None], np.ones((len(t), 1))


def _piece(lo: int, hi: int, t: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[Piece, np.ndarray, np.ndarray]:
    """The nodes of the flows ``(t, p, q)`` of one piece, with each flow's node indices ``[M, k]`` and
    weights ``[M, k]``."""
    distinct = np.unique(t)
    if len(distinct) <= 2:
        return _exact_piece(lo, hi, t, p, q)
    c, w = 0.5 * (distinct[0] + distinct[-1]), 0.5 * (distinct[-1] - distinct[0])
    u = np.clip((t - c) / w, -1.0, 1.0)
    cp, cq = _fit(u, p), _fit(u, q)
    if cp is None or cq is None:
        return _exact_piece(lo, hi, t, p, q)
    cap_a = FORWARD_CAP * w
    cap_b = SLOPE_CAP * max(abs(cp[2]), abs(cq[2]))
    n = nodes_needed(round(cap_a, 12), round(cap_b, 12))
    if n is None or n >= len(distinct):
        return _exact_piece(lo, hi, t, p, q)
    x = chebyshev_points(n)
    guard = np.array([cp[1], cq[1], w, cp[2], cq[2]])
    piece = Piece(lo, hi, c + w * x, np.polynomial.polynomial.polyval(x, cp), np.polynomial.polynomial.polyval(x, cq), True, guard,
                  cap_a, cap_b)
    return piece, np.broadcast_to(np.arange(n), (len(t), n)).copy(), lagrange_weights(x, u)


def curve_pieces(t: np.ndarray, p: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray, w_lo: np.ndarray, w_hi: np.ndarray):
    """The pieces of one curve and where each of its flows falls.

    Parameters: the flows' times, exponent coefficients ``p = w_lo t`` and ``q = w_hi t``, tenor
    columns and interpolation weights (all ``[M]``).

    Returns ``(pieces, piece_of [M], nodes [M, k], weights [M, k])``: flow ``f`` is discounted by
    ``sum_j weights[f, j] D[pieces[piece_of[f]]][nodes[f, j]]`` (unused entries have weight 0).
    """
    # the exponent is one quadratic between two tenors and another where the curve is flat: a flow
    # with w_hi = 0 (or w_lo = 0) lies on the flat part before the first (after the last) tenor, or
    # on a tenor, where both rules agree
    side = np.where(w_hi == 0.0, 0, np.where(w_lo == 0.0, 2, 1))
    keys = np.stack([lo, hi, side], axis=1)
    regions, region_of = np.unique(keys, axis=0, return_inverse=True)
    region_of = region_of.ravel()
    pieces: list[Piece] = []
    piece_of = np.zeros(len(t), dtype=np.int64)
    parts = []
    for r in range(len(regions)):
        idx = np.flatnonzero(region_of == r)
        pc, nd, wt = _piece(int(regions[r, 0]), int(regions[r, 1]), t[idx], p[idx], q[idx])
        piece_of[idx] = len(pieces)
        pieces.append(pc)
        parts.append((idx, nd, wt))
    width = max(nd.shape[1] for _, nd, _ in parts)
    nodes = np.zeros((len(t), width), dtype=np.int64)
    weights = np.zeros((len(t), width))
    for f, nd, wt in parts:
        nodes[f, : nd.shape[1]] = nd
        weights[f, : wt.shape[1]] = wt
    return pieces, piece_of, nodes, weights
