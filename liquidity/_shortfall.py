"""Implementation shortfall of trades (re-optimisations, vol-targeting rebalances), and a cost callable
for the optimisers.

The expected implementation shortfall of a trade (Perold, "The implementation shortfall: paper versus
reality", J. Portfolio Management 14(3), 1988) is, under the cost model, the spread and impact paid to
execute it (:func:`liquidity.execution_schedule`, which also gives the days the caps require); price
drift while trading has zero expectation and is not included.

:func:`cost_fn` gives the optimisers the same cost of a trade in weights of NAV,

    cost(w) = sum_i h_i m_s |w_i| + k_i m_v sigma_i |w_i|**1.5 sqrt(NAV / (p_i m_a ADV_i))

(a fraction of NAV): the convex ``a|x| + b sigma |x|**1.5 / V**0.5`` form of Boyd et al., "Multi-Period
Trading via Convex Optimization", Found. Trends Optim. 3(1), 2017, sec. 2.3.  It accepts a numpy array or
a cvxpy expression.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError

from ._model import BASE, Conditions, LiquidityModel
from ._params import LiquidityParams
from ._schedule import Schedule, execution_schedule

__all__ = ["implementation_shortfall", "cost_fn", "rebalance_trades", "vol_target_trades", "path_realised_vol"]

TRADING_DAYS = 252


def _trades(model: LiquidityModel, trade_values=None, trade_weights=None) -> np.ndarray:
    if (trade_values is None) == (trade_weights is None):
        raise ConfigError("implementation shortfall: give exactly one of trade_values and trade_weights")
    x = np.asarray(trade_values if trade_weights is None else np.asarray(trade_weights, float) * model.nav, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != model.n:
        raise ConfigError(f"implementation shortfall: trades must be [N] or [T, N] with N = {model.n} positions (got shape {x.shape})")
    if not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x))[0][1])
        raise ConfigError(f"implementation shortfall, position {model.ids[bad]!r}: trade is not finite")
    return x


def implementation_shortfall(
    model: LiquidityModel,
    trade_values=None,
    trade_weights=None,
    labels: Sequence[str] | None = None,
    conditions: Mapping[str, Conditions] | None = None,
    params: LiquidityParams | None = None,
) -> pd.DataFrame:
    """Expected implementation shortfall of one or more trade lists, per scope, for the book, each asset
    class and sleeve.

    Parameters
    ----------
    model : the cost model
    trade_values : ``[N]`` or ``[T, N]`` signed trades in base currency
    trade_weights : or the same as fractions of NAV (``(w_new - w_old)`` of a re-optimisation)
    labels : ``[T]`` names of the trade lists (default ``trade_0``, ...)
    conditions : scope -> :class:`Conditions` (default ``base`` and ``stress``)

    Returns
    -------
    DataFrame: ``trade``, ``scope``, ``level``, ``group``, ``traded_value``, ``days`` (slowest position),
    ``spread_cost``, ``impact_cost``, ``cost`` (base currency), ``cost_bps`` (of the value traded),
    ``cost_nav`` (fraction of NAV).
    """
    x = _trades(model, trade_values, trade_weights)
    labels = [f"trade_{i}" for i in range(len(x))] if labels is None else [str(s) for s in labels]
    if len(labels) != len(x):
        raise ConfigError(f"implementation shortfall: {len(labels)} labels for {len(x)} trade lists")
    if conditions is None:
        conditions = {"base": BASE, "stress": model.stress_conditions(params)}
    names, member = model.groups()
    rows = []
    for scope, c in conditions.items():
        s: Schedule = execution_schedule(model, x, c)
        val, sp, im = s.value @ member, s.spread_cost @ member, s.impact_cost @ member
        for t, lab in enumerate(labels):
            for g, (level, group) in enumerate(names):
                sel = member[:, g] > 0
                cost = sp[t, g] + im[t, g]
                rows.append((lab, scope, level, group, val[t, g], int(s.days[t, sel].max()), sp[t, g], im[t, g], cost,
                             1e4 * cost / val[t, g] if val[t, g] > 0 else 0.0, cost / model.nav))
    return pd.DataFrame(rows, columns=["trade", "scope", "level", "group", "traded_value", "days", "spread_cost",
                                       "impact_cost", "cost", "cost_bps", "cost_nav"])


def cost_fn(model: LiquidityModel, conditions: Conditions | None = None) -> Callable:
    """A callable ``cost(trade_weights[N]) -> cost as a fraction of NAV`` for the optimisers.

    ``trade_weights`` are signed trades as fractions of ``model.nav`` (a numpy array ``[..., N]``, or a
    cvxpy expression of shape ``[N]``, for which it returns a convex cvxpy expression).  The value equals
    ``model.cost(trade_weights * nav).sum() / nav`` in ``conditions`` (uniform; default base).
    """
    r = model.resolve(conditions)
    if any(np.ndim(a) > 1 for a in r):
        raise ConfigError("cost_fn: conditions must be uniform (no scenario axis)")
    a = np.asarray(r.spread, dtype=float).copy()
    # impact of a trade x = w NAV: k m_v sigma x sqrt(x / p) / sqrt(m_a ADV) = b |w|^1.5 NAV
    b = np.asarray(r.impact, dtype=float) * np.sqrt(model.nav / model.unit_value)

    def fn(trade_weights):
        if type(trade_weights).__module__.startswith("cvxpy"):
            import cvxpy as cp

            aw = cp.abs(trade_weights)
            return a @ aw + b @ cp.power(aw, 1.5)
        w = np.asarray(trade_weights, dtype=float)
        if w.shape[-1:] != (model.n,):
            raise ConfigError(f"cost_fn: trade weights must have {model.n} entries, one per position (got shape {w.shape})")
        aw = np.abs(w)
        return aw @ a + (aw * np.sqrt(aw)) @ b

    return fn


def rebalance_trades(model: LiquidityModel, scale) -> np.ndarray:
    """Trades ``[..., N]`` (base currency) that scale the whole book by ``scale`` (``[...]``; 0.5 halves it)."""
    s = np.asarray(scale, dtype=float)
    if not np.all(np.isfinite(s) & (s >= 0)):
        raise ConfigError(f"rebalance scale must be >= 0 (got {s[~(np.isfinite(s) & (s >= 0))].flat[0]!r})")
    return (s[..., None] - 1.0) * model.signed_value


def path_realised_vol(pnl_paths: np.ndarray, nav: float) -> np.ndarray:
    """Annualised realised volatility ``[S]`` of the book's daily P&L along each path, as a fraction of
    ``nav`` (root mean square, zero mean, 252 days a year)."""
    book = np.asarray(pnl_paths, dtype=float).sum(axis=2)
    dp = np.diff(book, axis=1, prepend=0.0)
    return np.sqrt(TRADING_DAYS * np.mean(dp * dp, axis=1)) / nav


def vol_target_trades(model: LiquidityModel, realised_vol, target_vol: float, max_scale: float = 1.0) -> np.ndarray:
    """Trades ``[..., N]`` of a vol-targeting rebalance: scale the book by
    ``min(max_scale, target_vol / realised_vol)`` (annualised vols, fractions of NAV)."""
    rv = np.asarray(realised_vol, dtype=float)
    if not (np.isfinite(target_vol) and target_vol > 0):
        raise ConfigError(f"vol target must be a positive number (got {target_vol!r})")
    if not np.all(np.isfinite(rv) & (rv >= 0)):
        raise ConfigError("realised vol must be finite and >= 0")
    scale = np.minimum(max_scale, np.where(rv > 0, target_vol / np.where(rv > 0, rv, 1.0), max_scale))
    return rebalance_trades(model, scale)
