"""Capacity: how days to liquidate, cost, liquidity-adjusted CVaR and drawdown grow with AUM.

The book is scaled by each AUM multiple ``m`` (every quantity and the NAV times ``m``; ADV, spreads and
caps unchanged).  Then days to liquidate grow like ``m`` (``ceil(m U / c)``), the spread cost like ``m``
and the impact cost like ``m**1.5``, so cost in bps of the value unwound, liquidity-adjusted CVaR and
drawdown as fractions of NAV all rise with ``m`` (the P&L itself is linear in ``m``).

Each *scope* is one liquidity state applied to every scenario (by default ``base`` and ``stress``, the
class parameters' stress multipliers with tightened caps): the capacity curve answers "how big can the
book be if markets are in this state", while the scenarios supply the price moves.  In a scope, a path's
volatility multiplier is its realised one, floored at the scope's ``vol_mult``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError
from stressgrid.core.measures import running_sum

from ._drawdown import DeleverageRule, _check_paths, _prepare_paths, _simulate, _single_blas_thread
from ._inputs import path_vol_multiplier
from ._model import BASE, Conditions, LiquidityModel
from ._params import LiquidityParams
from ._schedule import liquidation_schedule
from ._var import _check_pnl, marked_unit_value

__all__ = ["capacity_curve", "Limit", "binding_aum", "days_capacity", "CAPACITY_METRICS", "DEFAULT_AUM_MULTIPLES"]

#: the default grid of AUM multiples: 20 points spaced evenly in log from 0.25 to 20, the one nearest 1
#: (0.9975) replaced by 1, the book as sized
DEFAULT_AUM_MULTIPLES: tuple[float, ...] = tuple(1.0 if abs(m - 1.0) < 0.01 else float(m) for m in np.geomspace(0.25, 20.0, 20))

#: metrics of the capacity table that a :class:`Limit` can bound
CAPACITY_METRICS = ("days_to_liquidate", "cost_bps", "la_cvar", "la_cvar_nav", "la_drawdown", "la_drawdown_nav")


def _cvar_of_losses(loss: np.ndarray, alpha: float, weights: np.ndarray | None) -> np.ndarray:
    """CVaR at ``alpha`` of each column of ``loss[S, G]`` (losses positive): the column-wise form of
    :func:`core.var_cvar`, ``CVaR = VaR + E[(L - VaR)^+] / (1 - alpha)`` with ``VaR`` the lower
    ``alpha``-quantile of the weighted losses (Rockafellar and Uryasev 2002)."""
    loss = np.asarray(loss, dtype=float)
    S = loss.shape[0]
    w = np.full(S, 1.0 / S) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(loss, axis=0, kind="stable")
    cum = running_sum(w[order])
    k = np.minimum(np.argmax(cum >= alpha - 1e-12, axis=0), S - 1)
    cols = np.arange(loss.shape[1])
    var = loss[order[k, cols], cols]
    return var + (w[:, None] * np.maximum(loss - var, 0.0)).sum(axis=0) / (1.0 - alpha)


def capacity_curve(
    model: LiquidityModel,
    aum_multiples: Sequence[float] | None = None,
    conditions: Mapping[str, Conditions] | None = None,
    fraction: float = 1.0,
    pnl: np.ndarray | None = None,
    pnl_paths: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    rule: DeleverageRule | None = None,
    alpha: float = 0.95,
    params: LiquidityParams | None = None,
) -> pd.DataFrame:
    """Capacity table over a grid of AUM multiples, per scope, for the book, each asset class and sleeve.

    Parameters
    ----------
    model : the cost model at today's AUM (multiple 1)
    aum_multiples : increasing positive multiples (default :data:`DEFAULT_AUM_MULTIPLES`: 20 points from
        0.25 to 20, 1 among them)
    conditions : scope name -> uniform :class:`Conditions` (default ``base`` and ``stress`` from
        ``params``); uniform means no scenario axis
    fraction : share of each position unwound for days and cost (1 full liquidation)
    pnl : ``[S, N]`` scenario P&L at multiple 1, for ``la_cvar`` (and plain ``cvar``)
    pnl_paths : ``[S, H, N]`` cumulative P&L paths at multiple 1, for ``la_drawdown`` (and plain)
    weights : ``[S]`` scenario probabilities (default equal), for both
    rule : the forced unwind of the drawdown simulation (default: none)
    alpha : confidence of the CVaRs, and of the drawdown tail (``la_drawdown`` is the mean of the worst
        ``1 - alpha`` of the per-scenario drawdowns)

    Returns
    -------
    DataFrame with one row per multiple, scope and group: ``aum_multiple``, ``nav``, ``scope``, ``level``
    (``book``, ``asset_class``, ``sleeve``), ``group``, ``days_to_liquidate`` (slowest position),
    ``cost`` and ``cost_bps`` (of the value unwound), ``cvar``, ``la_cvar``, ``la_cvar_nav`` (fraction of
    NAV), ``drawdown``, ``la_drawdown``, ``la_drawdown_nav``; the last six NaN without ``pnl`` /
    ``pnl_paths``.  Group CVaRs and drawdowns are of the group's own P&L (standalone).
    """
    with _single_blas_thread():
        return _capacity_curve(model, aum_multiples, conditions, fraction, pnl, pnl_paths, weights, rule, alpha, params)


def _capacity_curve(model, aum_multiples, conditions, fraction, pnl, pnl_paths, weights, rule, alpha, params):
    mult = np.asarray(DEFAULT_AUM_MULTIPLES if aum_multiples is None else aum_multiples, dtype=float)
    if mult.ndim != 1 or not len(mult) or not np.all(np.isfinite(mult) & (mult > 0)) or np.any(np.diff(mult) <= 0):
        raise ConfigError(f"aum_multiples: expected increasing positive numbers (got {mult.tolist()})")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha: must be in (0, 1) (got {alpha!r})")
    if conditions is None:
        conditions = {"base": BASE, "stress": model.stress_conditions(params)}
    for scope, c in conditions.items():
        r = model.resolve(c)
        if any(a.ndim > 1 for a in r):
            raise ConfigError(f"capacity scope {scope!r}: conditions must be uniform (no scenario axis)")
    labels, member = model.groups()
    G = len(labels)
    p = None if pnl is None else _check_pnl(model, pnl)
    paths = None if pnl_paths is None else _check_paths(model, pnl_paths)
    rule = rule or DeleverageRule()

    base_cvar = np.full(G, np.nan)
    marked = None
    if p is not None:
        gp = p @ member
        base_cvar = _cvar_of_losses(-gp, alpha, weights)
        marked = marked_unit_value(model, p)
    plain_dd = np.full(G, np.nan)
    path_vol = pp = None
    absq = np.abs(model.quantity)
    budget = None if model.turnover_cap is None else model.turnover_cap * model.nav
    if paths is not None:
        path_vol = path_vol_multiplier(model, paths)
        pp = _prepare_paths(paths, model.signed_value, member)
        plain = _simulate(pp, model.signed_value, absq, np.zeros(model.n), np.zeros(model.n), np.full(model.n, np.inf),
                          model.nav, rule, None, 1.0)
        plain_dd = _cvar_of_losses(plain.group_dd, alpha, weights)

    rows = []
    for m in mult:
        mm = model.scaled(float(m))
        for scope, c in conditions.items():
            sched = liquidation_schedule(mm, fraction, c)
            days = np.array([sched.days[member[:, g] > 0].max() for g in range(G)])
            cost = sched.cost @ member
            value = sched.value @ member
            la_cvar = np.full(G, np.nan)
            if p is not None:
                cs = liquidation_schedule(mm, fraction, c, unit_value=marked)
                la_cvar = _cvar_of_losses(-(m * p - cs.cost) @ member, alpha, weights)
            la_dd = np.full(G, np.nan)
            if paths is not None:
                v = path_vol if c.vol_mult is None else np.maximum(path_vol, c.vol_mult)
                r = model.resolve(Conditions(c.spread_mult, c.adv_mult, v, c.stressed))
                la = _simulate(pp, model.signed_value, absq, r.spread, r.impact, r.cap_units, model.nav, rule, budget,
                               float(m))
                la_dd = _cvar_of_losses(la.group_dd, alpha, weights)
            for g, (level, group) in enumerate(labels):
                rows.append((m, mm.nav, scope, level, group, int(days[g]), cost[g],
                             1e4 * cost[g] / value[g] if value[g] > 0 else 0.0,
                             m * base_cvar[g], la_cvar[g], la_cvar[g] / mm.nav,
                             m * plain_dd[g], la_dd[g], la_dd[g] / mm.nav))
    return pd.DataFrame(rows, columns=["aum_multiple", "nav", "scope", "level", "group", "days_to_liquidate", "cost",
                                       "cost_bps", "cvar", "la_cvar", "la_cvar_nav", "drawdown", "la_drawdown",
                                       "la_drawdown_nav"])


@dataclass(frozen=True)
class Limit:
    """A user limit on a capacity metric: ``metric <= max`` in ``scope``.

    Attributes
    ----------
    metric : one of :data:`CAPACITY_METRICS` (``days_to_liquidate``, ``cost_bps``, ``la_cvar``,
        ``la_cvar_nav``, ``la_drawdown``, ``la_drawdown_nav``)
    max : the largest acceptable value (days, bps, base currency, or a fraction of NAV)
    scope : the capacity scope (``base``, ``stress`` or a name given to :func:`capacity_curve`)
    name : label in the result (default ``"<metric> <= <max> (<scope>)"``)
    """

    metric: str
    max: float
    scope: str = "base"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.metric not in CAPACITY_METRICS:
            raise ConfigError(f"limit, field 'metric': unknown metric {self.metric!r} (expected one of {', '.join(CAPACITY_METRICS)})")
        if not np.isfinite(self.max) or self.max < 0:
            raise ConfigError(f"limit, field 'max': must be a number >= 0 (got {self.max!r})")

    @property
    def label(self) -> str:
        return self.name or f"{self.metric} <= {self.max:g} ({self.scope})"


def days_capacity(
    model: LiquidityModel,
    max_days: float,
    fraction: float = 1.0,
    conditions: Conditions | None = None,
) -> pd.DataFrame:
    """The largest AUM multiple at which each group is liquidated within ``max_days`` at the caps, exactly.

    Position ``i`` takes ``ceil(m U_i / c_i)`` days at multiple ``m`` (``U_i = fraction |q_i|``, ``c_i``
    its daily cap in ``conditions``), which is at most ``max_days`` while ``m <= max_days c_i / U_i``; a
    group's multiple is its smallest position's (inf for a group with nothing to sell).  Only without a
    turnover cap (which spreads days across positions).

    Returns a DataFrame with ``level``, ``group``, ``max_multiple``, ``max_nav`` (= ``max_multiple`` x NAV).
    """
    if model.turnover_cap is not None:
        raise ConfigError("days_capacity: exact only without a turnover cap (use the capacity curve's grid)")
    r = model.resolve(conditions)
    if r.cap_units.ndim > 1:
        raise ConfigError("days_capacity: conditions must be uniform (no scenario axis)")
    U = float(fraction) * np.abs(model.quantity)
    per = np.where(U > 0, max_days * r.cap_units / np.where(U > 0, U, 1.0), np.inf)
    labels, member = model.groups()
    mult = [float(per[member[:, g] > 0].min()) for g in range(len(labels))]
    return pd.DataFrame({"level": [l for l, _ in labels], "group": [g for _, g in labels], "max_multiple": mult,
                         "max_nav": np.asarray(mult) * model.nav})


def binding_aum(
    curve: pd.DataFrame,
    limits: Sequence[Limit],
    model: LiquidityModel | None = None,
    conditions: Mapping[str, Conditions] | None = None,
    fraction: float = 1.0,
    params: LiquidityParams | None = None,
) -> pd.DataFrame:
    """Where each limit binds, per group, on a :func:`capacity_curve` table.

    For each limit and group: ``status`` (``binds``; ``within``: never beyond the limit on the grid;
    ``exceeded``: already beyond it at the smallest multiple); ``max_ok_multiple``, the largest grid
    multiple within the limit, and ``next_multiple``, the first beyond it (NaN where there is none);
    ``binding_multiple``, where the metric crosses the limit: interpolated linearly between those two grid
    points for the continuous metrics; for ``days_to_liquidate`` (a step function) exact from
    :func:`days_capacity` when ``model`` is given (with the ``conditions`` and ``fraction`` the curve used;
    default ``base`` and ``stress`` from ``params``), else NaN; ``binding_nav`` = ``binding_multiple`` x
    the NAV at multiple 1.  ``first`` is True on the group that binds at the smallest multiple, per limit
    and level (the binding asset class, the binding sleeve).
    """
    exact: dict = {}
    if model is not None and model.turnover_cap is None:
        conditions = conditions or {"base": BASE, "stress": model.stress_conditions(params)}
        for lim in limits:
            if lim.metric == "days_to_liquidate" and lim.scope in conditions:
                d = days_capacity(model, lim.max, fraction, conditions[lim.scope])
                exact[lim.label] = {(l, g): v for l, g, v in zip(d["level"], d["group"], d["max_multiple"])}
    rows = []
    for lim in limits:
        sub = curve[curve["scope"] == lim.scope]
        if sub.empty:
            scopes = ", ".join(dict.fromkeys(curve["scope"]))
            raise ConfigError(f"limit {lim.label!r}, field 'scope': no scope {lim.scope!r} in the capacity table (has {scopes})")
        if sub[lim.metric].isna().all():
            raise ConfigError(f"limit {lim.label!r}: metric {lim.metric!r} was not computed (give pnl or pnl_paths to capacity_curve)")
        for (level, group), g in sub.groupby(["level", "group"], sort=False):
            g = g.sort_values("aum_multiple")
            m = g["aum_multiple"].to_numpy()
            v = g[lim.metric].to_numpy(float)
            nav1 = float(g["nav"].iloc[0] / m[0])
            bad = np.flatnonzero(~(v <= lim.max))
            if not len(bad):
                status, max_ok, nxt, bind = "within", m[-1], np.nan, np.nan
            elif bad[0] == 0:
                status, max_ok, nxt, bind = "exceeded", np.nan, m[0], np.nan
            else:
                k = bad[0]
                status, max_ok, nxt = "binds", m[k - 1], m[k]
                v0, v1 = v[k - 1], v[k]
                bind = m[k - 1] + (m[k] - m[k - 1]) * ((lim.max - v0) / (v1 - v0) if v1 != v0 else 0.0)
            if lim.metric == "days_to_liquidate":
                bind = exact.get(lim.label, {}).get((level, group), np.nan)
            rows.append(dict(limit=lim.label, metric=lim.metric, max=lim.max, scope=lim.scope, level=level, group=group,
                             status=status, max_ok_multiple=max_ok, next_multiple=nxt, binding_multiple=bind,
                             binding_nav=bind * nav1))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    ordered = np.where(np.isfinite(out["binding_multiple"]), out["binding_multiple"],
                       np.where(out["status"] == "binds", out["next_multiple"], np.inf))
    key = np.where(out["status"] == "exceeded", -np.inf, ordered)
    out["first"] = False
    pairs = out["limit"] + "\0" + out["level"]
    for pair in dict.fromkeys(pairs):
        idx = np.flatnonzero(pairs.to_numpy() == pair)
        k = key[idx]
        if k.min() < np.inf:
            out.loc[idx[k == k.min()], "first"] = True
    return out
