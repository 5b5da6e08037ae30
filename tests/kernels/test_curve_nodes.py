"""Discount factors interpolated between a curve's Chebyshev nodes: the node counts meet their error
bound (checked in 40-digit arithmetic), the Lagrange weights are exact for polynomials, and a
scenario outside the range the nodes are sized for is priced flow by flow without changing any other
scenario's numbers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from stressgrid.kernels import _tuning
from stressgrid.kernels._curve_nodes import FORWARD_CAP, TOLERANCE, chebyshev_points, lagrange_weights, nodes_needed
from stressgrid.kernels._flows import curve_node_values, curve_nodes_inside, flow_layout, layout_pnl, layout_values
from stressgrid.kernels._rates import cashflow_pnl_numpy

from kernel_helpers import AS_OF, GRID, bond_book, random_day_bonds, stack_books, zero_curve


def _interpolation_error(n: int, a: float, b: float) -> float:
    """Largest relative error over ``[-1, 1]`` of the interpolant of ``exp(a u + b u^2)`` at ``n``
    Chebyshev points, evaluated in 40-digit arithmetic (the barycentric formula)."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    x = [-mp.cos(mp.pi * j / (n - 1)) for j in range(n)]
    f = [mp.exp(a * xj + b * xj**2) for xj in x]
    w = [(-1) ** j * (mp.mpf(1) / 2 if j in (0, n - 1) else 1) for j in range(n)]
    worst = mp.mpf(0)
    for u in np.linspace(-1, 1, 301)[1:-1]:
        u = mp.mpf(u) + mp.mpf("1e-9")  # off the nodes
        terms = [wj / (u - xj) for wj, xj in zip(w, x)]
        p = sum(t * fj for t, fj in zip(terms, f)) / sum(terms)
        worst = max(worst, abs(p / mp.exp(a * u + b * u**2) - 1))
    return float(worst)


@pytest.mark.parametrize("A,B", [(0.01, 0.0), (0.25 * 0.5, 0.05 * 0.125), (0.25 * 2.5, 0.0), (0.25 * 5, 0.05 * 2.5), (2.0, 0.5)])
def test_node_counts_meet_their_error_bound(A, B):
    """At the corners of the range (where the error is largest), ``nodes_needed`` points are within
    the tolerance, and the bound is not wasteful: three points fewer are not."""
    n = nodes_needed(A, B)
    for a in (A, -A):
        for b in (B, -B):
            assert _interpolation_error(n, a, b) <= TOLERANCE
    assert max(_interpolation_error(n - 3, a, b) for a in (A, -A) for b in (B, -B)) > TOLERANCE


def test_a_piece_too_wide_to_interpolate_keeps_its_dates():
    """A 900-year bond: the flat curve beyond the last tenor makes a piece some 870 years wide, more
    than any interpolant of :data:`MAX_NODES` nodes serves, so that piece is priced on its own dates;
    the P&L still equals the numpy twin's."""
    assert nodes_needed(0.25 * 400, 0.0) is None
    book = stack_books([bond_book(AS_OF + pd.DateOffset(years=900), 0.03, 1), bond_book(AS_OF + pd.DateOffset(years=20), 0.02, 2)],
                       np.array([1e6, 2e6]))
    layout = flow_layout(book)
    rng = np.random.default_rng(3)
    base = np.concatenate([zero_curve(rng), [0.0]])
    new = base + rng.normal(0, 0.002, (6, len(base)))
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    np.testing.assert_allclose(pnl, cashflow_pnl_numpy(book, base, new), rtol=1e-11, atol=1e-6)


