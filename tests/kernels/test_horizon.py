"""A book valued at a horizon (kernels.age): identities on the demo book, and closed forms and QuantLib
for each instrument that pays, expires or decays inside the horizon."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from stressgrid import kernels
from stressgrid.core import book_from_records, log_mask

AS_OF = pd.Timestamp("2019-01-02")  # a Wednesday: 10 business days later is 2019-01-16 (14 calendar days)
BASE = dict(quantity=1.0, multiplier=1.0, currency="USD", asset_class="equity", sleeve="s", adv=1e6, bid_ask_bps=1.0)
Y = 0.04  # a flat USD zero curve
SIGMA = 0.2


@pytest.fixture(scope="module", autouse=True)
def _x64():
    kernels.configure_process()


@pytest.fixture(scope="module")
def demo(demo_prepared):
    return demo_prepared


def _market(records, extra: dict[str, float] | None = None):
    """A book of ``records`` on a flat 4% USD curve, a flat 20% vol surface, SPX at 100, EURUSD at 1.1."""
    book = book_from_records([{**BASE, "id": f"P{i}", **r} for i, r in enumerate(records)], source="test")
    factors = kernels.required_factors(book.positions, "USD")
    lv = {}
    for f in factors:
        if f.startswith("IR."):
            lv[f] = Y
        elif f.endswith(".ATM"):
            lv[f] = SIGMA
        elif f.startswith("VOL."):
            lv[f] = 0.0
        elif f.startswith("FX."):
            lv[f] = 1.1
        elif f.startswith("CR."):
            lv[f] = 0.01
        elif f.startswith("BASIS."):
            lv[f] = 0.03
        else:
            lv[f] = 100.0
    lv.update(extra or {})
    levels = np.array([lv[f] for f in factors])
    prepared = kernels.prepare(book.positions, tuple(factors), "USD", AS_OF, levels=levels)
    return book, tuple(factors), levels, prepared


def _years(a, b) -> float:
    return (pd.Timestamp(b) - pd.Timestamp(a)).days / 365.0


def _bs(S, K, T, r, sig, omega=1.0):
    d1 = (math.log(S / K) + (r + 0.5 * sig * sig) * T) / (sig * math.sqrt(T))
    d2 = d1 - sig * math.sqrt(T)
    return omega * (S * norm.cdf(omega * d1) - K * math.exp(-r * T) * norm.cdf(omega * d2))


# --------------------------------------------------------------------------------------------------
# identities on the demo book
# --------------------------------------------------------------------------------------------------


def _demo_shocks(snap, S=6, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (S, len(snap.factors))) * np.where(snap.is_log, 0.03, 0.001)


def test_zero_horizon_gives_todays_pnl_bit_for_bit(demo):
    book, snap, prepared = demo
    sh = _demo_shocks(snap)
    aged = kernels.age(prepared, book.positions, "USD", snap.as_of, 0, snap.levels)
    assert np.array_equal(aged.offset, np.zeros(prepared.n))
    assert np.array_equal(kernels.revalue(aged, snap.levels, sh, snap.is_log), kernels.revalue(prepared, snap.levels, sh, snap.is_log))


@pytest.mark.parametrize("days", [1, 10, 60, 260])
def test_zero_shock_gives_exactly_the_time_component(demo, days):
    book, snap, prepared = demo
    aged = kernels.age(prepared, book.positions, "USD", snap.as_of, days, snap.levels)
    zero = np.zeros((3, len(snap.factors)))
    pnl = kernels.revalue(aged, snap.levels, zero, snap.is_log)
    assert np.array_equal(pnl, np.broadcast_to(aged.offset, pnl.shape))
    # the groups of the aged book partition the positions
    cols = np.sort(np.concatenate([g.columns for g in aged.groups]))
    assert np.array_equal(cols, np.arange(prepared.n))
    # equities carry nothing; the numpy twins agree with the kernels under shocks
    eq = book.positions["type"].isin(["equity", "equity_future"]).to_numpy()
    assert np.all(aged.offset[eq] == 0.0)
    sh = _demo_shocks(snap)
    a = kernels.revalue(aged, snap.levels, sh, snap.is_log)
    b = kernels.revalue_numpy(aged, snap.levels, sh, snap.is_log)
    assert np.max(np.abs(a - b) / (np.abs(b).max(axis=0) + 1.0)) < 1e-10


def test_a_year_expires_every_option_of_the_demo(demo):
    book, snap, prepared = demo
    aged = kernels.age(prepared, book.positions, "USD", snap.as_of, 300, snap.levels)
    types = [g.pricer.types for g in aged.groups]
    assert ("option:settled",) in types and ("option",) not in types


def test_options_that_expire_keep_the_fortran_order_and_its_numbers(demo):
    """Aged past some expiries, an options-only book splits into live and settled options; both groups
    write straight into a Fortran-ordered P&L (the order the option kernel writes fastest), with the
    same numbers as a C-ordered one and the numpy twins."""
    book, snap, _ = demo
    opts = book.positions[book.positions["type"] == "option"].reset_index(drop=True)
    prepared = kernels.prepare(opts, snap.factors, "USD", snap.as_of, levels=snap.levels)
    expiries = pd.to_datetime(opts["expiry"])
    days = next(d for d in range(1, 600) if 0 < (expiries <= snap.as_of + pd.offsets.BDay(d)).sum() < len(opts))
    aged = kernels.age(prepared, opts, "USD", snap.as_of, days, snap.levels)
    assert sorted(g.pricer.types for g in aged.groups) == [("option",), ("option:settled",)]
    assert kernels.preferred_order(aged) == "F"
    sh = _demo_shocks(snap, S=40)
    f = kernels.revalue(aged, snap.levels, sh, snap.is_log, out=np.empty((40, aged.n), order="F"))
    c = kernels.revalue(aged, snap.levels, sh, snap.is_log, out=np.empty((40, aged.n), order="C"))
    np.testing.assert_array_equal(f, c)
    twin = kernels.revalue_numpy(aged, snap.levels, sh, snap.is_log)
    assert np.max(np.abs(f - twin) / (np.abs(twin).max(axis=0) + 1.0)) < 1e-10


# --------------------------------------------------------------------------------------------------
# closed forms per instrument
# --------------------------------------------------------------------------------------------------


def test_option_expiring_inside_the_horizon_pays_its_payoff_on_the_scenario_level():
    expiry = AS_OF + pd.offsets.BDay(3)
    book, factors, levels, prepared = _market([dict(type="option", underlying="EQ.SPX", strike=100.0, expiry=expiry.date(),
                                                    option_type="call", quantity=10.0)])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    assert [g.pricer.types for g in aged.groups] == [("option:settled",)]
    spot = list(factors).index("EQ.SPX")
    moves = np.array([-0.1, 0.0, 0.02, 0.15])
    shocks = np.zeros((len(moves), len(factors)))
    shocks[:, spot] = moves
    pnl = kernels.revalue(aged, levels, shocks, log_mask(factors))[:, 0]
    v0 = 10.0 * _bs(100.0, 100.0, _years(AS_OF, expiry), Y, SIGMA)
    expected = 10.0 * np.maximum(100.0 * np.exp(moves) - 100.0, 0.0) - v0
    np.testing.assert_allclose(pnl, expected, rtol=1e-12, atol=1e-10)


def test_option_alive_at_the_horizon_matches_quantlib_at_the_shorter_time():
    ql = pytest.importorskip("QuantLib")
    expiry = pd.Timestamp("2019-06-21")
    book, factors, levels, prepared = _market([dict(type="option", underlying="EQ.SPX", strike=95.0, expiry=expiry.date(),
                                                    option_type="put")])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    v_at = kernels.revalue(aged, levels, np.zeros((1, len(factors))), log_mask(factors))[0, 0] + \
        _bs(100.0, 95.0, _years(AS_OF, expiry), Y, SIGMA, -1.0)

    at = aged.at
    ql.Settings.instance().evaluationDate = ql.Date(at.day, at.month, at.year)
    dc = ql.Actual365Fixed()
    today = ql.Date(at.day, at.month, at.year)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)), ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, Y, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), SIGMA, dc)))
    opt = ql.EuropeanOption(ql.PlainVanillaPayoff(ql.Option.Put, 95.0), ql.EuropeanExercise(ql.Date(21, 6, 2019)))
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    assert v_at == pytest.approx(opt.NPV(), rel=1e-12)


def test_bond_pays_its_coupon_into_cash_and_rolls_down_a_flat_curve():
    # semiannual 6% bond paying on 2019-01-10 (inside a 10-day horizon), maturing 2021-07-10
    book, factors, levels, prepared = _market([dict(type="bond", underlying="IR.USD.10Y", coupon=0.06, frequency=2,
                                                    maturity="2021-07-10", quantity=1e6, asset_class="rates")])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    dates = pd.to_datetime(["2019-01-10", "2019-07-10", "2020-01-10", "2020-07-10", "2021-01-10", "2021-07-10"])
    a = np.full(len(dates), 0.03)
    a[-1] += 1.0
    t0 = np.array([_years(AS_OF, d) for d in dates])
    dt = _years(AS_OF, aged.at)
    v0 = np.sum(a * np.exp(-Y * t0))
    v_at = a[0] + np.sum(a[1:] * np.exp(-Y * (t0[1:] - dt)))
    assert aged.offset[0] == pytest.approx(1e6 * (v_at - v0), rel=1e-12)
    # a parallel +100bp shock at the horizon moves only the remaining flows
    ir = np.array([f.startswith("IR.") for f in factors])
    shock = np.where(ir, 0.01, 0.0)[None, :]
    pnl = kernels.revalue(aged, levels, shock, log_mask(factors))[0, 0]
    assert pnl == pytest.approx(1e6 * (a[0] + np.sum(a[1:] * np.exp(-(Y + 0.01) * (t0[1:] - dt))) - v0), rel=1e-12)


def test_matured_bond_holds_its_cash():
    book, factors, levels, prepared = _market([dict(type="bond", underlying="IR.USD.10Y", coupon=0.05, frequency=2,
                                                    maturity="2019-01-08", quantity=100.0, asset_class="rates")])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 5, levels)
    t = _years(AS_OF, "2019-01-08")
    pnl = kernels.revalue(aged, levels, np.full((1, len(factors)), 0.02), log_mask(factors))[0, 0]
    assert pnl == pytest.approx(100.0 * (1.025 - 1.025 * math.exp(-Y * t)), rel=1e-12)


def test_swap_floating_leg_accrues_at_todays_rate():
    book, factors, levels, prepared = _market([dict(type="swap", underlying="IR.USD.5Y", coupon=0.04, frequency=2,
                                                    maturity="2024-01-02", quantity=1.0, asset_class="rates")])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    dt = _years(AS_OF, aged.at)
    t = np.array([_years(AS_OF, AS_OF + pd.DateOffset(months=6 * k)) for k in range(1, 11)])
    a = np.full(10, 0.02)
    a[-1] += 1.0
    fixed0, fixed_at = np.sum(a * np.exp(-Y * t)), np.sum(a * np.exp(-Y * (t - dt)))
    assert aged.offset[0] == pytest.approx((fixed_at - math.exp(Y * dt)) - (fixed0 - 1.0), rel=1e-10)


def test_cds_accrues_its_premium_into_cash():
    rec = dict(type="cds", underlying="CR.CDX.IG", coupon=0.01, recovery=0.4, maturity="2023-12-20", quantity=1e7,
               asset_class="credit")
    book, factors, levels, prepared = _market([rec])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    cds = [g for g in aged.groups if g.pricer.types == ("cds",)][0].arrays
    assert cds.cash[0] == pytest.approx(0.01 * 14 / 360, rel=1e-15)
    # the value at the horizon is the CDS started at the horizon plus that cash
    book_at = kernels.prepare(book.positions, factors, "USD", aged.at, levels=levels)
    v_at = [g for g in book_at.groups if g.pricer.types == ("cds",)][0]
    mark_at = v_at.pricer.mark(v_at.arrays, levels[None])[0, 0]
    mark_0 = prepared.groups[0].pricer.mark(prepared.groups[0].arrays, levels[None])[0, 0]
    assert aged.offset[0] == pytest.approx(mark_at + 1e7 * 0.01 * 14 / 360 - mark_0, rel=1e-12)


def test_fx_forward_settled_inside_the_horizon_is_worth_n_s_minus_k():
    rec = dict(type="fx_forward", underlying="FX.EURUSD", maturity="2019-01-09", forward_rate=1.09, quantity=1e6, currency="EUR",
               asset_class="fx")
    book, factors, levels, prepared = _market([rec])
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    spot = list(factors).index("FX.EURUSD")
    sh = np.zeros((2, len(factors)))
    sh[1, spot] = 0.05
    pnl = kernels.revalue(aged, levels, sh, log_mask(factors))[:, 0]
    T = _years(AS_OF, "2019-01-09")
    v0 = 1e6 * (1.1 - 1.09) * math.exp(-Y * T)  # both curves flat at Y
    np.testing.assert_allclose(pnl, 1e6 * (np.array([1.1, 1.1 * math.exp(0.05)]) - 1.09) - v0, rtol=1e-12, atol=1e-9)


def test_commodity_future_rolls_to_spot_and_rate_future_fixes():
    recs = [dict(type="commodity_future", underlying="CMD.WTI", maturity="2019-03-20", quantity=10.0, asset_class="commodity"),
            dict(type="rate_future", underlying="IR.USD.3M", maturity="2019-01-09", quantity=1.0, asset_class="rates")]
    book, factors, levels, prepared = _market(recs)
    aged = kernels.age(prepared, book.positions, "USD", AS_OF, 10, levels)
    T, dt = _years(AS_OF, "2019-03-20"), _years(AS_OF, aged.at)
    assert aged.offset[0] == pytest.approx(10.0 * 100.0 * (math.exp(0.03 * (T - dt)) - math.exp(0.03 * T)), rel=1e-12)
    # the rate period started inside the horizon: fixed at the (flat) curve's simple rate over the period
    t1, t2 = _years(AS_OF, "2019-01-09"), _years(AS_OF, "2019-04-09")
    f0 = (math.exp(Y * (t2 - t1)) - 1.0) / (t2 - t1)
    assert aged.offset[1] == pytest.approx(0.0, abs=1e-9)  # the same rate on a flat curve
    ir = np.array([f.startswith("IR.") for f in factors])
    pnl = kernels.revalue(aged, levels, np.where(ir, 0.01, 0.0)[None, :], log_mask(factors))[0, 1]
    f1 = (math.exp((Y + 0.01) * (t2 - t1)) - 1.0) / (t2 - t1)
    assert pnl == pytest.approx(100.0 * (f0 - f1), rel=1e-10)


# --------------------------------------------------------------------------------------------------
# along a daily path (kernels.revalue_path)
# --------------------------------------------------------------------------------------------------


def _spot_path(factors, spot_moves: np.ndarray, fx_moves: np.ndarray | None = None) -> np.ndarray:
    """``[S, H, F]`` cumulative shocks moving only the spot (and EURUSD if given)."""
    S, H = spot_moves.shape
    paths = np.zeros((S, H, len(factors)))
    paths[:, :, list(factors).index("EQ.SPX")] = spot_moves
    if fx_moves is not None:
        paths[:, :, list(factors).index("FX.EURUSD")] = fx_moves
    return paths


def test_option_expiring_on_day_three_of_a_path_pays_the_day_three_level_then_holds_it():
    """The issue's reference: an option expiring on day 3 of a 10-day path pays max(S - K, 0) at the day-3
    level and is worth that cash afterwards; before, it is Black-Scholes at the shorter time."""
    expiry = AS_OF + pd.offsets.BDay(3)
    book, factors, levels, prepared = _market([dict(type="option", underlying="EQ.SPX", strike=100.0, expiry=expiry.date(),
                                                    option_type="call", quantity=10.0)])
    rng = np.random.default_rng(7)
    moves = np.cumsum(rng.normal(0.0, 0.03, (5, 10)), axis=1)
    pnl = kernels.revalue_path(prepared, book.positions, "USD", AS_OF, levels, _spot_path(factors, moves), log_mask(factors))
    assert pnl.shape == (5, 10, 1)
    v0 = 10.0 * _bs(100.0, 100.0, _years(AS_OF, expiry), Y, SIGMA)
    for k in (1, 2):
        at = AS_OF + pd.offsets.BDay(k)
        expected = [10.0 * _bs(100.0 * math.exp(m), 100.0, _years(at, expiry), Y, SIGMA) - v0 for m in moves[:, k - 1]]
        np.testing.assert_allclose(pnl[:, k - 1, 0], expected, rtol=1e-9)
    settled = 10.0 * np.maximum(100.0 * np.exp(moves[:, 2]) - 100.0, 0.0) - v0
    for k in range(3, 11):  # day 3 onwards: the day-3 payoff, whatever the spot does later
        np.testing.assert_allclose(pnl[:, k - 1, 0], settled, rtol=1e-12, atol=1e-10)


def test_foreign_bond_that_matures_on_a_path_holds_its_cash_at_the_day_of_maturity():
    """A EUR bond maturing on day 4: its coupon and face are converted at day 4's EURUSD, and later moves
    of EURUSD do not change its P&L; before maturity it is the aged book under that day's levels."""
    mat = AS_OF + pd.offsets.BDay(4)
    rec = dict(type="bond", underlying="IR.EUR.10Y", coupon=0.05, frequency=2, maturity=mat.date(), quantity=100.0,
               currency="EUR", asset_class="rates")
    book, factors, levels, prepared = _market([rec])
    fx = np.array([[0.0, 0.01, 0.02, 0.03, -0.05, 0.1, 0.2, -0.2]])
    paths = np.zeros((1, 8, len(factors)))
    paths[:, :, list(factors).index("FX.EURUSD")] = fx
    pnl = kernels.revalue_path(prepared, book.positions, "USD", AS_OF, levels, paths, log_mask(factors))[0, :, 0]
    assert kernels.settlement_days(book.positions, AS_OF, 8).tolist() == [4]
    v0 = 100.0 * 1.025 * math.exp(-Y * _years(AS_OF, mat)) * 1.1
    for k in range(1, 4):
        aged = kernels.age(prepared, book.positions, "USD", AS_OF, k, levels)
        assert pnl[k - 1] == kernels.revalue(aged, levels, paths[:, k - 1], log_mask(factors))[0, 0]
    np.testing.assert_allclose(pnl[3:], 100.0 * 1.025 * 1.1 * math.exp(0.03) - v0, rtol=1e-12)


