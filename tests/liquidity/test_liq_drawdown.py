"""Liquidity-adjusted drawdown: a hand-worked path, the zero-cost identity, and consistency with the schedule."""

from __future__ import annotations

import numpy as np
import pytest

import stressgrid.liquidity._drawdown as dd_module
from stressgrid.core import ConfigError
from stressgrid.liquidity import (
    Conditions,
    DeleverageRule,
    LiquidityParams,
    liquidation_schedule,
    liquidity_adjusted_drawdown,
    path_vol_multiplier,
)

from liquidity_helpers import dense_drawdown, one_position, random_paths, small_book

# one long position of 1,000 units at 100 (NAV 100,000) sold at 250 units (25%) a day once the drawdown
# reaches 5% of NAV; prices 90, 80, 85, 70 on days 1-4
PATH = np.array([-10_000.0, -20_000.0, -15_000.0, -30_000.0]).reshape(1, 4, 1)
MARKS = np.array([90_000.0, 80_000.0, 85_000.0, 70_000.0])


def _hand_model(bps=20.0, k=0.0):
    return one_position(quantity=1000.0, unit_value=100.0, adv=1000.0, cap=0.25, bid_ask_bps=bps, daily_vol=0.02,
                        impact_k=k, nav=1e5)


STOP = DeleverageRule(drawdown_steps=((0.05, 0.0),))


def test_stop_loss_unwind_at_the_cap_by_hand_spread_only():
    r = liquidity_adjusted_drawdown(_hand_model(), PATH, STOP, Conditions(vol_mult=1.0))
    # day 1: -10,000, sell 25% at 90k for 22.5; day 2: 0.75 x -10,000, sell 25% at 80k for 20; day 3:
    # 0.5 x +5,000, sell at 85k for 21.25; day 4: 0.25 x -15,000, sell the last 25% at 70k for 17.5
    e = np.cumsum([-10_000 - 22.5, -7_500 - 20.0, 2_500 - 21.25, -3_750 - 17.5])
    assert r.la_drawdown[0] == pytest.approx(-e.min(), rel=1e-14)
    assert r.unwind_cost[0] == pytest.approx(22.5 + 20.0 + 21.25 + 17.5, rel=1e-14)
    assert r.drawdown[0] == 10_000.0  # plain: all sold at day 1's close, free
    assert r.static_drawdown[0] == 30_000.0
    assert (r.unwind_days[0], r.holding_end[0], r.pending_cost[0]) == (4, 0.0, 0.0)


def test_stop_loss_unwind_by_hand_with_square_root_impact():
    # k sigma V sqrt(|q| / ADV) = 0.5 x 0.02 x V x 1: the order's impact after selling F is 0.01 V F**1.5
    r = liquidity_adjusted_drawdown(_hand_model(bps=0.0, k=0.5), PATH, STOP, Conditions(vol_mult=1.0))
    F = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    impact = 0.01 * MARKS * (F[1:] ** 1.5 - F[:-1] ** 1.5)
    assert r.unwind_cost[0] == pytest.approx(impact.sum(), rel=1e-13)
    e = np.cumsum(np.array([-10_000, -7_500, 2_500, -3_750]) - impact)
    assert r.la_drawdown[0] == pytest.approx(-e.min(), rel=1e-13)


def test_what_is_left_at_the_horizon_is_sold_after_it_and_charged():
    r = liquidity_adjusted_drawdown(_hand_model(k=0.5), PATH[:, :2], STOP, Conditions(vol_mult=1.0))
    # half the position is left after day 2, sold at day 2's mark of 80,000
    pending = 0.001 * 0.5 * 80_000 + 0.01 * 80_000 * (1.0 - 0.5 ** 1.5)
    assert r.pending_cost[0] == pytest.approx(pending, rel=1e-13)
    assert r.holding_end[0] == pytest.approx(0.5, rel=1e-15)
    paid = 0.001 * 0.25 * (90_000 + 80_000) + 0.01 * (90_000 * 0.25 ** 1.5 + 80_000 * (0.5 ** 1.5 - 0.25 ** 1.5))
    assert r.unwind_cost[0] == pytest.approx(paid + pending, rel=1e-13)
    assert r.la_drawdown[0] == pytest.approx(10_000 + 7_500 + paid + pending, rel=1e-13)


RULES = [
    DeleverageRule(drawdown_steps=((0.01, 0.5), (0.03, 0.0))),
    DeleverageRule(max_leverage=0.9),
    DeleverageRule(vol_target=0.05),
    DeleverageRule(redemption=0.25, drawdown_steps=((0.02, 0.3),)),
]


@pytest.mark.parametrize("rule", RULES)
def test_zero_spread_and_zero_impact_with_caps_that_never_bind_give_the_plain_drawdown_exactly(rule):
    m = small_book(spread=False, impact=False, adv_scale=1e6)
    paths = random_paths(m, S=300, H=10, drift=-0.3)
    r = liquidity_adjusted_drawdown(m, paths, rule)
    assert np.any(r.unwind_days > 0)
    np.testing.assert_array_equal(r.la_drawdown, r.drawdown)
    np.testing.assert_array_equal(r.unwind_cost, 0.0)


