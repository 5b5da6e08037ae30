"""Declared adaptation rules: what the book and the stress batch become when signals fire.

Rules are data (the batch file's ``monitoring.rules``), applied in the order declared, each to the
result of the previous one; a rule acts when the signals in its ``when`` list fired (``mode: any``, the
default, or ``all``).  Nothing is discretionary: every action and its numbers are in the log.

* ``delever_cluster``: scale by ``factor`` the positions of the most correlated cluster: positions are
  grouped by average-linkage clustering on ``1 - rho`` of their daily P&L correlation over ``window``
  days (cut at average correlation ``min_corr``); the cluster with the highest mean pairwise
  correlation among those with two or more positions is scaled.  The P&L correlation comes from the
  positions' daily P&L history when given, else from the underlying factors' daily moves signed by
  the position's exposure (column ``exposure`` if present, else long or short the factor by type:
  bonds, swaps (receiver), rate futures and CDS (protection sold) lose when their factor rises; puts
  are short their underlying).
* ``tighten_adv_caps``: multiply each position's ``participation_cap`` (the fraction of ADV it may
  trade a day; ``base_cap`` where the column is missing) by ``multiplier``.
* ``stressed_correlation``: give the chosen scenario families an ``amplify.correlation`` stress (the
  Monte Carlo switches to the stressed correlation); ``families`` names them, else every family of
  the ``kinds`` listed (default ``montecarlo``).
* ``vol_target``: scale every position by ``min(max_scale, target_vol / vol)``, ``vol`` the book's
  annualised P&L volatility over ``window`` days (sqrt(252) x daily sd) as a fraction of ``nav``;
  ``max_scale`` (default 1) caps the leverage relative to the current book.

The grid re-runs the stress batch on the resulting book and scenario specs.
"""

from __future__ import annotations

import copy
from typing import Annotated, Literal, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stressgrid.core import ConfigError, DataError, History, factor_moves, log_mask
from stressgrid.scenarios import CorrelationStress

from ._returns import gap_mask
from ._signals import SIGNALS

__all__ = [
    "Rule",
    "DeleverCluster",
    "TightenAdvCaps",
    "StressedCorrelation",
    "VolTarget",
    "RuleOutcome",
    "apply_rules",
    "exposure_signs",
    "correlated_cluster",
]

YEAR = 252


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: list[str] = Field(min_length=1)
    mode: Literal["any", "all"] = "any"

    @field_validator("when", mode="before")
    @classmethod
    def _signals(cls, v):
        v = [v] if isinstance(v, str) else v
        for s in v:
            if s not in SIGNALS:
                raise ValueError(f"unknown signal {s!r}; expected one of {', '.join(SIGNALS)}")
        return v

    def triggered(self, fired: set[str]) -> list[str]:
        hit = [s for s in self.when if s in fired]
        ok = bool(hit) if self.mode == "any" else len(hit) == len(self.when)
        return hit if ok else []


class DeleverCluster(_Rule):
    """``kind: delever_cluster``: scale the most correlated cluster's positions by ``factor``."""

    kind: Literal["delever_cluster"]
    factor: float = Field(default=0.5, ge=0.0, le=1.0)
    min_corr: float = Field(default=0.5, gt=-1.0, lt=1.0)
    window: int = Field(default=60, ge=10)


class TightenAdvCaps(_Rule):
    """``kind: tighten_adv_caps``: multiply participation caps by ``multiplier``."""

    kind: Literal["tighten_adv_caps"]
    multiplier: float = Field(default=0.5, gt=0.0, le=1.0)
    base_cap: float = Field(default=0.10, gt=0.0, le=1.0)


class StressedCorrelation(_Rule):
    """``kind: stressed_correlation``: set ``amplify.correlation`` of the chosen scenario families."""

    kind: Literal["stressed_correlation"]
    correlation: CorrelationStress
    families: list[str] = []
    kinds: list[str] = ["montecarlo"]


class VolTarget(_Rule):
    """``kind: vol_target``: scale the book to ``target_vol`` (annualised, fraction of NAV)."""

    kind: Literal["vol_target"]
    target_vol: float = Field(gt=0.0, le=5.0)
    max_scale: float = Field(default=1.0, gt=0.0)
    window: int = Field(default=60, ge=10)


