"""Declared adaptation rules: what the book and the stress batch become when signals fire.

Rules are data (the batch file's ``monitoring.rules``), applied in the order declared, each to the
result of the previous one; a rule acts when the signals in its ``when`` list fired (``mode: any``, the
default, or ``all``).  Nothing is discretionary: every action and its numbers are in the log.

Rules that cut risk or change the stress batch:

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

Rules that can add (an increase is capped, see below):

* ``vol_target``: scale every position by ``min(max_scale, target_vol / vol)``, ``vol`` the book's
  annualised P&L volatility over ``window`` days (sqrt(252) x daily sd) as a fraction of ``nav``;
  ``max_scale`` (default 1) caps the leverage relative to the book the rule sees.
* ``boost``: scale by ``factor`` the positions of the named ``sleeves`` and ``asset_classes`` (a
  position must be in one of the sleeves listed and in one of the classes listed; a list left out
  does not restrict).
* ``reweight_liquid``: move gross exposure from less to more liquid asset classes, keeping the gross.
  With ``d_i = |q_i| / (p_i ADV_i)`` the days position ``i`` takes to liquidate at its participation
  cap ``p_i``, ``g_i = |q_i| u_i`` its gross, and per class ``c`` ``G_c = sum g_i`` and
  ``D_c = sum g_i d_i / G_c`` (gross-weighted days), every position of class ``c`` is scaled by
  ``s_c = D_c**(-tilt) sum_c G_c / sum_c G_c D_c**(-tilt)``, so that ``sum_c s_c G_c = sum_c G_c``.
* ``overlay``: buy a hedge (an index put on an ``EQ.*`` underlying, or a VIX call, priced by the
  kernels, see :mod:`._overlay`) sized to a premium ``budget`` (a fraction of NAV) or to a ``target``
  cut of a scenario family's CVaR; ``budget: 0`` buys nothing and changes nothing.  It is not ADV-capped.

Caps on an increase.  Gross exposure is ``sum_i |q_i| u_i``, ``u_i`` the base-currency value of one unit
(the liquidity model's unit value; for an option, its premium).  When a rule scales position ``i`` up by
``f_i > 1``:

1. ADV cap: ``|q_i| f_i <= p_i ADV_i liquidation_days`` (``p_i`` the position's ``participation_cap``,
   else the rule's ``participation``): ``f_i`` is cut to ``max(1, p_i ADV_i liquidation_days / |q_i|)``
   (a position already beyond its cap is not increased);
2. gross cap (``boost``, and ``vol_target`` when it sets ``max_gross_multiple``): when the gross after
   the increase would exceed ``max_gross_multiple`` times the gross of the book as given (before any
   rule), every increase is cut by one ratio ``theta`` in [0, 1], ``f_i -> 1 + theta (f_i - 1)``, so
   that the gross equals the cap.

The log says which cap bound and by how much.  Each fired rule's impact (:attr:`RuleOutcome.impact`) is
the gross exposure and the annualised volatility, 99% VaR and 99% CVaR (historical, equal weights) of the
book's daily P&L over the P&L history, as fractions of NAV, before and after the rule; the trading cost
of the change (the ``trade_cost`` callable: the grid passes the liquidity model's); and for an overlay,
its premium, the half spread paid on it and its carry cost.

The grid re-runs the stress batch on the resulting book and scenario specs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Annotated, Callable, Literal, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from stressgrid.core import ASSET_CLASSES, ConfigError, DataError, History, MarketSnapshot, factor_moves, factor_spec, log_mask, var_cvar
from stressgrid.core.book import CURRENCIES, FORMULA_STARTS
from stressgrid.scenarios import CorrelationStress

from ._overlay import INSTRUMENTS, PENDING_INSTRUMENTS, Hedge, default_underlying, hedge_carry, hedge_pnl, price_hedge, size_to_cvar
from ._returns import gap_mask
from ._signals import SIGNALS

__all__ = [
    "Rule",
    "DeleverCluster",
    "TightenAdvCaps",
    "StressedCorrelation",
    "VolTarget",
    "Boost",
    "ReweightLiquid",
    "Overlay",
    "OverlayTarget",
    "StressFamily",
    "RuleOutcome",
    "IMPACT_COLUMNS",
    "RISK_CONFIDENCE",
    "apply_rules",
    "check_rules",
    "exposure_signs",
    "correlated_cluster",
]

YEAR = 252
#: confidence level of the VaR and CVaR in a rule's impact
RISK_CONFIDENCE = 0.99
#: fewest days of P&L history for a rule's impact figures (NaN below)
MIN_RISK_DAYS = 20


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


class _Caps(_Rule):
    """The ADV cap of a rule that can increase positions (module docstring)."""

    participation: float = Field(default=0.10, gt=0.0, le=1.0)
    liquidation_days: float = Field(default=5.0, gt=0.0)


def _classes(v: list[str]) -> list[str]:
    for c in v:
        if c not in ASSET_CLASSES:
            raise ValueError(f"unknown asset class {c!r}; expected one of {', '.join(ASSET_CLASSES)}")
    return v


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


class VolTarget(_Caps):
    """``kind: vol_target``: scale the book to ``target_vol`` (annualised, fraction of NAV); a scale above 1
    is capped by the ADV cap and, when given, by ``max_gross_multiple``."""

    kind: Literal["vol_target"]
    target_vol: float = Field(gt=0.0, le=5.0)
    max_scale: float = Field(default=1.0, gt=0.0)
    window: int = Field(default=60, ge=10)
    max_gross_multiple: Optional[float] = Field(default=None, gt=0.0)


class Boost(_Caps):
    """``kind: boost``: scale the positions of ``sleeves`` and ``asset_classes`` by ``factor``, within the
    ADV cap and ``max_gross_multiple`` times the book's gross."""

    kind: Literal["boost"]
    factor: float = Field(gt=0.0, le=10.0)
    sleeves: list[str] = []
    asset_classes: list[str] = Field(default=[], validate_default=True)
    max_gross_multiple: float = Field(default=1.5, gt=0.0)

    @field_validator("asset_classes")
    @classmethod
    def _asset_classes(cls, v, info: ValidationInfo):
        if not v and "sleeves" in info.data and not info.data["sleeves"]:
            raise ValueError("name the positions to boost: give 'sleeves' or 'asset_classes' (or both)")
        return _classes(v)


