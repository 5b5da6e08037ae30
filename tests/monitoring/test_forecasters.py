"""Forecasters against their reference implementations and definitions."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError, DataError
from stressgrid.monitoring import (
    FORECASTERS,
    CovarianceForecaster,
    DCCGarch,
    EWMACov,
    LedoitWolfCov,
    SampleCov,
    ewma_covariance,
    make_forecaster,
    register_forecaster,
)


def test_ewma_is_the_riskmetrics_recursion(returns):
    # RiskMetrics (1996) s.5.2.1: S_t = lam S_{t-1} + (1 - lam) r_t r_t', zero mean; started from zero and
    # divided by the weights' sum 1 - lam^T it is the finite-window estimator
    x = returns.to_numpy()
    lam = 0.94
    s = np.zeros((x.shape[1], x.shape[1]))
    for r in x:
        s = lam * s + (1 - lam) * np.outer(r, r)
    ref = s / (1 - lam ** len(x))
    f = EWMACov(lam).fit(returns)
    assert np.allclose(f.covariance_, ref, rtol=1e-12, atol=0)
    assert np.allclose(ewma_covariance(x, lam), ref, rtol=1e-12, atol=0)
    # and the univariate variance of RiskMetrics' eq. (5.1) on a long window (lam^T negligible)
    y = np.random.default_rng(1).standard_normal(2000) * 0.01
    var = (1 - lam) * sum(lam ** i * y[-1 - i] ** 2 for i in range(len(y)))
    assert EWMACov(lam).fit(y[:, None]).covariance_[0, 0] == pytest.approx(var, rel=1e-12)


def test_ewma_with_mean_matches_pandas(returns):
    f = EWMACov(0.97, mean="sample").fit(returns)
    ref = returns.reset_index(drop=True).ewm(alpha=1 - 0.97, adjust=True).cov(bias=True).loc[len(returns) - 1].to_numpy()
    assert np.allclose(f.covariance_, ref, rtol=1e-10, atol=0)


def test_ledoit_wolf_standardised_is_sklearn_on_the_correlation(returns):
    from sklearn.covariance import ledoit_wolf

    x = returns.to_numpy() * np.array([1.0, 1.0, 0.05, 0.05])  # mixed units
    f = LedoitWolfCov().fit(x)
    sd = x.std(axis=0)
    ref, shrink = ledoit_wolf(x / sd)
    assert np.allclose(f.covariance_, ref * np.outer(sd, sd), rtol=1e-12, atol=0)
    assert f.details_["shrinkage"] == pytest.approx(shrink)


def test_ledoit_wolf_raw_matches_the_2004_formula(returns):
    # Ledoit and Wolf (2004), lemma 3.2 / section 3.3, written out: target mu I, intensity b2 / d2
    x = returns.to_numpy()
    n, p = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2) / p
    b2bar = sum(np.sum((np.outer(r, r) - s) ** 2) for r in xc) / n ** 2 / p
    b2 = min(b2bar, d2)
    ref = b2 / d2 * mu * np.eye(p) + (1 - b2 / d2) * s
    f = LedoitWolfCov(standardise=False).fit(returns)
    assert np.allclose(f.covariance_, ref, rtol=1e-10, atol=0)
    assert f.details_["shrinkage"] == pytest.approx(b2 / d2, rel=1e-10)


def test_sample_and_its_window(returns):
    assert np.allclose(SampleCov().fit(returns).covariance_, np.cov(returns.to_numpy(), rowvar=False), rtol=1e-13)
    assert np.allclose(SampleCov(60).fit(returns).covariance_, np.cov(returns.to_numpy()[-60:], rowvar=False), rtol=1e-13)
    # the constant-covariance forecast of a horizon is the square-root-of-time rule
    f = SampleCov().fit(returns)
    assert np.allclose(f.forecast(20), 20 * f.covariance_, rtol=0, atol=0)
    assert np.allclose(np.diag(f.correlation_), 1.0)


@pytest.mark.parametrize("name", ["denoised", "hierarchical"])
def test_filtered_estimators_keep_vols_and_give_valid_correlations(name, returns):
    f = make_forecaster(name).fit(returns)
    sd = returns.std(ddof=1).to_numpy()
    assert np.allclose(np.sqrt(np.diag(f.covariance_)), sd, rtol=1e-10)
    c = f.correlation_
    assert np.allclose(np.diag(c), 1.0) and np.allclose(c, c.T) and np.linalg.eigvalsh(c).min() > -1e-10


def _garch_returns(T=1000, K=3, seed=2):
    """Returns with GARCH(1,1) variances (omega 0.05, alpha 0.08, beta 0.9) and correlated shocks."""
    rng = np.random.default_rng(seed)
    c = np.linalg.cholesky(np.full((K, K), 0.4) + 0.6 * np.eye(K))
    z = rng.standard_normal((T, K)) @ c.T
    s2 = np.full(K, 0.05 / 0.02)
    x = np.empty((T, K))
    for t in range(T):
        x[t] = np.sqrt(s2) * z[t]
        s2 = 0.05 + 0.08 * x[t] ** 2 + 0.9 * s2
    return pd.DataFrame(x * 0.006, index=pd.bdate_range("2005-01-03", periods=T))


def test_dcc_forecast_against_arch_and_its_definition():
    from arch import arch_model

    returns = _garch_returns()
    f = DCCGarch().fit(returns)
    h = 15
    # GARCH(1,1) variance forecasts equal arch's own analytic forecast of the same fit
    x = returns.to_numpy()
    scale = x.std(axis=0, ddof=1)
    for j in range(x.shape[1]):
        res = arch_model(x[:, j] / scale[j], mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = res.fit(disp="off", show_warning=False)
        ref = fit.forecast(horizon=h, reindex=False).variance.to_numpy()[0] * scale[j] ** 2
        assert np.allclose(f.variance_path(h)[:, j], ref, rtol=1e-6)
    # the horizon covariance is the sum of the daily forecasts D_k R_k D_k (Engle and Sheppard 2001)
    sd = np.sqrt(f.variance_path(h))
    r = f.correlation_path(h)
    ref = sum(np.diag(sd[k]) @ r[k] @ np.diag(sd[k]) for k in range(h))
    assert np.allclose(f.forecast(h), ref, rtol=1e-12)
    assert np.allclose(f.forecast(1), f.covariance_, rtol=1e-12)
    # the correlation reverts from R_{T+1} to Rbar at rate a + b
    assert np.allclose(r[0], f.correlation_, atol=1e-12)
    a, b = f.details_["dcc_a"], f.details_["dcc_b"]
    if a + b > 0:
        far = f.correlation_path(5000)[-1]
        assert np.allclose(far, f._rbar, atol=1e-6 + (a + b) ** 4999)


def test_registry_and_errors():
    assert set(FORECASTERS) >= {"sample", "ewma", "ledoit_wolf", "denoised", "hierarchical", "dcc"}
    assert make_forecaster({"name": "ewma", "lam": 0.97}).lam == 0.97
    with pytest.raises(ConfigError, match="unknown forecaster 'garch'"):
        make_forecaster("garch")
    with pytest.raises(ConfigError, match="unknown setting.*lamb"):
        make_forecaster({"name": "ewma", "lamb": 0.9})
    with pytest.raises(ConfigError, match=r"'lam'.*\(got 1.5\)"):
        make_forecaster({"name": "ewma", "lam": 1.5})
    with pytest.raises(ConfigError, match="horizon"):
        SampleCov().fit(np.ones((30, 2)) + np.arange(60).reshape(30, 2)).forecast(0)


def test_bad_windows_are_data_errors():
    x = np.random.default_rng(0).standard_normal((50, 3))
    x[10, 1] = np.nan
    with pytest.raises(DataError, match=r"column '1', row 11"):
        SampleCov().fit(x)
    with pytest.raises(DataError, match="at least 20"):
        SampleCov().fit(x[:10])


class _Scaled(CovarianceForecaster):
    """A stand-in for a learned model: the sample covariance times a constant."""

    name = "scaled"

    def __init__(self, k: float = 2.0):
        self.k = k

    def _fit(self, x):
        return self.k * np.cov(x, rowvar=False)


def test_a_new_model_joins_by_registration(returns):
    register_forecaster("scaled", _Scaled)
    try:
        f = make_forecaster({"name": "scaled", "k": 3.0}).fit(returns)
        assert np.allclose(f.covariance_, 3.0 * np.cov(returns.to_numpy(), rowvar=False))
    finally:
        FORECASTERS.pop("scaled")
    with pytest.raises(ConfigError):
        register_forecaster("bad", dict)