def test_demo_path_without_shocks_is_each_days_time_component_and_its_last_day_the_horizon_book(demo):
    book, snap, prepared = demo
    H = 10
    assert not kernels.settlement_days(book.positions, snap.as_of, H).any()  # nothing in the demo book ends in 10 days
    zero = kernels.revalue_path(prepared, book.positions, "USD", snap.as_of, snap.levels, np.zeros((2, H, len(snap.factors))),
                                snap.is_log)
    for k in (1, 5, H):
        offset = kernels.age(prepared, book.positions, "USD", snap.as_of, k, snap.levels).offset
        assert np.array_equal(zero[:, k - 1], np.broadcast_to(offset, (2, prepared.n)))
    # a random path: its last day is the book valued at the horizon under the path's last levels (the bonds'
    # flows of every day are packed together, so their sums round differently: 1e-14 of the values here)
    rng = np.random.default_rng(11)
    paths = np.cumsum(rng.normal(0, 1, (4, H, len(snap.factors))) * np.where(snap.is_log, 0.01, 0.0003), axis=1)
    pnl = kernels.revalue_path(prepared, book.positions, "USD", snap.as_of, snap.levels, paths, snap.is_log)
    aged = kernels.age(prepared, book.positions, "USD", snap.as_of, H, snap.levels)
    np.testing.assert_allclose(pnl[:, -1], kernels.revalue(aged, snap.levels, paths[:, -1], snap.is_log), rtol=1e-12, atol=1e-6)