#: one entry of the batch file's ``monitoring.rules``, chosen by its ``kind``
Rule = Annotated[Union[DeleverCluster, TightenAdvCaps, StressedCorrelation, VolTarget], Field(discriminator="kind")]


class RuleOutcome(tuple):
    """``(positions, log)``: the adapted book and one log row per rule (``rule``, ``kind``, ``signal``
    (the signals that triggered it, or the ones it waits for), ``fired``, ``action``, ``detail``); the
    adapted scenario specs are the attribute ``scenario_specs`` (None when none were given)."""

    def __new__(cls, positions: pd.DataFrame, log: pd.DataFrame, scenario_specs):
        out = super().__new__(cls, (positions, log))
        out.scenario_specs = scenario_specs
        return out

    positions = property(lambda self: self[0])
    log = property(lambda self: self[1])


_NEGATIVE_TYPES = {"bond", "swap", "rate_future", "cds"}


def exposure_signs(positions: pd.DataFrame) -> np.ndarray:
    """Sign ``[N]`` of each position's P&L to a rise of its ``underlying`` factor (module docstring)."""
    if "exposure" in positions.columns and positions["exposure"].notna().all():
        return np.sign(positions["exposure"].to_numpy(dtype=float))
    q = np.sign(positions["quantity"].to_numpy(dtype=float))
    t = positions["type"].astype(str).to_numpy() if "type" in positions.columns else np.full(len(positions), "equity")
    s = np.where(np.isin(t, list(_NEGATIVE_TYPES)), -1.0, 1.0)
    if "option_type" in positions.columns:
        put = positions["option_type"].astype(str).str.lower().to_numpy() == "put"
        s = np.where((t == "option") & put, -s, s)
    return q * s


def _position_corr(positions: pd.DataFrame, window: int, history: History | None, as_of,
                   position_pnl: pd.DataFrame | None) -> tuple[np.ndarray, str]:
    ids = positions["id"].astype(str).tolist()
    if position_pnl is not None:
        missing = [i for i in ids if i not in map(str, position_pnl.columns)]
        if missing:
            raise DataError(f"position P&L history: no column for position(s) {', '.join(missing[:5])}")
        p = position_pnl.rename(columns=str)[ids]
        if as_of is not None:
            p = p.loc[:pd.Timestamp(as_of)]
        p = p.dropna(how="any").iloc[-window:]
        if len(p) < 10:
            raise DataError(f"position P&L history: {len(p)} complete days before the as-of date; need 10")
        return p.corr().to_numpy(), f"P&L correlation over {len(p)} days"
    if history is None:
        raise ConfigError("rule delever_cluster: needs the history or the positions' P&L history")
    und = positions["underlying"].astype(str).tolist()
    uniq = list(dict.fromkeys(und))
    missing = [u for u in uniq if u not in history.factors]
    if missing:
        raise DataError(f"rule delever_cluster: underlying factor(s) {', '.join(missing[:5])} not in the history")
    lv = history.levels[uniq].loc[:pd.Timestamp(as_of) if as_of is not None else None].dropna(how="any")
    lv = lv.iloc[-(window + 1):]
    x = lv.to_numpy(dtype=float)
    if len(x) < 11:
        raise DataError(f"rule delever_cluster: the underlyings are observed together on {len(x)} recent days; need 11")
    m = factor_moves(x[:-1], x[1:], log_mask(uniq))[gap_mask(lv.index)]
    c = pd.DataFrame(m).corr().to_numpy() if len(uniq) > 1 else np.ones((1, 1))
    c = np.nan_to_num(c, nan=0.0)
    j = np.array([uniq.index(u) for u in und])
    s = exposure_signs(positions)
    return c[np.ix_(j, j)] * np.outer(s, s), f"signed factor correlation over {len(m)} days"


