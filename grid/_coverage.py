"""Where every factor's moves come from, checked before a run and reported after it.

Before the run, every factor the book needs must have history (a user's source or the bundled one, or
a curve to interpolate it from) or be declared flat in ``market.flat`` with a reason; otherwise the
batch is refused with the full list and how to fix it.  After it, the ``coverage`` table has one row
per factor (its source, detail, span and snapshot level) and ``coverage_families`` says, per family,
in how many scenarios each factor moved, was replayed from data, filled, or had no data.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, History, factor_spec

__all__ = ["resolve_flat", "check_coverage", "coverage_tables", "SOURCES"]

#: the values of the coverage table's ``source`` column
SOURCES = ("history", "bundled", "interpolated", "proxy", "override", "flat")


def resolve_flat(patterns: dict[str, str], factors: list[str], source: str) -> dict[str, str]:
    """``{factor: reason}`` for the book's factors matched by ``market.flat``; a pattern that matches no
    factor the book needs is an error (a typo would otherwise hold nothing flat)."""
    out: dict[str, str] = {}
    for pat, reason in patterns.items():
        hit = [f for f in factors if fnmatchcase(f, pat)]
        if not hit:
            raise ConfigError(f"{source}, field 'market.flat': {pat!r} matches no factor the book needs")
        for f in hit:
            out.setdefault(f, str(reason))
    return out


def _has_data(history: History, f: str) -> bool:
    return f in history.snapshot.columns and bool(history.snapshot[f].notna().any())


def check_coverage(history: History, factors: list[str], flat: dict[str, str], source: str) -> None:
    """Refuse a batch whose book needs factors with neither history nor a declaration in ``market.flat``."""
    bare = [f for f in factors if f not in flat and not _has_data(history, f)]
    if bare:
        shown = ", ".join(bare[:12]) + (f" and {len(bare) - 12} more" if len(bare) > 12 else "")
        raise ConfigError(
            f"{source}, field 'market': {len(bare)} factor(s) the book needs have no history and no curve to "
            f"interpolate from: {shown}; give their history (history: a file with these columns), or hold them "
            "flat on purpose with a reason (market.flat: {FACTOR: reason}) and a level (market.overrides)")


def coverage_tables(inputs) -> dict[str, pd.DataFrame]:
    """``coverage`` (one row per factor of the snapshot) and ``coverage_families`` (family x factor)."""
    history, market, scen = inputs.history, inputs.market, inputs.scenarios
    overrides = inputs.batch.market.overrides
    flat = inputs.flat
    rows = []
    for j, f in enumerate(market.factors):
        prov = history.provenance.get(f)
        span = history.span(f) if f in history.snapshot.columns else None
        if f in flat:
            src, detail = "flat", flat[f]
        elif prov is not None and prov.source == "proxy":
            src, detail = "proxy", prov.detail + ("; level from market.overrides" if f in overrides else "")
        elif f in overrides:
            src = "override"
            detail = "level from market.overrides; moves from " + (prov.detail if prov is not None else history.source)
        elif prov is not None and prov.interpolated is not None and pd.Timestamp(market.observed.get(f, market.as_of)) in prov.interpolated:
            src, detail = "interpolated", f"the snapshot level is interpolated from the curve's other tenors; {prov.detail}"
        elif prov is not None:
            src, detail = prov.source, prov.detail
        else:
            src, detail = ("bundled" if history.source == "bundled" else "history"), history.source
        rows.append(dict(factor=f, kind=factor_spec(f).kind, source=src, detail=detail,
                         first_date=span[0] if span else pd.NaT, last_date=span[1] if span else pd.NaT,
                         level=float(market.levels[j]), observed=pd.Timestamp(market.observed.get(f, market.as_of))))
    cov = pd.DataFrame(rows, columns=["factor", "kind", "source", "detail", "first_date", "last_date", "level", "observed"])
    fam = np.asarray(scen.family)
    moved = scen.shocks != 0
    covered = scen.covered
    filled = scen.filled_mask
    out = []
    for name in dict.fromkeys(scen.family):
        m = fam == name
        n = int(m.sum())
        mv, cv, fl = moved[m].sum(axis=0), (covered[m] & ~filled[m]).sum(axis=0), filled[m].sum(axis=0)
        un = (~covered[m]).sum(axis=0)
        for j, f in enumerate(scen.factors):
            out.append(dict(family=name, factor=f, scenarios=n, moved=int(mv[j]), from_data=int(cv[j]),
                            filled=int(fl[j]), no_data=int(un[j])))
    fam_tab = pd.DataFrame(out, columns=["family", "factor", "scenarios", "moved", "from_data", "filled", "no_data"])
    return {"coverage": cov, "coverage_families": fam_tab}
