"""The batched cash-flow kernel (``kernels._flows``): its P&L against the padded one-instrument
kernel, the numpy twin and QuantLib, with curve nodes and flow by flow."""

from __future__ import annotations

import pickle

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from stressgrid import kernels
from stressgrid.core import book_from_records, log_mask
from stressgrid.kernels import _tuning
from stressgrid.kernels._flows import flow_layout, layout_pnl, layout_stats, layout_values
from stressgrid.kernels._rates import CashflowBook, _cf_value_numpy, cashflow_pnl, cashflow_pnl_numpy, cashflow_value_one

from kernel_helpers import AS_OF, GRID, GRID_DAYS, bond_book, ql_bond_value, random_cf_book, stack_books, zero_curve

#: a second currency's curve: three tenors in their own factor columns
EUR_GRID = np.array([0.25, 2.0, 10.0])


def _two_curve_book(rng, n):
    """Bonds and swaps on two curves (columns 0-10 and 11-13), issuer spreads in columns 14-16 (or
    none), some paying in a foreign currency (FX column 17), a zero-coupon bond and a bond whose flows
    are all in one curve segment."""
    books, fx = [], []
    for i in range(n):
        eur = i % 3 == 0
        days = int(rng.integers(20, 30 * 365))
        coupon = 0.0 if i == 1 else float(rng.uniform(0.0, 0.07))
        spread = None if i % 4 == 0 else 14 + int(rng.integers(0, 3))
        books.append(bond_book(AS_OF + pd.Timedelta(days=days), coupon, int(rng.choice([1, 2, 4, 12])), spread_col=spread,
                               const=-1.0 if i % 5 == 0 else 0.0, grid=EUR_GRID if eur else GRID, col0=11 if eur else 0))
        fx.append(17 if eur else -1)
    return stack_books(books, rng.uniform(-1e6, 1e6, n), fx_idx=fx)


def _two_curve_levels(rng, S):
    base = np.concatenate([zero_curve(rng), [0.005, 0.012, 0.021], [0.004, 0.01, 0.03], [1.08]])
    sd = np.concatenate([np.full(14, 0.002), np.full(3, 0.003), [0.02]])
    shocks = rng.normal(0, 1, (S, len(base))) * sd
    new = base + shocks
    new[:, -1] = base[-1] * np.exp(shocks[:, -1])
    return base, new


@pytest.fixture(scope="module")
def two_curves():
    rng = np.random.default_rng(11)
    book = _two_curve_book(rng, 60)
    base, new = _two_curve_levels(rng, 21)
    return book, base, new


def test_curve_node_batches_keep_to_one_curve(two_curves):
    """A batch of curve-node classes shares one list of nodes, so classes of two curves never share
    a batch, even when padding is allowed to merge every class of a curve into one."""
    book, base, new = two_curves
    layout = flow_layout(book, curve_ids=(book.fx_idx >= 0).astype(int), waste=100.0)
    assert len(layout.batches) == 2
    for c in layout.batches:  # USD tenors in columns 0-10, EUR in 11-13
        assert len(set((c.lo >= 11).tolist())) == 1
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    assert np.max(np.abs(pnl - cashflow_pnl_numpy(book, base, new)) / _gross(book, base)) < 1e-12


@pytest.fixture(params=[True, False], ids=["curve_nodes", "flow_by_flow"])
def curve_nodes(request, monkeypatch):
    """Both ways the kernel prices: from the curve nodes, and every flow's own discount factor (the
    way of a scenario outside the nodes' range)."""
    monkeypatch.setattr(_tuning, "CURVE_NODES", request.param)
    return request.param