def _day_by_day(prepared, positions, as_of, levels, paths, is_log):
    """The path revalued one day at a time: day ``k`` is the book valued ``k`` business days later
    (kernels.age) under that day's levels; a position that ends on the path keeps its last day's P&L."""
    S, H, _ = paths.shape
    out = np.stack([kernels.revalue(kernels.age(prepared, positions, "USD", as_of, k, levels), levels, paths[:, k - 1], is_log)
                    for k in range(1, H + 1)], axis=1)
    for j, e in enumerate(kernels.settlement_days(positions, as_of, H)):
        if 0 < e < H:
            out[:, e:, j] = out[:, e - 1, j][:, None]
    return out


def _path_case(demo):
    """The demo book with things ending on a 12-day path (an option on day 3, a commodity option on day 4,
    an FX forward on day 5, a commodity future on day 6, a bond on day 8, a rate future fixing on day 2),
    random paths, and their P&L valued day by day: ``(positions, paths, reference)``."""
    book, snap, _ = demo
    H = 12
    day = lambda k: (snap.as_of + pd.offsets.BDay(k)).date()  # noqa: E731
    pos = book.positions.copy()
    ends = {"SPX_P2400_SV": ("expiry", 3), "WTI_C50_U9": ("expiry", 4), "EURUSD_FWD": ("maturity", 5),
            "CL_J9": ("maturity", 6), "UST_2Y": ("maturity", 8), "ED_Z9": ("maturity", 2)}
    for pid, (col, k) in ends.items():
        pos.loc[pos["id"] == pid, col] = pd.Timestamp(day(k))
    pos.loc[pos["id"] == "WTI_C50_U9", "maturity"] = pd.Timestamp(day(9))
    settle = kernels.settlement_days(pos, snap.as_of, H)
    assert sorted(settle[settle > 0].tolist()) == [2, 3, 4, 5, 6, 8]  # the rate future's: its fixing, the period's start
    prepared = kernels.prepare(pos, snap.factors, "USD", snap.as_of, levels=snap.levels)
    rng = np.random.default_rng(5)
    paths = np.cumsum(rng.normal(0, 1, (6, H, len(snap.factors))) * np.where(snap.is_log, 0.015, 0.0004), axis=1)
    return pos, paths, _day_by_day(prepared, pos, snap.as_of, snap.levels, paths, snap.is_log)


