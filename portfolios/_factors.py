"""Factor exposures by Lasso regression, and an allocation that targets factor exposures.

:class:`FactorExposureModel` regresses each asset's returns on the factor returns with an L1 penalty
(Tibshirani, "Regression shrinkage and selection via the lasso", JRSS B 58 (1996); scikit-learn's
``Lasso``, objective ``1/(2T) |r - a - F b|^2 + lambda |b|_1``), which keeps each asset's loadings on the
few factors that explain it.

:class:`FactorTargeting` finds weights whose exposures ``B^T w`` come closest (least squares) to target
exposures under weight bounds and the desk constraints; when the target is reachable it is hit exactly,
and among the weights that reach the closest exposures it picks the one nearest the current book (or
the smallest book).  The four allocation cases of a Lasso factor-exposure study - target exposures with
weights in [-100%, 100%], long-only, long-only with illiquid assets excluded, and equal exposure to every
factor with weights in [-50%, 50%] - are this problem with different bounds (``docs/portfolios.md``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import cvxpy as cp
import numpy as np
from sklearn.linear_model import Lasso, LassoCV

from stressgrid.core.errors import ConfigError, InfeasibleError

from ._constraints import Constraints, compile_constraints
from ._diagnose import diagnose_infeasibility
from ._validate import check_returns

__all__ = ["FactorExposureModel", "FactorTargeting"]


class FactorExposureModel:
    """Loadings of assets on factors by Lasso regression (one regression per asset).

    Parameters
    ----------
    alpha : the penalty ``lambda`` (on returns in their own units), or ``"cv"`` to choose it per asset
        by cross-validation over ``cv`` (a number of contiguous folds, or a scikit-learn splitter such as
        ``TimeSeriesSplit``, which validates each fold on later data only).
    method : ``"lasso"`` (default), ``"ridge"`` (scikit-learn's ``Ridge``, objective
        ``|r - a - F b|^2 + lambda |b|^2`` on the standardised factors; with ``"cv"``, the ``lambda / T`` of
        26 log-spaced values in ``[1e-4, 10]`` with the least mean squared validation error) or ``"ols"`` (least squares, no penalty, with standard errors and
        t-statistics).
    fit_intercept : estimate an intercept per asset.
    positive : constrain loadings to be >= 0.
    standardize : fit on factors scaled to unit variance (so one penalty suits factors of different
        scales, e.g. equity returns and yield changes), then express the loadings per unit of the raw
        factor (default True).

    Attributes
    ----------
    loadings_ : ``[N, K]``.  intercept_ : ``[N]``.  r2_ : ``[N]`` in-sample R^2.  alpha_ : ``[N]`` penalties.
    std_errors_, t_stats_ : ``[N, K]`` for ``method="ols"`` (homoskedastic standard errors,
        ``s^2 (X'X)^-1`` with ``s^2`` the residual variance on ``T - K - 1`` degrees of freedom); NaN for
        the penalised methods, whose sampling distribution has no such closed form.
    """

    def __init__(self, alpha: float | str = 1e-4, fit_intercept: bool = True, positive: bool = False,
                 standardize: bool = True, cv=5, max_iter: int = 100_000, tol: float = 1e-10,
                 method: str = "lasso"):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.positive = positive
        self.standardize = standardize
        self.cv = cv
        self.max_iter = max_iter
        self.tol = tol
        self.method = method

    def fit(self, asset_returns, factor_returns, asset_names: Sequence[str] | None = None,
            factor_names: Sequence[str] | None = None) -> "FactorExposureModel":
        """Fit on aligned histories ``asset_returns [T, N]`` and ``factor_returns [T, K]``."""
        Y = check_returns(asset_returns, "asset_returns")
        X = check_returns(factor_returns, "factor_returns")
        if X.shape[0] != Y.shape[0]:
            raise ConfigError(
                f"factor_returns: needs one row per row of asset_returns ({Y.shape[0]}) (got {X.shape[0]})"
            )
        T, n = Y.shape
        k = X.shape[1]
        if self.method not in ("lasso", "ridge", "ols"):
            raise ConfigError(f"method: expected lasso, ridge or ols (got {self.method!r})")
        if isinstance(self.alpha, str):
            if self.alpha != "cv":
                raise ConfigError(f"alpha: expected a number >= 0 or 'cv' (got {self.alpha!r})")
        elif not np.isfinite(float(self.alpha)) or float(self.alpha) < 0:
            raise ConfigError(f"alpha: expected a number >= 0 or 'cv' (got {self.alpha!r})")
        B = np.zeros((n, k))
        a = np.zeros(n)
        lam = np.zeros(n)
        se = np.full((n, k), np.nan)
        X_raw = X
        if self.method == "ols":
            B, a, se = _ols(Y, X, self.fit_intercept)
        else:
            if self.standardize:
                sd = X.std(axis=0)
                if np.any(sd == 0):
                    j = int(np.flatnonzero(sd == 0)[0])
                    raise ConfigError(f"factor_returns[:, {j}]: a constant factor cannot be standardised (got sd 0)")
                X = X / sd
            if self.method == "ridge":
                B, a, lam = self._ridge(X, Y)
            elif self.alpha == "cv":
                for i in range(n):
                    # precompute=False: coordinate descent on X itself.  With the Gram matrix (sklearn's
                    # 'auto' for T > K) the path re-validates the Gram at each of its 100 penalties, which
                    # took 60% of the fit; the optimum is the same
                    m = LassoCV(cv=self.cv, fit_intercept=self.fit_intercept, positive=self.positive,
                                max_iter=self.max_iter, tol=self.tol, precompute=False).fit(X, Y[:, i])
                    B[i], a[i], lam[i] = m.coef_, m.intercept_, m.alpha_
            else:
                m = Lasso(alpha=float(self.alpha), fit_intercept=self.fit_intercept, positive=self.positive,
                          max_iter=self.max_iter, tol=self.tol).fit(X, Y)
                B = np.atleast_2d(m.coef_).reshape(n, k)
                a = np.atleast_1d(m.intercept_) * np.ones(n)
                lam[:] = float(self.alpha)
            if self.standardize:
                B = B / sd          # the intercept is unchanged: only the scale of X changed
        self.std_errors_ = se
        self.t_stats_ = np.where(se > 0, B / np.where(se > 0, se, 1.0), np.nan)
        X = X_raw
        fitted = X @ B.T + a
        ss_res = ((Y - fitted) ** 2).sum(axis=0)
        ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
        self.loadings_ = B
        self.intercept_ = a
        self.alpha_ = lam
        self.r2_ = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
        self.asset_names_ = None if asset_names is None else list(asset_names)
        self.factor_names_ = [f"factor_{j}" for j in range(k)] if factor_names is None else list(factor_names)
        return self

    def _ridge(self, X: np.ndarray, Y: np.ndarray):
        from sklearn.linear_model import Ridge

        T, n = Y.shape
        lam = np.full(n, float(self.alpha)) if self.alpha != "cv" else _ridge_cv(X, Y, self.cv, self.fit_intercept)
        m = Ridge(alpha=lam, fit_intercept=self.fit_intercept).fit(X, Y)
        return np.atleast_2d(m.coef_).reshape(n, X.shape[1]), np.atleast_1d(m.intercept_) * np.ones(n), lam

    def predict(self, factor_returns) -> np.ndarray:
        """Asset returns ``[T, N]`` implied by factor returns ``[T, K]``."""
        X = check_returns(factor_returns, "factor_returns")
        return X @ self.loadings_.T + self.intercept_


#: the ridge penalties cross-validated, as multiples of the number of observations
RIDGE_GRID = np.logspace(-4, 1, 26)


def _ridge_cv(X: np.ndarray, Y: np.ndarray, cv, intercept: bool) -> np.ndarray:
    """Per column of ``Y``, the ridge penalty of :data:`RIDGE_GRID` (times ``T``) with the least mean squared
    error over the validation folds of ``cv`` (a number of contiguous folds or a splitter); each fold's
    fits for every penalty and column come from one SVD of its training rows."""
    from sklearn.model_selection import KFold, check_cv

    T = X.shape[0]
    folds = check_cv(KFold(int(cv)) if isinstance(cv, int) else cv).split(X)
    grid = T * RIDGE_GRID
    err = np.zeros((len(grid), Y.shape[1]))
    for tr, te in folds:
        xm = X[tr].mean(axis=0) if intercept else np.zeros(X.shape[1])
        ym = Y[tr].mean(axis=0) if intercept else np.zeros(Y.shape[1])
        U, s, Vt = np.linalg.svd(X[tr] - xm, full_matrices=False)
        UtY = U.T @ (Y[tr] - ym)                           # [K, N]
        Xte = (X[te] - xm) @ Vt.T                          # [T_te, K]
        for j, a in enumerate(grid):
            pred = Xte @ ((s / (s * s + a))[:, None] * UtY) + ym
            err[j] += ((Y[te] - pred) ** 2).mean(axis=0)
    return grid[np.argmin(err, axis=0)]


def _ols(Y: np.ndarray, X: np.ndarray, intercept: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares loadings ``[N, K]``, intercepts ``[N]`` and homoskedastic standard errors ``[N, K]``."""
    T, k = X.shape
    D = np.column_stack([np.ones(T), X]) if intercept else X
    coef, *_ = np.linalg.lstsq(D, Y, rcond=None)       # [K(+1), N]
    dof = T - D.shape[1]
    if dof <= 0:
        raise ConfigError(f"factor_returns: least squares needs more observations than factors (got {T} for {k})")
    resid = Y - D @ coef
    s2 = (resid ** 2).sum(axis=0) / dof               # [N]
    inv = np.linalg.pinv(D.T @ D)
    var = np.outer(s2, np.diag(inv))                  # [N, K(+1)]
    j = 1 if intercept else 0
    B = coef[j:].T
    a = coef[0] if intercept else np.zeros(Y.shape[1])
    return B, a, np.sqrt(var[:, j:])


class FactorTargeting:
    """Weights whose factor exposures come closest to a target, under weight bounds and constraints.

    Stage 1: ``e* = argmin |B^T w - target|_2^2`` over the constraint set (unique in exposure space);
    stage 2: ``min |G (w - w_ref)|_2^2`` subject to ``B^T w = e*`` and the constraints, with ``w_ref`` the
    current book (or zero) and ``G`` the identity or a given ``distance`` matrix.  Both are QPs in cvxpy (CLARABEL), built once per shape with the target and
    the current book as parameters.

    Parameters
    ----------
    target_exposures : ``[K]`` target of ``B^T w``.
    constraints : :class:`portfolios.Constraints` (default here: no budget, weights in [-1, 1]).
    exclude : indices of assets held at zero (illiquid or excluded names).
    tolerance : a band ``|B^T w - target|_inf <= tolerance`` counts as on target.  When stage 1 reaches the
        band, stage 2 is the book nearest the reference inside the band (less trading than pinning the
        exposures); when it does not, stage 2 pins the closest exposures as above.
    distance : ``G [M, N]``, the metric of "nearest" in stage 2 (default the identity: least squares in the
        weights); e.g. the Cholesky factor of a covariance, for the least tracking error.

    Attributes
    ----------
    weights_ : ``[N]``.  exposures_ : ``B^T weights_``.  exposure_error_ : ``|exposures_ - target|_2``.
    hit_ : whether the target is reached (every exposure within ``tolerance``, plus 1e-7).
    status_ : ``"optimal"``.
    """

    def __init__(self, target_exposures, constraints: Constraints | None = None,
                 exclude: Sequence[int] | None = None, solver: str | None = None, tolerance: float = 0.0,
                 distance=None):
        self.target_exposures = target_exposures
        self.constraints = constraints
        self.exclude = exclude
        self.solver = solver
        self.tolerance = tolerance
        self.distance = distance
        self._built = None

    def _constraints(self, n: int) -> Constraints:
        cs = self.constraints if self.constraints is not None else Constraints(budget=None, lower=-1.0, upper=1.0)
        if self.exclude is not None and len(self.exclude):
            ex = np.asarray(self.exclude)
            if not np.issubdtype(ex.dtype, np.integer) or np.any((ex < 0) | (ex >= n)):
                raise ConfigError(f"exclude: expected position indices in 0..{n - 1} (got {self.exclude!r})")
            lo = np.broadcast_to(np.asarray(cs.lower, float), (n,)).copy()
            hi = np.broadcast_to(np.asarray(cs.upper, float), (n,)).copy()
            lo[ex] = 0.0
            hi[ex] = 0.0
            cs = replace(cs, lower=lo, upper=hi)
        return cs

    def fit(self, loadings, current_weights=None) -> "FactorTargeting":
        """Allocate for loadings ``B [N, K]`` (e.g. ``FactorExposureModel().fit(...).loadings_``)."""
        B = np.asarray(loadings, float)
        if B.ndim != 2 or not np.all(np.isfinite(B)):
            raise ConfigError(f"loadings: expected a finite [N, K] array (got shape {B.shape})")
        n, k = B.shape
        t = np.asarray(self.target_exposures, float)
        if t.shape != (k,) or not np.all(np.isfinite(t)):
            raise ConfigError(f"target_exposures: expected {k} finite numbers, one per factor (got {self.target_exposures!r})")
        cs = self._constraints(n)
        system = compile_constraints(cs, n, current_weights)
        G = None if self.distance is None else np.asarray(self.distance, float)
        if G is not None and (G.ndim != 2 or G.shape[1] != n or not np.all(np.isfinite(G))):
            raise ConfigError(f"distance: expected a finite [M, {n}] matrix (got shape {G.shape})")
        key = (n, k, system.A.shape, system.n_x, None if G is None else G.shape)
        if self._built is None or self._built[0] != key:
            self._built = (key, _TargetingProblem(system, k, None if G is None else G.shape[0]))
        P = self._built[1]
        P.load(system, B, t, G)
        solver = self.solver or "CLARABEL"
        opts = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12} if solver == "CLARABEL" else {}
        _solve(P.stage1, solver, opts)
        if P.stage1.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            diag = diagnose_infeasibility(cs, n, current_weights)
            raise InfeasibleError(
                diag.message if not diag.feasible else f"factor targeting: the solver failed (status {P.stage1.status})"
            )
        tol = float(self.tolerance)
        if not np.isfinite(tol) or tol < 0:
            raise ConfigError(f"tolerance: expected a number >= 0 (got {self.tolerance!r})")
        w1 = np.asarray(P.x.value[:n], float)
        in_band = tol > 0 and float(np.max(np.abs(B.T @ w1 - t))) <= tol + 1e-9
        stage2 = P.stage2_band if in_band else P.stage2
        P.e.value = B.T @ w1
        P.tol.value = tol
        _solve(stage2, solver, opts)
        ok = stage2.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and P.x.value is not None
        self.weights_ = np.asarray(P.x.value[:n], float) if ok else w1
        self.exposures_ = B.T @ self.weights_
        self.exposure_error_ = float(np.linalg.norm(self.exposures_ - t))
        self.hit_ = float(np.max(np.abs(self.exposures_ - t))) <= tol + 1e-7
        self.status_ = "optimal"
        return self


def _solve(problem: cp.Problem, solver: str, opts: dict) -> None:
    """Solve at the tight tolerances ``opts``; where the solver cannot certify them (status
    optimal_inaccurate), solve again at 1e-9, which it certifies."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        problem.solve(solver=solver, **opts)
        if problem.status == cp.OPTIMAL_INACCURATE and opts:
            problem.solve(solver=solver, **{k: max(v, 1e-9) for k, v in opts.items()})


class _TargetingProblem:
    """The two QPs of :class:`FactorTargeting`, with loadings, target, current book and bounds as parameters."""

    def __init__(self, system, k: int, m: int | None = None):
        n = system.n
        self.x = cp.Variable(system.n_x)
        w = self.x[:n]
        self.G = None if m is None else cp.Parameter((m, n))
        self.Gref = None if m is None else cp.Parameter(m)  # G w_ref, a parameter of its own (DPP)
        self.B = cp.Parameter((n, k))
        self.t = cp.Parameter(k)
        self.e = cp.Parameter(k)
        self.wref = cp.Parameter(n)
        self.tol = cp.Parameter(nonneg=True)
        self.idx = {}
        self.par = {}
        cons = []
        for name in ("row_lo", "row_hi", "col_lo", "col_hi"):
            idx = np.flatnonzero(np.isfinite(getattr(system, name)))
            self.idx[name] = idx
            self.par[name] = cp.Parameter(len(idx))
            if not len(idx):
                continue
            expr = system.A[idx] @ self.x if name.startswith("row") else self.x[idx]
            cons.append(expr >= self.par[name] if name.endswith("lo") else expr <= self.par[name])
        expo = self.B.T @ w
        self.stage1 = cp.Problem(cp.Minimize(cp.sum_squares(expo - self.t)), cons)
        near = cp.sum_squares(w - self.wref) if self.G is None else cp.sum_squares(self.G @ w - self.Gref)
        self.stage2 = cp.Problem(cp.Minimize(near), cons + [expo == self.e])
        self.stage2_band = cp.Problem(cp.Minimize(near), cons + [cp.abs(expo - self.t) <= self.tol])

    def load(self, system, B, t, G=None) -> None:
        self.B.value = B
        self.t.value = t
        self.wref.value = np.zeros(system.n) if system.current is None else system.current
        if self.G is not None:
            self.G.value = G
            self.Gref.value = G @ self.wref.value
        for name, idx in self.idx.items():
            self.par[name].value = getattr(system, name)[idx]