def test_lagrange_weights_reproduce_polynomials_and_nodes():
    x = chebyshev_points(9)
    u = np.concatenate([np.linspace(-1, 1, 57), x[[0, 4, 8]]])
    L = lagrange_weights(x, u)
    np.testing.assert_allclose(L.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    for k in range(9):  # degree up to 8 is reproduced
        np.testing.assert_allclose(L @ x**k, u**k, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(L[-3:], np.eye(9)[[0, 4, 8]])  # a point on a node: that node alone


@pytest.fixture(scope="module")
def book_and_levels():
    rng = np.random.default_rng(21)
    book = random_day_bonds(rng, 80)
    base = np.concatenate([zero_curve(rng), [0.015]])
    new = base + rng.normal(0, 0.003, (40, len(base)))
    return book, base, new


def _far(base):
    """Scenarios outside the range the nodes are sized for: rates up 40 points; a 30-point spread; a
    curve 20 points steeper between two tenors."""
    far = np.repeat(base[None], 3, axis=0)
    far[0, : len(GRID)] += 0.40
    far[1, len(GRID)] += 0.30
    far[2, 5:] += 0.20
    return far


def test_outside_the_range_a_scenario_is_priced_flow_by_flow(book_and_levels):
    """Without the check, interpolation from the nodes misses such a scenario by far more than
    1e-12 of the value; with it the P&L equals the numpy twin's, and every other scenario of the
    chunk gets the same bits as in a chunk of its own."""
    book, base, new = book_and_levels
    layout = flow_layout(book)
    far = _far(base)
    levels = np.concatenate([new[:10], far, new[10:]])
    gross = np.abs(book.units) * book.amounts.sum(axis=1)
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, levels))
    ref = cashflow_pnl_numpy(book, base, levels)
    assert np.max(np.abs(pnl - ref) / gross) < 1e-12
    alone = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    np.testing.assert_array_equal(np.concatenate([pnl[:10], pnl[13:]]), alone)
    # each far scenario fails the check; and for a move far enough (rates down 300 points: a discount
    # factor grows by e^15 across a 10-year piece) the nodes alone miss the value
    LT = jnp.asarray(far.T)
    assert not np.asarray(curve_nodes_inside(layout, LT)).any()
    wild = base + np.concatenate([np.full(len(GRID), -3.0), [0.0]])
    LT = jnp.asarray(wild[:, None])
    unchecked = book.units * np.asarray(curve_node_values(layout, LT))[:, 0]
    v_wild = np.asarray(layout_values(layout, book.const, book.units, book.fx_idx, base, wild[None]))[:, 0]
    assert np.max(np.abs(unchecked / v_wild - 1.0)) > 1e-6
    ref = book.units * (book.amounts * np.exp(-(wild[book.pts.lo] * book.pts.w_lo + wild[book.pts.hi] * book.pts.w_hi
                                                 + (book.spread_w * wild[book.spread_idx])[:, None]) * book.times)).sum(axis=1)
    np.testing.assert_allclose(v_wild, ref, rtol=1e-12)


def test_in_range_scenarios_do_not_need_the_exact_path(book_and_levels, monkeypatch):
    """The check passes for ordinary moves and near the edge of the range (forward yield plus spread
    2 points under :data:`FORWARD_CAP`), and the nodes then give the exact path's values to 1e-13."""
    book, base, new = book_and_levels
    layout = flow_layout(book)
    high = base.copy()
    high[: len(GRID)] = FORWARD_CAP - 0.02 - base[len(GRID)]  # flat curve: forward = zero yield; plus the spread
    levels = np.concatenate([new, high[None]])
    assert np.asarray(curve_nodes_inside(layout, jnp.asarray(levels.T))).all()
    v = np.asarray(layout_values(layout, book.const, book.units, book.fx_idx, base, levels))[:, : len(levels)]
    monkeypatch.setattr(_tuning, "CURVE_NODES", False)  # every flow's own discount factor
    exact = np.asarray(layout_values(layout, book.const, book.units, book.fx_idx, base, levels))
    np.testing.assert_allclose(v, exact[:, : len(levels)], rtol=1e-13, atol=0)


def _issuers_book(rng, n_issuers=8):
    """Issuers of 1, 1, 2, 2, 4, 4, 8, 8 bonds, each with its own spread column after the curve."""
    books = []
    for i in range(n_issuers):
        for _ in range(2 ** (i // 2)):
            mat = AS_OF + pd.Timedelta(days=int(rng.integers(40, 30 * 365)))
            books.append(bond_book(mat, float(rng.uniform(0, 0.08)), 2, spread_col=len(GRID) + i))
    book = stack_books(books, rng.uniform(1e5, 1e6, len(books)))
    return book, np.concatenate([zero_curve(rng), rng.uniform(0.005, 0.03, n_issuers)])


def test_issuers_of_different_sizes_are_priced_in_batches():
    """Issuers of 1 to 8 bonds: the classes are batched by size, each batch padded only to its
    largest class, and every bond still gets the numpy twin's P&L."""
    rng = np.random.default_rng(12)
    book, base = _issuers_book(rng)
    layout = flow_layout(book)
    assert len(layout.batches) >= 2
    for c in layout.batches:  # each batch's padding is its largest class
        assert (np.abs(c.amounts).sum(axis=2) > 0).sum(axis=1).max() == c.amounts.shape[1]
    new = base + rng.normal(0, 0.003, (30, len(base)))
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    gross = np.abs(book.units) * book.amounts.sum(axis=1)
    assert np.max(np.abs(pnl - cashflow_pnl_numpy(book, base, new)) / gross) < 1e-12
