"""Proxies: a factor's missing history from another factor's moves times a beta, declared or fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError, History
from stressgrid.core.sources import ProxySpec, apply_proxies, fit_proxy

DATES = pd.bdate_range("2012-01-02", periods=2001)


def _synthetic(beta=1.2, r2=0.6, seed=4):
    """A proxy spread with daily changes N(0, 10bp^2) and a target whose changes are beta times them plus
    an independent residual sized so that the population R^2 is ``r2``."""
    rng = np.random.default_rng(seed)
    dp = 0.001 * rng.standard_normal(len(DATES) - 1)
    s_e = np.sqrt(beta**2 * 0.001**2 * (1 - r2) / r2)
    dx = beta * dp + s_e * rng.standard_normal(len(DATES) - 1)
    p = 0.01 + np.concatenate([[0], np.cumsum(dp)])
    x = 0.02 + np.concatenate([[0], np.cumsum(dx)])
    return pd.DataFrame({"CR.CDX_IG": p, "CR.IBM": x}, index=pd.DatetimeIndex(DATES, name="date"))


def test_the_fitted_beta_and_r2_recover_the_generating_ones():
    beta, r2, days = fit_proxy(History(_synthetic(), "synthetic"), "CR.IBM", "CR.CDX_IG")
    assert days == 2000
    # standard error of the slope about sqrt((1 - R^2) / (R^2 n)) * beta = 0.022; of R^2 about 0.014
    assert beta == pytest.approx(1.2, abs=0.07)
    assert r2 == pytest.approx(0.6, abs=0.045)


def test_a_factor_without_history_moves_as_beta_times_its_proxy():
    lv = _synthetic()[["CR.CDX_IG"]]
    h = apply_proxies(History(lv, "synthetic"), {"CR.IBM": ProxySpec("CR.CDX_IG", 1.5)})
    d_target = np.diff(h.levels["CR.IBM"].to_numpy())
    d_proxy = np.diff(lv["CR.CDX_IG"].to_numpy())
    np.testing.assert_allclose(d_target, 1.5 * d_proxy, rtol=1e-12, atol=1e-17)
    assert h.provenance["CR.IBM"].source == "proxy" and "beta 1.5 declared" in h.provenance["CR.IBM"].detail


def test_own_history_is_kept_and_extended_by_the_proxy():
    full = _synthetic()
    lv = full.copy()
    lv.loc[lv.index[:1000], "CR.IBM"] = np.nan  # the target's own history starts halfway
    h = apply_proxies(History(lv, "synthetic"), {"CR.IBM": ProxySpec("CR.CDX_IG")})
    got = h.levels["CR.IBM"]
    # its own levels where it has them; before them, its fitted beta times the proxy's changes
    np.testing.assert_array_equal(got.iloc[1000:].to_numpy(), full["CR.IBM"].iloc[1000:].to_numpy())
    beta, _, _ = fit_proxy(History(lv, "s"), "CR.IBM", "CR.CDX_IG")
    np.testing.assert_allclose(np.diff(got.iloc[:1001].to_numpy()), beta * np.diff(full["CR.CDX_IG"].iloc[:1001].to_numpy()),
                               rtol=1e-10, atol=1e-16)
    assert "fitted on 1000 days" in h.provenance["CR.IBM"].detail


def test_a_price_proxy_for_a_spread_needs_a_beta_and_moves_by_its_log_returns():
    rng = np.random.default_rng(1)
    spx = 2000 * np.exp(np.cumsum(0.01 * rng.standard_normal(len(DATES))))
    lv = pd.DataFrame({"EQ.SPX": spx}, index=pd.DatetimeIndex(DATES, name="date"))
    with pytest.raises(ConfigError, match=r"field 'CR.IBM.beta': CR.IBM \(spread\) and its proxy EQ.SPX \(price\)"):
        apply_proxies(History(lv, "s"), {"CR.IBM": ProxySpec("EQ.SPX")})
    h = apply_proxies(History(lv, "s"), {"CR.IBM": ProxySpec("EQ.SPX", -0.05)})
    np.testing.assert_allclose(np.diff(h.levels["CR.IBM"].to_numpy()), -0.05 * np.diff(np.log(spx)), rtol=1e-10, atol=1e-15)


def test_cycles_and_proxies_without_history_are_errors():
    lv = _synthetic()[["CR.CDX_IG"]]
    with pytest.raises(ConfigError, match=r"proxy cycle CR.A -> CR.B -> CR.A"):
        apply_proxies(History(lv, "s"), {"CR.A": ProxySpec("CR.B", 1.0), "CR.B": ProxySpec("CR.A", 1.0)})
    with pytest.raises(ConfigError, match=r"field 'CR.IBM.factor': the proxy CR.XYZ has no history"):
        apply_proxies(History(lv, "s"), {"CR.IBM": ProxySpec("CR.XYZ", 1.0)})
    with pytest.raises(ConfigError, match=r"field 'CR.IBM.beta': 0 days of common history"):
        apply_proxies(History(lv, "s"), {"CR.IBM": ProxySpec("CR.CDX_IG")})


def _half_history(seed=4):
    """The synthetic pair with the target's own history in the first 1000 days only: the proxy fills the
    last 1000, where the estimation windows below lie."""
    lv = _synthetic(seed=seed)
    lv.loc[lv.index[1000:], "CR.IBM"] = np.nan
    return apply_proxies(History(lv, "synthetic"), {"CR.IBM": ProxySpec("CR.CDX_IG")})


def _generate(kind: dict, h):
    from pydantic import TypeAdapter

    from stressgrid import scenarios

    window = {} if kind["kind"] == "rolling" else {"window": {"end": str(DATES[-1].date()), "lookback_days": 750}}
    spec = TypeAdapter(scenarios.ScenarioSpec).validate_python(dict(name="f", **window, **kind))
    return scenarios.generate(spec, h, ["CR.CDX_IG", "CR.IBM"], np.random.SeedSequence(3))


@pytest.mark.parametrize("kind", [
    dict(kind="montecarlo", model="gaussian", estimator="sample", n_scenarios=20_000, horizon_days=1),
    dict(kind="bootstrap", block_length=5, horizon_days=5, n_scenarios=20_000),
])
def test_random_families_correlate_a_proxied_factor_with_its_proxy_as_r(kind):
    """Where the proxy fills, the random kinds add its residual: the scenarios' correlation between the
    target and the proxy is the generating R = sqrt(0.6) = 0.775, not 1 (standard error of the window's
    correlation over 750 days about (1 - R^2) / sqrt(750) = 0.015)."""
    h = _half_history()
    p = h.provenance["CR.IBM"]
    # the residual's daily sd is the generating one, 0.0012 * sqrt(0.4 / 0.6) = 0.00098, within 3%
    assert p.residual_sd == pytest.approx(1.2 * 0.001 * np.sqrt(0.4 / 0.6), rel=0.03)
    assert "residual sd" in p.detail and len(p.synthetic) == len(DATES) - 1000
    out = _generate(kind, h)
    r = np.corrcoef(out.shocks[:, 0], out.shocks[:, 1])[0, 1]
    assert r == pytest.approx(np.sqrt(0.6), abs=0.05)


def test_a_replay_of_a_proxied_window_moves_exactly_beta_times_the_proxy():
    """Historical replays take no residual: the proxied factor's move is the fitted beta times the proxy's."""
    h = _half_history()
    beta = float(h.provenance["CR.IBM"].detail.split("beta ")[1].split()[0])
    out = _generate(dict(kind="rolling", horizon_days=10, start=str(DATES[1200].date()), end=str(DATES[-1].date())), h)
    np.testing.assert_allclose(out.shocks[:, 1], beta * out.shocks[:, 0], rtol=1e-3, atol=1e-12)


def test_without_common_history_the_residual_is_declared_or_said_to_be_missing():
    lv = _synthetic()[["CR.CDX_IG"]]
    h = apply_proxies(History(lv, "synthetic"), {"CR.IBM": ProxySpec("CR.CDX_IG", 1.2)})
    assert h.provenance["CR.IBM"].residual_sd is None and "no residual noise" in h.provenance["CR.IBM"].detail
    out = _generate(dict(kind="montecarlo", model="gaussian", estimator="sample", n_scenarios=2000, horizon_days=1), h)
    assert np.corrcoef(out.shocks[:, 0], out.shocks[:, 1])[0, 1] == pytest.approx(1.0, abs=1e-9)
    h = apply_proxies(History(lv, "synthetic"), {"CR.IBM": ProxySpec("CR.CDX_IG", 1.2, residual_sd=0.00098)})
    out = _generate(dict(kind="montecarlo", model="gaussian", estimator="sample", n_scenarios=20_000, horizon_days=1), h)
    assert np.corrcoef(out.shocks[:, 0], out.shocks[:, 1])[0, 1] == pytest.approx(np.sqrt(0.6), abs=0.05)


def _curves_and_vols():
    """USD zero yields at 3M, 2Y and 10Y, SPX and its ATM vol, CDX IG: 300 days of random walks."""
    rng = np.random.default_rng(11)
    n = 300
    idx = pd.DatetimeIndex(pd.bdate_range("2016-01-04", periods=n), name="date")
    walk = lambda start, sd: start + np.cumsum(sd * rng.standard_normal(n))
    return History(pd.DataFrame({
        "IR.USD.3M": walk(0.01, 3e-4), "IR.USD.2Y": walk(0.012, 5e-4), "IR.USD.10Y": walk(0.02, 6e-4),
        "EQ.SPX": 2000 * np.exp(walk(0, 0.01)), "VOL.SPX.ATM": np.abs(walk(0.15, 0.01)),
        "CR.CDX_IG": np.abs(walk(0.007, 3e-5)),
    }, index=idx), "synthetic")


def test_the_default_map_by_factor_kind():
    from stressgrid.core.sources import default_proxies

    h = _curves_and_vols()
    levels = {"IR.EUR.2Y": -0.007, "IR.EUR.5Y": 0.0, "VOL.SPX.SKEW": -0.12, "VOL.SPX.ATM": 0.15, "CR.IBM": 0.0075,
              "CR.CDX_IG": 0.005, "VOL.WTI.SKEW": -0.03}
    need = ["IR.EUR.2Y", "IR.EUR.5Y", "VOL.SPX.SKEW", "CR.IBM", "BASIS.WTI", "VOL.WTI.SKEW", "IR.GBP.10Y", "EQ.SPX"]
    proxies, flat = default_proxies(need, h, levels)
    assert proxies["IR.EUR.2Y"].factor == "IR.USD.2Y" and proxies["IR.EUR.2Y"].beta == 1.0
    # no 5-year USD yield in this history: the nearest tenor (2Y: 3 years away, 10Y: 5)
    assert proxies["IR.EUR.5Y"].factor == "IR.USD.2Y" and "nearest tenor 2Y" in proxies["IR.EUR.5Y"].rule
    assert proxies["VOL.SPX.SKEW"].factor == "VOL.SPX.ATM" and proxies["VOL.SPX.SKEW"].beta == pytest.approx(-0.8)
    assert proxies["CR.IBM"].factor == "CR.CDX_IG" and proxies["CR.IBM"].beta == pytest.approx(1.5)
    assert set(flat) == {"BASIS.WTI"} and "carry" in flat["BASIS.WTI"]
    # left out: the WTI surface has no ATM history; GBP 10Y has no level to start from; SPX has history
    assert set(proxies) == {"IR.EUR.2Y", "IR.EUR.5Y", "VOL.SPX.SKEW", "CR.IBM"}
    moved = apply_proxies(h, proxies)
    np.testing.assert_allclose(np.diff(moved.levels["VOL.SPX.SKEW"]), -0.8 * np.diff(h.levels["VOL.SPX.ATM"]), atol=1e-15)
    assert "default map: the smile scales with its ATM level" in moved.provenance["VOL.SPX.SKEW"].detail


def test_a_proxy_moving_in_step_leaves_garch_dcc_well_defined():
    """A declared proxy without residual moves exactly with its proxy: GARCH and the DCC correlation are
    fitted on the proxy alone, and the proxied factor is drawn as the same linear combination."""
    lv = _synthetic()[["CR.CDX_IG"]]
    h = apply_proxies(History(lv, "synthetic"), {"CR.IBM": ProxySpec("CR.CDX_IG", 1.0)})
    out = _generate(dict(kind="montecarlo", model="garch_t", correlation="dcc", n_scenarios=500, horizon_days=3), h)
    assert np.isfinite(out.shocks).all() and out.shocks.std(axis=0).min() > 0
    # the proxied factor is not fitted a GARCH of its own: it is drawn as beta times its proxy
    np.testing.assert_allclose(out.shocks[:, 1], out.shocks[:, 0], rtol=1e-9, atol=1e-15)
    assert out.info["derived_factors"].iloc[0] == "CR.IBM"  # the info column; the scenarios table holds it as a list


def test_a_late_starting_factor_is_extended_backwards_by_its_best_fitting_peer():
    """Three spreads: the target starts halfway and is generated from peer A (R^2 0.6), not from peer B
    (independent).  The default map picks A, fits beta 1.2 within its standard error, extends the target
    before its first date only, and leaves its own levels as they are."""
    from stressgrid.core.sources import default_proxies

    lv = _synthetic()
    rng = np.random.default_rng(9)
    lv["CR.OTHER"] = 0.01 + np.cumsum(0.001 * rng.standard_normal(len(lv)))
    lv.loc[lv.index[:1000], "CR.IBM"] = np.nan
    lv.loc[lv.index[-5:], "CR.IBM"] = np.nan  # stale at the end: it stays stale
    h = History(lv, "synthetic")
    proxies, flat = default_proxies(["CR.IBM"], h, {})
    assert proxies["CR.IBM"].factor == "CR.CDX_IG" and proxies["CR.IBM"].backward_only and not flat
    out = apply_proxies(h, proxies)
    got = out.levels["CR.IBM"]
    assert got.iloc[:1000].notna().all() and got.iloc[-5:].isna().all()
    np.testing.assert_array_equal(got.iloc[1000:-5].to_numpy(), lv["CR.IBM"].iloc[1000:-5].to_numpy())
    beta = np.diff(got.iloc[:1001].to_numpy()) / np.diff(lv["CR.CDX_IG"].iloc[:1001].to_numpy())
    assert np.allclose(beta, beta[0]) and beta[0] == pytest.approx(1.2, abs=0.1)
    assert "of the spread factors observed earlier, the one that fits best" in out.provenance["CR.IBM"].detail


def test_the_fit_takes_the_days_both_are_observed_as_a_peer_regression_does():
    """Gaps in either series, a price factor (log moves) on a spread (level moves): the slope and R^2 of
    scipy's linregress on the days both are observed, one move between consecutive such days."""
    from scipy import stats

    rng = np.random.default_rng(3)
    n = 900
    spread = 0.01 + np.cumsum(0.0005 * rng.standard_normal(n))
    price = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n) - 3.0 * np.diff(np.r_[0.01, spread])))
    lv = pd.DataFrame({"CR.CDX_IG": spread, "EQ.SPX": price}, index=pd.bdate_range("2010-01-01", periods=n, name="date"))
    lv.iloc[rng.choice(n, 120, replace=False), 0] = np.nan
    lv.iloc[rng.choice(n, 90, replace=False), 1] = np.nan
    beta, r2, days = fit_proxy(History(lv, "s"), "EQ.SPX", "CR.CDX_IG")
    both = lv.dropna()
    ref = stats.linregress(np.diff(both["CR.CDX_IG"].to_numpy()), np.diff(np.log(both["EQ.SPX"].to_numpy())))
    assert days == len(both) - 1
    assert beta == pytest.approx(ref.slope, rel=1e-10) and r2 == pytest.approx(ref.rvalue ** 2, rel=1e-10)
    # too few common days: no fit, and the days there are
    short = lv.copy()
    short.iloc[40:, 1] = np.nan
    b, r, d = fit_proxy(History(short, "s"), "EQ.SPX", "CR.CDX_IG")
    assert np.isnan(b) and np.isnan(r) and d == len(short.dropna()) - 1
