"""Bonds, swaps, rate futures and curve shocks: QuantLib, textbook identities, numpy twin."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from stressgrid import kernels  # noqa: F401  (float64)
from stressgrid.core.curves import curve_shock, curve_shock_vector, interp_weights, interp_zero
from stressgrid.kernels._common import CurvePoints
from stressgrid.kernels._rates import (
    RateFutureBook,
    bond_cashflows,
    cashflow_pnl,
    cashflow_pnl_numpy,
    cashflow_value_one,
    rate_future_pnl,
    rate_future_pnl_numpy,
    rate_future_price,
)

from kernel_helpers import (
    AS_OF,
    GRID,
    bond_book,
    ql_bond,
    ql_curve,
    ql_date,
    random_cf_book,
    rel_err,
    zero_curve,
)

ql = pytest.importorskip("QuantLib")

def test_interpolation_matches_quantlib_and_core_curves():
    rng = np.random.default_rng(0)
    z = zero_curve(rng)
    t = np.concatenate([rng.uniform(0, 35, 200), GRID, [0.0, 1e-9, 40.0]])
    lo, hi, wl, wh = interp_weights(GRID, t)
    ours = wl * z[lo] + wh * z[hi]
    np.testing.assert_allclose(ours, interp_zero(GRID, z, t), rtol=0, atol=1e-15)
    interp = ql.LinearInterpolation(list(GRID), list(z))
    inside = (t >= GRID[0]) & (t <= GRID[-1])
    ref = np.array([interp(float(x)) for x in t[inside]])
    np.testing.assert_allclose(ours[inside], ref, rtol=1e-14)
    np.testing.assert_array_equal(ours[t < GRID[0]], z[0])
    np.testing.assert_array_equal(ours[t > GRID[-1]], z[-1])


@pytest.mark.parametrize("maturity,coupon,freq,spread", [
    ("2019-03-31", 0.0125, 2, 0.0), ("2022-03-31", 0.01875, 2, 0.0), ("2027-02-15", 0.0225, 2, 0.004),
    ("2047-02-15", 0.03, 2, 0.0), ("2024-07-31", 0.05, 1, 0.012), ("2021-10-31", 0.04, 4, 0.0), ("2018-09-30", 0.02, 12, 0.02),
])
def test_bond_price_matches_quantlib(maturity, coupon, freq, spread):
    rng = np.random.default_rng(hash(maturity) % 2**32)
    z = zero_curve(rng)
    L = np.concatenate([z, [spread]])
    b = bond_book(maturity, coupon, freq, spread_col=len(GRID))
    ours = float(cashflow_value_one(b, jnp.asarray(L)))
    bond = ql_bond(maturity, coupon, freq)
    curve = ql_curve(z)
    disc = ql.YieldTermStructureHandle(ql.ZeroSpreadedTermStructure(curve, ql.QuoteHandle(ql.SimpleQuote(spread)), ql.Continuous))
    bond.setPricingEngine(ql.DiscountingBondEngine(disc))
    assert rel_err(ours, bond.NPV() / 100.0) < 1e-10


@pytest.mark.parametrize("maturity,coupon,freq", [("2022-03-31", 0.01875, 2), ("2047-02-15", 0.03, 2), ("2020-06-30", 0.06, 4)])
def test_duration_and_convexity_match_quantlib_and_textbook(maturity, coupon, freq):
    """Flat curve at y: duration -P'/P (modified = Macaulay in continuous compounding) and convexity P''/P
    (continuous compounding; Fabozzi ch. 4) from AD through the kernel's parallel shift, against QuantLib's BondFunctions."""
    y = 0.031
    b = bond_book(maturity, coupon, freq)
    shift = lambda s: cashflow_value_one(b, jnp.full(len(GRID), y) + s)  # noqa: E731
    P = float(shift(0.0))
    D = -float(jax.grad(shift)(0.0)) / P
    C = float(jax.grad(jax.grad(shift))(0.0)) / P
    bond = ql_bond(maturity, coupon, freq)
    rate = ql.InterestRate(y, ql.Actual365Fixed(), ql.Continuous, ql.Annual)
    assert rel_err(P, ql.BondFunctions.cleanPrice(bond, rate) / 100 + ql.BondFunctions.accruedAmount(bond) / 100) < 1e-10
    assert rel_err(D, ql.BondFunctions.duration(bond, rate, ql.Duration.Modified)) < 1e-10
    assert rel_err(C, ql.BondFunctions.convexity(bond, rate)) < 1e-10
    # textbook: P(y + h) = P (1 - D h + C h^2 / 2) + O(T^3 h^3)
    h = 1e-4
    assert float(shift(h)) == pytest.approx(P * (1 - D * h + 0.5 * C * h * h), rel=1e-8)


def test_zero_coupon_bond_identities():
    """A zero-coupon bond's duration is its maturity and its price exp(-y T)."""
    y = 0.025
    b = bond_book("2027-03-29", 0.0, 1)
    T = float(b.times[-1])
    shift = lambda s: cashflow_value_one(b, jnp.full(len(GRID), y) + s)  # noqa: E731
    assert float(shift(0.0)) == pytest.approx(np.exp(-y * T), rel=1e-14)
    assert -float(jax.grad(shift)(0.0)) / float(shift(0.0)) == pytest.approx(T, rel=1e-13)


