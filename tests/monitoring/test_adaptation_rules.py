"""Declared rules are applied exactly as declared, in order, and only when their signals fire."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter

from stressgrid import scenarios
from stressgrid.core import ConfigError, History
from stressgrid.monitoring import apply_rules, correlated_cluster, exposure_signs


def _book():
    return pd.DataFrame({
        "id": ["A", "B", "C", "D", "E"],
        "type": ["equity", "equity_future", "equity", "bond", "fx_forward"],
        "underlying": ["EQ.X", "EQ.X", "EQ.Y", "IR.USD.10Y", "FX.EURUSD"],
        "quantity": [100.0, 10.0, 50.0, 1e6, 2e5],
        "adv": [1e6, 1e5, 1e6, 1e8, 1e9],
    })


def _pnl(n=120, seed=0):
    """Daily P&L by position: A, B, C share a common driver (correlation ~0.9); D and E are independent."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(n)
    p = {k: 1000 * (0.95 * common + 0.3 * rng.standard_normal(n)) for k in ("A", "B", "C")}
    p["D"] = 500 * rng.standard_normal(n)
    p["E"] = 800 * rng.standard_normal(n)
    return pd.DataFrame(p, index=pd.bdate_range("2020-01-01", periods=n))


def test_delever_cluster_scales_the_correlated_cluster_only():
    book, pnl = _book(), _pnl()
    rules = [{"kind": "delever_cluster", "when": ["avg_corr"], "factor": 0.4, "min_corr": 0.6}]
    positions, log = apply_rules(book, ["avg_corr"], rules, position_pnl=pnl)
    assert np.allclose(positions.quantity, [40.0, 4.0, 20.0, 1e6, 2e5])
    row = log.iloc[0]
    assert row.fired and row.action == "scaled 3 positions by 0.4" and "A, B, C" in row.detail
    assert np.array_equal(book.quantity, [100.0, 10.0, 50.0, 1e6, 2e5])  # the input is not modified
    # not fired: nothing changes, and the log says so
    out = apply_rules(book, ["vol_of_vol"], rules, position_pnl=pnl)
    assert out.positions.equals(book) and not out.log.fired.iloc[0] and out.log.action.iloc[0] == "none"


def test_cluster_helper_and_no_cluster():
    c = np.array([[1, 0.9, 0.8, 0], [0.9, 1, 0.85, 0.1], [0.8, 0.85, 1, 0], [0, 0.1, 0, 1.0]])
    idx, mc = correlated_cluster(c, 0.5)
    assert list(idx) == [0, 1, 2] and mc == pytest.approx((0.9 + 0.8 + 0.85) / 3)
    idx, mc = correlated_cluster(np.eye(3), 0.5)
    assert len(idx) == 0 and np.isnan(mc)


def _factor_history():
    rng = np.random.default_rng(1)
    n = 100
    x = rng.standard_normal(n) * 0.01
    dates = pd.bdate_range("2020-01-01", periods=n + 1)
    lv = pd.DataFrame({
        "EQ.X": 100 * np.exp(np.r_[0, np.cumsum(x)]),
        "EQ.Y": 50 * np.exp(np.r_[0, np.cumsum(0.9 * x + 0.004 * rng.standard_normal(n))]),
        # yields fall when equities fall: a long bond gains then, so it is not in the equity cluster
        "IR.USD.10Y": 0.02 + np.r_[0, np.cumsum(0.0005 * x / 0.01 + 0.0001 * rng.standard_normal(n))],
        "FX.EURUSD": 1.1 * np.exp(np.r_[0, np.cumsum(0.005 * rng.standard_normal(n))]),
    }, index=dates)
    return History(lv, "test"), dates


def test_delever_from_factor_history_uses_signed_exposures():
    h, dates = _factor_history()
    book = _book()
    assert list(exposure_signs(book)) == [1, 1, 1, -1, 1]
    out = apply_rules(book, ["avg_corr"], [{"kind": "delever_cluster", "when": ["avg_corr"], "factor": 0.5}], h, dates[-1])
    assert np.allclose(out.positions.quantity, [50.0, 5.0, 25.0, 1e6, 2e5])
    assert "signed factor correlation" in out.log.detail.iloc[0]
    # a put is short its underlying; an explicit exposure column wins
    b = book.assign(type=["option", "equity", "equity", "bond", "fx_forward"], option_type=["put", None, None, None, None])
    assert list(exposure_signs(b))[:2] == [-1, 1]
    # a VIX put is short its vol level, a VIX call long it
    v = book.assign(type=["vix_option", "vix_option", "equity", "bond", "fx_forward"],
                    option_type=["put", "call", None, None, None])
    assert list(exposure_signs(v))[:2] == [-1, 1]
    assert list(exposure_signs(book.assign(exposure=[-2.0, 1, 1, 1, 1]))) == [-1, 1, 1, 1, 1]


def test_tighten_adv_caps():
    book = _book()
    rule = [{"kind": "tighten_adv_caps", "when": ["dispersion"], "multiplier": 0.5, "base_cap": 0.2}]
    out = apply_rules(book, ["dispersion"], rule)
    assert np.allclose(out.positions.participation_cap, 0.1)
    out = apply_rules(book.assign(participation_cap=[0.1, 0.2, 0.3, 0.05, np.nan]), ["dispersion"], rule)
    assert np.allclose(out.positions.participation_cap, [0.05, 0.1, 0.15, 0.025, 0.1])


