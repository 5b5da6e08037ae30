"""Amplified shocks: the stressed covariance, the map's identities, liquidity carried on the set."""

from __future__ import annotations

import numpy as np
import pytest

from stressgrid import scenarios
from stressgrid.core.scenarioset import LIQUIDITY_CLASSES
from stressgrid.scenarios import AmplifySpec, build_amplifier, stressed_covariance
from stressgrid.scenarios._correlation import cov_to_corr, is_correlation

F = ["EQ.SPX", "EQ.AAPL", "IR.USD.2Y", "IR.USD.10Y", "CMD.WTI"]


def _cov():
    sd = np.array([0.01, 0.015, 0.0005, 0.0006, 0.02])
    c = np.array([[1, .7, -.4, -.4, .3], [.7, 1, -.3, -.35, .2], [-.4, -.3, 1, .9, -.1],
                  [-.4, -.35, .9, 1, -.1], [.3, .2, -.1, -.1, 1]])
    return c * np.outer(sd, sd)


def test_equity_bond_target_and_repair():
    spec = AmplifySpec.model_validate({"correlation": {"blend": 1.0, "targets": [{"a": "equity", "b": "rates", "value": 0.8}]}})
    new, rep = stressed_covariance(_cov(), F, spec, "f")
    c, sd = cov_to_corr(new)
    assert is_correlation(c)
    assert np.allclose(sd, np.sqrt(np.diag(_cov())))
    # a block of 0.8 between two blocks already correlated 0.7 / 0.9 inside is not far from valid:
    # the repair moves little, and the pairs land near the target
    assert rep["corr_repair_distance"] < 0.5
    assert np.all(c[:2, 2:4] > 0.6)
    # blend 0 is the identity
    spec0 = AmplifySpec.model_validate({"correlation": {"blend": 0.0, "targets": [{"a": "equity", "b": "rates", "value": 0.8}]}})
    new0, rep0 = stressed_covariance(_cov(), F, spec0, "f")
    assert np.allclose(new0, _cov(), rtol=1e-12) and rep0["corr_moved"] == pytest.approx(0, abs=1e-12)


def test_map_identities():
    rng = np.random.default_rng(0)
    S = _cov()
    spec = AmplifySpec.model_validate({"correlation": {"blend": 0.7, "targets": [{"a": "EQ.*", "b": "IR.USD.*", "value": 0.5}]},
                                       "vol": {"multiplier": {"equity": 2.0, "default": 1.5}}})
    amp = build_amplifier(spec, F, S, np.arange(5), "f")
    S2, _ = stressed_covariance(S, F, spec, "f")
    A = amp.matrix
    # Cov(A x) = S' exactly
    assert np.allclose(A @ S @ A.T, S2, rtol=1e-9, atol=1e-16)
    # Mahalanobis distance kept
    x = rng.standard_normal(5) * np.sqrt(np.diag(S))
    y = amp.apply_moves(x)
    assert x @ np.linalg.solve(S, x) == pytest.approx(y @ np.linalg.solve(S2, y), rel=1e-9)
    # vols only: the map is the diagonal of multipliers
    vo = AmplifySpec.model_validate({"vol": {"multiplier": {"equity": 2.0, "default": 1.5}}})
    a2 = build_amplifier(vo, F, S, np.arange(5), "f")
    assert np.allclose(a2.matrix, np.diag([2, 2, 1.5, 1.5, 1.5]), atol=1e-10)


def test_amplified_monte_carlo_has_stressed_moments(spec, history, factors, market):
    base = dict(kind="montecarlo", model="gaussian", n_scenarios=20_000, window={"end": "2017-03-29"})
    amp = {"correlation": {"targets": [{"a": "EQ.SPX", "b": "IR.USD.10Y", "value": 0.8}]}, "vol": {"multiplier": 2.0}}
    s = spec(dict(base, name="m", amplify=amp))
    fit = scenarios.fit(s, history, factors, market)
    out = scenarios.generate(s, history, factors, np.random.SeedSequence(0), market)
    i, j = factors.index("EQ.SPX"), factors.index("IR.USD.10Y")
    r = np.corrcoef(out.shocks[:, i], out.shocks[:, j])[0, 1]
    c, sd = cov_to_corr(fit.cov)
    # correlation standard error (1 - rho^2)/sqrt(n) for the Gaussian; 5 standard errors
    assert abs(r - c[i, j]) < 5 * (1 - c[i, j] ** 2) / np.sqrt(len(out))
    base_fit = scenarios.fit(spec(dict(base, name="b")), history, factors, market)
    c0, _ = cov_to_corr(base_fit.cov)
    # one pair moved alone is inconsistent with its neighbours (SPX-2y, 2y-10y): the repair pulls it back
    # part of the way, but it ends much nearer the target than it started
    assert abs(c[i, j] - 0.8) < 0.5 * abs(c0[i, j] - 0.8)
    assert np.allclose(sd, 2 * np.sqrt(np.diag(base_fit.cov)))


def test_liquidity_and_levels_carried(spec, history_2017, factors, market):
    history = history_2017  # the 2008 VIX filled from the facts, as before the bundle's VIX went back to 1990
    s = spec(dict(kind="historical", name="h", events=["cny_2015"],
                  amplify={"vol": {"iv_level": {"VOL.SPX.ATM": 0.8}},
                           "liquidity": {"spread_mult": {"equity": 3, "default": 2}, "adv_mult": {"equity": 0.3}}}))
    out = scenarios.generate(s, history, factors, market=market)
    assert out.shocks[0, factors.index("VOL.SPX.ATM")] == pytest.approx(0.8 - market.level("VOL.SPX.ATM"))
    spread, adv = out.liquidity()
    k = LIQUIDITY_CLASSES.index("equity")
    assert spread[0, k] == 3 and adv[0, k] == 0.3
    assert spread[0, LIQUIDITY_CLASSES.index("fx")] == 2 and adv[0, LIQUIDITY_CLASSES.index("fx")] == 1
    # carried through concat with a set that has no liquidity stress (ones there)
    other = scenarios.generate(spec(dict(kind="historical", name="g", events=["gfc_2008"])), history, factors, market=market)
    from stressgrid.core import concat_scenarios

    both = concat_scenarios([out, other])
    assert both.spread_mult.shape == (2, len(LIQUIDITY_CLASSES))
    assert np.all(both.spread_mult[1] == 1) and both.spread_mult[0, k] == 3
    assert both.filled is not None and both.filled[1].sum() == 1
    sub = both.subset(np.array([1, 0])).reorder(factors[::-1])
    assert sub.spread_mult[1, k] == 3 and sub.filled[0, ::-1].sum() == 1
