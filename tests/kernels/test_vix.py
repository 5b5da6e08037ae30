"""VIX futures and options: Hull's Black-76 example, put-call parity on the future, the forward-variance
link to the surface's term structure by hand, scenario moves, sensitivities, theta, horizons and unit
values."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from stressgrid import kernels
from stressgrid.core import DataError, MarketSnapshot, book_from_records, log_mask
from stressgrid.kernels._vix import (
    VIX_TAU_YEARS,
    VixOptionBook,
    vix_forward_variance,
    vix_futures_level,
    vix_option_value,
)

from kernel_helpers import flat_points

AS_OF = pd.Timestamp("2019-01-02")  # a Wednesday: 10 business days later is 2019-01-16
BASE = dict(quantity=3.0, currency="USD", asset_class="equity", sleeve="s", adv=1e5, bid_ask_bps=5.0)
FUT = dict(BASE, type="vix_future", underlying="VOL.SPX.ATM", multiplier=1000.0)
OPT = dict(BASE, type="vix_option", underlying="VOL.SPX.ATM", multiplier=100.0)
Y = 0.03  # a flat USD zero curve


@pytest.fixture(scope="module", autouse=True)
def _x64():
    kernels.configure_process()


def _years(a, b) -> float:
    return (pd.Timestamp(b) - pd.Timestamp(a)).days / 365.0


def _black76(F, K, T, r, sig, omega):
    """Black (1976), Hull ch. 18: ``e^{-rT} omega (F N(omega d1) - K N(omega d2))`` with scipy's normal."""
    d1 = (math.log(F / K) + 0.5 * sig * sig * T) / (sig * math.sqrt(T))
    d2 = d1 - sig * math.sqrt(T)
    return math.exp(-r * T) * omega * (F * norm.cdf(omega * d1) - K * norm.cdf(omega * d2))


def _fwd_by_hand(atm, term, T):
    """The VIX future of the model written out: the ATM vols at T and T + 30 days, their total
    variances, the forward variance between them, 100 times its square root."""
    tau = 30 / 365
    s1 = atm + term * math.log(T / tau) if T > 0 else 0.0
    s2 = atm + term * math.log((T + tau) / tau)
    return 100 * math.sqrt((s2 * s2 * (T + tau) - s1 * s1 * T) / tau)


def _market(records, atm=0.20, term=0.0, vov=0.9, extra=None):
    """A book of ``records`` on a flat 3% USD curve and an SPX surface (ATM, TERM, VOV)."""
    book = book_from_records([{"id": f"P{i}", **r} for i, r in enumerate(records)], source="test")
    factors = kernels.required_factors(book.positions, "USD")
    lv = {"VOL.SPX.ATM": atm, "VOL.SPX.TERM": term, "VOL.SPX.VOV": vov, **(extra or {})}
    levels = np.array([lv.get(f, Y) if not f.startswith("FX.") else lv[f] for f in factors])
    prepared = kernels.prepare(book.positions, tuple(factors), "USD", AS_OF, levels=levels)
    return book, tuple(factors), levels, prepared


def _shock(factors, **moves):
    s = np.zeros((1, len(factors)))
    for name, v in moves.items():
        s[0, factors.index(f"VOL.SPX.{name}")] = v
    return s


# --------------------------------------------------------------------------------------------------
# formulas
# --------------------------------------------------------------------------------------------------


def test_black76_reproduces_hulls_crude_oil_futures_put():
    # Hull, Options, Futures and Other Derivatives: a European put futures option on crude oil with
    # F0 = 20, K = 20, r = 9%, T = 4 months, sigma = 25%: d1 = 0.07216, d2 = -0.07216, N(-d1) = 0.4712,
    # N(-d2) = 0.5288, p = e^{-0.09 x 4/12} (20 x 0.5288 - 20 x 0.4712) = 1.12.
    F, K, r, T, sig = 20.0, 20.0, 0.09, 4 / 12, 0.25
    d1 = sig * math.sqrt(T) / 2
    assert abs(d1 - 0.07216) < 1e-5  # 0.0721688: the book prints it truncated to five places
    assert round(norm.cdf(-d1), 4) == 0.4712 and round(norm.cdf(d1), 4) == 0.5288
    printed = math.exp(-r * T) * (K * 0.5288 - F * 0.4712)
    assert round(printed, 2) == 1.12
    exact = _black76(F, K, T, r, sig, -1.0)
    assert round(exact, 2) == 1.12
    # the kernel: a VIX future of 20 (ATM 20%, flat term structure), vol-of-vol 25%, 9% discounting
    o = VixOptionBook(atm_idx=np.int64(0), term_idx=np.int64(1), vov_idx=np.int64(2), strike=np.float64(K),
                      expiry=np.float64(T), omega=np.float64(-1.0), units=np.float64(1.0), dom=flat_points(3),
                      fx_idx=np.int64(-1))
    L = np.array([0.20, 0.0, sig, r])
    assert float(vix_futures_level(0.20, 0.0, T)) == pytest.approx(F, rel=1e-15)
    assert float(vix_option_value(o, jnp.asarray(L))) == pytest.approx(exact, rel=1e-13)
    assert float(vix_option_value(o, L)) == pytest.approx(exact, rel=1e-13)