class ReweightLiquid(_Caps):
    """``kind: reweight_liquid``: scale each asset class by ``D_c**(-tilt)``, normalised to keep the gross
    (module docstring); ``asset_classes`` limits it to those classes (default: every class of the book)."""

    kind: Literal["reweight_liquid"]
    tilt: float = Field(default=0.5, gt=0.0, le=4.0)
    asset_classes: list[str] = []

    @field_validator("asset_classes")
    @classmethod
    def _asset_classes(cls, v):
        return _classes(v)


class OverlayTarget(BaseModel):
    """``target`` of an overlay: cut the CVaR at ``confidence`` of scenario family ``family`` by ``cvar_cut``
    (a fraction), buying at most a premium of ``max_budget`` (fraction of NAV) when given."""

    model_config = ConfigDict(extra="forbid")
    cvar_cut: float = Field(gt=0.0, lt=1.0)
    family: str
    confidence: float = Field(default=0.99, ge=0.5, lt=1.0)
    max_budget: Optional[float] = Field(default=None, gt=0.0, le=1.0)


class Overlay(_Rule):
    """``kind: overlay``: buy a hedge when the trigger fires (module docstring and :mod:`._overlay`).

    instrument : ``put`` (an index put) or ``vix_call`` (a VIX call); ``payer_swaption`` is named for later
        and refused
    underlying : an ``EQ.*`` index for a put (default ``EQ.SPX``), a surface's ``VOL.<U>.ATM`` for a VIX call
        (default ``VOL.SPX.ATM``); it, its vol surface and the premium currency's curve must be in the
        market snapshot
    strike : the strike as a fraction of the reference (a put: the index's spot, 0.9 is 10% out of the
        money; a VIX call: the VIX future of its expiry); or ``delta``, the option's Black delta (a put's
        in (-1, 0), e.g. -0.25; a VIX call's in (0, 1)); exactly one of the two
    expiry_days : calendar days to expiry
    budget : the premium, a fraction of NAV (>= 0; 0 buys nothing); or ``target``; exactly one of the two
    horizon_days : business days over which the carry cost is reported
    multiplier, currency, dividend_yield, adv, bid_ask_bps, sleeve, id : the new position's columns
        (currency: default that of a book position on the underlying, else the base currency; dividend
        yield, a put's only: default that of a book option on the index, else 0; id: default
        ``OVERLAY_<k>``)
    """

    kind: Literal["overlay"]
    instrument: str = "put"
    underlying: Optional[str] = Field(default=None, validate_default=True)
    strike: Optional[float] = None
    delta: Optional[float] = Field(default=None, validate_default=True)
    expiry_days: int = Field(default=90, ge=1, le=3650)
    budget: Optional[float] = None
    target: Optional[OverlayTarget] = Field(default=None, validate_default=True)
    horizon_days: int = Field(default=20, ge=0, le=2520)
    multiplier: float = Field(default=100.0, gt=0.0)
    currency: Optional[str] = None
    dividend_yield: Optional[float] = Field(default=None, ge=-0.5, le=0.5)
    adv: float = Field(default=10_000.0, gt=0.0)
    bid_ask_bps: float = Field(default=0.0, ge=0.0)
    sleeve: str = "overlay"
    id: Optional[str] = None

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, v: str) -> str:
        if v in PENDING_INSTRUMENTS:
            raise ValueError(PENDING_INSTRUMENTS[v])
        if v not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {v!r}; expected one of {', '.join(INSTRUMENTS)}")
        return v

    @field_validator("underlying")
    @classmethod
    def _underlying(cls, v, info: ValidationInfo):
        inst = info.data.get("instrument")
        if inst is None:  # the instrument is wrong: that is the error to report
            return v
        if v is None:
            return default_underlying(inst)
        try:
            factor_spec(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if inst == "put" and not v.startswith("EQ."):
            raise ValueError(f"{v!r} is not an equity index level; an index put needs an EQ.* factor")
        if inst == "vix_call" and not (v.startswith("VOL.") and v.endswith(".ATM")):
            raise ValueError(f"{v!r}: a VIX call is written on the ATM factor of a vol surface, VOL.<U>.ATM "
                             "(VOL.SPX.ATM for the VIX)")
        return v

    @field_validator("strike")
    @classmethod
    def _strike(cls, v):
        if v is not None and not (math.isfinite(v) and 0.0 < v <= 5.0):
            raise ValueError(f"{v!r} must be a fraction of spot in (0, 5] (0.9: 10% out of the money)")
        return v

    @field_validator("delta")
    @classmethod
    def _delta(cls, v, info: ValidationInfo):
        call = info.data.get("instrument") == "vix_call"
        if v is not None and not (math.isfinite(v) and (0.0 < v < 1.0 if call else -1.0 < v < 0.0)):
            raise ValueError(f"{v!r} must be a call's delta, in (0, 1) (e.g. 0.3)" if call else
                             f"{v!r} must be a put's delta, in (-1, 0) (e.g. -0.25)")
        if "strike" in info.data and (info.data["strike"] is None) == (v is None):
            raise ValueError("give exactly one of 'strike' (a fraction of spot) and 'delta' "
                             f"(got {'neither' if v is None else 'both'})")
        return v

    @field_validator("budget")
    @classmethod
    def _budget(cls, v):
        if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"{v!r} must be a premium in [0, 1] as a fraction of NAV (0.002 = 0.2%)")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v, info: ValidationInfo):
        if "budget" in info.data and (info.data["budget"] is None) == (v is None):
            raise ValueError("give exactly one of 'budget' (premium, fraction of NAV) and 'target' ({cvar_cut, family}) "
                             f"(got {'neither' if v is None else 'both'})")
        return v

    @field_validator("dividend_yield")
    @classmethod
    def _dividends(cls, v, info: ValidationInfo):
        if v is not None and info.data.get("instrument", "put") != "put":
            raise ValueError("only an index put takes a dividend yield")
        return v

    @field_validator("currency")
    @classmethod
    def _ccy(cls, v):
        if v is not None and v not in CURRENCIES:
            raise ValueError(f"{v!r} is not a known ISO 4217 currency code")
        return v

    @field_validator("sleeve", "id")
    @classmethod
    def _text(cls, v):
        if v is not None and (not v or v[0] in FORMULA_STARTS):
            raise ValueError(f"{v!r} must be non-empty and not start with {', '.join(FORMULA_STARTS)}")
        return v


