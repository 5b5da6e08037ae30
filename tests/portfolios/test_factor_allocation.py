"""Lasso factor exposures and factor-targeting allocation: against independent formulations."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import lsq_linear

from stressgrid.core import ConfigError, InfeasibleError
from stressgrid.portfolios import Constraints, FactorExposureModel, FactorTargeting


def lasso_cvxpy(y, X, lam):
    """The Lasso objective of scikit-learn, ``1/(2T)|y - a - X b|^2 + lam |b|_1``, solved by cvxpy."""
    T, k = X.shape
    b = cp.Variable(k)
    a = cp.Variable()
    cp.Problem(cp.Minimize(cp.sum_squares(y - a - X @ b) / (2 * T) + lam * cp.norm1(b))).solve(
        solver="CLARABEL", tol_gap_abs=1e-13, tol_gap_rel=1e-13, tol_feas=1e-13)
    return b.value, a.value


def test_lasso_loadings_match_an_independent_solve(history_factors):
    R, F = history_factors
    m = FactorExposureModel(alpha=3e-4, standardize=False).fit(R[:, :5], F)
    for i in range(5):
        b, a = lasso_cvxpy(R[:, i], F, 3e-4)
        np.testing.assert_allclose(m.loadings_[i], b, atol=2e-5)
        assert m.intercept_[i] == pytest.approx(a, abs=1e-7)


def test_standardised_lasso_equals_lasso_on_scaled_factors(history_factors):
    R, F = history_factors
    sd = F.std(axis=0)
    m = FactorExposureModel(alpha=3e-4).fit(R[:, :4], F)
    for i in range(4):
        b, _ = lasso_cvxpy(R[:, i], F / sd, 3e-4)
        np.testing.assert_allclose(m.loadings_[i] * sd, b, atol=2e-5)


def test_zero_penalty_is_least_squares_and_lasso_recovers_a_sparse_truth():
    rng = np.random.default_rng(0)
    T, k, n = 4000, 6, 5
    F = rng.normal(size=(T, k)) * 0.01
    B = np.zeros((n, k))
    B[:, 0] = 1.0
    B[1, 2] = 0.5
    B[3, 4] = -0.8
    R = F @ B.T + rng.normal(size=(T, n)) * 0.002
    ols = np.linalg.lstsq(np.column_stack([np.ones(T), F]), R, rcond=None)[0][1:].T
    with pytest.warns(UserWarning, match="alpha=0"):   # scikit-learn suggests LinearRegression for alpha=0
        np.testing.assert_allclose(FactorExposureModel(alpha=0.0).fit(R, F).loadings_, ols, atol=1e-8)
    m = FactorExposureModel(alpha=2e-4).fit(R, F)
    np.testing.assert_array_equal(m.loadings_ != 0, B != 0)
    assert np.all(m.r2_ > 0.9)
    np.testing.assert_allclose(m.predict(F), F @ m.loadings_.T + m.intercept_)


def test_cross_validated_penalty(history_factors):
    R, F = history_factors
    m = FactorExposureModel(alpha="cv", cv=3).fit(R[:, :3], F)
    assert m.alpha_.shape == (3,) and np.all(m.alpha_ > 0)
    assert np.all(m.r2_ > 0.05)


@pytest.fixture(scope="module")
def loadings(history_factors):
    R, F = history_factors
    return FactorExposureModel(alpha=3e-4).fit(R, F).loadings_   # [24, 4]: SPX, WTI, EURUSD, 10y yield


#: the four cases: (name, target, lower, upper, excluded)
TARGET = np.array([0.6, 0.15, -0.2, -2.0])
CASES = [
    ("target, weights in [-100%, 100%]", TARGET, -1.0, 1.0, []),
    ("target, long-only", TARGET, 0.0, 1.0, []),
    ("target, long-only, illiquid excluded", TARGET, 0.0, 1.0, [1, 3, 16, 20]),
    ("equal exposure to every factor, weights in [-50%, 50%]", np.full(4, 0.5), -0.5, 0.5, []),
]


@pytest.mark.parametrize("name, target, lo, hi, excluded", CASES, ids=[c[0] for c in CASES])
def test_four_allocation_cases_against_bounded_least_squares(loadings, name, target, lo, hi, excluded):
    B = loadings
    n = B.shape[0]
    m = FactorTargeting(target, constraints=Constraints(budget=None, lower=lo, upper=hi), exclude=excluded).fit(B)
    keep = np.setdiff1d(np.arange(n), excluded)   # the reference simply leaves the excluded assets out
    ref = lsq_linear(B[keep].T, target, bounds=(lo, hi), method="bvls", tol=1e-14)
    ref_expo = B[keep].T @ ref.x
    # the closest achievable exposures are unique: ours equal the reference's
    np.testing.assert_allclose(m.exposures_, ref_expo, atol=1e-6)
    assert m.exposure_error_ == pytest.approx(np.linalg.norm(ref_expo - target), abs=1e-6)
    assert np.all(m.weights_ >= lo - 1e-9) and np.all(m.weights_ <= hi + 1e-9)
    np.testing.assert_allclose(m.weights_[excluded], 0.0, atol=1e-9)
    assert m.hit_ == (np.linalg.norm(ref_expo - target) <= 1e-7)


def test_reachable_target_is_hit_with_the_smallest_book(loadings):
    B = loadings
    target = np.array([0.3, 0.05, -0.05, -0.5])
    m = FactorTargeting(target, constraints=Constraints(budget=None, lower=-1, upper=1)).fit(B)
    assert m.hit_
    np.testing.assert_allclose(m.exposures_, target, atol=1e-8)
    w_min = np.linalg.pinv(B.T) @ target         # the minimum-norm solution of B^T w = target
    assert np.all(np.abs(w_min) < 1)             # bounds inactive, so it is the answer
    np.testing.assert_allclose(m.weights_, w_min, atol=1e-7)
    # with a current book, the closest book reaching the target
    w0 = np.full(B.shape[0], 1 / B.shape[0])
    m0 = FactorTargeting(target, constraints=Constraints(budget=None, lower=-1, upper=1)).fit(B, current_weights=w0)
    P = np.linalg.pinv(B.T)
    np.testing.assert_allclose(m0.weights_, w0 + P @ (target - B.T @ w0), atol=1e-7)


def test_budget_and_bad_input(loadings):
    B = loadings
    m = FactorTargeting(np.array([0.6, 0.1, 0.0, -1.0]), constraints=Constraints(budget=1.0, lower=0, upper=0.2)).fit(B)
    assert m.weights_.sum() == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ConfigError, match="target_exposures"):
        FactorTargeting([1.0, 2.0]).fit(B)
    with pytest.raises(ConfigError, match="exclude"):
        FactorTargeting(np.zeros(4), exclude=[99]).fit(B)
    with pytest.raises(InfeasibleError, match="position_caps"):
        FactorTargeting(np.zeros(4), constraints=Constraints(budget=1.0, max_position=0.01)).fit(B)
    with pytest.raises(ConfigError, match="factor_returns"):
        FactorExposureModel().fit(np.ones((10, 2)), np.ones((9, 1)))
    with pytest.raises(ConfigError, match="alpha"):
        FactorExposureModel(alpha="auto").fit(np.ones((10, 2)), np.ones((10, 1)))