def test_every_day_of_a_path_in_one_book_equals_the_book_valued_day_by_day(demo):
    """Every pricer runs once over all days of the path (kernels.path_book), and each day is the book
    valued on that day, for every instrument type of the demo book with things ending on the path."""
    _, snap, _ = demo
    pos, paths, ref = _path_case(demo)
    H = paths.shape[1]
    prepared = kernels.prepare(pos, snap.factors, "USD", snap.as_of, levels=snap.levels)
    cache: dict = {}
    pnl = kernels.revalue_path(prepared, pos, "USD", snap.as_of, snap.levels, paths, snap.is_log, cache)
    assert list(cache) == [(1, H)]  # the demo book is small: one book for the whole path
    one = cache[(1, H)]
    assert one.n == H * prepared.n and len(one.factors) == H * len(snap.factors)
    # one group per pricer (the options that expired have their own), not one per day
    assert len(one.groups) == len({g.pricer.types for g in one.groups}) == len(prepared.groups) + 1
    np.testing.assert_allclose(pnl, ref, rtol=1e-12, atol=1e-6)
    # the cached book is used again (the same object), and gives the same P&L
    again = kernels.revalue_path(prepared, pos, "USD", snap.as_of, snap.levels, paths, snap.is_log, cache)
    assert cache[(1, H)] is one and np.array_equal(again, pnl)


