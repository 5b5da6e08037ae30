"""Several market-data sources merged into one history, and curves completed from the tenors given.

A source is a file (CSV, Parquet), a DuckDB database read in place (a table or a read-only query), or the
bundled history.  Sources are listed in order of precedence; :func:`merge_histories` combines them per
factor:

* **levels for the snapshot** (``History.snapshot_levels``): on each date, the level of the
  highest-precedence source that has one;
* **levels for moves** (``History.levels``): the highest-precedence source's own series over its span,
  extended before and after it by the next source's series, rebased at the seam (scaled for a price,
  shifted for a rate, spread or vol) so that every move is the move of one source.  A log-return is
  unchanged by a scale and a difference by a shift, so a replay of 2008 takes the bundled history's
  moves when the user's file starts in 2021, and applies them to the user's levels.

Where two sources both have a level on a date, precedence decides; the largest difference is reported
in the factor's provenance.  :func:`complete_curves` adds the missing tenors of a zero curve by linear
interpolation in zero yield against tenor (flat beyond the first and last tenor given), on every date,
so a curve shocked at 2y and 10y moves a 5-year bond by the interpolated 5-year change.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .factors import factor_spec
from .history import History, frame_to_history, load_history

__all__ = ["UNITS", "RATE_KINDS", "par_to_zero", "SourceSpec", "load_source", "merge_histories", "complete_curves", "Provenance", "ProxySpec",
           "apply_proxies", "fit_proxy", "proxy_noise", "default_proxies", "MIN_PROXY_OVERLAP", "check_near_misses", "DEFAULT_MAP"]

#: how the default proxies' reasons begin in the coverage table (the report tells their flat factors by it)
DEFAULT_MAP = "default map: "
#: how a source's rate columns may be quoted
RATE_KINDS = ("zero", "par")
#: units a source's column may be given in, and the factor by which each is turned into a decimal
UNITS = {"decimal": 1.0, "percent": 0.01, "bp": 1e-4}
#: a seam between two sources is exact when the lower one has a level on the seam date, and approximate
#: (the lower source's nearest earlier level taken for it) within this many calendar days
SEAM_DAYS = 7


@dataclass(frozen=True)
class SourceSpec:
    """One source of factor history.

    Exactly one of ``path`` (CSV, Parquet or a DuckDB database file), or ``bundled=True``.  A DuckDB
    database needs ``table`` or ``query`` (a read-only SQL query returning a date column and factor
    columns).  ``columns`` maps the source's column names to factor names; ``units`` gives a column's
    unit (``decimal``, ``percent`` or ``bp``; prices are never scaled).  ``kind`` says how the source's
    ``IR.*`` columns are quoted: ``zero`` (continuously compounded zero yields, the factors' own
    convention) or ``par`` (semi-annual par yields, the US Treasury's convention), bootstrapped to zero
    yields at the tenors observed each day (:func:`stressgrid.core.curves.bootstrap_par_semiannual`).
    """

    path: Path | None = None
    bundled: bool = False
    date_column: str = "date"
    columns: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    table: str | None = None
    query: str | None = None
    kind: str = "zero"

    @property
    def label(self) -> str:
        if self.bundled:
            return "bundled"
        if self.table or self.query:
            return f"{self.path} ({'table ' + self.table if self.table else 'query'})"
        return str(self.path)


@dataclass(frozen=True)
class Provenance:
    """Where a factor's history comes from: ``source`` is ``history`` (a user's source), ``bundled``,
    ``interpolated`` or ``proxy``; ``detail`` names the file(s), the method or the differences between sources."""

    source: str
    detail: str
    #: dates on which the level was interpolated from the rest of its curve (see :func:`complete_curves`)
    interpolated: pd.DatetimeIndex | None = None
    #: a proxied factor: the dates whose level (and move into it) comes from the proxy, and the daily
    #: standard deviation of the proxy's residual, added to those moves in estimation windows
    #: (:func:`proxy_noise`), or None where it is unknown
    synthetic: pd.DatetimeIndex | None = None
    residual_sd: float | None = None


def _read_duckdb(spec: SourceSpec) -> pd.DataFrame:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        raise ConfigError(f"history source {spec.path}: reading a DuckDB database needs the duckdb package") from None
    if not Path(spec.path).exists():
        raise DataError(f"history source {spec.path}: not found")
    if bool(spec.table) == bool(spec.query):
        raise ConfigError(f"history source {spec.path}: a DuckDB database needs exactly one of 'table' or 'query'")
    try:
        con = duckdb.connect(str(spec.path), read_only=True)
    except Exception as exc:
        raise DataError(f"history source {spec.path}: cannot be opened as a DuckDB database ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]})") from None
    try:
        if spec.table:
            rel = con.table(spec.table)
        else:
            rel = con.sql(spec.query)
        if rel is None:
            raise DataError(f"history source {spec.path}, field 'query': the query returns no rows or columns")
        return rel.df()
    except DataError:
        raise
    except Exception as exc:
        field_ = "table" if spec.table else "query"
        value = spec.table if spec.table else spec.query
        raise DataError(f"history source {spec.path}, field {field_!r}: {str(exc).splitlines()[0]} (got {value!r})") from None
    finally:
        con.close()


def load_source(spec: SourceSpec) -> History:
    """Read and validate one source; values in ``percent`` or ``bp`` are turned into decimals."""
    for col, unit in spec.units.items():
        if unit not in UNITS:
            raise ConfigError(f"history source {spec.label}, field 'units.{col}': unknown unit {unit!r}; "
                              f"expected one of {', '.join(UNITS)}")
    if spec.kind not in RATE_KINDS:
        raise ConfigError(f"history source {spec.label}, field 'kind': unknown rate quote {spec.kind!r}; expected "
                          f"one of {', '.join(RATE_KINDS)}")
    if spec.bundled:
        return load_history()
    p = Path(spec.path)
    if p.suffix.lower() in (".duckdb", ".db", ".ddb") or spec.table or spec.query:
        raw = _read_duckdb(spec)
        h = frame_to_history(raw, spec.label, spec.columns, spec.date_column, spec.units)
    else:
        h = load_history(p, spec.columns, spec.date_column, units=spec.units)
    return par_to_zero(h) if spec.kind == "par" else h


def par_to_zero(history: History) -> History:
    """A history whose ``IR.*`` columns are semi-annual par yields, with those columns replaced by the
    continuously compounded zero yields bootstrapped from each day's observed par yields of the same
    currency, at the same tenors (:func:`stressgrid.core.curves.bootstrap_par_semiannual`)."""
    from .curves import bootstrap_par_semiannual

    levels = history.levels.copy()
    by_ccy: dict[str, list[tuple[float, str]]] = {}
    for c in levels.columns:
        spec = factor_spec(c)
        if spec.kind == "rate":
            by_ccy.setdefault(spec.currency, []).append((spec.tenor_years, c))
    if not by_ccy:
        raise ConfigError(f"history source {history.source}, field 'kind': par, but the source has no IR.* column")
    prov = dict(history.provenance)
    for ccy, cols in by_ccy.items():
        cols.sort()
        t = np.array([c[0] for c in cols])
        names = [c[1] for c in cols]
        par = levels[names].to_numpy()
        zero = np.full(par.shape, np.nan)
        for i, row in enumerate(par):
            ok = np.isfinite(row)
            if ok.any():
                zero[i, ok] = bootstrap_par_semiannual(t[ok], row[ok], t[ok])
        levels[names] = zero
        for c in names:
            prov[c] = Provenance("history", f"{history.source}; zero yields bootstrapped from semi-annual par yields "
                                 f"({', '.join(n.split('.')[-1] for n in names)})")
    return replace(history, levels=levels, provenance=prov)


def _seam_value(series: pd.Series, date: pd.Timestamp, before: bool) -> tuple[pd.Timestamp, float] | None:
    """The lower source's level used at a seam: on the date itself, else its nearest level before it
    (for a seam at the start of the higher source) or after it (at the end)."""
    if date in series.index:
        return date, float(series.loc[date])
    part = series.loc[:date] if before else series.loc[date:]
    if part.empty:
        part = series.loc[date:] if before else series.loc[:date]
        if part.empty:
            return None
        return (part.index[0], float(part.iloc[0])) if before else (part.index[-1], float(part.iloc[-1]))
    return (part.index[-1], float(part.iloc[-1])) if before else (part.index[0], float(part.iloc[0]))


def _rebase(values: pd.Series, seam_value: float, target: float, is_log: bool) -> pd.Series:
    if is_log:
        return values * (target / seam_value)
    return values + (target - seam_value)


def _chain(series: list[tuple[str, pd.Series]], is_log: bool) -> tuple[pd.Series, list[str]]:
    """One factor's series from sources in precedence order: the first source's series, extended before
    and after its span by each next source rebased at the seam.  Returns the series and notes (spans,
    seams, largest differences where two sources overlap)."""
    name, out = series[0]
    notes = [f"{name} {out.index[0].date()}..{out.index[-1].date()}"]
    for name, x in series[1:]:
        a, b = out.index[0], out.index[-1]
        both = out.index.intersection(x.index)
        if len(both):
            d = np.abs(out.loc[both].to_numpy() - x.loc[both].to_numpy())
            if is_log:
                d = d / np.abs(out.loc[both].to_numpy())
            k = int(np.argmax(d))
            if d[k] > 0:
                notes.append(f"{name} differs on {len(both)} shared dates by up to "
                             f"{d[k]:.3g}{' (relative)' if is_log else ''} on {both[k].date()}; precedence kept")
        pieces = [out]
        early, late = x.loc[: a - pd.Timedelta(days=1)], x.loc[b + pd.Timedelta(days=1):]
        if len(early):
            seam = _seam_value(x, a, before=True)
            pieces.append(_rebase(early, seam[1], float(out.iloc[0]), is_log))
            gap = (a - seam[0]).days
            notes.append(f"{name} before {a.date()}" + (f" (seam {gap} days apart)" if gap > SEAM_DAYS else ""))
        if len(late):
            seam = _seam_value(x, b, before=False)
            pieces.append(_rebase(late, seam[1], float(out.iloc[-1]), is_log))
            gap = abs((seam[0] - b).days)
            notes.append(f"{name} after {b.date()}" + (f" (seam {gap} days apart)" if gap > SEAM_DAYS else ""))
        out = pd.concat(pieces).sort_index()
    return out, notes


#: two sources' levels of one factor whose median ratio on shared dates is beyond this factor (either
#: way) cannot be the same quantity in the same unit: a rate in percent read as a decimal is 100 times
#: too large, one in percent declared as basis points 100 times too small
SCALE_RATIO = 10.0
#: shared dates needed before two sources' scales are compared, and the smallest level (in absolute
#: value) of the lower source that enters the ratio (rates near zero give meaningless ratios)
SCALE_MIN_DATES, SCALE_MIN_LEVEL = 20, 1e-3


def _observed(h: History, f: str) -> pd.Series:
    """Factor ``f``'s levels as source ``h`` observed them: without the dates it interpolated."""
    s = h.levels[f].dropna()
    p = h.provenance.get(f)
    if p is not None and p.source == "interpolated":
        return s.iloc[:0]
    if p is not None and p.interpolated is not None:
        s = s.drop(s.index.intersection(p.interpolated))
    return s


