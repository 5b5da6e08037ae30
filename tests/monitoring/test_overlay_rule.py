"""The ``overlay`` rule: an index put priced by the kernels, checked against an independent Black-Scholes
closed form (scipy), sized to a premium budget or to a CVaR target; bad entries are named on one line."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from stressgrid.core import ConfigError, MarketSnapshot, var_cvar
from stressgrid.kernels import curve_factors
from stressgrid.monitoring import StressFamily, apply_rules, check_rules

AS_OF = pd.Timestamp("2020-06-30")
S0, R, Q, NAV = 3000.0, 0.02, 0.015, 1e8
FACTORS = ("EQ.SPX", *curve_factors("USD"), "VOL.SPX.ATM", "VOL.SPX.SKEW", "VOL.SPX.CURV", "VOL.SPX.TERM")


def _market(atm=0.2, skew=0.0, curv=0.0, term=0.0, vov=None) -> MarketSnapshot:
    levels = [S0] + [R] * len(curve_factors("USD")) + [atm, skew, curv, term]
    if vov is None:
        return MarketSnapshot(AS_OF, FACTORS, np.array(levels, dtype=float))
    return MarketSnapshot(AS_OF, (*FACTORS, "VOL.SPX.VOV"), np.array(levels + [vov], dtype=float))


def _book() -> pd.DataFrame:
    """A long S&P 500 future and a bond-like linear position; the book holds a put on SPX (so its dividend
    yield is the overlay's default)."""
    return pd.DataFrame({
        "id": ["ES", "SPX_P"], "type": ["equity_future", "option"], "underlying": ["EQ.SPX", "EQ.SPX"],
        "quantity": [200.0, 10.0], "multiplier": [50.0, 100.0], "currency": ["USD", "USD"],
        "asset_class": ["equity", "equity"], "sleeve": ["trend", "defensive"], "adv": [1e6, 1e4],
        "bid_ask_bps": [1.0, 300.0], "strike": [np.nan, 2500.0],
        "expiry": [None, (AS_OF + pd.Timedelta(days=200)).date()], "option_type": [None, "put"],
        "dividend_yield": [np.nan, Q],
    })


def _bs_put(S, K, T, r, q, sigma):
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma ** 2) * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    return K * math.exp(-r * T) * norm.cdf(-d2) - S * math.exp(-q * T) * norm.cdf(-d1)


def _surface(K, T, atm, skew, curv, term):
    """The surface of docs/kernels.md, written out: sigma = ATM + TERM ln(T/T0) + SKEW x + CURV x^2,
    x = ln(K/F) / sqrt(T), F = S exp((r - q) T)."""
    F = S0 * math.exp((R - Q) * T)
    x = math.log(K / F) / math.sqrt(T)
    return atm + term * math.log(T / (30 / 365)) + skew * x + curv * x * x


def _overlay(**kw):
    return {"kind": "overlay", "when": ["vol_of_vol"], "instrument": "put", "underlying": "EQ.SPX", **kw}


def _apply(rules, market=None, **kw):
    return apply_rules(_book(), ["vol_of_vol"], rules, nav=NAV, market=market or _market(), base_ccy="USD", **kw)


def test_premium_is_the_black_scholes_price_times_quantity_and_multiplier_and_the_budget():
    out = _apply([_overlay(strike=0.9, expiry_days=91, budget=0.002)], unit_values=[50 * S0, 30.0])
    new = out.positions.iloc[-1]
    T = 91 / 365
    K = 0.9 * S0
    assert new["id"] == "OVERLAY_0" and new["type"] == "option" and new["option_type"] == "put"
    assert new["strike"] == pytest.approx(K, rel=1e-15) and new["expiry"] == (AS_OF + pd.Timedelta(days=91)).date()
    assert new["dividend_yield"] == Q  # from the book's put on the same underlying
    bs = _bs_put(S0, K, T, R, Q, 0.2)
    imp = out.impact.iloc[0]
    assert imp["premium"] == pytest.approx(new["quantity"] * new["multiplier"] * bs, rel=1e-10)
    assert imp["premium"] == pytest.approx(0.002 * NAV, rel=1e-12)
    assert imp["position_id"] == "OVERLAY_0" and imp["kind"] == "overlay"
    # gross exposure grows by the premium (an option's unit value is its premium)
    assert imp["gross_before"] == 200 * 50 * S0 + 10 * 30.0
    assert imp["gross_after"] - imp["gross_before"] == pytest.approx(imp["premium"], rel=1e-9)
    log = out.log.iloc[0]
    assert log.fired and log.kind == "overlay" and log.action.startswith("bought")
    assert "OVERLAY_0" in log.detail and "90.00% of the spot 3000" in log.detail