#: one entry of the batch file's ``monitoring.rules``, chosen by its ``kind``
Rule = Annotated[Union[DeleverCluster, TightenAdvCaps, StressedCorrelation, VolTarget, Boost, ReweightLiquid, Overlay],
                 Field(discriminator="kind")]


@dataclass(frozen=True)
class StressFamily:
    """One scenario family, to size an overlay to a CVaR ``target``.

    pnl : ``[S, N]`` P&L of each position of the book as given to :func:`apply_rules` (base currency)
    shocks : ``[S, F]`` the family's factor shocks on the market snapshot's factors
    weights : ``[S]`` scenario probabilities (None: equal)
    horizon_days : business days after the as-of date at which the family values the book (0: now)
    """

    pnl: np.ndarray
    shocks: np.ndarray
    weights: np.ndarray | None = None
    horizon_days: int = 0


#: the columns of :attr:`RuleOutcome.impact` (docs/monitoring.md, and the ``rules_impact`` table)
IMPACT_COLUMNS = ["rule", "kind", "position_id", "gross_before", "gross_after", "vol_before", "vol_after", "var_before",
                  "var_after", "cvar_before", "cvar_after", "confidence", "history_days", "trade_cost", "premium",
                  "carry_cost", "carry_days", "bound"]


class RuleOutcome(tuple):
    """``(positions, log)``: the adapted book and one log row per rule (``rule``, ``kind``, ``signal``
    (the signals that triggered it, or the ones it waits for), ``fired``, ``action``, ``detail``); the
    adapted scenario specs are the attribute ``scenario_specs`` (None when none were given), and the
    impact of each fired rule the attribute ``impact`` (columns :data:`IMPACT_COLUMNS`)."""

    def __new__(cls, positions: pd.DataFrame, log: pd.DataFrame, scenario_specs, impact: pd.DataFrame | None = None):
        out = super().__new__(cls, (positions, log))
        out.scenario_specs = scenario_specs
        out.impact = impact if impact is not None else pd.DataFrame(columns=IMPACT_COLUMNS)  # see apply_rules
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
        s = np.where(np.isin(t, ["option", "vix_option"]) & put, -s, s)
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


class _Added(NamedTuple):
    """An overlay's contract: its pricing, and its daily P&L history per contract (None without the daily moves)."""

    hedge: Hedge
    history: pd.Series | None