def _check_scales(f: str, sources: list[History]) -> None:
    """A factor's level in a source is within :data:`SCALE_RATIO` of its level in every later source on
    their shared dates (median ratio), or the batch stops naming the column and the likely unit."""
    for i, hi in enumerate(sources):
        a = _observed(hi, f)
        for lo in sources[i + 1:]:
            b = _observed(lo, f)
            both = a.index.intersection(b.index)
            x, y = a.loc[both].to_numpy(), b.loc[both].to_numpy()
            keep = (np.abs(y) > SCALE_MIN_LEVEL) & (x != 0)
            if keep.sum() < SCALE_MIN_DATES:
                continue
            ratio = float(np.median(x[keep] / y[keep]))
            if 1.0 / SCALE_RATIO <= abs(ratio) <= SCALE_RATIO:
                continue
            col = next((c for c, name in hi.mapping.items() if name == f), f)
            hint = ("a price in another unit or of another instrument: check the column and its mapping"
                    if factor_spec(f).is_log else "check the column's unit under history.units (decimal, percent or bp)")
            raise DataError(f"history file {hi.source}, column {col!r} ({f}): its levels are {ratio:.3g} times those of "
                            f"{lo.source} on {int(keep.sum())} shared dates (median); {hint}")


def check_near_misses(sources: list[History], needed: Iterable[str], used: Iterable[str] = ()) -> None:
    """A factor of a user's source that no position needs (nor ``used``, e.g. as a proxy) and that is one
    or two characters from a needed factor no user source has is a typo (``EQ.APPL`` for ``EQ.AAPL``):
    left alone, the needed factor would quietly take the bundled history's levels instead of the user's."""
    import difflib

    needed = list(dict.fromkeys(needed))
    mine = {f for h in sources if h.source != "bundled" for f in h.levels.columns}
    wanted = [f for f in needed if f not in mine]
    spare = set(needed) | set(used)
    # any tenor of a curve the book needs completes the needed tenors (complete_curves)
    curves = {factor_spec(f).currency for f in needed if factor_spec(f).kind == "rate"}
    for h in sources:
        if h.source == "bundled":
            continue
        for f in h.levels.columns:
            spec = factor_spec(f)
            if f in spare or (spec.kind == "rate" and spec.currency in curves):
                continue
            close = difflib.get_close_matches(f, wanted, n=1, cutoff=0.8)
            if close and factor_spec(close[0]).kind == spec.kind:
                col = next((c for c, name in h.mapping.items() if name == f), None)
                field = f"field 'columns.{col}'" if col is not None else f"column {f!r}"
                raise ConfigError(f"history file {h.source}, {field}: no position needs {f}, and the book's {close[0]} "
                                  f"is in none of your sources; did you mean {close[0]}? (got {f!r})")


