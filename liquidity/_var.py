"""Liquidity-adjusted VaR and CVaR: each scenario's loss plus the cost of getting out in that scenario.

For scenario ``s`` with position P&L ``P_si`` the exit cost ``C_s`` is the cost of unwinding ``fraction``
of every position after the shock, in the scenario's liquidity state: the exogenous part (half the quoted
spread times the scenario's spread multiplier, Bangia, Diebold, Schuermann and Stroughair 1999) plus the
endogenous part (the square-root impact of the unwind, with the scenario's volatility and ADV); see
:func:`liquidity.liquidation_schedule`, which also gives the days the caps require.  The unwind is marked
at the shocked value of each position, ``|q p_0 + P_si|``.  Then

    LA-VaR_a = VaR_a(P - C),   LA-CVaR_a = CVaR_a(P - C)

with ``P = sum_i P_si`` and :func:`core.var_cvar` (Rockafellar and Uryasev 2002).  Since ``C >= 0``,
``LA-CVaR >= CVaR`` and ``LA-VaR >= VaR``; with zero spread and zero impact ``C = 0`` and the two are
equal exactly.  Price moves while the unwind is under way are not in this measure (they are in the
liquidity-adjusted drawdown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, tail_weights, var_cvar

from ._model import Conditions, LiquidityModel
from ._schedule import Schedule, liquidation_schedule

__all__ = ["exit_cost", "LARisk", "la_var_cvar", "la_risk_table", "marked_unit_value"]


def _check_pnl(model: LiquidityModel, pnl, name: str = "pnl", shape: str = "[S, N]") -> np.ndarray:
    """``pnl`` as a float array of shape ``shape`` (``[S, N]`` or ``[S, H, N]``) with ``N`` the model's
    positions and finite values, else :class:`core.ConfigError` naming the argument."""
    p = np.asarray(pnl, dtype=float)
    if p.ndim != shape.count(",") + 1 or p.shape[-1] != model.n:
        raise ConfigError(f"{name}: expected an array {shape} with N = {model.n} positions (got shape {p.shape})")
    if not np.all(np.isfinite(p)):
        raise ConfigError(f"{name}: contains NaN or infinite values")
    return p


def marked_unit_value(model: LiquidityModel, pnl: np.ndarray) -> np.ndarray:
    """Unit values ``[S, N]`` after each scenario's P&L: ``|q p_0 + P| / |q|`` (``p_0`` where ``q = 0``)."""
    q = np.abs(model.quantity)
    held = q > 0
    return np.where(held, np.abs(model.signed_value + pnl) / np.where(held, q, 1.0), model.unit_value)


def exit_cost(
    model: LiquidityModel,
    pnl: np.ndarray | None = None,
    fraction=1.0,
    conditions: Conditions | None = None,
) -> Schedule:
    """Schedule and cost of unwinding ``fraction`` of the book after each scenario ``pnl[S, N]``.

    ``conditions`` is per scenario (``[S, C]``) or uniform; without ``pnl`` the unwind is at today's values.
    """
    if pnl is None:
        return liquidation_schedule(model, fraction, conditions)
    p = _check_pnl(model, pnl)
    return liquidation_schedule(model, fraction, conditions, unit_value=marked_unit_value(model, p))


@dataclass(frozen=True)
class LARisk:
    """Plain and liquidity-adjusted VaR and CVaR at one confidence level (losses positive, base currency),
    with the mean exit cost over all scenarios and over the liquidity-adjusted tail."""

    alpha: float
    var: float
    cvar: float
    la_var: float
    la_cvar: float
    exit_cost_mean: float
    exit_cost_tail: float


def la_var_cvar(
    model: LiquidityModel,
    pnl: np.ndarray,
    alpha: float,
    weights: np.ndarray | None = None,
    fraction=1.0,
    conditions: Conditions | None = None,
    cost: np.ndarray | None = None,
) -> LARisk:
    """VaR and CVaR of ``pnl[S, N]`` next to their liquidity-adjusted versions.

    Parameters
    ----------
    model : the cost model
    pnl : ``[S, N]`` position P&L per scenario (base currency)
    alpha : confidence, e.g. 0.99
    weights : ``[S]`` scenario probabilities (default equal)
    fraction : share of each position unwound (1 full liquidation; 0.25 a 25% redemption)
    conditions : liquidity state per scenario or uniform (default base)
    cost : ``[S]`` exit costs already computed (skips :func:`exit_cost`)
    """
    p = _check_pnl(model, pnl)
    total = p.sum(axis=1)
    c = exit_cost(model, p, fraction, conditions).total_cost if cost is None else np.asarray(cost, dtype=float)
    var, cvar = var_cvar(total, alpha, weights)
    adj = total - c
    la_var, la_cvar = var_cvar(adj, alpha, weights)
    w = np.full(len(total), 1.0 / len(total)) if weights is None else np.asarray(weights, dtype=float)
    _, t = tail_weights(adj, alpha, weights)
    return LARisk(alpha, var, cvar, la_var, la_cvar, float(w @ c), float(t @ c / (1.0 - alpha)))


def la_risk_table(
    model: LiquidityModel,
    pnl: np.ndarray,
    family,
    weights: np.ndarray,
    alphas=(0.95, 0.99),
    conditions: Conditions | None = None,
    fraction=1.0,
) -> pd.DataFrame:
    """Per family and confidence: ``family``, ``alpha``, ``var``, ``cvar``, ``la_var``, ``la_cvar``,
    ``exit_cost_mean``, ``exit_cost_tail`` (base currency; losses positive).

    ``weights`` ``[S]`` sum to 1 within each family (as in :class:`core.ScenarioSet`); ``conditions``
    per scenario, e.g. :meth:`Conditions.from_scenarios` of the set the P&L came from.
    """
    p = _check_pnl(model, pnl)
    fam = np.asarray(family)
    cost = exit_cost(model, p, fraction, conditions).total_cost
    rows = []
    for f in dict.fromkeys(fam.tolist()):
        idx = fam == f
        for a in alphas:
            r = la_var_cvar(model, p[idx], a, np.asarray(weights)[idx], fraction, cost=cost[idx])
            rows.append(dict(family=f, alpha=a, var=r.var, cvar=r.cvar, la_var=r.la_var, la_cvar=r.la_cvar,
                             exit_cost_mean=r.exit_cost_mean, exit_cost_tail=r.exit_cost_tail))
    return pd.DataFrame(rows)
