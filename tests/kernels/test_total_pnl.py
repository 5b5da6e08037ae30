"""``kernels.total_pnl``: the book's P&L as one differentiable function equals the batched revaluation's
row sums (today's book and one aged 10 business days) and its gradient equals central differences."""

from __future__ import annotations

import numpy as np
import pytest

from stressgrid import kernels


@pytest.fixture(scope="module")
def demo(demo_prepared):
    return demo_prepared


def _shocks(snap, S, seed):
    rng = np.random.default_rng(seed)
    sd = np.where(snap.is_log, 0.05, 0.002)
    sd = np.where([f.startswith("VOL.") for f in snap.factors], 0.03, sd)
    return rng.normal(0, 1, (S, len(snap.factors))) * sd


@pytest.mark.parametrize("days", [0, 10])
def test_total_equals_the_revaluation_row_sums(demo, days):
    book, snap, prepared = demo
    b = prepared if days == 0 else kernels.age(prepared, book.positions, "USD", snap.as_of, days, snap.levels)
    f = kernels.total_pnl(b, snap.levels)
    shocks = np.vstack([np.zeros(len(snap.factors)), _shocks(snap, 12, 3)])
    ref = kernels.revalue(b, snap.levels, shocks, snap.is_log).sum(axis=1)
    got = np.array([f(s)[0] for s in shocks])
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-6)
    # zero shock: zero P&L today, the time component (the offset) at the horizon
    assert got[0] == pytest.approx(0.0 if days == 0 else float(b.offset.sum()), abs=1e-6)


def test_gradient_equals_central_differences(demo):
    book, snap, prepared = demo
    f = kernels.total_pnl(prepared, snap.levels)
    s = _shocks(snap, 1, 9)[0]
    _, g = f(s)
    rng = np.random.default_rng(4)
    for j in rng.choice(len(s), 15, replace=False):
        h = 1e-6 if snap.is_log[j] else 1e-7
        e = np.zeros(len(s))
        e[j] = h
        fd = (f(s + e)[0] - f(s - e)[0]) / (2 * h)
        assert g[j] == pytest.approx(fd, rel=1e-5, abs=1e-2), snap.factors[j]
