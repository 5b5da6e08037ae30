"""Monte Carlo generators: target moments within sampling error, tails, GARCH twin against arch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from stressgrid import scenarios
from stressgrid.scenarios._montecarlo import GarchFit, garch_paths
from stressgrid.scenarios._tdist import fit_t_dof


def seed(n: int = 0) -> np.random.SeedSequence:
    return np.random.SeedSequence(n)

WINDOW = {"end": "2017-03-29", "lookback_days": 500}


def _fitted(spec, history, factors, market, **kw):
    s = spec(dict(kind="montecarlo", name="mc", window=WINDOW, **kw))
    return s, scenarios.fit(s, history, factors, market)


@pytest.mark.parametrize("model", ["gaussian", "student_t"])
def test_moments_match_target(spec, history, factors, market, model):
    kw = dict(model=model, n_scenarios=40_000, mean="sample")
    if model == "student_t":
        kw["dof"] = 6.0
    s, fit = _fitted(spec, history, factors, market, **kw)
    out = scenarios.generate(s, history, factors, seed(1), market)
    x = out.shocks[:, fit.index]
    n = len(x)
    sd = np.sqrt(np.diag(fit.cov))
    # means: standard error sd / sqrt(n); 5 standard errors (two-sided p about 6e-7 per factor)
    assert np.all(np.abs(x.mean(0) - fit.mean) < 5 * sd / np.sqrt(n))
    # vols: the sample variance has variance (m4 - s^4)/n with m4 = kurtosis * s^4 (kurtosis 3 for the
    # Gaussian, 3 + 6/(nu - 4) for Student-t); the sd's standard error is sd * sqrt((kurt - 1)/(4n))
    kurt = 3.0 if model == "gaussian" else 3.0 + 6.0 / (6.0 - 4.0)
    se_sd = sd * np.sqrt((kurt - 1) / (4 * n))
    assert np.all(np.abs(x.std(0, ddof=1) - sd) < 5 * se_sd)
    # correlations: standard error (1 - rho^2) / sqrt(n) for the Gaussian; for the t the fourth moments
    # inflate it by at most sqrt(kurt / 3) (elliptical kurtosis correction); 5 standard errors
    rho = fit.cov / np.outer(sd, sd)
    se_rho = (1 - rho ** 2) / np.sqrt(n) * np.sqrt(kurt / 3.0) + 1e-12
    assert np.all(np.abs(np.corrcoef(x, rowvar=False) - rho) < 5 * se_rho)


def test_student_t_tail_index(spec, history, factors, market):
    nu = 5.0
    s, fit = _fitted(spec, history, factors, market, model="student_t", dof=nu, n_scenarios=100_000)
    out = scenarios.generate(s, history, factors, seed(2), market)
    j = 0
    sd = np.sqrt(fit.cov[j, j])
    x = out.shocks[:, fit.index[j]]
    # the margin is t(nu) with scale sd * sqrt((nu - 2)/nu): fit the dof alone with scipy
    scale = sd * np.sqrt((nu - 2) / nu)
    nu_hat = stats.t.fit(x, floc=0.0, fscale=scale)[0]
    # Fisher information of the t dof with known location and scale (Lange, Little & Taylor 1989):
    # I = 1/4 [psi'(nu/2) - psi'((nu+1)/2)] - (nu + 5) / (2 nu (nu + 1)(nu + 3)); SE = 1/sqrt(n I)
    info = 0.25 * (special.polygamma(1, nu / 2) - special.polygamma(1, (nu + 1) / 2)) - (nu + 5) / (2 * nu * (nu + 1) * (nu + 3))
    se = 1 / np.sqrt(len(x) * info)
    assert abs(nu_hat - nu) < 5 * se
    # tail frequency beyond the 0.1% quantile: binomial standard error sqrt(p(1-p)/n)
    p = 1e-3
    q = stats.t.ppf(p, nu) * scale
    freq = np.mean(x < q)
    assert abs(freq - p) < 5 * np.sqrt(p * (1 - p) / len(x))


def test_estimated_dof_recovers_truth():
    rng = np.random.default_rng(4)
    nu, p, n = 5.0, 3, 20_000
    cov = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
    x = stats.multivariate_t(loc=np.zeros(p), shape=cov * (nu - 2) / nu, df=nu).rvs(n, random_state=rng)
    nu_hat = fit_t_dof(x, np.cov(x, rowvar=False))
    # Fisher information of the dof of a p-variate t with known scatter (Lange, Little & Taylor 1989):
    # I = 1/4[psi'(nu/2) - psi'((nu+p)/2)] - p (nu + p + 4) / (2 nu (nu + p)(nu + p + 2)); the scatter is
    # estimated here (moment-matched), so allow 6 standard errors
    info = 0.25 * (special.polygamma(1, nu / 2) - special.polygamma(1, (nu + p) / 2)) - p * (nu + p + 4) / (2 * nu * (nu + p) * (nu + p + 2))
    assert abs(nu_hat - nu) < 6 / np.sqrt(n * info)


def test_a_factor_moving_exactly_with_others_does_not_change_the_dof():
    """Appending exact linear combinations of the columns (as a proxy without residual appends beta times
    its proxy) leaves the fitted dof where it was, also under a shrunk (full-rank) covariance: before,
    the demo's proxied curves took the dof of its Student-t family from 9.7 to 4.0."""
    from stressgrid.scenarios import estimate_covariance
    from stressgrid.scenarios._tdist import independent_columns

    rng = np.random.default_rng(5)
    nu, p, n = 6.0, 4, 3000
    x = stats.multivariate_t(loc=np.zeros(p), shape=np.eye(p) * 0.5 + 0.5, df=nu).rvs(n, random_state=rng)
    dup = np.column_stack([x, 1.0 * x[:, 0], 0.8 * x[:, 1], x[:, 2], 0.5 * x[:, 0] + 0.5 * x[:, 3]])
    assert len(independent_columns(dup)) == p
    base = fit_t_dof(x, estimate_covariance(x)[0])
    aug = fit_t_dof(dup, estimate_covariance(dup)[0])
    assert aug == pytest.approx(base, rel=0.05)
    # correlated but not collinear columns all stay
    assert len(independent_columns(np.column_stack([x, x[:, 0] + 0.1 * rng.standard_normal(n)]))) == p + 1