def test_stressed_correlation_switches_the_monte_carlo_families():
    specs = [
        {"kind": "montecarlo", "name": "mc_t", "model": "student_t", "n_scenarios": 100},
        {"kind": "historical", "name": "crisis", "events": ["gfc_2008"]},
        {"kind": "montecarlo", "name": "mc_g", "model": "gaussian", "amplify": {"vol": {"multiplier": 1.5}}},
    ]
    corr = {"blend": 1.0, "targets": [{"a": "equity", "b": "IR.USD.*", "value": -0.8}]}
    rule = [{"kind": "stressed_correlation", "when": ["equity_bond"], "correlation": corr}]
    out = apply_rules(_book(), ["equity_bond"], rule, scenario_specs=specs)
    new = out.scenario_specs
    assert new[0]["amplify"]["correlation"]["targets"][0]["value"] == -0.8
    assert "amplify" not in new[1]
    assert new[2]["amplify"]["vol"] == {"multiplier": 1.5} and new[2]["amplify"]["correlation"]["blend"] == 1.0
    assert "amplify" not in specs[0]  # the given specs are not modified
    ta = TypeAdapter(scenarios.ScenarioSpec)
    for s in new:
        ta.validate_python(s)  # still valid batch entries
    # validated spec objects and a family filter
    objs = [ta.validate_python(s) for s in specs]
    out = apply_rules(_book(), ["equity_bond"], [{**rule[0], "families": ["mc_g"]}], scenario_specs=objs)
    assert out.scenario_specs[0].amplify is None
    assert out.scenario_specs[2].amplify.correlation.targets[0].value == -0.8
    assert out.scenario_specs[2].amplify.vol.multiplier == 1.5
    with pytest.raises(ConfigError, match="no scenario family 'nope'"):
        apply_rules(_book(), ["equity_bond"], [{**rule[0], "families": ["nope"]}], scenario_specs=specs)


def test_vol_target_scales_to_the_target_with_a_cap():
    book, pnl = _book(), _pnl(n=200)
    nav = 1e6
    vol = pnl.sum(axis=1).iloc[-60:].std(ddof=1) * np.sqrt(252) / nav
    rule = {"kind": "vol_target", "when": ["vol_of_vol"], "target_vol": vol / 2, "window": 60}
    out = apply_rules(book, ["vol_of_vol"], [rule], position_pnl=pnl, nav=nav)
    assert np.allclose(out.positions.quantity, book.quantity * 0.5, rtol=1e-12)
    # a target above the current vol is capped by max_scale (default 1: never levers up)
    out = apply_rules(book, ["vol_of_vol"], [{**rule, "target_vol": vol * 3}], position_pnl=pnl, nav=nav)
    assert np.allclose(out.positions.quantity, book.quantity)
    out = apply_rules(book, ["vol_of_vol"], [{**rule, "target_vol": vol * 3, "max_scale": 2.0}], position_pnl=pnl, nav=nav)
    assert np.allclose(out.positions.quantity, book.quantity * 2.0)
    with pytest.raises(ConfigError, match="positive nav"):
        apply_rules(book, ["vol_of_vol"], [rule], position_pnl=pnl)
    with pytest.raises(ConfigError, match="P&L history"):
        apply_rules(book, ["vol_of_vol"], [rule], nav=nav)


def test_rules_apply_in_order_and_vol_target_sees_the_delevered_book():
    book, pnl = _book(), _pnl(n=200)
    nav = 1e6
    rules = [{"kind": "delever_cluster", "when": ["avg_corr"], "factor": 0.5, "min_corr": 0.6},
             {"kind": "vol_target", "when": ["avg_corr", "vol_of_vol"], "mode": "all", "target_vol": 0.01, "window": 60}]
    out = apply_rules(book, ["avg_corr", "vol_of_vol"], rules, position_pnl=pnl, nav=nav)
    scaled = pnl[["A", "B", "C"]].sum(axis=1) * 0.5 + pnl[["D", "E"]].sum(axis=1)
    vol = scaled.iloc[-60:].std(ddof=1) * np.sqrt(252) / nav
    f = min(1.0, 0.01 / vol)
    assert np.allclose(out.positions.quantity, np.array([50.0, 5.0, 25.0, 1e6, 2e5]) * f, rtol=1e-12)
    # mode all: one of the two signals is not enough
    out = apply_rules(book, ["avg_corr"], rules, position_pnl=pnl, nav=nav)
    assert list(out.log.fired) == [True, False]
    # one series for the whole book cannot follow a partial change
    h, dates = _factor_history()
    with pytest.raises(ConfigError, match="by position"):
        apply_rules(book, ["avg_corr", "vol_of_vol"], rules, h, dates[-1], position_pnl=pnl.sum(axis=1), nav=nav)
    # without a partial change a book-level series is enough
    out = apply_rules(book, ["vol_of_vol", "avg_corr"], rules[1:], position_pnl=pnl.sum(axis=1), nav=nav)
    assert out.log.fired.iloc[0]


def test_bad_rules_are_named():
    with pytest.raises(ConfigError, match=r"rules\[0\], field 'when'.*unknown signal 'vix'"):
        apply_rules(_book(), [], [{"kind": "vol_target", "when": ["vix"], "target_vol": 0.1}])
    with pytest.raises(ConfigError, match=r"rules\[0\]"):
        apply_rules(_book(), [], [{"kind": "delever_cluster", "when": ["avg_corr"], "factor": 2.0}])
    with pytest.raises(ConfigError, match=r"rules\[0\]"):
        apply_rules(_book(), [], [{"kind": "hedge", "when": ["avg_corr"]}])