def correlated_cluster(corr: np.ndarray, min_corr: float) -> tuple[np.ndarray, float]:
    """Indices of the most correlated cluster (two or more members) and its mean pairwise correlation;
    an empty array when none reaches ``min_corr`` (average linkage on ``1 - rho``, cut at ``1 - min_corr``)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(corr)
    if n < 2:
        return np.array([], dtype=int), float("nan")
    d = np.clip(1.0 - (corr + corr.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    labels = fcluster(linkage(squareform(d, checks=False), method="average"), t=1.0 - min_corr, criterion="distance")
    best, best_c = np.array([], dtype=int), -np.inf
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if len(idx) < 2:
            continue
        sub = corr[np.ix_(idx, idx)]
        mc = float((sub.sum() - np.trace(sub)) / (len(idx) * (len(idx) - 1)))
        if mc >= min_corr and (mc > best_c or (mc == best_c and len(idx) > len(best))):
            best, best_c = idx, mc
    return best, (best_c if len(best) else float("nan"))


def _book_pnl(position_pnl, positions: pd.DataFrame, scale: np.ndarray) -> pd.Series:
    """Daily P&L of the current (scaled) book from the original positions' P&L history."""
    if isinstance(position_pnl, pd.Series):
        if not np.allclose(scale, scale[0]):
            raise ConfigError(
                "rule vol_target: an earlier rule changed some positions only, and the P&L history is one "
                "series for the whole book; give the P&L history by position (one column per position id)"
            )
        return position_pnl * scale[0]
    ids = positions["id"].astype(str).tolist()
    p = position_pnl.rename(columns=str)
    missing = [i for i in ids if i not in p.columns]
    if missing:
        raise DataError(f"position P&L history: no column for position(s) {', '.join(missing[:5])}")
    return p[ids].fillna(0.0) @ scale


def _spec_kind_name(spec) -> tuple[str, str]:
    if isinstance(spec, dict):
        return str(spec.get("kind")), str(spec.get("name", spec.get("kind")))
    return str(getattr(spec, "kind", "")), str(getattr(spec, "name", ""))


def _with_correlation(spec, corr: CorrelationStress):
    if isinstance(spec, dict):
        out = copy.deepcopy(spec)
        amp = dict(out.get("amplify") or {})
        amp["correlation"] = corr.model_dump(exclude_none=True)
        out["amplify"] = amp
        return out
    from stressgrid.scenarios import AmplifySpec

    amp = spec.amplify.model_copy(update={"correlation": corr}) if spec.amplify is not None else AmplifySpec(correlation=corr)
    return spec.model_copy(update={"amplify": amp})


