"""The batch file: validated once, at the boundary."""

from __future__ import annotations

import copy
import hashlib
import itertools
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError,
                      field_validator, model_validator)

from stressgrid.core.yamlfile import read_yaml
from stressgrid.core import ConfigError
from stressgrid.core.factors import factor_spec
from stressgrid.scenarios import ScenarioSpec

from stressgrid.monitoring import MonitoringSettings

from ._liquidity import LiquiditySettings
from ._factors import FactorModelSettings
from ._optimise import FACTOR_OBJECTIVES, OptimiseSettings

__all__ = ["Batch", "load_batch", "RiskSettings", "ExecutionSettings", "MarketSettings", "HistorySettings",
           "OutputSettings", "SweepPoint", "expand_sweeps"]


def _true_false_or_auto(v):
    """``true``, ``false`` or ``auto``: one message for any other value (not one per branch of the union)."""
    if isinstance(v, bool) or v == "auto":
        return v
    raise ValueError("must be true, false or auto")


#: a setting that is on, off, or decided by the run
TrueFalseOrAuto = Annotated[Union[bool, Literal["auto"]], BeforeValidator(_true_false_or_auto)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistorySettings(_Strict):
    """One source of factor history in the batch's ``history`` (docs/data.md): a CSV or Parquet file, or a
    DuckDB database with ``table`` or ``query``."""

    path: Path
    date_column: str = "date"
    columns: dict[str, str] = {}
    units: dict[str, Literal["decimal", "percent", "bp"]] = {}
    table: Optional[str] = None
    query: Optional[str] = None
    #: how the source's IR.* columns are quoted: zero (continuously compounded zero yields) or par
    #: (semi-annual par yields, bootstrapped to zero yields)
    kind: Literal["zero", "par"] = "zero"

    def spec(self):
        from stressgrid.core.sources import SourceSpec

        return SourceSpec(path=self.path, date_column=self.date_column, columns=dict(self.columns),
                          units=dict(self.units), table=self.table, query=self.query, kind=self.kind)


def _history_list(v):
    """One source (a mapping) means that source over the bundled history."""
    return [v, "bundled"] if isinstance(v, dict) else v


def _history_item(v):
    if isinstance(v, str) and v != "bundled":
        raise ValueError("a history source is a mapping with 'path', or the word 'bundled'")
    return v


#: ``history``: one source (merged over the bundled history), or a list of sources in order of
#: precedence, where ``bundled`` names the bundled history (left out: not used)
HistoryField = Annotated[
    # tagged, so that a bad source reports its own errors only, not also that it is not the word 'bundled'
    # (the tags are the names :func:`_loc` leaves out of a field's path)
    list[Annotated[Union[Annotated[HistorySettings, Tag("HistorySettings")],
                         Annotated[Literal["bundled"], Tag("literal['bundled']")]],
                   Discriminator(lambda v: "literal['bundled']" if isinstance(v, str) else "HistorySettings"),
                   BeforeValidator(_history_item)]],
    BeforeValidator(_history_list),
]


class ProxySettings(_Strict):
    """One entry of ``proxies``: the factor whose moves, times ``beta``, stand in for a factor's missing
    history (``beta`` left out: fitted on the days both are observed)."""

    factor: str
    beta: Optional[float] = None
    #: the residual's daily standard deviation (in the factor's move units: log-return for a price,
    #: change in decimals otherwise), added in bootstrap and Monte Carlo families where the proxy fills;
    #: estimated on the common history when there are 60 days of it
    residual_sd: Optional[float] = Field(default=None, ge=0)

    @field_validator("factor")
    @classmethod
    def _name(cls, v: str) -> str:
        factor_spec(v)
        return v


class MarketSettings(_Strict):
    """``market``: the snapshot the book is valued at."""

    as_of: Optional[date] = None
    max_stale_days: int = Field(default=7, ge=0)
    overrides: dict[str, float] = {}
    #: factors held flat on purpose, each with the reason: ``{FACTOR or pattern: reason}`` (a pattern
    #: such as ``IR.EUR.*`` matches factor names as in a shell); a list declares them without a reason
    flat: dict[str, str] = {}
    #: the most of the book's gross exposure that may rest on proxied or flat factors (a fraction, e.g.
    #: 0.25); a batch over it is refused before any work (docs/data.md)
    max_unmodelled_share: Optional[float] = Field(default=None, ge=0, le=1)

    @field_validator("overrides")
    @classmethod
    def _names(cls, v: dict[str, float]) -> dict[str, float]:
        for k in v:
            factor_spec(k)
        return v

    @field_validator("flat", mode="before")
    @classmethod
    def _flat(cls, v):
        if isinstance(v, list):
            return {str(k): "declared flat in the batch file (no reason given)" for k in v}
        return v


class RiskSettings(_Strict):
    """``risk``: confidence levels of VaR and CVaR, and the fewest tail scenarios a CVaR (or a re-optimised
    CVaR) may rest on before it is reported as thin (``risk_metrics.thin_tail``, a warning in the summary)."""

    confidence: list[float] = [0.95, 0.99]
    min_tail_scenarios: int = Field(default=10, ge=1)

    @field_validator("confidence")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one confidence level")
        for a in v:
            if not 0.5 <= a < 1.0:
                raise ValueError(f"a confidence level must be in [0.5, 1) (got {a!r})")
        return sorted(set(v))


class ExecutionSettings(_Strict):
    """``execution``: how the batch is split and run."""

    executor: Literal["ray", "serial"] = "ray"
    workers: Optional[int] = Field(default=None, ge=1)
    chunk_size: Optional[int] = Field(default=None, ge=1)
    #: ``auto``: kernel tasks ask Ray for a GPU when the cluster has one; ``true``: require one (an error
    #: if the cluster has none); ``false``: CPU only
    gpu: TrueFalseOrAuto = "auto"
    #: share of a GPU per task when tasks run on GPUs (several tasks can share one device)
    gpu_per_task: float = Field(default=1.0, gt=0.0, le=1.0)
    #: ``auto``: a large batch (over 5 million scenario x position cells) runs streamed: its tasks draw
    #: their own scenarios and write the per-scenario tables as folders of part files, and the driver keeps
    #: only summaries; ``true``: always; ``false``: never (everything is gathered in the driver).  The
    #: ``liquidity``, ``optimise`` and ``monitoring`` sections need every scenario in the driver, so a
    #: batch with one of them does not stream (an error with ``true``)
    stream: TrueFalseOrAuto = "auto"


class OutputSettings(_Strict):
    """``outputs``: optional tables of the run directory."""

    #: the scenario x position P&L table (``scenario_pnl.parquet``): ``auto`` writes it when it has at
    #: most 5 million rows; ``true`` always (up to 20 million rows in a run that is not streamed; a
    #: streamed run's tasks write it in parts, as large as the disk allows); ``false`` never.  Without it, tasks
    #: return summaries only, which is what makes large batches cheap to distribute.
    scenario_pnl: TrueFalseOrAuto = "auto"
    #: the ``sensitivity`` table (full revaluation next to the delta-gamma-vega-theta P&L, per scenario
    #: and instrument type) and the ``var_sensitivity``/``cvar_sensitivity`` rows of ``risk_metrics``;
    #: ``false`` leaves them out and compiles only the first derivatives the coverage table needs (the
    #: demo book's on two cores: 3.2 s of compiling alone against 6.3 s)
    sensitivity: bool = True


class SweepPoint(BaseModel):
    """One point of a parameter sweep: the family it generates and the values it sets."""

    family: str
    base: str  # the ``name`` of the batch-file entry that declared the sweep
    entry: int  # index of that entry in the batch file's ``scenarios`` list
    values: dict[str, typing.Any]


class Batch(_Strict):
    """A stress batch."""

    name: str = Field(min_length=1)
    book: Path
    base_currency: str = "USD"
    #: the book's net asset value in base currency: the unit of limits and re-optimisation weights
    #: (default: the book's gross exposure, with a note in the manifest)
    nav: Optional[float] = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0)
    history: Optional[HistoryField] = None
    market: MarketSettings = MarketSettings()
    #: factors whose missing history is taken from another factor's moves (docs/data.md)
    proxies: dict[str, ProxySettings] = {}
    #: give every factor without history, not declared in ``proxies`` or ``market.flat``, the default
    #: map's proxy: non-USD curves from the USD curve, a surface's shape from its ATM level, single names
    #: from the credit index; a futures basis held at its level (docs/data.md)
    default_proxies: bool = False
    scenarios: list[ScenarioSpec] = Field(min_length=1)
    risk: RiskSettings = RiskSettings()
    execution: ExecutionSettings = ExecutionSettings()
    outputs: OutputSettings = OutputSettings()
    #: risk limits (the limits-file format, docs/reporting.md), checked after the run
    limits: Optional[dict] = None
    #: liquidity-aware tables: liquidation, LA VaR/CVaR, LA drawdowns, capacity (docs/liquidity.md)
    liquidity: Optional[LiquiditySettings] = None
    #: exposures of positions and groups on declared factors, fitted on a dated family (docs/portfolios.md)
    factor_model: Optional[FactorModelSettings] = None
    #: the book re-optimised under each scenario family (docs/portfolios.md): one mapping, or a list of
    #: cases (read as a list of one)
    optimise: Optional[list[OptimiseSettings]] = None
    #: model monitoring: forecasters walk-forward, regime signals and rules, VaR backtests (docs/monitoring.md)
    monitoring: Optional[MonitoringSettings] = None
    #: for each entry of ``scenarios`` (after sweep expansion), the index of the batch-file entry it came
    #: from: every point of a sweep draws from that entry's seed (common random numbers)
    _origins: list[int] = PrivateAttr(default_factory=list)
    _sweeps: list[SweepPoint] = PrivateAttr(default_factory=list)
    #: the batch file it was read from (None for a batch built in memory)
    _path: Optional[str] = PrivateAttr(default=None)

    def history_sources(self, override: str | Path | None = None) -> list:
        """The history sources in order of precedence (:class:`stressgrid.core.sources.SourceSpec`).

        ``override`` (the ``--history`` option): that file, then the bundled history, instead of the
        batch's ``history``.  No ``history``: the bundled history alone.  One source: it, then the
        bundled history.  A list: as listed (``bundled`` where it is named, or not at all).
        """
        from stressgrid.core.sources import SourceSpec

        bundled = SourceSpec(bundled=True)
        if override is not None:
            return [SourceSpec(path=Path(override)), bundled]
        if self.history is None:
            return [bundled]
        return [bundled if h == "bundled" else h.spec() for h in self.history]

    @property
    def origins(self) -> list[int]:
        return self._origins or list(range(len(self.scenarios)))

    @property
    def sweep_points(self) -> list[SweepPoint]:
        return list(self._sweeps)

    @property
    def source(self) -> str:
        """How messages name the batch: ``batch file PATH``, as the errors found while reading it do, or
        ``batch 'NAME'`` for a batch built in memory."""
        return f"batch file {self._path}" if self._path else f"batch {self.name!r}"

    @field_validator("base_currency")
    @classmethod
    def _ccy(cls, v: str) -> str:
        if len(v) != 3 or not v.isalpha() or not v.isupper():
            raise ValueError(f"{v!r} is not a three-letter upper-case currency code")
        return v

    @field_validator("optimise", mode="before")
    @classmethod
    def _cases(cls, v):
        return [v] if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _optimise_cases(self) -> "Batch":
        cases = self.optimise or []
        names = [c.case for c in cases]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"optimise: case name {dup[0]!r} is used twice; give each case its own 'name'")
        for i, c in enumerate(cases):
            at = "optimise" if len(cases) == 1 else f"optimise[{i}]"
            if c.objective in FACTOR_OBJECTIVES and self.factor_model is None:
                raise ValueError(f"{at}: objective {c.objective} needs the factor_model section (the factors and the "
                                 "family their exposures are fitted on)")
            given = (c.factor_target.exposures if c.factor_target else {}) | (
                c.factor_risk_budget.budgets if c.factor_risk_budget else {})
            for k in given:
                if self.factor_model is not None and k not in self.factor_model.factors:
                    raise ValueError(f"{at}: no factor {k!r} in factor_model.factors "
                                     f"({', '.join(self.factor_model.factors)})")
        fm = self.factor_model
        kinds = {s.name: s.kind for s in self.scenarios}
        if fm is not None and fm.family not in kinds:
            raise ValueError(f"factor_model.family: no scenario family {fm.family!r} (families: {', '.join(kinds)})")
        if fm is not None and kinds[fm.family] not in ("rolling", "historical"):
            raise ValueError(f"factor_model.family: family {fm.family!r} is {kinds[fm.family]}; the factor model needs "
                             "dated observations: a rolling or historical family")
        return self

    @field_validator("scenarios")
    @classmethod
    def _unique_families(cls, v: list) -> list:
        names = [s.name for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"scenario family name {sorted(dup)[0]!r} is used twice; give each entry its own 'name'")
        return v


