"""Portfolios built from a covariance forecast: global minimum variance, long-only minimum variance and
long-only equal risk contribution (risk parity).

References
----------
.. [M52] H. Markowitz, "Portfolio selection", Journal of Finance 7 (1952) 77-91; the global minimum
   variance portfolio ``w = S^-1 1 / (1' S^-1 1)`` (e.g. Ledoit and Wolf, "Honey, I shrunk the sample
   covariance matrix", J. Portfolio Management 30 (2004), section 4, use its out-of-sample variance to
   compare covariance estimators).
.. [MRT10] S. Maillard, T. Roncalli and J. Teiletche, "The properties of equally weighted risk
   contribution portfolios", J. Portfolio Management 36 (2010) 60-70: risk contributions
   ``w_i (S w)_i`` all equal; for two assets, and for uncorrelated assets, ``w_i ~ 1 / sigma_i``.
.. [S13] F. Spinu, "An algorithm for computing risk parity weights", SSRN 2297383 (2013): ``y`` minimising
   ``y' S y / 2 - sum_i b_i ln y_i`` over ``y > 0`` gives the budgeted portfolio ``w = y / sum(y)``
   (strictly convex; solved here by damped Newton steps).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stressgrid.core import InfeasibleError

__all__ = ["PORTFOLIO_METHODS", "gmv_weights", "min_variance_weights", "risk_parity_weights", "portfolio_weights"]

#: long-only portfolio methods of the rebalancing backtest
PORTFOLIO_METHODS = ("min_variance", "risk_parity")


def _normalised(cov: np.ndarray) -> np.ndarray:
    """``cov`` divided by its mean variance (weights do not depend on the scale; solvers like O(1))."""
    cov = np.asarray(cov, dtype=float)
    cov = (cov + cov.T) / 2.0
    s = float(np.mean(np.diag(cov)))
    if not np.isfinite(s) or s <= 0:
        raise InfeasibleError("portfolio weights: the covariance has no positive variance; give returns that move")
    return cov / s


def gmv_weights(cov: np.ndarray) -> np.ndarray:
    """Global minimum variance weights ``S^-1 1 / (1' S^-1 1)`` [M52] (shorts allowed), ``[K]``.

    A singular ``S`` is handled by its pseudo-inverse (the minimum-norm solution)."""
    s = _normalised(cov)
    ones = np.ones(len(s))
    try:
        x = np.linalg.solve(s, ones)
        if not np.all(np.isfinite(x)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        x = np.linalg.pinv(s, hermitian=True) @ ones
    return x / x.sum()


@lru_cache(maxsize=32)
def _min_var_problem(k: int):
    """A long-only minimum variance problem on ``k`` assets, built once per size (cvxpy parameters:
    the covariance factor ``F`` with ``F' F = S``)."""
    import cvxpy as cp

    f = cp.Parameter((k, k))
    w = cp.Variable(k)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(f @ w)), [cp.sum(w) == 1, w >= 0])
    return prob, f, w


def min_variance_weights(cov: np.ndarray) -> np.ndarray:
    """Long-only, fully invested minimum variance weights ``[K]`` (cvxpy; the problem is built once per
    size and re-solved with a new covariance factor).

    Raises
    ------
    InfeasibleError
        If the solver fails (say which covariance: a non-finite forecast).
    """
    import cvxpy as cp

    s = _normalised(cov)
    k = len(s)
    if k == 1:
        return np.ones(1)
    w_eig, v = np.linalg.eigh(s)
    factor = (v * np.sqrt(np.clip(w_eig, 0.0, None))).T  # F' F = S
    prob, f, w = _min_var_problem(k)
    f.value = factor
    try:
        prob.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        prob.solve(solver=cp.OSQP, eps_abs=1e-10, eps_rel=1e-10, max_iter=200000)
    if w.value is None or prob.status not in ("optimal", "optimal_inaccurate"):
        raise InfeasibleError(f"long-only minimum variance: the solver returned {prob.status!r}; check the covariance forecast")
    x = np.asarray(w.value, dtype=float)
    exact = _polish(s, x)
    if exact is not None:
        return exact
    x = np.where(x > 1e-9, x, 0.0)  # the interior-point solver leaves ~1e-10 on the bound
    return x / x.sum()


