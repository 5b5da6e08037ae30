"""Factor targeting and factor risk parity on a long-short book, with the ``fit(returns, sample_weight,
current_weights)`` interface of the other optimisers, so :func:`portfolios.reoptimise_family` (and the
batch's ``optimise:`` section) can run them per scenario family.

* :class:`FactorTargetBook`: the book nearest the current one whose factor exposures ``B^T w`` are within
  ``tolerance`` of a target (:class:`FactorTargeting`); when the desk constraints do not allow it, the
  closest exposures, with status ``target_missed`` and the constraint families that bind.  "Nearest" is
  the least tracking error against the current book on the family's scenarios, ``(w - w0)' S (w - w0)``
  with ``S = Sigma + 0.01 diag(Sigma) + 0.001 mean(diag(Sigma)) I`` (the small terms make the choice
  unique where the scenarios do not: a family with fewer scenarios than positions, a position that does
  not move, such as one on a factor held flat, costs a thousandth of the average position variance to
  trade), or least squares in the weights (``nearest="weights"``).  Weights in the tracking-error sense
  matter for options: an option's weight is its premium, so its loadings per unit weight are levered,
  and the least change in weights would trade options first.
* :class:`FactorRiskParityBook`: risk budgeting over the factors of the book's systematic risk (Roncalli
  and Weisang, "Risk parity portfolios with risk factors", Quantitative Finance 16(3), 2016).  In each
  scenario the factor returns are the cross-sectional regression of the positions' returns on their
  loadings, ``f_s = (B^T B)^-1 B^T r_s``, so every scenario family has them, Monte Carlo ones included;
  ``Omega`` is their covariance under the family's probabilities.  The target exposures ``y`` solve
  Spinu's risk-budgeting problem on ``Omega`` with the signs of the current book's exposures, scaled to
  the current book's systematic volatility ``sqrt(y0' Omega y0)``; the book is then the one nearest the
  current book with those exposures.  The contributions ``y_k (Omega y)_k / y' Omega y`` equal the budgets
  when the desk constraints allow the exposures, and the binding families are named when they do not.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from stressgrid.core.errors import ConfigError, InfeasibleError

from ._constraints import RELAX_HINT, Constraints, FactorBand, compile_constraints
from ._factors import FactorTargeting
from ._highs import is_feasible
from ._risk import weighted_covariance
from ._riskparity import spinu_newton
from ._validate import check_returns, check_sample_weight

__all__ = ["FactorRiskParityBook", "FactorTargetBook", "binding_families", "mimicking_factor_returns"]


def _loadings(loadings, n: int | None = None) -> np.ndarray:
    B = np.asarray(loadings, float)
    if B.ndim != 2 or not np.all(np.isfinite(B)) or (n is not None and B.shape[0] != n):
        raise ConfigError(f"loadings: expected a finite ({n if n is not None else 'N'}, K) array (got shape {B.shape})")
    return B


def mimicking_factor_returns(returns: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """Factor returns ``[S, K]`` of each scenario: the least-squares fit of the positions' returns
    ``r_s [N]`` on their loadings ``B [N, K]``, ``f_s = (B^T B)^-1 B^T r_s`` (positions the book cannot
    price carry zero loadings and drop out)."""
    B = np.asarray(loadings, float)
    return np.asarray(returns, float) @ B @ np.linalg.pinv(B.T @ B)


def binding_families(constraints: Constraints, n: int, current_weights, band: FactorBand,
                     hints: Mapping[str, str] | None = None) -> str:
    """The constraint families that keep the factor exposures out of ``band``: each family whose removal
    alone lets the exposures reach it, with what to relax; empty when none does alone."""
    cs = replace(constraints, factor=band)
    system = compile_constraints(cs, n, current_weights)
    if is_feasible(system):
        return ""
    hints = {**RELAX_HINT, **(hints or {})}
    found = [f for f in system.families if f != "factor"
             and is_feasible(compile_constraints(cs, n, current_weights, drop={f}))]
    if not found:
        return "no single constraint family does it alone; relax several"
    return "; ".join(f"{f} binds ({hints.get(f, 'relax it')})" for f in found)


def _describe(names: Sequence[str], got: np.ndarray, target: np.ndarray) -> str:
    return ", ".join(f"{k} {g:.4g} (target {t:.4g})" for k, g, t in zip(names, got, target))


class FactorTargetBook:
    """The book nearest the current one with factor exposures within ``tolerance`` of ``target``.

    Parameters
    ----------
    loadings : ``[N, K]`` exposure of each position per unit of weight.
    target : ``[K]`` target exposures.
    constraints : :class:`Constraints` (bounds, gross, groups, turnover, caps, frozen).
    tolerance : the largest distance ``|B^T w - target|_inf`` that counts as on target.
    factor_names : ``[K]`` names for messages.  hints : family -> what to relax, for messages.
    nearest : ``"tracking_error"`` (default) or ``"weights"`` (module docstring).

    Attributes
    ----------
    weights_, factor_exposures_ (``B^T w``), factor_target_, status_ (``optimal`` or ``target_missed``),
    diagnosis_ (why the target was missed, naming the binding families).
    """

    def __init__(self, loadings, target, constraints: Constraints | None = None, tolerance: float = 0.0,
                 factor_names: Sequence[str] | None = None, hints: Mapping[str, str] | None = None,
                 nearest: str = "tracking_error"):
        self.loadings = loadings
        self.target = target
        self.constraints = constraints
        self.tolerance = tolerance
        self.factor_names = factor_names
        self.hints = hints
        self.nearest = nearest

    def _distance(self, R: np.ndarray, p: np.ndarray | None) -> np.ndarray | None:
        """``G`` with ``G'G = S`` (module docstring), or None for least squares in the weights."""
        if self.nearest == "weights":
            return None
        if self.nearest != "tracking_error":
            raise ConfigError(f"nearest: expected tracking_error or weights (got {self.nearest!r})")
        cov = weighted_covariance(R, p)
        d = np.diag(cov)
        scale = max(float(d.mean()), 1e-300)
        S = (cov + np.diag(0.01 * d + 1e-3 * scale)) / scale  # scaled to order 1: the same argmin, solved well
        return np.linalg.cholesky(S).T

    def fit(self, returns, sample_weight=None, current_weights=None) -> "FactorTargetBook":
        R = check_returns(returns)
        B = _loadings(self.loadings, R.shape[1])
        t = np.asarray(self.target, float)
        names = list(self.factor_names) if self.factor_names is not None else [f"factor_{j}" for j in range(B.shape[1])]
        cs = self.constraints if self.constraints is not None else Constraints(budget=None, lower=-1.0, upper=1.0)
        p = check_sample_weight(sample_weight, R.shape[0])
        ft = FactorTargeting(t, constraints=cs, tolerance=self.tolerance, distance=self._distance(R, p)).fit(
            B, current_weights)
        self._finish(ft, B, t, names, cs, current_weights)
        return self

    def _finish(self, ft: FactorTargeting, B, t, names, cs, current_weights) -> None:
        self.weights_ = ft.weights_
        self.factor_exposures_ = ft.exposures_
        self.factor_target_ = t
        self.status_ = "optimal" if ft.hit_ else "target_missed"
        self.diagnosis_ = ""
        if not ft.hit_:
            tol = float(self.tolerance)
            why = binding_families(cs, B.shape[0], current_weights, FactorBand(B, t - tol, t + tol, names), self.hints)
            self.diagnosis_ = (f"target exposures not reachable within {tol:g}: closest {_describe(names, ft.exposures_, t)}"
                               + (f"; {why}" if why else ""))


