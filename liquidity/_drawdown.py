"""Liquidity-adjusted drawdown: the forced unwind along each scenario path, at the caps, with costs.

Along a path of cumulative position P&L ``P_i(t)`` (``[S, H, N]``, the whole positions), the book holds
a fraction ``h_i(t)`` of each position (1 at the start).  Each day ``t = 1..H``:

1. prices move: equity ``E += sum_i h_i (P_i(t) - P_i(t-1))``;
2. the rule (:class:`DeleverageRule`) sets a target fraction ``x`` of the book (it never rises again);
3. each position is sold toward ``x`` by at most its daily cap, ``cap m_a ADV`` units (and, with a
   turnover cap, pro rata within the day's value budget), at the day's marked value
   ``V_i(t) = |q_i p_i + P_i(t)|``, paying the spread on the slice and the impact the square-root law
   adds for it: the whole forced sale on a path is one order, so after a fraction ``F`` of the position
   has been sold its impact is ``k m_v sigma V sqrt(|q|)`` x ``F**1.5 / sqrt(m_a ADV)`` and a day's slice
   pays the increase (:mod:`liquidity._model`); ``E -= cost``;
4. the drawdown is ``max_t (max_{s <= t} E(s) - E(t))`` with ``E(0) = 0``.

A redemption or a leverage above the cap can force trades at ``t = 0`` (before any move).  What is left
to sell at the horizon is sold after it (prices frozen at the last day's marks) and its cost charged to
the final equity (``pending_cost``).

``drawdown`` (plain, liquidity-blind) is the same path and rule with every trade done at once and free;
``la_drawdown`` is the liquidity-adjusted one; ``static_drawdown`` holds the book unchanged.  With zero
spread and zero impact, and caps that never bind, ``la_drawdown == drawdown`` exactly (the same
arithmetic).  Drawdowns are positive numbers in base currency.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError

from ._inputs import path_vol_multiplier
from ._model import Conditions, LiquidityModel
from ._var import _check_pnl

__all__ = ["DeleverageRule", "DrawdownResult", "liquidity_adjusted_drawdown", "drawdown_table"]

#: trading days a year (annualising the EWMA volatility of the vol-target rule)
TRADING_DAYS = 252


@dataclass(frozen=True)
class DeleverageRule:
    """When a path forces the book to sell, and how far.

    Attributes
    ----------
    drawdown_steps : ``((d_1, x_1), (d_2, x_2), ...)``: once the drawdown from the peak reaches ``d_j``
        (a fraction of NAV), cut the book to ``x_j`` of its initial size (e.g. ``((0.05, 0.5), (0.10, 0.0))``)
    max_leverage : cut the book so that its gross marked value is at most this multiple of the current
        NAV (``nav + E``)
    vol_target : annualised volatility of NAV to keep: the book is cut to ``vol_target / sigma_t`` of
        its size, ``sigma_t`` the EWMA (``ewma_lambda``, RiskMetrics 1996) of the whole book's daily
        returns along the path, started at ``vol_target`` (the book is on target at the start)
    redemption : fraction of the book redeemed at the start (sold from day 0)
    ewma_lambda : decay of the vol-target EWMA, in (0, 1)

    The target is the smallest of those that apply and never rises again on the path.  The default
    rule forces nothing.
    """

    drawdown_steps: tuple[tuple[float, float], ...] = ()
    max_leverage: float | None = None
    vol_target: float | None = None
    redemption: float = 0.0
    ewma_lambda: float = 0.94

    def __post_init__(self) -> None:
        steps = tuple((float(d), float(x)) for d, x in self.drawdown_steps)
        object.__setattr__(self, "drawdown_steps", steps)
        for d, x in steps:
            if not (math.isfinite(d) and d > 0):
                raise ConfigError(f"deleverage rule, field 'drawdown_steps': drawdown trigger must be > 0 (a fraction of NAV) (got {d!r})")
            if not (0 <= x <= 1):
                raise ConfigError(f"deleverage rule, field 'drawdown_steps': target must be in [0, 1] (a fraction of the book) (got {x!r})")
        for name in ("max_leverage", "vol_target"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"deleverage rule, field '{name}': must be a positive number (got {v!r})")
        if not (0 <= self.redemption <= 1):
            raise ConfigError(f"deleverage rule, field 'redemption': must be in [0, 1] (got {self.redemption!r})")
        if not (0 < self.ewma_lambda < 1):
            raise ConfigError(f"deleverage rule, field 'ewma_lambda': must be in (0, 1) (got {self.ewma_lambda!r})")

    @property
    def active(self) -> bool:
        return bool(self.drawdown_steps) or self.max_leverage is not None or self.vol_target is not None or self.redemption > 0


@dataclass(frozen=True)
class DrawdownResult:
    """Per-scenario results (arrays ``[S]``, base currency unless said otherwise).

    drawdown : plain peak-to-trough (the rule's trades done at once and free)
    la_drawdown : liquidity-adjusted peak-to-trough (trades at the caps, costs paid)
    static_drawdown : the book held unchanged
    unwind_cost : cost paid on the path plus ``pending_cost``
    pending_cost : cost of finishing the forced unwind after the horizon
    unwind_days : days with a trade on the path (day 0 counts)
    holding_end : fraction of the book's marked gross value still held at the horizon
    groups : ``[(level, group)]`` when group results were asked for, with ``group_drawdown`` and
        ``group_la_drawdown`` ``[S, G]``: peak-to-trough of each group's contribution to the equity
    """

    drawdown: np.ndarray
    la_drawdown: np.ndarray
    static_drawdown: np.ndarray
    unwind_cost: np.ndarray
    pending_cost: np.ndarray
    unwind_days: np.ndarray
    holding_end: np.ndarray
    groups: list[tuple[str, str]] | None = None
    group_drawdown: np.ndarray | None = None
    group_la_drawdown: np.ndarray | None = None
    equity: np.ndarray | None = None
    la_equity: np.ndarray | None = None

    def table(self, names, family) -> pd.DataFrame:
        """One row per scenario: ``scenario``, ``family``, ``drawdown``, ``la_drawdown``,
        ``static_drawdown``, ``unwind_cost``, ``pending_cost``, ``unwind_days``, ``holding_end``."""
        return drawdown_table(self, names, family)


def drawdown_table(res: DrawdownResult, names, family) -> pd.DataFrame:
    """Tidy per-scenario table of a :class:`DrawdownResult` (see :meth:`DrawdownResult.table`)."""
    return pd.DataFrame({
        "scenario": list(names), "family": list(family), "drawdown": res.drawdown, "la_drawdown": res.la_drawdown,
        "static_drawdown": res.static_drawdown, "unwind_cost": res.unwind_cost, "pending_cost": res.pending_cost,
        "unwind_days": res.unwind_days, "holding_end": res.holding_end,
    })


@dataclass
class _Sim:
    dd: np.ndarray
    cost: np.ndarray
    pending: np.ndarray
    days: np.ndarray
    held: np.ndarray
    group_dd: np.ndarray | None = field(default=None)
    equity: np.ndarray | None = field(default=None)


class _Paths(NamedTuple):
    """What both passes (plain and liquidity-adjusted) and every AUM multiple share.

    cum : ``[S, H, N]`` cumulative P&L; dP : its daily increments; dB : ``[S, H]`` the whole book's daily
    P&L; dG : ``[S, H, G]`` each group's (None without groups); gross : ``[S, H + 1]`` the book's gross
    marked value ``sum_i |q_i p_i + P_i(t)|`` at ``t = 0..H``; member : ``[N, G]`` or None.
    """

    cum: np.ndarray
    dP: np.ndarray
    dB: np.ndarray
    dG: np.ndarray | None
    gross: np.ndarray
    member: np.ndarray | None


def _prepare_paths(pnl_paths: np.ndarray, sv: np.ndarray, member: np.ndarray | None) -> _Paths:
    dP = np.diff(pnl_paths, axis=1, prepend=0.0)
    dB = dP.sum(axis=2)
    dG = None if member is None else dP @ member
    gross = np.concatenate([np.full((pnl_paths.shape[0], 1), np.abs(sv).sum()), np.abs(sv + pnl_paths).sum(axis=2)], axis=1)
    return _Paths(pnl_paths, dP, dB, dG, gross, member)


def _single_blas_thread():
    """Run the small per-day matrix products on one BLAS thread (threads only contend at these sizes)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _rows(a, rows):
    """``a[rows]`` for a per-scenario array ``[S, N]``; the row itself for a per-position one (``[N]``, or
    ``[S, N]`` broadcast from one)."""
    if np.ndim(a) < 2:
        return a
    if a.strides[0] == 0:
        return a[0]
    return a[rows]


#: scenarios per block of the simulation (keeps the working arrays in cache)
CHUNK = 4096


def _simulate(
    paths: _Paths,
    sv: np.ndarray,
    absq: np.ndarray,
    spread: np.ndarray,
    impact: np.ndarray,
    cap_units: np.ndarray,
    nav: float,
    rule: DeleverageRule,
    budget: float | None,
    scale: float,
    record: bool = False,
) -> _Sim:
    """One pass along every path at AUM ``scale`` (the model's quantities, NAV and P&L times ``scale``).

    ``spread``, ``impact`` (per square-root unit) and ``cap_units`` are the resolved coefficients ``[N]``
    or ``[S, N]``; ``spread = impact = 0`` with ``cap_units = inf`` is the plain (liquidity-blind) pass.

    Holdings are kept as the rule's uniform target ``x`` (per scenario) plus each position's excess
    ``e_i = h_i - x >= 0``, which is non-zero only while a cap holds the position back.  The book's P&L
    is ``x dB + sum_i e_i dP_i`` (``dB`` the whole book's), so only scenarios that trade or lag carry
    per-position work.  Scenarios run in blocks of :data:`CHUNK`.
    """
    S, H, N = paths.cum.shape
    m = float(scale)
    qm = m * absq
    tradable = absq > 0
    spread, impact, cap_units = (_rows(a, slice(None)) for a in (spread, impact, cap_units))
    Bs_all = impact * np.sqrt(qm)  # impact of having sold a fraction F of a position: Bs V F**1.5
    capf_all = np.where(tradable, cap_units / np.where(tradable, qm, 1.0), 0.0)
    As_all = np.broadcast_to(spread, np.broadcast_shapes(np.shape(spread), (N,)))
    has_cost = bool(np.any(As_all) or np.any(Bs_all))
    navm = nav * m
    member = paths.member
    G = 0 if member is None else member.shape[1]
    out_dd, out_cost, out_pend = np.zeros(S), np.zeros(S), np.zeros(S)
    out_days, out_held = np.zeros(S, dtype=np.int64), np.zeros(S)
    out_gdd = np.zeros((S, G)) if G else None
    out_eq = np.zeros((S, H + 1)) if record else None
    lam = rule.ewma_lambda
    lim = None if budget is None else budget * m
    for a in range(0, S, CHUNK):
        b = min(a + CHUNK, S)
        k = b - a
        blk = slice(a, b)
        As, Bs, capf = _rows(As_all, blk), _rows(Bs_all, blk), _rows(capf_all, blk)
        cum, dP, dB = paths.cum[blk], paths.dP[blk], paths.dB[blk]
        dG = paths.dG[blk] if G else None
        gross = paths.gross[blk]
        x = np.ones(k)                       # uniform holding (fraction of each position)
        e = np.zeros((k, N))                 # excess holding of positions held back by their caps
        lag = np.zeros(k, dtype=bool)        # any excess
        target = np.full(k, 1.0 - rule.redemption)
        E, peak, dd = np.zeros(k), np.zeros(k), np.zeros(k)
        cost, days = np.zeros(k), np.zeros(k, dtype=np.int64)
        if G:
            Eg, peak_g, dd_g = np.zeros((k, G)), np.zeros((k, G)), np.zeros((k, G))
        var = None if rule.vol_target is None else np.full(k, rule.vol_target ** 2 / TRADING_DAYS)
        for t in range(H + 1):
            if t > 0:
                E_prev = E
                inc = x * dB[:, t - 1]
                incg = x[:, None] * dG[:, t - 1] if G else None
                rows = np.flatnonzero(lag)
                if rows.size:
                    pos = e[rows] * dP[rows, t - 1]
                    inc[rows] += pos.sum(axis=1)
                    if G:
                        incg[rows] += pos @ member
                E = E + (inc * m if m != 1.0 else inc)
                if G:
                    Eg += incg * m if m != 1.0 else incg
                if var is not None:
                    ok = E_prev + navm > 0
                    r = np.where(ok, m * dB[:, t - 1] / np.where(ok, E_prev + navm, 1.0), 0.0)
                    var = lam * var + (1.0 - lam) * r * r
            if rule.drawdown_steps:
                ddf = (np.maximum(peak, E) - E) / navm
                for d_j, x_j in rule.drawdown_steps:
                    target = np.where(ddf >= d_j, np.minimum(target, x_j), target)
            if rule.max_leverage is not None:
                navt = navm + E
                g = m * gross[:, t]
                xl = np.where(g > 0, rule.max_leverage * np.maximum(navt, 0.0) / np.where(g > 0, g, 1.0), 1.0)
                target = np.minimum(target, np.minimum(xl, 1.0))
            if var is not None and t > 0:
                target = np.minimum(target, np.minimum(rule.vol_target / np.sqrt(TRADING_DAYS * var), 1.0))
            target = np.minimum(target, x)
            rows = np.flatnonzero((target < x) | lag)
            if rows.size:
                er = e[rows]
                want = er + (x[rows] - target[rows])[:, None]
                want *= tradable
                tr = np.minimum(want, _rows(capf, rows))
                V = np.abs(sv + cum[rows, t - 1]) if t > 0 else np.broadcast_to(np.abs(sv), (rows.size, N))
                if m != 1.0:
                    V = V * m
                if lim is not None:
                    val = (tr * V).sum(axis=1)
                    sc = np.where(val > lim, lim / np.where(val > 0, val, 1.0), 1.0)
                    tr = tr * sc[:, None]
                left = want - tr
                e[rows] = left
                lag[rows] = np.any(left > 0, axis=1)
                days[rows] += np.any(tr > 0, axis=1)
                if has_cost:
                    sold = 1.0 - (x[rows, None] + er)  # fraction of the position sold so far on this path
                    now = sold + tr
                    c = V * (_rows(As, rows) * tr + _rows(Bs, rows) * (now * np.sqrt(now) - sold * np.sqrt(sold)))
                    ct = c.sum(axis=1)
                    E[rows] -= ct
                    cost[rows] += ct
                    if G:
                        Eg[rows] -= c @ member
            x = target
            if record:
                out_eq[blk, t] = E
            peak = np.maximum(peak, E)
            dd = np.maximum(dd, peak - E)
            if G:
                peak_g = np.maximum(peak_g, Eg)
                dd_g = np.maximum(dd_g, peak_g - Eg)
        V = m * np.abs(sv + cum[:, H - 1])
        tot = V.sum(axis=1)
        held = np.where(tot > 0, (x * tot + (e * V).sum(axis=1)) / np.where(tot > 0, tot, 1.0), 0.0)
        pend = np.zeros(k)
        rows = np.flatnonzero(lag)
        if has_cost and rows.size:
            # what is left is sold after the horizon at the last day's marks, as the rest of the same order
            er = e[rows]
            sold = 1.0 - (x[rows, None] + er)
            now = sold + er
            pc = V[rows] * (_rows(As, rows) * er + _rows(Bs, rows) * (now * np.sqrt(now) - sold * np.sqrt(sold)))
            pend[rows] = pc.sum(axis=1)
            E = E - pend
            dd = np.maximum(dd, peak - E)
            if G:
                Eg[rows] -= pc @ member
                dd_g = np.maximum(dd_g, peak_g - Eg)
        out_dd[blk], out_cost[blk], out_pend[blk], out_days[blk], out_held[blk] = dd, cost + pend, pend, days, held
        if G:
            out_gdd[blk] = dd_g
    return _Sim(out_dd, out_cost, out_pend, out_days, out_held, out_gdd, out_eq)


def _static_drawdown(pnl_paths: np.ndarray, scale: float = 1.0) -> np.ndarray:
    E = pnl_paths.sum(axis=2) * scale  # [S, H]
    peak = np.maximum(np.maximum.accumulate(E, axis=1), 0.0)
    return np.maximum((peak - E).max(axis=1), 0.0)


def _check_paths(model: LiquidityModel, pnl_paths) -> np.ndarray:
    return _check_pnl(model, pnl_paths, "pnl_paths", "[S, H, N]")


def liquidity_adjusted_drawdown(
    model: LiquidityModel,
    pnl_paths: np.ndarray,
    rule: DeleverageRule | None = None,
    conditions: Conditions | None = None,
    groups: bool = False,
    scale: float = 1.0,
    equity: bool = False,
) -> DrawdownResult:
    """Plain and liquidity-adjusted drawdowns of every scenario path.

    Parameters
    ----------
    model : the cost model (its quantities are the book the paths were revalued for)
    pnl_paths : ``[S, H, N]`` cumulative P&L (base currency) of each whole position after each day
        (:func:`liquidity.revalue_paths`)
    rule : :class:`DeleverageRule` (default: force nothing, so ``la_drawdown == drawdown``)
    conditions : liquidity state, per scenario (``[S, C]``, e.g. :meth:`Conditions.from_scenarios`) or
        uniform; its ``vol_mult`` None means each path's own realised volatility
        (:func:`liquidity.path_vol_multiplier`)
    groups : also give each asset class's and sleeve's drawdown contribution
    scale : AUM multiple (quantities, NAV and P&L scaled; used by the capacity curve)
    equity : also return the cumulative P&L after each day ``[S, H + 1]`` (day 0 is the start) of the
        plain pass (``equity``) and of the liquidity-adjusted pass, costs paid (``la_equity``)

    Returns
    -------
    :class:`DrawdownResult`
    """
    p = _check_paths(model, pnl_paths)
    rule = rule or DeleverageRule()
    S = p.shape[0]
    c = conditions or Conditions()
    if c.vol_mult is None:
        c = Conditions(c.spread_mult, c.adv_mult, path_vol_multiplier(model, p), c.stressed)
    r = model.resolve(c)
    for arr in r:
        if arr.ndim == 2 and arr.shape[0] != S:
            raise ConfigError(f"conditions: {arr.shape[0]} scenarios, but pnl_paths has {S}")
    absq = np.abs(model.quantity)
    budget = None if model.turnover_cap is None else model.turnover_cap * model.nav
    labels, member = model.groups() if groups else (None, None)
    with _single_blas_thread():
        pp = _prepare_paths(p, model.signed_value, member)
        plain = _simulate(pp, model.signed_value, absq, np.zeros(model.n), np.zeros(model.n), np.full(model.n, np.inf),
                          model.nav, rule, None, scale, equity)
        la = _simulate(pp, model.signed_value, absq, r.spread, r.impact, r.cap_units, model.nav, rule, budget, scale, equity)
    return DrawdownResult(plain.dd, la.dd, _static_drawdown(p, scale), la.cost, la.pending, la.days, la.held,
                          labels, plain.group_dd, la.group_dd, plain.equity, la.equity)
