"""Execution and liquidation schedules under participation caps and a daily turnover cap.

A trade of ``U`` units in a position whose daily cap is ``c = cap m_a ADV`` units takes
``D = ceil(U / c)`` days: ``D - 1`` full days of ``c`` units and a last day of ``r = U - (D - 1) c``.  A
ratio ``U / c`` within a relative 1e-9 of an integer counts as that integer (no extra day for rounding
dust).  With a daily turnover cap (a value per day for the whole book, a fraction of NAV), each day every
unfinished position trades its capped amount scaled down pro rata until the day's value fits the cap; the
closed form is then replaced by a day-by-day loop.

The cost is that of the whole order (:mod:`liquidity._model`): ``h m_s U p`` for the spread and
``k m_v sigma p U sqrt(U / (m_a ADV))`` for the impact, whatever ``D``; the cumulative impact after ``Q``
units is the law's impact of ``Q``, so day ``d`` adds ``k m_v sigma p (Q_d**1.5 - Q_(d-1)**1.5) /
sqrt(m_a ADV)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError
from stressgrid.core.scenarioset import ScenarioSet

from ._model import Conditions, LiquidityModel, Resolved

__all__ = ["Schedule", "execution_schedule", "liquidation_schedule", "liquidation_table", "family_conditions"]

_RTOL = 1e-9
#: a turnover-capped schedule that needs more days than this is reported as an error
MAX_DAYS = 1_000_000


@dataclass(frozen=True)
class Schedule:
    """How a trade is executed: per position (arrays ``[..., N]``).

    Attributes
    ----------
    units : units traded (>= 0)
    value : base-currency value traded (``units`` x unit value)
    days : int, days with a trade (0 for nothing to trade)
    spread_cost, impact_cost : base currency
    trades : ``[D, ..., N]`` units traded each day, or None when not asked for
    """

    units: np.ndarray
    value: np.ndarray
    days: np.ndarray
    spread_cost: np.ndarray
    impact_cost: np.ndarray
    trades: np.ndarray | None = None

    @property
    def cost(self) -> np.ndarray:
        """Spread plus impact cost per position (base currency)."""
        return self.spread_cost + self.impact_cost

    @property
    def book_days(self) -> np.ndarray:
        """Days until the last position is done, ``[...]``."""
        return self.days.max(axis=-1)

    @property
    def total_cost(self) -> np.ndarray:
        """Cost of the whole trade, ``[...]``."""
        return self.cost.sum(axis=-1)

    @property
    def cost_bps(self) -> np.ndarray:
        """Cost in basis points of the value traded, per position (0 where nothing is traded)."""
        v = self.value
        return np.where(v > 0, 1e4 * self.cost / np.where(v > 0, v, 1.0), 0.0)


def _ceil_days(units: np.ndarray, cap_units: np.ndarray) -> np.ndarray:
    ratio = units / cap_units
    days = np.ceil(ratio - _RTOL * np.maximum(ratio, 1.0))
    return np.where(units > 0, np.maximum(days, 1.0), 0.0)


def _execute(units: np.ndarray, price: np.ndarray, r: Resolved, budget: float | None, keep: bool):
    """Days, spread and impact cost (and optionally the daily trades) of trading ``units[..., N]``."""
    c = np.broadcast_to(r.cap_units, units.shape)
    spread = r.spread * units * price
    impact = r.impact * price * units * np.sqrt(units)
    if budget is None:
        days = _ceil_days(units, c)
        trades = None
        if keep:
            full = np.maximum(days - 1.0, 0.0)
            rem = np.maximum(units - full * c, 0.0)
            D = int(days.max()) if days.size else 0
            d = np.arange(D).reshape((D,) + (1,) * units.ndim)
            trades = np.where(d < full, c, np.where((d == full) & (days > 0), rem, 0.0))
        return days.astype(np.int64), spread, impact, trades
    remaining = np.array(units, dtype=float, copy=True)
    dust = 1e-12 * np.maximum(units, 0.0)
    days = np.zeros(units.shape, dtype=np.int64)
    out = []
    d = 0
    while np.any(remaining > 0):
        t = np.where(remaining <= c * (1.0 + _RTOL), remaining, c)
        val = (t * price).sum(axis=-1, keepdims=True)
        scale = np.where(val > budget, budget / np.where(val > 0, val, 1.0), 1.0)
        t = np.where(scale < 1.0, t * scale, t)
        d += 1
        days = np.where(t > 0, d, days)
        remaining = np.where(t >= remaining, 0.0, remaining - t)
        remaining = np.where(remaining <= dust, 0.0, remaining)
        if keep:
            out.append(t)
        if d > MAX_DAYS:
            raise ConfigError(f"liquidation needs more than {MAX_DAYS} days at the turnover cap; check turnover_cap")
    trades = np.stack(out) if keep and out else (np.zeros((0,) + units.shape) if keep else None)
    return days, spread, impact, trades


def execution_schedule(
    model: LiquidityModel,
    trade_value,
    conditions: Conditions | None = None,
    unit_value: np.ndarray | None = None,
    trades: bool = False,
) -> Schedule:
    """Execute ``trade_value[..., N]`` (signed, base currency) at the caps, in ``conditions``: the days it
    takes and its cost (the cost of the whole order, :meth:`LiquidityModel.cost`).

    Parameters
    ----------
    model : the cost model
    trade_value : trade per position in base currency at the unit values (sign ignored: buying and
        selling cost the same)
    conditions : liquidity state (default base); with a scenario axis the result has one too
    unit_value : ``[..., N]`` unit values to trade at (default the model's; e.g. marked to a scenario)
    trades : also return the daily trades ``[D, ..., N]`` (units)

    Returns
    -------
    :class:`Schedule`
    """
    p = model.unit_value if unit_value is None else np.asarray(unit_value, dtype=float)
    if not np.all(np.isfinite(p) & (p > 0)):
        raise ConfigError("execution schedule: unit values must be positive and finite")
    x = np.abs(np.asarray(trade_value, dtype=float))
    if not np.all(np.isfinite(x)):
        raise ConfigError("execution schedule: trade values must be finite")
    return _schedule_units(model, x / p, p, conditions, trades)


def _schedule_units(model: LiquidityModel, units: np.ndarray, price: np.ndarray, conditions: Conditions | None,
                    trades: bool) -> Schedule:
    r = model.resolve(conditions)
    shape = np.broadcast_shapes(np.shape(units), np.shape(price), np.shape(r.cap_units))
    units = np.broadcast_to(units, shape)
    price = np.broadcast_to(price, shape)
    budget = None if model.turnover_cap is None else model.turnover_cap * model.nav
    days, spread, impact, tr = _execute(units, price, r, budget, trades)
    return Schedule(units, units * price, days, spread, impact, tr)


def liquidation_schedule(
    model: LiquidityModel,
    fraction=1.0,
    conditions: Conditions | None = None,
    unit_value: np.ndarray | None = None,
    trades: bool = False,
) -> Schedule:
    """Unwind ``fraction`` of every position (1 = full liquidation, 0.25 = a 25% redemption met pro rata).

    ``fraction`` is a number or an array ``[N]`` (per position), each in [0, 1].  Days per position are
    ``ceil(fraction |quantity| / (cap m_a ADV))``; see the module docstring for costs and the turnover cap.
    """
    f = np.asarray(fraction, dtype=float)
    if not np.all(np.isfinite(f) & (f >= 0) & (f <= 1)):
        bad = f[~(np.isfinite(f) & (f >= 0) & (f <= 1))].flat[0]
        raise ConfigError(f"liquidation fraction must be in [0, 1] (got {bad!r})")
    if f.ndim and f.shape[-1] != model.n:
        raise ConfigError(f"liquidation fraction: expected a number or {model.n} values, one per position (got shape {f.shape})")
    p = model.unit_value if unit_value is None else np.asarray(unit_value, dtype=float)
    if not np.all(np.isfinite(p) & (p >= 0)):
        raise ConfigError("liquidation schedule: unit values must be finite and >= 0")
    return _schedule_units(model, f * np.abs(model.quantity), p, conditions, trades)


def family_conditions(
    scen: ScenarioSet,
    vol_mult: np.ndarray | None = None,
) -> dict[str, Conditions]:
    """One set of per-class conditions per scenario family: the most stressed in the family (largest
    spread multiplier and smallest ADV multiplier of any of its scenarios, per asset class).

    ``vol_mult`` ``[S, N]`` (e.g. :func:`liquidity.path_vol_multiplier`), if given, is averaged over each
    family's scenarios with their weights.
    """
    spread, adv = scen.liquidity()
    fam = np.asarray(scen.family)
    out = {}
    for f in dict.fromkeys(scen.family):
        idx = fam == f
        v = None
        if vol_mult is not None:
            w = scen.weights[idx]
            v = (w[:, None] * vol_mult[idx]).sum(axis=0) / w.sum()
        out[f] = Conditions(spread[idx].max(axis=0), adv[idx].min(axis=0), v)
    return out


def liquidation_table(model: LiquidityModel, schedules: Mapping[str, Schedule]) -> pd.DataFrame:
    """Tidy table of liquidation schedules (one per scope, e.g. ``base`` and each family).

    Columns: ``scope``, ``level`` (``position``, ``asset_class``, ``sleeve``, ``book``), ``group`` (the
    position id or group name), ``asset_class`` and ``sleeve`` (position rows), ``value`` (base currency
    unwound), ``days`` (days to liquidate; a group's is its slowest position's), ``spread_cost``,
    ``impact_cost``, ``cost`` (base currency) and ``cost_bps`` (of the value unwound).
    """
    labels, member = model.groups()
    frames = []
    for scope, s in schedules.items():
        if s.days.shape != (model.n,):
            raise ConfigError(f"liquidation table, scope {scope!r}: one schedule per position expected, got shape {s.days.shape}")
        pos = pd.DataFrame({
            "scope": scope, "level": "position", "group": model.ids, "asset_class": model.asset_class,
            "sleeve": model.sleeve, "value": s.value, "days": s.days, "spread_cost": s.spread_cost,
            "impact_cost": s.impact_cost, "cost": s.cost,
        })
        rows = []
        for (level, group), m in zip(labels, member.T):
            sel = m > 0
            rows.append(dict(scope=scope, level=level, group=group, asset_class=None, sleeve=None,
                             value=float(s.value[sel].sum()), days=int(s.days[sel].max()),
                             spread_cost=float(s.spread_cost[sel].sum()), impact_cost=float(s.impact_cost[sel].sum()),
                             cost=float(s.cost[sel].sum())))
        frames += [pos, pd.DataFrame(rows)]
    out = pd.concat(frames, ignore_index=True)
    v = out["value"].to_numpy()
    out["cost_bps"] = np.where(v > 0, 1e4 * out["cost"].to_numpy() / np.where(v > 0, v, 1.0), 0.0)
    out["days"] = out["days"].astype(np.int64)
    return out