def test_the_strike_by_delta_has_that_black_scholes_delta_on_a_skewed_surface():
    vol = dict(atm=0.22, skew=-0.08, curv=0.02, term=-0.01)
    out = _apply([_overlay(delta=-0.25, expiry_days=60, budget=0.001)], market=_market(**vol))
    K = out.positions.iloc[-1]["strike"]
    T = 60 / 365
    sigma = _surface(K, T, **vol)
    d1 = (math.log(S0 / K) + (R - Q + 0.5 * sigma ** 2) * T) / (sigma * math.sqrt(T))
    assert -math.exp(-Q * T) * norm.cdf(-d1) == pytest.approx(-0.25, abs=1e-9)
    assert K < S0  # out of the money
    # and its premium is the closed form at the surface's vol for that strike
    q = out.positions.iloc[-1]["quantity"]
    assert out.impact.premium.iloc[0] == pytest.approx(q * 100 * _bs_put(S0, K, T, R, Q, sigma), rel=1e-10)


def _vix_future(T, atm, term):
    """The VIX future of docs/kernels.md, written out: 100 sqrt of the forward ATM variance over 30 days."""
    tau, T0 = 30 / 365, 30 / 365
    w = lambda t: (atm + term * math.log(t / T0)) ** 2 * t  # noqa: E731
    return 100 * math.sqrt((w(T + tau) - w(T)) / tau)


def _black76_call(F, K, T, r, nu):
    d1 = math.log(F / K) / (nu * math.sqrt(T)) + 0.5 * nu * math.sqrt(T)
    return math.exp(-r * T) * (F * norm.cdf(d1) - K * norm.cdf(d1 - nu * math.sqrt(T)))


def test_a_vix_call_is_black_76_on_the_vix_future_of_its_expiry():
    mkt = _market(atm=0.18, term=0.02, vov=0.9)
    vix = dict(instrument="vix_call", underlying="VOL.SPX.ATM", expiry_days=45)
    out = _apply([_overlay(**vix, strike=1.25, budget=0.001)], market=mkt)
    new = out.positions.iloc[-1]
    T = 45 / 365
    F = _vix_future(T, 0.18, 0.02)
    assert new["type"] == "vix_option" and new["option_type"] == "call" and new["underlying"] == "VOL.SPX.ATM"
    assert new["strike"] == pytest.approx(1.25 * F, rel=1e-12)  # a fraction of the VIX future
    premium = out.impact.premium.iloc[0]
    assert premium == pytest.approx(new["quantity"] * 100 * _black76_call(F, 1.25 * F, T, R, 0.9), rel=1e-10)
    assert premium == pytest.approx(0.001 * NAV, rel=1e-12)
    # by delta: Black-76's futures delta DF N(d1) at the vol-of-vol
    out = _apply([_overlay(**vix, delta=0.3, budget=0.001)], market=mkt)
    K = out.positions.iloc[-1]["strike"]
    d1 = math.log(F / K) / (0.9 * math.sqrt(T)) + 0.45 * math.sqrt(T)
    assert math.exp(-R * T) * norm.cdf(d1) == pytest.approx(0.3, abs=1e-9) and K > F
    # a snapshot without the vol-of-vol (a book with no VIX option) cannot price it
    with pytest.raises(ConfigError, match=r"rules\[0\], field 'underlying': the market snapshot has no VOL.SPX.VOV"):
        _apply([_overlay(**vix, strike=1.25, budget=0.001)])


def test_carry_cost_is_the_value_lost_with_the_shorter_expiry():
    out = _apply([_overlay(strike=0.95, expiry_days=120, budget=0.003, horizon_days=10)])
    q = out.positions.iloc[-1]["quantity"]
    at = AS_OF + pd.offsets.BDay(10)
    T, T2 = 120 / 365, (120 - (at - AS_OF).days) / 365
    K = 0.95 * S0
    expected = q * 100 * (_bs_put(S0, K, T, R, Q, 0.2) - _bs_put(S0, K, T2, R, Q, 0.2))
    imp = out.impact.iloc[0]
    assert imp["carry_cost"] == pytest.approx(expected, rel=1e-9) and imp["carry_cost"] > 0
    assert imp["carry_days"] == 10


