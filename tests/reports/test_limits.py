"""Limits: the limits file, evaluation on known tables (breach, no breach, headroom), and a real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from stressgrid import reports
from stressgrid.core import ConfigError, DataError

NAV = 100e6


def _write(run: Path, **tables: pd.DataFrame) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").write_text(json.dumps({"batch": {"name": "t"}, "base_currency": "USD"}))
    for name, df in tables.items():
        df.to_parquet(run / f"{name}.parquet", index=False)
    return run


def _risk_metrics() -> pd.DataFrame:
    rows = []
    for fam, (v95, c95, v99, c99, worst, ws) in {"crisis": (5e6, 6e6, 7e6, 9e6, 12e6, "gfc"),
                                                 "hist": (3e6, 3.5e6, 4e6, 5e6, 6e6, "h1")}.items():
        rows += [dict(family=fam, metric="var", confidence=0.95, value=v95, scenario=None),
                 dict(family=fam, metric="cvar", confidence=0.95, value=c95, scenario=None),
                 dict(family=fam, metric="var", confidence=0.99, value=v99, scenario=None),
                 dict(family=fam, metric="cvar", confidence=0.99, value=c99, scenario=None),
                 dict(family=fam, metric="worst", confidence=np.nan, value=worst, scenario=ws),
                 dict(family=fam, metric="scenarios", confidence=np.nan, value=2.0, scenario=None)]
    return pd.DataFrame(rows)


@pytest.fixture
def known(tmp_path) -> Path:
    """A run directory with hand-made tables whose limit values are known."""
    bd = pd.DataFrame([
        # crisis: gfc is the worst scenario of the book (-12m), s2 loses 5m
        ("gfc", "crisis", "sleeve", "trend", -8e6), ("gfc", "crisis", "sleeve", "carry", -4e6), ("gfc", "crisis", "sleeve", "value", 0.0),
        ("s2", "crisis", "sleeve", "trend", -1e6), ("s2", "crisis", "sleeve", "carry", -5e6), ("s2", "crisis", "sleeve", "value", 1e6),
        ("gfc", "crisis", "asset_class", "equity", -12e6), ("s2", "crisis", "asset_class", "equity", -5e6),
        ("h1", "hist", "sleeve", "trend", -2e6), ("h1", "hist", "sleeve", "carry", -3e6), ("h1", "hist", "sleeve", "value", -1e6),
        ("h2", "hist", "sleeve", "trend", 1e6), ("h2", "hist", "sleeve", "carry", 1e6), ("h2", "hist", "sleeve", "value", 1e6),
        ("h1", "hist", "asset_class", "equity", -6e6), ("h2", "hist", "asset_class", "equity", 3e6),
    ], columns=["scenario", "family", "level", "group_name", "pnl"])
    ct = pd.DataFrame([
        ("crisis", 0.99, "sleeve", "trend", 5e6), ("crisis", 0.99, "sleeve", "carry", 3e6), ("crisis", 0.99, "sleeve", "value", 1e6),
        ("hist", 0.99, "sleeve", "trend", 2e6), ("hist", 0.99, "sleeve", "carry", 4e6), ("hist", 0.99, "sleeve", "value", -1e6),
    ], columns=["family", "confidence", "level", "group_name", "cvar_contribution"])
    cap = pd.DataFrame([
        (m, scope, "book", "book", d, bps) for scope, rows in {"base": [(0.5, 2, 5.0), (1.0, 3, 7.0), (2.0, 5, 10.0), (4.0, 9, 14.0)],
                                                                "stress": [(0.5, 3, 9.0), (1.0, 6, 12.0), (2.0, 11, 17.0), (4.0, 21, 24.0)]}.items()
        for m, d, bps in rows
    ], columns=["aum_multiple", "scope", "level", "group_name", "days_to_liquidate", "cost_bps"])
    cap = pd.concat([cap, cap.assign(level="sleeve", group_name="trend", days_to_liquidate=cap["days_to_liquidate"] - 1)], ignore_index=True)
    cap["la_cvar"], cap["la_drawdown"] = 1e7, 2e7
    la = pd.DataFrame([("crisis", 0.99, 7e6, 9e6, 8e6, 10.5e6), ("hist", 0.99, 4e6, 5e6, 4.2e6, 5.4e6)],
                      columns=["family", "alpha", "var", "cvar", "la_var", "la_cvar"])
    dd = pd.DataFrame([("crisis", "gfc", 13e6, 15e6, 2e6), ("crisis", "s2", 6e6, 6.5e6, 0.5e6), ("hist", "h1", 6e6, 6.2e6, 0.2e6)],
                      columns=["family", "scenario", "drawdown", "la_drawdown", "unwind_cost"])
    lq = pd.DataFrame([
        ("base", "position", "A", "equity", "trend", 1e7, 2, 1000.0), ("base", "position", "B", "equity", "carry", 2e7, 4, 3000.0),
        ("stress", "position", "A", "equity", "trend", 1e7, 5, 4000.0), ("stress", "position", "B", "equity", "carry", 2e7, 9, 9000.0),
    ], columns=["scope", "level", "group_name", "asset_class", "sleeve", "value", "days", "cost"])
    lq["cost_bps"] = 1e4 * lq["cost"] / lq["value"]
    return _write(tmp_path / "known", risk_metrics=_risk_metrics(), breakdown=bd, contributions=ct, capacity=cap,
                  la_risk=la, la_drawdown=dd, liquidation=lq)


def _eval(run, *limits, nav=NAV):
    return reports.evaluate_limits(run, reports.parse_limits({"nav": nav, "limits": list(limits)}))


def test_book_cvar_breach_and_headroom_in_fractions_of_nav(known):
    t = _eval(known, {"metric": "cvar", "confidence": 0.99, "max": "8%"})
    assert list(t.columns) == reports.BREACH_COLUMNS
    crisis, hist = t.set_index("family").loc["crisis"], t.set_index("family").loc["hist"]
    # CVaR99 9m and 5m of a 100m NAV against 8%
    assert crisis["value"] == pytest.approx(0.09) and crisis["breached"] and crisis["headroom"] == pytest.approx(-0.01)
    assert hist["value"] == pytest.approx(0.05) and not hist["breached"] and hist["headroom"] == pytest.approx(0.03)
    assert crisis["value_currency"] == 9e6 and crisis["threshold"] == pytest.approx(0.08) and crisis["units"] == "nav"
    assert crisis["limit_name"] == "cvar99 book <= 8% NAV" and crisis["group_name"] == "book"


def test_limit_at_exactly_the_threshold_is_not_breached(known):
    t = _eval(known, {"metric": "var", "confidence": 0.99, "max": 7e6, "units": "currency", "family": "crisis"})
    assert len(t) == 1 and t["value"].iloc[0] == 7e6 and not t["breached"].iloc[0] and t["headroom"].iloc[0] == 0.0


def test_any_sleeve_stressed_loss_is_its_loss_in_the_books_worst_scenario(known):
    t = _eval(known, {"metric": "stressed_loss", "scope": "sleeve:*", "family": "crisis", "max": 0.03})
    got = t.set_index("group_name")
    # in gfc (the crisis family's worst): trend -8m, carry -4m, value 0
    assert got.loc["trend", "value"] == pytest.approx(0.08) and got.loc["trend", "breached"]
    assert got.loc["carry", "value"] == pytest.approx(0.04) and got.loc["carry", "breached"]
    assert got.loc["value", "value"] == pytest.approx(0.0) and not got.loc["value", "breached"]
    assert set(t["family"]) == {"crisis"}


def test_worst_loss_of_a_group_is_its_own_largest_loss(known):
    t = _eval(known, {"metric": "worst_loss", "scope": "sleeve:carry", "max": 0.045})
    got = t.set_index("family")["value"]
    assert got["crisis"] == pytest.approx(0.05)  # s2, not the book's worst scenario
    assert got["hist"] == pytest.approx(0.03)
    assert t.set_index("family")["breached"].to_dict() == {"crisis": True, "hist": False}
    book = _eval(known, {"metric": "worst_loss", "max": 0.1})
    assert book.set_index("family")["value"].to_dict() == pytest.approx({"crisis": 0.12, "hist": 0.06})


def test_group_cvar_is_its_euler_contribution(known):
    t = _eval(known, {"metric": "cvar", "confidence": 0.99, "scope": "sleeve:carry", "max": "3.5%"})
    assert t.set_index("family")["value"].to_dict() == pytest.approx({"crisis": 0.03, "hist": 0.04})
    assert t.set_index("family")["breached"].to_dict() == {"crisis": False, "hist": True}


def test_liquidity_limits_from_capacity_at_the_current_size(known):
    t = _eval(known, {"metric": "days_to_liquidate", "max": 5})
    got = t.set_index("family")
    assert got.loc["base", "value"] == 3 and not got.loc["base", "breached"] and got.loc["base", "headroom"] == 2
    assert got.loc["stress", "value"] == 6 and got.loc["stress", "breached"] and got.loc["stress", "headroom"] == -1
    assert t["units"].unique().tolist() == ["days"] and t["value_currency"].isna().all()
    s = _eval(known, {"metric": "days_to_liquidate", "scope": "sleeve:*", "family": "stress", "max": 5})
    assert s[["group_name", "value"]].values.tolist() == [["trend", 5.0]] and not s["breached"].iloc[0]
    bps = _eval(known, {"metric": "cost_bps", "max": "10bp"})
    assert bps.set_index("family")["value"].to_dict() == {"base": 7.0, "stress": 12.0}
    assert bps["units"].unique().tolist() == ["bps"]


def test_liquidity_limits_of_positions_from_the_liquidation_table(known):
    t = _eval(known, {"metric": "days_to_liquidate", "scope": "position:*", "family": "stress", "max": 6})
    assert t.set_index("group_name")["value"].to_dict() == {"A": 5.0, "B": 9.0}
    assert t.set_index("group_name")["breached"].to_dict() == {"A": False, "B": True}
    c = _eval(known, {"metric": "liquidation_cost", "scope": "position:B", "max": 5000, "units": "currency"})
    assert c.set_index("family")["value"].to_dict() == {"base": 3000.0, "stress": 9000.0}
    bps = _eval(known, {"metric": "cost_bps", "scope": "position:A", "family": "base", "max": 1})
    assert bps["value"].iloc[0] == pytest.approx(1.0) and not bps["breached"].iloc[0]  # 1000 / 1e7 = 1bp


def test_book_days_from_liquidation_when_there_is_no_capacity_table(known):
    (known / "capacity.parquet").unlink()
    t = _eval(known, {"metric": "days_to_liquidate", "max": 5})
    # no book rows: the slowest position of each regime
    assert t.set_index("family")["value"].to_dict() == {"base": 4.0, "stress": 9.0}


def test_liquidity_adjusted_limits(known):
    t = _eval(known, {"metric": "la_cvar", "confidence": 0.99, "max": "10%"},
              {"metric": "la_drawdown", "family": "crisis", "max": 0.14}, {"metric": "drawdown", "max": 0.14})
    got = {(r.metric, r.family): (r.value, r.breached) for r in t.itertuples()}
    assert got[("la_cvar", "crisis")] == (pytest.approx(0.105), True)
    assert got[("la_cvar", "hist")] == (pytest.approx(0.054), False)
    assert got[("la_drawdown", "crisis")] == (pytest.approx(0.15), True)  # the largest of the family's scenarios
    assert got[("drawdown", "crisis")] == (pytest.approx(0.13), False)


def test_nav_from_the_argument_wins_and_currency_units_need_none(known):
    lim = reports.parse_limits({"limits": [{"metric": "cvar", "confidence": 0.99, "max": 0.08}]})
    t = reports.evaluate_limits(known, lim, nav=200e6)
    assert t.set_index("family")["value"]["crisis"] == pytest.approx(0.045)
    with pytest.raises(ConfigError, match="nav needs the book's NAV"):
        reports.evaluate_limits(known, lim)
    cur = reports.parse_limits({"limits": [{"metric": "cvar", "confidence": 0.99, "max": 8e6, "units": "currency"}]})
    assert reports.evaluate_limits(known, cur).set_index("family")["breached"].to_dict() == {"crisis": True, "hist": False}


@pytest.mark.parametrize("limit, message", [
    ({"metric": "cvar", "confidence": 0.99, "family": "gfc", "max": 0.1}, "field 'family': no scenario family 'gfc' in the run"),
    ({"metric": "cvar", "confidence": 0.99, "scope": "sleeve:macro", "max": 0.1}, "field 'scope': no sleeve 'macro' in the run"),
    ({"metric": "cvar", "confidence": 0.975, "max": 0.1}, "field 'confidence': the run has no level 0.975"),
])
def test_a_limit_the_run_cannot_match_is_a_config_error(known, limit, message):
    with pytest.raises(ConfigError, match=message):
        _eval(known, limit)


def test_a_metric_whose_table_is_absent_is_a_data_error(known):
    (known / "la_risk.parquet").unlink()
    with pytest.raises(DataError, match="needs la_risk.parquet, which run directory .* does not have"):
        _eval(known, {"metric": "la_var", "confidence": 0.99, "max": 0.1})


@pytest.mark.parametrize("entry, message", [
    ({"metric": "cvar", "max": 0.08}, "metric cvar needs a confidence level"),
    ({"metric": "worst_loss", "confidence": 0.99, "max": 0.08}, "metric worst_loss takes no confidence level"),
    ({"metric": "var", "confidence": 0.99, "scope": "sleeve:trend", "max": 0.08}, "metric var is given for scope book only"),
    ({"metric": "days_to_liquidate", "max": "5%"}, "max: metric days_to_liquidate is in units days, not nav \\(got '5%'\\)"),
    ({"metric": "cvar", "confidence": 0.99, "max": "5%", "units": "currency"}, "a percentage is a share of NAV, but units is 'currency'"),
    ({"metric": "cvar", "confidence": 99, "max": 0.08}, "confidence must be a probability in \\(0, 1\\)"),
    ({"metric": "cvar", "confidence": 0.99, "max": "eight"}, "max: expected a number"),
    ({"metric": "cvar", "confidence": 0.99, "scope": "desk:a", "max": 0.08}, "scope must be book, asset_class:NAME"),
    ({"metric": "sharpe", "max": 1}, "field 'limits\\[0\\].metric'"),
    ({"metric": "cvar", "confidence": 0.99, "max": 0.08, "maximum": 1}, "field 'limits\\[0\\].maximum': unknown key"),
    ({"metric": "cvar", "confidence": 0.99}, "field 'limits\\[0\\].max': missing"),
    ({"metric": "days_to_liquidate", "max": 5, "units": "nav"}, "metric days_to_liquidate is in units days"),
    # read as a fraction of NAV, a loss limit of 500,000 could never be breached
    ({"metric": "var", "confidence": 0.99, "max": 500000}, "max: a bare number is a fraction of NAV for metric var, and "
     r"500000 would be 50,000,000% of NAV; give a percentage \(8%\), a fraction \(0.08\), an amount \(2m\) or units: "
     r"currency \(got 500000\)"),
    ({"metric": "cvar", "confidence": 0.99, "max": "2m", "units": "nav"}, "an amount is in the base currency, but units is 'nav'"),
    ({"metric": "days_to_liquidate", "max": "2m"}, "metric days_to_liquidate is in units days, not currency"),
])
def test_bad_limits_name_the_field_and_value(entry, message):
    with pytest.raises(ConfigError, match=message):
        reports.parse_limits({"nav": NAV, "limits": [entry]}, "limits file L")


def test_limits_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="limits file .*: not found"):
        reports.load_limits(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nav: 1e8\nlimits:\n  - {metric: cvar, max: [\n")
    with pytest.raises(ConfigError, match="line .*malformed YAML"):
        reports.load_limits(bad)
    neg = tmp_path / "neg.yaml"
    neg.write_text("nav: -5\nlimits: [{metric: worst_loss, max: 1%}]\n")
    with pytest.raises(ConfigError, match="field 'nav': .* \\(got -5\\)"):
        reports.load_limits(neg)
    dup = tmp_path / "dup.yaml"
    dup.write_text("limits: [{metric: worst_loss, max: 1%}, {metric: worst_loss, max: 1%}]\n")
    with pytest.raises(ConfigError, match="two limits are named"):
        reports.load_limits(dup)


def test_limits_file_round_trip_and_breaches_table(known, tmp_path):
    f = tmp_path / "limits.yaml"
    f.write_text("""