def test_put_call_parity_on_the_future():
    atm, term, vov, T = 0.22, -0.015, 0.85, 0.4
    F = float(vix_futures_level(atm, term, T))
    L = np.array([atm, term, vov, 0.025])
    DF = math.exp(-0.025 * T)
    for K in (12.0, 18.0, F, 25.0, 40.0):
        c, p = (float(vix_option_value(VixOptionBook(np.int64(0), np.int64(1), np.int64(2), np.float64(K), np.float64(T),
                                                     np.float64(w), np.float64(1.0), flat_points(3), np.int64(-1)), L))
                for w in (1.0, -1.0))
        assert c - p == pytest.approx(DF * (F - K), abs=1e-12)
        assert c == pytest.approx(_black76(F, K, T, 0.025, vov, 1.0), rel=1e-12)


@pytest.mark.parametrize("T", [0.0, 7 / 365, 30 / 365, 0.25, 1.0, 3.0])
def test_flat_term_structure_gives_100_times_atm(T):
    assert float(vix_futures_level(0.183, 0.0, T)) == pytest.approx(18.3, rel=1e-14)


def test_forward_variance_identity_on_a_term_structure():
    # ATM 20%, TERM +0.02 per unit of log-maturity, a future settling in 60 days: the ATM vols at 60
    # and 90 days are 0.2 + 0.02 ln 2 and 0.2 + 0.02 ln 3, and FV = (s90^2 x 90 - s60^2 x 60) / 30
    atm, term, T = 0.20, 0.02, 60 / 365
    s60, s90 = atm + term * math.log(2.0), atm + term * math.log(3.0)
    fv = 3 * s90**2 - 2 * s60**2
    assert float(vix_forward_variance(atm, term, T)) == pytest.approx(fv, rel=1e-14)
    assert float(vix_futures_level(atm, term, T)) == pytest.approx(100 * math.sqrt(fv), rel=1e-14)
    assert 100 * math.sqrt(fv) > 100 * s90 > 100 * atm  # upward sloping: the forward vol exceeds both spot vols
    # numpy and jax agree; a future settling now is the spot VIX, 100 ATM, whatever the slope
    assert vix_futures_level(np.array([atm]), np.array([term]), np.array([T]))[0] == pytest.approx(100 * math.sqrt(fv), rel=1e-15)
    assert float(vix_futures_level(atm, term, 0.0)) == pytest.approx(100 * atm, rel=1e-15)
    assert VIX_TAU_YEARS == 30 / 365


# --------------------------------------------------------------------------------------------------
# books, scenarios and sensitivities
# --------------------------------------------------------------------------------------------------

RECORDS = [
    dict(FUT, expiry="2019-02-13"),
    dict(FUT, expiry="2019-06-19", quantity=-2.0),
    dict(OPT, expiry="2019-02-13", strike=20.0, option_type="call"),
    dict(OPT, expiry="2019-04-17", strike=17.0, option_type="put", quantity=-5.0),
]


def test_factors_the_coverage_table_sees():
    book = book_from_records([{"id": f"P{i}", **r} for i, r in enumerate(RECORDS)], source="t")
    fut = kernels.required_factors(book.positions.iloc[:2], "USD")
    assert fut == ["VOL.SPX.ATM", "VOL.SPX.TERM"]
    allf = kernels.required_factors(book.positions, "EUR")
    assert {"VOL.SPX.VOV", "FX.USDEUR", "IR.USD.3M"} <= set(allf)
    assert not any(f.endswith((".SKEW", ".CURV")) for f in allf)


