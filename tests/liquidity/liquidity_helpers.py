"""Small cost models on hand-made numbers, shared by the liquidity tests."""

from __future__ import annotations

import numpy as np

from stressgrid.liquidity import LiquidityModel, LiquidityParams


def one_position(
    quantity: float = 1e6,
    unit_value: float = 10.0,
    adv: float = 1e7,
    bid_ask_bps: float = 4.0,
    daily_vol: float = 0.02,
    impact_k: float = 0.5,
    cap: float = 0.1,
    asset_class: str = "equity",
    nav: float | None = None,
    **overrides,
) -> LiquidityModel:
    """A one-position book with the given cost parameters (``impact_k`` and the cap set on its class)."""
    params = LiquidityParams.from_dict({asset_class: {"impact_k": impact_k, "participation_cap": cap}, **overrides})
    return LiquidityModel.from_arrays(["P1"], [asset_class], [quantity], [unit_value], [adv], [bid_ask_bps], [daily_vol],
                                      params=params, nav=nav)


CLASSES = ("equity", "rates", "fx", "commodity", "credit", "equity")
SLEEVES = ("trend", "carry", "trend", "value", "carry", "value")


def small_book(seed: int = 0, nav: float = 5e7, params: LiquidityParams | None = None, n: int = 6,
               spread: bool = True, impact: bool = True, adv_scale: float = 1.0) -> LiquidityModel:
    """A random book of ``n`` positions over every asset class and three sleeves."""
    rng = np.random.default_rng(seed)
    ac = [CLASSES[i % len(CLASSES)] for i in range(n)]
    sl = [SLEEVES[i % len(SLEEVES)] for i in range(n)]
    if params is None:
        params = LiquidityParams.from_dict({"default": {"impact_k": 0.7 if impact else 0.0}})
    q = rng.choice([-1, 1], n) * rng.uniform(1e4, 2e5, n)
    return LiquidityModel.from_arrays(
        [f"P{i}" for i in range(n)], ac, q, rng.uniform(10, 100, n), adv_scale * rng.uniform(1e4, 1e6, n),
        rng.uniform(0.5, 5, n) if spread else np.zeros(n), rng.uniform(0.005, 0.02, n), sleeve=sl, params=params, nav=nav,
    )


def random_paths(model: LiquidityModel, S: int = 300, H: int = 10, seed: int = 1, drift: float = 0.0, vol: float = 2.0) -> np.ndarray:
    """Cumulative P&L paths ``[S, H, N]``: Gaussian daily P&L of ``vol`` x each position's daily P&L vol,
    plus ``drift`` x that vol a day."""
    rng = np.random.default_rng(seed)
    d = (rng.normal(size=(S, H, model.n)) * vol + drift) * model.pnl_vol
    return np.cumsum(d, axis=1)


def dense_drawdown(model: LiquidityModel, pnl_paths: np.ndarray, rule, spread, impact, cap_units, scale: float = 1.0,
                   turnover: bool = True):
    """Plain dense twin of the liquidity-adjusted drawdown simulation (every scenario and position every
    day, holdings kept as fractions ``h[S, N]``): returns ``(drawdown, cost, holding)`` per scenario.
    ``turnover=False`` ignores the model's turnover cap (the plain pass has none).

    Written from the description in ``liquidity/_drawdown.py``; the library keeps holdings as a uniform
    level plus per-position excess and skips scenarios that neither trade nor lag.
    """
    S, H, N = pnl_paths.shape
    m = scale
    q = np.abs(model.quantity) * m
    ok = q > 0
    spread = np.broadcast_to(spread, (S, N))
    bs = np.broadcast_to(impact * np.sqrt(q), (S, N))
    capf = np.broadcast_to(np.where(ok, cap_units / np.where(ok, q, 1.0), 0.0), (S, N))
    nav = model.nav * m
    budget = None if (model.turnover_cap is None or not turnover) else model.turnover_cap * nav
    h = np.ones((S, N))
    target = np.full(S, 1.0 - rule.redemption)
    E = np.zeros(S)
    peak = np.zeros(S)
    dd = np.zeros(S)
    cost = np.zeros(S)
    var = None if rule.vol_target is None else np.full(S, rule.vol_target ** 2 / 252)
    prev = np.zeros((S, N))
    for t in range(H + 1):
        if t > 0:
            cum = pnl_paths[:, t - 1]
            dp = (cum - prev) * m
            if var is not None:
                r = np.where(nav + E > 0, dp.sum(axis=1) / np.where(nav + E > 0, nav + E, 1.0), 0.0)
            E = E + (h * dp).sum(axis=1)
            if var is not None:
                var = rule.ewma_lambda * var + (1 - rule.ewma_lambda) * r * r
            prev = cum
        V = np.abs(model.signed_value + prev) * m
        for d_j, x_j in rule.drawdown_steps:
            target = np.where((np.maximum(peak, E) - E) / nav >= d_j, np.minimum(target, x_j), target)
        if rule.max_leverage is not None:
            g = V.sum(axis=1)
            target = np.minimum(target, np.minimum(rule.max_leverage * np.maximum(nav + E, 0.0) / g, 1.0))
        if var is not None and t > 0:
            target = np.minimum(target, np.minimum(rule.vol_target / np.sqrt(252 * var), 1.0))
        tr = np.minimum(np.maximum(h - target[:, None], 0.0) * ok, capf)
        if budget is not None:
            val = (tr * V).sum(axis=1)
            tr = tr * np.where(val > budget, budget / np.where(val > 0, val, 1.0), 1.0)[:, None]
        sold = 1.0 - h
        c = V * (spread * tr + bs * ((sold + tr) ** 1.5 - sold ** 1.5))
        E = E - c.sum(axis=1)
        cost += c.sum(axis=1)
        h = h - tr
        peak = np.maximum(peak, E)
        dd = np.maximum(dd, peak - E)
    left = np.maximum(h - target[:, None], 0.0) * ok
    sold = 1.0 - h
    c = V * (spread * left + bs * ((sold + left) ** 1.5 - sold ** 1.5))
    E = E - c.sum(axis=1)
    cost += c.sum(axis=1)
    dd = np.maximum(dd, peak - E)
    return dd, cost, (h * V).sum(axis=1) / V.sum(axis=1)
