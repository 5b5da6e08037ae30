"""Hypothetical stress: shocks written by hand, by factor, by wildcard and by builder (curve parallel,
twist, butterfly and key-rate shifts, vol-surface parameters, credit spreads absolute or relative),
with the other factors held at zero or moved by their conditional expectation.

A hypothetical scenario says what moves; it is not read from a window of the history.  Each stress
resolves to one vector of factor shocks on the book's factors:

1. ``shocks``: ``{factor or pattern: shock}``; an exact name wins over patterns, and among the patterns
   that match a factor the most specific one (the most literal characters) wins;
2. ``curves``, ``surfaces`` and ``spreads``: builders whose shocks are added to those of ``shocks`` and
   to each other where they meet on a factor;
3. ``propagate`` (optional): the factors no shock sets move by their conditional expectation given the
   shocked ones (:func:`._predictive.conditional_stress`), with the Mahalanobis distance and tail
   probability of the shock; without it they stay at 0, as declared.

References
----------
.. [Ho92] T. S. Y. Ho, "Key rate durations: measures of interest rate risks", Journal of Fixed Income
   2(2) (1992) 29-44: the key-rate shift (a triangle between neighbouring nodes).
.. [MFE15] A. J. McNeil, R. Frey and P. Embrechts, "Quantitative Risk Management", revised ed.,
   Princeton (2015), Prop. 6.2: the conditional mean used to propagate.
"""

from __future__ import annotations

import math
import re
from fnmatch import fnmatchcase
from typing import Literal, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stressgrid.core import ConfigError, History, ScenarioSet, factor_spec, tenor_years
from stressgrid.core.curves import DEFAULT_PIVOT_YEARS, curve_shock

from ._common import WindowSpec, parse_shock
from ._correlation import EstimatorSpec
from ._predictive import PredictiveSpec, StressDef, predictive_scenarios
from ._tdist import check_dof

__all__ = [
    "CurveBuilder",
    "SurfaceShock",
    "SpreadShock",
    "PropagateSpec",
    "HypotheticalStress",
    "HypotheticalSpec",
    "resolve_stress",
    "hypothetical_scenarios",
]

#: a shock value: a number in the factor's convention, or ``"-10%"`` / ``"+50bp"`` (:func:`parse_shock`)
Shock = Union[float, str]

_MULTIPLIER = re.compile(r"^\s*x\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*$")
_RELATIVE = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*(%)?\s*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_UNDERLYING = re.compile(r"^[A-Z0-9_]+$")
#: a stand-in factor whose convention (absolute change, decimal) parses the shocks whose factor is not known
#: when the batch file is read: builder sizes, surface and spread values, values under a pattern
_RATE = "IR.USD.10Y"
#: the surface parameters a ``surfaces`` entry may shock, in factor-name order
SURFACE_PARAMS = ("atm", "skew", "term", "curv")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _tenor(v: Optional[str]) -> Optional[str]:
    """Validator of a tenor string (``"2Y"``, ``"6M"``): a positive number of D, W, M or Y."""
    if v is None:
        return v
    try:
        t = tenor_years(str(v))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if t <= 0:
        raise ValueError(f"tenor {v!r} must be longer than zero")
    return v


def _check_shock(v: Shock, factor: str | None = None) -> Shock:
    """Validator of a shock's syntax: in the convention of ``factor``, or, when the factor is not known yet
    (a pattern, a builder), of an absolute change (a rate's, a spread's or a vol's)."""
    try:
        parse_shock(v, factor or _RATE)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    except ValueError as exc:
        if factor is None:  # the message names no factor: the one parsed against is a stand-in
            raise ValueError(str(exc).removeprefix(f"shock of {_RATE}: ")) from None
        raise
    return v


def _multiplier(v: Shock) -> Optional[float]:
    """The ``m`` of a surface value written ``"xm"`` (the parameter becomes ``m`` times its level), else None."""
    m = _MULTIPLIER.match(v) if isinstance(v, str) else None
    return None if m is None else float(m.group(1))


