"""The state-dependent trading-cost model: half the bid-ask spread plus square-root market impact.

Trading ``u`` units of position ``i`` (one order, however many days it takes), at unit value ``p`` (base
currency), costs

    c_i(u) = h_i m_s u p  +  k_i m_v sigma_i u p sqrt(u / (m_a ADV_i))

with ``h_i`` half the quoted bid-ask spread (decimal of price), ``k_i`` the impact coefficient ``Y`` of
the square-root law (Toth et al. 2011; Bouchaud et al., *Trades, Quotes and Prices*, 2018, ch. 12),
``sigma_i`` the daily return volatility, ``ADV_i`` the average daily volume in units, and the state
multipliers ``m_s`` (spread widening), ``m_a`` (ADV cut) and ``m_v`` (volatility) of the conditions the
trade happens in (:class:`Conditions`).  The first term is linear in size, the second grows as
``size**1.5``.

The square-root law gives the impact of a whole metaorder (a large order executed as many child orders)
from its total size relative to the *daily* volume, with the *daily* volatility, to first order whatever
the time ``T`` it is executed over (Toth et al. 2011; Bouchaud et al. 2018, ch. 12): spreading a sale over
more days does not make it cheaper in this model.  A day's trade is at most ``cap_i m_a ADV_i`` units, ``cap_i`` the participation cap of the
position's asset class (multiplied by ``stress_cap_mult`` in stressed conditions), so the caps set how
many days an unwind takes, during which prices keep moving (:mod:`liquidity._schedule`,
:mod:`liquidity._drawdown`).  With spread and volatility multipliers >= 1 and an ADV multiplier <= 1,
the same trade never costs less in stress than in the base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError
from stressgrid.core.scenarioset import LIQUIDITY_CLASSES, ScenarioSet

from ._params import LiquidityParams

__all__ = ["Conditions", "LiquidityModel", "BASE"]

ClassMult = float | Mapping[str, float] | np.ndarray


def _class_array(v: ClassMult, name: str) -> np.ndarray:
    """A per-class multiplier as an array ``[C]`` or ``[S, C]`` (columns :data:`LIQUIDITY_CLASSES`)."""
    if isinstance(v, Mapping):
        unknown = [k for k in v if k not in LIQUIDITY_CLASSES and k != "default"]
        if unknown:
            raise ConfigError(f"conditions, field '{name}': unknown asset class {unknown[0]!r} "
                              f"(expected {', '.join(LIQUIDITY_CLASSES)} or default)")
        d = float(v.get("default", 1.0))
        arr = np.array([float(v.get(c, d)) for c in LIQUIDITY_CLASSES])
    else:
        arr = np.asarray(v, dtype=float)
        if arr.ndim == 0:
            arr = np.full(len(LIQUIDITY_CLASSES), float(arr))
    if arr.shape[-1:] != (len(LIQUIDITY_CLASSES),) or arr.ndim > 2:
        raise ConfigError(f"conditions, field '{name}': expected a number, a mapping per asset class, or an array "
                          f"[C] or [S, C] with C = {len(LIQUIDITY_CLASSES)} columns ({', '.join(LIQUIDITY_CLASSES)}); "
                          f"got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class Conditions:
    """The liquidity state a trade happens in.

    Attributes
    ----------
    spread_mult : number, mapping asset class -> number (``default`` for the rest), or array ``[C]`` /
        ``[S, C]`` (columns :data:`core.scenarioset.LIQUIDITY_CLASSES`); >= 0, 1 = quoted spread.
    adv_mult : same forms; > 0, 1 = the book's ADV, 0.5 = volume halved.
    vol_mult : number or array ``[N]`` / ``[S, N]`` per position; >= 0, multiplies each position's daily
        volatility in the impact term.  None means 1 (or, for path-based measures, the realised
        volatility of each scenario path; see :func:`liquidity.path_vol_multiplier`).
    stressed : bool or None
        Whether participation caps are tightened (``stress_cap_mult``).  None: tightened for the asset
        classes whose spread is widened (> 1) or whose ADV is cut (< 1).
    """

    spread_mult: ClassMult = 1.0
    adv_mult: ClassMult = 1.0
    vol_mult: float | np.ndarray | None = None
    stressed: bool | None = None

    def __post_init__(self) -> None:
        s = _class_array(self.spread_mult, "spread_mult")
        a = _class_array(self.adv_mult, "adv_mult")
        for name, arr, ok, what in (("spread_mult", s, s >= 0, ">= 0"), ("adv_mult", a, a > 0, "> 0")):
            bad = ~(np.isfinite(arr) & ok)
            if bad.any():
                j = np.argwhere(bad)[0]
                raise ConfigError(f"conditions, field '{name}', asset class {LIQUIDITY_CLASSES[j[-1]]!r}: "
                                  f"must be finite and {what} (got {arr[tuple(j)]!r})")
        if self.vol_mult is not None:
            v = np.asarray(self.vol_mult, dtype=float)
            if not np.all(np.isfinite(v) & (v >= 0)):
                raise ConfigError(f"conditions, field 'vol_mult': must be finite and >= 0 (got {v[~(np.isfinite(v) & (v >= 0))].flat[0]!r})")

    @classmethod
    def from_scenarios(cls, scen: ScenarioSet, vol_mult: np.ndarray | None = None, stressed: bool | None = None) -> "Conditions":
        """Per-scenario conditions ``[S, C]`` from a scenario set's liquidity stress (ones where it has none)."""
        spread, adv = scen.liquidity()
        return cls(spread, adv, vol_mult, stressed)

    def subset(self, rows: np.ndarray | slice) -> "Conditions":
        """The conditions of some scenarios (arrays with a scenario axis are indexed; the rest kept)."""
        def pick(v, ndim_scen):
            if isinstance(v, np.ndarray) and v.ndim == ndim_scen:
                return v[rows]
            return v
        return Conditions(pick(self.spread_mult, 2), pick(self.adv_mult, 2), pick(self.vol_mult, 2), self.stressed)