def test_garch_recursion_twin_of_arch():
    from arch.univariate import GARCH

    rng = np.random.default_rng(9)
    H = 50
    z = rng.standard_normal(H)
    g = GarchFit(omega=np.array([0.05]), alpha=np.array([0.08]), beta=np.array([0.9]), nu=np.array([6.0]),
                 mu=np.array([0.0]), scale=np.array([1.0]), sigma2_next=np.array([1.3]),
                 std_resid=np.zeros((1, 1)), seconds=np.zeros(1))
    ours = garch_paths(g, z[None, :, None])[0, :, 0]
    ref, _ = GARCH().simulate([0.05, 0.08, 0.9], H, rng=lambda n: z[:n], burn=0, initial_value=1.3)
    assert np.allclose(ours, ref, rtol=1e-13, atol=0)


def test_garch_fit_is_archs(history):
    from arch import arch_model

    from stressgrid.scenarios import fit_garch

    x = np.log(history.levels["EQ.SPX"].dropna()).diff().dropna().loc["2015":"2016"].to_numpy()[:, None]
    g = fit_garch(x)
    ref = arch_model(x[:, 0] / x[:, 0].std(ddof=1), mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(disp="off")
    assert g.alpha[0] == pytest.approx(ref.params["alpha[1]"], rel=1e-8)
    assert g.nu[0] == pytest.approx(ref.params["nu"], rel=1e-8)
    assert np.allclose(g.std_resid[:, 0], ref.resid / ref.conditional_volatility)


@pytest.mark.parametrize("model,corr", [("garch_t", "constant"), ("garch_t", "dcc"), ("fhs", "constant")])
def test_garch_family_long_run_vol(spec, history, factors, market, model, corr):
    # started at the fitted next-day variance, the one-day shock's variance is sigma2_next * scale^2
    # exactly (unit-variance innovations); check it within 5 standard errors of the sample variance
    # (var of s^2 about (kurt - 1) s^4 / n, kurtosis of a t(nu) innovation 3 + 6/(nu - 4), capped at 15)
    s, fit = _fitted(spec, history, factors[:4], market, model=model, correlation=corr, n_scenarios=20_000)
    out = scenarios.generate(s, history, factors[:4], seed(3), market)
    g = fit.garch
    x = out.shocks[:, fit.index]
    target = g.sigma2_next * g.scale ** 2
    if model == "fhs":
        # FHS innovations are the standardised residuals: their own second moment
        target = target * (g.std_resid ** 2).mean(0)
        kurt = (g.std_resid ** 4).mean(0) / (g.std_resid ** 2).mean(0) ** 2
    else:
        kurt = np.where(g.nu > 4.2, 3 + 6 / np.maximum(g.nu - 4, 0.2), 15.0)
    n = len(x)
    var = ((x - (0 if s.mean == "zero" else 0)) ** 2).mean(0)
    assert np.all(np.abs(var - target) < 5 * target * np.sqrt(np.minimum(kurt, 15) - 1) / np.sqrt(n))


def _textbook_dcc_loglik(a, b, e, qbar):
    """Engle (2002), eq. 26 and 28, one day at a time with an explicit inverse and determinant."""
    q, total = qbar.copy(), 0.0
    for t in range(len(e)):
        d = 1.0 / np.sqrt(np.diag(q))
        r = q * d[:, None] * d[None, :]
        total += np.log(np.linalg.det(r)) + e[t] @ np.linalg.inv(r) @ e[t] - e[t] @ e[t]
        q = (1 - a - b) * qbar + a * np.outer(e[t], e[t]) + b * q
    return -0.5 * total


def test_dcc_filter_is_the_textbook_recursion_bit_for_bit():
    """Q_{t+1} = (1-a-b) Qbar + a e_t e_t' + b Q_t (Engle 2002, eq. 26) one day at a time, Q_1 = Qbar."""
    from stressgrid.scenarios._montecarlo import _dcc_filter

    rng = np.random.default_rng(3)
    e = rng.standard_normal((300, 6))
    qbar = np.corrcoef(e, rowvar=False)
    a, b = 0.037, 0.921
    q = [qbar]
    for t in range(len(e)):
        q.append((1 - a - b) * qbar + a * np.outer(e[t], e[t]) + b * q[-1])
    got = _dcc_filter(e, a, b, qbar)
    assert got.shape == (301, 6, 6)
    assert np.array_equal(got, np.array(q))
    assert np.array_equal(_dcc_filter(e, a, b, qbar, e[:, :, None] * e[:, None, :]), got)


def _simulate_dcc(a, b, qbar, T, seed):
    """Standardised residuals of a DCC(1,1) with correlation targeting at ``qbar``."""
    rng = np.random.default_rng(seed)
    K = len(qbar)
    q, out = qbar.copy(), np.empty((T, K))
    for t in range(T):
        d = 1.0 / np.sqrt(np.diag(q))
        out[t] = np.linalg.cholesky(q * d[:, None] * d[None, :]) @ rng.standard_normal(K)
        q = (1 - a - b) * qbar + a * np.outer(out[t], out[t]) + b * q
    return out


def test_dcc_likelihood_equals_the_textbook_sum_and_the_fit_recovers_the_parameters():
    from stressgrid.scenarios._montecarlo import dcc_loglik, fit_dcc

    qbar = np.array([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    e = _simulate_dcc(0.05, 0.90, qbar, 4000, 7)
    sample = np.corrcoef(e, rowvar=False)
    for a, b in [(0.05, 0.90), (0.0, 0.0), (0.2, 0.7)]:
        assert dcc_loglik(np.array([a, b]), e[:500], sample) == pytest.approx(
            _textbook_dcc_loglik(a, b, e[:500], sample), rel=1e-11)
    a, b, qb, q_next = fit_dcc(e)
    assert abs(a - 0.05) < 0.015 and abs(b - 0.90) < 0.04
    assert np.isfinite(q_next).all() and np.allclose(q_next, q_next.T)
    assert dcc_loglik(np.array([a, b]), e, qb) >= dcc_loglik(np.array([0.05, 0.90]), e, qb) - 1e-9