class CurveBuilder(_Strict):
    """A shift of one currency's zero curve (absolute changes of the ``IR.<currency>.*`` zero yields).

    Batch-file keys: ``currency``, ``kind`` (``parallel``, ``twist``, ``butterfly``, ``key_rate``),
    ``size`` (``"+30bp"``, ``"+0.3%"`` or a decimal: 0.003), ``short`` and ``long`` (tenors such as
    ``"2Y"``; twist and butterfly), ``pivot`` (tenor; twist and butterfly, default ``sqrt(short * long)``
    when both are given, else :data:`core.curves.DEFAULT_PIVOT_YEARS`), ``key_tenor`` (key_rate).

    ``twist``'s ``size`` is the change of the slope between ``short`` and ``long`` (long minus short;
    the first and last tenors of the curve when not given): ``+30bp`` is a 30bp steepener, each end
    moving by 15bp, so :func:`core.curves.curve_shock` receives ``size / 2``.  ``butterfly`` and the
    others keep :func:`core.curves.curve_shock`'s meaning.
    """

    currency: str
    kind: Literal["parallel", "twist", "butterfly", "key_rate"]
    size: Shock
    pivot: Optional[str] = None
    short: Optional[str] = None
    long: Optional[str] = None
    key_tenor: Optional[str] = None

    @field_validator("currency")
    @classmethod
    def _ccy(cls, v: str) -> str:
        if not _CURRENCY.match(v):
            raise ValueError(f"{v!r} is not a three-letter upper-case currency code")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        if _multiplier(v) is not None:
            raise ValueError(f"a curve shift is absolute ('+30bp', '-0.1%' or a decimal), not a multiplier ({v!r})")
        return _check_shock(v)

    @field_validator("pivot", "short", "long", "key_tenor")
    @classmethod
    def _tenors(cls, v):
        return _tenor(v)

    @model_validator(mode="after")
    def _keys(self) -> "CurveBuilder":
        shaped = self.kind in ("twist", "butterfly")
        given = [k for k in ("pivot", "short", "long") if getattr(self, k) is not None]
        if not shaped and given:
            raise ValueError(f"{self.kind} takes no {given[0]!r} (only twist and butterfly do)")
        if self.kind == "key_rate" and self.key_tenor is None:
            raise ValueError("key_rate needs key_tenor (a node of the curve, e.g. '10Y')")
        if self.kind != "key_rate" and self.key_tenor is not None:
            raise ValueError(f"{self.kind} takes no 'key_tenor' (only key_rate does)")
        if self.short is not None and self.long is not None and tenor_years(self.long) <= tenor_years(self.short):
            raise ValueError(f"long {self.long} must be longer than short {self.short}")
        return self

    def summary(self) -> str:
        span = f" {self.short or 'first'}..{self.long or 'last'}" if self.short or self.long else ""
        pivot = f" pivot {self.pivot}" if self.pivot else ""
        at = f" at {self.key_tenor}" if self.key_tenor else ""
        return f"{self.currency} {self.kind}{at}{span}{pivot} {self.size}"


class SurfaceShock(_Strict):
    """Shocks of one implied-vol surface's parameters, ``VOL.<underlying>.ATM/SKEW/TERM/CURV``.

    Each value is an absolute change (``"+5%"`` or ``"+500bp"`` is 0.05, five vol points; a number is a
    decimal) or ``"xm"``: the parameter becomes ``m`` times its current level (``atm: x2`` doubles the
    ATM vol).  A steeper put skew is a more negative ``skew``.
    """

    underlying: str
    atm: Optional[Shock] = None
    skew: Optional[Shock] = None
    term: Optional[Shock] = None
    curv: Optional[Shock] = None

    @field_validator("underlying")
    @classmethod
    def _und(cls, v: str) -> str:
        if not _UNDERLYING.match(v):
            raise ValueError(f"{v!r} is not an underlying of a VOL factor (upper case, e.g. SPX)")
        return v

    @field_validator("atm", "skew", "term", "curv")
    @classmethod
    def _value(cls, v):
        if v is None:
            return v
        m = _multiplier(v)
        if m is not None:
            if not m > 0:
                raise ValueError(f"multiplier {v!r} must be above 0")
            return v
        return _check_shock(v)

    @model_validator(mode="after")
    def _some(self) -> "SurfaceShock":
        if all(getattr(self, p) is None for p in SURFACE_PARAMS):
            raise ValueError(f"surface {self.underlying!r}: give at least one of {', '.join(SURFACE_PARAMS)}")
        return self

    def summary(self) -> str:
        return ", ".join(f"{self.underlying} {p} {getattr(self, p)}" for p in SURFACE_PARAMS if getattr(self, p) is not None)