def merge_histories(histories: list[History]) -> History:
    """Merge histories given in order of precedence (first wins); see the module's description.

    A single history is returned as it is.
    """
    if not histories:
        raise ConfigError("history: no source given")
    if len(histories) == 1:
        h = histories[0]
        kind = "bundled" if h.source == "bundled" else "history"
        return replace(h, provenance={**{f: Provenance(kind, h.source) for f in h.levels.columns}, **h.provenance})
    factors = list(dict.fromkeys(f for h in histories for f in h.levels.columns))
    index = histories[0].levels.index
    for h in histories[1:]:
        index = index.union(h.levels.index)
    chained, snap, prov = {}, {}, {}
    for f in factors:
        srcs = [h for h in histories if f in h.levels.columns and h.levels[f].notna().any()]
        have = [(h.source, h.levels[f].dropna()) for h in srcs]
        if not have:
            chained[f] = snap[f] = pd.Series(np.nan, index=index)
            prov[f] = Provenance("history", "no observation in any source")
            continue
        _check_scales(f, srcs)
        s, notes = _chain(have, factor_spec(f).is_log)
        chained[f] = s.reindex(index)
        first = srcs[0].snapshot[f].reindex(index)
        taken = first.notna().to_numpy()
        filled = _interpolated(srcs[0], f, index, taken)
        for h in srcs[1:]:
            x = h.snapshot[f].reindex(index)
            new = first.isna().to_numpy() & x.notna().to_numpy()
            filled = filled.union(_interpolated(h, f, index, new))
            first = first.combine_first(x)
        snap[f] = first
        top = have[0][0]
        # what a source did to its own values (par yields bootstrapped to zero yields)
        notes += [p.detail for h in srcs if (p := h.provenance.get(f)) is not None and p.source == "history"
                  and p.interpolated is None and p.detail != h.source]
        prov[f] = Provenance("bundled" if top == "bundled" and len(have) == 1 else "history", "; ".join(notes),
                             filled if len(filled) else None)
    levels = pd.DataFrame(chained, index=pd.DatetimeIndex(index, name="date"))
    snapshot = pd.DataFrame(snap, index=pd.DatetimeIndex(index, name="date"))
    source = " + ".join(h.source for h in histories)
    return History(levels=levels, source=source, mapping={}, snapshot_levels=snapshot, provenance=prov)