class _Book:
    """The book as the rules change it: the positions as given (the first ``n0`` rows) and the overlays added,
    with each row's unit value and the P&L the rules and their impact read."""

    def __init__(self, positions: pd.DataFrame, position_pnl, unit_values, nav, as_of):
        self.pos = positions.copy()
        self.n0 = len(positions)
        self.q0 = positions["quantity"].to_numpy(dtype=float).copy()
        self.position_pnl = position_pnl
        if unit_values is None:
            self.unit = np.full(self.n0, np.nan)
        else:
            u = unit_values.reindex(positions["id"]).to_numpy(float) if isinstance(unit_values, pd.Series) else np.asarray(unit_values, float)
            if u.shape != (self.n0,):
                raise ConfigError(f"unit values: {u.shape[0] if u.ndim == 1 else u.shape} of them for {self.n0} positions")
            self.unit = u.copy()
        self.nav = nav
        self.as_of = as_of
        self.added: dict[int, _Added] = {}
        self.gross0 = self.gross()

    def qty(self) -> np.ndarray:
        return self.pos["quantity"].to_numpy(dtype=float)

    def gross(self) -> float:
        """``sum |q| u`` (NaN when a held position has no unit value)."""
        q = self.qty()
        held = q != 0
        if not np.all(np.isfinite(self.unit[held])):
            return float("nan")
        return float(np.abs(q[held]) @ self.unit[held])

    def scale0(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.q0 != 0, self.qty()[: self.n0] / np.where(self.q0 != 0, self.q0, 1.0), 0.0)

    def daily_pnl(self, who: str) -> pd.Series:
        """Daily P&L of the current book over the P&L history (up to the as-of date)."""
        if self.position_pnl is None:
            raise ConfigError(f"{who}: needs the book's daily P&L history")
        scale = self.scale0()
        pp = self.position_pnl
        if isinstance(pp, pd.Series):
            if self.n0 and not np.allclose(scale, scale[0]):
                raise ConfigError(
                    f"{who}: an earlier rule changed some positions only, and the P&L history is one series for the "
                    "whole book; give the P&L history by position (one column per position id)")
            pnl = pp * (scale[0] if self.n0 else 0.0)
        else:
            ids = self.pos["id"].astype(str).tolist()[: self.n0]
            p = pp.rename(columns=str)
            missing = [i for i in ids if i not in p.columns]
            if missing:
                raise DataError(f"position P&L history: no column for position(s) {', '.join(missing[:5])}")
            pnl = p[ids].fillna(0.0) @ scale
        q = self.qty()
        for row, a in self.added.items():
            if q[row] != 0:
                if a.history is None:
                    raise ConfigError(f"{who}: needs the factors' daily moves to value the overlay {a.hedge.row['id'].iloc[0]!r} "
                                      "over the P&L history")
                h = a.history.reindex(pnl.index)
                if h.isna().any():
                    raise DataError(f"{who}: the factors' daily moves miss {int(h.isna().sum())} day(s) of the P&L history")
                pnl = pnl + q[row] * h
        if self.as_of is not None:
            pnl = pnl.loc[: pd.Timestamp(self.as_of)]
        return pnl.dropna()

    def pnl_frame(self) -> pd.DataFrame | None:
        """Daily P&L by position (the added overlays per contract), for the P&L correlation; None without a
        history by position."""
        if not isinstance(self.position_pnl, pd.DataFrame):
            return None
        p = self.position_pnl.rename(columns=str)
        for row, a in self.added.items():
            if a.history is None:
                return None
            p = p.assign(**{str(self.pos["id"].iloc[row]): a.history.reindex(p.index)})
        return p

    def risk(self) -> tuple[float, float, float, int]:
        """``(vol, VaR, CVaR, days)`` of the book's daily P&L as fractions of NAV (the book's gross as given
        without a NAV); NaN where the P&L history or the NAV is missing."""
        denom = self.nav if self.nav is not None and np.isfinite(self.nav) and self.nav > 0 else self.gross0
        nan = (float("nan"),) * 3 + (0,)
        if not (np.isfinite(denom) and denom > 0):
            return nan
        try:
            x = self.daily_pnl("risk").to_numpy(dtype=float)
        except (ConfigError, DataError):
            return nan
        if len(x) < MIN_RISK_DAYS:
            return nan[:3] + (len(x),)
        var, cvar = var_cvar(x, RISK_CONFIDENCE)
        return float(np.std(x, ddof=1)) * math.sqrt(YEAR) / denom, var / denom, cvar / denom, len(x)

    def stress_pnl(self, fam: StressFamily, market: MarketSnapshot, base_ccy: str) -> np.ndarray:
        """P&L ``[S]`` of the current book over a scenario family."""
        pnl = np.asarray(fam.pnl, dtype=float)
        if pnl.ndim != 2 or pnl.shape[1] != self.n0:
            raise DataError(f"stress family: P&L of shape {pnl.shape} for {self.n0} positions")
        x = pnl @ self.scale0()
        q = self.qty()
        for row, a in self.added.items():
            if q[row] != 0:
                x = x + q[row] * hedge_pnl(a.hedge, market, base_ccy, fam.shocks, fam.horizon_days)
        return x

    def add(self, row: pd.DataFrame, unit: float, added: _Added) -> None:
        self.pos = pd.concat([self.pos, row], ignore_index=True)
        self.unit = np.r_[self.unit, unit]
        self.added[len(self.pos) - 1] = added


def _participation(book: _Book, rows: np.ndarray, default: float) -> np.ndarray:
    if "participation_cap" in book.pos.columns:
        pc = pd.to_numeric(book.pos["participation_cap"], errors="coerce").to_numpy(float)[rows]
        return np.where(np.isfinite(pc) & (pc > 0), pc, default)
    return np.full(len(rows), float(default))


