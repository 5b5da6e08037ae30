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