def _kind_tags() -> set[str]:
    from stressgrid.monitoring import Rule

    models = typing.get_args(typing.get_args(ScenarioSpec)[0]) + typing.get_args(typing.get_args(Rule)[0])
    return {a for m in models for a in typing.get_args(m.model_fields["kind"].annotation)}


def _loc(loc: tuple) -> str:
    tags = _kind_tags()
    parts = []
    for x in loc:
        if isinstance(x, int):
            parts.append(f"[{x}]")
        elif x in tags or "[" in str(x) or x in ("HistorySettings",):
            continue  # discriminator tags add nothing for the user
        else:
            parts.append(("." if parts else "") + str(x))
    return "".join(parts)


def _short_labels(paths: list[str]) -> list[str]:
    """The last dotted component of each path, or the whole path where two would clash."""
    last = [p.rsplit(".", 1)[-1] for p in paths]
    return [lp if last.count(lp) == 1 else p for p, lp in zip(paths, last)]


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _set_path(entry: dict, path: str, value, where: str) -> None:
    node = entry
    keys = path.split(".")
    for k in keys[:-1]:
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{where}: '{k}' in {path!r} is a {type(nxt).__name__}, not a section of keys")
        node = nxt
    node[keys[-1]] = value


def expand_sweeps(entries: list, where: str = "batch file") -> tuple[list, list[int], list[SweepPoint]]:
    """Expand each scenario entry's ``sweep`` into one entry per point of the grid of values.

    ``sweep`` maps dotted keys of the entry (``amplify.vol.multiplier``) to lists of values; the grid is
    their Cartesian product, in the order written.  Point families are named
    ``NAME[key=value,...]`` with the last component of each key.  Returns the expanded entries, the
    index of each one's original entry and the sweep points.
    """
    out, origins, points = [], [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "sweep" not in entry:
            out.append(entry)
            origins.append(i)
            continue
        sweep = entry["sweep"]
        at = f"scenarios[{i}].sweep"
        field = f"{where}, field '{at}'"
        if not isinstance(sweep, dict) or not sweep:
            raise ConfigError(f"{field}: expected a mapping from dotted keys to lists of values, got {sweep!r}")
        for key, values in sweep.items():
            if not isinstance(key, str) or not key or key.split(".")[0] in ("name", "kind", "sweep"):
                raise ConfigError(f"{field}: {key!r} cannot be swept (name, kind and sweep are fixed per entry)")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}, field '{at}.{key}': expected a non-empty list of values, got {values!r}")
            if len(set(map(_fmt, values))) != len(values):  # 2 and 2.0 name the same point
                raise ConfigError(f"{where}, field '{at}.{key}': a value is listed twice; each value names its point "
                                  f"(got {values!r})")
        keys = list(sweep)
        labels = _short_labels(keys)
        base = {k: v for k, v in entry.items() if k != "sweep"}
        name = base.get("name", f"entry{i}")
        for combo in itertools.product(*(sweep[k] for k in keys)):
            e = copy.deepcopy(base)
            for k, v in zip(keys, combo):
                _set_path(e, k, v, f"{where}, field '{at}.{k}'")
            family = f"{name}[" + ",".join(f"{lab}={_fmt(v)}" for lab, v in zip(labels, combo)) + "]"
            e["name"] = family
            out.append(e)
            origins.append(i)
            points.append(SweepPoint(family=family, base=str(name), entry=i, values=dict(zip(keys, combo))))
    return out, origins, points


