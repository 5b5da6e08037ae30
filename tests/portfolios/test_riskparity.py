"""Risk parity and HRP against skfolio and riskfolio-lib, and the risk-budgeting identities."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from skfolio import RiskMeasure
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.optimization import HierarchicalRiskParity, RiskBudgeting

from stressgrid.core import ConfigError, DataError, var_cvar
from stressgrid.portfolios import HRP, FactorRiskParity, RiskParity, weighted_covariance

TIGHT = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 500}


def riskfolio_portfolio(R, alpha=0.95):
    import riskfolio as rp

    port = rp.Portfolio(returns=pd.DataFrame(R, columns=[f"a{i}" for i in range(R.shape[1])]))
    port.assets_stats(method_mu="hist", method_cov="hist")
    port.alpha = 1.0 - alpha
    port.solvers = ["CLARABEL"]
    port.sol_params = {"CLARABEL": TIGHT}
    return port


def vol(R, w):
    return float(np.sqrt(w @ np.cov(R.T) @ w))


def test_vol_parity_equalises_risk_contributions(history_returns):
    m = RiskParity("vol").fit(history_returns)
    rc = m.risk_contributions_
    assert rc.sum() == pytest.approx(m.risk_, rel=1e-12)
    np.testing.assert_allclose(rc, m.risk_ / len(rc), rtol=1e-10)
    assert m.weights_.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.all(m.weights_ > 0)


def test_vol_parity_two_assets_closed_form():
    """Two assets: ERC weights are proportional to 1 / sigma_i whatever the correlation (Maillard,
    Roncalli and Teiletche, J. Portfolio Management 36 (2010))."""
    rng = np.random.default_rng(0)
    z = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=5000)
    R = z * np.array([0.01, 0.03])
    w = RiskParity("vol").fit(R).weights_
    sd = np.sqrt(np.diag(weighted_covariance(R)))
    np.testing.assert_allclose(w, (1 / sd) / (1 / sd).sum(), rtol=1e-12)


def test_risk_budgets_are_met():
    R = np.random.default_rng(1).standard_t(6, (3000, 5)) * 0.01
    b = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    m = RiskParity("vol", risk_budget=b).fit(R)
    np.testing.assert_allclose(m.risk_contributions_ / m.risk_, b, rtol=1e-10)


def test_vol_parity_matches_skfolio_and_riskfolio(history_returns):
    R = history_returns
    ours = RiskParity("vol").fit(R).weights_
    sk = RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, solver_params=TIGHT).fit(R).weights_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf = riskfolio_portfolio(R).rp_optimization(model="Classic", rm="MV", hist=True).to_numpy().ravel()
    for name, w in (("skfolio", sk), ("riskfolio", rf)):
        assert vol(R, ours) == pytest.approx(vol(R, w), rel=1e-6), name
        np.testing.assert_allclose(ours, w, atol=1e-6, err_msg=name)


def test_cvar_parity_matches_skfolio_and_riskfolio(history_returns):
    R = history_returns[-750:]
    m = RiskParity("cvar", alpha=0.95).fit(R)
    sk = RiskBudgeting(risk_measure=RiskMeasure.CVAR, cvar_beta=0.95, solver_params=TIGHT).fit(R).weights_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf = riskfolio_portfolio(R, 0.95).rp_optimization(model="Classic", rm="CVaR", hist=True).to_numpy().ravel()
    for name, w in (("skfolio", sk), ("riskfolio", rf)):
        assert m.risk_ == pytest.approx(var_cvar(R @ w, 0.95)[1], rel=1e-6), name
        np.testing.assert_allclose(m.weights_, w, atol=1e-5, err_msg=name)
    # Euler contributions by the reduction code add up to the CVaR; they are equal only up to the choice
    # of subgradient at the kink where the optimum sits (several scenarios tie at VaR there)
    assert m.risk_contributions_.sum() == pytest.approx(m.risk_, rel=1e-10)


def test_factor_risk_parity_matches_riskfolio(history_factors):
    R, F = history_factors
    from sklearn.linear_model import LinearRegression

    B = LinearRegression().fit(F, R).coef_          # [N, K] loadings by OLS
    m = FactorRiskParity(B, measure="vol").fit(R)
    # equal factor risk contributions on the factor exposures
    rc = m.factor_risk_contributions_
    np.testing.assert_allclose(rc, rc.sum() / len(rc), rtol=1e-10)
    np.testing.assert_allclose(m.factor_exposures_ * m.weights_.sum(), B.T @ m.weights_, atol=1e-12)
    import riskfolio as rp

    port = riskfolio_portfolio(R)
    names = [f"f{k}" for k in range(F.shape[1])]
    port.factors = pd.DataFrame(F, columns=names)
    port.B = pd.DataFrame(B, index=port.assetslist, columns=names)
    port.feature_selection = "stepwise"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = port.rp_optimization(model="FC", rm="MV", hist=True).to_numpy().ravel()
    assert vol(R, m.weights_) == pytest.approx(vol(R, w), rel=1e-6)
    np.testing.assert_allclose(m.weights_, w, atol=1e-6)
    del rp


@pytest.mark.parametrize(
    "linkage, optimal, peer",
    [("ward", True, "skfolio"), ("single", False, "skfolio"), ("single", False, "riskfolio"),
     ("single", True, "riskfolio")],
)
def test_hrp_matches_skfolio_and_riskfolio(history_returns, linkage, optimal, peer):
    R = history_returns
    ours = HRP(linkage=linkage, optimal_ordering=optimal).fit(R).weights_
    if peer == "skfolio":
        from skfolio.seriation import HierarchicalSeriation

        est = HierarchicalRiskParity(
            risk_measure=RiskMeasure.VARIANCE,
            seriation_estimator=HierarchicalSeriation(
                hierarchical_clustering_estimator=HierarchicalClustering(linkage_method=LinkageMethod(linkage)),
                optimal_ordering=optimal,
            ),
        )
        ref = est.fit(R).weights_
    else:
        import riskfolio as rp

        hc = rp.HCPortfolio(returns=pd.DataFrame(R, columns=[f"a{i}" for i in range(R.shape[1])]))
        ref = hc.optimization(model="HRP", codependence="pearson", rm="MV", linkage=linkage,
                              leaf_order=optimal).to_numpy().ravel()
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-14)


def test_hrp_with_cvar_matches_skfolio(history_returns):
    R = history_returns
    ours = HRP(linkage="ward", optimal_ordering=True, risk_measure="cvar", alpha=0.95).fit(R).weights_
    ref = HierarchicalRiskParity(risk_measure=RiskMeasure.CVAR).fit(R).weights_  # skfolio's CVaR is at 95%
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-14)


def test_hrp_two_uncorrelated_assets_is_inverse_variance():
    rng = np.random.default_rng(4)
    R = rng.normal(size=(20000, 2)) * np.array([0.01, 0.02])
    w = HRP().fit(R).weights_
    v = np.diag(weighted_covariance(R))
    np.testing.assert_allclose(w, (1 / v) / (1 / v).sum(), rtol=1e-12)


def test_bad_inputs():
    R = np.random.default_rng(0).normal(size=(5, 8))
    with pytest.raises(DataError, match="singular"):
        RiskParity("vol").fit(R)
    with pytest.raises(ConfigError, match="measure"):
        RiskParity("variance").fit(R)
    with pytest.raises(ConfigError, match=r"risk_budget\[1\]"):
        RiskParity("vol", risk_budget=[1, 0, 1, 1, 1, 1, 1, 1]).fit(np.random.default_rng(0).normal(size=(50, 8)))
    with pytest.raises(ConfigError, match="linkage"):
        HRP(linkage="centroid2").fit(R)
    with pytest.raises(DataError, match="zero variance"):
        HRP().fit(np.column_stack([R[:, 0], np.zeros(5)]))
    with pytest.raises(ConfigError, match="K <= N"):
        FactorRiskParity(np.ones((2, 3))).fit(R[:, :2])
