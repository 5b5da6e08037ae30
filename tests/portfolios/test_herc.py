"""HERC (Raffinot 2018) against skfolio and riskfolio-lib, its identities (two uncorrelated clusters by
hand, scenario weights as repeated scenarios), and HERC on long-short books."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from skfolio import RiskMeasure
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.datasets import load_sp500_dataset
from skfolio.optimization import HierarchicalEqualRiskContribution
from skfolio.preprocessing import prices_to_returns

from stressgrid.core import ConfigError, DataError
from stressgrid.portfolios import HERC, Constraints, SignedHERC, vol_contributions, weighted_covariance

FREE = dict(budget=None, lower=-np.inf, upper=np.inf)
SKFOLIO_RISK = {"variance": RiskMeasure.VARIANCE, "vol": RiskMeasure.STANDARD_DEVIATION, "cvar": RiskMeasure.CVAR}
RISKFOLIO_RISK = {"variance": "MV", "vol": "vol", "cvar": "CVaR"}
#: the weights of both peers are reproduced to rounding (about 1e-16 on these data)
ATOL = 1e-10


@pytest.fixture(scope="module")
def sp500():
    """Daily returns of the 20 stocks of skfolio's S&P 500 data set: 2019-01 .. 2022-12 (the last 1000
    days) and 1990-01 .. 1991-12 (the first 500)."""
    X = prices_to_returns(load_sp500_dataset()).to_numpy()
    return {"recent": X[-1000:], "early": X[:500]}


def skfolio_herc(R, risk_measure="variance", linkage="ward", max_clusters=None):
    est = HierarchicalEqualRiskContribution(
        risk_measure=SKFOLIO_RISK[risk_measure],
        hierarchical_clustering_estimator=HierarchicalClustering(max_clusters=max_clusters,
                                                                 linkage_method=LinkageMethod(linkage)),
    ).fit(R)
    return est.weights_, est.hierarchical_clustering_estimator_.n_clusters_


def riskfolio_herc(R, risk_measure="variance", linkage="ward", k=None, alpha=0.95, leaf_order=True):
    import riskfolio as rp

    hc = rp.HCPortfolio(returns=pd.DataFrame(R, columns=[f"a{i}" for i in range(R.shape[1])]), alpha=1.0 - alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = hc.optimization(model="HERC", codependence="pearson", rm=RISKFOLIO_RISK[risk_measure], linkage=linkage,
                            k=k, leaf_order=leaf_order)
    return w.to_numpy().ravel(), hc.k


def check_long_only(m, n):
    assert m.weights_.shape == (n,)
    assert m.weights_.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.all(m.weights_ > 0)
    assert sorted(m.order_.tolist()) == list(range(n))
    assert m.cluster_weights_.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(np.bincount(m.labels_, weights=m.weights_), m.cluster_weights_, rtol=1e-12)


# --- peers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["recent", "early"])
@pytest.mark.parametrize("linkage", ["ward", "single", "average", "complete"])
@pytest.mark.parametrize("risk_measure", ["variance", "vol", "cvar"])
def test_matches_skfolio_with_its_cluster_count(sp500, period, linkage, risk_measure):
    """``n_clusters="gap"`` is skfolio's default cluster count (two-order difference gap statistic)."""
    R = sp500[period]
    m = HERC(linkage=linkage, risk_measure=risk_measure).fit(R)
    ref, k = skfolio_herc(R, risk_measure, linkage)
    check_long_only(m, R.shape[1])
    assert m.n_clusters_ == k
    np.testing.assert_allclose(m.weights_, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_matches_skfolio_with_a_given_cluster_count(sp500, k):
    R = sp500["recent"]
    m = HERC(n_clusters=k).fit(R)
    ref, k_ref = skfolio_herc(R, max_clusters=k)
    assert m.n_clusters_ == k_ref == k
    np.testing.assert_allclose(m.weights_, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("period", ["recent", "early"])
@pytest.mark.parametrize("linkage", ["ward", "single"])
@pytest.mark.parametrize("risk_measure", ["variance", "vol", "cvar"])
def test_matches_riskfolio_with_its_cluster_count(sp500, period, linkage, risk_measure):
    """``n_clusters="gap_std"`` is riskfolio-lib's default (``opt_k_method="twodiff"``, ``max_k=10``)."""
    R = sp500[period]
    m = HERC(linkage=linkage, risk_measure=risk_measure, n_clusters="gap_std", optimal_ordering=True).fit(R)
    ref, k = riskfolio_herc(R, risk_measure, linkage)
    assert m.n_clusters_ == k
    np.testing.assert_allclose(m.weights_, ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("k, alpha", [(3, 0.95), (6, 0.9), (6, 0.99)])
def test_matches_riskfolio_cvar_with_a_given_cluster_count(sp500, k, alpha):
    R = sp500["early"]
    m = HERC(risk_measure="cvar", alpha=alpha, n_clusters=k).fit(R)
    ref, _ = riskfolio_herc(R, "cvar", k=k, alpha=alpha, leaf_order=False)
    assert m.n_clusters_ == k
    np.testing.assert_allclose(m.weights_, ref, rtol=0, atol=ATOL)


def test_matches_skfolio_on_the_bundled_history(history_returns):
    """24 positions of the bundled history: stocks, oil, gold and two FX rates."""
    m = HERC(risk_measure="cvar").fit(history_returns)
    ref, k = skfolio_herc(history_returns, "cvar")
    assert m.n_clusters_ == k
    np.testing.assert_allclose(m.weights_, ref, rtol=0, atol=ATOL)


# --- identities ------------------------------------------------------------------------------------


def two_uncorrelated_blocks(seed=0, S=3000):
    """Returns ``[S, 6]`` whose scenario covariance is exactly block-diagonal: positions 0-2 and 3-5
    correlated within (0.5 .. 0.8), uncorrelated across, volatilities 1% .. 3%."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(S, 6))
    Q, _ = np.linalg.qr(Z - Z.mean(axis=0))  # orthonormal, zero-mean columns
    Q *= np.sqrt(S)                           # identity scenario covariance
    blocks = []
    for rho, vols, cols in ((0.8, [0.01, 0.02, 0.015], slice(0, 3)), (0.5, [0.03, 0.012, 0.02], slice(3, 6))):
        C = np.full((3, 3), rho) + (1 - rho) * np.eye(3)
        L = np.linalg.cholesky(C) * np.array(vols)[:, None]
        blocks.append(Q[:, cols] @ L.T)
    return np.hstack(blocks)


def test_two_clusters_by_hand_variance():
    """Two uncorrelated clusters, variance: each cluster is its inverse-variance portfolio ``u_c`` with
    variance ``V_c = u_c' Sigma_c u_c``; the first gets ``V_2 / (V_1 + V_2)`` of the capital."""
    R = two_uncorrelated_blocks()
    cov = weighted_covariance(R)
    assert np.abs(cov[:3, 3:]).max() < 1e-18
    m = HERC(n_clusters=2).fit(R)
    check_long_only(m, 6)
    assert m.labels_[0] != m.labels_[3] and len(set(m.labels_[:3])) == len(set(m.labels_[3:])) == 1
    u, V = [], []
    for ids in (slice(0, 3), slice(3, 6)):
        iv = 1 / np.diag(cov)[ids]
        u.append(iv / iv.sum())
        V.append(u[-1] @ cov[ids, ids] @ u[-1])
    a = V[1] / (V[0] + V[1])
    np.testing.assert_allclose(m.weights_, np.concatenate([a * u[0], (1 - a) * u[1]]), rtol=1e-12)
    # the volatility contributions of the clusters are in the ratio V_2 : V_1
    rc = vol_contributions(cov, m.weights_)
    assert rc[:3].sum() / rc[3:].sum() == pytest.approx(V[1] / V[0], rel=1e-12)


def test_two_clusters_contribute_equal_volatility():
    """Two uncorrelated clusters, volatility: inverse-volatility within, ``a sigma_1 = (1 - a) sigma_2``
    between, so the clusters' Euler contributions to the volatility are equal (Raffinot 2018)."""
    R = two_uncorrelated_blocks(seed=1)
    cov = weighted_covariance(R)
    m = HERC(risk_measure="vol", n_clusters=2).fit(R)
    sd = np.sqrt(np.diag(cov))
    u, s = [], []
    for ids in (slice(0, 3), slice(3, 6)):
        u.append((1 / sd[ids]) / (1 / sd[ids]).sum())
        s.append(np.sqrt(u[-1] @ cov[ids, ids] @ u[-1]))
    a = s[1] / (s[0] + s[1])
    np.testing.assert_allclose(m.weights_, np.concatenate([a * u[0], (1 - a) * u[1]]), rtol=1e-12)
    rc = vol_contributions(cov, m.weights_)
    assert rc[:3].sum() == pytest.approx(rc[3:].sum(), rel=1e-12)
    np.testing.assert_allclose(m.cluster_risks_[m.labels_[[0, 3]]], s, rtol=1e-12)


def test_one_cluster_is_naive_risk_parity(sp500):
    R = sp500["recent"]
    for measure, unit in (("variance", np.var(R, axis=0)), ("vol", np.std(R, axis=0))):
        w = HERC(risk_measure=measure, n_clusters=1).fit(R).weights_
        np.testing.assert_allclose(w, (1 / unit) / (1 / unit).sum(), rtol=1e-12)


@pytest.mark.parametrize("risk_measure", ["variance", "cvar"])
def test_scenario_weights_are_repeated_scenarios(sp500, risk_measure):
    """Probabilities ``k_s / K`` give the weights of the matrix with scenario ``s`` repeated ``k_s`` times."""
    R = sp500["early"][:300]
    k = np.random.default_rng(0).integers(1, 4, len(R))
    ours = HERC(risk_measure=risk_measure, alpha=0.9).fit(R, sample_weight=k / k.sum())
    ref = HERC(risk_measure=risk_measure, alpha=0.9).fit(np.repeat(R, k, axis=0))
    assert ours.n_clusters_ == ref.n_clusters_
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-10)
    unweighted = HERC(risk_measure=risk_measure, alpha=0.9).fit(R).weights_
    assert np.abs(ours.weights_ - unweighted).max() > 1e-4  # the probabilities are used


def test_leaf_order_changes_the_order_not_the_weights(sp500):
    R = sp500["recent"]
    a = HERC(linkage="average").fit(R)
    b = HERC(linkage="average", optimal_ordering=True).fit(R)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-14)
    assert sorted(b.order_.tolist()) == list(range(R.shape[1]))


def test_cluster_rules_on_few_positions():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(500, 3)) * np.array([0.01, 0.02, 0.03])
    assert HERC().fit(R[:, :2]).n_clusters_ == 2
    assert HERC(n_clusters="gap_std").fit(R).n_clusters_ == 1
    one = HERC().fit(R[:, :1])
    assert one.weights_.tolist() == [1.0] and one.n_clusters_ == 1