def _adv(book: _Book, rows: np.ndarray, k: int, kind: str) -> np.ndarray:
    if "adv" not in book.pos.columns:
        raise ConfigError(f"monitoring.rules[{k}] ({kind}): the positions have no 'adv' column for the ADV cap")
    return pd.to_numeric(book.pos["adv"], errors="coerce").to_numpy(float)[rows]


def _capped(book: _Book, rows: np.ndarray, f: np.ndarray, rule, k: int, gross_cap: float | None) -> tuple[np.ndarray, list[str], list[str]]:
    """The factors ``f`` of positions ``rows`` with the caps on an increase applied (module docstring):
    ``(factors, notes for the log, caps that bound)``."""
    f = np.asarray(f, dtype=float).copy()
    a = np.abs(book.qty()[rows])
    notes: list[str] = []
    bound: list[str] = []
    up = (f > 1.0) & (a > 0)
    if not up.any():
        return f, notes, bound
    adv = _adv(book, rows, k, rule.kind)
    room = _participation(book, rows, rule.participation) * adv * rule.liquidation_days
    with np.errstate(invalid="ignore", divide="ignore"):
        lim = np.where(a > 0, np.maximum(1.0, room / np.where(a > 0, a, 1.0)), np.inf)
    lim = np.where(np.isfinite(adv) & (adv > 0), lim, 1.0)
    hit = up & (f > lim)
    if hit.any():
        ids = book.pos["id"].astype(str).to_numpy()[rows][hit]
        shown = ", ".join(f"{i} x{w:.4g} -> x{g:.4g}" for i, w, g in zip(ids[:5], f[hit][:5], lim[hit][:5]))
        notes.append(f"ADV cap ({rule.liquidation_days:g} days at the participation cap) cut {int(hit.sum())} "
                     f"position(s): {shown}{' ...' if hit.sum() > 5 else ''}")
        f = np.where(hit, lim, f)
        bound.append("adv")
    if gross_cap is not None:
        u = book.unit[rows]
        if not np.all(np.isfinite(u[up])) or not np.isfinite(book.gross0):
            raise ConfigError(f"monitoring.rules[{k}] ({rule.kind}): the gross cap needs each position's unit value "
                              "(base-currency value of one unit)")
        now = book.gross()
        add = float(np.sum(a * u * np.maximum(f - 1.0, 0.0)))
        if add > 0 and now + add > gross_cap * (1 + 1e-12):
            theta = max(gross_cap - now, 0.0) / add
            f = np.where(f > 1.0, 1.0 + theta * (f - 1.0), f)
            notes.append(f"gross cap {gross_cap:,.0f} ({rule.max_gross_multiple:g} x the book's gross {book.gross0:,.0f}) "
                         f"cut the increase to {theta:.1%} of the one asked (gross {now:,.0f} -> {now + theta * add:,.0f})")
            bound.append("gross")
    return f, notes, bound


def _scale_rows(book: _Book, rows: np.ndarray, f: np.ndarray) -> None:
    q = book.qty().copy()
    q[rows] = q[rows] * f
    book.pos["quantity"] = q


def _range(f: np.ndarray) -> str:
    lo, hi = float(np.min(f)), float(np.max(f))
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"


def _boost_selection(positions: pd.DataFrame, rule: Boost, k: int) -> np.ndarray:
    """bool ``[n]``: the positions in the boost's sleeves and asset classes; a name no position carries is
    an error naming the rule's field."""
    sel = np.ones(len(positions), dtype=bool)
    for field, col, names in (("sleeves", "sleeve", rule.sleeves), ("asset_classes", "asset_class", rule.asset_classes)):
        if not names:
            continue
        if col not in positions.columns:
            raise ConfigError(f"monitoring.rules[{k}], field '{field}': the positions have no '{col}' column")
        have = positions[col].astype(str).to_numpy()
        unknown = [n for n in names if n not in set(have)]
        if unknown:
            raise ConfigError(f"monitoring.rules[{k}], field '{field}': no position in {col.replace('_', ' ')} {unknown[0]!r} "
                              f"(the book's: {', '.join(dict.fromkeys(have))})")
        sel &= np.isin(have, names)
    return sel


def _boost(book: _Book, rule: Boost, k: int) -> tuple[str, str, list[str]]:
    sel = _boost_selection(book.pos, rule, k)
    rows = np.flatnonzero(sel & (book.qty() != 0))
    if not len(rows):
        return "none", "no position held is in the sleeves and asset classes named", []
    if not np.isfinite(book.gross0):
        raise ConfigError(f"monitoring.rules[{k}] (boost): the gross cap needs each position's unit value "
                          "(base-currency value of one unit)")
    f, notes, bound = _capped(book, rows, np.full(len(rows), rule.factor), rule, k, rule.max_gross_multiple * book.gross0)
    _scale_rows(book, rows, f)
    ids = book.pos["id"].astype(str).to_numpy()[rows]
    action = (f"scaled {len(rows)} positions by {rule.factor:g}" if not bound
              else f"scaled {len(rows)} positions by {_range(f)} (asked {rule.factor:g}; {' and '.join(bound)} cap)")
    detail = "; ".join([", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")] + notes)
    return action, detail, bound