#: at most this many problems are listed, one a line, before "and N more"
MAX_ERRORS = 20


def _error_line(p: Path, raw: dict, points: list, err: dict) -> str:
    loc = _loc(err["loc"])
    for key in ("history", "optimise"):
        if isinstance(raw.get(key), dict) and loc.startswith(f"{key}[0]"):
            loc = key + loc[len(f"{key}[0]"):]  # one entry was given, as a mapping
    if points and len(err["loc"]) > 1 and err["loc"][0] == "scenarios" and isinstance(err["loc"][1], int):
        j = err["loc"][1]
        fam = raw["scenarios"][j].get("name") if isinstance(raw["scenarios"][j], dict) else None
        point = next((pt for pt in points if pt.family == fam), None)
        rest = loc[len(f"scenarios[{j}]."):]
        if point is not None and rest in point.values and err["type"] == "extra_forbidden":
            # a swept key the entry does not take: one line for the sweep, not one per point
            return f"batch file {p}, field 'scenarios[{point.entry}].sweep.{rest}': not a key of this kind of entry"
        if point is not None:  # name the batch-file entry and the sweep point, not the expanded index
            loc = loc.replace(f"scenarios[{j}]", f"scenarios[{point.entry}] (sweep point {fam})", 1)
    msg = err["msg"].removeprefix("Value error, ")
    if not loc and ": " in msg:  # a check across sections names its own field
        head, rest = msg.split(": ", 1)
        return f"batch file {p}, field '{head}': {rest}"
    if err["type"] == "missing":
        return f"batch file {p}, field '{loc}': missing"
    if err["type"] == "extra_forbidden":
        return f"batch file {p}, field '{loc}': unknown key"
    if err["type"] == "union_tag_invalid":
        return f"batch file {p}, field '{loc}.kind': {msg}"
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
    return f"batch file {p}, field '{loc}': {msg}{shown}"