def test_bad_inputs():
    R = np.random.default_rng(0).normal(size=(50, 4))
    for bad in (0, 5, 2.5, True, "gapp", None):
        with pytest.raises(ConfigError, match=r"n_clusters: expected an integer in \[1, 4\]"):
            HERC(n_clusters=bad).fit(R)
    with pytest.raises(ConfigError, match="risk_measure: expected one of"):
        HERC(risk_measure="cvar95").fit(R)
    with pytest.raises(ConfigError, match="linkage: expected one of"):
        HERC(linkage="centroid").fit(R)
    with pytest.raises(ConfigError, match=r"alpha: expected a confidence level in \(0, 1\) \(got 95\)"):
        HERC(risk_measure="cvar", alpha=95).fit(R)
    with pytest.raises(DataError, match=r"returns\[:, 1\]: a position with zero variance"):
        HERC().fit(np.column_stack([R[:, 0], np.zeros(50)]))
    with pytest.raises(DataError, match=r"returns\[:, 0\]: CVaR-based HERC needs a positive CVaR"):
        HERC(risk_measure="cvar").fit(np.column_stack([np.abs(R[:, 0]) + 1, R[:, 1]]))
    with pytest.raises(ConfigError, match="sample_weight"):
        HERC().fit(R, sample_weight=np.ones(50))


