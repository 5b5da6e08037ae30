"""Risk limits: a YAML limits file, evaluated on a run directory into a table of breaches.

A limits file::

    nav: 250_000_000            # book NAV in base currency; needed by limits in units of NAV
    limits:
      - {metric: cvar, confidence: 0.99, scope: book, max: 8%}               # CVaR99 < 8% of NAV, every family
      - {metric: stressed_loss, scope: "sleeve:*", family: crisis, max: 3%}  # any sleeve, in the crisis family
      - {metric: days_to_liquidate, scope: book, max: 5}                     # days

Every limit is ``value <= max``; ``breached`` is ``value > max`` and ``headroom`` is ``max - value``
(negative when breached), both in the limit's units.  ``docs/reporting.md`` lists each metric, where its
value comes from and which scopes it takes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stressgrid.core.yamlfile import read_yaml
from stressgrid.core import ConfigError, DataError

from ._rundir import RunDir, open_run
from ._schema import write_table
from ._tables import capacity_scopes, liquidation_groups, liquidation_positions

__all__ = [
    "FAMILY_METRICS",
    "Limit",
    "Limits",
    "METRICS",
    "check_limit_families",
    "load_limits",
    "parse_limits",
    "evaluate_limits",
    "write_breaches",
    "BREACH_COLUMNS",
]

#: metric -> (scopes it takes, the units it may be given in; the first is the default)
METRICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "var": (("book",), ("nav", "currency")),
    "cvar": (("book", "asset_class", "sleeve", "position"), ("nav", "currency")),
    "worst_loss": (("book", "asset_class", "sleeve", "position"), ("nav", "currency")),
    "stressed_loss": (("book", "asset_class", "sleeve", "position"), ("nav", "currency")),
    "la_var": (("book",), ("nav", "currency")),
    "la_cvar": (("book",), ("nav", "currency")),
    "drawdown": (("book",), ("nav", "currency")),
    "la_drawdown": (("book",), ("nav", "currency")),
    "liquidation_cost": (("book", "asset_class", "sleeve", "position"), ("nav", "currency")),
    "days_to_liquidate": (("book", "asset_class", "sleeve", "position"), ("days",)),
    "cost_bps": (("book", "asset_class", "sleeve", "position"), ("bps",)),
    # the monitoring champion's latest rolling RMS error of its predicted pairwise correlations
    "correlation_drift": (("book",), ("correlation",)),
}
_WITH_CONFIDENCE = {"var", "cvar", "la_var", "la_cvar"}

BREACH_COLUMNS = ["limit_name", "metric", "confidence", "scope", "family", "group_name", "value", "threshold", "units",
                  "value_currency", "breached", "headroom"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limit(_Strict):
    """One limit: ``metric`` (at ``confidence``) of ``scope`` in ``family`` must not exceed ``max``.

    Attributes
    ----------
    metric : one of :data:`METRICS`
    confidence : confidence level, e.g. 0.99; required for var, cvar, la_var and la_cvar only
    scope : ``book``, ``asset_class:NAME``, ``sleeve:NAME`` or ``position:ID``; ``NAME`` may be ``*``
        (every asset class, sleeve or position, each checked on its own)
    family : a scenario family, or ``*`` (default) for each family on its own; for liquidation metrics
        (days_to_liquidate, cost_bps, liquidation_cost), a liquidity regime: the ``scope`` column of
        ``liquidation.parquet`` or ``capacity.parquet``
    max : the threshold, in ``units``; for units ``nav`` a fraction (0.08) or a percentage ("8%"); for
        units ``currency`` a number or an amount ("2m", "800k", "1bn"); for units ``bps`` a number or "25bp".
        A bare number above 1 for a metric in units of NAV needs ``units`` (it would be over 100% of NAV)
    units : ``nav`` (fraction of the book's NAV; default for money metrics), ``currency`` (base currency),
        ``days`` (days_to_liquidate) or ``bps`` (cost_bps)
    name : shown in reports; default built from the other fields, e.g. ``cvar99 book <= 8% NAV``
    """

    metric: Literal[tuple(METRICS)]  # type: ignore[valid-type]
    confidence: Optional[float] = None
    scope: str = "book"
    family: str = "*"
    max: float
    units: Optional[Literal["nav", "currency", "days", "bps", "correlation"]] = None
    name: Optional[str] = None

    @field_validator("confidence")
    @classmethod
    def _conf(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not 0.0 < v < 1.0:
            raise ValueError("confidence must be a probability in (0, 1), e.g. 0.99")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        v = v.strip()
        if v == "book":
            return v
        level, sep, name = v.partition(":")
        if not sep or level not in ("asset_class", "sleeve", "position") or not name.strip():
            raise ValueError("scope must be book, asset_class:NAME, sleeve:NAME or position:ID (NAME may be *)")
        return f"{level}:{name.strip()}"

    @model_validator(mode="before")
    @classmethod
    def _max_units(cls, data):
        if not isinstance(data, dict) or "max" not in data:
            return data
        data = dict(data)
        m = data["max"]
        if isinstance(m, str):
            text = m.strip().replace("_", "")
            match = re.fullmatch(r"([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(%|bps?|d|days|k|m|bn)?", text)
            if not match:
                raise ValueError(f"max: expected a number, a percentage such as 8%, an amount such as 2m or basis points "
                                 f"such as 25bp (got {m!r})")
            x, suffix = float(match.group(1)), match.group(2)
            units = data.get("units")
            allowed = METRICS.get(data.get("metric"), ((), ("nav", "currency", "days", "bps")))[1]
            wanted = {"%": "nav", "bp": "bps", "bps": "bps", "d": "days", "days": "days", "k": "currency", "m": "currency",
                      "bn": "currency"}.get(suffix)
            if wanted and wanted not in allowed:
                raise ValueError(f"max: metric {data.get('metric')} is in units {' or '.join(allowed)}, "
                                 f"not {wanted} (got {m!r})")
            if suffix == "%":
                if units not in (None, "nav"):
                    raise ValueError(f"max: a percentage is a share of NAV, but units is {units!r} (got {m!r})")
                data["units"], x = "nav", x / 100.0
            elif suffix in ("bp", "bps"):
                if units not in (None, "bps"):
                    raise ValueError(f"max: basis points need units bps (got {m!r} with units {units!r})")
                data["units"] = "bps"
            elif suffix in ("k", "m", "bn"):
                if units not in (None, "currency"):
                    raise ValueError(f"max: an amount is in the base currency, but units is {units!r} (got {m!r})")
                data["units"], x = "currency", x * {"k": 1e3, "m": 1e6, "bn": 1e9}[suffix]
            elif suffix in ("d", "days"):
                if units not in (None, "days"):
                    raise ValueError(f"max: days need units days (got {m!r} with units {units!r})")
                data["units"] = "days"
            data["max"] = x
        elif (isinstance(m, (int, float)) and not isinstance(m, bool) and data.get("units") is None and abs(m) > 1
              and METRICS.get(data.get("metric"), ((), ("",)))[1][0] == "nav"):
            # read as a share of NAV, 500000 would be a limit of 50,000,000% that no loss can breach
            raise ValueError(f"max: a bare number is a fraction of NAV for metric {data.get('metric')}, and {m!r} would be "
                             f"{m * 100:,.0f}% of NAV; give a percentage (8%), a fraction (0.08), an amount (2m) or "
                             f"units: currency (got {m!r})")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Limit":
        scopes, units = METRICS[self.metric]
        if self.metric in _WITH_CONFIDENCE and self.confidence is None:
            raise ValueError(f"metric {self.metric} needs a confidence level, e.g. confidence: 0.99")
        if self.metric not in _WITH_CONFIDENCE and self.confidence is not None:
            raise ValueError(f"metric {self.metric} takes no confidence level (got {self.confidence!r})")
        level = self.scope.partition(":")[0]
        if level not in scopes:
            raise ValueError(f"metric {self.metric} is given for scope {' or '.join(scopes)} only (got scope {self.scope!r})")
        if self.units is None:
            self.units = units[0]
        elif self.units not in units:
            raise ValueError(f"metric {self.metric} is in units {' or '.join(units)} (got units {self.units!r})")
        if not math.isfinite(self.max):
            raise ValueError(f"max must be a finite number (got {self.max!r})")
        if self.name is None:
            conf = f"{self.confidence * 100:g}" if self.confidence is not None else ""
            fam = "" if self.family == "*" else f" in {self.family}"
            shown = {"nav": f"{self.max * 100:g}% NAV", "currency": f"{self.max:,.0f}",
                     "days": f"{self.max:g} days", "bps": f"{self.max:g}bp", "correlation": f"{self.max:g}"}[self.units]
            self.name = f"{self.metric}{conf} {self.scope}{fam} <= {shown}"
        return self


class Limits(_Strict):
    """A limits file: the book's NAV (base currency) and the list of limits."""

    nav: Optional[float] = Field(default=None, gt=0)
    limits: list[Limit] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "Limits":
        seen = set()
        for i, lim in enumerate(self.limits):
            if lim.name in seen:
                raise ValueError(f"limits[{i}]: two limits are named {lim.name!r}; give each a distinct name")
            seen.add(lim.name)
        return self


def _loc(loc: tuple) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out


def parse_limits(data: object, source: str = "limits") -> Limits:
    """Validate a limits mapping (a parsed limits file, or a batch file's ``limits`` section).

    Raises
    ------
    core.ConfigError naming ``source``, the field and the bad value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys nav and limits (got {type(data).__name__})")
    try:
        return Limits.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            raise ConfigError(f"{source}, field '{loc}': missing") from None
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{source}, field '{loc}': unknown key") from None
        value = err.get("input")
        shown = "" if isinstance(value, (dict, list)) or "(got" in msg else f" (got {value!r})"
        raise ConfigError(f"{source}, field '{loc}': {msg}{shown}") from None


def load_limits(path: str | Path) -> Limits:
    """Read and validate a YAML limits file.

    Raises
    ------
    core.ConfigError for a missing file, malformed YAML or an invalid field (naming the field and value).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"limits file {p}: not found")
    return parse_limits(read_yaml(p, "limits file"), f"limits file {p}")