class SpreadShock(_Strict):
    """A credit-spread move on the ``CR.*`` factors of the book that ``factors`` (a name or a pattern such
    as ``CR.*``) matches: ``shift`` (absolute: ``"+40bp"``) or ``relative`` (``"+50%"``: each spread
    moves by half its current level; a number is that fraction, 0.5)."""

    factors: str = Field(min_length=1)
    shift: Optional[Shock] = None
    relative: Optional[Union[float, str]] = None

    @field_validator("shift")
    @classmethod
    def _shift(cls, v):
        return None if v is None else _check_shock(v)

    @field_validator("relative")
    @classmethod
    def _relative(cls, v):
        if v is None:
            return v
        r = relative_change(v)
        if not r > -1.0:
            raise ValueError(f"relative change {v!r} is a fall of 100% or more; a spread stays positive")
        return v

    @model_validator(mode="after")
    def _one(self) -> "SpreadShock":
        if (self.shift is None) == (self.relative is None):
            raise ValueError(f"spreads {self.factors!r}: give exactly one of shift (absolute) and relative")
        return self

    def summary(self) -> str:
        return f"{self.factors} {self.shift}" if self.shift is not None else f"{self.factors} {self.relative} of its level"


def relative_change(v: Union[float, str]) -> float:
    """A relative change as a fraction: ``"+50%"`` is 0.5, a number is the fraction itself."""
    if isinstance(v, bool):
        raise ValueError(f"relative change {v!r} is not a number")
    if isinstance(v, (int, float)):
        x = float(v)
    else:
        m = _RELATIVE.match(str(v))
        if not m:
            raise ValueError(f"relative change {v!r} is not 'N%' or a fraction (e.g. '+50%', 0.5)")
        x = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not np.isfinite(x):
        raise ValueError(f"relative change {v!r} is not finite")
    return x


class PropagateSpec(_Strict):
    """``propagate``: move the factors no shock sets by their conditional expectation given the shocked
    ones, as :class:`._predictive.PredictiveSpec` does (the same keys and meaning: ``distribution``,
    ``dof``, ``estimator``, ``window``, ``horizon_days``, the horizon over which the covariance judges
    the shock, default 10)."""

    distribution: Literal["gaussian", "student_t"] = "gaussian"
    dof: Optional[float] = None
    estimator: EstimatorSpec = EstimatorSpec(method="ledoit_wolf")
    window: WindowSpec = WindowSpec()
    horizon_days: int = Field(default=10, ge=1, le=260)

    @field_validator("dof")
    @classmethod
    def _dof(cls, v):
        return check_dof(v)


def _is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def literal_length(pattern: str) -> int:
    """Characters of ``pattern`` that match only themselves (not ``*``, ``?`` or a ``[...]`` set): the
    specificity by which the most specific pattern wins."""
    n, i = 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1: i + 2] in ("!", "]") else i + 1)
            if j != -1:
                i = j + 1
                continue
        if c not in "*?":
            n += 1
        i += 1
    return n


class _ShockFields(_Strict):
    shocks: dict[str, Shock] = {}
    curves: list[CurveBuilder] = []
    surfaces: list[SurfaceShock] = []
    spreads: list[SpreadShock] = []
    propagate: Optional[PropagateSpec] = None

    @field_validator("shocks")
    @classmethod
    def _shocks(cls, v: dict) -> dict:
        for k, x in v.items():
            if not k:
                raise ValueError("an empty factor name")
            if _is_pattern(k):
                _check_shock(x)
            else:
                try:
                    factor_spec(k)
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
                _check_shock(x, k)
        return v

    def has_shocks(self) -> bool:
        return bool(self.shocks or self.curves or self.surfaces or self.spreads)

    def summary(self) -> str:
        """The stress in words, e.g. ``IR.USD.10Y +50bp; USD twist 2Y..10Y +30bp; SPX skew -5%``."""
        parts = [f"{k} {v}" for k, v in self.shocks.items()]
        parts += [c.summary() for c in self.curves] + [s.summary() for s in self.surfaces]
        parts += [s.summary() for s in self.spreads]
        return "; ".join(parts)