def _polish(s: np.ndarray, x: np.ndarray, tol: float = 1e-12) -> np.ndarray | None:
    """The exact solution from the solver's support (weights above 1e-6), by active-set steps: on a
    support ``S`` the equality-constrained optimum is ``w_S = S_SS^-1 1 / 1' S_SS^-1 1``; a non-positive
    weight leaves the support, an asset with ``(S w)_i < w' S w`` off it joins, until the KKT conditions
    of the long-only problem hold.  The result depends on the covariance alone, not on the solver's
    last digits, so it is the same in every process.  None if the steps do not settle."""
    k = len(s)
    support = x > 1e-6
    if not support.any():
        support[np.argmax(x)] = True
    for _ in range(4 * k):
        idx = np.flatnonzero(support)
        try:
            y = np.linalg.solve(s[np.ix_(idx, idx)], np.ones(len(idx)))
        except np.linalg.LinAlgError:
            return None
        if y.sum() <= 0:
            return None
        ws = y / y.sum()
        if np.any(ws <= 0):
            support[idx[np.argmin(ws)]] = False
            continue
        w = np.zeros(k)
        w[idx] = ws
        grad = s @ w
        lam = float(w @ grad)  # (S w)_i = lam on the support
        viol = ~support & (grad < lam * (1.0 - tol))
        if viol.any():
            cand = np.flatnonzero(viol)
            support[cand[np.argmin(grad[cand])]] = True
            continue
        return w
    return None


def risk_parity_weights(cov: np.ndarray, budgets: np.ndarray | None = None, tol: float = 1e-12,
                        max_iter: int = 200) -> np.ndarray:
    """Long-only risk budgeting weights ``[K]``: ``w_i (S w)_i / (w' S w) = b_i`` [MRT10], by the convex
    program of [S13] (equal budgets by default: equal risk contributions).

    Raises
    ------
    InfeasibleError
        If a variance is not positive (no finite weights exist) or Newton's method does not converge.
    """
    s = _normalised(cov)
    k = len(s)
    b = np.full(k, 1.0 / k) if budgets is None else np.asarray(budgets, dtype=float) / np.sum(budgets)
    d = np.diag(s)
    if np.any(d <= 0):
        raise InfeasibleError("risk parity: every asset needs a positive variance in the covariance forecast")
    y = np.sqrt(b / d)  # the solution for uncorrelated assets (scaled): a good start
    y = y / np.sqrt(y @ s @ y)

    def obj(z):
        return 0.5 * z @ s @ z - b @ np.log(z)

    for _ in range(max_iter):
        g = s @ y - b / y
        h = s + np.diag(b / y ** 2)
        step = np.linalg.solve(h, g)
        dec = float(g @ step)  # Newton decrement squared
        if dec / 2.0 < tol:
            break
        t = 1.0
        while np.any(y - t * step <= 0):
            t *= 0.5
        f0 = obj(y)
        while obj(y - t * step) > f0 - 0.25 * t * dec and t > 1e-12:
            t *= 0.5
        y = y - t * step
    else:
        raise InfeasibleError("risk parity: Newton's method did not converge in 200 steps; check the covariance forecast")
    return y / y.sum()


def portfolio_weights(cov: np.ndarray, method: str) -> np.ndarray:
    """Weights ``[K]`` of ``method`` (``min_variance``, ``risk_parity`` or ``gmv``) for a covariance ``[K, K]``."""
    if method == "min_variance":
        return min_variance_weights(cov)
    if method == "risk_parity":
        return risk_parity_weights(cov)
    if method == "gmv":
        return gmv_weights(cov)
    from stressgrid.core import ConfigError

    raise ConfigError(f"portfolio method {method!r}: expected one of min_variance, risk_parity, gmv")
