"""Predictive stress: closed-form Gaussian conditioning, Student-t conditional density, plausibility."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stressgrid import scenarios
from stressgrid.scenarios import conditional_stress


def _cov(rng, n):
    a = rng.standard_normal((n, n))
    return a @ a.T / n + 0.1 * np.eye(n)


def test_gaussian_conditional_matches_precision_form():
    # closed form through the precision matrix L = S^-1 (an independent route):
    # E[x_o | x_c] = -L_oo^-1 L_oc c and Cov[x_o | x_c] = L_oo^-1
    rng = np.random.default_rng(0)
    S = _cov(rng, 6)
    core = np.array([1, 4])
    c = np.array([-0.3, 0.01])
    res = conditional_stress(S, core, c)
    other = np.setdiff1d(np.arange(6), core)
    L = np.linalg.inv(S)
    loo = L[np.ix_(other, other)]
    assert np.allclose(res.mean, -np.linalg.solve(loo, L[np.ix_(other, core)] @ c), rtol=1e-10)
    assert np.allclose(res.cov, np.linalg.inv(loo), rtol=1e-10)


def test_gaussian_plausibility_one_factor():
    # one core factor: d = |c| / sd and the tail probability is P(|Z| >= d) = 2 Phi(-d)
    S = np.array([[4e-4, 1e-4], [1e-4, 9e-4]])
    res = conditional_stress(S, np.array([0]), np.array([-0.06]))
    assert res.mahalanobis == pytest.approx(3.0)
    assert res.tail_prob == pytest.approx(2 * stats.norm.cdf(-3.0))
    assert res.mean[0] == pytest.approx(1e-4 / 4e-4 * -0.06)


def test_student_t_conditional_density():
    # the conditional law must satisfy p(x_o | x_c) = p(x) / p(x_c) with scipy's multivariate t densities
    rng = np.random.default_rng(1)
    nu, S = 5.0, _cov(rng, 4)
    core = np.array([0, 2])
    other = np.array([1, 3])
    c = np.array([0.8, -0.5])
    res = conditional_stress(S, core, c, dof=nu)
    P = S * (nu - 2) / nu
    joint = stats.multivariate_t(loc=np.zeros(4), shape=P, df=nu)
    marg = stats.multivariate_t(loc=np.zeros(2), shape=P[np.ix_(core, core)], df=nu)
    cond = stats.multivariate_t(loc=res.mean, shape=res.scale, df=res.dof)
    for _ in range(5):
        xo = res.mean + rng.standard_normal(2) * 0.5
        x = np.zeros(4)
        x[core], x[other] = c, xo
        assert cond.logpdf(xo) == pytest.approx(joint.logpdf(x) - marg.logpdf(c), abs=1e-10)
    # conditional covariance = scale * dof / (dof - 2)
    assert np.allclose(res.cov, res.scale * res.dof / (res.dof - 2))
    # plausibility: d_P^2 / k is F(k, nu)
    d2p = c @ np.linalg.solve(P[np.ix_(core, core)], c)
    assert res.tail_prob == pytest.approx(stats.f.sf(d2p / 2, 2, nu))


def test_predictive_family(spec, history, factors, market):
    s = spec(dict(kind="predictive", name="pred", window={"end": "2017-03-29"}, estimator="sample", horizon_days=10,
                  stresses=[{"name": "crash", "shocks": {"EQ.SPX": "-30%", "IR.USD.10Y": "+100bp"}},
                            {"name": "mild", "shocks": {"EQ.SPX": "-2%"}}], n_draws=500))
    out = scenarios.generate(s, history, factors + ["CR.CDX_IG"], np.random.SeedSequence(0), market)
    assert len(out) == 2 + 2 * 500
    i = out.names.index("crash")
    spx, ten = factors.index("EQ.SPX"), factors.index("IR.USD.10Y")
    assert out.shocks[i, spx] == pytest.approx(np.log(0.7))
    assert out.shocks[i, ten] == pytest.approx(0.01)
    assert not out.filled[i, spx] and out.filled[i, factors.index("EQ.AAPL")]
    assert not out.covered[i, -1]  # CR.CDX_IG has no history
    info = out.info.set_index("scenario")
    # the crash is less plausible than the mild stress
    assert info.loc["crash", "mahalanobis"] > info.loc["mild", "mahalanobis"]
    assert info.loc["crash", "tail_prob"] < info.loc["mild", "tail_prob"]
    # draws are centred on the conditional mean (5 standard errors of a mean of 500 draws)
    draws = out.shocks[[n.startswith("crash:") for n in out.names]]
    assert np.allclose(draws[:, spx], np.log(0.7))
    sd = draws.std(0)
    assert np.all(np.abs(draws.mean(0) - out.shocks[i]) <= 5 * sd / np.sqrt(len(draws)) + 1e-12)
    assert np.isclose(out.weights.sum(), 1.0)