def _model_names() -> set[str]:
    """The names of the pydantic models (the forms a field may take), as pydantic names them in an error's
    location; a factor or sleeve name used as a key (``EQ.SPX``, ``Trend``) is not one of them."""
    out, todo = set(), [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__name__ not in out:
                out.add(sub.__name__)
                todo.append(sub)
    return out


def _one_branch(errors: list[dict]) -> list[dict]:
    """The errors of a field that takes one of several forms (``within: {probability: 0.01}`` or a list of
    them), less those that only say the value is not of another form, when one of its forms has a problem
    of its own: ``within: {probability: 0.7}`` is out of range, not "not a list"."""
    models = _model_names()

    def branch(x) -> bool:  # pydantic names a form by its type: list[...], function-after[...], float, WithinSpec
        return isinstance(x, str) and ("[" in x or x in ("float", "int", "str", "bool") or x in models)

    def mismatch(e: dict) -> bool:  # the value is not of this form at all
        return e["type"].endswith("_type") and len(e["loc"]) > 1 and branch(e["loc"][-1])

    keep, merged = [], {}
    for e in errors:
        parent, n = e["loc"][:-1], len(e["loc"]) - 1
        if not mismatch(e):
            keep.append(e)
        elif not any(len(f["loc"]) > n and f["loc"][:n] == parent and f["loc"][n] != e["loc"][-1]
                     and branch(f["loc"][n]) and not mismatch(f) for f in errors):
            # no form fits: one line for the field, naming every form it may take
            if parent in merged:
                merged[parent]["msg"] += ", or " + e["msg"].removeprefix("Input should be ")
            else:
                merged[parent] = {**e, "loc": parent}
                keep.append(merged[parent])
    return keep


def join_errors(lines: list[str]) -> str:
    """Problems one a line (the command line prefixes each with ``error:``), at most :data:`MAX_ERRORS`."""
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_ERRORS:
        lines = lines[:MAX_ERRORS] + [f"... and {len(lines) - MAX_ERRORS} more problem(s)"]
    return "\n".join(lines)


def _inside(base: Path, path: Path, p: Path, field_: str, allow_outside: bool) -> Path:
    """``path`` from the batch file, resolved against the batch file's folder ``base``; outside it (an
    absolute path or ``..``) only when ``allow_outside``."""
    full = (base / path).resolve()
    if not allow_outside and not full.is_relative_to(base):
        raise ConfigError(f"batch file {p}, field '{field_}': {str(path)!r} is outside the batch file's folder "
                          f"{base}; move the file there, or allow paths outside it (--allow-outside-paths)")
    return full


def load_batch(path: str | Path, allow_outside_paths: bool = True) -> tuple[Batch, str]:
    """Read and validate a batch file.

    Returns the batch, with ``book``, ``history.path`` and a forecaster's ``tree_file`` made relative to the
    batch file's folder,
    and the SHA-256 of the file's bytes.  Every problem the batch's structure has is reported at once,
    one a line.  ``allow_outside_paths=False`` (the command line's default) refuses a book or history
    path outside the batch file's folder.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"batch file {p}: not found")
    data = p.read_bytes()
    raw = read_yaml(p, "batch file")
    if not isinstance(raw, dict):
        raise ConfigError(f"batch file {p}: expected a mapping of keys (name, book, scenarios, ...), got {type(raw).__name__}")
    origins: list[int] = []
    points: list[SweepPoint] = []
    mon = raw.get("monitoring")
    if isinstance(mon, dict) and isinstance(mon.get("forecasters"), list):
        # a forecaster's file setting (the tic tree) is read from the batch file's folder, like the book
        base = p.resolve().parent
        fcs = [{**f, "tree_file": str(_inside(base, Path(f["tree_file"]), p, f"monitoring.forecasters[{i}].tree_file",
                                              allow_outside_paths))}
               if isinstance(f, dict) and isinstance(f.get("tree_file"), str) else f
               for i, f in enumerate(mon["forecasters"])]
        raw = {**raw, "monitoring": {**mon, "forecasters": fcs}}
    if isinstance(raw.get("scenarios"), list):
        expanded, origins, points = expand_sweeps(raw["scenarios"], f"batch file {p}")
        raw = {**raw, "scenarios": expanded}
    try:
        batch = Batch.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(join_errors([_error_line(p, raw, points, e) for e in _one_branch(exc.errors())])) from None
    except ConfigError as exc:  # a factor-name check inside a validator
        raise ConfigError(f"batch file {p}: {exc}") from None
    base = p.resolve().parent
    updates = {"book": _inside(base, batch.book, p, "book", allow_outside_paths)}
    if batch.history is not None:
        if not batch.history:
            raise ConfigError(f"batch file {p}, field 'history': an empty list; name at least one source or 'bundled'")
        updates["history"] = [h if h == "bundled" else h.model_copy(update={
            "path": _inside(base, h.path, p, f"history[{i}].path", allow_outside_paths)})
            for i, h in enumerate(batch.history)]
    if batch.limits is not None:
        from stressgrid.reports import parse_limits

        parse_limits(batch.limits, f"batch file {p}, limits")  # validated here, used after the run
    out = batch.model_copy(update=updates)
    out._origins = origins
    out._path = str(p)
    out._sweeps = points
    return out, hashlib.sha256(data).hexdigest()
