"""Data helpers of the portfolio tests: asset lists of the bundled history, a seeded synthetic model."""

from __future__ import annotations

import numpy as np

#: 20 US stocks, oil, gold and two FX rates, all observed 2012-2017
ASSETS = [
    "EQ.AAPL", "EQ.AMD", "EQ.BAC", "EQ.BBY", "EQ.CVX", "EQ.GE", "EQ.HD", "EQ.JNJ", "EQ.JPM", "EQ.KO",
    "EQ.LLY", "EQ.MRK", "EQ.MSFT", "EQ.PEP", "EQ.PFE", "EQ.PG", "EQ.RRC", "EQ.UNH", "EQ.WMT", "EQ.XOM",
    "CMD.WTI", "CMD.GOLD", "FX.EURUSD", "FX.JPYUSD",
]
ASSET_CLASS = ["equity"] * 20 + ["commodity"] * 2 + ["fx"] * 2
FACTORS = ["EQ.SPX", "CMD.WTI", "FX.EURUSD", "IR.USD.10Y"]


def synthetic_returns(S: int, N: int, seed: int = 0, k: int = 4) -> np.ndarray:
    """Scenario returns ``[S, N]`` from a k-factor Student-t model (fat tails, common drivers)."""
    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 0.6, (N, k))
    f = rng.standard_t(4, (S, k)) * 0.01
    eps = rng.standard_t(5, (S, N)) * 0.01
    mu = rng.normal(0.0003, 0.0003, N)
    return f @ B.T + eps + mu