nav: 100_000_000
limits:
  - {metric: cvar, confidence: 0.99, scope: book, max: 8%}
  - {name: sleeve stress, metric: stressed_loss, scope: "sleeve:*", family: crisis, max: 3%}
  - {metric: days_to_liquidate, scope: book, max: 5}
""")
    lim = reports.load_limits(f)
    assert lim.nav == 1e8 and [x.name for x in lim.limits] == ["cvar99 book <= 8% NAV", "sleeve stress", "days_to_liquidate book <= 5 days"]
    t = reports.evaluate_limits(known, lim)
    assert len(t) == 2 + 3 + 2 and int(t["breached"].sum()) == 1 + 2 + 1
    path = reports.write_breaches(t, known)
    assert reports.check_table_schema("breaches", pq.read_schema(path)) == []
    back = pd.read_parquet(path)
    assert back["breached"].tolist() == t["breached"].tolist()
    np.testing.assert_allclose(back["headroom"], t["threshold"] - t["value"])


def test_on_a_real_run_cvar_matches_rockafellar_uryasev_from_the_scenarios(linear_run):
    """The CVaR99 limit value of the real run, against CVaR recomputed from scenarios.parquet with numpy:
    VaR the lower 0.99-quantile of the loss (``inverted_cdf``), CVaR = VaR + E[(L - VaR)+] / (1 - a)
    (Rockafellar and Uryasev 2002, eq. 3.13); the families' scenarios have equal weights."""
    sc = pd.read_parquet(linear_run / "scenarios.parquet")
    t = _eval(linear_run, {"metric": "cvar", "confidence": 0.99, "max": "15%"}, {"metric": "var", "confidence": 0.95, "max": "5%"},
              nav=500e6)
    for fam, g in sc.groupby("family"):
        assert np.allclose(g["weight"], 1 / len(g))
        loss = -g["pnl"].to_numpy()
        for metric, a in (("cvar", 0.99), ("var", 0.95)):
            var = np.quantile(loss, a, method="inverted_cdf")
            ref = var if metric == "var" else var + np.mean(np.maximum(loss - var, 0.0)) / (1 - a)
            row = t[(t.family == fam) & (t.metric == metric)].iloc[0]
            assert row["value_currency"] == pytest.approx(ref, rel=1e-9)
            assert row["value"] == pytest.approx(ref / 500e6, rel=1e-9)
            assert row["breached"] == (ref / 500e6 > row["threshold"])