def test_a_zero_budget_changes_nothing_bit_for_bit():
    book = _book()
    out = apply_rules(book, ["vol_of_vol"], [_overlay(strike=0.9, budget=0.0)], nav=NAV, market=_market(), base_ccy="USD")
    assert out.positions.equals(book)
    assert out.log.action.iloc[0] == "none" and "bought nothing" in out.log.detail.iloc[0]
    assert out.impact.premium.iloc[0] == 0.0 and pd.isna(out.impact.position_id.iloc[0])
    # the same with a boost before it: the overlay adds nothing to the boosted book
    boost = {"kind": "boost", "when": ["vol_of_vol"], "sleeves": ["trend"], "factor": 1.2}
    a = apply_rules(book, ["vol_of_vol"], [boost], nav=NAV, market=_market(), base_ccy="USD", unit_values=[1.5e5, 3e3])
    b = apply_rules(book, ["vol_of_vol"], [boost, _overlay(strike=0.9, budget=0.0)], nav=NAV, market=_market(),
                    base_ccy="USD", unit_values=[1.5e5, 3e3])
    assert a.positions.equals(b.positions)


def _family(n=400, seed=5):
    """A stress family of joint SPX and ATM-vol shocks, and the book's P&L on it by hand (linear future and
    the book's put by Black-Scholes)."""
    rng = np.random.default_rng(seed)
    s = rng.standard_t(4, n) * 0.05
    dv = -1.5 * s + 0.01 * rng.standard_normal(n)
    shocks = np.zeros((n, len(FACTORS)))
    shocks[:, 0] = s
    shocks[:, FACTORS.index("VOL.SPX.ATM")] = dv
    T0 = 200 / 365
    fut = 200 * 50 * S0 * np.expm1(s)
    put = np.array([10 * 100 * (_bs_put(S0 * math.exp(a), 2500.0, T0, R, Q, 0.2 + b) - _bs_put(S0, 2500.0, T0, R, Q, 0.2))
                    for a, b in zip(s, dv)])
    return StressFamily(np.c_[fut, put], shocks, None, 0), s, dv


def test_sized_to_a_cvar_target_cuts_the_family_cvar_by_that_fraction():
    fam, s, dv = _family()
    rule = _overlay(strike=0.9, expiry_days=90, target={"cvar_cut": 0.3, "family": "crash"})
    out = _apply([rule], stress={"crash": fam})
    q = out.positions.iloc[-1]["quantity"]
    K, T = 0.9 * S0, 90 / 365
    y = np.array([100 * (_bs_put(S0 * math.exp(a), K, T, R, Q, 0.2 + b) - _bs_put(S0, K, T, R, Q, 0.2)) for a, b in zip(s, dv)])
    x = fam.pnl.sum(axis=1)
    c0 = var_cvar(x, 0.99)[1]
    assert var_cvar(x + q * y, 0.99)[1] == pytest.approx(0.7 * c0, rel=1e-6)
    assert var_cvar(x + 0.99 * q * y, 0.99)[1] > 0.7 * c0  # the smallest such size
    assert "CVaR" in out.log.detail.iloc[0]
    # a premium cap below what the target needs: capped, and said so
    capped = _apply([{**rule, "target": {"cvar_cut": 0.3, "family": "crash", "max_budget": 1e-5}}], stress={"crash": fam})
    assert capped.impact.premium.iloc[0] == pytest.approx(1e-5 * NAV, rel=1e-9)
    assert "target not met" in capped.log.detail.iloc[0]