class HypotheticalStress(_ShockFields):
    """One named stress of a ``hypothetical`` family: ``name``, ``description`` (optional, the user's
    words) and the shock fields ``shocks``, ``curves``, ``surfaces``, ``spreads``, ``propagate``."""

    name: str = Field(min_length=1)
    description: Optional[str] = None

    @model_validator(mode="after")
    def _some(self) -> "HypotheticalStress":
        if not self.has_shocks():
            raise ValueError(f"stress {self.name!r}: give at least one of shocks, curves, surfaces, spreads")
        return self


class HypotheticalSpec(_ShockFields):
    """Hypothetical stress.

    Batch-file keys: ``kind: hypothetical``, ``name``, and either the shock fields of one scenario named
    after the family (``shocks``, ``curves``, ``surfaces``, ``spreads``, ``propagate``, ``description``)
    or ``stresses``, a list of ``{name, description, shocks, curves, surfaces, spreads, propagate}``;
    ``revaluation`` (``instantaneous``, the default: the book is valued at the as-of date, or
    ``horizon``: ``horizon_days`` business days later, with the shock's path ramping linearly over them)
    and ``horizon_days`` (default 1).
    """

    kind: Literal["hypothetical"]
    name: str = "hypothetical"
    description: Optional[str] = None
    stresses: Optional[list[HypotheticalStress]] = Field(default=None, min_length=1)
    #: value the book at the as-of date (a shock that happens now) or ``horizon_days`` later
    revaluation: Literal["horizon", "instantaneous"] = "instantaneous"
    horizon_days: int = Field(default=1, ge=1, le=260)

    @model_validator(mode="after")
    def _form(self) -> "HypotheticalSpec":
        top = [k for k in ("shocks", "curves", "surfaces", "spreads", "propagate", "description") if getattr(self, k)]
        if self.stresses is not None:
            if top:
                raise ValueError(f"scenario family {self.name!r}: give the shock fields either at the top ({top[0]!r}) "
                                 "for one scenario, or in each entry of 'stresses', not both")
            names = [s.name for s in self.stresses]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"stress name {sorted(dup)[0]!r} is used twice")
        elif not self.has_shocks():
            raise ValueError(f"scenario family {self.name!r}: give shocks, curves, surfaces or spreads (one scenario), "
                             "or a list of stresses")
        return self

    def stress_list(self) -> list[tuple[str, _ShockFields, str, Optional[str]]]:
        """``(scenario name, shock fields, field prefix, description)`` of each scenario, in order."""
        if self.stresses is None:
            return [(self.name, self, "", self.description)]
        return [(s.name, s, f"stresses[{i}].", s.description) for i, s in enumerate(self.stresses)]

    @property
    def n_scenarios(self) -> int:
        return 1 if self.stresses is None else len(self.stresses)


# ---------------------------------------------------------------------------------------------------
# resolution: the shock fields of one stress -> {factor: shock}
# ---------------------------------------------------------------------------------------------------


class _Context:
    """What resolving a stress needs: the family, the book's factors, the history's, and the levels."""

    def __init__(self, family: str, factors: Sequence[str], history: History, levels: Mapping[str, float] | None,
                 as_of):
        self.family = family
        self.factors = list(factors)
        self.book = set(self.factors)
        self.history_factors = [f for f in history.factors if f not in self.book]
        self.in_history = set(history.factors)
        self.history = history
        self.levels = dict(levels or {})
        self.as_of = as_of

    def where(self, field: str) -> str:
        return f"scenario family {self.family!r}, field '{field}'"

    def level(self, f: str, field: str) -> float:
        """``f``'s current level: the market snapshot's, else the history's last observation on or before
        the as-of date (its last date when there is none)."""
        x = self.levels.get(f)
        if x is None and f in self.history.snapshot.columns:
            at = pd.Timestamp(self.as_of) if self.as_of is not None else None
            s = self.history.snapshot[f].loc[:at].dropna()
            x = float(s.iloc[-1]) if len(s) else None
        if x is None or not np.isfinite(x):
            raise ConfigError(f"{self.where(field)}: no current level of {f} (neither the market snapshot nor the history "
                              "has one) to scale; give an absolute shock instead")
        return float(x)

    def parse(self, v: Shock, f: str, field: str) -> float:
        try:
            return parse_shock(v, f)
        except ValueError as exc:
            raise ConfigError(f"{self.where(field)}: {exc}") from None

    def shown(self, names: Sequence[str]) -> str:
        return ", ".join(list(names)[:12]) + (" ..." if len(names) > 12 else "")