def _interpolated(h: History, f: str, index: pd.DatetimeIndex, mask: np.ndarray) -> pd.DatetimeIndex:
    """The dates among ``index[mask]`` on which source ``h`` interpolated factor ``f``."""
    p = h.provenance.get(f)
    if p is None or p.interpolated is None:
        return pd.DatetimeIndex([])
    return index[mask].intersection(p.interpolated)


def complete_curves(history: History, needed: Iterable[str]) -> History:
    """Complete the needed ``IR.CCY.TENOR`` factors from the tenors of their curve observed each day:
    linear interpolation in zero yield against tenor, flat beyond the shortest and longest tenor observed.

    A tenor the history lacks altogether is added (provenance ``interpolated``); a tenor it has is filled
    on the dates it is not observed but other tenors of its curve are (its provenance says on how many
    dates).  The snapshot levels and the levels for moves are completed alike.
    """
    needed = list(dict.fromkeys(needed))
    by_ccy: dict[str, list[str]] = {}
    for f in needed:
        spec = factor_spec(f)
        if spec.kind == "rate":
            by_ccy.setdefault(spec.currency, []).append(f)
    if not by_ccy:
        return history
    levels = history.levels.copy()
    snap = history.snapshot_levels.copy() if history.snapshot_levels is not None else None
    prov = dict(history.provenance)
    changed = False
    for ccy, want_f in by_ccy.items():
        given = sorted((factor_spec(c).tenor_years, c) for c in history.levels.columns
                       if c.startswith(f"IR.{ccy}.") and factor_spec(c).kind == "rate")
        if not given:
            continue
        t = np.array([g[0] for g in given])
        cols = [g[1] for g in given]
        want = np.array([factor_spec(f).tenor_years for f in want_f])
        filled = {}
        for frame in (levels,) + ((snap,) if snap is not None else ()):
            y = frame[cols].to_numpy()
            new = _interpolate_rows(y, t, want)
            for j, f in enumerate(want_f):
                old = frame[f].to_numpy() if f in frame.columns else np.full(len(frame), np.nan)
                gap = np.isnan(old) & ~np.isnan(new[:, j])
                if gap.any():
                    frame[f] = np.where(gap, new[:, j], old)
                    dates = frame.index[gap]
                    filled[f] = dates if f not in filled else filled[f].union(dates)
        method = "linear in zero yield between the tenors observed each day, flat beyond the shortest and longest"
        for f, dates in filled.items():
            changed = True
            if f not in history.levels.columns:
                prov[f] = Provenance("interpolated", f"{method} ({', '.join(c.split('.')[-1] for c in cols)})", dates)
            else:
                p = prov.get(f)
                kind = "bundled" if history.source == "bundled" else "history"
                base = (p.source, p.detail + "; ") if p is not None else (kind, history.source + "; ")
                prov[f] = Provenance(base[0], f"{base[1]}interpolated on {len(dates)} dates without an observation "
                                     f"({method})", dates)
    if not changed:
        return history
    return replace(history, levels=levels, snapshot_levels=snap, provenance=prov)


