"""Reductions: chunk summaries merged into risk metrics, contributions and breakdowns.

Everything here reads :class:`ChunkResult` summaries, never the whole ``[S, N]`` P&L matrix, so the driver's
memory does not grow with the book times the scenario count; the numbers equal a single in-memory
computation (see :mod:`grid._summary`).  The Euler contributions come in from outside
(:func:`tail_plan` says which scenarios and weights they sum over; the run computes them from the
position P&L when it has it, else in a second pass of tasks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._summary import FamilyPartial, merge_partials, tail_scenarios
from ._worker import ChunkResult

__all__ = ["reduce_results", "merge_families", "tail_plan", "contributions_from_rows", "scenario_table",
           "sql_names", "GROUP_LEVELS", "LIST_COLUMNS"]

#: the levels every breakdown and contribution table is given at
GROUP_LEVELS = ("position", "asset_class", "sleeve")


def merge_families(results: list[ChunkResult], n_families: int) -> dict[int, FamilyPartial]:
    """family code -> the merged summary of its scenarios over every chunk."""
    out = {}
    for code in range(n_families):
        parts = [r.families[code] for r in sorted(results, key=lambda r: r.start) if code in r.families]
        if parts:
            out[code] = merge_partials(parts)
    return out


def tail_plan(merged: dict[int, FamilyPartial], confidence: list[float]) -> dict[tuple[int, float], tuple]:
    """(family code, confidence) -> ``(VaR, CVaR, idx, t)``: the global tail scenarios and their mass."""
    return {(code, a): tail_scenarios(p, a) for code, p in merged.items() for a in confidence}


def contributions_from_rows(plan: dict, rows) -> dict[tuple[int, float], np.ndarray]:
    """Euler contributions ``-(t @ pnl[idx]) / (1 - alpha)`` per (family, confidence), with ``rows(idx)``
    the position P&L ``[k, N]`` of the scenarios ``idx``."""
    return {key: -(t @ rows(idx)) / (1.0 - key[1]) for key, (_, _, idx, t) in plan.items()}


def reduce_results(
    results: list[ChunkResult],
    names: tuple[str, ...],
    families: list[str],
    family_codes: np.ndarray,
    weights: np.ndarray,
    positions: pd.DataFrame,
    group_names: dict[str, list[str]],
    confidence: list[float],
    position_table: bool = True,
    contributions: dict[tuple[int, float], np.ndarray] | None = None,
    pnl: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """Tables of a run: risk_metrics, contributions, breakdown, scenarios, and scenario_pnl when
    ``position_table`` and every task returned its position-level P&L.

    ``contributions``: (family code, confidence) -> Euler contributions ``[N]``; by default they are
    computed from the position P&L ``pnl [S, N]`` (by default the tasks' own, which must then have
    been returned).
    """
    results = sorted(results, key=lambda r: r.start)
    totals = np.concatenate([r.totals for r in results])
    merged = merge_families(results, len(families))
    plan = tail_plan(merged, confidence)
    if pnl is None and all(r.pnl is not None for r in results):
        pnl = np.concatenate([r.pnl for r in results])
    if contributions is None:
        if pnl is None:
            raise ValueError("no contributions given and the tasks did not return their position P&L")
        contributions = contributions_from_rows(plan, lambda idx: pnl[idx])
    rm, ct = [], []
    for code, p in merged.items():
        fam = families[code]
        n = int(np.sum(family_codes == code))
        for a in confidence:
            var, cvar, _, _ = plan[(code, a)]
            contrib = contributions[(code, a)]
            rm.append(dict(family=fam, metric="var", confidence=a, value=var, scenario=None))
            rm.append(dict(family=fam, metric="cvar", confidence=a, value=cvar, scenario=None))
            for level in GROUP_LEVELS:
                key = "id" if level == "position" else level
                s = pd.Series(contrib).groupby(positions[key].to_numpy(), sort=False).sum()
                ct += [dict(family=fam, confidence=a, level=level, group_name=g, cvar_contribution=float(v))
                       for g, v in s.items()]
        rm.append(dict(family=fam, metric="mean", confidence=np.nan, value=p.mean, scenario=None))
        rm.append(dict(family=fam, metric="vol", confidence=np.nan, value=float(np.sqrt(p.m2 / p.weight)), scenario=None))
        rm.append(dict(family=fam, metric="worst", confidence=np.nan, value=p.worst_loss, scenario=names[p.worst_index]))
        rm.append(dict(family=fam, metric="scenarios", confidence=np.nan, value=float(n), scenario=None))
    fam_of = np.asarray(families, dtype=object)[family_codes]
    S = len(names)
    # one categorical per column over every level's groups, built from codes (no per-row strings)
    levels = list(group_names)
    all_groups = list(dict.fromkeys(g for gs in group_names.values() for g in gs))
    mats, level_codes, group_codes = [], [], []
    for li, (level, groups) in enumerate(group_names.items()):
        m = np.concatenate([r.groups[level] for r in results])
        mats.append(m.reshape(-1))
        level_codes.append(np.full(m.size, li, dtype=np.int64))
        group_codes.append(np.tile(np.array([all_groups.index(g) for g in groups], dtype=np.int64), S))
    scen_codes = np.concatenate([np.repeat(np.arange(S, dtype=np.int64), len(g)) for g in group_names.values()])
    breakdown = pd.DataFrame({
        "scenario": pd.Categorical.from_codes(scen_codes, categories=list(names)),
        "family": pd.Categorical.from_codes(np.asarray(family_codes, dtype=np.int64)[scen_codes], categories=list(families)),
        "level": pd.Categorical.from_codes(np.concatenate(level_codes), categories=levels),
        "group_name": pd.Categorical.from_codes(np.concatenate(group_codes), categories=all_groups),
        "pnl": np.concatenate(mats),
    })
    tables = {
        "risk_metrics": pd.DataFrame(rm),
        "contributions": pd.DataFrame(ct),
        "breakdown": breakdown,
        "scenarios": pd.DataFrame({"scenario": list(names), "family": fam_of, "weight": weights, "pnl": totals}),
    }
    if position_table and pnl is not None:
        ids = positions["id"].to_numpy()
        S, N = pnl.shape
        tables["scenario_pnl"] = pd.DataFrame({
            "scenario": _repeat_labels(names, np.arange(S), N),
            "family": _repeat_labels(families, family_codes, N),
            "position_id": _tile_labels(list(ids), S),
            "pnl": pnl.reshape(-1),
        })
    return tables


#: columns of a scenario set's info that hold factor names joined with commas, written as lists
LIST_COLUMNS = ("uncovered", "calibrated", "propagated", "core", "not_in_model", "derived_factors")


def sql_names(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its column names as the results schema writes them: ``start``/``end`` ->
    ``window_start``/``window_end`` and ``spread_mult.<class>`` -> ``spread_mult_<class>`` (plain SQL
    identifiers, none of them a reserved word)."""
    def name(c: str) -> str:
        c = {"start": "window_start", "end": "window_end"}.get(c, c)
        return c.replace(".", "_") if c.startswith(("spread_mult.", "adv_mult.")) else c

    return df.rename(columns=name)


