"""Small cost models on hand-made numbers, shared by the liquidity tests."""

from __future__ import annotations

import numpy as np

from liquidity import LiquidityModel, LiquidityParams


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