def _interpolate_rows(y: np.ndarray, t: np.ndarray, want: np.ndarray) -> np.ndarray:
    """``[D, len(want)]``: each row of ``y [D, K]`` (NaN where a tenor is not observed) interpolated
    linearly in ``t`` at ``want``, flat beyond the observed ends; NaN where a row has no observation."""
    out = np.full((y.shape[0], len(want)), np.nan)
    ok = ~np.isnan(y)
    full = ok.all(axis=1)
    if full.any():  # the common case: every given tenor observed; one vectorised interpolation
        idx = np.searchsorted(t, want).clip(1, len(t) - 1) if len(t) > 1 else np.zeros(len(want), int)
        if len(t) == 1:
            out[full] = y[full][:, [0] * len(want)]
        else:
            t0, t1 = t[idx - 1], t[idx]
            w = np.clip((want - t0) / (t1 - t0), 0.0, 1.0)
            yf = y[full]
            out[full] = yf[:, idx - 1] * (1 - w) + yf[:, idx] * w
    for r in np.flatnonzero(~full & ok.any(axis=1)):
        out[r] = np.interp(want, t[ok[r]], y[r, ok[r]])
    return out


@dataclass(frozen=True)
class ProxySpec:
    """A proxy for a factor: its moves are ``beta`` times the proxy's moves (each in its own convention:
    log-returns for prices, changes otherwise).  ``beta=None``: fitted by least squares on the days both
    are observed (at least :data:`MIN_PROXY_OVERLAP`)."""

    factor: str
    beta: float | None = None
    #: the residual's daily standard deviation (in the factor's move units), for a factor without enough
    #: history of its own to estimate it; None: estimated on the common days, or no residual
    residual_sd: float | None = None
    #: why this proxy and beta were chosen (the default map's rule), reported in the coverage table
    rule: str | None = None
    #: extend the factor's own history only before its first observation (never after its last, so that
    #: a stale factor stays stale at the as-of date)
    backward_only: bool = False


#: days of common history needed to fit a proxy's beta
MIN_PROXY_OVERLAP = 60


def _move_space(values: np.ndarray, is_log: bool) -> np.ndarray:
    return np.log(values) if is_log else values


def fit_proxy(history: History, target: str, proxy: str) -> tuple[float, float, int]:
    """``(beta, R^2, days)``: the least-squares slope of the target's daily moves on the proxy's daily
    moves over the days both are observed (with an intercept; R^2 is the squared correlation)."""
    return _fit_levels(history.levels[target].to_numpy(float), history.levels[proxy].to_numpy(float),
                       factor_spec(target).is_log, factor_spec(proxy).is_log)