def test_par_swap_is_worth_zero_and_swap_is_bond_minus_par():
    """Receiver swap = fixed-coupon bond - 1 (floating leg at par, Hull ch. 7); at the par rate
    c* = f (1 - DF(T_n)) / sum DF(t_i) it is worth 0."""
    rng = np.random.default_rng(3)
    z = zero_curve(rng)
    t, _ = bond_cashflows(AS_OF, "2022-03-31", 0.0, 2)
    df = np.exp(-interp_zero(GRID, z, t) * t)
    par = 2 * (1 - df[-1]) / df.sum()
    swap = bond_book("2022-03-31", par, 2, const=-1.0)
    assert abs(float(cashflow_value_one(swap, jnp.asarray(z)))) < 1e-14
    off = bond_book("2022-03-31", 0.03, 2, const=-1.0)
    bond = bond_book("2022-03-31", 0.03, 2)
    assert float(cashflow_value_one(off, jnp.asarray(z))) == pytest.approx(float(cashflow_value_one(bond, jnp.asarray(z))) - 1.0, abs=1e-15)


def test_rate_future_matches_quantlib_forward_rate():
    rng = np.random.default_rng(4)
    z = zero_curve(rng)
    curve = ql_curve(z)
    today = ql_date(AS_OF)
    for start in ["2017-06-19", "2017-12-18", "2019-03-18", "2022-09-19"]:
        s = pd.Timestamp(start)
        e = s + pd.DateOffset(months=3)
        t1, t2 = (s - AS_OF).days / 365.0, (e - AS_OF).days / 365.0
        pts = [CurvePoints(*interp_weights(GRID, np.array(t))) for t in (t1, t2)]
        r = RateFutureBook(np.float64(t1), np.float64(t2), pts[0], pts[1], np.float64(1.0), np.int64(-1))
        fwd = curve.forwardRate(ql_date(s), ql_date(e), ql.Actual365Fixed(), ql.Simple).rate()
        assert rel_err(float(rate_future_price(r, jnp.asarray(z))), 100 * (1 - fwd)) < 1e-10
    del today


def test_curve_shocks():
    ten = GRID
    par = curve_shock(ten, "parallel", 0.01)
    np.testing.assert_array_equal(par, 0.01)
    # key-rate shocks of all tenors add up to the parallel shock (Ho 1992)
    total = sum(curve_shock(ten, "key_rate", 0.01, key_tenor=k) for k in ten)
    np.testing.assert_allclose(total, par, atol=1e-18)
    tw = curve_shock(ten, "twist", 0.01, pivot=5.0)
    assert tw[0] == pytest.approx(-0.01) and tw[-1] == pytest.approx(0.01)
    assert tw[np.argmin(np.abs(ten - 5.0))] == pytest.approx(0.0, abs=1e-3)
    assert np.all(np.diff(tw) >= 0)
    bf = curve_shock(ten, "butterfly", 0.01, pivot=5.0)
    assert bf[0] == pytest.approx(0.01) and bf[-1] == pytest.approx(0.01) and bf.min() == pytest.approx(-0.01, abs=2e-3)
    with pytest.raises(ValueError, match="key_tenor"):
        curve_shock(ten, "key_rate", 0.01, key_tenor=4.0)
    factors = ["EQ.SPX", "IR.USD.10Y", "IR.USD.1Y", "IR.EUR.1Y"]
    v = curve_shock_vector(factors, "USD", "twist", 0.01, pivot=5.0)
    assert v[0] == 0 and v[3] == 0 and v[1] == pytest.approx(0.01) and v[2] == pytest.approx(-0.01)