def _names_list(value) -> list[str] | None:
    """Factor names joined with commas as a list (an empty text: no name; null stays null)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(x) for x in value]
    if pd.isna(value):
        return None
    return [x.strip() for x in str(value).split(",") if x.strip()]


def scenario_table(base: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """The ``scenarios`` table: ``base`` (scenario, family, weight, pnl) joined with the scenario set's
    ``info`` (kind, window, description, ... per scenario), under the schema's names, with the factor
    lists (:data:`LIST_COLUMNS`) as lists of names."""
    if not len(info):
        return base
    extra = info.drop(columns=[c for c in ("family",) if c in info.columns]).set_index("scenario")
    out = sql_names(base.join(extra, on="scenario"))
    for c in LIST_COLUMNS:
        if c in out.columns:  # the same few texts repeat over a family's scenarios: split each once
            codes, uniques = pd.factorize(out[c], use_na_sentinel=True)
            lists = [_names_list(v) for v in uniques] + [None]
            out[c] = pd.Series([lists[k] for k in codes], index=out.index, dtype=object)
    return out


def _repeat_labels(labels, codes: np.ndarray, times: int) -> pd.Categorical:
    """``labels[codes]`` with each element repeated ``times`` times, as a categorical (built from codes:
    long tables of scenario x position rows cost no per-row string work)."""
    return pd.Categorical.from_codes(np.repeat(np.asarray(codes, dtype=np.int64), times), categories=list(labels))


def _tile_labels(labels, times: int) -> pd.Categorical:
    """``labels`` tiled ``times`` times, as a categorical."""
    return pd.Categorical.from_codes(np.tile(np.arange(len(labels), dtype=np.int64), times), categories=list(labels))