def _fit_levels(target: np.ndarray, proxy: np.ndarray, target_log: bool, proxy_log: bool) -> tuple[float, float, int]:
    """:func:`fit_proxy` on two columns of levels (NaN where a factor is not observed)."""
    both = ~(np.isnan(target) | np.isnan(proxy))
    n = int(both.sum())
    if n < MIN_PROXY_OVERLAP + 1:
        return float("nan"), float("nan"), max(n - 1, 0)
    y = np.diff(_move_space(target[both], target_log))
    x = np.diff(_move_space(proxy[both], proxy_log))
    vx = float(np.var(x))
    if vx == 0:
        return float("nan"), float("nan"), len(x)
    beta = float(np.cov(x, y, bias=True)[0, 1] / vx)
    r = float(np.corrcoef(x, y)[0, 1]) if np.var(y) > 0 else 0.0
    return beta, r * r, len(x)


def apply_proxies(history: History, proxies: Mapping[str, ProxySpec], source: str = "proxies") -> History:
    """Give each proxied factor the moves of its proxy times beta where it has no observation of its own
    (before and after its own span, or everywhere when it has none), in both the levels for moves and
    the snapshot levels.  A factor with history of its own keeps its provenance's source (``history``
    or ``bundled``), with the proxy in its detail; one without is ``proxy``.  A factor without any history takes its snapshot level from elsewhere (a
    market override): its proxied series is anchored at an arbitrary level, and only its moves are used.

    Raises :class:`ConfigError` for a proxy cycle, a proxy without history, a proxy of another kind
    without an explicit beta, or a beta that cannot be fitted."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(f: str, path: list[str]) -> None:
        if state.get(f) == 2 or f not in proxies:
            return
        if state.get(f) == 1:
            raise ConfigError(f"{source}: proxy cycle {' -> '.join(path + [f])}")
        state[f] = 1
        visit(proxies[f].factor, path + [f])
        state[f] = 2
        order.append(f)

    for f in proxies:
        factor_spec(f)
        factor_spec(proxies[f].factor)
        visit(f, [])
    levels = history.levels.copy()
    snap = history.snapshot_levels.copy() if history.snapshot_levels is not None else None
    prov = dict(history.provenance)
    for f in order:
        p = proxies[f]
        if p.factor not in levels.columns or levels[p.factor].isna().all():
            raise ConfigError(f"{source}, field '{f}.factor': the proxy {p.factor} has no history")
        t_log, p_log = factor_spec(f).is_log, factor_spec(p.factor).is_log
        own = levels[f].dropna() if f in levels.columns else pd.Series(dtype=float)
        if p.beta is None:
            if factor_spec(f).kind != factor_spec(p.factor).kind:
                raise ConfigError(f"{source}, field '{f}.beta': {f} ({factor_spec(f).kind}) and its proxy "
                                  f"{p.factor} ({factor_spec(p.factor).kind}) are of different kinds; give beta")
            beta, r2, days = fit_proxy(History(levels, history.source), f, p.factor) if len(own) else (float("nan"),) * 2 + (0,)
            if not np.isfinite(beta):
                raise ConfigError(f"{source}, field '{f}.beta': {days} days of common history with {p.factor}, "
                                  f"need {MIN_PROXY_OVERLAP} to fit it; give beta")
            how = f"beta {beta:.4g} fitted on {days} days, R^2 {r2:.3f}" + (f" ({p.rule})" if p.rule else "")
        else:
            beta = float(p.beta)
            how = f"beta {beta:.4g} " + (f"({p.rule})" if p.rule else "declared")
            if len(own) > MIN_PROXY_OVERLAP:
                fb, r2, days = fit_proxy(History(levels, history.source), f, p.factor)
                if np.isfinite(fb):
                    how += f" (fitted would be {fb:.4g} on {days} days, R^2 {r2:.3f})"
        resid = _residual_sd(levels, f, p.factor, beta) if len(own) > MIN_PROXY_OVERLAP else None
        if resid is None and p.residual_sd is not None:
            resid = float(p.residual_sd)
            how += f"; residual sd {resid:.4g} a day declared"
        elif resid is not None:
            how += f"; residual sd {resid:.4g} a day"
        synthetic = None
        for frame in (levels,) + ((snap,) if snap is not None else ()):
            m = _move_space(frame[p.factor].dropna().to_numpy(), p_log) * beta
            series = pd.Series(np.exp(m) if t_log else m, index=frame[p.factor].dropna().index)
            mine = frame[f].dropna() if f in frame.columns else pd.Series(dtype=float)
            if p.backward_only and len(mine):
                series = series.loc[:mine.index[0]]
            if len(mine):
                merged, _ = _chain([("own", mine), ("proxy", series)], t_log)
            else:
                merged = series
            frame[f] = merged.reindex(frame.index)
            if synthetic is None:  # the levels for moves: the dates the proxy filled
                synthetic = frame.index[frame[f].notna().to_numpy() & ~frame.index.isin(own.index)]
        detail = f"moves of {p.factor} x {how}" + ("" if len(own) else "; no history of its own")
        if len(own):
            when = "before it" if p.backward_only else "before and after it"
            detail = f"own history {own.index[0].date()}..{own.index[-1].date()}, {when} the " + detail
        if resid is None:
            detail += "; no residual noise in bootstrap and Monte Carlo families (too little common history to estimate it; give residual_sd)"
        before = prov.get(f)
        if len(own) and before is not None and before.source in ("history", "bundled"):
            # its own history, extended: it keeps its source, and the detail says what the proxy filled
            prov[f] = Provenance(before.source, f"{before.detail}; {detail}", before.interpolated, synthetic, resid)
        else:
            prov[f] = Provenance("proxy", detail, synthetic=synthetic, residual_sd=resid)
    return replace(history, levels=levels, snapshot_levels=snap, provenance=prov)


def _residual_sd(levels: pd.DataFrame, target: str, proxy: str, beta: float) -> float | None:
    """The daily standard deviation of ``target``'s moves less ``beta`` times ``proxy``'s, on the days
    both are observed (None with fewer than :data:`MIN_PROXY_OVERLAP`)."""
    both = levels[[target, proxy]].dropna()
    if len(both) < MIN_PROXY_OVERLAP + 1:
        return None
    y = np.diff(_move_space(both[target].to_numpy(), factor_spec(target).is_log))
    x = np.diff(_move_space(both[proxy].to_numpy(), factor_spec(proxy).is_log))
    return float(np.std(y - beta * x, ddof=1))


def proxy_noise(history: History, factor: str, ends: pd.DatetimeIndex, starts: pd.DatetimeIndex) -> np.ndarray | None:
    """The proxy residual to add to ``factor``'s moves from ``starts[i]`` to ``ends[i]`` (dates of the
    history), or None for a factor that is not proxied or has no known residual.

    The residual is a fixed pseudo-random normal series over the history's dates, seeded by the factor's
    name (the same on every run and every split of the work), scaled by the residual's daily standard
    deviation and drawn only on the dates the proxy filled; a move takes the residuals of the dates it
    spans, so its variance grows with the days it covers.  With it, a proxied factor's daily moves
    correlate with its proxy's as they did where both were observed (R, not 1)."""
    p = history.provenance.get(factor)
    if p is None or p.synthetic is None or not p.residual_sd or not len(p.synthetic):
        return None
    index = history.levels.index
    rng = np.random.default_rng(np.random.SeedSequence(zlib.crc32(factor.encode())))
    e = rng.standard_normal(len(index)) * p.residual_sd * index.isin(p.synthetic)
    cum = np.concatenate([[0.0], np.cumsum(e)])
    a = index.searchsorted(starts, side="right")
    b = index.searchsorted(ends, side="right")
    return cum[b] - cum[a]