def test_key_rate_pnls_add_up_to_parallel_to_first_order():
    """Bond P&L under small key-rate shocks sums to its P&L under the parallel shock."""
    b = bond_book("2027-02-15", 0.0225, 2)
    z = zero_curve(np.random.default_rng(7))
    base = jnp.asarray(z)
    krs = [curve_shock(GRID, "key_rate", 1e-6, key_tenor=k) for k in GRID]
    kr_total = sum(float(cashflow_value_one(b, base + s)) - float(cashflow_value_one(b, base)) for s in krs)
    par = float(cashflow_value_one(b, base + 1e-6)) - float(cashflow_value_one(b, base))
    assert kr_total == pytest.approx(par, rel=1e-5)


def test_numpy_twins_match_jax_and_zero_shock_is_zero():
    rng = np.random.default_rng(8)
    book = random_cf_book(rng, 25)
    base = np.concatenate([zero_curve(rng), [0.01]])
    new = base + rng.normal(0, 0.005, (12, len(base)))
    a = np.asarray(cashflow_pnl(book, base, new))
    np.testing.assert_allclose(a, cashflow_pnl_numpy(book, base, new), rtol=1e-10, atol=1e-9)
    zero = np.repeat(base[None], 4, 0)
    assert np.all(np.asarray(cashflow_pnl(book, base, zero)) == 0.0)
    assert np.all(cashflow_pnl_numpy(book, base, zero) == 0.0)
    # rate futures
    t1 = rng.uniform(0.1, 5, 10)
    t2 = t1 + 0.25
    p1, p2 = (CurvePoints(*interp_weights(GRID, t)) for t in (t1, t2))
    rf = RateFutureBook(t1, t2, p1, p2, rng.uniform(-5000, 5000, 10), np.full(10, -1))
    z = base[: len(GRID)]
    newz = new[:, : len(GRID)]
    np.testing.assert_allclose(np.asarray(rate_future_pnl(rf, z, newz)), rate_future_pnl_numpy(rf, z, newz), rtol=1e-10, atol=1e-8)
    assert np.all(np.asarray(rate_future_pnl(rf, z, zero[:, : len(GRID)])) == 0.0)


def test_coupon_schedule_matches_pandas_month_offsets():
    """Dates ``maturity - k * 12/f months``, the day clipped to the month's end, as ``pd.DateOffset`` gives."""
    from stressgrid.kernels._rates import coupon_schedule

    rng = np.random.default_rng(12)
    for _ in range(300):
        mat = AS_OF + pd.Timedelta(days=int(rng.integers(1, 31 * 365)))
        if rng.random() < 0.4:  # month ends, where clipping matters
            mat = pd.Timestamp(mat.year, mat.month, 1) + pd.offsets.MonthEnd(0)
        f = int(rng.choice([1, 2, 3, 4, 6, 12]))
        want, k = [], 0
        while (d := mat - pd.DateOffset(months=k * 12 // f)) > AS_OF:
            want.append(d)
            k += 1
        assert coupon_schedule(AS_OF, mat, f) == want[::-1], (mat, f)
        t, a = bond_cashflows(AS_OF, mat, 0.04, f)
        np.testing.assert_array_equal(t, np.array([(d - AS_OF).days for d in want[::-1]]) / 365.0)
        assert a[-1] == pytest.approx(1 + 0.04 / f) and np.all(a[:-1] == 0.04 / f)


def test_a_curve_grid_edited_after_first_use_is_the_one_read(monkeypatch):
    """The tenor grids are cached by their tenors, so an edit of CURVE_TENORS (before preparing a book) is
    seen: EUR's default grid (3M, 2Y, 10Y), then a grid of 1Y and 5Y; 3 years interpolates between them."""
    from stressgrid.kernels import _common

    idx = {f"IR.EUR.{t}": i for i, t in enumerate(("3M", "2Y", "10Y", "1Y", "5Y"))}
    before = _common.curve_points("EUR", np.array([3.0]), idx)
    assert (before.lo[0], before.hi[0]) == (idx["IR.EUR.2Y"], idx["IR.EUR.10Y"])
    np.testing.assert_allclose(before.w_hi, [(3.0 - 2.0) / (10.0 - 2.0)], rtol=1e-15)
    monkeypatch.setitem(_common.CURVE_TENORS, "EUR", ("5Y", "1Y"))  # given out of order
    assert _common.curve_tenors("EUR") == ("1Y", "5Y")
    after = _common.curve_points("EUR", np.array([3.0]), idx)
    assert (after.lo[0], after.hi[0]) == (idx["IR.EUR.1Y"], idx["IR.EUR.5Y"])
    np.testing.assert_allclose(after.w_hi, [(3.0 - 1.0) / (5.0 - 1.0)], rtol=1e-15)
