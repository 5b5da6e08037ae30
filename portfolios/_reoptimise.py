"""Re-optimise a book after each stress: new weights, tail risk before and after, turnover, cost.

:func:`reoptimise_families` runs one or more optimisers on each scenario family's position returns and
reports, per family and method, the current and re-optimised weights, VaR/CVaR before and after on the
stressed scenarios and on a base scenario set, the turnover, the trading cost of the move (from a
caller-supplied ``cost_fn``) and the CVaR contributions by position, group label and factor.  The same
optimiser objects are used for every family, so a :class:`MeanCVaR` keeps its compiled constraints and
starts each family from the previous solution.  :func:`reoptimise_family` does one family (one grid
task); :meth:`ReoptimisationResult.concat` merges the tasks' results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from stressgrid.core.errors import ConfigError, InfeasibleError
from stressgrid.core.measures import var_cvar

from ._constraints import validate_current
from ._cvar import MeanCVaR
from ._risk import risk_contributions
from ._validate import check_alpha, check_returns, check_sample_weight

__all__ = ["ReoptimisationResult", "reoptimise_family", "reoptimise_families", "SUMMARY_COLUMNS", "WEIGHT_COLUMNS"]

SUMMARY_COLUMNS = [
    "family", "method", "status", "alpha", "n_scenarios",
    "cvar_before", "cvar_after", "var_before", "var_after",
    "base_cvar_before", "base_cvar_after", "base_var_before", "base_var_after",
    "expected_return_before", "expected_return_after",
    "turnover", "cost", "message",
]
WEIGHT_COLUMNS = ["family", "method", "position", "weight_current", "weight_new", "trade"]
#: risk-parity methods (``risk_share_`` and ``risk_budget_`` on the optimiser): the position's risk budget
#: and its Euler share of the optimised risk measure after the move (fractions summing to 1)
OPTIONAL_WEIGHT_COLUMNS = ["risk_budget", "risk_contribution"]
CONTRIBUTION_COLUMNS = ["family", "method", "scenario_set", "state", "level", "group", "cvar_contribution"]


@dataclass
class ReoptimisationResult:
    """Tidy tables of a re-optimisation.

    Attributes
    ----------
    summary : one row per (family, method): ``SUMMARY_COLUMNS``.
    weights : one row per (family, method, position): ``WEIGHT_COLUMNS``.
    contributions : CVaR contributions, one row per (family, method, scenario_set, state, level, group).
    """

    summary: pd.DataFrame
    weights: pd.DataFrame
    contributions: pd.DataFrame

    @staticmethod
    def concat(results: Sequence["ReoptimisationResult"]) -> "ReoptimisationResult":
        """Merge results (e.g. one per grid task) in the order given."""
        results = list(results)
        if not results:
            return ReoptimisationResult(
                pd.DataFrame(columns=SUMMARY_COLUMNS), pd.DataFrame(columns=WEIGHT_COLUMNS),
                pd.DataFrame(columns=CONTRIBUTION_COLUMNS),
            )
        return ReoptimisationResult(
            pd.concat([r.summary for r in results], ignore_index=True),
            pd.concat([r.weights for r in results], ignore_index=True),
            pd.concat([r.contributions for r in results], ignore_index=True),
        )


def default_methods(alpha: float) -> dict:
    """The default optimiser: minimum CVaR, fully invested, long-only."""
    return {"min_cvar": MeanCVaR(alpha=alpha)}


def _risk(R, w, alpha, p):
    var, cvar = var_cvar(R @ w, alpha, p)
    return var, cvar


def reoptimise_family(
    family: str,
    returns: np.ndarray,
    current_weights: np.ndarray,
    *,
    methods: Mapping[str, object] | None = None,
    alpha: float = 0.95,
    sample_weight: np.ndarray | None = None,
    base_returns: np.ndarray | None = None,
    base_sample_weight: np.ndarray | None = None,
    positions: Sequence[str] | None = None,
    groups: Mapping[str, Sequence] | None = None,
    loadings: np.ndarray | None = None,
    factor_returns: np.ndarray | None = None,
    base_factor_returns: np.ndarray | None = None,
    factor_names: Sequence[str] | None = None,
    cost_fn: Callable[[np.ndarray], float] | None = None,
    fallback: str | None = None,
) -> ReoptimisationResult:
    """Re-optimise the book on one scenario family.

    Parameters
    ----------
    family : name of the scenario family.
    returns : ``[S, N]`` stressed scenario returns per unit weight (fractions of NAV).
    current_weights : ``[N]`` the current book.
    methods : name -> optimiser with ``fit(returns, sample_weight=, current_weights=)`` and ``weights_``
        (default ``{"min_cvar": MeanCVaR(alpha)}``).
    alpha : confidence level of the reported VaR/CVaR.
    sample_weight : ``[S]`` scenario probabilities (default equal).
    base_returns, base_sample_weight : the base (unstressed) scenario set ``[S0, N]``; its VaR/CVaR before
        and after are reported (NaN without it).
    positions : position ids ``[N]``; groups : level -> labels ``[N]`` (asset_class, sleeve, ...).
    loadings, factor_returns, base_factor_returns, factor_names : factor loadings ``[N, K]`` and the
        factor returns of the stressed ``[S, K]`` and base ``[S0, K]`` scenarios, for contributions by
        factor.
    cost_fn : ``cost_fn(trade [N]) -> float``, the cost of a trade as a fraction of NAV (from the
        liquidity model); without it the cost column is NaN.
    fallback : ``"current"`` keeps the current book when an optimiser finds the problem infeasible
        (status ``"fallback"``, the diagnosis in ``message``); None re-raises the InfeasibleError.
    """
    alpha = check_alpha(alpha)
    R = check_returns(returns, f"returns[{family!r}]")
    S, n = R.shape
    p = check_sample_weight(sample_weight, S)
    w0 = validate_current(current_weights, n)
    if w0 is None:
        raise ConfigError("current_weights: required to report a re-allocation (got None)")
    if fallback not in (None, "current"):
        raise ConfigError(f"fallback: expected None or 'current' (got {fallback!r})")
    if base_returns is not None:
        R0 = check_returns(base_returns, "base_returns")
        if R0.shape[1] != n:
            raise ConfigError(f"base_returns: expected {n} columns, one per position (got {R0.shape[1]})")
        p0 = check_sample_weight(base_sample_weight, R0.shape[0])
    else:
        R0 = p0 = None
    names = [str(i) for i in range(n)] if positions is None else [str(x) for x in positions]
    if len(names) != n:
        raise ConfigError(f"positions: expected {n} ids (got {len(names)})")
    methods = default_methods(alpha) if methods is None else methods

    mean = R.mean(axis=0) if p is None else p @ R
    var_b, cvar_b = _risk(R, w0, alpha, p)
    base_b = _risk(R0, w0, alpha, p0) if R0 is not None else (np.nan, np.nan)
    summary, weights, contribs = [], [], []

    def contributions(w, state):
        out = []
        sets = [("stressed", R, p, factor_returns)]
        if R0 is not None:
            sets.append(("base", R0, p0, base_factor_returns))
        for set_name, RR, pp, FF in sets:
            df = risk_contributions(RR, w, alpha, pp, positions=names, groups=groups, loadings=loadings,
                                    factor_returns=FF, factor_names=factor_names)
            df.insert(0, "state", state)
            df.insert(0, "scenario_set", set_name)
            out.append(df)
        return out

    before = contributions(w0, "before")
    for mname, opt in methods.items():
        status, message = "optimal", ""
        try:
            opt.fit(R, sample_weight=p, current_weights=w0)
            w = np.asarray(opt.weights_, float)
            status = getattr(opt, "status_", "optimal")
            message = getattr(opt, "diagnosis_", None) or ""
        except InfeasibleError as exc:
            if fallback != "current":
                raise
            w, status, message = w0.copy(), "fallback", str(exc)
        trade = w - w0
        var_a, cvar_a = _risk(R, w, alpha, p)
        base_a = _risk(R0, w, alpha, p0) if R0 is not None else (np.nan, np.nan)
        cost = float(cost_fn(trade)) if cost_fn is not None else np.nan
        summary.append({
            "family": family, "method": mname, "status": status, "alpha": alpha, "n_scenarios": S,
            "cvar_before": cvar_b, "cvar_after": cvar_a, "var_before": var_b, "var_after": var_a,
            "base_cvar_before": base_b[1], "base_cvar_after": base_a[1],
            "base_var_before": base_b[0], "base_var_after": base_a[0],
            "expected_return_before": float(mean @ w0), "expected_return_after": float(mean @ w),
            "turnover": float(np.abs(trade).sum()), "cost": cost, "message": message,
        })
        wt = pd.DataFrame({
            "family": family, "method": mname, "position": names,
            "weight_current": w0, "weight_new": w, "trade": trade,
        })
        share = getattr(opt, "risk_share_", None) if status != "fallback" else None
        if share is not None:
            # risk-parity methods: each position's budget and its share of the optimised risk measure
            budget = getattr(opt, "risk_budget_", None)
            wt["risk_budget"] = np.nan if budget is None else np.asarray(budget, float)
            wt["risk_contribution"] = np.asarray(share, float)
        weights.append(wt)
        for df in before + contributions(w, "after"):
            d = df.copy()
            d.insert(0, "method", mname)
            d.insert(0, "family", family)
            contribs.append(d)
    return ReoptimisationResult(
        pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
        _weight_table(weights),
        pd.concat(contribs, ignore_index=True)[CONTRIBUTION_COLUMNS] if contribs else pd.DataFrame(columns=CONTRIBUTION_COLUMNS),
    )


def _weight_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``WEIGHT_COLUMNS``, then ``OPTIONAL_WEIGHT_COLUMNS`` when a method reports them (NaN for the others)."""
    if not frames:
        return pd.DataFrame(columns=WEIGHT_COLUMNS)
    df = pd.concat(frames, ignore_index=True)
    extra = [c for c in OPTIONAL_WEIGHT_COLUMNS if c in df.columns]
    return df[WEIGHT_COLUMNS + extra]


def reoptimise_families(
    families: Mapping[str, np.ndarray],
    current_weights: np.ndarray,
    *,
    methods: Mapping[str, object] | None = None,
    alpha: float = 0.95,
    sample_weights: Mapping[str, np.ndarray] | None = None,
    factor_returns: Mapping[str, np.ndarray] | None = None,
    **kwargs,
) -> ReoptimisationResult:
    """:func:`reoptimise_family` for each family in turn, with the same optimiser objects (so a
    :class:`MeanCVaR` reuses its compiled problem and warm-starts from the previous family).

    Parameters
    ----------
    families : family name -> stressed returns ``[S_f, N]`` (any number of scenarios per family).
    sample_weights, factor_returns : family name -> ``[S_f]`` probabilities / ``[S_f, K]`` factor returns.
    Other arguments as :func:`reoptimise_family`.
    """
    methods = default_methods(check_alpha(alpha)) if methods is None else methods
    results = []
    for name, R in families.items():
        results.append(reoptimise_family(
            name, R, current_weights, methods=methods, alpha=alpha,
            sample_weight=(sample_weights or {}).get(name),
            factor_returns=(factor_returns or {}).get(name),
            **kwargs,
        ))
    return ReoptimisationResult.concat(results)