def test_without_a_rule_nothing_is_sold_and_every_drawdown_is_the_static_one():
    m = small_book()
    paths = random_paths(m, S=200, H=8)
    r = liquidity_adjusted_drawdown(m, paths)
    np.testing.assert_array_equal(r.la_drawdown, r.drawdown)
    np.testing.assert_allclose(r.drawdown, r.static_drawdown, rtol=1e-12, atol=1e-6)
    assert np.all(r.unwind_cost == 0) and np.all(r.unwind_days == 0) and np.all(r.holding_end == 1.0)


def test_binding_caps_in_a_falling_market_make_the_drawdown_worse_even_for_free():
    m = small_book(spread=False, impact=False, adv_scale=0.02)
    paths = -np.cumsum(np.abs(np.random.default_rng(5).normal(size=(100, 10, m.n))) * m.pnl_vol, axis=1)  # every position loses
    r = liquidity_adjusted_drawdown(m, paths, DeleverageRule(drawdown_steps=((0.005, 0.0),)))
    assert np.all(r.la_drawdown >= r.drawdown) and np.any(r.la_drawdown > r.drawdown * 1.01)


def test_on_flat_paths_the_la_drawdown_of_a_redemption_is_its_schedule_cost():
    # a redemption of 25% is sold from day 0 over the days the caps require; with no price moves the
    # drawdown is the cost of that one order
    m = small_book(adv_scale=0.05)
    flat = np.zeros((3, 6, m.n))
    r = liquidity_adjusted_drawdown(m, flat, DeleverageRule(redemption=0.25), Conditions(vol_mult=1.0))
    s = liquidation_schedule(m, 0.25)
    assert s.book_days > 1
    np.testing.assert_allclose(r.la_drawdown, s.total_cost, rtol=1e-12)
    np.testing.assert_allclose(r.unwind_cost, s.total_cost, rtol=1e-12)
    assert np.all(r.drawdown == 0.0)


def test_a_leverage_cap_below_the_books_leverage_cuts_it_to_the_cap():
    m = small_book(spread=False, impact=False, adv_scale=1e6)
    lev = m.value.sum() / m.nav
    r = liquidity_adjusted_drawdown(m, np.zeros((2, 3, m.n)), DeleverageRule(max_leverage=0.6 * lev))
    np.testing.assert_allclose(r.holding_end, 0.6, rtol=1e-12)
    assert np.all(r.unwind_days == 1)


def test_scenario_liquidity_stress_raises_the_la_drawdown():
    m = small_book()
    paths = random_paths(m, S=200, H=10, drift=-0.3)
    rule = DeleverageRule(drawdown_steps=((0.01, 0.0),))
    base = liquidity_adjusted_drawdown(m, paths, rule)
    stress = liquidity_adjusted_drawdown(m, paths, rule, Conditions(spread_mult=3.0, adv_mult=0.3))
    sold = base.unwind_days > 0
    assert sold.any() and np.all(stress.unwind_cost[sold] > base.unwind_cost[sold])
    assert np.mean(stress.la_drawdown) > np.mean(base.la_drawdown)


def test_scale_multiplies_the_plain_drawdown():
    m = small_book()
    paths = random_paths(m, S=200, H=10, drift=-0.2)
    rule = DeleverageRule(drawdown_steps=((0.01, 0.5),), max_leverage=1.2)
    one = liquidity_adjusted_drawdown(m, paths, rule)
    three = liquidity_adjusted_drawdown(m, paths, rule, scale=3.0)
    np.testing.assert_allclose(three.drawdown, 3.0 * one.drawdown, rtol=1e-10)
    np.testing.assert_allclose(three.static_drawdown, 3.0 * one.static_drawdown, rtol=1e-12)
    # at three times the AUM the same scenario's cost grows faster than the book (impact ~ size**1.5)
    paid = one.unwind_cost > 0
    assert np.all(three.unwind_cost[paid] > 3.0 * one.unwind_cost[paid])


def test_a_turnover_cap_stretches_the_unwind():
    loose = small_book()
    tight = small_book(params=LiquidityParams.from_dict({"default": {"impact_k": 0.7}, "turnover_cap": 0.05}))
    paths = random_paths(loose, S=100, H=15, drift=-0.3)
    rule = DeleverageRule(drawdown_steps=((0.01, 0.0),))
    a = liquidity_adjusted_drawdown(loose, paths, rule)
    b = liquidity_adjusted_drawdown(tight, paths, rule)
    assert np.all(b.holding_end >= a.holding_end - 1e-12) and np.any(b.holding_end > a.holding_end + 1e-3)


