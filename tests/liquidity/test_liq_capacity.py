"""Capacity curves: monotone in AUM, closed-form scaling, where a limit binds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressgrid.core import ConfigError, var_cvar
from stressgrid.liquidity import BASE, CAPACITY_METRICS, DeleverageRule, Limit, LiquidityModel, binding_aum, capacity_curve, days_capacity
from stressgrid.liquidity._capacity import _cvar_of_losses

from liquidity_helpers import one_position, random_paths, small_book

GRID = np.geomspace(0.25, 20.0, 20)


def _monotone(curve, metric):
    for (_, _, _), g in curve.groupby(["scope", "level", "group"]):
        v = g.sort_values("aum_multiple")[metric].to_numpy()
        assert np.all(np.diff(v) >= -1e-12 * np.abs(v[1:])), (metric, v)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_capacity_is_monotone_in_aum(seed):
    m = small_book(seed)
    pnl = random_paths(m, S=200, H=3, seed=seed)[:, -1]
    curve = capacity_curve(m, GRID, pnl=pnl)
    for metric in ("days_to_liquidate", "cost", "cost_bps", "la_cvar", "la_cvar_nav"):
        _monotone(curve, metric)


def test_la_drawdown_per_nav_rises_with_aum_when_every_position_keeps_losing():
    # a slower forced sale can gain in a rebound, so the LA drawdown is monotone in AUM only when prices
    # keep moving against the book; here every position loses every day
    m = small_book()
    paths = -np.cumsum(np.abs(np.random.default_rng(2).normal(size=(200, 10, m.n))) * m.pnl_vol, axis=1)
    curve = capacity_curve(m, GRID, pnl_paths=paths, rule=DeleverageRule(drawdown_steps=((0.01, 0.0),)))
    _monotone(curve, "la_drawdown_nav")
    book = curve[(curve["level"] == "book") & (curve["scope"] == "stress")].sort_values("aum_multiple")
    assert book["la_drawdown_nav"].iloc[-1] > book["la_drawdown_nav"].iloc[0]


def test_days_grow_with_aum_and_impact_bps_with_its_square_root():
    # no spread: cost per unit traded is k sigma sqrt(m Q / ADV), so cost_bps(m) = sqrt(m) cost_bps(1)
    m = one_position(quantity=1e6, adv=1e6, cap=0.1, bid_ask_bps=0.0)
    grid = np.array([0.5, 1.0, 2.0, 4.0, 9.0])
    curve = capacity_curve(m, grid)
    base = curve[(curve["scope"] == "base") & (curve["level"] == "book")].set_index("aum_multiple")
    for g in grid:
        assert base.loc[g, "days_to_liquidate"] == math.ceil(g * 10 - 1e-9)
        assert base.loc[g, "cost_bps"] == pytest.approx(math.sqrt(g) * base.loc[1.0, "cost_bps"], rel=1e-12)


def test_the_days_limit_binds_where_the_closed_form_says():
    # days = ceil(m |q| / (cap ADV)) <= 5  <=>  m <= 5 x 0.1 x 1m / 400k = 1.25 (base);
    # in stress (cap x 0.5, ADV x 0.5 by default for equities): m <= 5 x 0.025 x 1m / 400k = 0.3125
    m = one_position(quantity=4e5, adv=1e6, cap=0.1)
    curve = capacity_curve(m, GRID)
    lims = [Limit("days_to_liquidate", 5, "base"), Limit("days_to_liquidate", 5, "stress")]
    b = binding_aum(curve, lims, model=m)
    base = b[(b["level"] == "book") & (b["scope"] == "base")].iloc[0]
    assert base["status"] == "binds"
    assert base["binding_multiple"] == pytest.approx(1.25, rel=1e-12)
    assert base["max_ok_multiple"] == GRID[GRID <= 1.25].max() and base["next_multiple"] == GRID[GRID > 1.25].min()
    assert base["binding_nav"] == pytest.approx(1.25 * m.nav, rel=1e-12)
    stress = b[(b["level"] == "book") & (b["scope"] == "stress")].iloc[0]
    assert stress["binding_multiple"] == pytest.approx(0.3125, rel=1e-12)
    # the curve itself agrees on both sides of the exact multiple
    for mult, ok in ((1.25 * (1 - 1e-6), True), (1.25 * (1 + 1e-6), False)):
        d = capacity_curve(m, [mult], conditions={"base": BASE})
        assert (d["days_to_liquidate"].iloc[0] <= 5) == ok
    # without the model the step function's crossing is only bracketed by the grid
    assert np.isnan(binding_aum(curve, lims[:1])["binding_multiple"]).all()


def test_days_capacity_per_group_is_the_slowest_position():
    m = LiquidityModel.from_arrays(["A", "B", "C"], ["equity", "equity", "rates"], [1e6, 2e5, 1e6], [10.0, 10.0, 100.0],
                                   [1e6, 1e6, 1e7], [1.0, 1.0, 1.0], [0.01, 0.01, 0.005], sleeve=["x", "y", "y"])
    d = days_capacity(m, 10).set_index(["level", "group"])["max_multiple"]
    # A: 10 x 0.1 x 1m / 1m = 1; B: 10 x 0.1 x 1m / 200k = 5; C: 10 x 0.2 x 10m / 1m = 20
    assert d[("asset_class", "equity")] == pytest.approx(1.0) and d[("asset_class", "rates")] == pytest.approx(20.0)
    assert d[("sleeve", "y")] == pytest.approx(5.0) and d[("book", "book")] == pytest.approx(1.0)


def test_binding_aum_names_the_group_that_binds_first():
    # equity: 10m days at multiple m (1m units, 10% of 1m ADV); rates: m / 2 days (1m units, 20% of 10m)
    m = LiquidityModel.from_arrays(["EQ", "UST"], ["equity", "rates"], [1e6, 1e6], [10.0, 100.0], [1e6, 1e7],
                                   [1.0, 1.0], [0.01, 0.005], sleeve=["trend", "carry"])
    curve = capacity_curve(m, GRID)
    b = binding_aum(curve, [Limit("days_to_liquidate", 20, "base"), Limit("cost_bps", 1e9, "base")], model=m)
    days = b[b["metric"] == "days_to_liquidate"].set_index(["level", "group"])
    assert days.loc[("asset_class", "equity"), "status"] == "binds"
    assert days.loc[("asset_class", "rates"), "status"] == "within"
    assert days.loc[("asset_class", "equity"), "first"] and not days.loc[("asset_class", "rates"), "first"]
    assert days.loc[("sleeve", "trend"), "first"] and days.loc[("book", "book"), "first"]
    assert days.loc[("asset_class", "equity"), "max_ok_multiple"] == GRID[GRID <= 2.0].max()
    assert days.loc[("asset_class", "equity"), "binding_multiple"] == pytest.approx(2.0, rel=1e-12)
    huge = b[b["metric"] == "cost_bps"]
    assert set(huge["status"]) == {"within"} and not huge["first"].any()


def test_group_rows_of_the_curve_add_up():
    m = small_book()
    pnl = random_paths(m, S=300, H=3)[:, -1]
    curve = capacity_curve(m, [1.0], pnl=pnl, alpha=0.9)
    base = curve[curve["scope"] == "base"]
    book = base[base["level"] == "book"].iloc[0]
    for level in ("asset_class", "sleeve"):
        lv = base[base["level"] == level]
        assert lv["cost"].sum() == pytest.approx(book["cost"], rel=1e-12)
        assert lv["days_to_liquidate"].max() == book["days_to_liquidate"]
    assert book["cvar"] == pytest.approx(var_cvar(pnl.sum(axis=1), 0.9)[1], rel=1e-12)
    assert book["la_cvar"] > book["cvar"]


def test_column_cvar_matches_core_measures_with_ties_and_weights():
    rng = np.random.default_rng(1)
    for S in (7, 101, 1000):
        L = rng.normal(size=(S, 3))
        L[:4, 1] = L[0, 1]
        L[:, 2] = np.round(L[:, 2], 1)
        w = rng.uniform(size=S)
        w /= w.sum()
        for a in (0.5, 0.9, 0.95, 0.99):
            for ww in (None, w):
                got = _cvar_of_losses(L, a, ww)
                ref = [var_cvar(-L[:, g], a, ww)[1] for g in range(3)]
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_bad_capacity_inputs_are_rejected():
    m = small_book()
    with pytest.raises(ConfigError, match="aum_multiples"):
        capacity_curve(m, [1.0, 0.5])
    with pytest.raises(ConfigError, match="aum_multiples"):
        capacity_curve(m, [0.0, 1.0])
    with pytest.raises(ConfigError, match="metric.*'speed'"):
        Limit("speed", 1.0)
    with pytest.raises(ConfigError, match="max"):
        Limit("cost_bps", -5.0)
    curve = capacity_curve(m, [1.0, 2.0])
    with pytest.raises(ConfigError, match="not computed"):
        binding_aum(curve, [Limit("la_cvar", 1.0)])
    with pytest.raises(ConfigError, match="no scope 'crisis'"):
        binding_aum(curve, [Limit("cost_bps", 1.0, "crisis")])
    assert set(CAPACITY_METRICS) <= set(curve.columns)


def test_the_default_grid_holds_the_book_as_sized():
    # 1x is the reference of every capacity statement: the default grid must hold it exactly
    from stressgrid.liquidity import DEFAULT_AUM_MULTIPLES

    grid = np.asarray(DEFAULT_AUM_MULTIPLES)
    assert 1.0 in DEFAULT_AUM_MULTIPLES and len(grid) == 20 and grid[0] == 0.25 and grid[-1] == 20.0
    assert (np.diff(grid) > 0).all()
    # the other points are those of geomspace(0.25, 20, 20)
    np.testing.assert_array_equal(grid[grid != 1.0], GRID[np.abs(GRID - 1.0) > 0.01])
