"""Where every factor's moves come from, checked before a run and reported after it.

Before the run, every factor the book needs must have history (a user's source or the bundled one, or
a curve to interpolate it from) or be declared flat in ``market.flat`` with a reason; otherwise the
batch is refused with the full list and how to fix it.  After it, the ``coverage`` table has one row
per factor (its source, detail, span and snapshot level) and ``coverage_families`` says, per family,
in how many scenarios each factor moved, was replayed from data, filled, or had no data, and, for the
random families, the tail guard's judgement of its moves and its GARCH fit (:mod:`._guards`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, History, factor_spec

__all__ = ["resolve_flat", "check_coverage", "coverage_tables", "exposure_shares", "check_unmodelled_share", "SOURCES",
           "DEFAULT_DAILY_MOVE", "SCALE_DAYS"]

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


#: a factor's daily move size, for weighing factors without any series of their kind (level units; a
#: price's is 1% of its level): 5bp for a rate or spread, one vol point, 10bp of basis
DEFAULT_DAILY_MOVE = {"rate": 5e-4, "spread": 5e-4, "vol": 0.01, "basis": 1e-3, "price": 0.01}
#: daily moves up to the as-of date that measure a factor's move size
SCALE_DAYS = 500


def _move_sizes(history: History, factors: list[str], as_of) -> tuple[np.ndarray, list[str]]:
    """``[F]`` the root mean square of each factor's daily level changes over the last :data:`SCALE_DAYS`
    days up to ``as_of`` (a price's: its level times that of its log-returns); a factor without a
    series takes the median of its kind's factors that have one, else :data:`DEFAULT_DAILY_MOVE`.
    Returns the sizes and how each was obtained."""
    lv = history.levels.reindex(columns=factors).loc[:pd.Timestamp(as_of)]
    size = np.full(len(factors), np.nan)
    how = [""] * len(factors)
    for j, f in enumerate(factors):
        x = lv[f].dropna().to_numpy()[-(SCALE_DAYS + 1):]
        if len(x) > 20:
            spec = factor_spec(f)
            d = np.diff(np.log(x)) * x[-1] if spec.is_log else np.diff(x)
            size[j] = float(np.sqrt(np.mean(d * d)))
            how[j] = "history"
    kinds = [factor_spec(f).kind for f in factors]
    for j, f in enumerate(factors):
        if np.isfinite(size[j]):
            continue
        same = [size[i] for i in range(len(factors)) if kinds[i] == kinds[j] and how[i] == "history"]
        if same:
            size[j], how[j] = float(np.median(same)), f"median of the {kinds[j]} factors with history"
        else:
            size[j], how[j] = DEFAULT_DAILY_MOVE[kinds[j]], "default daily move of its kind"
    return size, how


def exposure_shares(inputs) -> np.ndarray:
    """``[F]`` the share of the book's gross exposure that rests on each factor of the snapshot.

    Each position's gross exposure (its quantity times its unit value, absolute, as in the liquidity
    model) is split over the factors it depends on in proportion to ``|dV/dL| x move size``: its
    first-order P&L under a typical daily move of each factor (:func:`_move_sizes`).  The shares of all
    factors add up to 1 over the priced positions."""
    from stressgrid.liquidity import unit_values

    market, sens = inputs.market, inputs.sens
    factors = list(market.factors)
    unit = unit_values(inputs.book, market, inputs.prepared, inputs.batch.base_currency)
    gross = np.abs(inputs.book.positions["quantity"].to_numpy(float) * np.nan_to_num(unit))
    size, _ = _move_sizes(inputs.history, factors, market.as_of)
    r = np.abs(np.asarray(sens.grad)) * size[None, :]
    tot = r.sum(axis=1, keepdims=True)
    w = np.divide(r, tot, out=np.zeros_like(r), where=tot > 0)
    g = gross * (tot[:, 0] > 0)
    return (g @ w) / g.sum() if g.sum() > 0 else np.zeros(len(factors))


def check_unmodelled_share(inputs, shares: np.ndarray, limit: float | None) -> None:
    """Refuse a batch whose share of gross exposure on proxied or flat factors exceeds ``market.max_unmodelled_share``."""
    if limit is None:
        return
    sources = factor_sources(inputs)
    un = [(float(shares[j]), f, sources[f][0]) for j, f in enumerate(inputs.market.factors)
          if sources[f][0] in ("proxy", "flat")]
    total = sum(x[0] for x in un)
    if total > limit + 1e-12:
        top = ", ".join(f"{f} ({src}) {x:.1%}" for x, f, src in sorted(un, reverse=True)[:5])
        raise ConfigError(f"{inputs.batch.source}, field 'market.max_unmodelled_share': {total:.1%} of the book's "
                          f"gross exposure rests on proxied or flat factors, over the limit of {limit:.1%} (largest: {top}); "
                          "give those factors history, or raise the limit")


def factor_sources(inputs) -> dict[str, tuple[str, str]]:
    """``{factor: (source, detail)}`` for every factor of the snapshot (the coverage table's two columns)."""
    history, market = inputs.history, inputs.market
    overrides = inputs.batch.market.overrides
    flat = inputs.flat
    out = {}
    for f in market.factors:
        prov = history.provenance.get(f)
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
        out[f] = (src, detail)
    return out


def family_counts(scen) -> dict[str, tuple[int, np.ndarray, tuple | None]]:
    """family -> (scenarios, int ``[4, F]``, guard tally): per factor, the scenarios in which it moved, came
    from data, was filled, and had no data; and the tail guard's :func:`._guards.guard_tally` of the
    family's scenarios (None without a guard)."""
    from ._guards import guard_tally

    fam = np.asarray(scen.family)
    moved, covered, filled = scen.shocks != 0, scen.covered, scen.filled_mask
    out = {}
    for name in dict.fromkeys(scen.family):
        m = fam == name
        tally = guard_tally(scen.info.loc[m], scen.factors) if len(scen.info) else None
        out[name] = (int(m.sum()), np.stack([moved[m].sum(axis=0), (covered[m] & ~filled[m]).sum(axis=0),
                                             filled[m].sum(axis=0), (~covered[m]).sum(axis=0)]).astype(np.int64),
                     tally)
    return out


def coverage_tables(inputs, counts: dict | None = None) -> dict[str, pd.DataFrame]:
    """``coverage`` (one row per factor of the snapshot) and ``coverage_families`` (family x factor), with
    the family counts of :func:`family_counts` (by default from ``inputs.scenarios``; a family's value is
    ``(scenarios, counts [4, F])`` or ``(scenarios, counts, guard tally)``, the tally on the snapshot's
    factors).  The tail guard's columns (``implausible``, ``max_multiple``, ``guard_multiple``,
    ``guard_cap``, ``garch_boundary``) are null for a family without a guard or a GARCH fit."""
    from stressgrid.scenarios import parse_garch_boundary

    from ._guards import family_constants

    history, market, scen = inputs.history, inputs.market, inputs.scenarios
    shares = inputs.exposure_share if inputs.exposure_share is not None else exposure_shares(inputs)
    sources = factor_sources(inputs)
    rows = []
    for j, f in enumerate(market.factors):
        src, detail = sources[f]
        span = history.span(f) if f in history.snapshot.columns else None
        rows.append(dict(factor=f, kind=factor_spec(f).kind, source=src, detail=detail,
                         first_date=span[0] if span else pd.NaT, last_date=span[1] if span else pd.NaT,
                         level=float(market.levels[j]), observed=pd.Timestamp(market.observed.get(f, market.as_of)),
                         exposure_share=float(shares[j])))
    cov = pd.DataFrame(rows, columns=["factor", "kind", "source", "detail", "first_date", "last_date", "level", "observed",
                                      "exposure_share"])
    out = []
    consts = family_constants(inputs)
    for name, value in (family_counts(scen) if counts is None else counts).items():
        n, c = value[0], value[1]
        tally = value[2] if len(value) > 2 else None
        const = consts.get(name, {})
        garch = parse_garch_boundary(const.get("garch_boundary"))
        guarded = "guard_multiple" in const
        for j, f in enumerate(market.factors):
            out.append(dict(family=name, factor=f, scenarios=n, moved=int(c[0, j]), from_data=int(c[1, j]),
                            filled=int(c[2, j]), no_data=int(c[3, j]),
                            implausible=int(tally[0][j]) if tally is not None else None,
                            max_multiple=float(tally[1][j]) if tally is not None else np.nan,
                            guard_multiple=float(const["guard_multiple"]) if guarded else np.nan,
                            guard_cap=bool(const["guard_cap"]) if guarded else None,
                            garch_boundary=garch.get(f)))
    fam_tab = pd.DataFrame(out, columns=["family", "factor", "scenarios", "moved", "from_data", "filled", "no_data",
                                         "implausible", "max_multiple", "guard_multiple", "guard_cap", "garch_boundary"])
    fam_tab["implausible"] = fam_tab["implausible"].astype("Int64")
    fam_tab["guard_cap"] = fam_tab["guard_cap"].astype("boolean")
    return {"coverage": cov, "coverage_families": fam_tab}