def _explicit(st: _ShockFields, pre: str, ctx: _Context, outside: bool) -> dict[str, float]:
    """The ``shocks`` mapping resolved on the book's factors (and, with ``outside``, exact names of
    history factors): exact names first, then the most specific matching pattern."""
    field = f"{pre}shocks"
    exact = {k: v for k, v in st.shocks.items() if not _is_pattern(k)}
    patterns = {k: v for k, v in st.shocks.items() if _is_pattern(k)}
    for k in exact:
        if k not in ctx.book and not (outside and k in ctx.in_history):
            why = ("neither a factor of the book nor in the history" if outside else
                   "not a factor of the book (a factor outside it moves nothing without 'propagate')")
            raise ConfigError(f"{ctx.where(field)}: {k!r} is {why}; the book's factors are {ctx.shown(ctx.factors)}")
    for p in patterns:
        if not any(fnmatchcase(f, p) for f in ctx.factors):
            raise ConfigError(f"{ctx.where(field)}: pattern {p!r} matches no factor of the book; the book's factors "
                              f"are {ctx.shown(ctx.factors)}")
    out: dict[str, float] = {}
    for f in ctx.factors:
        if f in exact:
            out[f] = ctx.parse(exact[f], f, f"{field}.{f}")
            continue
        hits = [p for p in patterns if fnmatchcase(f, p)]
        if not hits:
            continue
        best = max(literal_length(p) for p in hits)
        top = [p for p in hits if literal_length(p) == best]
        values = {p: ctx.parse(patterns[p], f, f"{field}.{p}") for p in top}
        clash = [p for p in top if values[p] != values[top[0]]]
        if clash:
            raise ConfigError(f"{ctx.where(field)}: patterns {top[0]!r} ({patterns[top[0]]}) and {clash[0]!r} "
                              f"({patterns[clash[0]]}) both match {f} and are as specific as each other; give {f} its "
                              "own shock or make one pattern more specific")
        out[f] = values[top[0]]
    for k in exact:
        if k not in ctx.book:
            out[k] = ctx.parse(exact[k], k, f"{field}.{k}")
    return out


def curve_nodes(currency: str, names: Sequence[str]) -> tuple[np.ndarray, dict[str, int], list[str]]:
    """The tenor grid of ``currency``'s curve from the factor ``names`` (book and history): ``(tenors [K]
    years increasing, factor -> node index, node labels [K])``."""
    pts = sorted((factor_spec(f).tenor_years, f) for f in names if f.startswith(f"IR.{currency}."))
    tenors: list[float] = []
    labels: list[str] = []
    index: dict[str, int] = {}
    for t, f in pts:
        if not tenors or not math.isclose(t, tenors[-1], rel_tol=1e-9, abs_tol=1e-12):
            tenors.append(t)
            labels.append(f.rsplit(".", 1)[1])
        index[f] = len(tenors) - 1
    return np.asarray(tenors), index, labels


def curve_builder_shock(c: CurveBuilder, tenors: np.ndarray, labels: Sequence[str], field: str,
                        ctx: _Context | None = None) -> np.ndarray:
    """The shock ``[K]`` (decimals) of builder ``c`` on the curve nodes ``tenors`` (years, increasing).

    A ``twist``'s ``size`` is the slope change between ``short`` and ``long``, so
    :func:`core.curves.curve_shock` is called with ``size / 2``; the default pivot is
    ``sqrt(short * long)`` when both are given, else :data:`core.curves.DEFAULT_PIVOT_YEARS`.
    """
    where = ctx.where if ctx is not None else (lambda f: f"field '{f}'")
    size = parse_shock(c.size, _RATE)
    if c.kind == "parallel":
        return curve_shock(tenors, "parallel", size)
    if c.kind == "key_rate":
        k = tenor_years(c.key_tenor)
        hit = np.flatnonzero(np.isclose(tenors, k, rtol=1e-9, atol=1e-12))
        if len(hit) != 1:
            raise ConfigError(f"{where(field + '.key_tenor')}: {c.key_tenor!r} is not a node of the {c.currency} curve "
                              f"(its nodes in the book and the history: {', '.join(labels)})")
        return curve_shock(tenors, "key_rate", size, key_tenor=float(tenors[hit[0]]))
    short = tenor_years(c.short) if c.short is not None else None
    long = tenor_years(c.long) if c.long is not None else None
    if c.pivot is not None:
        pivot = tenor_years(c.pivot)
    else:
        pivot = math.sqrt(short * long) if short is not None and long is not None else DEFAULT_PIVOT_YEARS
    lo = short if short is not None else float(tenors[0])
    hi = long if long is not None else float(tenors[-1])
    if not lo < pivot < hi:
        raise ConfigError(f"{where(field + '.pivot')}: the pivot ({c.pivot or f'{pivot:g}Y'}) must lie strictly between "
                          f"the short end ({c.short or labels[0]}) and the long end ({c.long or labels[-1]}) of the "
                          f"{c.currency} {c.kind}")
    return curve_shock(tenors, c.kind, size / 2.0 if c.kind == "twist" else size, pivot=pivot, short=short, long=long)


