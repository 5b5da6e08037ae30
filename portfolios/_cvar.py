"""Mean-CVaR optimisation on a scenario set, with desk constraints (estimator style)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stressgrid.core.errors import ConfigError, InfeasibleError

from . import _highs as hx
from ._constraints import RELAX_HINT, Constraints, LinearSystem, compile_constraints
from ._cvar_solver import CutPlaneCVaR, _Infeasible, tail
from ._diagnose import diagnose_infeasibility
from ._lp import RULinearProgram
from ._validate import check_alpha, check_choice, check_returns, check_sample_weight, check_vector

__all__ = ["MeanCVaR"]

OBJECTIVES = ("min_cvar", "max_return")
METHODS = ("cutting_plane", "lp")
FALLBACKS = (None, "current")


class MeanCVaR:
    """Mean-CVaR optimiser (Rockafellar and Uryasev 2000, 2002) on weighted scenarios.

    ``min_cvar``:    ``min_w CVaR_a(-R w) + turnover_penalty * |w - w0|_1``  subject to the constraints;
    ``max_return``:  ``max_w mu . w - turnover_penalty * |w - w0|_1``  s.t. ``CVaR_a(-R w) <= cvar_budget``.

    Parameters
    ----------
    alpha : CVaR confidence level (0.95: the mean loss of the worst 5% of probability).
    objective : ``"min_cvar"`` or ``"max_return"``.
    cvar_budget : CVaR limit for ``max_return``, in the units of the returns (fraction of NAV).
    constraints : :class:`portfolios.Constraints` (default: fully invested, long-only).
    method : ``"cutting_plane"`` (default; exact, for any number of scenarios, warm-started across
        fits) or ``"lp"`` (the full LP through cvxpy, built once with parameters).
    solver : cvxpy solver for ``method="lp"`` (default CLARABEL); ``solver_options`` go with it.
    fallback : None (raise :class:`core.errors.InfeasibleError` when infeasible) or ``"current"`` (keep
        the current book, ``status_ == "fallback"``, the diagnosis in ``diagnosis_``).
    tol : relative optimality tolerance of the cutting-plane certificate.

    Attributes (after ``fit``)
    --------------------------
    weights_ : ``[N]`` optimal weights.
    cvar_, var_ : CVaR and VaR of the loss at ``alpha`` (recomputed from ``weights_``).
    expected_return_ : ``mu . weights_``.
    objective_value_ : the optimised objective (CVaR + penalty, or return - penalty).
    bound_ : the solver's certificate (a lower bound for min_cvar, an upper bound for max_return).
    turnover_ : ``sum |weights_ - current|`` (None without a current book).
    status_ : ``"optimal"``, or ``"fallback"``.
    diagnosis_ : None, or why the problem is infeasible and what to relax.
    n_iterations_ : cutting-plane iterations plus aggregation rounds (``method="cutting_plane"``).
    """

    def __init__(
        self,
        alpha: float = 0.95,
        objective: str = "min_cvar",
        cvar_budget: float | None = None,
        constraints: Constraints | None = None,
        method: str = "cutting_plane",
        solver: str | None = None,
        solver_options: dict | None = None,
        fallback: str | None = None,
        tol: float = 1e-9,
    ):
        self.alpha = alpha
        self.objective = objective
        self.cvar_budget = cvar_budget
        self.constraints = constraints
        self.method = method
        self.solver = solver
        self.solver_options = solver_options
        self.fallback = fallback
        self.tol = tol
        self._cache: dict = {}

    # ------------------------------------------------------------------ internals
    def _check(self) -> float:
        alpha = check_alpha(self.alpha)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("method", self.method, METHODS)
        check_choice("fallback", self.fallback, FALLBACKS)
        if self.objective == "max_return":
            if self.cvar_budget is None:
                raise ConfigError("cvar_budget: required when objective='max_return' (got None)")
            if not np.isfinite(float(self.cvar_budget)):
                raise ConfigError(f"cvar_budget: must be finite (got {self.cvar_budget!r})")
        return alpha

    def _system(self, n: int, current: np.ndarray | None) -> LinearSystem:
        return compile_constraints(self.constraints, n, current)

    def _solver(self, system: LinearSystem, alpha: float) -> CutPlaneCVaR:
        key = ("cp", id(self.constraints), system.n, alpha)
        solver = self._cache.get(key)
        if solver is None:
            solver = CutPlaneCVaR(system, alpha, tol=self.tol)
            self._cache.clear()
            self._cache[key] = solver
        else:
            solver.system = system
        return solver

    def _lp(self, system: LinearSystem, alpha: float, S: int) -> RULinearProgram:
        key = ("lp", id(self.constraints), system.n, alpha, self.objective, system.A.shape, system.n_x)
        lp = self._cache.get(key)
        if lp is None or lp.capacity < S:
            lp = RULinearProgram(system, alpha, S, self.objective, self.solver, self.solver_options)
            self._cache.clear()
            self._cache[key] = lp
        else:
            lp.set_system(system)
        return lp

    def _infeasible(self, system, n, current, status, R=None, p=None, alpha=None):
        """Diagnose; raise, or fall back to the current book."""
        if status == "unbounded":
            raise ConfigError(
                "constraints: the problem is unbounded (no limit on the weights); set lower/upper bounds or max_gross"
            )
        diag = diagnose_infeasibility(self.constraints, n, current)
        if diag.feasible:
            # the constraints hold together; only the CVaR budget can bind
            msg = self._budget_message(system, R, p, alpha)
            binding = ("cvar_budget",)
        else:
            msg, binding = diag.message, diag.binding
        self.diagnosis_ = msg
        self.binding_ = binding
        if self.fallback == "current" and current is not None:
            self.status_ = "fallback"
            self._set_result(current, R, p, alpha, system, bound=np.nan, n_it=0)
            return
        raise InfeasibleError(msg)

    def _budget_message(self, system, R, p, alpha) -> str:
        try:
            sol = CutPlaneCVaR(system, alpha, tol=self.tol).solve(R, p)
            return (
                f"infeasible: cvar_budget {self.cvar_budget!r} is below the lowest CVaR reachable under the "
                f"constraints ({sol.cvar:.6g}); {RELAX_HINT['cvar_budget']} to at least that"
            )
        except _Infeasible:
            return f"infeasible: cvar_budget {self.cvar_budget!r} cannot be met; {RELAX_HINT['cvar_budget']}"

    def _set_result(self, w, R, p, alpha, system, bound, n_it, mu=None):
        w = np.asarray(w, dtype=float)
        var, cvar, _ = tail(-(R @ w), p, alpha)
        mean = (R.mean(axis=0) if p is None else p @ R) if mu is None else mu
        self.weights_ = w
        self.cvar_ = cvar
        self.var_ = var
        self.expected_return_ = float(mean @ w)
        penalty = float(system.cost @ system.complete(w))
        self.objective_value_ = cvar + penalty if self.objective == "min_cvar" else self.expected_return_ - penalty
        self.bound_ = bound
        self.turnover_ = None if system.current is None else float(np.abs(w - system.current).sum())
        self.n_iterations_ = n_it

    # ------------------------------------------------------------------ public
    def fit(self, returns, sample_weight=None, current_weights=None, expected_returns=None) -> "MeanCVaR":
        """Optimise on one scenario set.

        Parameters
        ----------
        returns : ``[S, N]`` scenario return per unit of weight (P&L of weight 1 as a fraction of NAV).
        sample_weight : ``[S]`` scenario probabilities (default equal).
        current_weights : ``[N]`` the current book (turnover, trade caps, frozen positions, fallback).
        expected_returns : ``[N]`` for ``max_return`` (default: the probability-weighted scenario mean).

        Raises
        ------
        ConfigError for bad input; InfeasibleError when infeasible and ``fallback`` is None.
        """
        alpha = self._check()
        R = check_returns(returns)
        S, n = R.shape
        p = check_sample_weight(sample_weight, S)
        system = self._system(n, current_weights)
        current = system.current
        mu = None if expected_returns is None else check_vector("expected_returns", expected_returns, n)
        self.status_ = "optimal"
        self.diagnosis_ = None
        self.binding_ = ()
        self.method_ = self.method
        if self.method == "lp":
            lp = self._lp(system, alpha, S)
            status, x, value = lp.solve(R, p, expected_returns=mu, cvar_budget=self.cvar_budget)
            if x is None:
                if "infeasible" in str(status) or "unbounded" in str(status):
                    if str(status).startswith("unbounded"):
                        st = "unbounded"
                    elif str(status).startswith("infeasible_or_unbounded"):
                        st = "infeasible" if not hx.is_feasible(system) or self.objective == "max_return" else "unbounded"
                    else:
                        st = "infeasible"
                    return self._infeasible_or_self(system, n, current, st, R, p, alpha)
                return self._failed(current, R, p, alpha, system,
                                    f"the LP solver failed (status {status}); retry with method='cutting_plane'")
            self._set_result(x[:n], R, p, alpha, system, bound=value, n_it=0, mu=mu)
            return self
        solver = self._solver(system, alpha)
        try:
            sol = solver.solve(
                R, p, objective=self.objective, cvar_budget=self.cvar_budget, expected_returns=mu,
                start=current,
            )
        except _Infeasible as exc:
            return self._infeasible_or_self(system, n, current, exc.status, R, p, alpha)
        if sol.status != "optimal":
            return self._failed(current, R, p, alpha, system,
                                f"the solver stopped before the optimum ({sol.status} after {sol.n_rounds} "
                                f"aggregation rounds); retry with method='lp' or a looser tol")
        self._set_result(sol.weights, R, p, alpha, system, bound=sol.bound, n_it=sol.n_cuts + sol.n_rounds, mu=mu)
        self.n_groups_ = sol.n_groups
        self._groups = sol.groups
        return self

    def _failed(self, current, R, p, alpha, system, msg):
        """A solve that did not reach the optimum: raise, or fall back to the current book."""
        self.diagnosis_ = msg
        if self.fallback == "current" and current is not None:
            self.status_ = "fallback"
            self._set_result(current, R, p, alpha, system, bound=np.nan, n_it=0)
            return self
        raise InfeasibleError(msg)

    def _infeasible_or_self(self, system, n, current, status, R, p, alpha):
        self._infeasible(system, n, current, status, R, p, alpha)
        return self

    def frontier(self, returns, n_points: int = 10, sample_weight=None, current_weights=None,
                 expected_returns=None) -> pd.DataFrame:
        """Efficient frontier: maximum return at ``n_points`` CVaR budgets from the minimum CVaR to the
        CVaR of the maximum-return portfolio (same constraints).

        Returns a DataFrame ``[point, cvar_budget, cvar, var, expected_return]``; the weights are in
        ``frontier_weights_`` (``[n_points, N]``).  The scenario partition is carried from one point to
        the next (same scenarios), so later points start almost solved.
        """
        alpha = check_alpha(self.alpha)
        check_choice("method", self.method, METHODS)
        if not isinstance(n_points, (int, np.integer)) or n_points < 2:
            raise ConfigError(f"n_points: expected an integer >= 2 (got {n_points!r})")
        R = check_returns(returns)
        S, n = R.shape
        p = check_sample_weight(sample_weight, S)
        system = self._system(n, current_weights)
        mu = (R.mean(axis=0) if p is None else p @ R) if expected_returns is None else check_vector(
            "expected_returns", expected_returns, n)
        solver = CutPlaneCVaR(system, alpha, tol=self.tol)
        try:
            low = solver.solve(R, p, start=system.current)
        except _Infeasible as exc:
            if exc.status == "unbounded":
                raise ConfigError(
                    "constraints: the problem is unbounded (no limit on the weights); set lower/upper bounds or max_gross"
                ) from None
            raise InfeasibleError(diagnose_infeasibility(self.constraints, n, system.current).message) from None
        # the highest return the constraints allow (an LP without the CVaR row)
        h = hx.new_model()
        obj = system.cost.copy()
        obj[:n] -= mu
        hx.load_system(h, system, cost=obj)
        h.run()
        if hx.model_status(h) != "optimal":
            raise ConfigError("constraints: the maximum return is unbounded; set lower/upper bounds or max_gross")
        w_hi = hx.solution(h)[:n]
        _, cvar_hi, _ = tail(-(R @ w_hi), p, alpha)
        budgets = np.linspace(low.cvar, max(cvar_hi, low.cvar), n_points)
        rows, weights = [], []
        groups = low.groups
        for k, b in enumerate(budgets):
            if k == 0:
                sol_w, sol_cvar, sol_var = low.weights, low.cvar, low.var
            else:
                sol = solver.solve(R, p, objective="max_return", cvar_budget=b * (1 + 1e-12) + 1e-15,
                                   expected_returns=mu, groups=groups)
                groups = sol.groups
                sol_w, sol_cvar, sol_var = sol.weights, sol.cvar, sol.var
            rows.append({"point": k, "cvar_budget": float(b), "cvar": sol_cvar, "var": sol_var,
                         "expected_return": float(mu @ sol_w)})
            weights.append(sol_w)
        self.frontier_ = pd.DataFrame(rows)
        self.frontier_weights_ = np.vstack(weights)
        return self.frontier_