def test_group_drawdowns_and_block_size_do_not_change_the_book_result(monkeypatch):
    m = small_book()
    paths = random_paths(m, S=150, H=10, drift=-0.2)
    rule = DeleverageRule(drawdown_steps=((0.01, 0.5), (0.02, 0.0)))
    r = liquidity_adjusted_drawdown(m, paths, rule, groups=True)
    assert r.groups[0] == ("book", "book")
    np.testing.assert_allclose(r.group_la_drawdown[:, 0], r.la_drawdown, rtol=1e-9)
    np.testing.assert_allclose(r.group_drawdown[:, 0], r.drawdown, rtol=1e-9)
    monkeypatch.setattr(dd_module, "CHUNK", 7)
    small = liquidity_adjusted_drawdown(m, paths, rule, groups=True)
    np.testing.assert_array_equal(small.la_drawdown, r.la_drawdown)
    np.testing.assert_array_equal(small.group_la_drawdown, r.group_la_drawdown)


def test_table_has_one_row_per_scenario():
    m = small_book()
    paths = random_paths(m, S=20, H=5)
    t = liquidity_adjusted_drawdown(m, paths, STOP).table([f"s{i}" for i in range(20)], ["f"] * 20)
    assert len(t) == 20 and list(t.columns[:4]) == ["scenario", "family", "drawdown", "la_drawdown"]


@pytest.mark.parametrize("kw, match", [
    (dict(drawdown_steps=((0.0, 0.5),)), r"drawdown_steps.*trigger must be > 0"),
    (dict(drawdown_steps=((0.05, 1.5),)), r"drawdown_steps.*target must be in \[0, 1\]"),
    (dict(max_leverage=-1.0), r"max_leverage.*-1"),
    (dict(vol_target=0.0), r"vol_target"),
    (dict(redemption=1.2), r"redemption.*1\.2"),
])
def test_bad_rules_are_rejected(kw, match):
    with pytest.raises(ConfigError, match=match):
        DeleverageRule(**kw)


def test_bad_paths_are_rejected():
    m = small_book()
    with pytest.raises(ConfigError, match=r"pnl_paths: expected an array \[S, H, N\]"):
        liquidity_adjusted_drawdown(m, np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="scenarios"):
        liquidity_adjusted_drawdown(m, np.zeros((2, 3, m.n)), STOP, Conditions(spread_mult=np.ones((5, 5))))


TWIN_RULES = RULES + [DeleverageRule(drawdown_steps=((0.01, 0.6),), max_leverage=0.5, vol_target=0.08, redemption=0.1)]


@pytest.mark.parametrize("rule", TWIN_RULES)
@pytest.mark.parametrize("turnover", [None, 0.03])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_the_simulation_matches_its_dense_twin(rule, turnover, scale):
    params = LiquidityParams.from_dict({"default": {"impact_k": 0.7}, "turnover_cap": turnover})
    m = small_book(params=params, adv_scale=0.1)
    paths = random_paths(m, S=200, H=12, drift=-0.2, seed=7)
    cond = Conditions(spread_mult=np.where(np.arange(200)[:, None] % 2, 3.0, 1.0) * np.ones((200, 5)), adv_mult=0.5)
    r = liquidity_adjusted_drawdown(m, paths, rule, cond, scale=scale)
    c = Conditions(cond.spread_mult, cond.adv_mult, path_vol_multiplier(m, paths), None)
    res = m.resolve(c)
    dd, cost, held = dense_drawdown(m, paths, rule, res.spread, res.impact, res.cap_units, scale)
    assert np.any(cost > 0)
    np.testing.assert_allclose(r.la_drawdown, dd, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(r.unwind_cost, cost, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(r.holding_end, held, rtol=1e-9, atol=1e-12)
    z = np.zeros(m.n)
    pdd, _, _ = dense_drawdown(m, paths, rule, z, z, np.full(m.n, np.inf), scale, turnover=False)
    np.testing.assert_allclose(r.drawdown, pdd, rtol=1e-9, atol=1e-6)


def test_recorded_equity_paths_match_the_drawdowns():
    model = small_book()
    pp = random_paths(model, S=50, H=12)
    rule = DeleverageRule(drawdown_steps=((0.002, 0.5), (0.004, 0.0)))
    res = liquidity_adjusted_drawdown(model, pp, rule, equity=True)
    assert res.equity.shape == res.la_equity.shape == (50, 13)
    assert np.all(res.equity[:, 0] == 0) and np.all(res.la_equity[:, 0] <= 0)
    # peak-to-trough of each recorded path is the reported drawdown (the plain pass has no pending cost)
    dd = lambda E: (np.maximum.accumulate(np.maximum(E, 0), axis=1) - E).max(axis=1)
    assert np.allclose(dd(res.equity), res.drawdown, rtol=0, atol=1e-6)
    done = res.pending_cost == 0
    assert np.allclose(dd(res.la_equity)[done], res.la_drawdown[done], rtol=0, atol=1e-6)
    # without a rule nothing trades: the plain equity is the book's cumulative P&L
    held = liquidity_adjusted_drawdown(model, pp, None, equity=True)
    assert np.allclose(held.equity[:, 1:], pp.sum(axis=2), rtol=0, atol=1e-6)
