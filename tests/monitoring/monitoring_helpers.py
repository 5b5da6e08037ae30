"""Helpers of the monitoring tests: seeded synthetic returns and a synthetic history with a planted
regime change."""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressgrid.core import History


def synthetic_returns(T: int = 400, K: int = 4, seed: int = 0, start: str = "2010-01-04") -> pd.DataFrame:
    """Correlated Gaussian daily returns ``[T, K]`` (about 1% a day) on business days."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, K)) * 0.3 + np.eye(K)
    x = rng.standard_normal((T, K)) @ a.T * 0.01
    return pd.DataFrame(x, index=pd.bdate_range(start, periods=T), columns=[f"EQ.A{i}" for i in range(K)])


def regime_history(calm: int = 700, stress: int = 120, seed: int = 3, term: bool = True) -> tuple[History, pd.Timestamp]:
    """A history whose first ``calm`` days are quiet and the next ``stress`` days a crisis.

    Calm: ten stocks with pairwise correlation 0.1 at 1% daily vol, equity returns and bond prices
    correlated -0.4, implied vol near 15% with 2% daily log changes, a flat credit spread (1bp a day
    noise), an upward-sloping implied-vol term structure.  Stress: correlation 0.85 at 3% vol, equity
    and bond prices correlated +0.6, implied vol near 45% with 10% daily log changes, the spread
    widening 3bp a day, the term structure inverted.

    Returns the history and the first stress date.
    """
    rng = np.random.default_rng(seed)
    T = calm + stress
    dates = pd.bdate_range("2000-01-03", periods=T + 1)
    rho = np.r_[np.full(calm, 0.1), np.full(stress, 0.85)]
    vol = np.r_[np.full(calm, 0.01), np.full(stress, 0.03)]
    common = rng.standard_normal(T)
    idio = rng.standard_normal((T, 10))
    eq = (np.sqrt(rho)[:, None] * common[:, None] + np.sqrt(1 - rho)[:, None] * idio) * vol[:, None]
    spx = eq.mean(axis=1)
    # bond price move = -dy; corr(spx, -dy) = c
    c = np.r_[np.full(calm, -0.4), np.full(stress, 0.6)]
    zs = (spx - spx.mean()) / spx.std()
    dy = -(c * zs + np.sqrt(1 - c ** 2) * rng.standard_normal(T)) * 0.0006
    vix_noise = np.r_[np.full(calm, 0.02), np.full(stress, 0.10)] * rng.standard_normal(T)
    log_vix = np.empty(T)
    level = np.log(0.15)
    for t in range(T):
        target = np.log(0.15) if t < calm else np.log(0.45)
        level = level + 0.2 * (target - level) + vix_noise[t]
        log_vix[t] = level
    cr = np.r_[rng.standard_normal(calm) * 0.0001, 0.0003 + rng.standard_normal(stress) * 0.0001]

    def lv(moves, base, log):
        path = np.r_[0.0, np.cumsum(moves)]
        return base * np.exp(path) if log else base + path

    data = {f"EQ.S{i}": lv(eq[:, i], 100.0, True) for i in range(10)}
    data["EQ.SPX"] = lv(spx, 1000.0, True)
    data["IR.USD.10Y"] = lv(dy, 0.03, False)
    data["VOL.SPX.ATM"] = np.exp(np.r_[np.log(0.15), log_vix])
    data["CR.CDX_IG"] = lv(cr, 0.006, False)
    if term:
        data["VOL.SPX.TERM"] = np.r_[np.full(calm + 1, 0.02), np.full(stress, -0.03)] + rng.standard_normal(T + 1) * 0.002
    levels = pd.DataFrame(data, index=pd.DatetimeIndex(dates, name="date"))
    return History(levels=levels, source="synthetic"), dates[calm + 1]