def resolve_stress(st: _ShockFields, pre: str, ctx: _Context) -> dict[str, float]:
    """``{factor: shock}`` of one stress, every factor it sets (zero or not): the book's factors, and, when
    it propagates, history factors outside the book that it sets (they condition the others).  Shocks
    of ``shocks`` and of the builders add up where they meet."""
    outside = st.propagate is not None
    out = _explicit(st, pre, ctx, outside)

    def add(f: str, v: float) -> None:
        out[f] = out.get(f, 0.0) + float(v)

    curves = sorted({factor_spec(f).currency for f in ctx.factors + ctx.history_factors if f.startswith("IR.")})
    for i, c in enumerate(st.curves):
        field = f"{pre}curves[{i}]"
        names = [f for f in ctx.factors + ctx.history_factors if f.startswith(f"IR.{c.currency}.")]
        if not names:
            raise ConfigError(f"{ctx.where(field + '.currency')}: {c.currency!r} has no curve: no IR.{c.currency}.* factor "
                              f"in the book or the history (curves: {', '.join(curves) or 'none'})")
        in_book = [f for f in names if f in ctx.book]
        if not in_book and not outside:
            raise ConfigError(f"{ctx.where(field + '.currency')}: the book holds no IR.{c.currency}.* factor, so this "
                              f"builder moves nothing; remove it, or add 'propagate' to let the {c.currency} curve move "
                              "the book's factors")
        tenors, index, labels = curve_nodes(c.currency, names)
        shock = curve_builder_shock(c, tenors, labels, field, ctx)
        for f in (names if outside else in_book):
            add(f, shock[index[f]])
    for i, s in enumerate(st.surfaces):
        for p in SURFACE_PARAMS:
            v = getattr(s, p)
            if v is None:
                continue
            f, field = f"VOL.{s.underlying}.{p.upper()}", f"{pre}surfaces[{i}].{p}"
            if f not in ctx.book and not (outside and f in ctx.in_history):
                vols = sorted(x for x in ctx.factors if x.startswith("VOL."))
                raise ConfigError(f"{ctx.where(field)}: {f} is not a factor of the book (its vol factors: "
                                  f"{ctx.shown(vols) or 'none'})")
            m = _multiplier(v)
            add(f, ctx.level(f, field) * (m - 1.0) if m is not None else ctx.parse(v, f, field))
    for i, s in enumerate(st.spreads):
        field = f"{pre}spreads[{i}]"
        hits = [f for f in ctx.factors if factor_spec(f).kind == "spread" and fnmatchcase(f, s.factors)]
        if not hits:
            spreads = [x for x in ctx.factors if factor_spec(x).kind == "spread"]
            raise ConfigError(f"{ctx.where(field + '.factors')}: {s.factors!r} matches no credit spread factor of the "
                              f"book (its spread factors: {ctx.shown(spreads) or 'none'})")
        for f in hits:
            if s.shift is not None:
                add(f, ctx.parse(s.shift, f, field + ".shift"))
            else:
                add(f, ctx.level(f, field + ".relative") * relative_change(s.relative))
    return out


# ---------------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------------