#: the shape factors of a vol surface (``VOL.UNDERLYING.SHAPE``), moved by the default map with its ATM level
VOL_SHAPES = ("TERM", "SKEW", "CURV")
#: the credit indices a single-name spread may be proxied by, in order of preference
CREDIT_INDICES = ("CR.CDX_IG", "CR.ITRAXX_MAIN", "CR.CDX_HY", "CR.ITRAXX_XOVER")


def default_proxies(factors: Iterable[str], history: History, levels: Mapping[str, float]) -> tuple[dict[str, ProxySpec], dict[str, str]]:
    """The default map for factors with no history of their own (``default_proxies: true``, docs/data.md).

    Returns ``(proxies, flat)``:

    * a zero yield of a curve other than USD moves with the USD yield of the same tenor (or the nearest
      tenor the history has), beta 1: a parallel co-movement, assumed because there is no history to fit it;
    * a vol surface's term, skew and curvature factors move with the surface's ATM level, beta their
      level over the ATM level at the as-of date: the smile scales with the ATM level;
    * a single-name credit spread moves with the first credit index of :data:`CREDIT_INDICES` that has
      history, beta the name's spread over the index's: spreads move in proportion to their level;
    * a futures basis is held at its level (``flat``, with that reason): the future keeps its carry over spot;
    * a factor whose own history starts more than :data:`LATE_START_DAYS` after the earliest of its kind
      is extended backwards (never forwards) by the factor of its kind, observed earlier, that fits its
      daily moves best on the common days (:func:`fit_proxy`; R^2 at least :data:`MIN_CHOSEN_R2`), with
      the fitted beta and residual.

    A factor without a level at the as-of date (a proxy gives moves, not a level: it comes from
    ``market.overrides``), or whose proxy has no history either, is left out (the coverage check then
    asks for its history or a declaration).  ``levels`` are the as-of levels
    (overrides, else the snapshot) that the level ratios use.
    """
    def has(f: str) -> bool:
        return f in history.snapshot.columns and bool(history.snapshot[f].notna().any())

    out: dict[str, ProxySpec] = {}
    flat: dict[str, str] = {}
    usd = sorted((factor_spec(c).tenor_years, c) for c in history.levels.columns
                 if c.startswith("IR.USD.") and factor_spec(c).kind == "rate" and has(c))
    index = next((c for c in CREDIT_INDICES if has(c)), None)
    for f in factors:
        if has(f):
            continue
        spec = factor_spec(f)
        parts = f.split(".")
        if spec.kind == "basis":
            flat[f] = DEFAULT_MAP + "a futures basis is held at its level (the future keeps its carry over spot)"
            continue
        if f not in levels:  # a proxy gives moves, not a level: without one the coverage check asks for it
            continue
        if spec.kind == "rate" and spec.currency != "USD" and usd:
            t, proxy = min(usd, key=lambda u: abs(u[0] - spec.tenor_years))
            tenor = "same tenor" if abs(t - spec.tenor_years) < 1e-9 else f"nearest tenor {proxy.split('.')[-1]}"
            out[f] = ProxySpec(proxy, 1.0, rule=DEFAULT_MAP + f"the USD curve's {tenor}, beta 1 assumed (parallel co-movement)")
        elif spec.kind == "vol" and len(parts) == 3 and parts[2] in VOL_SHAPES:
            atm = f"{parts[0]}.{parts[1]}.ATM"
            lv, la = levels.get(f), levels.get(atm)
            if has(atm) and lv is not None and la:
                out[f] = ProxySpec(atm, float(lv) / float(la),
                                   rule=DEFAULT_MAP + f"the smile scales with its ATM level ({lv:.4g} / {la:.4g} at the as-of date)")
        elif spec.kind == "spread" and index is not None and f not in CREDIT_INDICES:
            lv, li = levels.get(f), levels.get(index)
            if lv is not None and li:
                out[f] = ProxySpec(index, float(lv) / float(li),
                                   rule=DEFAULT_MAP + f"spreads move in proportion to their level ({lv:.4g} / {li:.4g} at the as-of date)")
    out.update(_fitted_extensions(factors, history, out, flat))
    return out, flat