def test_zero_shock_zero_pnl_and_the_twin():
    book, factors, L, prep = _market(RECORDS, atm=0.19, term=-0.01)
    is_log = log_mask(factors)
    zero = kernels.revalue(prep, L, np.zeros((2, len(factors))), is_log)
    assert np.all(zero == 0.0)
    rng = np.random.default_rng(7)
    sh = rng.normal(0, 0.02, (33, len(factors)))
    jx = kernels.revalue(prep, L, sh, is_log)
    npy = kernels.revalue_numpy(prep, L, sh, is_log)
    assert np.max(np.abs(jx - npy)) < 1e-9
    assert np.all(np.abs(jx).sum(axis=0) > 0)


@pytest.mark.parametrize("term", [0.0, -0.012, 0.02])
def test_atm_shock_moves_the_future_by_the_models_amount(term):
    book, factors, L, prep = _market(RECORDS, atm=0.18, term=term)
    pnl = kernels.revalue(prep, L, _shock(factors, ATM=0.05), log_mask(factors))[0]
    for j in (0, 1):
        row = book.positions.iloc[j]
        T = _years(AS_OF, row["expiry"])
        expected = row["quantity"] * row["multiplier"] * (_fwd_by_hand(0.23, term, T) - _fwd_by_hand(0.18, term, T))
        assert pnl[j] == pytest.approx(expected, rel=1e-12)
        if term == 0.0:  # 5 vol points are 5 VIX points at every expiry
            assert pnl[j] == pytest.approx(row["quantity"] * row["multiplier"] * 5.0, rel=1e-12)


def test_term_shock_moves_future_and_option_and_vov_only_the_option():
    book, factors, L, prep = _market(RECORDS, atm=0.18, term=-0.01)
    is_log = log_mask(factors)
    term = kernels.revalue(prep, L, _shock(factors, TERM=0.01), is_log)[0]
    assert np.all(term != 0.0)
    vov = kernels.revalue(prep, L, _shock(factors, VOV=0.2), is_log)[0]
    assert vov[0] == 0.0 and vov[1] == 0.0
    assert vov[2] > 0 and vov[3] < 0  # long call gains vega, short put loses
    # the option's P&L under the VOV shock is Black-76 at the new vol-of-vol less at the old one
    row = book.positions.iloc[2]
    T = _years(AS_OF, row["expiry"])
    F = _fwd_by_hand(0.18, -0.01, T)
    u = row["quantity"] * row["multiplier"]
    expected = u * (_black76(F, 20.0, T, Y, 1.1, 1.0) - _black76(F, 20.0, T, Y, 0.9, 1.0))
    assert vov[2] == pytest.approx(expected, rel=1e-11)


def test_sensitivities_delta_to_atm_and_vega_to_vov():
    book, factors, L, prep = _market(RECORDS, atm=0.2, term=0.0)
    sens = kernels.sensitivities(prep, L)
    a, t, v = (factors.index(f"VOL.SPX.{p}") for p in ("ATM", "TERM", "VOV"))
    for j in (0, 1):  # dF/dATM = 100 on a flat term structure; no vol-of-vol exposure
        row = book.positions.iloc[j]
        assert sens.grad[j, a] == pytest.approx(row["quantity"] * row["multiplier"] * 100.0, rel=1e-13)
        assert sens.grad[j, v] == 0.0
    row = book.positions.iloc[2]
    T = _years(AS_OF, row["expiry"])
    u = row["quantity"] * row["multiplier"]
    F, K, nu = 20.0, 20.0, 0.9
    d1 = (math.log(F / K) + 0.5 * nu * nu * T) / (nu * math.sqrt(T))
    DF = math.exp(-Y * T)
    assert sens.grad[2, v] == pytest.approx(u * DF * F * norm.pdf(d1) * math.sqrt(T), rel=1e-12)  # Black vega
    assert sens.grad[2, a] == pytest.approx(u * DF * norm.cdf(d1) * 100.0, rel=1e-12)  # delta x dF/dATM
    # TERM sensitivity against a central difference of the full revaluation
    h = 1e-6
    up = kernels.revalue(prep, L, _shock(factors, TERM=h), log_mask(factors))[0]
    dn = kernels.revalue(prep, L, _shock(factors, TERM=-h), log_mask(factors))[0]
    np.testing.assert_allclose(sens.grad[:, t], (up - dn) / (2 * h), rtol=1e-6, atol=1e-6)
    # the delta-vega P&L of a small ATM move matches the full revaluation to second order
    s = _shock(factors, ATM=1e-4)
    full = kernels.revalue(prep, L, s, log_mask(factors))
    approx = kernels.sensitivity_pnl(sens, L, s, log_mask(factors))
    np.testing.assert_allclose(approx, full, rtol=1e-3, atol=1e-6)