def hypothetical_scenarios(
    spec: HypotheticalSpec,
    history: History,
    factors: Sequence[str],
    seed: np.random.SeedSequence | int | None = None,
    as_of: pd.Timestamp | None = None,
    levels: Mapping[str, float] | None = None,
) -> ScenarioSet:
    """Scenarios of a :class:`HypotheticalSpec` on ``factors``: one per stress, of equal weight.

    Parameters
    ----------
    spec : the validated batch-file entry
    history : the factor history (the curve builders' tenor grid is the union of the currency's tenors
        in ``factors`` and in the history's columns; ``propagate`` estimates its model on it)
    factors : ``[F]`` the book's factors
    seed : unused (kept for the common signature of the generators)
    as_of : the market date: default end of ``propagate``'s window, and the date of the history level
        a relative shock falls back on
    levels : current factor levels (the market snapshot), the base of ``"xm"`` and ``relative`` shocks

    Returns
    -------
    ScenarioSet with ``shocks [S, F]`` (the declared shocks; with ``propagate``, the other factors at
    their conditional expectation, ``filled``), every factor covered except, with ``propagate``, the
    factors without history in its window (as :func:`predictive_scenarios`); ``paths [S, H, F]``
    ramping linearly to the shock over ``horizon_days`` when ``revaluation`` is ``horizon``, else None.
    Info columns: ``kind``, ``days``, ``description``, ``source``, ``core`` (the factors the stress sets),
    ``uncovered``; with ``propagate`` also ``distribution``, ``dof``, ``mahalanobis``, ``tail_prob``,
    ``not_in_model``.
    """
    family = spec.name
    factors = list(factors)
    F = len(factors)
    ctx = _Context(family, factors, history, levels, as_of)
    pos = {f: j for j, f in enumerate(factors)}
    days = spec.horizon_days if spec.revaluation == "horizon" else 0
    names, shocks, covered, filled, info = [], [], [], [], []
    any_propagated = False
    for name, st, pre, text in spec.stress_list():
        shock = resolve_stress(st, pre, ctx)
        summary = st.summary()
        row = dict(scenario=name, family=family, kind="hypothetical", days=days, core=",".join(shock))
        if st.propagate is None:
            x = np.zeros(F)
            for f, v in shock.items():
                x[pos[f]] = v
            cov_mask, fill_mask = np.ones(F, bool), np.zeros(F, bool)
            row.update(description=summary + "; every other factor held at 0",
                       source="declared in the batch file", uncovered="")
        else:
            any_propagated = True
            p = st.propagate
            pspec = PredictiveSpec(kind="predictive", name=family, stresses=[StressDef(name=name, shocks=shock)],
                                   distribution=p.distribution, dof=p.dof, estimator=p.estimator, window=p.window,
                                   horizon_days=p.horizon_days, revaluation="instantaneous")
            res = predictive_scenarios(pspec, history, factors, seed, as_of)
            x, cov_mask, fill_mask = res.shocks[0], res.covered[0], res.filled_mask[0]
            r = res.info.iloc[0]
            row.update(description=(f"{summary}; the other factors at their conditional expectation "
                                    f"({p.distribution}, {p.horizon_days}-day moves)"),
                       source=r["source"], uncovered=r["uncovered"], distribution=r["distribution"],
                       dof=r["dof"], mahalanobis=r["mahalanobis"], tail_prob=r["tail_prob"],
                       not_in_model=r["not_in_model"])
        if text:
            row["description"] = f"{text}: {row['description']}"
        names.append(name)
        shocks.append(x)
        covered.append(cov_mask)
        filled.append(fill_mask)
        info.append(row)
    if any_propagated:
        for row in info:
            for k in ("distribution", "dof", "mahalanobis", "tail_prob", "not_in_model"):
                row.setdefault(k, None)
    S = len(names)
    sh = np.array(shocks, dtype=float).reshape(S, F)
    paths = None
    if spec.revaluation == "horizon":
        # the shock unfolds linearly over the horizon: day t of the path is t / H of the shock
        ramp = np.arange(1, spec.horizon_days + 1, dtype=float) / spec.horizon_days
        paths = sh[:, None, :] * ramp[None, :, None]
    return ScenarioSet(tuple(names), tuple(factors), sh, np.full(S, 1.0 / S), (family,) * S,
                       np.array(covered, dtype=bool).reshape(S, F), paths, pd.DataFrame(info),
                       np.array(filled, dtype=bool).reshape(S, F) if any_propagated else None)
