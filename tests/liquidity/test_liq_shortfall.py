"""Implementation shortfall, the optimisers' cost callable (numpy and cvxpy), vol-targeting rebalances."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest

from stressgrid.core import ConfigError
from stressgrid.liquidity import (
    Conditions,
    cost_fn,
    execution_schedule,
    implementation_shortfall,
    path_realised_vol,
    rebalance_trades,
    vol_target_trades,
)

from liquidity_helpers import one_position, small_book


def test_cost_fn_is_the_square_root_law_in_weights_by_hand():
    # NAV 100m; trade 5% of NAV = 5m = 500k units at 10 of a 10m-ADV stock, 4 bp spread, 2% vol, Y = 0.5
    m = one_position(quantity=1e6, unit_value=10.0, adv=1e7, bid_ask_bps=4.0, daily_vol=0.02, impact_k=0.5, nav=1e8)
    f = cost_fn(m)
    expect = (2e-4 * 5e6 + 0.5 * 0.02 * 5e6 * math.sqrt(5e5 / 1e7)) / 1e8
    assert f(np.array([-0.05])) == pytest.approx(expect, rel=1e-13)
    assert f(np.array([0.0])) == 0.0


def test_cost_fn_equals_the_model_cost_in_any_conditions():
    m = small_book()
    w = np.random.default_rng(0).normal(0, 0.05, m.n)
    for c in (None, m.stress_conditions(), Conditions(spread_mult={"fx": 2.0}, vol_mult=1.5)):
        assert cost_fn(m, c)(w) == pytest.approx(m.cost(w * m.nav, c).sum() / m.nav, rel=1e-13)


def test_cost_fn_takes_a_cvxpy_expression_and_stays_convex():
    m = small_book()
    f = cost_fn(m)
    w = cp.Variable(m.n)
    expr = f(w)
    assert expr.is_convex() and expr.is_dcp()
    alpha = np.linspace(-0.01, 0.01, m.n)
    prob = cp.Problem(cp.Minimize(f(w) - alpha @ w), [cp.abs(w) <= 0.3])
    prob.solve()
    assert prob.status == "optimal"
    assert float(f(w).value) == pytest.approx(f(w.value), rel=1e-9)
    # first-order condition of a|w| + b|w|^1.5 - alpha w: no trade where |alpha| <= a (the spread)
    a = m.resolve().spread
    small = np.abs(alpha) < a * 0.99
    np.testing.assert_allclose(w.value[small], 0.0, atol=1e-6)


def test_shortfall_per_scope_and_group():
    m = small_book()
    trades = np.random.default_rng(1).normal(0, 0.1, (2, m.n))
    t = implementation_shortfall(m, trade_weights=trades, labels=["reopt_crisis", "vol_target"])
    assert set(t["scope"]) == {"base", "stress"} and set(t["trade"]) == {"reopt_crisis", "vol_target"}
    for i, lab in enumerate(["reopt_crisis", "vol_target"]):
        s = execution_schedule(m, trades[i] * m.nav)
        row = t[(t["trade"] == lab) & (t["scope"] == "base") & (t["level"] == "book")].iloc[0]
        assert row["cost"] == pytest.approx(s.total_cost, rel=1e-12)
        assert row["days"] == s.book_days
        assert row["cost_nav"] == pytest.approx(s.total_cost / m.nav, rel=1e-12)
        assert row["cost_bps"] == pytest.approx(1e4 * s.total_cost / s.value.sum(), rel=1e-12)
        stress = t[(t["trade"] == lab) & (t["scope"] == "stress") & (t["level"] == "book")].iloc[0]
        assert stress["cost"] > row["cost"] and stress["days"] >= row["days"]
    base = t[(t["scope"] == "base") & (t["trade"] == "vol_target")]
    book = base[base["level"] == "book"]["cost"].iloc[0]
    for level in ("asset_class", "sleeve"):
        assert base[base["level"] == level]["cost"].sum() == pytest.approx(book, rel=1e-12)


def test_vol_target_rebalance_trades():
    m = small_book()
    # realised 20% against a 10% target: halve the book; below target: nothing (max_scale 1)
    x = vol_target_trades(m, np.array([0.2, 0.05]), 0.10)
    np.testing.assert_allclose(x[0], -0.5 * m.signed_value, rtol=1e-15)
    np.testing.assert_array_equal(x[1], 0.0)
    np.testing.assert_allclose(rebalance_trades(m, 0.25), -0.75 * m.signed_value, rtol=1e-15)


def test_path_realised_vol_by_hand():
    # a book losing 1% of NAV every day: sqrt(252) x 1% a year
    nav = 1e6
    paths = np.cumsum(np.full((2, 10, 3), -nav * 0.01 / 3), axis=1)
    np.testing.assert_allclose(path_realised_vol(paths, nav), math.sqrt(252) * 0.01, rtol=1e-12)


def test_bad_shortfall_inputs_are_rejected():
    m = small_book()
    with pytest.raises(ConfigError, match="exactly one"):
        implementation_shortfall(m)
    with pytest.raises(ConfigError, match=r"\[N\] or \[T, N\]"):
        implementation_shortfall(m, trade_values=np.ones(m.n + 2))
    bad = np.zeros(m.n)
    bad[2] = np.nan
    with pytest.raises(ConfigError, match="position 'P2'"):
        implementation_shortfall(m, trade_values=bad)
    with pytest.raises(ConfigError, match="entries"):
        cost_fn(m)(np.ones(m.n - 1))
    with pytest.raises(ConfigError, match="uniform"):
        cost_fn(m, Conditions(spread_mult=np.ones((4, 5))))
    with pytest.raises(ConfigError, match="vol target"):
        vol_target_trades(m, np.array([0.1]), -0.1)
