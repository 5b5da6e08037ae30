"""Nearest correlation matrix (Higham 2002) and the covariance estimators, against outside references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid.scenarios import EstimatorSpec, estimate_covariance, nearest_correlation


def _min_eig(a):
    return np.linalg.eigvalsh(a).min()


def test_higham_paper_example():
    # Higham (2002), section 4: the nearest correlation matrix to [[1,1,0],[1,1,1],[0,1,1]] has
    # off-diagonals 0.7607 and 0.1573 (printed to four decimals in the paper)
    a = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    x, dist, _ = nearest_correlation(a)
    assert x[0, 1] == pytest.approx(0.7607, abs=5e-5)
    assert x[1, 2] == pytest.approx(0.7607, abs=5e-5)
    assert x[0, 2] == pytest.approx(0.1573, abs=5e-5)
    assert dist == pytest.approx(np.linalg.norm(x - a))


def test_higham_matches_convex_solver():
    # reference: the same projection problem solved by cvxpy (min ||X - A||_F, X PSD, diag X = 1)
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(7)
    n = 6
    a = rng.uniform(-1, 1, (n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 1.0)
    assert _min_eig(a) < -0.1  # really invalid
    x, _, _ = nearest_correlation(a, tol=1e-12)
    X = cp.Variable((n, n), PSD=True)
    cp.Problem(cp.Minimize(cp.norm(X - a, "fro")), [cp.diag(X) == 1]).solve(solver=cp.SCS, eps=1e-9, max_iters=200000)
    # SCS's accuracy at eps=1e-9 is about 1e-6 on entries of size one
    assert np.abs(x - X.value).max() < 2e-4
    assert _min_eig(x) >= -1e-12
    assert np.allclose(np.diag(x), 1.0, atol=0, rtol=0)
    assert np.allclose(x, x.T, atol=0)


def test_higham_identity_on_valid_matrix():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((200, 8))
    c = np.corrcoef(g, rowvar=False)
    c = (c + c.T) / 2
    np.fill_diagonal(c, 1.0)
    x, dist, it = nearest_correlation(c)
    assert np.array_equal(x, c) and dist == 0.0


def test_ledoit_wolf_is_sklearns_on_standardised_moves():
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(11)
    # mixed units: equity-like (1%) and rate-like (5bp) daily moves
    x = rng.standard_normal((120, 15)) @ rng.standard_normal((15, 15)) * np.r_[np.full(8, 0.01), np.full(7, 0.0005)]
    cov, det = estimate_covariance(x, EstimatorSpec(method="ledoit_wolf"))
    sd = x.std(axis=0)
    ref, shrink = ledoit_wolf(x / sd)
    assert np.allclose(cov, ref * np.outer(sd, sd), rtol=1e-12, atol=0)
    assert det["shrinkage"] == pytest.approx(shrink)
    # variances are the sample ones (the shrinkage acts on the correlation only)
    assert np.allclose(np.diag(cov), sd ** 2, rtol=1e-12)
    # identity of the estimator: correlation = (1 - d) R + d I, R the sample correlation
    r = np.corrcoef(x, rowvar=False)
    assert np.allclose(cov / np.outer(sd, sd), (1 - shrink) * r + shrink * np.eye(15), rtol=1e-10, atol=1e-12)


def test_ewma_matches_pandas():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 3))
    cov, _ = estimate_covariance(x, EstimatorSpec(method="ewma", lam=0.94))
    ref = pd.DataFrame(x).ewm(alpha=1 - 0.94, adjust=True).cov(bias=True).loc[299].to_numpy()
    assert np.allclose(cov, ref, rtol=1e-10)


def test_estimator_from_name():
    assert EstimatorSpec.model_validate("ewma").method == "ewma"


@pytest.mark.parametrize("method", ["denoised", "hierarchical"])
def test_filtered_estimators_are_valid_and_keep_vols(method):
    rng = np.random.default_rng(2)
    # one common factor plus noise: correlations about 0.5
    f = rng.standard_normal((400, 1))
    x = (f + rng.standard_normal((400, 20))) * np.linspace(0.01, 0.03, 20)
    cov, _ = estimate_covariance(x, EstimatorSpec(method=method))
    sd = np.sqrt(np.diag(cov))
    assert np.allclose(sd, x.std(axis=0, ddof=1), rtol=1e-10)
    c = cov / sd[:, None] / sd[None, :]
    assert _min_eig(c) >= -1e-10
    # the population correlation is 0.5 off the diagonal: filtering must not move further from it
    pop = np.full((20, 20), 0.5)
    np.fill_diagonal(pop, 1.0)
    sample = np.corrcoef(x, rowvar=False)
    assert np.linalg.norm(c - pop) <= np.linalg.norm(sample - pop)
