"""Liquidity-adjusted VaR and CVaR: the zero-cost identity, LA >= plain, bounds, and the exit cost by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stressgrid.core import ConfigError, ScenarioSet, var_cvar
from stressgrid.core.scenarioset import LIQUIDITY_CLASSES
from stressgrid.liquidity import Conditions, LiquidityParams, exit_cost, la_risk_table, la_var_cvar

from liquidity_helpers import one_position, random_paths, small_book

ALPHAS = (0.9, 0.95, 0.99)


def _pnl(model, S=400, seed=3):
    return random_paths(model, S=S, H=5, seed=seed)[:, -1]


@pytest.mark.parametrize("alpha", ALPHAS)
def test_zero_spread_and_zero_impact_give_the_plain_figures_exactly(alpha):
    # small ADV: the caps bind for days, but with nothing to pay the figures are the plain ones, bit for bit
    m = small_book(spread=False, impact=False, adv_scale=0.01)
    pnl = _pnl(m)
    assert np.all(exit_cost(m, pnl).days.max(axis=1) > 1)
    r = la_var_cvar(m, pnl, alpha, conditions=m.stress_conditions(LiquidityParams.from_dict({"default": {"impact_k": 0.0}})))
    assert r.la_var == r.var and r.la_cvar == r.cvar
    assert (r.var, r.cvar) == var_cvar(pnl.sum(axis=1), alpha)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_la_figures_exceed_the_plain_ones_by_between_the_smallest_and_largest_exit_cost(alpha):
    m = small_book()
    pnl = _pnl(m)
    c = exit_cost(m, pnl).total_cost
    assert np.all(c > 0)
    r = la_var_cvar(m, pnl, alpha)
    assert r.la_cvar > r.cvar and r.la_var > r.var
    # CVaR is monotone and translation-equivariant: CVaR(L) + min c <= CVaR(L + c) <= CVaR(L) + max c
    assert r.cvar + c.min() - 1e-6 <= r.la_cvar <= r.cvar + c.max() + 1e-6


def test_a_constant_exit_cost_shifts_var_and_cvar_by_that_cost():
    m = small_book()
    pnl = _pnl(m)
    w = np.random.default_rng(0).uniform(size=len(pnl))
    w /= w.sum()
    r = la_var_cvar(m, pnl, 0.95, w, cost=np.full(len(pnl), 1234.5))
    assert r.la_var == pytest.approx(r.var + 1234.5, rel=1e-12)
    assert r.la_cvar == pytest.approx(r.cvar + 1234.5, rel=1e-12)
    assert r.exit_cost_mean == pytest.approx(1234.5) and r.exit_cost_tail == pytest.approx(1234.5)


def test_exit_cost_is_marked_at_the_shocked_value_by_hand():
    # 1m units at 10; the scenario loses 2m: the unwind is of 1m units at 8 (8m)
    m = one_position(quantity=1e6, unit_value=10.0, adv=1e7, bid_ask_bps=4.0, daily_vol=0.02, impact_k=0.5)
    s = exit_cost(m, np.array([[-2e6], [0.0]]))
    v = np.array([8e6, 10e6])
    np.testing.assert_allclose(s.spread_cost[:, 0], 2e-4 * v, rtol=1e-13)
    np.testing.assert_allclose(s.impact_cost[:, 0], 0.5 * 0.02 * v * math.sqrt(0.1), rtol=1e-13)
    np.testing.assert_array_equal(s.days[:, 0], [1, 1])


def test_partial_unwind_costs_less_than_a_full_one():
    m = small_book()
    pnl = _pnl(m)
    full = exit_cost(m, pnl, 1.0).total_cost
    part = exit_cost(m, pnl, 0.25).total_cost
    assert np.all(part < full)
    # spread is linear, impact grows as size**1.5: a quarter of the size costs between 1/8 and 1/4
    assert np.all(part >= full / 8 - 1e-9) and np.all(part <= full / 4 + 1e-9)


def test_table_per_family_uses_each_scenarios_liquidity_stress():
    m = small_book()
    pnl = np.concatenate([_pnl(m, 200, 1), _pnl(m, 200, 1)])  # the same P&L twice
    S, C = len(pnl), len(LIQUIDITY_CLASSES)
    spread, adv = np.ones((S, C)), np.ones((S, C))
    spread[200:], adv[200:] = 3.0, 0.3
    scen = ScenarioSet(tuple(f"s{i}" for i in range(S)), ("EQ.SPX",), np.zeros((S, 1)), np.full(S, 1 / 200),
                       ("calm",) * 200 + ("stressed",) * 200, np.ones((S, 1), bool), spread_mult=spread, adv_mult=adv)
    t = la_risk_table(m, pnl, scen.family, scen.weights, (0.95, 0.99), Conditions.from_scenarios(scen))
    assert list(t.columns) == ["family", "alpha", "var", "cvar", "la_var", "la_cvar", "exit_cost_mean", "exit_cost_tail"]
    calm, stressed = t[t["family"] == "calm"], t[t["family"] == "stressed"]
    np.testing.assert_array_equal(calm["cvar"].to_numpy(), stressed["cvar"].to_numpy())
    assert np.all(stressed["la_cvar"].to_numpy() > calm["la_cvar"].to_numpy())
    assert np.all(t["la_cvar"] >= t["cvar"]) and np.all(t["cvar"] >= t["var"]) and np.all(t["la_cvar"] >= t["la_var"])
    for _, row in calm.iterrows():
        assert row["cvar"] == var_cvar(pnl[:200].sum(axis=1), row["alpha"], scen.weights[:200])[1]


def test_bad_pnl_is_rejected():
    m = small_book()
    with pytest.raises(ConfigError, match=r"pnl: expected an array \[S, N\]"):
        la_var_cvar(m, np.zeros((3, m.n + 1)), 0.95)
    with pytest.raises(ConfigError, match="NaN"):
        la_var_cvar(m, np.full((3, m.n), np.nan), 0.95)