# --- evaluation ------------------------------------------------------------------------------------------


def _need(run: RunDir, name: str, lim: Limit) -> pd.DataFrame:
    df = run.get(name)
    if df is None:
        raise DataError(f"limit {lim.name!r}: metric {lim.metric} needs {name}.parquet, which run directory "
                        f"{run.path} does not have (the batch did not ask for it)")
    return df


#: the metrics whose ``family`` is a scenario family (for the liquidation metrics it is a liquidity regime)
FAMILY_METRICS = ("var", "cvar", "worst_loss", "stressed_loss", "la_var", "la_cvar", "drawdown", "la_drawdown")


def check_limit_families(limits: Limits, families: Sequence[str]) -> None:
    """Before a run: every limit on a scenario family names one of the batch's ``families``, so that a
    mistyped family fails before any work rather than after the run (the same message as then).

    Raises
    ------
    core.ConfigError naming the limit, the field and the families there are.
    """
    for lim in limits.limits:
        if lim.metric in FAMILY_METRICS and lim.family != "*" and lim.family not in families:
            raise ConfigError(f"limit {lim.name!r}, field 'family': no scenario family {lim.family!r} in the batch "
                              f"(have: {', '.join(map(str, families))})")


def _families(available: list[str], lim: Limit, what: str = "scenario family") -> list[str]:
    if lim.family == "*":
        return available
    if lim.family not in available:
        raise ConfigError(f"limit {lim.name!r}, field 'family': no {what} {lim.family!r} in the run "
                          f"(have: {', '.join(map(str, available))})")
    return [lim.family]


