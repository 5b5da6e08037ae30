"""Rules that add: ``boost``, ``reweight_liquid`` and ``vol_target`` scaling up, within the ADV and gross caps,
each with its impact on the book's risk and its trading cost (hand computations)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError, var_cvar
from stressgrid.monitoring import IMPACT_COLUMNS, apply_rules

NAV = 1e7


def _book():
    """Two trend positions, two value positions and a credit position; unit values in :data:`UNIT`."""
    return pd.DataFrame({
        "id": ["T1", "T2", "V1", "V2", "C1"],
        "type": ["equity_future", "commodity_future", "equity", "equity", "cds"],
        "underlying": ["EQ.SPX", "CMD.GOLD", "EQ.A", "EQ.B", "CR.X"],
        "quantity": [10.0, -4.0, 1000.0, 500.0, 2e6],
        "asset_class": ["equity", "commodity", "equity", "equity", "credit"],
        "sleeve": ["trend", "trend", "value", "value", "carry"],
        "adv": [1e5, 1e4, 1e6, 1e6, 5e7],
    })


UNIT = np.array([1e5, 1.3e5, 100.0, 50.0, 1.0])


def _pnl(n=250, seed=0):
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(n)
    p = {"T1": 3e4 * (0.6 * common + 0.8 * rng.standard_normal(n)), "T2": 1e4 * rng.standard_normal(n),
         "V1": 2e3 * (0.7 * common + 0.7 * rng.standard_normal(n)), "V2": 1e3 * rng.standard_normal(n),
         "C1": 5e3 * rng.standard_normal(n)}
    return pd.DataFrame(p, index=pd.bdate_range("2021-01-01", periods=n))


def _boost(**kw):
    return {"kind": "boost", "when": ["dispersion"], **kw}


def test_boost_scales_exactly_the_named_sleeve_when_no_cap_binds():
    book = _book()
    out = apply_rules(book, ["dispersion"], [_boost(sleeves=["trend"], factor=1.3)], unit_values=UNIT)
    q = book.quantity.to_numpy()
    assert out.positions.quantity.tolist() == [q[0] * 1.3, q[1] * 1.3, q[2], q[3], q[4]]
    assert out.log.action.iloc[0] == "scaled 2 positions by 1.3"
    imp = out.impact.iloc[0]
    gross = float(np.abs(q) @ UNIT)
    assert imp["gross_before"] == pytest.approx(gross, rel=1e-15)
    assert imp["gross_after"] == pytest.approx(gross + 0.3 * (10 * 1e5 + 4 * 1.3e5), rel=1e-14)
    assert pd.isna(imp["bound"]) and list(out.impact.columns) == IMPACT_COLUMNS
    # the intersection of a sleeve and an asset class
    out = apply_rules(book, ["dispersion"], [_boost(sleeves=["trend"], asset_classes=["equity"], factor=2.0)], unit_values=UNIT)
    assert out.positions.quantity.tolist() == [20.0, -4.0, 1000.0, 500.0, 2e6]
    # not fired: unchanged, no impact row
    out = apply_rules(book, ["avg_corr"], [_boost(sleeves=["trend"], factor=1.3)], unit_values=UNIT)
    assert out.positions.equals(book) and len(out.impact) == 0


def test_boost_is_cut_to_the_adv_cap():
    book = _book().assign(adv=[1e5, 12.0, 1e6, 1e6, 5e7])  # T2: 4 contracts of an ADV of 12
    rule = _boost(sleeves=["trend"], factor=2.0, participation=0.1, liquidation_days=5)
    out = apply_rules(book, ["dispersion"], [rule], unit_values=UNIT)
    # T2 may hold at most 0.1 x 12 x 5 = 6 contracts: cut from x2 to x1.5; T1 is far below its cap
    assert out.positions.quantity.iloc[0] == 20.0
    assert out.positions.quantity.iloc[1] == pytest.approx(-6.0, rel=1e-15)
    assert "ADV cap (5 days at the participation cap) cut 1 position(s): T2 x2 -> x1.5" in out.log.detail.iloc[0]
    assert out.impact.bound.iloc[0] == "adv" and "adv cap" in out.log.action.iloc[0]
    # the position's own participation cap wins over the rule's
    out = apply_rules(book.assign(participation_cap=[np.nan, 0.05, np.nan, np.nan, np.nan]), ["dispersion"], [rule],
                      unit_values=UNIT)
    assert out.positions.quantity.iloc[1] == pytest.approx(-4.0, rel=1e-15)  # 0.05 x 12 x 5 = 3 < 4: not increased


def test_boost_is_cut_to_the_gross_cap():
    book = _book()
    q = book.quantity.to_numpy()
    gross = float(np.abs(q) @ UNIT)
    rule = _boost(sleeves=["trend"], factor=3.0, max_gross_multiple=1.2)
    out = apply_rules(book, ["dispersion"], [rule], unit_values=UNIT)
    add = 2.0 * (10 * 1e5 + 4 * 1.3e5)  # the increase asked
    theta = (1.2 * gross - gross) / add
    f = 1 + theta * 2.0
    assert out.positions.quantity.iloc[:2].to_numpy() == pytest.approx([10 * f, -4 * f], rel=1e-14)
    assert out.impact.gross_after.iloc[0] == pytest.approx(1.2 * gross, rel=1e-12)
    assert out.impact.bound.iloc[0] == "gross"
    assert f"cut the increase to {theta:.1%} of the one asked" in out.log.detail.iloc[0]


def test_reweight_keeps_the_gross_and_moves_it_to_the_more_liquid_class():
    book = _book()
    rule = {"kind": "reweight_liquid", "when": ["dispersion"], "tilt": 0.5, "participation": 0.1,
            "asset_classes": ["equity", "credit"]}
    out = apply_rules(book, ["dispersion"], [rule], unit_values=UNIT)
    q = book.quantity.to_numpy()
    g = np.abs(q) * UNIT
    d = np.abs(q) / (0.1 * book.adv.to_numpy())
    eq, cr = [0, 2, 3], [4]
    D = {"eq": g[eq] @ d[eq] / g[eq].sum(), "cr": g[cr] @ d[cr] / g[cr].sum()}
    G = {"eq": g[eq].sum(), "cr": g[cr].sum()}
    k = (G["eq"] + G["cr"]) / (G["eq"] * D["eq"] ** -0.5 + G["cr"] * D["cr"] ** -0.5)
    s_eq, s_cr = k * D["eq"] ** -0.5, k * D["cr"] ** -0.5
    assert D["eq"] < D["cr"] and s_eq > 1 > s_cr  # credit is the less liquid class here: weight moves to equity
    expected = [q[0] * s_eq, q[1], q[2] * s_eq, q[3] * s_eq, q[4] * s_cr]
    assert out.positions.quantity.to_numpy() == pytest.approx(expected, rel=1e-13)
    new = np.abs(out.positions.quantity.to_numpy()) * UNIT
    assert new[[0, 2, 3, 4]].sum() == pytest.approx(g[[0, 2, 3, 4]].sum(), rel=1e-13)  # gross kept
    assert new[[0, 2, 3]].sum() > g[[0, 2, 3]].sum()
    imp = out.impact.iloc[0]
    assert imp["gross_after"] == pytest.approx(imp["gross_before"], rel=1e-13)
    assert "equity:" in out.log.detail.iloc[0] and "credit:" in out.log.detail.iloc[0]


def test_vol_target_scaling_up_stops_at_the_leverage_cap_and_the_adv_cap():
    book, pnl = _book(), _pnl()
    vol = pnl.sum(axis=1).iloc[-60:].std(ddof=1) * math.sqrt(252) / NAV
    rule = {"kind": "vol_target", "when": ["vol_of_vol"], "target_vol": 3 * vol, "max_scale": 4.0, "window": 60}
    # no gross cap: x3, all ADV caps far away
    out = apply_rules(book, ["vol_of_vol"], [rule], position_pnl=pnl, nav=NAV, unit_values=UNIT)
    assert out.positions.quantity.to_numpy() == pytest.approx(book.quantity.to_numpy() * 3, rel=1e-12)
    # the leverage cap: gross at most 1.5 x the book's
    out = apply_rules(book, ["vol_of_vol"], [{**rule, "max_gross_multiple": 1.5}], position_pnl=pnl, nav=NAV, unit_values=UNIT)
    assert out.positions.quantity.to_numpy() == pytest.approx(book.quantity.to_numpy() * 1.5, rel=1e-12)
    assert out.impact.bound.iloc[0] == "gross" and "gross cap" in out.log.detail.iloc[0]
    assert out.log.action.iloc[0].startswith("scaled the book by 1.5 (asked 3")
    # the ADV cap on one position, then the gross cap on what is left
    thin = book.assign(adv=[1e5, 12.0, 1e6, 1e6, 5e7])
    out = apply_rules(thin, ["vol_of_vol"], [{**rule, "max_gross_multiple": 2.0}], position_pnl=pnl, nav=NAV, unit_values=UNIT)
    q = book.quantity.to_numpy()
    f = np.array([3.0, 1.5, 3.0, 3.0, 3.0])  # T2 first cut to its ADV cap: 6 contracts
    gross = float(np.abs(q) @ UNIT)
    theta = gross / float(np.abs(q) * UNIT @ (f - 1))  # then every increase by one ratio, to 2 x the gross
    assert out.positions.quantity.to_numpy() == pytest.approx(q * (1 + theta * (f - 1)), rel=1e-13)
    assert out.impact.bound.iloc[0] == "adv, gross"
    assert out.impact.gross_after.iloc[0] == pytest.approx(2.0 * float(np.abs(book.quantity) @ UNIT), rel=1e-12)


def test_each_fired_rule_reports_its_risk_before_and_after_and_its_cost():
    book, pnl = _book(), _pnl()
    trades = []

    def cost(x):
        trades.append(np.array(x))
        return float(np.abs(x).sum()) * 1e-3

    rules = [_boost(sleeves=["trend"], factor=1.5),
             {"kind": "delever_cluster", "when": ["avg_corr"], "factor": 0.5, "min_corr": 0.99},
             _boost(sleeves=["value"], factor=2.0)]
    out = apply_rules(book, ["dispersion"], rules, position_pnl=pnl, nav=NAV, unit_values=UNIT, trade_cost=cost)
    assert list(out.impact.rule) == [0, 2]  # the delever rule did not fire
    s1 = np.array([1.5, 1.5, 1, 1, 1])
    s2 = s1 * [1, 1, 2, 2, 1]
    for row, before, after in ((0, np.ones(5), s1), (1, s1, s2)):
        imp = out.impact.iloc[row]
        for tag, s in (("before", before), ("after", after)):
            x = pnl.to_numpy() @ s
            var, cvar = var_cvar(x, 0.99)
            assert imp[f"vol_{tag}"] == pytest.approx(np.std(x, ddof=1) * math.sqrt(252) / NAV, rel=1e-12)
            assert imp[f"var_{tag}"] == pytest.approx(var / NAV, rel=1e-12)
            assert imp[f"cvar_{tag}"] == pytest.approx(cvar / NAV, rel=1e-12)
        assert imp["history_days"] == 250 and imp["confidence"] == 0.99
    q = book.quantity.to_numpy()
    assert trades[0] == pytest.approx(0.5 * q * UNIT * [1, 1, 0, 0, 0], rel=1e-15)
    assert out.impact.trade_cost.iloc[0] == pytest.approx(1e-3 * 0.5 * (10 * 1e5 + 4 * 1.3e5), rel=1e-12)
    assert trades[1] == pytest.approx(q * UNIT * [0, 0, 1, 1, 0], rel=1e-15)
    assert pd.isna(out.impact.premium.iloc[0]) and pd.isna(out.impact.carry_cost.iloc[0])
    # without a cost model the cost is unknown, not zero
    out = apply_rules(book, ["dispersion"], rules[:1], position_pnl=pnl, nav=NAV, unit_values=UNIT)
    assert pd.isna(out.impact.trade_cost.iloc[0])


def test_bad_rules_that_add_are_named():
    book = _book()
    cases = [
        (_boost(factor=1.5), r"rules\[0\], field 'asset_classes': name the positions to boost"),
        (_boost(sleeves=["trend"], factor=-1.0), r"rules\[0\], field 'factor'"),
        (_boost(sleeves=["momentum"], factor=1.5), r"rules\[0\], field 'sleeves': no position in sleeve 'momentum' "
                                                   r"\(the book's: trend, value, carry\)"),
        (_boost(asset_classes=["crypto"], factor=1.5), r"rules\[0\], field 'asset_classes': unknown asset class 'crypto'"),
        ({"kind": "reweight_liquid", "when": ["dispersion"], "asset_classes": ["fx"]},
         r"rules\[0\], field 'asset_classes': the book holds no 'fx' position"),
        ({"kind": "reweight_liquid", "when": ["dispersion"], "tilt": 0}, r"rules\[0\], field 'tilt'"),
    ]
    for rule, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            apply_rules(book, ["dispersion"], [rule], unit_values=UNIT)
    with pytest.raises(ConfigError, match=r"rules\[0\] \(boost\): the gross cap needs each position's unit value"):
        apply_rules(book, ["dispersion"], [_boost(sleeves=["trend"], factor=1.5)])


def test_a_boost_naming_no_sleeve_of_the_book_is_caught_before_the_run():
    # check_rules runs in validate and before any scenario; the typo used to surface only when the rule fired
    from stressgrid.monitoring import check_rules

    with pytest.raises(ConfigError, match=r"rules\[1\], field 'sleeves': no position in sleeve 'trendd' "
                                          r"\(the book's: trend, value, carry\)"):
        check_rules([_boost(sleeves=["trend"], factor=1.1), _boost(sleeves=["trendd"], factor=1.2)], None, "USD", _book())
    with pytest.raises(ConfigError, match=r"rules\[0\], field 'asset_classes': no position in asset class 'fx'"):
        check_rules([_boost(asset_classes=["fx"], factor=1.2)], None, "USD", _book())
    check_rules([_boost(sleeves=["value"], asset_classes=["equity"], factor=1.2)], None, "USD", _book())
