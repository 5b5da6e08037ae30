"""Risk of a weight vector on a scenario set, and where it comes from (Euler allocation).

CVaR and VaR are computed by the reduction code (:mod:`core.measures`, Rockafellar and Uryasev 2002);
contributions are Euler allocations (Tasche 1999): by position, summed by group label (asset class,
sleeve), and by factor when loadings and factor returns are given (each factor's P&L
``(B^T w)_k f_{s,k}`` plus a residual, so they add up to the CVaR).  Volatility contributions
``w_i (Sigma w)_i / sigma`` (Euler, Roncalli 2013) serve the risk-parity methods.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from stressgrid.core.measures import cvar_contributions, var_cvar

__all__ = ["portfolio_risk", "risk_contributions", "vol_contributions", "weighted_covariance"]


def weighted_covariance(returns: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Covariance ``[N, N]`` of scenario returns under probabilities ``sample_weight`` (ddof 0)."""
    R = np.asarray(returns, dtype=float)
    p = np.full(R.shape[0], 1.0 / R.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    mean = p @ R
    X = R - mean
    return (X * p[:, None]).T @ X


def portfolio_risk(returns: np.ndarray, weights: np.ndarray, alpha: float,
                   sample_weight: np.ndarray | None = None) -> tuple[float, float]:
    """(VaR, CVaR) of the loss ``-returns @ weights`` at ``alpha`` (fractions of NAV)."""
    return var_cvar(np.asarray(returns, float) @ np.asarray(weights, float), alpha, sample_weight)


def vol_contributions(cov: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Euler contributions to volatility ``w_i (Sigma w)_i / sqrt(w' Sigma w)``; they sum to the vol."""
    w = np.asarray(weights, float)
    sw = cov @ w
    vol = float(np.sqrt(max(w @ sw, 0.0)))
    return w * sw / vol if vol > 0 else np.zeros_like(w)


def risk_contributions(
    returns: np.ndarray,
    weights: np.ndarray,
    alpha: float,
    sample_weight: np.ndarray | None = None,
    *,
    positions: Sequence[str] | None = None,
    groups: Mapping[str, Sequence] | None = None,
    loadings: np.ndarray | None = None,
    factor_returns: np.ndarray | None = None,
    factor_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """CVaR contributions in long form: columns ``[level, group, cvar_contribution]``.

    Levels: ``position`` (one row per position), one level per entry of ``groups`` (labels summed), and
    ``factor`` when ``loadings [N, K]`` and ``factor_returns [S, K]`` are given (factor P&L
    ``(B^T w)_k f_k`` per factor plus ``residual``).  Every level sums to the CVaR of the portfolio.
    """
    R = np.asarray(returns, float)
    w = np.asarray(weights, float)
    n = R.shape[1]
    names = [str(i) for i in range(n)] if positions is None else [str(x) for x in positions]
    pos = cvar_contributions(R * w, alpha, sample_weight)
    frames = [pd.DataFrame({"level": "position", "group": names, "cvar_contribution": pos})]
    for level, labels in (groups or {}).items():
        lab = pd.Series(np.asarray(labels, dtype=object).astype(str))
        by = pd.Series(pos).groupby(lab, sort=True).sum()
        frames.append(pd.DataFrame({"level": level, "group": by.index, "cvar_contribution": by.to_numpy()}))
    if loadings is not None and factor_returns is not None:
        B = np.asarray(loadings, float)
        F = np.asarray(factor_returns, float)
        expo = B.T @ w                                     # [K]
        parts = F * expo                                   # [S, K] factor P&L
        resid = R @ w - parts.sum(axis=1)
        cols = np.column_stack([parts, resid])
        contrib = cvar_contributions(cols, alpha, sample_weight)
        fn = [f"factor_{k}" for k in range(B.shape[1])] if factor_names is None else [str(x) for x in factor_names]
        frames.append(pd.DataFrame({"level": "factor", "group": fn + ["residual"], "cvar_contribution": contrib}))
    return pd.concat(frames, ignore_index=True)
