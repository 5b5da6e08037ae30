"""Risk parity (risk budgeting) on volatility or CVaR, on positions or on factors.

Risk budgeting with a homogeneous risk measure ``rho`` solves

``min_{y > 0} rho(y) - sum_i b_i log y_i``,   then  ``w = y / sum(y)``,

whose first-order condition ``y_i d rho / d y_i = b_i`` makes the risk contributions proportional to the
budgets ``b`` (Bruder and Roncalli, "Managing risk exposures using the risk budgeting approach", 2012;
Spinu, "An algorithm for computing risk parity weights", 2013, for the variance form; Mausser and
Romanko, "Computing equal risk contribution portfolios", IBM J. Res. Dev. 58 (2014), for CVaR).

* volatility: ``rho(y) = y' Sigma y / 2`` (Spinu's strictly convex form), solved by Newton's method to
  machine precision;
* CVaR: ``rho(y) = CVaR_a(-R y)`` in its Rockafellar-Uryasev form, solved by cvxpy (exponential cone,
  CLARABEL), the problem built once with the scenarios as parameters.

Factor risk parity (Roncalli and Weisang, "Risk parity portfolios with risk factors", Quantitative
Finance 16 (2016)) budgets risk over factor exposures ``y = B^T w`` with ``w = (B^T)^+ y``: the same
problem on the transformed returns ``R (B^T)^+``.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from stressgrid.core.errors import ConfigError, DataError, InfeasibleError
from stressgrid.core.measures import cvar_contributions, var_cvar

from ._risk import vol_contributions, weighted_covariance
from ._validate import check_alpha, check_choice, check_returns, check_sample_weight

__all__ = ["RiskParity", "FactorRiskParity", "spinu_newton"]

MEASURES = ("vol", "cvar")


def spinu_newton(cov: np.ndarray, budget: np.ndarray, tol: float = 1e-15, max_iter: int = 200) -> tuple[np.ndarray, int]:
    """Solve ``min y' cov y / 2 - b' log y`` by damped Newton (Spinu 2013); returns (y, iterations).

    At the optimum ``y_i (cov y)_i = b_i``.
    """
    b = np.asarray(budget, float)
    y = b / np.sqrt(np.maximum(np.diag(cov), 1e-300))
    y *= np.sqrt(b.sum() / max(y @ cov @ y, 1e-300))

    def f(v):
        return 0.5 * v @ cov @ v - b @ np.log(v)

    for it in range(1, max_iter + 1):
        g = cov @ y - b / y
        H = cov + np.diag(b / (y * y))
        step = np.linalg.solve(H, -g)
        dec = float(-g @ step)  # Newton decrement squared
        if dec <= tol:
            return y, it
        t = 1.0
        neg = step < 0
        if neg.any():
            t = min(1.0, 0.99 * float(np.min(-y[neg] / step[neg])))
        fy = f(y)
        while f(y + t * step) > fy - 0.25 * t * dec and t > 1e-16:
            t *= 0.5
        y = y + t * step
    return y, max_iter


def _budget(risk_budget, n: int) -> np.ndarray:
    if risk_budget is None:
        return np.full(n, 1.0 / n)
    b = np.asarray(risk_budget, float)
    if b.shape != (n,):
        raise ConfigError(f"risk_budget: expected {n} values (got shape {b.shape})")
    if not np.all(np.isfinite(b)) or np.any(b <= 0):
        i = int(np.flatnonzero(~np.isfinite(b) | (b <= 0))[0])
        raise ConfigError(f"risk_budget[{i}]: must be > 0 (got {b[i]!r})")
    return b / b.sum()


class _CVaRBudgeting:
    """``min CVaR(y) - b' log y`` in cvxpy, built once per shape with parameters."""

    def __init__(self, S: int, n: int, alpha: float, solver: str, options: dict):
        self.R = cp.Parameter((S, n))
        self.p = cp.Parameter(S, nonneg=True)
        self.b = cp.Parameter(n, nonneg=True)
        self.y = cp.Variable(n, pos=True)
        z = cp.Variable()
        u = cp.Variable(S, nonneg=True)
        cvar = z + (1.0 / (1.0 - alpha)) * (self.p @ u)
        self.problem = cp.Problem(cp.Minimize(cvar - self.b @ cp.log(self.y)), [u >= -self.R @ self.y - z])
        self.solver, self.options = solver, options

    def solve(self, R, p, b) -> np.ndarray:
        self.R.value, self.p.value, self.b.value = R, p, b
        try:
            self.problem.solve(solver=self.solver, **self.options)
        except cp.error.SolverError as exc:
            raise InfeasibleError(f"CVaR risk parity: the solver failed ({exc}); check that CVaR is positive") from None
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.y.value is None:
            raise InfeasibleError(
                f"CVaR risk parity: no solution (solver status {self.problem.status}); a portfolio of these "
                "assets must have a positive CVaR"
            )
        return np.asarray(self.y.value, float)


_TIGHT = {"CLARABEL": {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 500}}