# --- long-short books ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_short(sp500):
    R = sp500["recent"][:, :12]
    rng = np.random.default_rng(3)
    w0 = rng.uniform(0.05, 0.4, 12) * np.array([1, -1, 1, 1, -1, 1, -1, 1, 1, -1, 1, -1])
    return R, w0


@pytest.mark.parametrize("risk_measure", ["variance", "vol", "cvar"])
def test_long_short_is_herc_of_the_sign_adjusted_returns(long_short, risk_measure):
    R, w0 = long_short
    s = np.sign(w0)
    m = SignedHERC(risk_measure=risk_measure, gross=1.5).fit(R, current_weights=w0)
    assert np.all(np.sign(m.weights_) == s)
    assert np.abs(m.weights_).sum() == pytest.approx(1.5, rel=1e-14)
    h = HERC(risk_measure=risk_measure).fit(R * s)
    np.testing.assert_allclose(m.weights_, 1.5 * s * h.weights_, rtol=1e-14)
    ref, k = skfolio_herc(R * s, risk_measure)
    np.testing.assert_allclose(m.weights_, 1.5 * s * ref, rtol=0, atol=ATOL)
    assert m.n_clusters_ == k
    assert m.status_ == "optimal" and m.diagnosis_ == "" and m.risk_budget_ is None
    assert m.risk_share_.sum() == pytest.approx(1.0, abs=1e-12)


