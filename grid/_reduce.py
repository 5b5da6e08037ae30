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

__all__ = ["reduce_results", "risk_tables", "merge_families", "tail_plan", "contributions_by_task", "contributions_from_rows", "scenario_table",
           "sql_names", "per_scenario_tables", "sensitivity_rows", "GROUP_LEVELS", "LIST_COLUMNS"]

#: the levels every breakdown and contribution table is given at
GROUP_LEVELS = ("position", "asset_class", "sleeve")


def merge_families(results: list[ChunkResult], n_families: int, keep_mass: float | None = None) -> dict[int, FamilyPartial]:
    """family code -> the merged summary of its scenarios over every chunk, merged in scenario order (with
    the tail cut to ``keep_mass`` after each merge when given: :func:`merge_partials`)."""
    out = {}
    for code in range(n_families):
        parts = [r.families[code] for r in sorted(results, key=lambda r: r.start) if code in r.families]
        if parts:
            out[code] = merge_partials(parts, keep_mass)
    return out


def tail_plan(merged: dict[int, FamilyPartial], confidence: list[float]) -> dict[tuple[int, float], tuple]:
    """(family code, confidence) -> ``(VaR, CVaR, idx, t)``: the global tail scenarios and their mass."""
    return {(code, a): tail_scenarios(p, a) for code, p in merged.items() for a in confidence}


