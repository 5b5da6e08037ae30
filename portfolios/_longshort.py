"""Risk parity and HRP on a long-short book: the signs of the current book kept, the gross exposure set.

A long-short book is written ``w = s * y`` with ``s = sign(w0)`` the signs of the current book and
``y >= 0`` the absolute exposures (fractions of NAV).  The risk of ``w`` on returns ``R`` is the risk of
``y`` on the sign-adjusted returns ``R S`` (``S = diag(s)``; covariance ``S Sigma S``, i.e.
``Sigma_ij s_i s_j``), so the long-only methods apply to ``y``:

* risk budgeting: Spinu's strictly convex form ``min y' S Sigma S y / 2 - b' log y`` (Spinu, "An
  algorithm for computing risk parity weights", 2013), solved by Newton's method, or its CVaR form
  (Mausser and Romanko 2014); ``y`` is then scaled so that ``sum(y)``, the gross exposure, equals the
  target.  Risk budgeting is scale-free, so the contributions ``w_i (Sigma w)_i / w' Sigma w`` equal
  the budgets whatever the gross.
* HRP (Lopez de Prado 2016) and HERC (Raffinot 2018) on ``R S``, scaled to the target gross.

Desk constraints (:class:`portfolios.Constraints`: bounds, groups, turnover, position caps, frozen
positions) are not scale-free.  When the scaled weights break one, :class:`SignedRiskParity` solves the
constrained risk-budgeting problem of Richard and Roncalli ("Constrained risk budgeting portfolios",
2019): ``y(lambda) = argmin rho(y) - lambda b' log y`` over the constraint set, with ``lambda`` chosen so
that the gross exposure is the target; the binding families are named in ``diagnosis_`` and the
contributions then differ from the budgets by what the constraints impose.  :class:`SignedHRP` and
:class:`SignedHERC` take no constraints: they report the ones their weights break.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import cvxpy as cp
import numpy as np
from scipy.optimize import brentq

from stressgrid.core.errors import ConfigError, InfeasibleError
from stressgrid.core.measures import cvar_contributions, var_cvar

from ._constraints import RELAX_HINT, Constraints, compile_constraints, frozen_mask, validate_current
from ._diagnose import diagnose_infeasibility
from ._herc import HERC
from ._hrp import HRP
from ._risk import vol_contributions, weighted_covariance
from ._riskparity import MEASURES, RiskParity, spinu_newton
from ._validate import check_alpha, check_choice, check_returns, check_sample_weight

__all__ = ["SignedHERC", "SignedHRP", "SignedRiskParity", "constraint_report"]

#: relative tolerance for a constraint to count as holding (unconstrained weights) or binding (solution)
_TOL = 1e-7


def _signs(current_weights, n: int) -> np.ndarray:
    w0 = validate_current(current_weights, n)
    if w0 is None:
        raise ConfigError("current_weights: required, its signs fix the sign of each position (got None)")
    s = np.sign(w0)
    if not np.any(s):
        raise ConfigError("current_weights: every weight is zero; there are no signs to keep")
    return s


def _gross(gross, w0: np.ndarray) -> float:
    g = float(np.abs(w0).sum()) if gross is None else float(gross)
    if not np.isfinite(g) or g <= 0:
        raise ConfigError(f"gross: expected a positive gross exposure, a fraction of NAV (got {gross!r})")
    return g


def _sign_bounded(cs: Constraints | None, s: np.ndarray) -> Constraints:
    """``cs`` with the sign of each position fixed (zero where the current book has none)."""
    cs = Constraints(budget=None, lower=-np.inf, upper=np.inf) if cs is None else cs
    n = len(s)
    lo = np.where(s > 0, 0.0, np.where(s < 0, -np.inf, 0.0))
    hi = np.where(s < 0, 0.0, np.where(s > 0, np.inf, 0.0))
    lower = np.maximum(np.broadcast_to(np.asarray(cs.lower, float), (n,)), lo)
    upper = np.minimum(np.broadcast_to(np.asarray(cs.upper, float), (n,)), hi)
    return replace(cs, lower=lower, upper=upper)


def constraint_report(cs: Constraints, w: np.ndarray, current_weights: np.ndarray) -> dict[str, tuple[float, bool]]:
    """Per constraint family: (largest violation, whether it binds) at the weights ``w [N]``.

    A family binds when one of its constraints holds with equality (to a relative tolerance of 1e-7 of
    the bound's scale); frozen positions bind whenever there are any.  The gross-exposure and turnover
    definitions (``t >= |w|``, ``d >= |w - w0|``) are not constraints of their own and are left out.
    """
    n = len(w)
    w0 = np.asarray(current_weights, float)
    ls = compile_constraints(cs, n, w0)
    scale = max(float(np.abs(w0).sum()), float(np.abs(w).sum()), 1.0)
    tol = _TOL * scale
    out: dict[str, tuple[float, bool]] = {}
    x = ls.complete(w)
    ax = ls.A @ x
    for fam in dict.fromkeys(ls.row_families):
        if fam == "turnover_def":
            continue
        on = ls.row_families == fam
        if fam == "gross":
            on &= np.isfinite(ls.row_hi)  # the sum row, not the |w| definitions
        lo, hi, v = ls.row_lo[on], ls.row_hi[on], ax[on]
        viol = float(np.maximum(np.maximum(lo - v, v - hi), 0.0).max(initial=0.0))
        binds = bool(np.any(np.abs(v - lo) <= tol) | np.any(np.abs(v - hi) <= tol))
        out[str(fam)] = (viol, binds)
    fmask = frozen_mask(cs.frozen, n)
    cols = [("bounds", np.broadcast_to(np.asarray(cs.lower, float), (n,)),
             np.broadcast_to(np.asarray(cs.upper, float), (n,)))]
    if cs.max_position is not None:
        cap = np.broadcast_to(np.asarray(cs.max_position, float), (n,))
        cols.append(("position_caps", -cap, cap))
    if cs.max_trade is not None:
        cap = np.broadcast_to(np.asarray(cs.max_trade, float), (n,))
        cols.append(("trade_caps", w0 - cap, w0 + cap))
    for fam, lo, hi in cols:
        keep = ~fmask & ~((lo == 0) & (hi == 0))  # frozen, or not held: not a limit on the optimiser
        lo, hi, v = lo[keep], hi[keep], w[keep]
        viol = float(np.maximum(np.maximum(lo - v, v - hi), 0.0).max(initial=0.0))
        # a bound at zero that only fixes the sign is not a binding desk limit
        real_lo = np.isfinite(lo) & ~((lo == 0) & (hi > 0))
        real_hi = np.isfinite(hi) & ~((hi == 0) & (lo < 0))
        binds = bool(np.any(real_lo & (np.abs(v - lo) <= tol)) | np.any(real_hi & (np.abs(v - hi) <= tol)))
        out[fam] = (viol, binds)
    if fmask.any():
        out["frozen"] = (float(np.abs(w[fmask] - w0[fmask]).max()), True)
    return out


def _violations(report: dict[str, tuple[float, bool]], scale: float) -> dict[str, float]:
    return {f: v for f, (v, _) in report.items() if v > _TOL * max(scale, 1.0)}


def _checked(constraints: Constraints | None, s: np.ndarray, w: np.ndarray, w0: np.ndarray, G: float,
             what: str) -> tuple[str, str]:
    """``(status, diagnosis)`` of weights ``w`` of a method that takes no constraints (``what`` says so):
    ``("optimal", "")``, or ``("constraints_violated", ...)`` naming each broken family and by how much."""
    if constraints is None:
        return "optimal", ""
    cs = _sign_bounded(replace(constraints, max_gross=None, budget=None, net_bounds=None), s)
    bad = _violations(constraint_report(cs, w, w0), G)
    if not bad:
        return "optimal", ""
    return "constraints_violated", (f"{what}; its weights break " + ", ".join(f"{f} (by {v:.3g})" for f, v in bad.items())
                                    + "; they are reported as computed, scaled to the gross exposure")


def _hints(families) -> str:
    return "; ".join(f"{f} ({RELAX_HINT.get(f, 'relax it')})" for f in families)


class SignedRiskParity:
    """Risk budgeting on a long-short book, the signs of the current book kept, at a gross exposure.

    Parameters
    ----------
    measure : ``"vol"`` (the scenario covariance) or ``"cvar"`` (at ``alpha``).
    alpha : CVaR confidence level (``measure="cvar"``).
    risk_budget : ``[N]`` budgets, > 0 on every position the current book holds, 0 on the others
        (default: equal over the positions held); normalised to sum to 1.
    gross : the gross exposure ``sum |w|`` to scale to (fraction of NAV; default the current book's).
    constraints : :class:`portfolios.Constraints` (``budget`` and ``max_gross`` must be None: the gross is
        set by ``gross``; no ``turnover_penalty``).  The signs of the current book are added to its
        bounds.
    solver : cvxpy solver of the constrained problem (default CLARABEL).

    Attributes
    ----------
    weights_ : ``[N]`` signed weights, ``sum |weights_| = gross`` (unless the constraints cap it: see
        ``diagnosis_``).
    risk_ : volatility per scenario period or CVaR of ``weights_`` (fractions of NAV).
    risk_contributions_ : ``[N]`` Euler contributions to ``risk_`` (they sum to it).
    risk_share_ : ``risk_contributions_ / risk_``.  risk_budget_ : ``[N]`` the normalised budgets.
    status_ : ``"optimal"`` (the contributions equal the budgets) or ``"constrained"`` (constraints bind;
        ``diagnosis_`` names them).  diagnosis_ : ``""`` or one line.
    """

    def __init__(self, measure: str = "vol", alpha: float = 0.95, risk_budget=None, gross: float | None = None,
                 constraints: Constraints | None = None, solver: str | None = None, labels=None, groups=None):
        self.measure = measure
        self.alpha = alpha
        self.risk_budget = risk_budget
        self.gross = gross
        self.constraints = constraints
        self.solver = solver
        self.labels = labels  # [N] position names for messages (default: their indices)
        #: [N] group names: each group keeps its composition and is scaled as a whole (None: each position)
        self.groups = groups

    def _budget(self, s: np.ndarray) -> np.ndarray:
        n = len(s)
        held = s != 0
        if self.risk_budget is None:
            return held / held.sum()
        b = np.asarray(self.risk_budget, float)
        if b.shape != (n,):
            raise ConfigError(f"risk_budget: expected {n} values (got shape {b.shape})")
        bad = ~np.isfinite(b) | (held & (b <= 0)) | (~held & (b != 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "> 0 (the position is held)" if held[i] else "0 (the current book holds none of it)"
            raise ConfigError(f"risk_budget[{i}]: must be {need} (got {b[i]!r})")
        return b / b.sum()

    def _risk(self, R, p, w):
        if self.measure == "vol":
            cov = weighted_covariance(R, p)
            return float(np.sqrt(max(w @ cov @ w, 0.0))), vol_contributions(cov, w)
        return var_cvar(R @ w, self.alpha, p)[1], cvar_contributions(R * w, self.alpha, p)

    def _unconstrained(self, Rs: np.ndarray, p, b: np.ndarray, names: list[str]) -> np.ndarray:
        """Absolute exposures ``[n_held]`` summing to 1 with contributions equal to ``b`` (``names``: the
        held positions' labels, for messages)."""
        if self.measure == "vol":
            cov = weighted_covariance(Rs, p)
            cov = cov / float(np.mean(np.diag(cov)) or 1.0)  # O(1) entries; the normalised y do not change
            evals, evecs = np.linalg.eigh(cov)
            if evals[0] <= 1e-12 * max(evals[-1], 1e-300):
                # a direction of zero variance: the risk-budgeting problem has no solution; the positions
                # that make it up are redundant in these scenarios (or have no P&L at all)
                v = evecs[:, 0]
                top = [names[i] for i in np.argsort(-np.abs(v))[:4] if abs(v[i]) > 0.05]
                raise InfeasibleError(
                    f"volatility risk parity: the covariance of the {Rs.shape[1]} positions held is singular "
                    f"(smallest eigenvalue {evals[0]:.3g}): a combination of {', '.join(top)} has no variance in "
                    f"the family's {Rs.shape[0]} scenarios (positions on the same or on flat factors, or fewer "
                    "scenarios than positions); use risk_budget.measure cvar, which needs no covariance")
            y, self.n_iterations_ = spinu_newton(cov, b)
            for _ in range(2):  # the decrement test stops at |y - y*| ~ 1e-8; two full steps reach rounding
                step = np.linalg.solve(cov + np.diag(b / (y * y)), b / y - cov @ y)
                if np.all(y + step > 0):
                    y = y + step
        else:
            rp = RiskParity("cvar", alpha=self.alpha, risk_budget=b).fit(Rs, sample_weight=p)
            y, self.n_iterations_ = rp.weights_, rp.n_iterations_
        return y / y.sum()

    def fit(self, returns, sample_weight=None, current_weights=None) -> "SignedRiskParity":
        """Compute the weights from scenario returns per unit weight ``[S, N]`` and the current book ``[N]``."""
        check_choice("measure", self.measure, MEASURES)
        if self.measure == "cvar":
            check_alpha(self.alpha)
        R = check_returns(returns)
        S, n = R.shape
        p = check_sample_weight(sample_weight, S)
        s = _signs(current_weights, n)
        w0 = np.asarray(current_weights, float)
        b = self._budget(s)
        G = _gross(self.gross, w0)
        held = s != 0
        y = np.zeros(n)
        labels = list(self.labels) if self.labels is not None else [str(i) for i in range(n)]
        if self.groups is not None:
            return self._by_group(R, p, w0, s, b, G)
        y[held] = G * self._unconstrained(R[:, held] * s[held], p, b[held], [labels[i] for i in np.flatnonzero(held)])
        w = s * y
        self.status_, self.diagnosis_ = "optimal", ""
        if self.constraints is not None:
            cs = self.constraints
            if cs.budget is not None or cs.net_bounds is not None or cs.max_gross is not None:
                raise ConfigError("constraints: budget, net_bounds and max_gross must be None; risk parity sets "
                                  "the gross exposure through gross")
            if cs.turnover_penalty:
                raise ConfigError(f"constraints.turnover_penalty: risk parity takes no penalty "
                                  f"(got {cs.turnover_penalty!r}); use max_turnover")
            cs = _sign_bounded(cs, s)
            if _violations(constraint_report(cs, w, w0), G):
                w = self._constrained(R, p, w0, s, b, G, cs)
        self.risk_, self.risk_contributions_ = self._risk(R, p, w)
        self.risk_share_ = self.risk_contributions_ / self.risk_ if self.risk_ > 0 else np.zeros(n)
        self.risk_budget_ = b
        self.weights_ = w
        return self

    def _by_group(self, R, p, w0, s, b, G) -> "SignedRiskParity":
        """Risk budgeting over groups, each scaled as a whole: ``w = sum_g m_g w0_g`` with ``m_g > 0``, the
        group's budget the sum of its positions' in ``b``; the columns are the groups' P&L per unit of
        NAV at their current composition, ``Z = R W0``.  The constraints are checked, not imposed (a
        desk constraint on positions would change a group's composition): a broken one is named."""
        n = len(s)
        g = np.asarray(self.groups, dtype=object)
        if g.shape != (n,):
            raise ConfigError(f"groups: expected {n} group names (got shape {g.shape})")
        held = s != 0
        names = list(dict.fromkeys(g[held]))
        W = np.zeros((n, len(names)))
        for k, name in enumerate(names):
            on = held & (g == name)
            W[on, k] = w0[on]
        bg = np.array([b[held & (g == name)].sum() for name in names])
        m = self._unconstrained(R @ W, p, bg / bg.sum(), [str(x) for x in names])
        w = W @ m
        w = w * (G / float(np.abs(w).sum()))
        self.status_, self.diagnosis_ = _checked(self.constraints, s, w, w0, G,
                                                 "risk parity by group scales each group as a whole and takes no "
                                                 "constraints")
        self.risk_, self.risk_contributions_ = self._risk(R, p, w)
        self.risk_share_ = self.risk_contributions_ / self.risk_ if self.risk_ > 0 else np.zeros(n)
        self.risk_budget_ = b
        self.group_multipliers_ = dict(zip(names, m * (G / float(np.abs(W @ m).sum()))))
        self.weights_ = w
        return self

    def _constrained(self, R, p, w0, s, b, G, cs: Constraints) -> np.ndarray:
        """Richard and Roncalli (2019): ``argmin rho(y) - lambda b' log y`` over the constraints, ``lambda``
        set by the gross exposure."""
        n = len(s)
        ls = compile_constraints(cs, n, w0)
        free = (s != 0) & ~frozen_mask(cs.frozen, n)
        x = cp.Variable(ls.n_x)
        w = x[:n]
        cons = []
        lo_fin, hi_fin = np.isfinite(ls.col_lo), np.isfinite(ls.col_hi)
        if lo_fin.any():
            cons.append(x[np.flatnonzero(lo_fin)] >= ls.col_lo[lo_fin])
        if hi_fin.any():
            cons.append(x[np.flatnonzero(hi_fin)] <= ls.col_hi[hi_fin])
        if ls.A.shape[0]:
            for side, bound in ((1, ls.row_lo), (-1, ls.row_hi)):
                on = np.isfinite(bound)
                if on.any():
                    cons.append(side * (ls.A[np.flatnonzero(on)] @ x) >= side * bound[on])
        solver = self.solver or "CLARABEL"
        gross_expr = s @ w

        # the extremes of the gross exposure over the constraint set
        def extreme(sense):
            prob = cp.Problem(sense(gross_expr), cons)
            try:
                prob.solve(solver=solver)
            except cp.error.SolverError:
                return None
            return float(prob.value) if prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) else None

        g_max, g_min = extreme(cp.Maximize), extreme(cp.Minimize)
        if g_max is None or g_min is None:
            d = diagnose_infeasibility(cs, n, w0)
            why = d.message if not d.feasible else "the solver failed on the constraints"
            raise InfeasibleError(f"risk parity: {why}")
        target, note = G, ""
        if g_max < G * (1 - 1e-9):
            target = g_max * (1 - 1e-6)
            note = f"the gross exposure {G:.4g} is out of reach, at most {g_max:.4g} under the constraints; "
        elif g_min > G * (1 + 1e-9):
            target = g_min * (1 + 1e-6)
            note = f"the gross exposure {G:.4g} is out of reach, at least {g_min:.4g} under the constraints; "

        # the problem in units where the risk is O(1): the solution does not depend on them
        if self.measure == "vol":
            cov = weighted_covariance(R, p)
            c = float(np.mean(np.diag(cov))) or 1.0
            risk = 0.5 * cp.quad_form(w, cp.psd_wrap(cov / c))
            degree = 2.0
        else:
            c = float(np.sqrt(np.mean(R * R))) or 1.0
            z = cp.Variable()
            u = cp.Variable(R.shape[0], nonneg=True)
            pp = np.full(R.shape[0], 1.0 / R.shape[0]) if p is None else p
            risk = z + (1.0 / (1.0 - self.alpha)) * (pp @ u)
            cons = cons + [u >= -(R / c) @ w - z]
            degree = 1.0
        lb = cp.Parameter(int(free.sum()), nonneg=True)
        idx = np.flatnonzero(free)
        prob = cp.Problem(cp.Minimize(risk - lb @ cp.log(cp.multiply(s[idx], w[idx]))), cons)
        bf = b[free] / b[free].sum()
        # tight: the first-order conditions, and so the contributions, to about 1e-8
        opts = {"CLARABEL": {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-11,
                             "max_iter": 500}}.get(solver, {})

        inaccurate = [False]

        def gross_at(log_lam):
            lb.value = np.exp(log_lam) * bf
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # an inaccurate solve is named in the diagnosis
                    prob.solve(solver=solver, **opts)
                inaccurate[0] = prob.status == cp.OPTIMAL_INACCURATE
            except cp.error.SolverError as exc:
                raise InfeasibleError(f"risk parity under constraints: the solver failed ({exc}); "
                                      f"relax {', '.join(ls.families) or 'the constraints'}") from None
            if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or w.value is None:
                raise InfeasibleError(f"risk parity under constraints: no solution (solver status {prob.status}); "
                                      f"relax {', '.join(ls.families) or 'the constraints'}")
            return float(s @ w.value) - target

        # unconstrained, y(lambda) = lambda^(1/degree) y(1): start where that gives the target gross
        y1 = np.abs(self._unconstrained_scaled(R, p, s, free, bf, c))
        lam0 = degree * np.log(target / y1.sum())
        lo_l, hi_l = lam0 - 1.0, lam0 + 1.0
        f_lo, f_hi = gross_at(lo_l), gross_at(hi_l)
        for _ in range(60):
            if f_lo <= 0:
                break
            lo_l -= 2.0
            f_lo = gross_at(lo_l)
        for _ in range(60):
            if f_hi >= 0:
                break
            hi_l += 2.0
            f_hi = gross_at(hi_l)
        if f_lo > 0 or f_hi < 0:
            raise InfeasibleError(f"risk parity under constraints: no risk-budgeting scale reaches the gross "
                                  f"exposure {target:.4g}; relax {', '.join(ls.families)}")
        log_lam = brentq(gross_at, lo_l, hi_l, xtol=1e-12, rtol=1e-14, maxiter=200)
        gross_at(log_lam)
        wv = np.asarray(w.value, float)
        wv[s == 0] = 0.0
        wv = np.where(s * wv < 0, 0.0, wv)  # solver noise across zero
        report = constraint_report(cs, wv, w0)
        binding = [f for f, (_, bind) in report.items() if bind]
        _, rc = self._risk(R, p, wv)
        share = rc / rc.sum() if rc.sum() > 0 else rc
        gap = float(np.max(np.abs(share - b)))
        if inaccurate[0]:
            note += f"the solver ({solver}) reports an inaccurate solution; "
        if binding or note:
            self.status_ = "constrained"
            self.diagnosis_ = (
                f"risk parity under constraints: {note}the {', '.join(binding) or 'gross'} constraints bind, so the "
                f"risk contributions differ from the budgets by up to {gap:.3g} of the risk; to get closer relax "
                f"{_hints(binding) if binding else 'the constraints'}")
        return wv

    def _unconstrained_scaled(self, R, p, s, free, bf, c):
        Rs = R[:, free] * s[free]
        if self.measure == "vol":
            y, _ = spinu_newton(weighted_covariance(Rs, p) / c, bf)
            return y
        y = RiskParity("cvar", alpha=self.alpha, risk_budget=bf).fit(Rs / c, sample_weight=p).weights_
        return y * (1.0 / max(var_cvar((Rs / c) @ y, self.alpha, p)[1], 1e-300))


class SignedHRP:
    """Hierarchical risk parity on a long-short book: HRP on the sign-adjusted returns ``R S`` of the
    positions held, the signs of the current book kept, scaled to a gross exposure.

    Parameters
    ----------
    linkage, optimal_ordering, risk_measure, alpha : as :class:`portfolios.HRP`.
    gross : the gross exposure ``sum |w|`` (fraction of NAV; default the current book's).
    constraints : :class:`portfolios.Constraints` to check the weights against.  HRP takes no constraints:
        a broken one is named in ``diagnosis_`` (status ``"constraints_violated"``), never hidden.

    Attributes
    ----------
    weights_ : ``[N]``.  status_ : ``"optimal"`` or ``"constraints_violated"``.  diagnosis_ : ``""`` or one line.
    risk_share_ : ``[N]`` Euler shares of the volatility (variance HRP) or CVaR.  risk_budget_ : None.
    """

    def __init__(self, linkage: str = "single", optimal_ordering: bool = False, risk_measure: str = "variance",
                 alpha: float = 0.95, gross: float | None = None, constraints: Constraints | None = None):
        self.linkage = linkage
        self.optimal_ordering = optimal_ordering
        self.risk_measure = risk_measure
        self.alpha = alpha
        self.gross = gross
        self.constraints = constraints

    def fit(self, returns, sample_weight=None, current_weights=None) -> "SignedHRP":
        """Compute the weights from scenario returns per unit weight ``[S, N]`` and the current book ``[N]``."""
        model = HRP(linkage=self.linkage, optimal_ordering=self.optimal_ordering, risk_measure=self.risk_measure,
                    alpha=self.alpha)
        _fit_signed_tree(self, model, "HRP", returns, sample_weight, current_weights)
        return self


def _fit_signed_tree(est, model, name: str, returns, sample_weight, current_weights):
    """Fit a long-only tree method ``model`` (HRP, HERC) on the sign-adjusted returns of the positions
    held, scale to ``est.gross`` and set ``est``'s attributes; returns the fitted model and the held mask."""
    R = check_returns(returns)
    S, n = R.shape
    p = check_sample_weight(sample_weight, S)
    s = _signs(current_weights, n)
    w0 = np.asarray(current_weights, float)
    G = _gross(est.gross, w0)
    held = s != 0
    h = model.fit(R[:, held] * s[held], sample_weight=p)
    y = np.zeros(n)
    y[held] = G * h.weights_ / h.weights_.sum()
    w = s * y
    est.status_, est.diagnosis_ = _checked(est.constraints, s, w, w0, G, f"{name} takes no constraints")
    if est.risk_measure == "cvar":
        rc = cvar_contributions(R * w, check_alpha(est.alpha), p)
    else:  # variance or vol: the Euler shares of the volatility
        rc = vol_contributions(weighted_covariance(R, p), w)
    est.risk_share_ = rc / rc.sum() if rc.sum() != 0 else np.zeros(n)
    est.risk_budget_ = None
    est.order_ = np.flatnonzero(held)[h.order_]
    est.weights_ = w
    return h, held


class SignedHERC:
    """Hierarchical equal risk contribution on a long-short book: HERC on the sign-adjusted returns
    ``R S`` of the positions held, the signs of the current book kept, scaled to a gross exposure.

    Parameters
    ----------
    linkage, optimal_ordering, risk_measure, alpha, n_clusters : as :class:`portfolios.HERC` (the clusters
        are those of the sign-adjusted returns: a short position clusters with the longs it hedges).
    gross : the gross exposure ``sum |w|`` (fraction of NAV; default the current book's).
    constraints : :class:`portfolios.Constraints` to check the weights against.  HERC takes no
        constraints: a broken one is named in ``diagnosis_`` (status ``"constraints_violated"``), never
        hidden.

    Attributes
    ----------
    weights_ : ``[N]``.  status_ : ``"optimal"`` or ``"constraints_violated"``.  diagnosis_ : ``""`` or one line.
    risk_share_ : ``[N]`` Euler shares of the volatility (``"variance"`` and ``"vol"``) or CVaR.
    risk_budget_ : None.  order_ : leaf order (indices into the book).
    labels_ : ``[N]`` cluster of each position held, -1 for positions not held.  n_clusters_ : int.
    """

    def __init__(self, linkage: str = "ward", optimal_ordering: bool = False, risk_measure: str = "variance",
                 alpha: float = 0.95, n_clusters: int | str = "gap", gross: float | None = None,
                 constraints: Constraints | None = None):
        self.linkage = linkage
        self.optimal_ordering = optimal_ordering
        self.risk_measure = risk_measure
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.gross = gross
        self.constraints = constraints

    def fit(self, returns, sample_weight=None, current_weights=None) -> "SignedHERC":
        """Compute the weights from scenario returns per unit weight ``[S, N]`` and the current book ``[N]``."""
        model = HERC(linkage=self.linkage, optimal_ordering=self.optimal_ordering, risk_measure=self.risk_measure,
                     alpha=self.alpha, n_clusters=self.n_clusters)
        h, held = _fit_signed_tree(self, model, "HERC", returns, sample_weight, current_weights)
        self.labels_ = np.full(len(held), -1)
        self.labels_[held] = h.labels_
        self.n_clusters_ = h.n_clusters_
        return self
