"""The cost model: the square-root law by hand, its scaling, state dependence and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressgrid.core import ConfigError
from stressgrid.core.scenarioset import LIQUIDITY_CLASSES
from stressgrid.liquidity import BASE, Conditions, LiquidityModel, LiquidityParams

from liquidity_helpers import one_position, small_book


def test_one_day_cost_is_half_spread_plus_square_root_impact_by_hand():
    # 500,000 units at 10 (5m traded) of a stock trading 10m units a day, 4 bp quoted spread, 2% daily vol,
    # Y = 0.5: half spread 2 bp of 5m = 1,000; impact 0.5 x 2% x 5m x sqrt(0.5m / 10m) (Toth et al. 2011)
    m = one_position(quantity=1e6, unit_value=10.0, adv=1e7, bid_ask_bps=4.0, daily_vol=0.02, impact_k=0.5)
    spread, impact = m.cost_terms(np.array([-5e6]))
    assert spread[0] == pytest.approx(1_000.0, rel=1e-13)
    assert impact[0] == pytest.approx(0.5 * 0.02 * 5e6 * math.sqrt(0.05), rel=1e-13)
    assert m.cost(np.array([5e6]))[0] == pytest.approx(1_000.0 + 0.5 * 0.02 * 5e6 * math.sqrt(0.05), rel=1e-13)


@settings(max_examples=40, deadline=None)
@given(size=st.floats(1e3, 1e9), factor=st.floats(1.01, 50.0))
def test_impact_cost_scales_as_size_to_the_power_1_5(size, factor):
    m = one_position(bid_ask_bps=0.0)
    c1, c2 = m.cost(np.array([size]))[0], m.cost(np.array([size * factor]))[0]
    assert c2 / c1 == pytest.approx(factor ** 1.5, rel=1e-11)


def test_spread_cost_is_linear_without_impact():
    m = one_position(impact_k=0.0, bid_ask_bps=3.0)
    x = np.array([1.0, 1e3, 7.5e6])
    for v in x:
        assert m.cost(np.array([v]))[0] == pytest.approx(1.5e-4 * v, rel=1e-14)


def test_zero_spread_and_zero_impact_cost_nothing():
    m = one_position(impact_k=0.0, bid_ask_bps=0.0)
    assert m.cost(np.array([1e9]))[0] == 0.0


def test_multipliers_scale_each_term_as_the_formula_says():
    m = one_position()
    x = np.array([2e6])
    s0, i0 = m.cost_terms(x)
    s, i = m.cost_terms(x, Conditions(spread_mult=3.0))
    assert (s[0], i[0]) == (pytest.approx(3 * s0[0], rel=1e-14), pytest.approx(i0[0], rel=1e-14))
    s, i = m.cost_terms(x, Conditions(adv_mult=0.25))  # impact ~ 1 / sqrt(ADV)
    assert (s[0], i[0]) == (pytest.approx(s0[0], rel=1e-14), pytest.approx(2 * i0[0], rel=1e-13))
    s, i = m.cost_terms(x, Conditions(vol_mult=2.0))
    assert i[0] == pytest.approx(2 * i0[0], rel=1e-14)


def test_the_same_trade_costs_more_in_stress_for_every_position():
    m = small_book()
    x = m.signed_value * 0.3
    base = m.cost(x)
    stress = m.cost(x, m.stress_conditions())
    assert np.all(stress > base)


def test_class_multipliers_reach_only_their_class():
    m = small_book()
    x = m.signed_value * 0.3
    base = m.cost(x)
    c = m.cost(x, Conditions(spread_mult={"fx": 4.0}, adv_mult={"fx": 0.5}))
    fx = m.asset_class == "fx"
    assert np.all(c[fx] > base[fx]) and np.array_equal(c[~fx], base[~fx])


def test_caps_are_tightened_under_stress():
    m = small_book()
    p = LiquidityParams.default()
    r_base = m.resolve(BASE)
    np.testing.assert_allclose(r_base.cap_units, np.array(p.column("participation_cap", m.asset_class)) * m.adv, rtol=1e-15)
    r = m.resolve(Conditions(adv_mult=0.5))  # an ADV cut marks every class stressed
    expect = np.array(p.column("participation_cap", m.asset_class)) * np.array(p.column("stress_cap_mult", m.asset_class)) * 0.5 * m.adv
    np.testing.assert_allclose(r.cap_units, expect, rtol=1e-15)
    r = m.resolve(Conditions(adv_mult=0.5, stressed=False))
    np.testing.assert_allclose(r.cap_units, np.array(p.column("participation_cap", m.asset_class)) * 0.5 * m.adv, rtol=1e-15)


def test_per_scenario_conditions_give_a_scenario_axis():
    m = small_book()
    spread = np.ones((3, len(LIQUIDITY_CLASSES)))
    spread[1] = 2.0
    c = m.cost(np.tile(m.signed_value, (3, 1)) * 0.1, Conditions(spread_mult=spread))
    assert c.shape == (3, m.n)
    assert np.array_equal(c[0], c[2]) and np.all(c[1] > c[0])


def test_scaled_book_multiplies_quantities_and_nav():
    m = small_book()
    m3 = m.scaled(3.0)
    np.testing.assert_array_equal(m3.quantity, 3.0 * m.quantity)
    assert m3.nav == 3.0 * m.nav and np.array_equal(m3.adv, m.adv)


def test_missing_spread_and_vol_take_class_defaults():
    p = LiquidityParams.default()
    m = LiquidityModel.from_arrays(["A", "B"], ["equity", "credit"], [1.0, 2.0], [1.0, 1.0], [10.0, 10.0],
                                   [np.nan, 2.0], [0.01, np.nan], params=p)
    assert m.half_spread[0] == p.classes["equity"].default_bid_ask_bps / 2e4
    assert m.daily_vol[1] == p.classes["credit"].default_daily_vol
    assert list(m.vol_source) == ["input", "default"]
    assert m.nav == 3.0  # default NAV: the gross value


# ---------------------------------------------------------------------------------------------- bad input

def _arrays(**kw):
    base = dict(ids=["A", "BAD"], asset_class=["equity", "rates"], quantity=[1.0, 2.0], unit_value=[10.0, 20.0],
                adv=[100.0, 200.0], bid_ask_bps=[1.0, 2.0], daily_vol=[0.01, 0.02])
    for k, v in kw.items():
        base[k] = v if k in ("ids", "asset_class", "caps", "nav") else [base[k][0], v]
    return base


@pytest.mark.parametrize("field, value, words", [
    ("adv", 0.0, "adv"), ("adv", -5.0, "adv"), ("adv", float("nan"), "adv"), ("adv", float("inf"), "adv"),
    ("bid_ask_bps", -1.0, "bid_ask_bps"), ("unit_value", 0.0, "unit_value"), ("daily_vol", -0.1, "daily_vol"),
    ("quantity", float("inf"), "quantity"),
])
def test_bad_position_inputs_are_rejected_naming_the_position(field, value, words):
    with pytest.raises(ConfigError) as err:
        LiquidityModel.from_arrays(**_arrays(**{field: value}))
    msg = str(err.value)
    assert "'BAD'" in msg and words in msg and "got" in msg


@pytest.mark.parametrize("cap", [0.0, -0.1, 1.5, float("nan")])
def test_caps_outside_zero_one_are_rejected_naming_the_position(cap):
    with pytest.raises(ConfigError, match=r"position 'BAD'.*participation_cap.*\(0, 1\]"):
        LiquidityModel.from_arrays(**_arrays(caps=[0.1, cap]))
    with pytest.raises(ConfigError, match=r"position 'BAD'.*participation_cap"):
        LiquidityModel.from_arrays(**_arrays(caps={"rates": cap}))


def test_unknown_asset_class_and_bad_nav_are_rejected():
    with pytest.raises(ConfigError, match=r"position 'BAD'.*asset_class.*'bonds'"):
        LiquidityModel.from_arrays(**_arrays(asset_class=["equity", "bonds"]))
    with pytest.raises(ConfigError, match=r"nav.*-1"):
        LiquidityModel.from_arrays(**_arrays(nav=-1.0))
    with pytest.raises(ConfigError, match=r"expected 2 values"):
        LiquidityModel.from_arrays(**{**_arrays(), "adv": [1.0, 2.0, 3.0]})


@pytest.mark.parametrize("overrides, match", [
    ({"equity": {"participation_cap": 1.5}}, r"field 'equity\.participation_cap'.*1\.5"),
    ({"default": {"participation_cap": 0}}, r"field 'equity\.participation_cap'.*got 0"),
    ({"credit": {"impact_k": -1}}, r"field 'credit\.impact_k'.*-1"),
    ({"fx": {"speed": 1}}, r"field 'fx\.speed': unknown parameter"),
    ({"bonds": {"impact_k": 1}}, r"unknown field 'bonds'"),
    ({"turnover_cap": 0}, r"field 'turnover_cap'.*got 0"),
    ({"equity": 3}, r"field 'equity': expected a mapping"),
])
def test_bad_parameters_are_rejected_naming_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match):
        LiquidityParams.from_dict(overrides)


def test_parameter_overrides_apply_per_class_over_default():
    p = LiquidityParams.from_dict({"default": {"impact_k": 0.9}, "fx": {"impact_k": 0.3}, "turnover_cap": 0.2})
    assert p.classes["equity"].impact_k == 0.9 and p.classes["fx"].impact_k == 0.3 and p.turnover_cap == 0.2
    assert p.classes["rates"].participation_cap == LiquidityParams.default().classes["rates"].participation_cap


@pytest.mark.parametrize("kw, match", [
    (dict(spread_mult=-1.0), r"spread_mult.*'equity'.*-1"),
    (dict(adv_mult={"fx": 0.0}), r"adv_mult.*'fx'.*0\.0"),
    (dict(adv_mult={"bonds": 0.5}), r"adv_mult.*unknown asset class 'bonds'"),
    (dict(spread_mult=np.ones(3)), r"spread_mult.*shape"),
    (dict(vol_mult=-2.0), r"vol_mult"),
])
def test_bad_conditions_are_rejected(kw, match):
    with pytest.raises(ConfigError, match=match):
        Conditions(**kw)


def test_conditions_subset_picks_scenario_rows_and_keeps_uniform_parts():
    m = small_book()
    spread = np.arange(1, 4, dtype=float)[:, None] * np.ones((3, len(LIQUIDITY_CLASSES)))
    vol = np.ones((3, m.n)) * np.array([[1.0], [2.0], [3.0]])
    c = Conditions(spread_mult=spread, adv_mult=0.5, vol_mult=vol)
    sub = c.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.spread_mult, spread[[2, 0]])
    np.testing.assert_array_equal(sub.vol_mult, vol[[2, 0]])
    assert sub.adv_mult == 0.5
    x = np.tile(m.signed_value, (3, 1)) * 0.2
    np.testing.assert_array_equal(m.cost(x[[2, 0]], sub), m.cost(x, c)[[2, 0]])