def test_long_short_default_gross_and_positions_not_held(long_short):
    R, w0 = long_short
    w0 = w0.copy()
    w0[4] = 0.0
    m = SignedHERC(n_clusters=3).fit(R, current_weights=w0)
    assert m.weights_[4] == 0.0 and m.labels_[4] == -1
    assert np.abs(m.weights_).sum() == pytest.approx(np.abs(w0).sum(), rel=1e-14)
    held = np.flatnonzero(w0)
    h = HERC(n_clusters=3).fit(R[:, held] * np.sign(w0[held]))
    np.testing.assert_allclose(m.weights_[held], np.abs(w0).sum() * np.sign(w0[held]) * h.weights_, rtol=1e-14)
    assert sorted(m.order_.tolist()) == held.tolist()
    assert m.n_clusters_ == 3 and sorted(set(m.labels_[held].tolist())) == [0, 1, 2]


def test_long_only_book_is_herc_scaled(sp500):
    R = sp500["early"]
    w0 = np.full(R.shape[1], 2.0 / R.shape[1])
    m = SignedHERC(linkage="single", optimal_ordering=True).fit(R, current_weights=w0)
    np.testing.assert_allclose(m.weights_ / 2.0, HERC(linkage="single").fit(R).weights_, rtol=1e-14)


def test_long_short_names_the_constraints_it_breaks(long_short):
    R, w0 = long_short
    m = SignedHERC(constraints=Constraints(**FREE, max_turnover=0.05)).fit(R, current_weights=w0)
    assert m.status_ == "constraints_violated"
    assert m.diagnosis_.startswith("HERC takes no constraints; its weights break turnover (by ")
    ok = SignedHERC(constraints=Constraints(**FREE, max_turnover=100.0)).fit(R, current_weights=w0)
    assert ok.status_ == "optimal" and ok.diagnosis_ == ""
    np.testing.assert_allclose(ok.weights_, m.weights_)


def test_long_short_bad_inputs(long_short):
    R, w0 = long_short
    with pytest.raises(ConfigError, match="current_weights: required"):
        SignedHERC().fit(R)
    with pytest.raises(ConfigError, match="gross: expected a positive gross exposure"):
        SignedHERC(gross=-1.0).fit(R, current_weights=w0)
    with pytest.raises(ConfigError, match=r"n_clusters: expected an integer in \[1, 12\]"):
        SignedHERC(n_clusters=13).fit(R, current_weights=w0)