@pytest.mark.parametrize("curves", [True, False])
def test_values_agree_with_padded_kernel_and_numpy_twin(two_curves, curves, curve_nodes):
    """To 1e-13 of each position's value: the sums differ only in the order of the terms (and, from
    curve nodes, by an interpolation error under half a unit in the last place).  Without
    ``curve_ids`` the two curves share batches: a node still belongs to one curve."""
    book, base, new = two_curves
    layout = flow_layout(book, curve_ids=(book.fx_idx >= 0).astype(int) if curves else None)
    v = np.array(layout_values(layout, book.const, book.units, book.fx_idx, base, new))  # [n, nb block]
    S = len(new)
    assert v.shape[1] % _tuning.SCENARIO_BLOCK == 0 and v.shape[1] > S
    assert np.all(v[:, S:] == v[:, S : S + 1])  # the base levels after the scenarios
    ours = np.concatenate([v[:, S : S + 1], v[:, :S]], axis=1)  # [n, 1 + S]
    levels = np.concatenate([base[None], new])
    twin = _cf_value_numpy(book, levels).T
    np.testing.assert_allclose(ours, twin, rtol=1e-13, atol=0)
    # the one-instrument kernel that automatic differentiation uses
    one = np.array([[float(cashflow_value_one(jax_row(book, i), jnp.asarray(L))) for L in levels[:3]] for i in range(len(book.units))])
    np.testing.assert_allclose(ours[:, :3], one, rtol=1e-13, atol=0)
    # P&L: to 1e-12 of the position's gross flows
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    ref = cashflow_pnl_numpy(book, base, new)
    assert np.max(np.abs(pnl - ref) / _gross(book, base)) < 1e-12


def _gross(book: CashflowBook, base) -> np.ndarray:
    """``|units| x sum of amounts x FX``: the scale of a position's value (a swap's may be near 0)."""
    fx = np.where(book.fx_idx >= 0, base[np.maximum(book.fx_idx, 0)], 1.0)
    return np.abs(book.units) * (book.amounts.sum(axis=1) + np.abs(book.const)) * fx


def jax_row(book: CashflowBook, i: int) -> CashflowBook:
    return CashflowBook(*(type(f)(*(a[i] for a in f)) if isinstance(f, tuple) else f[i] for f in book.rows()[:-1]))


def test_cashflow_pnl_packs_a_book_without_layout():
    rng = np.random.default_rng(8)
    book = random_cf_book(rng, 25)
    base = np.concatenate([zero_curve(rng), [0.01]])
    new = base + rng.normal(0, 0.005, (12, len(base)))
    packed = book._replace(layout=flow_layout(book))
    np.testing.assert_array_equal(np.asarray(cashflow_pnl(book, base, new)), np.asarray(cashflow_pnl(packed, base, new)))


@pytest.mark.parametrize("S,block", [(1, 64), (63, 64), (64, 64), (130, 128)])
def test_zero_shock_gives_exactly_zero_pnl(two_curves, S, block, curve_nodes):
    """Unmoved scenarios anywhere in the chunk (a block's first or last column, the padded block)."""
    book, base, new = two_curves
    layout = flow_layout(book, curve_ids=(book.fx_idx >= 0).astype(int))
    rng = np.random.default_rng(S)
    levels = np.repeat(base[None], S, axis=0)
    moved = rng.random(S) < 0.5
    levels[moved] = new[rng.integers(0, len(new), moved.sum())]
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, levels, block=block))
    assert pnl.shape == (S, len(book.units))
    assert np.all(pnl[~moved] == 0.0)
    assert np.all(np.abs(pnl[moved]).max(axis=1) > 0)


BONDS = [  # maturity, coupon, frequency, spread (as in the QuantLib tests of test_rates.py)
    ("2019-03-31", 0.0125, 2, 0.0), ("2022-03-31", 0.01875, 2, 0.0), ("2027-02-15", 0.0225, 2, 0.004),
    ("2047-02-15", 0.03, 2, 0.0), ("2024-07-31", 0.05, 1, 0.012), ("2021-10-31", 0.04, 4, 0.0), ("2018-09-30", 0.02, 12, 0.02),
    ("2027-02-15", 0.0175, 2, 0.004), ("2047-02-15", 0.025, 2, 0.0), ("2017-05-15", 0.0, 1, 0.0),
]