def test_a_large_book_revalues_its_path_in_blocks_of_days(demo, monkeypatch):
    """A book too wide for one path book (here: the kernels' cell budget cut so that 5 days fit) is revalued
    in blocks of days, each its own path book, to the same P&L as day by day."""
    from stressgrid.kernels import _tuning

    _, snap, _ = demo
    pos, paths, ref = _path_case(demo)
    monkeypatch.setattr(_tuning, "CALL_CELLS", 5 * _tuning.CALL_ROWS[0] * len(snap.factors))
    assert kernels.path_days(len(pos), len(snap.factors)) == 5
    prepared = kernels.prepare(pos, snap.factors, "USD", snap.as_of, levels=snap.levels)
    cache: dict = {}
    pnl = kernels.revalue_path(prepared, pos, "USD", snap.as_of, snap.levels, paths, snap.is_log, cache)
    assert sorted(cache) == [(1, 5), (6, 5), (11, 2)]
    assert cache[(6, 5)].factors[0] == f"{snap.factors[0]}@6" and cache[(11, 2)].horizon_days == 12
    np.testing.assert_allclose(pnl, ref, rtol=1e-12, atol=1e-6)


def test_stacked_arrays_pad_their_trailing_axes_with_zeros_and_repeat_scalars():
    a = kernels.CdsBook(*([np.ones((2, 3))] * 6), kernels._common.CurvePoints(*([np.ones((2, 3))] * 4)),
                        kernels._common.CurvePoints(*([np.ones((2, 3))] * 4)), *([np.ones(2)] * 6), cash=0.5)
    b = a._replace(**{f: np.full((1, 1), 2.0) for f in ("t_start", "t_end", "t_mid", "tau", "tau_mid", "mask")},
                   p_end=kernels._common.CurvePoints(*([np.full((1, 1), 2.0)] * 4)),
                   **{f: np.full(1, 2.0) for f in ("spread_idx", "recovery", "coupon", "units", "fx_idx", "constituents")},
                   cash=np.array(0.25))
    b = b._replace(p_mid=b.p_end)
    s = kernels.stack_arrays([a, b], [2, 1])
    assert s.mask.tolist() == [[1, 1, 1], [1, 1, 1], [2, 0, 0]]
    assert s.p_mid.w_hi.tolist() == [[1, 1, 1], [1, 1, 1], [2, 0, 0]]
    assert s.units.tolist() == [1, 1, 2] and s.cash.tolist() == [0.5, 0.5, 0.25]
    assert kernels.stack_arrays([a, a], [2, 2]).cash == 0.5  # the same scalar in every part stays one


def test_settlement_days_count_business_days_and_skip_what_ends_outside_the_path():
    as_of = pd.Timestamp("2019-01-04")  # a Friday: day 1 is Monday 2019-01-07
    recs = [dict(type="option", underlying="EQ.SPX", strike=100.0, expiry="2019-01-06", option_type="put"),  # Sunday: day 1
            dict(type="option", underlying="EQ.SPX", strike=100.0, expiry="2019-01-09", option_type="put",
                 maturity="2019-01-16"),  # an option's day is its expiry, not its underlying future's maturity: day 3
            dict(type="bond", underlying="IR.USD.10Y", coupon=0.05, frequency=2, maturity="2019-01-18"),  # day 10
            dict(type="bond", underlying="IR.USD.10Y", coupon=0.05, frequency=2, maturity="2019-01-21"),  # day 11: outside
            dict(type="equity", underlying="EQ.SPX"),
            dict(type="option", underlying="EQ.SPX", strike=100.0, expiry="2019-01-04", option_type="put")]  # the as-of date
    book = book_from_records([{**BASE, "id": f"P{i}", **r} for i, r in enumerate(recs)], source="test")
    assert kernels.settlement_days(book.positions, as_of, 10).tolist() == [1, 3, 10, 0, 0, 0]