class FactorRiskParityBook(FactorTargetBook):
    """Risk budgeting over factors of the book's systematic risk (module docstring).

    Parameters
    ----------
    loadings : ``[N, K]``, of full column rank.
    risk_budget : ``[K]`` relative budgets (default equal).
    constraints, factor_names, hints, nearest : as :class:`FactorTargetBook`.

    Attributes
    ----------
    weights_, factor_exposures_, factor_target_ (the risk-budgeting exposures), factor_risk_budget_,
    factor_risk_contributions_ (``y_k (Omega y)_k / y' Omega y`` at the new book), factor_covariance_,
    status_ (``optimal``, or ``constrained`` when the desk constraints keep the exposures from the
    target), diagnosis_.
    """

    def __init__(self, loadings, risk_budget=None, constraints: Constraints | None = None,
                 factor_names: Sequence[str] | None = None, hints: Mapping[str, str] | None = None,
                 nearest: str = "tracking_error"):
        super().__init__(loadings, None, constraints, 0.0, factor_names, hints, nearest)
        self.risk_budget = risk_budget

    def fit(self, returns, sample_weight=None, current_weights=None) -> "FactorRiskParityBook":
        R = check_returns(returns)
        S, n = R.shape
        p = check_sample_weight(sample_weight, S)
        B = _loadings(self.loadings, n)
        k = B.shape[1]
        names = list(self.factor_names) if self.factor_names is not None else [f"factor_{j}" for j in range(k)]
        if np.linalg.matrix_rank(B) < k:
            raise ConfigError(f"loadings: the factors {', '.join(names)} are linearly dependent on the book's positions "
                              f"(rank {np.linalg.matrix_rank(B)} < {k}); drop a factor")
        b = np.ones(k) if self.risk_budget is None else np.asarray(self.risk_budget, float)
        if b.shape != (k,) or not np.all(np.isfinite(b)) or np.any(b <= 0):
            raise ConfigError(f"risk_budget: expected {k} positive numbers, one per factor (got {self.risk_budget!r})")
        b = b / b.sum()
        w0 = np.zeros(n) if current_weights is None else np.asarray(current_weights, float)
        omega = weighted_covariance(mimicking_factor_returns(R, B), p)
        y0 = B.T @ w0
        v0 = float(y0 @ omega @ y0)
        if not v0 > 0:
            raise InfeasibleError("factor risk parity: the current book has no systematic risk on these factors to "
                                  "re-budget")
        if np.any(np.diag(omega) <= 0):
            j = int(np.flatnonzero(np.diag(omega) <= 0)[0])
            raise InfeasibleError(f"factor risk parity: factor {names[j]} does not move in this family's scenarios")
        s = np.where(y0 < 0, -1.0, 1.0)
        y, _ = spinu_newton(omega * np.outer(s, s), b)
        y = s * y
        y *= np.sqrt(v0 / float(y @ omega @ y))
        cs = self.constraints if self.constraints is not None else Constraints(budget=None, lower=-1.0, upper=1.0)
        ft = FactorTargeting(y, constraints=cs, distance=self._distance(R, p)).fit(B, w0)
        self._finish(ft, B, y, names, cs, w0)
        ye = ft.exposures_
        v = float(ye @ omega @ ye)
        self.factor_covariance_ = omega
        self.factor_risk_budget_ = b
        self.factor_risk_contributions_ = ye * (omega @ ye) / v if v > 0 else np.full(k, np.nan)
        if self.status_ != "optimal":
            self.status_ = "constrained"
            gap = float(np.max(np.abs(self.factor_risk_contributions_ - b)))
            self.diagnosis_ = self.diagnosis_.replace("target exposures not reachable within 0",
                                                      "the risk-budgeting exposures are not reachable") + \
                f"; contributions differ from the budgets by up to {gap:.2%}"
        return self
