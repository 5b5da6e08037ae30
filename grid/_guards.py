"""Tail guards in the run's tables: implausible moves and GARCH fits at a boundary per family and factor,
and risk figures that rest on too few tail scenarios.

A guarded random family (``scenarios._guard``) writes, per scenario, the number of factors whose move is
beyond its plausibility bound (``implausible``), the scenario's largest move as a multiple of its
factor's historical extreme (``tail_multiple``) and that factor (``tail_factor``).  The driver reduces
them per family and factor into the ``coverage_families`` table: every scenario is attributed to its
``tail_factor``, so that the counts of a family's factors add up to its flagged scenarios and their
largest multiple is the family's.  The reduction is a sum and a maximum per factor, so a streamed run's
tasks reduce their own rows and the driver merges them in any order with the same result.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["guard_tally", "merge_tallies", "family_constants", "tail_count", "equal_weight_tail", "guard_notes"]


def guard_tally(info: pd.DataFrame, factors) -> tuple[np.ndarray, np.ndarray] | None:
    """``(implausible int64 [F], max_multiple float64 [F])`` of the scenarios ``info`` (one family's rows of a
    scenario set's info), each scenario attributed to its ``tail_factor``: per factor, the scenarios with a
    move beyond the bound whose largest multiple is this factor's, and the largest such multiple (NaN where
    the factor is no scenario's largest).  None when the rows carry no guard columns (a kind without a guard,
    or a guard turned off)."""
    if "implausible" not in info.columns or not info["implausible"].notna().any():
        return None
    pos = {f: j for j, f in enumerate(factors)}
    count = np.zeros(len(pos), dtype=np.int64)
    top = np.full(len(pos), np.nan)
    codes, names = pd.factorize(info["tail_factor"], use_na_sentinel=True)
    flagged = info["implausible"].to_numpy(dtype=float) > 0
    multiple = info["tail_multiple"].to_numpy(dtype=float)
    for k, name in enumerate(names):
        on = codes == k
        j = pos[name]
        count[j] = int(np.count_nonzero(flagged & on))
        top[j] = float(multiple[on].max())
    return count, top


def merge_tallies(a, b):
    """The tally of two disjoint sets of scenarios of one family (either may be None)."""
    if a is None:
        return b
    if b is None:
        return a
    return a[0] + b[0], np.fmax(a[1], b[1])


def family_constants(inputs) -> dict[str, dict]:
    """family -> its guard settings and GARCH report (``guard_multiple``, ``guard_cap``, ``garch_boundary``;
    absent where the family has none), from the families' info (the scenario set's first row of each family
    in a run in memory, the fitted families' info in a streamed one)."""
    keys = ("guard_multiple", "guard_cap", "garch_boundary")
    out: dict[str, dict] = {}
    if inputs.sources is not None:
        for src in inputs.sources:
            info = src.info if src.drawn else (src.scenarios.info.iloc[0].to_dict() if len(src.scenarios.info) else {})
            out[src.name] = {k: info[k] for k in keys if k in info and not _missing(info[k])}
        return out
    scen = inputs.scenarios
    if not len(scen.info):
        return {f: {} for f in dict.fromkeys(scen.family)}
    names, first = np.unique(np.asarray(scen.family, dtype=object), return_index=True)
    cols = [k for k in keys if k in scen.info.columns]
    for name, i in sorted(zip(names, first), key=lambda x: x[1]):
        row = scen.info.iloc[int(i)]
        out[name] = {k: row[k] for k in cols if not _missing(row[k])}
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def tail_count(t: np.ndarray, alpha: float) -> int:
    """The scenarios that carry tail probability mass beyond VaR at ``alpha`` (``t`` from
    :func:`core.tail_weights`: ``sum(t) == 1 - alpha``): the scenarios CVaR averages.  Mass under
    ``1e-12 (1 - alpha)`` (rounding of the weights' sum) does not count."""
    return int(np.count_nonzero(np.asarray(t) > 1e-12 * (1.0 - alpha)))


def equal_weight_tail(n_scenarios: int, alpha: float) -> int:
    """``ceil((1 - alpha) n)``: the tail scenarios of ``n`` equally weighted scenarios at ``alpha`` (without
    ties); rounded first, so that 5% of 2,000 is 100, not 101."""
    return int(math.ceil(round((1.0 - alpha) * n_scenarios, 9)))


def guard_notes(inputs) -> list[str]:
    """Lines for ``stressgrid validate``: the GARCH fits at a boundary of each family, the implausible moves
    of the families generated in the driver (a streamed run's random families are drawn by its tasks), and
    one line for the families whose CVaR rests on fewer than ``risk.min_tail_scenarios`` tail scenarios
    (counted as for equally weighted scenarios)."""
    from stressgrid.reports import garch_warning, implausible_warning, thin_tail_warning
    from stressgrid.scenarios import parse_garch_boundary

    out = []
    consts = family_constants(inputs)
    if inputs.sources is None:
        scen = inputs.scenarios
        fam = np.asarray(scen.family, dtype=object)
        sizes = {}
        for name in dict.fromkeys(scen.family):
            on = fam == name
            sizes[name] = int(on.sum())
            c = consts.get(name, {})
            tally = guard_tally(scen.info.loc[on], scen.factors) if "guard_multiple" in c else None
            if tally is not None and tally[0].sum():
                j = int(np.nanargmax(tally[1]))
                out.append(implausible_warning(name, int(tally[0].sum()), sizes[name], float(c["guard_multiple"]),
                                               bool(c["guard_cap"]), scen.factors[j], float(tally[1][j])))
    else:
        sizes = {s.name: s.n for s in inputs.sources}
    out += [garch_warning(fam, parse_garch_boundary(c["garch_boundary"])) for fam, c in consts.items()
            if c.get("garch_boundary")]
    risk = inputs.batch.risk
    from stressgrid.reports import DESIGNED_KINDS

    designed = {sp.name for sp in inputs.batch.scenarios if sp.kind in DESIGNED_KINDS}
    thin = {f: [(a, k) for a in sorted(risk.confidence, reverse=True)
                if (k := equal_weight_tail(n, a)) < risk.min_tail_scenarios] for f, n in sizes.items() if f not in designed}
    thin = {f: v for f, v in thin.items() if v}
    if thin:
        out.append(thin_tail_warning(thin, risk.min_tail_scenarios))
    return out
