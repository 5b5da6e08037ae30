"""Reductions of position-level P&L ``[S, N]`` into risk metrics, contributions and breakdowns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import cvar_contributions, var_cvar

__all__ = ["risk_metrics", "contributions", "breakdown", "GROUP_LEVELS"]

#: the levels every breakdown and contribution table is given at
GROUP_LEVELS = ("position", "asset_class", "sleeve")


def _families(family: tuple[str, ...]) -> dict[str, np.ndarray]:
    fam = np.asarray(family)
    return {f: np.flatnonzero(fam == f) for f in dict.fromkeys(family)}


def _group_matrix(pnl: np.ndarray, labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    groups = list(dict.fromkeys(labels))
    return groups, np.stack([pnl[:, labels == g].sum(axis=1) for g in groups], axis=1)


def risk_metrics(pnl: np.ndarray, weights: np.ndarray, family: tuple[str, ...], names: tuple[str, ...], confidence: list[float]) -> pd.DataFrame:
    """Long table: family, metric, confidence, value (base currency; losses positive for VaR/CVaR).

    Metrics per family: ``VaR`` and ``CVaR`` at each confidence, ``mean`` and ``vol`` of the P&L
    (weighted), ``worst`` loss and the scenario it came from.
    """
    rows = []
    total = pnl.sum(axis=1)
    for fam, idx in _families(family).items():
        x, w = total[idx], weights[idx]
        for a in confidence:
            var, cvar = var_cvar(x, a, w)
            rows.append(dict(family=fam, metric="VaR", confidence=a, value=var, scenario=None))
            rows.append(dict(family=fam, metric="CVaR", confidence=a, value=cvar, scenario=None))
        mean = float(w @ x)
        rows.append(dict(family=fam, metric="mean", confidence=np.nan, value=mean, scenario=None))
        rows.append(dict(family=fam, metric="vol", confidence=np.nan, value=float(np.sqrt(w @ (x - mean) ** 2)), scenario=None))
        k = int(np.argmin(x))
        rows.append(dict(family=fam, metric="worst", confidence=np.nan, value=float(-x[k]), scenario=names[idx[k]]))
        rows.append(dict(family=fam, metric="scenarios", confidence=np.nan, value=float(len(idx)), scenario=None))
    return pd.DataFrame(rows)


def contributions(pnl: np.ndarray, weights: np.ndarray, family: tuple[str, ...], positions: pd.DataFrame, confidence: list[float]) -> pd.DataFrame:
    """Euler contributions to CVaR per family and confidence, by position, asset class and sleeve
    (each level sums to the family's CVaR)."""
    rows = []
    for fam, idx in _families(family).items():
        for a in confidence:
            c = cvar_contributions(pnl[idx], a, weights[idx])
            for level in GROUP_LEVELS:
                key = "id" if level == "position" else level
                s = pd.Series(c).groupby(positions[key].to_numpy(), sort=False).sum()
                rows += [dict(family=fam, confidence=a, level=level, group=g, cvar_contribution=float(v)) for g, v in s.items()]
    return pd.DataFrame(rows)


def breakdown(pnl: np.ndarray, names: tuple[str, ...], family: tuple[str, ...], positions: pd.DataFrame) -> pd.DataFrame:
    """Long table of scenario P&L by asset class and sleeve: scenario, family, level, group, pnl."""
    frames = []
    for level in ("asset_class", "sleeve"):
        groups, m = _group_matrix(pnl, positions[level].to_numpy())
        df = pd.DataFrame(m, columns=groups)
        df.insert(0, "scenario", names)
        df.insert(1, "family", family)
        long = df.melt(id_vars=["scenario", "family"], var_name="group", value_name="pnl")
        long.insert(2, "level", level)
        frames.append(long)
    return pd.concat(frames, ignore_index=True)