def _reweight(book: _Book, rule: ReweightLiquid, k: int) -> tuple[str, str, list[str]]:
    if "asset_class" not in book.pos.columns:
        raise ConfigError(f"monitoring.rules[{k}] (reweight_liquid): the positions have no 'asset_class' column")
    cls = book.pos["asset_class"].astype(str).to_numpy()
    q = book.qty()
    held = q != 0
    unknown = [c for c in rule.asset_classes if c not in set(cls[held])]
    if unknown:
        raise ConfigError(f"monitoring.rules[{k}], field 'asset_classes': the book holds no {unknown[0]!r} position "
                          f"(it holds {', '.join(dict.fromkeys(cls[held]))})")
    classes = list(rule.asset_classes) or list(dict.fromkeys(cls[held]))
    rows = np.flatnonzero(held & np.isin(cls, classes))
    u = book.unit[rows]
    if not np.all(np.isfinite(u)):
        raise ConfigError(f"monitoring.rules[{k}] (reweight_liquid): needs each position's unit value (base-currency "
                          "value of one unit)")
    a = np.abs(q[rows])
    g = a * u
    days = a / (_participation(book, rows, rule.participation) * _adv(book, rows, k, rule.kind))
    if not np.all(np.isfinite(days)):
        raise ConfigError(f"monitoring.rules[{k}] (reweight_liquid): every position needs a positive 'adv'")
    G = np.array([g[cls[rows] == c].sum() for c in classes])
    D = np.array([(g[cls[rows] == c] @ days[cls[rows] == c]) / G[j] if G[j] > 0 else np.nan for j, c in enumerate(classes)])
    live = G > 0
    if live.sum() < 2:
        return "none", f"fewer than two asset classes with exposure among {', '.join(classes)}: nothing to move", []
    w = np.where(live, D ** -rule.tilt, 0.0)
    s = w * G[live].sum() / (G[live] @ w[live])
    f = s[[classes.index(c) for c in cls[rows]]]
    before = book.gross()
    f, notes, bound = _capped(book, rows, f, rule, k, None)
    _scale_rows(book, rows, f)
    moved = float(np.sum(np.maximum(a * u * (f - 1.0), 0.0)))
    parts = [f"{c}: {D[j]:.3g} days, x{s[j]:.4g}" for j, c in enumerate(classes) if live[j]]
    detail = "; ".join([", ".join(parts), f"gross {before:,.0f} -> {book.gross():,.0f}"] + notes)
    return f"moved {moved:,.0f} of gross toward the more liquid asset classes", detail, bound


def _vol_target(book: _Book, rule: VolTarget, k: int) -> tuple[str, str, list[str]]:
    who = f"monitoring.rules[{k}] (vol_target)"
    if book.position_pnl is None:
        raise ConfigError(f"{who}: needs the book's daily P&L history")
    if book.nav is None or not np.isfinite(book.nav) or book.nav <= 0:
        raise ConfigError(f"{who}: needs a positive nav (got {book.nav!r})")
    pnl = book.daily_pnl(who).iloc[-rule.window:]
    if len(pnl) < 10:
        raise DataError(f"{who}: {len(pnl)} days of P&L; need 10")
    vol = float(pnl.std(ddof=1)) * np.sqrt(YEAR) / book.nav
    f = rule.max_scale if vol <= 0 else min(rule.max_scale, rule.target_vol / vol)
    rows = np.arange(len(book.pos))
    cap = None if rule.max_gross_multiple is None else rule.max_gross_multiple * book.gross0
    if cap is not None and not np.isfinite(cap):
        raise ConfigError(f"{who}: the gross cap needs each position's unit value (base-currency value of one unit)")
    fs, notes, bound = _capped(book, rows, np.full(len(rows), f), rule, k, cap)
    _scale_rows(book, rows, fs)
    held = book.qty() != 0
    action = (f"scaled the book by {f:.4g}" if not bound else
              f"scaled the book by {_range(fs[held] if held.any() else fs)} (asked {f:.4g}; {' and '.join(bound)} cap)")
    detail = "; ".join([f"vol {vol:.2%} over {len(pnl)} days, target {rule.target_vol:.2%}, max scale {rule.max_scale:g}"] + notes)
    return action, detail, bound


