"""Reductions: chunk summaries merged into risk metrics, contributions and breakdowns.

Everything here reads :class:`ChunkResult` summaries, never the whole ``[S, N]`` P&L matrix, so the driver's
memory does not grow with the book times the scenario count; the numbers equal a single in-memory
computation (see :mod:`grid._summary`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._summary import merge_partials, tail_metrics
from ._worker import ChunkResult

__all__ = ["reduce_results", "GROUP_LEVELS"]

#: the levels every breakdown and contribution table is given at
GROUP_LEVELS = ("position", "asset_class", "sleeve")


def reduce_results(
    results: list[ChunkResult],
    names: tuple[str, ...],
    families: list[str],
    family_codes: np.ndarray,
    weights: np.ndarray,
    positions: pd.DataFrame,
    group_names: dict[str, list[str]],
    confidence: list[float],
) -> dict[str, pd.DataFrame]:
    """Tables of a run: risk_metrics, contributions, breakdown, scenarios (and scenario_pnl when kept)."""
    results = sorted(results, key=lambda r: r.start)
    totals = np.concatenate([r.totals for r in results])
    rm, ct = [], []
    ids = positions["id"].to_numpy()
    for code, fam in enumerate(families):
        parts = [r.families[code] for r in results if code in r.families]
        if not parts:
            continue
        p = merge_partials(parts)
        n = int(np.sum(family_codes == code))
        for a in confidence:
            var, cvar, contrib = tail_metrics(p, a)
            rm.append(dict(family=fam, metric="VaR", confidence=a, value=var, scenario=None))
            rm.append(dict(family=fam, metric="CVaR", confidence=a, value=cvar, scenario=None))
            for level in GROUP_LEVELS:
                key = "id" if level == "position" else level
                s = pd.Series(contrib).groupby(positions[key].to_numpy(), sort=False).sum()
                ct += [dict(family=fam, confidence=a, level=level, group=g, cvar_contribution=float(v)) for g, v in s.items()]
        rm.append(dict(family=fam, metric="mean", confidence=np.nan, value=p.mean, scenario=None))
        rm.append(dict(family=fam, metric="vol", confidence=np.nan, value=float(np.sqrt(p.m2 / p.weight)), scenario=None))
        rm.append(dict(family=fam, metric="worst", confidence=np.nan, value=p.worst_loss, scenario=names[p.worst_index]))
        rm.append(dict(family=fam, metric="scenarios", confidence=np.nan, value=float(n), scenario=None))
    fam_of = np.asarray(families, dtype=object)[family_codes]
    S = len(names)
    frames = []
    for li, (level, groups) in enumerate(group_names.items()):
        m = np.concatenate([r.groups[level] for r in results])
        G = m.shape[1]
        frames.append(pd.DataFrame({
            "scenario": _repeat_labels(names, np.arange(S), G),
            "family": _repeat_labels(families, family_codes, G),
            "level": pd.Categorical.from_codes(np.full(S * G, li, dtype=np.int64), categories=list(group_names)),
            "group": _tile_labels(groups, S),
            "pnl": m.reshape(-1),
        }))
    breakdown = pd.concat(frames, ignore_index=True)
    # concat of categoricals with different categories falls back to object: keep them categorical
    for col in ("level", "group"):
        breakdown[col] = breakdown[col].astype("category")
    tables = {
        "risk_metrics": pd.DataFrame(rm),
        "contributions": pd.DataFrame(ct),
        "breakdown": breakdown,
        "scenarios": pd.DataFrame({"scenario": list(names), "family": fam_of, "weight": weights, "pnl": totals}),
    }
    if all(r.pnl is not None for r in results):
        pnl = np.concatenate([r.pnl for r in results])
        S, N = pnl.shape
        tables["scenario_pnl"] = pd.DataFrame({
            "scenario": _repeat_labels(names, np.arange(S), N),
            "family": _repeat_labels(families, family_codes, N),
            "position_id": _tile_labels(list(ids), S),
            "pnl": pnl.reshape(-1),
        })
    return tables


def _repeat_labels(labels, codes: np.ndarray, times: int) -> pd.Categorical:
    """``labels[codes]`` with each element repeated ``times`` times, as a categorical (built from codes:
    long tables of scenario x position rows cost no per-row string work)."""
    return pd.Categorical.from_codes(np.repeat(np.asarray(codes, dtype=np.int64), times), categories=list(labels))


def _tile_labels(labels, times: int) -> pd.Categorical:
    """``labels`` tiled ``times`` times, as a categorical."""
    return pd.Categorical.from_codes(np.tile(np.arange(len(labels), dtype=np.int64), times), categories=list(labels))
