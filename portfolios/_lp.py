"""The plain Rockafellar-Uryasev LP in cvxpy, built once with parameters and re-solved per scenario set.

``min z + 1/(1-a) p . u + cost . x   s.t.  u >= -R w - z, u >= 0, constraints``  (minimise CVaR) or
``max mu . w - cost . x  s.t.  z + 1/(1-a) p . u <= budget, ...``  (maximise return at a CVaR budget);
Rockafellar and Uryasev, J. Risk 2 (2000), eq. (17).

The scenario matrix, the probabilities, the current book (through the turnover and trade-cap bounds),
the expected returns and the CVaR budget are ``cp.Parameter``s, so a new scenario family re-uses the
canonicalised problem; scenario sets smaller than the capacity are padded with zero-probability rows.
It is the reference for :class:`portfolios._cvar_solver.CutPlaneCVaR` and the faster choice for small
scenario sets.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from ._constraints import LinearSystem

__all__ = ["RULinearProgram"]


class RULinearProgram:
    """Parametrised RU LP over a compiled constraint system.

    Parameters
    ----------
    system : compiled constraints; its structure (not its current-book values) is fixed.
    alpha : CVaR confidence level.
    capacity : largest number of scenarios the problem holds.
    objective : ``"min_cvar"`` or ``"max_return"``.
    solver : cvxpy solver name (default CLARABEL) and ``solver_options`` passed to ``solve``.
    """

    def __init__(self, system: LinearSystem, alpha: float, capacity: int, objective: str = "min_cvar",
                 solver: str | None = None, solver_options: dict | None = None):
        self.system = system
        self.alpha = float(alpha)
        self.capacity = int(capacity)
        self.objective = objective
        self.solver = solver or "CLARABEL"
        self.solver_options = dict(solver_options or {})
        n, nx = system.n, system.n_x
        S = self.capacity
        self.R = cp.Parameter((S, n), name="returns")
        self.p = cp.Parameter(S, nonneg=True, name="probabilities")
        self.x = cp.Variable(nx, name="x")
        self.z = cp.Variable(name="z")
        self.u = cp.Variable(S, nonneg=True, name="u")
        w = self.x[:n]
        cvar = self.z + (1.0 / (1.0 - self.alpha)) * (self.p @ self.u)
        cons = [self.u >= -self.R @ w - self.z]
        A = system.A
        # finite sides only; values are parameters (the current book moves turnover bounds)
        self._rows_lo = np.flatnonzero(np.isfinite(system.row_lo))
        self._rows_hi = np.flatnonzero(np.isfinite(system.row_hi))
        self._cols_lo = np.flatnonzero(np.isfinite(system.col_lo))
        self._cols_hi = np.flatnonzero(np.isfinite(system.col_hi))
        self.row_lo = cp.Parameter(len(self._rows_lo))
        self.row_hi = cp.Parameter(len(self._rows_hi))
        self.col_lo = cp.Parameter(len(self._cols_lo))
        self.col_hi = cp.Parameter(len(self._cols_hi))
        if len(self._rows_lo):
            cons.append(A[self._rows_lo] @ self.x >= self.row_lo)
        if len(self._rows_hi):
            cons.append(A[self._rows_hi] @ self.x <= self.row_hi)
        if len(self._cols_lo):
            cons.append(self.x[self._cols_lo] >= self.col_lo)
        if len(self._cols_hi):
            cons.append(self.x[self._cols_hi] <= self.col_hi)
        self.cost = cp.Parameter(nx, name="cost")
        if objective == "max_return":
            self.mu = cp.Parameter(n, name="expected_returns")
            self.budget = cp.Parameter(name="cvar_budget")
            cons.append(cvar <= self.budget)
            obj = cp.Maximize(self.mu @ w - self.cost @ self.x)
        else:
            obj = cp.Minimize(cvar + self.cost @ self.x)
        self.cvar_expr = cvar
        self.problem = cp.Problem(obj, cons)
        self.set_system(system)

    def set_system(self, system: LinearSystem) -> None:
        """Load the bound values of a system with the same structure (e.g. a new current book)."""
        self.system = system
        self.row_lo.value = system.row_lo[self._rows_lo]
        self.row_hi.value = system.row_hi[self._rows_hi]
        self.col_lo.value = system.col_lo[self._cols_lo]
        self.col_hi.value = system.col_hi[self._cols_hi]
        self.cost.value = system.cost

    def solve(self, returns: np.ndarray, p: np.ndarray | None, *, expected_returns=None,
              cvar_budget: float | None = None) -> tuple[str, np.ndarray | None, float | None]:
        """Solve on a scenario set of at most ``capacity`` rows; returns (status, x, objective)."""
        R = np.asarray(returns, dtype=float)
        S = R.shape[0]
        if S > self.capacity:
            raise ValueError(f"{S} scenarios exceed the capacity {self.capacity}")
        Rp = np.zeros((self.capacity, R.shape[1]))
        Rp[:S] = R
        pp = np.zeros(self.capacity)
        pp[:S] = np.full(S, 1.0 / S) if p is None else p
        self.R.value = Rp
        self.p.value = pp
        if self.objective == "max_return":
            self.mu.value = (pp[:S] @ R) if expected_returns is None else np.asarray(expected_returns, float)
            self.budget.value = float(cvar_budget)
        try:
            self.problem.solve(solver=self.solver, **self.solver_options)
        except cp.error.SolverError as exc:
            return f"solver_error: {exc}", None, None
        status = self.problem.status
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.x.value is None:
            return status, None, None
        return status, np.asarray(self.x.value, dtype=float), float(self.problem.value)