def test_pnl_matches_quantlib_repricing(curve_nodes):
    """P&L of a small book (some bonds sharing dates and spreads) under curve and spread moves equals
    QuantLib's change in NPV (DiscountingBondEngine on a ZeroSpreadedTermStructure) to 1e-10 of the value."""
    pytest.importorskip("QuantLib")
    spreads = sorted({s for *_, s in BONDS})
    books = [bond_book(m, c, f, spread_col=len(GRID) + spreads.index(s)) for m, c, f, s in BONDS]
    book = stack_books(books, np.ones(len(books)))
    layout = flow_layout(book)
    rng = np.random.default_rng(4)
    z0 = zero_curve(rng)
    base = np.concatenate([z0, spreads])
    new = base + np.concatenate([rng.normal(0, 0.004, (3, len(GRID))), rng.normal(0, 0.002, (3, len(spreads)))], axis=1)
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    for s in range(len(new)):
        for i, (m, c, f, sp) in enumerate(BONDS):
            k = len(GRID) + spreads.index(sp)
            v0 = ql_bond_value(m, c, f, z0, base[k], GRID_DAYS)
            v1 = ql_bond_value(m, c, f, new[s, : len(GRID)], new[s, k], GRID_DAYS)
            assert abs(pnl[s, i] - (v1 - v0)) < 1e-10 * v0, (s, m)


def _records(kind: str, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if kind == "standard":  # semi-annual, maturing on the 15th of a month: payment dates shared
            m = AS_OF + pd.DateOffset(months=int(rng.integers(6, 20 * 12)))
            mat, freq = pd.Timestamp(m.year, m.month, 15), 2
        else:  # any day, any frequency
            mat, freq = AS_OF + pd.Timedelta(days=int(rng.integers(90, 20 * 365))), int(rng.choice([1, 2, 4]))
        out.append(dict(id=f"B{i}", type="bond", underlying="IR.USD.10Y", quantity=1e6, multiplier=1.0, currency="USD",
                        asset_class="rates", sleeve="s", adv=1e9, bid_ask_bps=1.0, coupon=0.03, frequency=freq,
                        maturity=mat.date().isoformat(), spread_factor="CR.A" if i % 2 else None))
    return out


@pytest.mark.parametrize("kind", ["standard", "random"])
def test_bonds_share_their_curve_nodes(kind):
    """Bonds on common coupon dates and bonds maturing on random days: each class (one curve, one
    spread) of 60 bonds is priced from far fewer discount factors than its flows, and the P&L equals
    the numpy twin's."""
    book = book_from_records(_records(kind, 120, 5), source="test")
    factors = tuple(kernels.required_factors(book.positions, "USD"))
    base = np.array([0.01 if f.startswith("CR.") else 0.02 + 0.001 * i for i, f in enumerate(factors)])
    prepared = kernels.prepare(book.positions, factors, "USD", AS_OF)
    (group,) = prepared.groups
    stats = layout_stats(group.arrays.layout)
    assert stats["curve_node_classes"] == 2 and stats["curve_nodes"] < stats["flows"] / 4
    shocks = np.random.default_rng(1).normal(0, 0.002, (9, len(factors)))
    a = kernels.revalue(prepared, base, shocks, log_mask(factors))
    b = kernels.revalue_numpy(prepared, base, shocks, log_mask(factors))
    assert np.max(np.abs(a - b) / _gross(group.arrays, base)) < 1e-12


def test_prepared_book_pickles_with_its_layout(two_curves):
    book, base, new = two_curves
    packed = book._replace(layout=flow_layout(book))
    again = pickle.loads(pickle.dumps(packed))
    np.testing.assert_array_equal(np.asarray(cashflow_pnl(again, base, new)), np.asarray(cashflow_pnl(packed, base, new)))


def test_base_levels_follow_the_scenarios_in_the_last_block(two_curves):
    """The base values sit in column ``S``: a call of 63 scenarios in blocks of 64 computes one block
    (its padding column is the base), a call of 64 needs a second; both give the numpy twin's P&L."""
    from stressgrid.kernels._edge import values_width

    assert (values_width(63, 64), values_width(64, 64), values_width(1, 64)) == (64, 128, 64)
    book, base, new = two_curves
    layout = flow_layout(book, curve_ids=(book.fx_idx >= 0).astype(int))
    levels = new[np.arange(64) % len(new)]
    for S in (63, 64):
        v = np.asarray(layout_values(layout, book.const, book.units, book.fx_idx, base, levels[:S], block=64))
        assert v.shape == (len(book.units), values_width(S, 64))
        pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, levels[:S], block=64))
        np.testing.assert_array_equal(pnl, (v[:, :S] - v[:, S:S + 1]).T)
        ref = cashflow_pnl_numpy(book, base, levels[:S])
        assert np.max(np.abs(pnl - ref) / (np.abs(book.units) * book.amounts.sum(axis=1))) < 1e-12