def _select_groups(values: pd.Series, lim: Limit) -> pd.Series:
    """Keep the groups of a Series indexed by group name that the limit's scope names."""
    level, _, name = lim.scope.partition(":")
    if level == "book" or name == "*":
        return values
    if name not in values.index:
        raise ConfigError(f"limit {lim.name!r}, field 'scope': no {level} {name!r} in the run "
                          f"(have: {', '.join(map(str, values.index))})")
    return values.loc[[name]]


def _conf_rows(df: pd.DataFrame, col: str, a: float, lim: Limit, available: list[float]) -> pd.DataFrame:
    rows = df[np.isclose(df[col].astype(float), a, rtol=0, atol=1e-9)]
    if rows.empty:
        raise ConfigError(f"limit {lim.name!r}, field 'confidence': the run has no level {a!r} "
                          f"(have: {', '.join(f'{x:g}' for x in available)})")
    return rows


def _group_min(run: RunDir, name: str, key: str, family: str, where: dict) -> pd.Series:
    """The smallest ``pnl`` of each group (column ``key``) over the rows of one family of a per-scenario
    table, read piece by piece (columns ``key`` and ``pnl`` only); groups in the order they first appear."""
    mins = [piece.groupby(piece[key].astype(str), sort=False)["pnl"].min()
            for piece in run.scan(name, columns=[key, "pnl"], families=[family], where=where)]
    if not mins:
        return pd.Series([], index=pd.Index([], dtype=object, name="group_name"), dtype=float)
    return pd.concat(mins).groupby(level=0, sort=False).min().rename_axis("group_name")