#: base conditions: quoted spreads, full ADV, base volatility, base caps
BASE = Conditions()


class Resolved(NamedTuple):
    """Per-position cost coefficients in some conditions (each broadcastable to ``[..., N]``).

    spread : ``h m_s`` (decimal of value traded)
    impact : ``k m_v sigma / sqrt(m_a ADV)`` (decimal of value traded per sqrt(unit))
    cap_units : ``cap m_a ADV``, units tradable per day
    """

    spread: np.ndarray
    impact: np.ndarray
    cap_units: np.ndarray


def _err(pid, fld: str, msg: str, v) -> ConfigError:
    return ConfigError(f"liquidity input, position {pid!r}, field '{fld}': {msg} (got {v!r})")


@dataclass(frozen=True)
class LiquidityModel:
    """Per-position inputs of the cost model (every array ``[N]``, in book order).

    Attributes
    ----------
    ids, asset_class, sleeve : str arrays
    quantity : signed units held (shares, contracts, face, notional)
    unit_value : base-currency value of one unit (the price that ``bid_ask_bps`` and the impact apply to)
    adv : average daily volume, units per day (> 0)
    half_spread : half the quoted bid-ask spread, decimal of price (>= 0)
    daily_vol : daily return volatility, decimal (>= 0)
    impact_k : square-root-law coefficient (>= 0)
    cap, stress_cap : participation caps in base and stressed conditions, fractions of ADV in (0, 1]
    nav : net asset value (base currency, > 0); denominator of drawdown triggers, leverage and the
        turnover cap
    turnover_cap : largest value traded per day as a fraction of ``nav`` (None: no book-wide cap)
    vol_floor : floor of path-estimated volatility multipliers
    vol_source : per position, where ``daily_vol`` came from (``history``, ``default`` or ``input``)
    """

    ids: np.ndarray
    asset_class: np.ndarray
    sleeve: np.ndarray
    quantity: np.ndarray
    unit_value: np.ndarray
    adv: np.ndarray
    half_spread: np.ndarray
    daily_vol: np.ndarray
    impact_k: np.ndarray
    cap: np.ndarray
    stress_cap: np.ndarray
    nav: float
    turnover_cap: float | None = None
    vol_floor: float = 1.0
    vol_source: np.ndarray | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_arrays(
        cls,
        ids: Sequence[str],
        asset_class: Sequence[str],
        quantity,
        unit_value,
        adv,
        bid_ask_bps,
        daily_vol,
        sleeve: Sequence[str] | None = None,
        params: LiquidityParams | None = None,
        nav: float | None = None,
        caps: Mapping[str, float] | Sequence[float] | None = None,
        vol_source: Sequence[str] | None = None,
    ) -> "LiquidityModel":
        """Validate per-position inputs and attach the asset-class parameters.

        Parameters
        ----------
        ids, asset_class : ``[N]``; asset classes from :data:`core.ASSET_CLASSES`
        quantity : ``[N]`` signed units
        unit_value : ``[N]`` base-currency value of one unit (> 0)
        adv : ``[N]`` average daily volume in units (> 0)
        bid_ask_bps : ``[N]`` quoted spread in bps of price (>= 0; NaN: the class default)
        daily_vol : ``[N]`` daily return volatility, decimal (>= 0; NaN: the class default)
        sleeve : ``[N]`` (default ``"all"``)
        params : :class:`LiquidityParams` (default :meth:`LiquidityParams.default`)
        nav : net asset value; default the book's gross value ``sum |quantity| unit_value`` (leverage 1)
        caps : participation caps overriding the class defaults, a mapping asset class -> cap or an
            array ``[N]``, each in (0, 1]
        vol_source : ``[N]`` labels for reports (default ``input``)

        Raises
        ------
        ConfigError
            For a bad value, naming the position and the field.
        """
        params = params or LiquidityParams.default()
        ids = np.asarray([str(x) for x in ids], dtype=object)
        n = len(ids)
        ac = np.asarray([str(x) for x in asset_class], dtype=object)
        sl = np.asarray(["all"] * n if sleeve is None else [str(x) for x in sleeve], dtype=object)

        def arr(name, v):
            a = np.asarray(v, dtype=float).reshape(-1) if not np.isscalar(v) else np.full(n, float(v))
            if a.shape != (n,):
                raise ConfigError(f"liquidity input, field '{name}': expected {n} values, one per position (got {a.shape[0]})")
            return a

        if len(ac) != n or len(sl) != n:
            raise ConfigError(f"liquidity input: ids, asset_class and sleeve must each have {n} entries")
        for i, c in enumerate(ac):
            if c not in params.classes:
                raise _err(ids[i], "asset_class", f"unknown asset class; expected one of {', '.join(params.classes)}", c)
        q, uv, adv_, bps, vol = (arr(k, v) for k, v in (("quantity", quantity), ("unit_value", unit_value), ("adv", adv),
                                                         ("bid_ask_bps", bid_ask_bps), ("daily_vol", daily_vol)))
        checks = (
            ("quantity", q, np.isfinite(q), "must be finite"),
            ("unit_value", uv, np.isfinite(uv) & (uv > 0), "must be a positive number (base-currency value of one unit)"),
            ("adv", adv_, np.isfinite(adv_) & (adv_ > 0), "must be a positive number (average daily volume in units of quantity)"),
            ("bid_ask_bps", bps, np.isnan(bps) | (np.isfinite(bps) & (bps >= 0)), "must be >= 0 (quoted bid-ask spread in basis points)"),
            ("daily_vol", vol, np.isnan(vol) | (np.isfinite(vol) & (vol >= 0)), "must be >= 0 (daily return volatility, decimal)"),
        )
        for name, a, ok, msg in checks:
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise _err(ids[i], name, msg, float(a[i]))
        bps = np.where(np.isnan(bps), params.column("default_bid_ask_bps", ac), bps)
        src = np.asarray(["input"] * n if vol_source is None else list(vol_source), dtype=object)
        src = np.where(np.isnan(vol), "default", src)
        vol = np.where(np.isnan(vol), params.column("default_daily_vol", ac), vol)
        if caps is None:
            cap = np.array(params.column("participation_cap", ac), dtype=float)
        elif isinstance(caps, Mapping):
            unknown = [k for k in caps if k not in params.classes]
            if unknown:
                raise ConfigError(f"liquidity input, field 'caps': unknown asset class {unknown[0]!r}")
            cap = np.array([caps.get(c, params.classes[c].participation_cap) for c in ac], dtype=float)
        else:
            cap = arr("caps", caps)
        ok = np.isfinite(cap) & (cap > 0) & (cap <= 1)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise _err(ids[i], "participation_cap", "must be in (0, 1] (a fraction of ADV traded per day)", float(cap[i]))
        stress_cap = cap * np.array(params.column("stress_cap_mult", ac))
        gross = float(np.sum(np.abs(q) * uv))
        if nav is None:
            nav = gross
        if not (isinstance(nav, (int, float)) and math.isfinite(nav) and nav > 0):
            raise ConfigError(f"liquidity input, field 'nav': must be a positive number (net asset value in base currency) (got {nav!r})")
        return cls(ids, ac, sl, q, uv, adv_, bps / 2e4, vol, np.array(params.column("impact_k", ac), dtype=float),
                   cap, stress_cap, float(nav), params.turnover_cap, params.vol_floor, src)

    @classmethod
    def from_book(
        cls,
        positions: pd.DataFrame,
        unit_value,
        daily_vol,
        params: LiquidityParams | None = None,
        nav: float | None = None,
        caps: Mapping[str, float] | Sequence[float] | None = None,
        vol_source: Sequence[str] | None = None,
    ) -> "LiquidityModel":
        """A model for a book's positions (``id``, ``asset_class``, ``sleeve``, ``quantity``, ``adv``,
        ``bid_ask_bps`` columns of :attr:`core.Book.positions`), given each position's unit value and daily
        volatility (e.g. from :func:`liquidity.market_inputs`)."""
        pos = getattr(positions, "positions", positions)
        return cls.from_arrays(pos["id"], pos["asset_class"], pos["quantity"].to_numpy(float), unit_value,
                               pos["adv"].to_numpy(float), pos["bid_ask_bps"].to_numpy(float), daily_vol,
                               sleeve=pos["sleeve"], params=params, nav=nav, caps=caps, vol_source=vol_source)

    # ------------------------------------------------------------------ derived

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def value(self) -> np.ndarray:
        """Gross value of each position, ``|quantity| unit_value`` (base currency) ``[N]``."""
        return np.abs(self.quantity) * self.unit_value

    @property
    def signed_value(self) -> np.ndarray:
        """``quantity unit_value`` ``[N]`` (negative for short positions)."""
        return self.quantity * self.unit_value

    @property
    def pnl_vol(self) -> np.ndarray:
        """Daily P&L volatility of each whole position, ``daily_vol value`` (base currency) ``[N]``."""
        return self.daily_vol * self.value

    @property
    def class_index(self) -> np.ndarray:
        """Column of each position's asset class in :data:`LIQUIDITY_CLASSES` ``[N]``."""
        return np.array([LIQUIDITY_CLASSES.index(c) for c in self.asset_class], dtype=np.int64)

    def scaled(self, multiple: float) -> "LiquidityModel":
        """The same book at ``multiple`` times the AUM: every quantity and the NAV scaled; ADV, spreads and
        caps unchanged."""
        if not (math.isfinite(multiple) and multiple > 0):
            raise ConfigError(f"AUM multiple must be a positive number (got {multiple!r})")
        return replace(self, quantity=self.quantity * multiple, nav=self.nav * multiple)

    def groups(self) -> tuple[list[tuple[str, str]], np.ndarray]:
        """Reporting groups: ``[(level, group)]`` for the book, each asset class and each sleeve, and the
        membership matrix ``[N, G]`` (1.0 where a position belongs to the group)."""
        labels: list[tuple[str, str]] = [("book", "book")]
        cols = [np.ones(self.n)]
        for level, arr in (("asset_class", self.asset_class), ("sleeve", self.sleeve)):
            for g in dict.fromkeys(arr):
                labels.append((level, str(g)))
                cols.append((arr == g).astype(float))
        return labels, np.stack(cols, axis=1)

    # ------------------------------------------------------------------ conditions

    def resolve(self, conditions: Conditions | None = None) -> Resolved:
        """Cost coefficients of every position in ``conditions`` (default :data:`BASE`): arrays ``[N]``
        or ``[S, N]`` when the conditions carry a scenario axis."""
        c = conditions or BASE
        ci = self.class_index
        s_cls = _class_array(c.spread_mult, "spread_mult")
        a_cls = _class_array(c.adv_mult, "adv_mult")
        s = s_cls[..., ci]
        a = a_cls[..., ci]
        if c.stressed is None:
            stressed = (s > 1.0) | (a < 1.0)
        else:
            stressed = np.full(np.broadcast(s, a).shape, bool(c.stressed))
        cap = np.where(stressed, self.stress_cap, self.cap)
        v = 1.0 if c.vol_mult is None else np.asarray(c.vol_mult, dtype=float)
        if np.ndim(v) and np.shape(v)[-1] != self.n:
            raise ConfigError(f"conditions, field 'vol_mult': expected [N] or [S, N] with N = {self.n} positions (got shape {np.shape(v)})")
        spread = self.half_spread * s
        impact = self.impact_k * v * self.daily_vol / np.sqrt(a * self.adv)
        cap_units = cap * a * self.adv
        try:
            shape = np.broadcast_shapes(np.shape(spread), np.shape(impact), np.shape(cap_units))
        except ValueError:
            raise ConfigError(f"conditions: the scenario axes differ (spread and ADV multipliers {np.shape(s)}, "
                              f"vol_mult {np.shape(v)}); give the same number of scenarios") from None
        return Resolved(np.broadcast_to(spread, shape), np.broadcast_to(impact, shape), np.broadcast_to(cap_units, shape))

    def stress_conditions(self, params: LiquidityParams | None = None) -> Conditions:
        """Uniform stress conditions from the class parameters (spread x ``stress_spread_mult``, ADV x
        ``stress_adv_mult``, volatility x ``stress_vol_mult`` per position, caps tightened)."""
        params = params or LiquidityParams.default()
        spread = {c: params.classes[c].stress_spread_mult for c in LIQUIDITY_CLASSES}
        adv = {c: params.classes[c].stress_adv_mult for c in LIQUIDITY_CLASSES}
        vol = np.array(params.column("stress_vol_mult", self.asset_class))
        return Conditions(spread, adv, vol, True)

    # ------------------------------------------------------------------ costs

    def cost_terms(self, trade_value, conditions: Conditions | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Spread and impact cost (base currency) of trading ``trade_value[..., N]`` (signed, base
        currency at the current unit values) as one order; the caps set only how long it takes.

        ``spread = h m_s |x|``; ``impact = k m_v sigma |x| sqrt(|x| / (p m_a ADV))``, ``p`` the unit value.
        """
        r = self.resolve(conditions)
        x = np.abs(np.asarray(trade_value, dtype=float))
        units = x / self.unit_value
        return r.spread * x, r.impact * x * np.sqrt(units)

    def cost(self, trade_value, conditions: Conditions | None = None) -> np.ndarray:
        """Cost (base currency, ``[..., N]``) of trading ``trade_value``; see :meth:`cost_terms`.

        :func:`liquidity.execution_schedule` gives the same cost with the days the caps require.
        """
        s, i = self.cost_terms(trade_value, conditions)
        return s + i
