"""Liquidation and execution schedules: ceil(size / (cap ADV)) days, conservation, turnover cap, tables."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stressgrid.core import ConfigError, ScenarioSet
from stressgrid.core.scenarioset import LIQUIDITY_CLASSES
from stressgrid.liquidity import (
    Conditions,
    LiquidityModel,
    LiquidityParams,
    execution_schedule,
    family_conditions,
    liquidation_schedule,
    liquidation_table,
)

from liquidity_helpers import one_position, small_book

CAPS = ["0.05", "0.1", "0.2", "0.25", "0.5", "1"]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 10_000_000), adv=st.integers(1, 1_000_000), cap=st.sampled_from(CAPS))
def test_single_position_takes_ceil_size_over_cap_times_adv_days(size, adv, cap):
    exact = Fraction(size) / (Fraction(cap) * adv)
    # the schedule treats a ratio within a relative 1e-9 of an integer as that integer (rounding dust)
    assume(exact.denominator == 1 or abs(exact - round(exact)) > 1e-9 * max(exact, 1))
    m = one_position(quantity=float(size), adv=float(adv), cap=float(cap))
    s = liquidation_schedule(m, 1.0)
    assert int(s.days[0]) == math.ceil(exact)


def test_exact_multiples_take_exactly_that_many_days():
    m = one_position(quantity=1e6, adv=1e6, cap=0.1)
    assert liquidation_schedule(m).days[0] == 10
    m = one_position(quantity=1e6 + 1, adv=1e6, cap=0.1)
    assert liquidation_schedule(m).days[0] == 11
    m = one_position(quantity=-3e5, adv=1e6, cap=0.1)  # shorts are bought back at the same pace
    assert liquidation_schedule(m).days[0] == 3


def test_a_split_order_costs_what_the_square_root_law_says_for_its_total_size():
    # 2.5m units, 1m ADV, 10% cap: 25 days; 25% of it: 7 days (6 x 100k + 25k).  The impact of the whole
    # 625k-unit order is Y sigma sqrt(Q / ADV) per unit traded, however many days it takes
    m = one_position(quantity=2.5e6, unit_value=20.0, adv=1e6, cap=0.1, bid_ask_bps=6.0, daily_vol=0.015, impact_k=0.8)
    s = liquidation_schedule(m, 0.25)
    assert s.days[0] == 7
    Q = 0.25 * 2.5e6
    assert s.impact_cost[0] == pytest.approx(0.8 * 0.015 * (Q * 20.0) * math.sqrt(Q / 1e6), rel=1e-13)
    assert s.spread_cost[0] == pytest.approx(3e-4 * Q * 20.0, rel=1e-14)
    assert s.cost_bps[0] == pytest.approx(1e4 * s.cost[0] / (Q * 20.0), rel=1e-14)


def test_schedule_cost_equals_the_one_order_cost_and_rises_in_stress():
    m = small_book()
    s = liquidation_schedule(m)
    assert np.any(s.days > 1)
    np.testing.assert_allclose(s.cost, m.cost(m.signed_value), rtol=1e-13)
    stress = liquidation_schedule(m, 1.0, m.stress_conditions())
    assert np.all(stress.cost > s.cost) and np.all(stress.days >= s.days)


@pytest.mark.parametrize("fraction", [1.0, 0.25, np.linspace(0, 1, 6)])
def test_daily_trades_add_up_to_the_unwind_and_respect_the_caps(fraction):
    m = small_book()
    cond = Conditions(spread_mult=np.array([[1, 1, 1, 1, 1], [3, 2, 2, 3, 4]], float),
                      adv_mult=np.array([[1, 1, 1, 1, 1], [0.3, 0.5, 0.5, 0.2, 0.3]]))
    s = liquidation_schedule(m, fraction, cond, trades=True)
    want = np.broadcast_to(np.asarray(fraction) * np.abs(m.quantity), (2, m.n))
    np.testing.assert_allclose(s.trades.sum(axis=0), want, rtol=1e-12)
    cap = m.resolve(cond).cap_units
    assert np.all(s.trades <= cap * (1 + 1e-9))
    np.testing.assert_array_equal((s.trades > 0).sum(axis=0), s.days)
    assert np.all(s.days[1] >= s.days[0]) and np.all(s.cost[1] >= s.cost[0])


def test_stress_days_follow_the_cut_adv_and_tightened_caps():
    m = one_position(quantity=1e6, adv=1e6, cap=0.1)  # stress_cap_mult 0.5 by default
    s = liquidation_schedule(m, 1.0, Conditions(adv_mult=0.5))
    assert s.days[0] == 40  # 1m / (0.1 x 0.5 x 0.5 x 1m)


def test_a_huge_turnover_cap_changes_nothing():
    base = small_book()
    loose = small_book(params=LiquidityParams.from_dict({"default": {"impact_k": 0.7}, "turnover_cap": 1e6}))
    a, b = liquidation_schedule(base, 1.0, trades=True), liquidation_schedule(loose, 1.0, trades=True)
    np.testing.assert_array_equal(a.days, b.days)
    np.testing.assert_allclose(b.cost, a.cost, rtol=1e-12)
    np.testing.assert_allclose(b.trades, a.trades, rtol=1e-12)


def test_a_binding_turnover_cap_spreads_the_book_over_value_over_budget_days():
    # two positions with ample ADV; at most 10% of NAV a day: ceil(gross / (0.1 NAV)) days
    p = LiquidityParams.from_dict({"turnover_cap": 0.1})
    m = LiquidityModel.from_arrays(["A", "B"], ["equity", "rates"], [1e5, -3e5], [50.0, 10.0], [1e12, 1e12], [1.0, 1.0],
                                   [0.01, 0.01], params=p, nav=2.2e6)
    s = liquidation_schedule(m, 1.0, trades=True)
    gross = 1e5 * 50 + 3e5 * 10  # 8m over 220k a day
    assert s.book_days == math.ceil(gross / 2.2e5)
    value_per_day = (s.trades * m.unit_value).sum(axis=1)
    assert np.all(value_per_day <= 2.2e5 * (1 + 1e-12))
    np.testing.assert_allclose(s.trades.sum(axis=0), np.abs(m.quantity), rtol=1e-12)


def test_execution_schedule_of_arbitrary_trades():
    m = small_book()
    x = np.array([[1e6, 0, -2e6, 5e5, 0, 3e6]])
    s = execution_schedule(m, x)
    np.testing.assert_allclose(s.value, np.abs(x), rtol=1e-14)
    assert s.days.shape == (1, m.n) and np.all(s.days[x != 0] >= 1) and np.all(s.days[x == 0] == 0)
    np.testing.assert_array_equal(s.cost[x == 0], 0.0)


def test_liquidation_table_groups():
    m = small_book()
    s = liquidation_schedule(m)
    t = liquidation_table(m, {"base": s, "stress": liquidation_schedule(m, 1.0, m.stress_conditions())})
    assert set(t["scope"]) == {"base", "stress"}
    base = t[t["scope"] == "base"]
    book = base[base["level"] == "book"].iloc[0]
    pos = base[base["level"] == "position"]
    assert book["days"] == pos["days"].max()
    assert book["cost"] == pytest.approx(pos["cost"].sum(), rel=1e-12)
    assert book["cost_bps"] == pytest.approx(1e4 * pos["cost"].sum() / pos["value"].sum(), rel=1e-12)
    for level in ("asset_class", "sleeve"):
        lv = base[base["level"] == level]
        assert lv["cost"].sum() == pytest.approx(book["cost"], rel=1e-12)
        for _, row in lv.iterrows():
            assert row["days"] == pos.loc[pos[level] == row["group"], "days"].max()
    st = t[(t["scope"] == "stress") & (t["level"] == "book")].iloc[0]
    assert st["days"] >= book["days"] and st["cost"] > book["cost"]


def test_family_conditions_take_the_most_stressed_scenario_per_class():
    S, C = 4, len(LIQUIDITY_CLASSES)
    spread = np.ones((S, C))
    adv = np.ones((S, C))
    spread[1, 0], adv[1, 0], adv[2, 3] = 3.0, 0.3, 0.2
    scen = ScenarioSet(tuple("abcd"), ("EQ.SPX",), np.zeros((S, 1)), np.array([0.5, 0.5, 0.5, 0.5]),
                       ("f1", "f1", "f2", "f2"), np.ones((S, 1), bool), spread_mult=spread, adv_mult=adv)
    fc = family_conditions(scen)
    assert list(fc) == ["f1", "f2"]
    np.testing.assert_array_equal(fc["f1"].spread_mult, spread[1])
    np.testing.assert_array_equal(fc["f2"].adv_mult, adv[2])


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_bad_fraction_is_rejected(fraction):
    with pytest.raises(ConfigError, match="fraction"):
        liquidation_schedule(small_book(), fraction)