def _money_values(run: RunDir, lim: Limit) -> list[tuple[Optional[str], pd.Series]]:
    """(family, Series group -> value in base currency, losses positive) for a money metric."""
    level = lim.scope.partition(":")[0]
    out: list[tuple[Optional[str], pd.Series]] = []
    m = lim.metric
    if m in ("var", "cvar", "worst_loss", "stressed_loss"):
        rm = run.table("risk_metrics")
        fams = _families(list(dict.fromkeys(rm["family"])), lim)
        if m in ("var", "cvar") and level == "book":
            sel = rm[rm["metric"] == m]  # the limit's metric is the name in risk_metrics
            sel = _conf_rows(sel, "confidence", lim.confidence, lim, sorted(sel["confidence"].dropna().unique()))
            for f in fams:
                v = sel.loc[sel["family"] == f, "value"]
                if len(v):
                    out.append((f, pd.Series({"book": float(v.iloc[0])})))
        elif m == "cvar":
            ct = run.table("contributions")
            sel = _conf_rows(ct, "confidence", lim.confidence, lim, sorted(ct["confidence"].unique()))
            sel = sel[sel["level"] == level]
            for f in fams:
                g = sel[sel["family"] == f]
                out.append((f, pd.Series(g["cvar_contribution"].to_numpy(float), index=g["group_name"].to_numpy())))
        else:
            worst = rm[rm["metric"] == "worst"].set_index("family")
            for f in fams:
                if level == "book":
                    out.append((f, pd.Series({"book": float(worst.loc[f, "value"])})))
                    continue
                if level == "position":
                    _need(run, "scenario_pnl", lim)
                    name, key, where = "scenario_pnl", "position_id", {}
                else:
                    name, key, where = "breakdown", "group_name", {"level": level}
                if m == "worst_loss":
                    s = -_group_min(run, name, key, f, where)
                else:  # the group's loss in the scenario that is worst for the book
                    g = run.table(name, columns=[key, "pnl"], families=[f],
                                  where={**where, "scenario": [worst.loc[f, "scenario"]]})
                    s = -g.set_index(key)["pnl"].rename_axis("group_name")
                out.append((f, s.astype(float)))
    elif m in ("la_var", "la_cvar"):
        la = _need(run, "la_risk", lim)
        sel = _conf_rows(la, "alpha", lim.confidence, lim, sorted(la["alpha"].unique()))
        for f in _families(list(dict.fromkeys(la["family"])), lim):
            v = sel.loc[sel["family"] == f, m]
            if len(v):
                out.append((f, pd.Series({"book": float(v.iloc[0])})))
    elif m in ("drawdown", "la_drawdown"):
        dd = _need(run, "la_drawdown", lim)
        for f in _families(list(dict.fromkeys(dd["family"])), lim):
            out.append((f, pd.Series({"book": float(dd.loc[dd["family"] == f, m].max())})))
    elif m == "liquidation_cost":
        lq = _need(run, "liquidation", lim)
        rows = (liquidation_positions(lq).rename(columns={"position_id": "group_name"}) if level == "position"
                else liquidation_groups(lq, level))
        for f in _families(list(dict.fromkeys(rows["scope"])), lim, "liquidity regime"):
            g = rows[rows["scope"] == f]
            out.append((f, pd.Series(g["cost"].to_numpy(float), index=g["group_name"].to_numpy())))
    return out


