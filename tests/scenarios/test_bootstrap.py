"""Stationary bootstrap: moments of the resampled days within sampling error, paths add up."""

from __future__ import annotations

import numpy as np
import pytest

from stressgrid import scenarios
from stressgrid.scenarios import daily_moves


def test_bootstrap_reproduces_window_moments(spec, history, factors, market):
    s = spec(dict(kind="bootstrap", name="bs", window={"end": "2017-03-29", "lookback_days": 500},
                  block_length=5, horizon_days=5, n_scenarios=20_000))
    out = scenarios.generate(s, history, factors, np.random.SeedSequence(0), market)
    moves, ok = daily_moves(history, factors, s.window, market.as_of)
    m = moves.to_numpy()
    # the first day of every path is one independent draw from the window's empirical distribution
    day1 = out.paths[:, 0, :][:, ok]
    n = len(day1)
    mu, sd = m.mean(0), m.std(0, ddof=0)
    # mean: standard error sd / sqrt(n); 5 standard errors
    assert np.all(np.abs(day1.mean(0) - mu) < 5 * sd / np.sqrt(n))
    # sd: standard error sd * sqrt((kurt - 1) / (4 n)) with the window's own kurtosis
    kurt = ((m - mu) ** 4).mean(0) / sd ** 4
    assert np.all(np.abs(day1.std(0) - sd) < 5 * sd * np.sqrt((kurt - 1) / (4 * n)))
    # correlation: standard error at most (1 - rho^2) sqrt(kurt_max / 3) / sqrt(n)
    rho = np.corrcoef(m, rowvar=False)
    se = (1 - rho ** 2) * np.sqrt(kurt.max() / 3) / np.sqrt(n) + 1e-12
    assert np.all(np.abs(np.corrcoef(day1, rowvar=False) - rho) < 5 * se)
    # the shock is the path's last day, and each path day is a window move (a row of m)
    assert np.array_equal(out.shocks, out.paths[:, -1, :])
    rows = {tuple(r) for r in m}
    assert all(tuple(r) in rows for r in day1[:200])


def test_bootstrap_uses_arch(spec, history, factors, market):
    # block b equals arch's StationaryBootstrap driven by the block's generator, first H indices
    from arch.bootstrap import StationaryBootstrap

    s = spec(dict(kind="bootstrap", name="bs", window={"end": "2017-03-29", "lookback_days": 300},
                  block_length=7, horizon_days=3, n_scenarios=10))
    seed = np.random.SeedSequence(42)
    out = scenarios.generate(s, history, factors, seed, market)
    fit = scenarios.fit(s, history, factors, market)
    bs = StationaryBootstrap(7, fit.moves, seed=np.random.default_rng(scenarios.block_seed(seed, 0)))
    idx = [bs.update_indices()[:3] for _ in range(10)]
    ref = np.stack([fit.moves[i].sum(0) for i in idx])
    assert np.allclose(out.shocks[:, fit.index], ref, rtol=1e-12, atol=1e-15)
