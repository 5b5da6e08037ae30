"""Bonds, swaps, rate futures and curve shocks: QuantLib, textbook identities, numpy twin."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import kernels  # noqa: F401  (float64)
from core.curves import curve_shock, curve_shock_vector, interp_weights, interp_zero
from kernels._common import CurvePoints
from kernels._rates import (
    CashflowBook,
    RateFutureBook,
    bond_cashflows,
    cashflow_pnl,
    cashflow_pnl_numpy,
    cashflow_value_one,
    rate_future_pnl,
    rate_future_pnl_numpy,
    rate_future_price,
)

from kernel_helpers import AS_OF, ql_date, rel_err

ql = pytest.importorskip("QuantLib")

#: test tenor grid in whole days, so that QuantLib's dates give the same times (Actual/365F)
GRID_DAYS = np.array([30, 91, 182, 365, 730, 1095, 1825, 2555, 3650, 7300, 10950])
GRID = GRID_DAYS / 365.0


def _curve(rng) -> np.ndarray:
    return 0.01 + 0.02 * (1 - np.exp(-GRID / 5)) + rng.normal(0, 0.002, len(GRID))


def _bond_book(maturity, coupon, freq, spread_col=None, const=0.0) -> CashflowBook:
    t, a = bond_cashflows(AS_OF, maturity, coupon, freq)
    lo, hi, wl, wh = interp_weights(GRID, t)
    return CashflowBook(
        times=t, amounts=a, pts=CurvePoints(lo, hi, wl, wh),
        spread_idx=np.int64(spread_col if spread_col is not None else 0),
        spread_w=np.float64(1.0 if spread_col is not None else 0.0),
        const=np.float64(const), units=np.float64(1.0), fx_idx=np.int64(-1),
    )


def _ql_curve(zeros):
    today = ql_date(AS_OF)
    ql.Settings.instance().evaluationDate = today
    # nodes at the reference date and far out reproduce flat extrapolation at both ends
    dates = [today] + [today + int(d) for d in GRID_DAYS] + [today + 365 * 100]
    z = [zeros[0]] + list(zeros) + [zeros[-1]]
    return ql.YieldTermStructureHandle(ql.ZeroCurve(dates, z, ql.Actual365Fixed(), ql.NullCalendar(), ql.Linear(), ql.Continuous))


def _ql_bond(maturity, coupon, freq):
    mat = ql_date(maturity)
    period = ql.Period(12 // freq, ql.Months)
    issue = mat - ql.Period(12 // freq * 100, ql.Months)
    sched = ql.Schedule(issue, mat, period, ql.NullCalendar(), ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False)
    return ql.FixedRateBond(0, 100.0, sched, [coupon], ql.ActualActual(ql.ActualActual.ISMA), ql.Unadjusted)


def test_interpolation_matches_quantlib_and_core_curves():
    rng = np.random.default_rng(0)
    z = _curve(rng)
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
    z = _curve(rng)
    L = np.concatenate([z, [spread]])
    b = _bond_book(maturity, coupon, freq, spread_col=len(GRID))
    ours = float(cashflow_value_one(b, jnp.asarray(L)))
    bond = _ql_bond(maturity, coupon, freq)
    curve = _ql_curve(z)
    disc = ql.YieldTermStructureHandle(ql.ZeroSpreadedTermStructure(curve, ql.QuoteHandle(ql.SimpleQuote(spread)), ql.Continuous))
    bond.setPricingEngine(ql.DiscountingBondEngine(disc))
    assert rel_err(ours, bond.NPV() / 100.0) < 1e-10


@pytest.mark.parametrize("maturity,coupon,freq", [("2022-03-31", 0.01875, 2), ("2047-02-15", 0.03, 2), ("2020-06-30", 0.06, 4)])
def test_duration_and_convexity_match_quantlib_and_textbook(maturity, coupon, freq):
    """Flat curve at y: duration -P'/P (modified = Macaulay in continuous compounding) and convexity P''/P
    (continuous compounding; Fabozzi ch. 4) from AD through the kernel's parallel shift, against QuantLib's BondFunctions."""
    y = 0.031
    b = _bond_book(maturity, coupon, freq)
    shift = lambda s: cashflow_value_one(b, jnp.full(len(GRID), y) + s)  # noqa: E731
    P = float(shift(0.0))
    D = -float(jax.grad(shift)(0.0)) / P
    C = float(jax.grad(jax.grad(shift))(0.0)) / P
    bond = _ql_bond(maturity, coupon, freq)
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
    b = _bond_book("2027-03-29", 0.0, 1)
    T = float(b.times[-1])
    shift = lambda s: cashflow_value_one(b, jnp.full(len(GRID), y) + s)  # noqa: E731
    assert float(shift(0.0)) == pytest.approx(np.exp(-y * T), rel=1e-14)
    assert -float(jax.grad(shift)(0.0)) / float(shift(0.0)) == pytest.approx(T, rel=1e-13)


def test_par_swap_is_worth_zero_and_swap_is_bond_minus_par():
    """Receiver swap = fixed-coupon bond - 1 (floating leg at par, Hull ch. 7); at the par rate
    c* = f (1 - DF(T_n)) / sum DF(t_i) it is worth 0."""
    rng = np.random.default_rng(3)
    z = _curve(rng)
    t, _ = bond_cashflows(AS_OF, "2022-03-31", 0.0, 2)
    df = np.exp(-interp_zero(GRID, z, t) * t)
    par = 2 * (1 - df[-1]) / df.sum()
    swap = _bond_book("2022-03-31", par, 2, const=-1.0)
    assert abs(float(cashflow_value_one(swap, jnp.asarray(z)))) < 1e-14
    off = _bond_book("2022-03-31", 0.03, 2, const=-1.0)
    bond = _bond_book("2022-03-31", 0.03, 2)
    assert float(cashflow_value_one(off, jnp.asarray(z))) == pytest.approx(float(cashflow_value_one(bond, jnp.asarray(z))) - 1.0, abs=1e-15)


def test_rate_future_matches_quantlib_forward_rate():
    rng = np.random.default_rng(4)
    z = _curve(rng)
    curve = _ql_curve(z)
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
    b = _bond_book("2027-02-15", 0.0225, 2)
    z = _curve(np.random.default_rng(7))
    base = jnp.asarray(z)
    krs = [curve_shock(GRID, "key_rate", 1e-6, key_tenor=k) for k in GRID]
    kr_total = sum(float(cashflow_value_one(b, base + s)) - float(cashflow_value_one(b, base)) for s in krs)
    par = float(cashflow_value_one(b, base + 1e-6)) - float(cashflow_value_one(b, base))
    assert kr_total == pytest.approx(par, rel=1e-5)


def _random_cf_book(rng, n):
    books = []
    for _ in range(n):
        mat = AS_OF + pd.Timedelta(days=int(rng.integers(40, 30 * 365)))
        books.append(_bond_book(mat, float(rng.uniform(0, 0.08)), int(rng.choice([1, 2, 4, 12])), spread_col=len(GRID),
                                const=float(rng.choice([0.0, -1.0]))))
    J = max(len(b.times) for b in books)
    pad = lambda a: np.concatenate([a, np.zeros(J - len(a), a.dtype)])  # noqa: E731
    return CashflowBook(
        times=np.stack([pad(b.times) for b in books]),
        amounts=np.stack([pad(b.amounts) for b in books]),
        pts=CurvePoints(*(np.stack([pad(getattr(b.pts, f)) for b in books]) for f in CurvePoints._fields)),
        spread_idx=np.array([b.spread_idx for b in books]),
        spread_w=np.array([b.spread_w for b in books]),
        const=np.array([b.const for b in books]),
        units=rng.uniform(-1e6, 1e6, n),
        fx_idx=np.full(n, -1),
    )


def test_numpy_twins_match_jax_and_zero_shock_is_zero():
    rng = np.random.default_rng(8)
    book = _random_cf_book(rng, 25)
    base = np.concatenate([_curve(rng), [0.01]])
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