def _liquidity_values(run: RunDir, lim: Limit) -> list[tuple[Optional[str], pd.Series]]:
    """(regime or None, Series group -> days or bps) for days_to_liquidate and cost_bps.

    Groups (book, asset class, sleeve) come from ``capacity`` at AUM multiple 1 when the run has it, else
    from ``liquidation``; positions from ``liquidation``.
    """
    level = lim.scope.partition(":")[0]
    col = "days_to_liquidate" if lim.metric == "days_to_liquidate" else "cost_bps"
    cap = run.get("capacity")
    if level != "position" and cap is not None and np.isclose(cap["aum_multiple"], 1.0).any():
        c = capacity_scopes(cap)
        c = c[np.isclose(c["aum_multiple"], 1.0) & (c["level"] == level)]
        has_scope = "scope" in cap.columns
        if not has_scope and lim.family != "*":
            raise ConfigError(f"limit {lim.name!r}, field 'family': capacity.parquet has no liquidity regimes "
                              f"(got {lim.family!r}; leave family out)")
        out = []
        for f in _families(list(dict.fromkeys(c["scope"])), lim, "liquidity regime"):
            g = c[c["scope"] == f]
            out.append((f if has_scope else None, pd.Series(g[col].to_numpy(float), index=g["group_name"].to_numpy())))
        return out
    lq = run.get("liquidation")
    if lq is None:
        need = "liquidation.parquet" if level == "position" else "capacity.parquet (at aum_multiple 1) or liquidation.parquet"
        raise DataError(f"limit {lim.name!r}: metric {lim.metric} of a {level} needs {need}, which run directory "
                        f"{run.path} does not have (the batch did not ask for it)")
    src = "days" if lim.metric == "days_to_liquidate" else "cost_bps"
    rows = (liquidation_positions(lq).rename(columns={"position_id": "group_name"}) if level == "position"
            else liquidation_groups(lq, level))
    if rows[src].isna().any():
        raise DataError(f"limit {lim.name!r}: metric {lim.metric} of a {level} needs the {level} rows of liquidation.parquet "
                        f"or capacity.parquet, which run directory {run.path} does not have")
    out = []
    for f in _families(list(dict.fromkeys(rows["scope"])), lim, "liquidity regime"):
        g = rows[rows["scope"] == f]
        out.append((f, pd.Series(g[src].to_numpy(float), index=g["group_name"].to_numpy())))
    return out


