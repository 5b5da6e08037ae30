"""Theta and rate convexity per position: Hull's textbook figures, closed forms, finite differences of
the pricing models with times shifted by hand, and the delta-gamma-vega-theta P&L."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from stressgrid import kernels
from stressgrid.core import MarketSnapshot, book_from_records, factor_spec, tenor_years
from stressgrid.kernels._common import curve_points
from stressgrid.kernels._credit import _cds_value_base
from stressgrid.kernels._options import OptionBook, option_value_one

from kernel_helpers import AS_OF

POS = dict(quantity=1.0, multiplier=1.0, currency="USD", sleeve="s", adv=1e6, bid_ask_bps=1.0)


def flat(y):
    return lambda ccy, years: y


def sloped(ccy, years):
    """An upward-sloping curve, concave in the tenor (different slope in every segment)."""
    return {"USD": 0.01, "EUR": 0.002, "GBP": 0.015}[ccy] + 0.006 * math.log1p(years)


def market(records, curve, **levels):
    """``(prepared book, snapshot)`` of ``records`` at :data:`AS_OF`: zero yields ``curve(ccy, years)``,
    every other factor from ``levels`` (dots written as ``__``), vol-surface parameters other than ATM 0."""
    book = book_from_records([{**POS, **r} for r in records], source="test")
    factors = kernels.required_factors(book.positions, "USD")
    given = {k.replace("__", "."): v for k, v in levels.items()}

    def level(f):
        if f in given:
            return given[f]
        spec = factor_spec(f)
        if spec.tenor_years is not None:
            return curve(spec.currency, spec.tenor_years)
        if f.startswith("VOL.") and not f.endswith(".ATM"):
            return 0.0
        raise KeyError(f)

    snap = MarketSnapshot(AS_OF, tuple(factors), np.array([level(f) for f in factors]))
    return kernels.prepare(book.positions, snap.factors, "USD", AS_OF, levels=snap.levels), snap, book


def with_arrays(prepared, arrays):
    """``prepared`` (one group) with its arrays replaced."""
    (g,) = prepared.groups
    return dataclasses.replace(prepared, groups=(g._replace(arrays=arrays),))


def day(n):
    return (AS_OF + pd.Timedelta(days=n)).date().isoformat()


# --------------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------------

HULL_OPTION = dict(id="C", type="option", underlying="EQ.XYZ", asset_class="equity", strike=50.0, option_type="call")


def bs_call_theta(S, K, r, sigma, T):
    """Black-Scholes call theta per year, no dividends (Hull, 10th ed., ch. 19, "Theta")."""
    d1 = (math.log(S / K) + (r + 0.5 * sigma**2) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    return -S * norm.pdf(d1) * sigma / (2 * math.sqrt(T)) - r * K * math.exp(-r * T) * norm.cdf(d2)


def test_hull_black_scholes_theta():
    prepared, snap, _ = market([{**HULL_OPTION, "expiry": day(140)}], flat(0.05), EQ__XYZ=49.0, VOL__XYZ__ATM=0.2)
    sens = kernels.sensitivities(prepared, snap.levels)
    T = 140 / 365
    assert prepared.groups[0].arrays.expiry[0] == T
    ref = bs_call_theta(49.0, 50.0, 0.05, 0.2, T)
    assert abs(sens.theta[0] - ref) <= 1e-10 * abs(ref)
    # Hull's example: T = 20 weeks = 20/52 years, theta = -4.31 per year (-4.3053 to four places)
    o = prepared.groups[0].arrays
    o = o._replace(expiry=np.array([20 / 52]), fwd_time=np.array([20 / 52]))
    hull = kernels.sensitivities(with_arrays(prepared, o), snap.levels).theta[0]
    assert abs(hull - bs_call_theta(49.0, 50.0, 0.05, 0.2, 20 / 52)) <= 1e-10 * 4.3
    assert round(hull, 4) == -4.3053


OPTIONS = [
    dict(id="EQ", type="option", underlying="EQ.XYZ", asset_class="equity", strike=105.0, option_type="put",
         expiry=day(200), dividend_yield=0.015, quantity=3.0, multiplier=100.0),
    dict(id="FX", type="option", underlying="FX.EURUSD", asset_class="fx", strike=1.12, option_type="call",
         expiry=day(500)),
    dict(id="CMD", type="option", underlying="CMD.WTI", asset_class="commodity", strike=52.0, option_type="call",
         expiry=day(300), maturity=day(330), multiplier=1000.0),
    dict(id="GBP", type="option", underlying="EQ.XYZ", asset_class="equity", strike=95.0, option_type="call",
         expiry=day(45), currency="GBP"),
]
OPTION_LEVELS = dict(EQ__XYZ=100.0, FX__EURUSD=1.1, CMD__WTI=50.0, BASIS__WTI=0.03, FX__GBPUSD=1.3,
                     VOL__XYZ__ATM=0.22, VOL__XYZ__SKEW=-0.03, VOL__XYZ__CURV=0.01, VOL__XYZ__TERM=-0.01,
                     VOL__EURUSD__ATM=0.08, VOL__EURUSD__SKEW=0.005, VOL__EURUSD__TERM=0.004,
                     VOL__WTI__ATM=0.35, VOL__WTI__SKEW=0.02, VOL__WTI__TERM=-0.02)


def _option_at(o: OptionBook, j: int, h: float, ccys, idx) -> OptionBook:
    """Option ``j`` valued ``h`` years later, rebuilt by hand: shorter times, curve points of the
    shorter expiry from the tenor grid."""
    one = OptionBook(*(type(a)(*(x[j] for x in a)) if isinstance(a, tuple) else a[j] for a in o))
    T = float(one.expiry) - h
    dom, forn = ccys
    pts = lambda ccy: type(one.dom)(*(np.asarray(a)[0] for a in curve_points(ccy, np.array([T]), idx)))  # noqa: E731
    return one._replace(expiry=np.float64(T), fwd_time=one.fwd_time - h,
                        basis_time=one.basis_time - h if one.basis_time else one.basis_time,
                        dom=pts(dom), forn=pts(forn) if forn else one.forn)


def test_option_theta_is_a_finite_difference_of_the_model_on_a_sloped_curve():
    prepared, snap, _ = market(OPTIONS, sloped, **OPTION_LEVELS)
    sens = kernels.sensitivities(prepared, snap.levels)
    o = prepared.groups[0].arrays
    ccys = [("USD", None), ("USD", "EUR"), ("USD", None), ("GBP", None)]
    L = jnp.asarray(snap.levels)
    eps = 1e-4
    for j, c in enumerate(ccys):
        up = float(option_value_one(_option_at(o, j, eps, c, snap.index), L))
        dn = float(option_value_one(_option_at(o, j, -eps, c, snap.index), L))
        fd = (up - dn) / (2 * eps)
        assert abs(sens.theta[j] - fd) <= 1e-7 * abs(fd), OPTIONS[j]["id"]
    # the roll-down matters here: without it theta differs
    assert np.all(np.abs(sens.theta) > 0)


# --------------------------------------------------------------------------------------------------
# bonds, swaps, rate futures
# --------------------------------------------------------------------------------------------------


def _bond(**kw):
    return dict(dict(id="B", type="bond", underlying="IR.USD.10Y", asset_class="rates", coupon=0.05, frequency=2,
                     maturity="2027-06-15"), **kw)


def test_hull_bond_convexity():
    """Hull, 10th ed., ch. 4, Table 4.6: 3-year 10% semi-annual bond at 12% continuously compounded,
    B = 94.213, convexity sum c t^2 e^{-yt} / B = 7.570."""
    prepared, snap, _ = market([_bond(coupon=0.10, maturity="2020-03-29", quantity=100.0)], flat(0.12))
    b = prepared.groups[0].arrays
    t = np.arange(1, 7) * 0.5
    pts = curve_points("USD", t, snap.index)
    b = b._replace(times=t[None], amounts=np.array([[0.05] * 5 + [1.05]]), pts=type(b.pts)(*(a[None] for a in pts)), layout=None)
    sens = kernels.sensitivities(with_arrays(prepared, b), snap.levels)
    (c,) = [i for i, ccy in enumerate(sens.curves) if ccy == "USD"]
    B = float(kernels.cashflow_values_numpy(b, snap.levels)[0, 0])
    assert round(B, 3) == 94.213
    assert round(sens.convexity[0, c] / B, 4) == 7.5700
    # the same with the schedule's own Actual/365 times, against the closed form
    prepared, snap, _ = market([_bond(coupon=0.10, maturity="2020-03-29", quantity=100.0)], flat(0.12))
    b = prepared.groups[0].arrays
    t, a = b.times[0], b.amounts[0]
    ref = 100.0 * np.sum(a * t * t * np.exp(-0.12 * t))
    conv = kernels.sensitivities(prepared, snap.levels).convexity[0, c]
    assert abs(conv - ref) <= 1e-10 * ref


def test_bond_theta_on_a_flat_curve_is_the_closed_form():
    y, s = 0.03, 0.012
    prepared, snap, _ = market([_bond(quantity=2e6), _bond(id="B2", spread_factor="CR.ACME", coupon=0.07, frequency=4,
                                                           maturity="2040-01-31", quantity=-1e6)], flat(y), CR__ACME=s)
    sens = kernels.sensitivities(prepared, snap.levels)
    b = prepared.groups[0].arrays
    for i, (u, r) in enumerate([(2e6, y), (-1e6, y + s)]):
        ref = u * np.sum(b.amounts[i] * r * np.exp(-r * b.times[i]))
        assert abs(sens.theta[i] - ref) <= 1e-10 * abs(ref)


def test_bond_theta_on_a_tenor_rolls_into_the_segment_below():
    """A zero-coupon flow exactly one year out sits on the 1Y tenor: time moves it into [6M, 1Y]."""
    prepared, snap, _ = market([_bond(coupon=0.0, frequency=1, maturity=day(365))], sloped)
    b = prepared.groups[0].arrays
    assert b.times[0, 0] == 1.0
    z1, z6 = sloped("USD", 1.0), sloped("USD", 0.5)
    slope = (z1 - z6) / 0.5
    ref = math.exp(-z1) * (z1 + slope)  # d/dh exp(-z(1 - h) (1 - h)) at 0
    assert abs(kernels.sensitivities(prepared, snap.levels).theta[0] - ref) <= 1e-12


def test_swap_floating_leg_accrues_at_the_short_rate():
    """A receiver swap is its fixed leg (a bond with the same flows) less par; the par leg accrues at
    z(0), the flat-extrapolated short end (the 1M tenor), so theta(swap) - theta(bond) = -u z(0)."""
    recs = [_bond(quantity=5e6), _bond(id="S", type="swap", underlying="IR.USD.5Y", quantity=5e6),
            _bond(id="P", type="swap", underlying="IR.USD.5Y", quantity=-5e6)]
    prepared, snap, _ = market(recs, sloped)
    th = kernels.sensitivities(prepared, snap.levels).theta
    z0 = sloped("USD", tenor_years("1M"))
    assert z0 == snap.level("IR.USD.1M")
    assert abs((th[1] - th[0]) - (-5e6 * z0)) <= 1e-9 * abs(th[0])
    assert abs(th[2] + th[1]) <= 1e-12 * abs(th[1])


def test_rate_future_theta_is_the_closed_form_on_a_sloped_curve():
    prepared, snap, _ = market([dict(id="ED", type="rate_future", underlying="IR.USD.3M", asset_class="rates",
                                     maturity="2018-06-18", frequency=4, quantity=-7.0, multiplier=2500.0)], sloped)
    r = prepared.groups[0].arrays
    t1, t2 = float(r.t1[0]), float(r.t2[0])
    grid = [tenor_years(t) for t in kernels.curve_tenors("USD")]

    def z_and_slope(t):
        k = np.searchsorted(grid, t) - 1
        a, b = grid[k], grid[k + 1]
        za, zb = sloped("USD", a), sloped("USD", b)
        return za + (zb - za) * (t - a) / (b - a), (zb - za) / (b - a)

    (z1, s1), (z2, s2) = z_and_slope(t1), z_and_slope(t2)
    growth = math.exp(z2 * t2 - z1 * t1)
    # price = 100 (1 - (growth - 1) / (t2 - t1)); d/dh of z(t - h) (t - h) is -(z + s t)
    dprice = -100.0 / (t2 - t1) * growth * (-(z2 + s2 * t2) + (z1 + s1 * t1))
    ref = -7.0 * 2500.0 * dprice
    assert abs(kernels.sensitivities(prepared, snap.levels).theta[0] - ref) <= 1e-10 * abs(ref)
    assert abs(ref) > 1.0


# --------------------------------------------------------------------------------------------------
# commodity futures, FX forwards, CDS
# --------------------------------------------------------------------------------------------------


def test_commodity_future_theta_is_the_closed_form():
    prepared, snap, _ = market([dict(id="CL", type="commodity_future", underlying="CMD.WTI", asset_class="commodity",
                                     maturity=day(250), quantity=3.0, multiplier=1000.0, currency="EUR")],
                               flat(0.0), CMD__WTI=50.0, BASIS__WTI=0.04, FX__EURUSD=1.1)
    T = 250 / 365
    ref = 3000.0 * (-0.04) * 50.0 * math.exp(0.04 * T) * 1.1  # u dF/dh X, F = S exp(b (T - h))
    assert abs(kernels.sensitivities(prepared, snap.levels).theta[0] - ref) <= 1e-12 * abs(ref)


def test_fx_forward_theta_is_the_closed_form_on_flat_curves():
    """``V = N (S e^{-r_f T} - K e^{-r_d T})``: ``dV/dh = N (S r_f e^{-r_f T} - K r_d e^{-r_d T})``."""
    rates = {"USD": 0.03, "EUR": 0.01}
    prepared, snap, _ = market([dict(id="F", type="fx_forward", underlying="FX.EURUSD", asset_class="fx", maturity=day(400),
                                     forward_rate=1.15, quantity=1e6, currency="EUR")],
                               lambda ccy, years: rates[ccy], FX__EURUSD=1.1)
    T = 400 / 365
    ref = 1e6 * (1.1 * 0.01 * math.exp(-0.01 * T) - 1.15 * 0.03 * math.exp(-0.03 * T))
    assert abs(kernels.sensitivities(prepared, snap.levels).theta[0] - ref) <= 1e-10 * abs(ref)


def test_cds_theta_is_a_finite_difference_of_the_model_plus_the_premium_accrued():
    recs = [dict(id="X", type="cds", underlying="CR.CDX_IG", asset_class="credit", coupon=0.01, maturity="2022-06-20",
                 recovery=0.4, quantity=1e7, constituents=125),
            dict(id="Y", type="cds", underlying="CR.ACME", asset_class="credit", coupon=0.05, maturity="2019-09-20",
                 recovery=0.3, quantity=-2e6)]
    prepared, snap, _ = market(recs, sloped, CR__CDX_IG=0.0065, CR__ACME=0.031)
    c = prepared.groups[0].arrays
    th = kernels.sensitivities(prepared, snap.levels).theta
    L = np.asarray(snap.levels)[None, :]

    def value_at(h):
        # by hand: every period moves h closer; the first now starts at the valuation date, so its
        # accrual fractions (Actual/360) shrink
        t_start, tau, tau_mid = c.t_start - h, c.tau.copy(), c.tau_mid.copy()
        t_start[:, 0] = 0.0
        tau[:, 0] -= h * 365 / 360
        tau_mid[:, 0] -= h * 365 / 360
        t_end, t_mid = c.t_end - h, c.t_mid - h
        moved = c._replace(t_start=t_start, t_end=t_end, t_mid=t_mid, tau=tau, tau_mid=tau_mid,
                           p_end=curve_points("USD", t_end, snap.index), p_mid=curve_points("USD", t_mid, snap.index))
        return _cds_value_base(moved, L)[0]

    eps = 1e-5
    fd = (value_at(eps) - value_at(-eps)) / (2 * eps)
    ref = fd + c.units * c.coupon * 365 / 360
    np.testing.assert_allclose(th, ref, rtol=1e-7)
    # a protection buyer pays the premium: theta of a short position is the negative of the long one's
    assert th[1] < 0 < th[0]


# --------------------------------------------------------------------------------------------------
# convexity against full revaluation; the Taylor P&L
# --------------------------------------------------------------------------------------------------


def test_convexity_per_curve_is_a_second_difference_of_full_revaluation(demo_prepared):
    _, snap, prepared = demo_prepared
    sens = kernels.sensitivities(prepared, snap.levels)
    assert sens.curves[0] == "USD" and len(set(sens.curves)) == len(sens.curves)
    assert np.all(np.isfinite(sens.theta)) and np.all(np.isfinite(sens.convexity))
    eps = 1e-4
    for c, ccy in enumerate(sens.curves):
        e = np.array([1.0 if f.startswith(f"IR.{ccy}.") else 0.0 for f in snap.factors])
        up, dn = kernels.revalue(prepared, snap.levels, np.stack([eps * e, -eps * e]), snap.is_log)
        fd = (up + dn) / eps**2
        scale = np.abs(sens.convexity[:, c]).max()
        np.testing.assert_allclose(sens.convexity[:, c], fd, rtol=1e-4, atol=1e-5 * scale, err_msg=ccy)
    (linear,) = [g.columns for g in prepared.groups if isinstance(g.arrays, kernels.LinearBook)]
    assert np.all(sens.theta[linear] == 0) and np.all(sens.convexity[linear] == 0)


def test_sensitivity_pnl_adds_theta_and_convexity_as_closed_form_taylor_terms():
    y, u = 0.04, 1e6
    prepared, snap, _ = market([_bond(quantity=u)], flat(y))
    sens = kernels.sensitivities(prepared, snap.levels)
    b = prepared.groups[0].arrays
    t, a = b.times[0], b.amounts[0]
    usd = np.array([f.startswith("IR.USD.") for f in snap.factors], dtype=float)
    shocks = np.stack([0.01 * usd, -0.02 * usd, np.zeros_like(usd)])
    dt = 0.25
    got = kernels.sensitivity_pnl(sens, snap.levels, shocks, snap.is_log, dt=dt)[:, 0]
    df = np.exp(-y * t)
    delta = -u * np.sum(a * t * df)
    theta = u * np.sum(a * y * df)
    conv = u * np.sum(a * t * t * df)
    ref = delta * np.array([0.01, -0.02, 0.0]) + theta * dt + 0.5 * conv * np.array([0.01, -0.02, 0.0]) ** 2
    np.testing.assert_allclose(got, ref, rtol=1e-11)


def test_sensitivity_pnl_without_time_or_curve_moves_is_the_delta_gamma_vega_pnl(demo_prepared):
    _, snap, prepared = demo_prepared
    sens = kernels.sensitivities(prepared, snap.levels)
    rng = np.random.default_rng(3)
    shocks = rng.normal(0, 0.02, (7, len(snap.factors)))
    shocks[:, [i for i, f in enumerate(snap.factors) if f.startswith("IR.")]] = 0.0
    dL = kernels.shocked_levels(snap.levels, shocks, snap.is_log) - snap.levels
    old = dL @ sens.grad.T + 0.5 * (dL * dL) @ sens.gamma.T
    np.testing.assert_array_equal(kernels.sensitivity_pnl(sens, snap.levels, shocks, snap.is_log), old)
    np.testing.assert_array_equal(kernels.sensitivity_pnl(sens, snap.levels, shocks, snap.is_log, dt=0.0), old)
    # sensitivities built the old way (no theta, no convexity) give the same numbers, and refuse a horizon
    bare = kernels.Sensitivities(sens.grad, sens.gamma, sens.priced)
    shocks[:, 0] = 0.0
    shocks[:, snap.index["IR.USD.10Y"]] = 0.01
    dL = kernels.shocked_levels(snap.levels, shocks, snap.is_log) - snap.levels
    np.testing.assert_array_equal(kernels.sensitivity_pnl(bare, snap.levels, shocks, snap.is_log),
                                  dL @ sens.grad.T + 0.5 * (dL * dL) @ sens.gamma.T)
    with pytest.raises(ValueError, match="dt=0.1.*no theta"):
        kernels.sensitivity_pnl(bare, snap.levels, shocks, snap.is_log, dt=0.1)


def test_position_sensitivities_table(demo_prepared):
    book, snap, prepared = demo_prepared
    table = kernels.position_sensitivities(book, snap, "USD")
    sens = kernels.sensitivities(prepared, snap.levels)
    assert list(table["id"]) == list(book.positions["id"])
    assert list(table.columns[:4]) == ["id", "type", "priced", "theta"]
    conv_cols = [c for c in table.columns if c.startswith("convexity_")]
    assert conv_cols == [f"convexity_{c}" for c in sens.curves]
    np.testing.assert_array_equal(table["theta"], sens.theta)
    np.testing.assert_array_equal(table["convexity_USD"], sens.convexity[:, sens.curves.index("USD")])
    # a bond's value is convex in its curve
    bonds = table["type"] == "bond"
    assert (table.loc[bonds, "convexity_USD"] > 0).all()