def _overlay(book: _Book, rule: Overlay, k: int, market, base_ccy, daily_moves, stress) -> tuple[str, str, dict]:
    who = f"monitoring.rules[{k}] (overlay)"
    if market is None or base_ccy is None:
        raise ConfigError(f"{who}: needs the market snapshot and the base currency to price the hedge")
    nav = book.nav
    if nav is None or not np.isfinite(nav) or nav <= 0:
        raise ConfigError(f"{who}: needs a positive nav to size the hedge (got {nav!r})")
    hedge = price_hedge(rule, k, market, base_ccy, book.pos)
    pid = str(hedge.row["id"].iloc[0])
    if pid in set(book.pos["id"].astype(str)):
        raise ConfigError(f"monitoring.rules[{k}], field 'id': position id {pid!r} is already in the book")
    inst = INSTRUMENTS[rule.instrument]
    what = (f"{rule.underlying} {inst.option_type} {hedge.strike:.6g} ({hedge.strike / hedge.reference:.2%} of the "
            f"{inst.reference} {hedge.reference:.6g}), expiry {hedge.expiry} ({rule.expiry_days} days), "
            f"vol {hedge.vol:.2%}, delta {hedge.delta:.3f}, {hedge.price:,.2f} a contract")
    extra = {"position_id": None, "premium": 0.0, "carry_cost": 0.0, "carry_days": rule.horizon_days, "trade_cost": 0.0}
    if rule.budget is not None:
        q = rule.budget * nav / hedge.price
        sizing = f"premium budget {rule.budget:.3%} of NAV"
    else:
        t = rule.target
        if stress is None or t.family not in stress:
            have = ", ".join(stress) if isinstance(stress, Mapping) else "none given"
            raise ConfigError(f"monitoring.rules[{k}], field 'target.family': no scenario family {t.family!r} (families: {have})")
        fam = stress[t.family]
        y = hedge_pnl(hedge, market, base_ccy, fam.shocks, fam.horizon_days)
        x = book.stress_pnl(fam, market, base_ccy)
        q_max = t.max_budget * nav / hedge.price if t.max_budget is not None else math.inf
        res = size_to_cvar(x, y, fam.weights, t.confidence, t.cvar_cut, 1e-3 * nav / hedge.price, q_max)
        q = res["quantity"]
        sizing = f"sized to cut the {t.confidence:g} CVaR of {t.family!r} by {t.cvar_cut:.0%}: {res['note']}"
    if not q > 0:
        return "none", f"bought nothing ({sizing}); {what}", extra
    history = None
    if daily_moves is not None:
        try:
            moves = daily_moves[list(market.factors)]
        except KeyError as exc:
            raise DataError(f"{who}: the factors' daily moves lack {exc}") from None
        history = pd.Series(hedge_pnl(hedge, market, base_ccy, moves.to_numpy(dtype=float)), index=moves.index)
    book.add(hedge.row.assign(quantity=q), hedge.price, _Added(hedge, history))
    premium = q * hedge.price
    carry = q * hedge_carry(hedge, market, base_ccy, rule.horizon_days)
    extra.update(position_id=pid, premium=premium, carry_cost=carry, trade_cost=premium * rule.bid_ask_bps / 2e4)
    detail = (f"{pid}: {what}; {sizing}; premium {premium:,.0f} ({premium / nav:.3%} of NAV), carry cost over "
              f"{rule.horizon_days} business days {carry:,.0f}")
    return f"bought {q:,.6g} {rule.instrument.replace('_', ' ')}s on {rule.underlying}", detail, extra


def _parse(rules: Sequence) -> list:
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
    return parsed


def check_rules(rules: Sequence, market: MarketSnapshot, base_ccy: str, positions: pd.DataFrame | None = None,
                families: Sequence[str] | None = None) -> None:
    """Check what the rules need of the market and the batch, before any fires: each overlay's hedge can be
    priced at the snapshot (its underlying, vol surface and curve are there; a delta some strike reaches),
    its id is free, and its ``target.family`` is a scenario family (when ``families`` is given).  Raises
    :class:`ConfigError` naming ``monitoring.rules[k]`` and the field."""
    ids = set(positions["id"].astype(str)) if positions is not None else set()
    for k, rule in enumerate(_parse(rules)):
        if isinstance(rule, Boost) and positions is not None:  # a mistyped sleeve failed only when the rule fired
            _boost_selection(positions, rule, k)
        if not isinstance(rule, Overlay):
            continue
        hedge = price_hedge(rule, k, market, base_ccy, positions)
        pid = str(hedge.row["id"].iloc[0])
        if pid in ids:
            raise ConfigError(f"monitoring.rules[{k}], field 'id': position id {pid!r} is already in the book")
        ids.add(pid)
        if rule.target is not None and families is not None and rule.target.family not in families:
            raise ConfigError(f"monitoring.rules[{k}], field 'target.family': no scenario family {rule.target.family!r} "
                              f"(families: {', '.join(families)})")