def _drift_values(run: RunDir, lim: Limit) -> list[tuple[Optional[str], pd.Series]]:
    """(None, Series forecaster -> the latest rolling error) of the monitoring champion, from
    ``correlation_drift.parquet``."""
    if lim.family != "*":
        raise ConfigError(f"limit {lim.name!r}, field 'family': correlation_drift is not per scenario family "
                          f"(got {lim.family!r}; leave family out)")
    d = run.get("correlation_drift")
    if d is None:
        raise DataError(f"limit {lim.name!r}: metric correlation_drift needs correlation_drift.parquet, which run "
                        f"directory {run.path} does not have (the batch has no monitoring section)")
    champ = d[(d["role"] == "champion") & d["rolling_error"].notna()].sort_values("date")
    if champ.empty:
        raise DataError(f"limit {lim.name!r}: correlation_drift.parquet has no rolling error yet (fewer walk-forward "
                        "steps than monitoring.drift.window)")
    last = champ.iloc[-1]
    return [(None, pd.Series({str(last["forecaster"]): float(last["rolling_error"])}))]


def evaluate_limits(run_dir: str | Path | RunDir, limits: Limits, nav: float | None = None) -> pd.DataFrame:
    """Evaluate every limit on a run directory.

    Parameters
    ----------
    run_dir : a run directory (or :class:`reports.RunDir`)
    limits : from :func:`load_limits` or :func:`parse_limits`
    nav : the book's NAV in base currency; default the limits file's ``nav``, then the manifest's ``nav``

    Returns
    -------
    DataFrame with :data:`BREACH_COLUMNS`: one row per limit, family and group it applies to; ``value``
    and ``threshold`` in the limit's units (a fraction for ``nav``), ``value_currency`` in base currency
    for money metrics, ``breached = value > threshold``, ``headroom = threshold - value``.

    Raises
    ------
    core.ConfigError when a limit names a family, group or confidence level the run does not have, or is in
    units of NAV and no NAV is given; core.DataError when the run lacks the table a metric needs.
    """
    run = open_run(run_dir)
    nav = nav if nav is not None else (limits.nav if limits.nav is not None else run.manifest.get("nav"))
    rows = []
    for lim in limits.limits:
        if lim.units == "nav" and nav is None:
            raise ConfigError(f"limit {lim.name!r}, field 'units': nav needs the book's NAV: give 'nav:' (base currency) "
                              f"in the limits file, or units: currency (got no nav)")
        money = lim.metric not in ("days_to_liquidate", "cost_bps", "correlation_drift")
        pieces = (_money_values(run, lim) if money else _drift_values(run, lim) if lim.metric == "correlation_drift"
                  else _liquidity_values(run, lim))
        for fam, values in pieces:
            for group, v in _select_groups(values, lim).items():
                value = v / nav if lim.units == "nav" else v
                rows.append(dict(limit_name=lim.name, metric=lim.metric, confidence=lim.confidence, scope=lim.scope, family=fam,
                                 group_name=str(group), value=float(value), threshold=float(lim.max), units=lim.units,
                                 value_currency=float(v) if money else np.nan,
                                 breached=bool(value > lim.max), headroom=float(lim.max - value)))
    df = pd.DataFrame(rows, columns=BREACH_COLUMNS)
    df["confidence"] = df["confidence"].astype("float64")
    df["value_currency"] = df["value_currency"].astype("float64")
    df["breached"] = df["breached"].astype(bool)
    for c in ("limit_name", "metric", "scope", "family", "group_name", "units"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def write_breaches(table: pd.DataFrame, run_dir: str | Path) -> Path:
    """Write the evaluated limits as ``breaches.parquet`` in ``run_dir`` (atomically, with the schema version
    in its metadata); returns the path."""
    df = table[BREACH_COLUMNS].astype({"confidence": "float64", "value": "float64", "threshold": "float64",
                                       "value_currency": "float64", "breached": bool, "headroom": "float64"})
    return write_table("breaches", df, Path(run_dir) / "breaches.parquet")