def contributions_by_task(plan: dict, bounds, rows, n_positions: int) -> dict[tuple[int, float], np.ndarray]:
    """Euler contributions ``-(t @ pnl[idx]) / (1 - alpha)`` per (family code, confidence), summed task by
    task in scenario order over the tail scenarios with ``t > 0``.

    ``bounds``: the tasks' first scenarios and the batch's size; ``rows(code, idx)``: the position P&L
    ``[k, N]`` of the scenarios ``idx`` (all inside one task).  The sums are the same, bit for bit, whether
    the rows come from a gathered matrix or from the tasks' kept rows, and no more than one task's tail
    rows are gathered at a time.
    """
    bounds = np.asarray(bounds, dtype=np.int64)
    out = {}
    for key, (_, _, idx, t) in plan.items():
        on = t > 0
        ii, tt = idx[on], t[on]
        cuts = np.searchsorted(ii, bounds)
        total = np.zeros(n_positions)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if hi > lo:
                total += tt[lo:hi] @ rows(key[0], ii[lo:hi])
        out[key] = -total / (1.0 - key[1])
    return out


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
    time: np.ndarray | None = None,
    revaluation: np.ndarray | None = None,
    min_tail: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Tables of a run: risk_metrics, contributions, breakdown, scenarios, and scenario_pnl when
    ``position_table`` and every task returned its position-level P&L.  ``min_tail``: the batch's
    ``risk.min_tail_scenarios`` (see :func:`risk_tables`).

    ``contributions``: (family code, confidence) -> Euler contributions ``[N]``; by default they are
    computed from the position P&L ``pnl [S, N]`` (by default the tasks' own, which must then have
    been returned).  ``time``, ``revaluation``: each scenario's time component and how its book was
    valued (see :func:`per_scenario_tables`).
    """
    results = sorted(results, key=lambda r: r.start)
    totals = np.concatenate([r.totals for r in results])
    merged = merge_families(results, len(families), 1.0 - min(confidence))
    plan = tail_plan(merged, confidence)
    if pnl is None and all(r.pnl is not None for r in results):
        pnl = np.concatenate([r.pnl for r in results])
    if contributions is None:
        if pnl is None:
            raise ValueError("no contributions given and the tasks did not return their position P&L")
        bounds = [r.start for r in results] + [results[-1].stop]
        contributions = contributions_by_task(plan, bounds, lambda code, idx: pnl[idx], pnl.shape[1])
    counts = {code: int(np.sum(family_codes == code)) for code in merged}
    tables = risk_tables(merged, plan, contributions, families, counts, lambda i: names[i], positions, confidence,
                         min_tail)
    groups = {level: np.concatenate([r.groups[level] for r in results]) for level in group_names}
    market = np.concatenate([r.totals if r.market is None else r.market for r in results])
    tables.update(per_scenario_tables(names, families, family_codes, weights, totals, groups, group_names,
                                      positions["id"].to_numpy(), pnl if position_table else None, time=time, market=market,
                                      revaluation=revaluation))
    return tables


def risk_tables(merged: dict[int, FamilyPartial], plan: dict, contributions: dict, families: list[str],
                counts: dict[int, int], name_of, positions: pd.DataFrame, confidence: list[float],
                min_tail: int | None = None) -> dict[str, pd.DataFrame]:
    """``risk_metrics`` and ``contributions`` from the merged family summaries, their :func:`tail_plan`, the
    Euler contributions per (family code, confidence), the scenario count of each family and
    ``name_of(global index)``, the name of a scenario.

    The ``var`` and ``cvar`` rows carry ``tail_scenarios``, the scenarios with tail mass beyond VaR (those
    CVaR averages: ``ceil((1 - alpha) S)`` of ``S`` equally weighted ones), and ``thin_tail``, whether they
    are fewer than ``min_tail`` (null without it)."""
    from ._guards import tail_count

    rm, ct = [], []
    for code, p in merged.items():
        fam = families[code]
        for a in confidence:
            var, cvar, _, t = plan[(code, a)]
            contrib = contributions[(code, a)]
            k = tail_count(t, a)
            tail = dict(tail_scenarios=k, thin_tail=None if min_tail is None else k < min_tail)
            rm.append(dict(family=fam, metric="var", confidence=a, value=var, scenario=None, **tail))
            rm.append(dict(family=fam, metric="cvar", confidence=a, value=cvar, scenario=None, **tail))
            for level in GROUP_LEVELS:
                key = "id" if level == "position" else level
                s = pd.Series(contrib).groupby(positions[key].to_numpy(), sort=False).sum()
                ct += [dict(family=fam, confidence=a, level=level, group_name=g, cvar_contribution=float(v))
                       for g, v in s.items()]
        rm.append(dict(family=fam, metric="mean", confidence=np.nan, value=p.mean, scenario=None))
        rm.append(dict(family=fam, metric="vol", confidence=np.nan, value=float(np.sqrt(p.m2 / p.weight)), scenario=None))
        rm.append(dict(family=fam, metric="worst", confidence=np.nan, value=p.worst_loss, scenario=name_of(p.worst_index)))
        rm.append(dict(family=fam, metric="scenarios", confidence=np.nan, value=float(counts[code]), scenario=None))
    rm = pd.DataFrame(rm, columns=["family", "metric", "confidence", "value", "scenario", "tail_scenarios", "thin_tail"])
    rm["tail_scenarios"] = rm["tail_scenarios"].astype("Int64")
    rm["thin_tail"] = rm["thin_tail"].astype("boolean")
    return {"risk_metrics": rm, "contributions": pd.DataFrame(ct)}


def per_scenario_tables(names, families: list[str], family_codes: np.ndarray, weights: np.ndarray, totals: np.ndarray,
                        groups: dict[str, np.ndarray], group_names: dict[str, list[str]], position_ids,
                        pnl: np.ndarray | None = None, time: np.ndarray | None = None, market: np.ndarray | None = None,
                        revaluation: np.ndarray | None = None) -> dict[str, pd.DataFrame]:
    """The tables with rows per scenario, for scenarios ``names [S]``: ``breakdown`` (P&L per group of
    every level, from ``groups``: level -> ``[S, G]``), ``scenarios`` (before its info columns are
    joined: :func:`scenario_table`) and, given the position P&L ``pnl [S, N]``, ``scenario_pnl``.
    Labels are categoricals built from codes (no per-row string work).

    The P&L explained: ``time [S]`` (the P&L at unchanged levels of a book valued at a horizon; default
    0), ``market [S]`` (today's book under the scenario's levels; default the P&L) and the cross term,
    the rest; ``revaluation [S]``: ``horizon`` or ``instantaneous`` (the default)."""
    S = len(names)
    levels = list(group_names)
    all_groups = list(dict.fromkeys(g for gs in group_names.values() for g in gs))
    # scenario by scenario, each level's groups in turn (so that any split of the scenarios into parts
    # gives the same rows in the same order)
    level_codes = np.concatenate([np.full(len(labels), li, dtype=np.int64) for li, labels in enumerate(group_names.values())])
    group_codes = np.array([all_groups.index(g) for labels in group_names.values() for g in labels], dtype=np.int64)
    width = len(level_codes)
    scen_codes = np.repeat(np.arange(S, dtype=np.int64), width)
    family_codes = np.asarray(family_codes, dtype=np.int64)
    values = np.concatenate([groups[level] for level in group_names], axis=1) if width else np.zeros((S, 0))
    tables = {
        "breakdown": pd.DataFrame({
            "scenario": pd.Categorical.from_codes(scen_codes, categories=list(names)),
            "family": pd.Categorical.from_codes(family_codes[scen_codes], categories=list(families)),
            "level": pd.Categorical.from_codes(np.tile(level_codes, S), categories=levels),
            "group_name": pd.Categorical.from_codes(np.tile(group_codes, S), categories=all_groups),
            "pnl": values.reshape(-1),
        }),
        "scenarios": pd.DataFrame({"scenario": list(names), "family": np.asarray(families, dtype=object)[family_codes],
                                   "weight": weights, "pnl": totals, **_explained(totals, time, market, revaluation)}),
    }
    if pnl is not None:
        N = pnl.shape[1]
        tables["scenario_pnl"] = pd.DataFrame({
            "scenario": _repeat_labels(names, np.arange(S), N),
            "family": _repeat_labels(families, family_codes, N),
            "position_id": _tile_labels(list(position_ids), S),
            "pnl": pnl.reshape(-1),
        })
    return tables


def _explained(totals: np.ndarray, time, market, revaluation) -> dict[str, np.ndarray]:
    """The scenarios table's P&L explained: time, market move and cross term, and the revaluation."""
    S = len(totals)
    time = np.zeros(S) if time is None else np.asarray(time, dtype=float)
    market = np.asarray(totals if market is None else market, dtype=float)
    how = np.full(S, "instantaneous", dtype=object) if revaluation is None else np.asarray(revaluation, dtype=object)
    return {"pnl_time": time, "pnl_market": market, "pnl_cross": totals - time - market, "revaluation": how}


def sensitivity_rows(names, families: list[str], family_codes: np.ndarray, types: list[str], full: np.ndarray,
                     approx: np.ndarray) -> pd.DataFrame:
    """The ``sensitivity`` table: full revaluation ``full [S, T]`` next to the delta-gamma-vega
    approximation ``approx [S, T]``, per scenario and instrument type."""
    S, T = full.shape
    return pd.DataFrame({
        "scenario": _repeat_labels(names, np.arange(S), T),
        "family": _repeat_labels(families, family_codes, T),
        "type": _tile_labels(types, S),
        "pnl_full": full.reshape(-1),
        "pnl_sensitivity": approx.reshape(-1),
        "error": (approx - full).reshape(-1),
    })


#: columns of a scenario set's info that hold factor names joined with commas, written as lists
LIST_COLUMNS = ("uncovered", "calibrated", "propagated", "core", "not_in_model", "derived_factors")
#: info columns of some kinds only, with the pandas type that keeps an integer or a flag with nulls
NULLABLE_TYPES = {"implausible": "Int64", "guard_cap": "boolean"}


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
    for c, dtype in NULLABLE_TYPES.items():  # null for the kinds without them, whatever the other families
        if c in out.columns:
            out[c] = out[c].astype(dtype)
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
