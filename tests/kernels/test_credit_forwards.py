"""CDS against QuantLib's mid-point engine, jump to default; FX forwards (CIP) and commodity futures."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from stressgrid import kernels  # noqa: F401  (float64)
from stressgrid.core.curves import interp_weights
from stressgrid.kernels._common import CurvePoints
from stressgrid.kernels._credit import CdsBook, cds_periods, cds_pnl, cds_pnl_numpy, cds_value, jump_to_default_pnl
from stressgrid.kernels._forwards import (
    CommodityFutureBook,
    FxForwardBook,
    commodity_future_pnl,
    commodity_future_pnl_numpy,
    fx_forward_pnl,
    fx_forward_pnl_numpy,
    fx_forward_value,
)

from kernel_helpers import AS_OF, flat_points, ql_date, rel_err

ql = pytest.importorskip("QuantLib")

GRID_DAYS = np.array([91, 365, 730, 1825, 3650])
GRID = GRID_DAYS / 365.0


def _cds(maturity, coupon, recovery, spread_col=len(GRID), units=1.0, names=1.0) -> CdsBook:
    p = cds_periods(AS_OF, maturity)
    pe = CurvePoints(*interp_weights(GRID, p["t_end"]))
    pm = CurvePoints(*interp_weights(GRID, p["t_mid"]))
    return CdsBook(**p, mask=np.ones_like(p["t_end"]), p_end=pe, p_mid=pm, spread_idx=np.int64(spread_col),
                   recovery=np.float64(recovery), coupon=np.float64(coupon), units=np.float64(units),
                   fx_idx=np.int64(-1), constituents=np.float64(names))


def _stack(books: list[CdsBook]) -> CdsBook:
    """One-instrument books stacked into one, padded to the longest schedule."""
    J = max(len(b.t_end) for b in books)

    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.zeros(J - len(a), a.dtype)]) if a.ndim == 1 else a

    fields = {}
    for f in CdsBook._fields:
        if f in ("p_end", "p_mid"):
            fields[f] = CurvePoints(*(np.stack([pad(getattr(getattr(b, f), g)) for b in books]) for g in CurvePoints._fields))
        else:
            fields[f] = np.stack([pad(getattr(b, f)) for b in books])
    return CdsBook(**fields)


@pytest.mark.parametrize("maturity,coupon,recovery,spread", [
    ("2022-06-20", 0.01, 0.4, 0.0063), ("2020-12-20", 0.05, 0.3, 0.035), ("2017-09-20", 0.01, 0.4, 0.002),
    ("2027-03-20", 0.01, 0.25, 0.012), ("2019-08-31", 0.05, 0.4, 0.08),
])
def test_cds_matches_quantlib_midpoint_engine(maturity, coupon, recovery, spread):
    rng = np.random.default_rng(0)
    z = 0.01 + 0.01 * GRID / 10 + rng.normal(0, 0.001, len(GRID))
    L = np.concatenate([z, [spread]])
    ours = float(cds_value(_cds(maturity, coupon, recovery), jnp.asarray(L)))

    today = ql_date(AS_OF)
    ql.Settings.instance().evaluationDate = today
    dates = [today] + [today + int(d) for d in GRID_DAYS] + [today + 36500]
    curve = ql.YieldTermStructureHandle(
        ql.ZeroCurve(dates, [z[0]] + list(z) + [z[-1]], ql.Actual365Fixed(), ql.NullCalendar(), ql.Linear(), ql.Continuous))
    lam = spread / (1 - recovery)  # the credit triangle
    hazard = ql.DefaultProbabilityTermStructureHandle(ql.FlatHazardRate(today, ql.QuoteHandle(ql.SimpleQuote(lam)), ql.Actual365Fixed()))
    sched = ql.Schedule(today, ql_date(maturity), ql.Period(3, ql.Months), ql.NullCalendar(), ql.Unadjusted, ql.Unadjusted,
                        ql.DateGeneration.Backward, False)
    cds = ql.CreditDefaultSwap(ql.Protection.Seller, 1.0, coupon, sched, ql.Unadjusted, ql.Actual360())
    cds.setPricingEngine(ql.MidPointCdsEngine(hazard, recovery, curve))
    assert rel_err(ours, cds.NPV()) < 1e-10
    assert rel_err(cds_value(_cds(maturity, coupon, recovery), jnp.asarray(L)), cds.couponLegNPV() + cds.defaultLegNPV()) < 1e-10


def test_cds_at_the_credit_triangle_coupon_is_near_zero_and_spread_moves_value_down():
    """Seller's value falls as the spread widens.  For a continuous premium the par spread of a flat
    hazard is exactly (1 - R) lambda (Hull eq. 24.2); with the premium accrued Actual/360 the par
    coupon is s * 360/365, and the quarterly mid-point legs leave only a small residual."""
    z = np.full(len(GRID), 0.02)
    vals = [float(cds_value(_cds("2022-06-20", 0.01, 0.4), jnp.asarray(np.concatenate([z, [s]])))) for s in (0.005, 0.01, 0.02, 0.05)]
    assert np.all(np.diff(vals) < 0)
    for s in (0.002, 0.01, 0.03):
        par = float(cds_value(_cds("2022-06-20", s * 360 / 365, 0.4), jnp.asarray(np.concatenate([z, [s]]))))
        assert abs(par) < 0.01 * s * 5.0  # 1% of the premium leg (annuity ~ 5y)


def test_jump_to_default_of_index_name():
    z = np.full(len(GRID), 0.02)
    base = np.concatenate([z, [0.0063]])
    c = _cds("2022-06-20", 0.01, 0.4, units=50e6, names=125.0)
    v = float(cds_value(c, jnp.asarray(base)))
    jtd = jump_to_default_pnl(_stack([c]), base)
    assert jtd[0] == pytest.approx(50e6 / 125 * (-(1 - 0.4) - v), rel=1e-13)
    # a huge spread shock approaches default: the seller loses about (1 - R) less the premium it kept
    huge = float(cds_value(c, jnp.asarray(np.concatenate([z, [50.0]]))))
    assert huge == pytest.approx(-(1 - 0.4), abs=0.01)


def test_cds_numpy_twin_and_zero_shock():
    rng = np.random.default_rng(2)
    books = [_cds(m, float(rng.choice([0.01, 0.05])), float(rng.uniform(0.2, 0.5)), units=float(rng.uniform(-1e7, 1e7)))
             for m in ["2018-03-20", "2022-06-20", "2027-12-20", "2019-09-20"]]
    book = _stack(books)
    base = np.concatenate([np.full(len(GRID), 0.015), [0.01]])
    new = base + rng.normal(0, 1, (9, len(base))) * np.r_[np.full(len(GRID), 0.002), 0.01]
    np.testing.assert_allclose(np.asarray(cds_pnl(book, base, new)), cds_pnl_numpy(book, base, new), rtol=1e-10, atol=1e-6)
    assert np.all(np.asarray(cds_pnl(book, base, np.repeat(base[None], 3, 0))) == 0.0)


def test_fx_forward_is_worth_zero_at_the_cip_forward_and_matches_closed_form():
    """F = S DF_f / DF_d (Hull eq. 5.9); a forward struck at F is worth 0; V = N DF_d (F - K)."""
    S, rd, rf, T = 0.7644, 0.011, 0.018, 92 / 365
    L = np.array([S, rd, rf])
    F = S * np.exp((rd - rf) * T)

    def fwd(K, units=1.0):
        return FxForwardBook(np.int64(0), np.float64(K), np.float64(T), flat_points(2), flat_points(1), np.float64(units), np.int64(-1))

    assert abs(float(fx_forward_value(fwd(F), jnp.asarray(L)))) < 1e-16
    assert float(fx_forward_value(fwd(0.75, 4e7), jnp.asarray(L))) == pytest.approx(4e7 * np.exp(-rd * T) * (F - 0.75), rel=1e-13)


def test_fx_forward_and_commodity_future_twins_and_zero_shock():
    rng = np.random.default_rng(3)
    n = 12
    fx = FxForwardBook(np.zeros(n, np.int64), rng.uniform(0.6, 0.9, n), rng.uniform(0.01, 2, n),
                       flat_points(2, (n,)), flat_points(1, (n,)), rng.uniform(-1e7, 1e7, n), np.where(rng.random(n) < 0.5, 3, -1))
    base = np.array([0.76, 0.011, 0.018, 1.1])
    is_log = np.array([True, False, False, True])
    sh = rng.normal(0, 0.01, (7, 4))
    new = np.where(is_log, base * np.exp(sh), base + sh)
    np.testing.assert_allclose(np.asarray(fx_forward_pnl(fx, base, new)), fx_forward_pnl_numpy(fx, base, new), rtol=1e-10, atol=1e-7)
    assert np.all(np.asarray(fx_forward_pnl(fx, base, np.repeat(base[None], 2, 0))) == 0.0)

    cf = CommodityFutureBook(np.zeros(n, np.int64), np.full(n, 2, np.int64), rng.uniform(0.05, 2, n), rng.uniform(-3e5, 3e5, n),
                             np.where(rng.random(n) < 0.5, 3, -1))
    cbase = np.array([49.47, 0.0, 0.03, 1.1])
    cnew = np.where(is_log, cbase * np.exp(sh), cbase + sh)
    a = np.asarray(commodity_future_pnl(cf, cbase, cnew))
    np.testing.assert_allclose(a, commodity_future_pnl_numpy(cf, cbase, cnew), rtol=1e-10, atol=1e-7)
    # closed form: F = S exp(b T), P&L = u (F' - F) X'
    X1 = np.where(cf.fx_idx >= 0, cnew[:, [3]], 1.0)
    ref = cf.units * (cnew[:, [0]] * np.exp(cnew[:, [2]] * cf.mat) - cbase[0] * np.exp(cbase[2] * cf.mat)) * X1
    np.testing.assert_allclose(a, ref, rtol=1e-10, atol=1e-7)
    assert np.all(np.asarray(commodity_future_pnl(cf, cbase, np.repeat(cbase[None], 2, 0))) == 0.0)