def test_correlation_drift_limit_reads_the_champions_latest_rolling_error(known):
    drift = pd.DataFrame({"date": pd.to_datetime(["2016-01-29", "2016-02-29", "2016-03-31"] * 2),
                          "forecaster": ["sample"] * 3 + ["ewma"] * 3, "role": ["champion"] * 3 + ["challenger"] * 3,
                          "error": [0.2, 0.3, 0.4, 0.1, 0.1, 0.1], "rolling_error": [np.nan, 0.25, 0.35, np.nan, 0.1, 0.1],
                          "window_steps": 2})
    _write(known, correlation_drift=drift)
    t = _eval(known, {"metric": "correlation_drift", "max": 0.3})
    assert len(t) == 1 and t.group_name.iloc[0] == "sample" and t.units.iloc[0] == "correlation"
    assert t.value.iloc[0] == pytest.approx(0.35) and t.breached.iloc[0] and t.headroom.iloc[0] == pytest.approx(-0.05)
    assert t.limit_name.iloc[0] == "correlation_drift book <= 0.3"
    assert not _eval(known, {"metric": "correlation_drift", "max": 0.35}).breached.iloc[0]
    with pytest.raises(ConfigError, match="correlation_drift is not per scenario family"):
        _eval(known, {"metric": "correlation_drift", "max": 0.3, "family": "crisis"})
    (known / "correlation_drift.parquet").unlink()
    with pytest.raises(DataError, match="needs correlation_drift.parquet"):
        _eval(known, {"metric": "correlation_drift", "max": 0.3})


@pytest.mark.parametrize("entry, units, value", [
    ({"metric": "var", "confidence": 0.99, "max": "2m"}, "currency", 2e6),
    ({"metric": "worst_loss", "max": "800k"}, "currency", 8e5),
    ({"metric": "stressed_loss", "max": "1.5bn"}, "currency", 1.5e9),
    ({"metric": "var", "confidence": 0.99, "max": 500000, "units": "currency"}, "currency", 5e5),
    ({"metric": "drawdown", "max": 1.2, "units": "nav"}, "nav", 1.2),   # over 100% of NAV when said so
    ({"metric": "days_to_liquidate", "max": 5}, "days", 5.0),
])
def test_amounts_and_explicit_units_are_read_as_written(entry, units, value):
    [lim] = reports.parse_limits({"nav": NAV, "limits": [entry]}, "limits file L").limits
    assert (lim.units, lim.max) == (units, value)