class RiskParity:
    """Risk-parity (risk-budgeting) portfolio, long-only and fully invested.

    Parameters
    ----------
    measure : ``"vol"`` or ``"cvar"``.
    alpha : CVaR confidence level (``measure="cvar"``).
    risk_budget : ``[N]`` positive budgets (default equal: equal risk contribution).
    solver, solver_options : cvxpy solver for ``measure="cvar"`` (default CLARABEL, tight tolerances).

    Attributes
    ----------
    weights_ : ``[N]`` weights summing to 1.
    risk_ : volatility (per scenario period) or CVaR of the portfolio.
    risk_contributions_ : ``[N]`` Euler contributions to ``risk_`` (they sum to it).
    status_ : ``"optimal"``.  n_iterations_ : Newton iterations (vol).
    """

    def __init__(self, measure: str = "vol", alpha: float = 0.95, risk_budget=None,
                 solver: str | None = None, solver_options: dict | None = None):
        self.measure = measure
        self.alpha = alpha
        self.risk_budget = risk_budget
        self.solver = solver
        self.solver_options = solver_options
        self._problem = None

    def _solve_y(self, R: np.ndarray, p: np.ndarray | None, b: np.ndarray) -> np.ndarray:
        n = R.shape[1]
        if self.measure == "vol":
            cov = weighted_covariance(R, p)
            evals = np.linalg.eigvalsh(cov)
            if evals[0] <= 1e-12 * max(evals[-1], 1e-300):
                raise DataError(
                    f"returns: the covariance of the {n} columns is singular (smallest eigenvalue {evals[0]:.3g}); "
                    f"volatility parity needs more scenarios than positions and no redundant column "
                    f"(got {R.shape[0]} scenarios)"
                )
            y, self.n_iterations_ = spinu_newton(cov, b)
            return y
        alpha = check_alpha(self.alpha)
        S = R.shape[0]
        solver = self.solver or "CLARABEL"
        opts = dict(_TIGHT.get(solver, {})) if self.solver_options is None else dict(self.solver_options)
        key = (S, n, alpha, solver)
        if self._problem is None or self._problem[0] != key:
            self._problem = (key, _CVaRBudgeting(S, n, alpha, solver, opts))
        pp = np.full(S, 1.0 / S) if p is None else p
        # scale returns to O(1) for the solver; the normalised weights do not depend on it
        scale = float(np.sqrt(np.mean(R * R))) or 1.0
        y = self._problem[1].solve(R / scale, pp, b)
        self.n_iterations_ = int(self._problem[1].problem.solver_stats.num_iters or 0)
        return y

    def _finish(self, R, p, w):
        if self.measure == "vol":
            cov = weighted_covariance(R, p)
            self.risk_contributions_ = vol_contributions(cov, w)
            self.risk_ = float(np.sqrt(w @ cov @ w))
        else:
            self.risk_ = var_cvar(R @ w, self.alpha, p)[1]
            self.risk_contributions_ = cvar_contributions(R * w, self.alpha, p)
        self.weights_ = w
        self.status_ = "optimal"

    def fit(self, returns, sample_weight=None, current_weights=None) -> "RiskParity":
        """Compute the weights from scenario returns ``[S, N]`` (``current_weights`` is not used)."""
        check_choice("measure", self.measure, MEASURES)
        R = check_returns(returns)
        p = check_sample_weight(sample_weight, R.shape[0])
        b = _budget(self.risk_budget, R.shape[1])
        y = self._solve_y(R, p, b)
        self._finish(R, p, y / y.sum())
        return self


class FactorRiskParity(RiskParity):
    """Risk parity over factor exposures (Roncalli and Weisang 2016).

    With loadings ``B [N, K]`` (e.g. :class:`portfolios.FactorExposureModel`), the weights are
    ``w = (B^T)^+ y`` and the factor exposures ``y`` are chosen so that each factor contributes its
    budget of the portfolio risk; ``w`` is normalised to sum to 1.  Requires ``K <= N``.

    Parameters
    ----------
    loadings : ``[N, K]``.
    measure, alpha, solver, solver_options : as :class:`RiskParity`.
    risk_budget : ``[K]`` factor budgets (default equal).

    Attributes
    ----------
    weights_ : ``[N]``.  factor_exposures_ : ``B^T w`` ``[K]``.
    factor_risk_contributions_ : ``[K]`` contributions of the factor exposures to the risk.
    """

    def __init__(self, loadings, measure: str = "vol", alpha: float = 0.95, risk_budget=None,
                 solver: str | None = None, solver_options: dict | None = None):
        super().__init__(measure=measure, alpha=alpha, risk_budget=risk_budget, solver=solver,
                         solver_options=solver_options)
        self.loadings = loadings

    def fit(self, returns, sample_weight=None, current_weights=None) -> "FactorRiskParity":
        check_choice("measure", self.measure, MEASURES)
        R = check_returns(returns)
        p = check_sample_weight(sample_weight, R.shape[0])
        B = np.asarray(self.loadings, float)
        if B.ndim != 2 or B.shape[0] != R.shape[1] or not np.all(np.isfinite(B)):
            raise ConfigError(f"loadings: expected a finite ({R.shape[1]}, K) array (got shape {B.shape})")
        if B.shape[1] > B.shape[0]:
            raise ConfigError(f"loadings: factor risk parity needs K <= N factors (got K={B.shape[1]}, N={B.shape[0]})")
        b = _budget(self.risk_budget, B.shape[1])
        B2 = np.linalg.pinv(B.T)                 # [N, K]
        y = self._solve_y(R @ B2, p, b)
        w = B2 @ y
        total = w.sum()
        if abs(total) < 1e-12:
            raise InfeasibleError("factor risk parity: the weights sum to zero and cannot be normalised; change the factors")
        self._finish(R, p, w / total)
        y_n = y / total
        self.factor_exposures_ = B.T @ self.weights_
        if self.measure == "vol":
            cov_y = B2.T @ weighted_covariance(R, p) @ B2
            self.factor_risk_contributions_ = vol_contributions(cov_y, y_n)
        else:
            self.factor_risk_contributions_ = cvar_contributions((R @ B2) * y_n, self.alpha, p)
        return self