def test_the_overlay_p_and_l_history_enters_the_risk_after():
    rng = np.random.default_rng(2)
    days = pd.bdate_range("2019-01-01", periods=300)
    moves = pd.DataFrame(0.0, index=days, columns=list(FACTORS))
    moves["EQ.SPX"] = rng.standard_normal(300) * 0.012
    moves["VOL.SPX.ATM"] = -0.8 * moves["EQ.SPX"]
    pnl = pd.DataFrame({"ES": 200 * 50 * S0 * np.expm1(moves["EQ.SPX"]), "SPX_P": 0.0}, index=days)
    out = _apply([_overlay(strike=0.95, budget=0.004)], position_pnl=pnl, daily_moves=moves, as_of=days[-1],
                 unit_values=[50 * S0, 3.0])
    imp = out.impact.iloc[0]
    assert imp["history_days"] == 300
    # the hedge cuts the book's historical CVaR and VaR
    assert imp["cvar_after"] < imp["cvar_before"] and imp["var_after"] < imp["var_before"]
    x = pnl.sum(axis=1).to_numpy()
    assert imp["cvar_before"] == pytest.approx(var_cvar(x, 0.99)[1] / NAV, rel=1e-12)
    assert imp["vol_before"] == pytest.approx(np.std(x, ddof=1) * math.sqrt(252) / NAV, rel=1e-12)
    # the after figures: the same P&L plus q puts revalued by Black-Scholes under each day's move
    q, K, T = out.positions.iloc[-1]["quantity"], 0.95 * S0, 90 / 365
    base = _bs_put(S0, K, T, R, Q, 0.2)
    y = np.array([_bs_put(S0 * math.exp(a), K, T, R, Q, 0.2 + b) - base for a, b in zip(moves["EQ.SPX"], moves["VOL.SPX.ATM"])])
    assert imp["cvar_after"] == pytest.approx(var_cvar(x + q * 100 * y, 0.99)[1] / NAV, rel=1e-9)


@pytest.mark.parametrize("rule, field, text", [
    (_overlay(when=["vix_spike"], strike=0.9, budget=0.01), "when", "unknown signal 'vix_spike'"),
    (_overlay(instrument="straddle", strike=0.9, budget=0.01), "instrument", "unknown instrument 'straddle'; expected one of put, vix_call"),
    (_overlay(instrument="payer_swaption", strike=0.9, budget=0.01), "instrument", "not available yet"),
    (_overlay(instrument="vix_call", underlying="EQ.SPX", strike=1.2, budget=0.01), "underlying", "VOL.<U>.ATM"),
    (_overlay(instrument="vix_call", underlying="VOL.SPX.ATM", delta=-0.2, budget=0.01), "delta", "call's delta"),
    (_overlay(instrument="vix_call", underlying="VOL.SPX.ATM", strike=1.2, budget=0.01, dividend_yield=0.01),
     "dividend_yield", "only an index put"),
    (_overlay(strike=0.9, budget=-0.01), "budget", "-0.01 must be a premium in [0, 1]"),
    (_overlay(strike=0.9, delta=-0.2, budget=0.01), "delta", "exactly one of 'strike' (a fraction of spot) and 'delta' (got both)"),
    (_overlay(budget=0.01), "delta", "(got neither)"),
    (_overlay(strike=0.9), "target", "exactly one of 'budget'"),
    (_overlay(delta=0.3, budget=0.01), "delta", "put's delta"),
    (_overlay(underlying="FX.EURUSD", strike=0.9, budget=0.01), "underlying", "EQ.* factor"),
])
def test_bad_overlay_entries_are_named_on_one_line(rule, field, text):
    with pytest.raises(ConfigError) as exc:
        _apply([{"kind": "tighten_adv_caps", "when": ["dispersion"]}, rule])
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"monitoring.rules[1], field '{field}") and text in msg, msg


def test_an_underlying_or_family_the_batch_lacks_is_named_before_any_rule_fires():
    rule = _overlay(underlying="EQ.NDX", strike=0.9, budget=0.01)
    for fired in (["vol_of_vol"], []):
        with pytest.raises(ConfigError, match=r"^monitoring.rules\[0\], field 'underlying': the market snapshot has no "
                                              r"EQ.NDX, .*VOL.NDX.ATM"):
            apply_rules(_book(), fired, [rule], nav=NAV, market=_market(), base_ccy="USD")
    with pytest.raises(ConfigError, match=r"rules\[0\], field 'target.family': no scenario family 'nope' \(families: crash\)"):
        check_rules([_overlay(strike=0.9, target={"cvar_cut": 0.2, "family": "nope"})], _market(), "USD", _book(), ["crash"])
    with pytest.raises(ConfigError, match=r"rules\[0\], field 'id': position id 'ES' is already in the book"):
        check_rules([_overlay(strike=0.9, budget=0.01, id="ES")], _market(), "USD", _book())
    with pytest.raises(ConfigError, match=r"rules\[0\] \(overlay\): needs a positive nav"):
        apply_rules(_book(), ["vol_of_vol"], [_overlay(strike=0.9, budget=0.01)], market=_market(), base_ccy="USD")