def apply_rules(
    positions: pd.DataFrame,
    signals: pd.DataFrame | Sequence[str],
    rules: Sequence,
    history: History | None = None,
    as_of=None,
    position_pnl: pd.DataFrame | pd.Series | None = None,
    nav: float | None = None,
    scenario_specs: Sequence | None = None,
    *,
    market: MarketSnapshot | None = None,
    base_ccy: str | None = None,
    unit_values: np.ndarray | pd.Series | None = None,
    trade_cost: Callable[[np.ndarray], float] | None = None,
    daily_moves: pd.DataFrame | None = None,
    stress: Mapping[str, StressFamily] | None = None,
) -> RuleOutcome:
    """Apply the declared ``rules`` to a book.

    Parameters
    ----------
    positions : the book's positions (``core.Book.positions``: ``id``, ``type``, ``underlying``,
        ``quantity``, ``adv``, ``asset_class``, ``sleeve``, ...); not modified
    signals : the table of :func:`evaluate_signals` (its ``fired`` rows count) or the names that fired
    rules : :data:`Rule` entries (or mappings validated into them)
    history, as_of : factor history and date, for ``delever_cluster`` without ``position_pnl``
    position_pnl : daily P&L history ``[T, N]`` of the current positions (columns = position ids), or
        of the whole book (a Series); needed by ``vol_target``, and by the impact's risk figures
    nav : net asset value, currency of the P&L (``vol_target``, ``overlay``, the impact's fractions)
    scenario_specs : the batch's scenario entries (dicts or validated specs), for
        ``stressed_correlation``
    market, base_ccy : the market snapshot and base currency, to price an ``overlay``'s hedge
    unit_values : ``[N]`` base-currency value of one unit of each position (or a Series by id), for
        gross exposure: the gross cap and the impact
    trade_cost : ``trade_cost(trade_values [N]) -> cost`` (base currency) of signed trades in base
        currency of the positions as given, for the impact (e.g. the liquidity model's); None: NaN
    daily_moves : ``[T, F]`` factor shocks on the snapshot's factors, one row per day of
        ``position_pnl`` (index: the days), to value an overlay over the P&L history
    stress : scenario family name -> :class:`StressFamily`, for an overlay's ``target``

    Returns
    -------
    :class:`RuleOutcome` ``(positions, log)`` with ``.scenario_specs`` and ``.impact``.
    """
    parsed = _parse(rules)
    if market is not None and base_ccy is not None and any(isinstance(r, Overlay) for r in parsed):
        check_rules(parsed, market, base_ccy, positions, list(stress) if isinstance(stress, Mapping) else None)
    if isinstance(signals, pd.DataFrame):
        fired = set(signals.loc[signals["fired"].astype(bool), "signal"])
    else:
        fired = set(signals)
    book = _Book(positions, position_pnl, unit_values, nav, as_of)
    specs = list(scenario_specs) if scenario_specs is not None else None
    log, impact = [], []
    for k, rule in enumerate(parsed):
        hit = rule.triggered(fired)
        row = {"rule": k, "kind": rule.kind, "signal": ", ".join(rule.when), "fired": bool(hit),
               "action": "none", "detail": "" if hit else f"no trigger ({rule.mode} of {', '.join(rule.when)})"}
        if not hit:
            log.append(row)
            continue
        row["signal"] = ", ".join(hit)
        q_before = book.qty()[: book.n0].copy()
        g_before, r_before = book.gross(), book.risk()
        bound: list[str] = []
        extra: dict = {}
        if isinstance(rule, DeleverCluster):
            frame = book.pnl_frame()
            corr, how = _position_corr(book.pos, rule.window, history, as_of, frame)
            idx, mc = correlated_cluster(corr, rule.min_corr)
            if len(idx) == 0:
                row["detail"] = f"no cluster of two or more positions with average correlation >= {rule.min_corr} ({how})"
            else:
                _scale_rows(book, idx, np.full(len(idx), rule.factor))
                ids = book.pos["id"].astype(str).to_numpy()[idx]
                row["action"] = f"scaled {len(idx)} positions by {rule.factor:g}"
                row["detail"] = f"cluster {', '.join(ids)}; mean correlation {mc:.2f} ({how})"
        elif isinstance(rule, TightenAdvCaps):
            pos = book.pos
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
            row["action"], row["detail"], bound = _vol_target(book, rule, k)
        elif isinstance(rule, Boost):
            row["action"], row["detail"], bound = _boost(book, rule, k)
        elif isinstance(rule, ReweightLiquid):
            row["action"], row["detail"], bound = _reweight(book, rule, k)
        elif isinstance(rule, Overlay):
            row["action"], row["detail"], extra = _overlay(book, rule, k, market, base_ccy, daily_moves, stress)
        log.append(row)
        r_after = book.risk()
        dq = book.qty()[: book.n0] - q_before
        if not dq.any():
            cost = 0.0
        elif trade_cost is None or not np.all(np.isfinite(book.unit[: book.n0][dq != 0])):
            cost = float("nan")
        else:
            cost = float(trade_cost(np.where(dq != 0, dq * np.nan_to_num(book.unit[: book.n0]), 0.0)))
        impact.append({
            "rule": k, "kind": rule.kind, "position_id": extra.get("position_id"),
            "gross_before": g_before, "gross_after": book.gross(),
            "vol_before": r_before[0], "vol_after": r_after[0], "var_before": r_before[1], "var_after": r_after[1],
            "cvar_before": r_before[2], "cvar_after": r_after[2], "confidence": RISK_CONFIDENCE,
            "history_days": r_after[3], "trade_cost": cost + extra.get("trade_cost", 0.0),
            "premium": extra.get("premium", float("nan")), "carry_cost": extra.get("carry_cost", float("nan")),
            "carry_days": extra.get("carry_days"), "bound": ", ".join(bound) or None,
        })
    imp = pd.DataFrame(impact, columns=IMPACT_COLUMNS)
    imp = imp.astype({**{c: "float64" for c in IMPACT_COLUMNS[3:12] + ["trade_cost", "premium", "carry_cost"]},
                      "rule": "int64", "history_days": "int64", "carry_days": "Int64", "position_id": "string",
                      "bound": "string", "kind": "string"})
    return RuleOutcome(book.pos, pd.DataFrame(log, columns=["rule", "kind", "signal", "fired", "action", "detail"]), specs, imp)
