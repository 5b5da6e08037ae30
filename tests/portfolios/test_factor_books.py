"""Ridge and least-squares exposures, the tolerance band of factor targeting, and factor targeting and
factor risk parity with the optimisers' ``fit(returns, ...)`` interface, on synthetic data with known
loadings; references: scikit-learn's RidgeCV and Ridge, scipy's lsq_linear, closed forms."""

import numpy as np
import pytest
from scipy.optimize import lsq_linear
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import TimeSeriesSplit

from stressgrid.core import ConfigError
from stressgrid.portfolios import (Constraints, FactorExposureModel, FactorRiskParityBook, FactorTargetBook,
                                   FactorTargeting, mimicking_factor_returns, reoptimise_family)
from stressgrid.portfolios._factors import RIDGE_GRID


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    T, n, k = 600, 12, 3
    F = rng.standard_normal((T, k)) * np.array([0.01, 0.02, 0.005])
    B = rng.uniform(-1.5, 1.5, (n, k))
    R = F @ B.T + 0.004 * rng.standard_normal((T, n))
    return R, F, B


def test_ridge_penalty_is_scikit_learns_cross_validated_choice(data):
    R, F, _ = data
    m = FactorExposureModel(alpha="cv", method="ridge", cv=TimeSeriesSplit(4)).fit(R, F)
    Xs = F / F.std(axis=0)
    for i in range(4):
        ref = RidgeCV(alphas=len(F) * RIDGE_GRID, cv=TimeSeriesSplit(4), scoring="neg_mean_squared_error").fit(Xs, R[:, i])
        assert m.alpha_[i] == ref.alpha_
        np.testing.assert_allclose(m.loadings_[i], Ridge(alpha=ref.alpha_).fit(Xs, R[:, i]).coef_ / F.std(axis=0), rtol=1e-10)
    assert np.isnan(m.t_stats_).all()


def test_least_squares_standard_errors(data):
    R, F, B = data
    m = FactorExposureModel(method="ols").fit(R, F)
    X = np.column_stack([np.ones(len(F)), F])
    coef = np.linalg.solve(X.T @ X, X.T @ R)
    s2 = ((R - X @ coef) ** 2).sum(axis=0) / (len(F) - 4)
    se = np.sqrt(np.outer(s2, np.diag(np.linalg.inv(X.T @ X))))[:, 1:]
    np.testing.assert_allclose(m.loadings_, coef[1:].T, rtol=1e-10)
    np.testing.assert_allclose(m.t_stats_, coef[1:].T / se, rtol=1e-9)
    assert np.all(np.abs(m.loadings_ - B) < 4 * m.std_errors_)   # the known loadings, to sampling error
    with pytest.raises(ConfigError, match="method: expected lasso, ridge or ols"):
        FactorExposureModel(method="pca").fit(R, F)


def test_tolerance_band_is_the_nearest_book_within_it(data):
    _, _, B = data
    t = np.array([0.3, -0.2, 0.1])
    w0 = np.full(len(B), 0.05)
    exact = FactorTargeting(t, Constraints(budget=None, lower=-1, upper=1)).fit(B, w0)
    band = FactorTargeting(t, Constraints(budget=None, lower=-1, upper=1), tolerance=0.05).fit(B, w0)
    assert exact.hit_ and band.hit_
    assert np.max(np.abs(band.exposures_ - t)) <= 0.05 + 1e-8
    assert np.linalg.norm(band.weights_ - w0) < np.linalg.norm(exact.weights_ - w0)
    # the current book already within the band: nothing to trade
    inside = FactorTargeting(B.T @ w0 + 0.01, Constraints(budget=None, lower=-1, upper=1), tolerance=0.05).fit(B, w0)
    np.testing.assert_allclose(inside.weights_, w0, atol=1e-8)
    with pytest.raises(ConfigError, match="tolerance: expected a number >= 0"):
        FactorTargeting(t, tolerance=-1).fit(B)


def test_target_book_misses_under_bounds_like_lsq_linear(data):
    R, _, B = data
    t = np.array([2.0, -1.5, 1.0])
    cs = Constraints(budget=None, lower=0.0, upper=0.2)
    m = FactorTargetBook(B, t, cs, factor_names=["a", "b", "c"]).fit(R, current_weights=np.full(len(B), 0.05))
    ref = lsq_linear(B.T, t, bounds=(0.0, 0.2), tol=1e-12, lsmr_tol="auto", max_iter=10_000)
    np.testing.assert_allclose(m.factor_exposures_, B.T @ ref.x, atol=1e-6)
    assert m.status_ == "target_missed" and "bounds binds" in m.diagnosis_ and "a " in m.diagnosis_


def test_factor_risk_parity_equalises_systematic_risk(data):
    R, _, B = data
    w0 = np.full(len(B), 0.08)
    m = FactorRiskParityBook(B, constraints=Constraints(budget=None, lower=-5, upper=5)).fit(R, current_weights=w0)
    Fm = mimicking_factor_returns(R, B)
    np.testing.assert_allclose(Fm, R @ B @ np.linalg.inv(B.T @ B), rtol=1e-10)
    omega = np.cov(Fm.T, ddof=0)
    y = B.T @ m.weights_
    np.testing.assert_allclose(y * (omega @ y) / (y @ omega @ y), 1 / 3, atol=1e-8)
    y0 = B.T @ w0
    assert y @ omega @ y == pytest.approx(y0 @ omega @ y0, rel=1e-8)
    assert m.status_ == "optimal"
    budget = FactorRiskParityBook(B, risk_budget=[2, 1, 1], constraints=Constraints(budget=None, lower=-5, upper=5))
    budget.fit(R, current_weights=w0)
    np.testing.assert_allclose(budget.factor_risk_contributions_, [0.5, 0.25, 0.25], atol=1e-8)
    with pytest.raises(ConfigError, match="linearly dependent"):
        FactorRiskParityBook(np.column_stack([B, B[:, 0]])).fit(R, current_weights=w0)


def test_factor_books_run_per_family(data):
    R, _, B = data
    w0 = np.full(len(B), 0.05)
    res = reoptimise_family("f", R, w0, methods={"factor_target": FactorTargetBook(B, [0.3, -0.2, 0.1], Constraints(
        budget=None, lower=-1, upper=1))}, alpha=0.95)
    np.testing.assert_allclose(B.T @ res.weights.weight_new.to_numpy(), [0.3, -0.2, 0.1], atol=1e-7)
    assert res.summary.status.iloc[0] == "optimal"


def test_nearest_by_tracking_error_leaves_a_levered_instrument_alone(data):
    """A column that is 20x another (an option's return per unit of premium): least squares in the
    weights trades the levered one, least tracking error does not prefer it."""
    R, _, B = data
    R2 = np.column_stack([R, 20 * R[:, 0]])
    B2 = np.vstack([B, 20 * B[0]])
    w0 = np.append(np.full(len(B), 0.05), 0.001)
    t = B2.T @ w0 + np.array([0.05, 0.0, 0.0])
    cs = Constraints(budget=None, lower=-1, upper=1)
    by_w = FactorTargetBook(B2, t, cs, nearest="weights").fit(R2, current_weights=w0)
    by_te = FactorTargetBook(B2, t, cs).fit(R2, current_weights=w0)
    np.testing.assert_allclose(B2.T @ by_te.weights_, t, atol=1e-7)
    d_w, d_te = by_w.weights_ - w0, by_te.weights_ - w0
    cov = np.cov(R2.T, ddof=0)
    assert d_te @ cov @ d_te < d_w @ cov @ d_w
    assert abs(d_te[-1] * 20) < abs(d_w[-1] * 20)