def test_theta_rolls_along_the_term_structure():
    book, factors, L, prep = _market(RECORDS, atm=0.2, term=-0.02)
    th = kernels.sensitivities(prep, L).theta
    for j, row in book.positions.iterrows():
        T = _years(AS_OF, row["expiry"])
        u = row["quantity"] * row["multiplier"]
        h = 1e-5
        if row["type"] == "vix_future":
            value = lambda t: u * _fwd_by_hand(0.2, -0.02, t)  # noqa: E731
        else:
            w = 1.0 if row["option_type"] == "call" else -1.0
            value = lambda t, row=row, w=w: u * _black76(_fwd_by_hand(0.2, -0.02, t), row["strike"], t, Y, 0.9, w)  # noqa: E731
        assert th[j] == pytest.approx(-(value(T + h) - value(T - h)) / (2 * h), rel=1e-6)
    flat = _market(RECORDS, atm=0.2, term=0.0)
    assert np.all(kernels.sensitivities(flat[3], flat[2]).theta[:2] == 0.0)


# --------------------------------------------------------------------------------------------------
# horizons
# --------------------------------------------------------------------------------------------------


def test_zero_horizon_is_todays_pnl_bit_for_bit():
    book, factors, L, prep = _market(RECORDS, atm=0.2, term=-0.01)
    sh = np.random.default_rng(1).normal(0, 0.02, (5, len(factors)))
    aged = kernels.age(prep, book.positions, "USD", AS_OF, 0, L)
    np.testing.assert_array_equal(kernels.revalue(aged, L, sh, log_mask(factors)), kernels.revalue(prep, L, sh, log_mask(factors)))


def test_expiry_inside_the_horizon_settles_on_the_spot_vix():
    recs = [dict(FUT, expiry="2019-01-09"), dict(OPT, expiry="2019-01-09", strike=21.0, option_type="call"),
            dict(OPT, expiry="2019-03-20", strike=21.0, option_type="call")]
    book, factors, L, prep = _market(recs, atm=0.2, term=-0.01)
    aged = kernels.age(prep, book.positions, "USD", AS_OF, 10, L)
    assert [g.pricer.types for g in aged.groups] == [("vix_future",), ("vix_option",), ("vix_option:settled",)]
    s = _shock(factors, ATM=0.05, TERM=0.03)
    pnl = kernels.revalue(aged, L, s, log_mask(factors))[0]
    u_f, u_o = 3.0 * 1000, 3.0 * 100
    T0 = _years(AS_OF, "2019-01-09")
    # the future settles on 100 x ATM' (the term slope no longer matters at T = 0)
    assert pnl[0] == pytest.approx(u_f * (25.0 - _fwd_by_hand(0.2, -0.01, T0)), rel=1e-12)
    # the option pays max(25 - 21, 0) in cash, less today's premium
    premium = _black76(_fwd_by_hand(0.2, -0.01, T0), 21.0, T0, Y, 0.9, 1.0)
    assert pnl[1] == pytest.approx(u_o * (4.0 - premium), rel=1e-12)
    # the live option is read at the shorter expiry
    T2, Th = _years(AS_OF, "2019-03-20"), _years("2019-01-16", "2019-03-20")
    v0 = _black76(_fwd_by_hand(0.2, -0.01, T2), 21.0, T2, Y, 0.9, 1.0)
    vh = _black76(_fwd_by_hand(0.25, 0.02, Th), 21.0, Th, Y, 0.9, 1.0)
    assert pnl[2] == pytest.approx(u_o * (vh - v0), rel=1e-11)