#: a factor's own history starting this many days after the earliest of its kind is extended by a proxy
LATE_START_DAYS = 365
#: the least R^2 of a proxy chosen by regression
MIN_CHOSEN_R2 = 0.25


def _fitted_extensions(factors, history: History, taken: Mapping[str, ProxySpec], flat: Mapping[str, str]) -> dict[str, ProxySpec]:
    """For each needed factor whose own history starts well after the earliest of its kind: the factor
    of the same kind, observed before it, whose daily moves explain its own best (the largest R^2 on the
    common days, at least :data:`MIN_CHOSEN_R2` on :data:`MIN_PROXY_OVERLAP` days), extending its history
    backwards only, with the fitted beta."""
    snap = history.snapshot
    first = {c: snap[c].first_valid_index() for c in snap.columns if snap[c].notna().any()}
    out: dict[str, ProxySpec] = {}
    for f in factors:
        if f in taken or f in flat or f not in first:
            continue
        kind = factor_spec(f).kind
        same = [c for c in first if c != f and factor_spec(c).kind == kind
                and history.provenance.get(c, Provenance("", "")).source != "proxy"]
        if not same or (first[f] - min(first[c] for c in same)).days < LATE_START_DAYS:
            continue
        best = None
        target = history.levels[f].to_numpy(float)
        for c in same:
            if first[c] >= first[f]:
                continue
            beta, r2, days = _fit_levels(target, history.levels[c].to_numpy(float), factor_spec(f).is_log,
                                         factor_spec(c).is_log)
            if np.isfinite(r2) and r2 >= MIN_CHOSEN_R2 and (best is None or r2 > best[1]):
                best = (c, r2, days)
        if best is not None:
            out[f] = ProxySpec(best[0], None, backward_only=True,
                               rule=DEFAULT_MAP + f"of the {kind} factors observed earlier, the one that fits best")
    return out