def apply_rules(
    positions: pd.DataFrame,
    signals: pd.DataFrame | Sequence[str],
    rules: Sequence,
    history: History | None = None,
    as_of=None,
    position_pnl: pd.DataFrame | pd.Series | None = None,
    nav: float | None = None,
    scenario_specs: Sequence | None = None,
) -> RuleOutcome:
    """Apply the declared ``rules`` to a book.

    Parameters
    ----------
    positions : the book's positions (``core.Book.positions``: ``id``, ``type``, ``underlying``,
        ``quantity``, ...); not modified
    signals : the table of :func:`evaluate_signals` (its ``fired`` rows count) or the names that fired
    rules : :data:`Rule` entries (or mappings validated into them)
    history, as_of : factor history and date, for ``delever_cluster`` without ``position_pnl``
    position_pnl : daily P&L history ``[T, N]`` of the current positions (columns = position ids), or
        of the whole book (a Series); needed by ``vol_target``
    nav : net asset value, currency of the P&L (``vol_target``)
    scenario_specs : the batch's scenario entries (dicts or validated specs), for
        ``stressed_correlation``

    Returns
    -------
    :class:`RuleOutcome` ``(positions, log)`` with ``.scenario_specs``.
    """
    from pydantic import TypeAdapter, ValidationError

    ta = TypeAdapter(Rule)
    parsed = []
    for k, r in enumerate(rules):
        try:
            parsed.append(r if isinstance(r, BaseModel) else ta.validate_python(r))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"][1:]) or "kind"
            raise ConfigError(f"monitoring.rules[{k}], field '{loc}': {err['msg'].removeprefix('Value error, ')}") from None
    if isinstance(signals, pd.DataFrame):
        fired = set(signals.loc[signals["fired"].astype(bool), "signal"])
    else:
        fired = set(signals)
    pos = positions.copy()
    base_qty = pos["quantity"].to_numpy(dtype=float).copy()
    specs = list(scenario_specs) if scenario_specs is not None else None
    log = []
    for k, rule in enumerate(parsed):
        hit = rule.triggered(fired)
        row = {"rule": k, "kind": rule.kind, "signal": ", ".join(rule.when), "fired": bool(hit),
               "action": "none", "detail": "" if hit else f"no trigger ({rule.mode} of {', '.join(rule.when)})"}
        if hit:
            row["signal"] = ", ".join(hit)
            if isinstance(rule, DeleverCluster):
                corr, how = _position_corr(pos, rule.window, history, as_of, position_pnl if isinstance(position_pnl, pd.DataFrame) else None)
                idx, mc = correlated_cluster(corr, rule.min_corr)
                if len(idx) == 0:
                    row["detail"] = f"no cluster of two or more positions with average correlation >= {rule.min_corr} ({how})"
                else:
                    q = pos["quantity"].to_numpy(dtype=float).copy()
                    q[idx] *= rule.factor
                    pos["quantity"] = q
                    ids = pos["id"].astype(str).to_numpy()[idx]
                    row["action"] = f"scaled {len(idx)} positions by {rule.factor:g}"
                    row["detail"] = f"cluster {', '.join(ids)}; mean correlation {mc:.2f} ({how})"
            elif isinstance(rule, TightenAdvCaps):
                had = "participation_cap" in pos.columns
                cap = pos["participation_cap"].astype(float) if had else pd.Series(rule.base_cap, index=pos.index)
                pos["participation_cap"] = cap.fillna(rule.base_cap) * rule.multiplier
                row["action"] = f"participation caps x{rule.multiplier:g}"
                row["detail"] = ("caps from the book" if had else f"base cap {rule.base_cap:g} of ADV") + \
                    f"; now {pos['participation_cap'].min():g}..{pos['participation_cap'].max():g} of ADV"
            elif isinstance(rule, StressedCorrelation):
                if specs is None:
                    row["detail"] = "no scenario specs given; nothing to change"
                else:
                    names = []
                    for i, s in enumerate(specs):
                        kind, name = _spec_kind_name(s)
                        if (name in rule.families) if rule.families else (kind in rule.kinds):
                            specs[i] = _with_correlation(s, rule.correlation)
                            names.append(name)
                    unknown = sorted(set(rule.families) - {_spec_kind_name(s)[1] for s in specs})
                    if unknown:
                        raise ConfigError(f"monitoring.rules[{k}], field 'families': no scenario family {unknown[0]!r}")
                    row["action"] = f"stressed correlation in {len(names)} famil{'y' if len(names) == 1 else 'ies'}"
                    row["detail"] = (", ".join(names) or "no family matched") + \
                        f"; blend {rule.correlation.blend:g} toward {len(rule.correlation.targets)} target(s)"
            elif isinstance(rule, VolTarget):
                if position_pnl is None:
                    raise ConfigError(f"monitoring.rules[{k}] (vol_target): needs the book's daily P&L history")
                if nav is None or not np.isfinite(nav) or nav <= 0:
                    raise ConfigError(f"monitoring.rules[{k}] (vol_target): needs a positive nav (got {nav!r})")
                with np.errstate(invalid="ignore", divide="ignore"):
                    scale = np.where(base_qty != 0, pos["quantity"].to_numpy(dtype=float) / base_qty, 0.0)
                pnl = _book_pnl(position_pnl, pos, scale)
                if as_of is not None:
                    pnl = pnl.loc[:pd.Timestamp(as_of)]
                pnl = pnl.dropna().iloc[-rule.window:]
                if len(pnl) < 10:
                    raise DataError(f"monitoring.rules[{k}] (vol_target): {len(pnl)} days of P&L; need 10")
                vol = float(pnl.std(ddof=1)) * np.sqrt(YEAR) / nav
                f = rule.max_scale if vol <= 0 else min(rule.max_scale, rule.target_vol / vol)
                pos["quantity"] = pos["quantity"].to_numpy(dtype=float) * f
                row["action"] = f"scaled the book by {f:.4g}"
                row["detail"] = f"vol {vol:.2%} over {len(pnl)} days, target {rule.target_vol:.2%}, max scale {rule.max_scale:g}"
        log.append(row)
    return RuleOutcome(pos, pd.DataFrame(log, columns=["rule", "kind", "signal", "fired", "action", "detail"]), specs)