def test_a_path_in_one_book_equals_the_vix_book_valued_day_by_day():
    """VIX futures and options, one of each expiring on day 5 of an 8-day path: every day is revalued in one
    book (kernels.revalue_path) and equals the book valued on that day (kernels.age) under the day's
    levels; after day 5 the two that expired hold their day-5 P&L."""
    recs = [dict(FUT, expiry="2019-01-09"), dict(FUT, expiry="2019-02-13"),
            dict(OPT, expiry="2019-01-09", strike=21.0, option_type="call"),
            dict(OPT, expiry="2019-03-20", strike=19.0, option_type="put")]
    book, factors, L, prep = _market(recs, atm=0.2, term=-0.01)
    H, is_log = 8, log_mask(factors)
    rng = np.random.default_rng(3)
    paths = np.zeros((4, H, len(factors)))
    for name, sd in (("ATM", 0.01), ("TERM", 0.002), ("VOV", 0.02)):
        paths[:, :, factors.index(f"VOL.SPX.{name}")] = np.cumsum(rng.normal(0.0, sd, (4, H)), axis=1)
    pnl = kernels.revalue_path(prep, book.positions, "USD", AS_OF, L, paths, is_log)
    assert kernels.settlement_days(book.positions, AS_OF, H).tolist() == [5, 0, 5, 0]
    for k in range(1, H + 1):
        e = min(k, 5)  # the day the first future and the first option expire
        day = kernels.revalue(kernels.age(prep, book.positions, "USD", AS_OF, e, L), L, paths[:, e - 1], is_log)
        live = kernels.revalue(kernels.age(prep, book.positions, "USD", AS_OF, k, L), L, paths[:, k - 1], is_log)
        np.testing.assert_allclose(pnl[:, k - 1, [0, 2]], day[:, [0, 2]], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(pnl[:, k - 1, [1, 3]], live[:, [1, 3]], rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# checks at prepare, FX, liquidity unit values
# --------------------------------------------------------------------------------------------------


def test_a_term_structure_without_positive_forward_variance_is_rejected():
    with pytest.raises(DataError, match=r"position 'P0', field 'expiry': .*VOL.SPX.ATM.*VOL.SPX.TERM.*forward variance"):
        _market([dict(FUT, expiry="2020-06-17")], atm=0.15, term=-0.12)
    with pytest.raises(DataError, match=r"position 'P0': vol-of-vol VOL.SPX.VOV is -0.100000"):
        _market([dict(OPT, expiry="2019-06-19", strike=20.0, option_type="put")], vov=-0.1)


def test_a_position_in_another_currency_is_translated():
    recs = [dict(FUT, expiry="2019-02-13")]
    eur = _market(recs, atm=0.2)
    book = book_from_records([{"id": "P0", **recs[0]}], source="t")
    factors = tuple(kernels.required_factors(book.positions, "EUR"))
    lv = np.array([{"VOL.SPX.ATM": 0.2, "VOL.SPX.TERM": 0.0, "FX.USDEUR": 0.9}[f] for f in factors])
    prep = kernels.prepare(book.positions, factors, "EUR", AS_OF, levels=lv)
    s = np.zeros((1, len(factors)))
    s[0, factors.index("VOL.SPX.ATM")] = 0.01
    pnl = kernels.revalue(prep, lv, s, log_mask(factors))[0, 0]
    usd = kernels.revalue(eur[3], eur[2], _shock(eur[1], ATM=0.01), log_mask(eur[1]))[0, 0]
    assert pnl == pytest.approx(0.9 * usd, rel=1e-14)


def test_unit_values_are_futures_price_and_premium():
    from stressgrid.liquidity import unit_values

    book, factors, L, prep = _market(RECORDS, atm=0.2, term=-0.01)
    market = MarketSnapshot(as_of=AS_OF, factors=factors, levels=L)
    uv = unit_values(book, market, prep, "USD")
    for j, row in book.positions.iterrows():
        T = _years(AS_OF, row["expiry"])
        F = _fwd_by_hand(0.2, -0.01, T)
        if row["type"] == "vix_future":
            assert uv[j] == pytest.approx(1000 * F, rel=1e-13)
        else:
            w = 1.0 if row["option_type"] == "call" else -1.0
            assert uv[j] == pytest.approx(100 * _black76(F, row["strike"], T, Y, 0.9, w), rel=1e-12)


def test_total_pnl_gradient_flows_through_the_vix_kernels():
    book, factors, L, prep = _market(RECORDS, atm=0.2, term=-0.01)
    f = kernels.total_pnl(prep, L)
    s = _shock(factors, ATM=0.02, VOV=0.1)[0]
    v, g = f(s)
    assert v == pytest.approx(float(kernels.revalue(prep, L, s[None, :], log_mask(factors)).sum()), rel=1e-12)
    assert np.all(np.isfinite(g)) and g[factors.index("VOL.SPX.VOV")] != 0.0
    assert jax.config.jax_enable_x64
