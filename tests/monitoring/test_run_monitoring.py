"""The batch-file section and the entry point the grid calls."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from stressgrid.core import ConfigError
from stressgrid.monitoring import MonitoringSettings, asset_returns, run_monitoring

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def test_the_documented_section_validates():
    text = DOCS.read_text()
    block = re.search(r"```yaml\n(monitoring:.*?)```", text, re.S).group(1)
    s = MonitoringSettings.model_validate(yaml.safe_load(block)["monitoring"])
    assert [f.key for f in s.forecasters] == ["sample", "ewma", "ledoit_wolf", "ewma97", "dcc"]
    assert s.var_backtest.alpha == [0.99, 0.975]
    assert [r.kind for r in s.rules] == ["delever_cluster", "tighten_adv_caps", "stressed_correlation", "vol_target",
                                         "boost", "reweight_liquid", "overlay"]
    assert s.signals.avg_corr.threshold == 0.6
    # the overlay example of the rules section
    from pydantic import TypeAdapter

    from stressgrid.monitoring import Rule

    block = re.search(r"```yaml\n(- kind: overlay.*?)```", text, re.S).group(1)
    overlay = TypeAdapter(Rule).validate_python(yaml.safe_load(block)[0])
    assert overlay.instrument == "put" and overlay.strike == 0.9 and overlay.budget == 0.002


def test_settings_errors_name_the_field():
    with pytest.raises(ValidationError, match="champion 'dcc' is not one of the forecasters"):
        MonitoringSettings.model_validate({"forecasters": ["sample", "ewma"], "champion": "dcc"})
    with pytest.raises(ValidationError, match="used twice"):
        MonitoringSettings.model_validate({"forecasters": ["sample", "sample"]})
    with pytest.raises(ValidationError, match="unknown forecaster"):
        MonitoringSettings.model_validate({"forecasters": ["sample", "garch"]})
    with pytest.raises(ValidationError, match="unknown signal"):
        MonitoringSettings.model_validate({"rules": [{"kind": "tighten_adv_caps", "when": ["vix"]}]})
    with pytest.raises(ConfigError, match=r"monitoring, field 'margin'"):
        run_monitoring({"margin": 2.0}, None)


def test_run_monitoring_on_the_bundled_history(history):
    settings = {
        "as_of": "2016-12-30",
        "factors": ["EQ.SPX", "FX.EURUSD", "CMD.GOLD", "IR.USD.10Y"],
        "forecasters": ["sample", "ewma", "ledoit_wolf"],
        "walk_forward": {"train_days": 250, "horizon_days": 20, "roll_days": 60, "start": "2014-01-01"},
        "rules": [{"kind": "delever_cluster", "when": ["avg_corr", "avg_corr_jump", "vol_of_vol"], "factor": 0.5},
                  {"kind": "vol_target", "when": ["iv_term", "avg_corr"], "mode": "all", "target_vol": 0.05}],
        "var_backtest": {"window": 250, "alpha": [0.99, 0.975], "n_sim": 2000},
    }
    r = asset_returns(history, ["EQ.SPX", "IR.USD.10Y"], end="2016-12-30")
    pnl = pd.DataFrame({"SPX": 1e6 * r["EQ.SPX"], "UST": 5e5 * r["IR.USD.10Y"]})
    book = pd.DataFrame({"id": ["SPX", "UST"], "type": ["equity", "bond"], "underlying": ["EQ.SPX", "IR.USD.10Y"],
                         "quantity": [100.0, 1e6]})
    out = run_monitoring(settings, history, book_pnl_history=pnl, positions=book, nav=1.5e6)
    assert set(out) == {"walk_forward", "champion_challenger", "rebalance_backtest", "signals", "signal_history",
                        "rules_fired", "rules_impact", "var_backtest", "var_series", "correlation_drift", "regime_view"}
    wf = out["walk_forward"]
    assert set(wf.forecaster) == {"sample", "ewma", "ledoit_wolf"}
    assert wf.date.min() >= pd.Timestamp("2014-01-01") and wf.end.max() <= pd.Timestamp("2016-12-30")
    cc = out["champion_challenger"]
    assert cc.forecaster.iloc[0] == "sample" and cc.next_champion.nunique() == 1
    assert len(out["rebalance_backtest"]) == 6
    assert list(out["var_backtest"].alpha) == [0.99, 0.975]
    vb = out["var_backtest"].set_index("alpha")
    series = out["var_series"]
    s99 = series[series.alpha == 0.99]
    assert vb.loc[0.99, "exceptions"] == int(s99.exception.sum())
    assert vb.loc[0.99, "days"] == int(s99["var"].notna().sum())
    assert s99.date.max() <= pd.Timestamp("2016-12-30")
    assert len(out["rules_fired"]) == 2 and out.positions is not None
    assert (out["signals"].as_of == pd.Timestamp("2016-12-30")).all()


def test_bad_factors_are_config_errors(history):
    with pytest.raises(ConfigError, match="VOL.SPX.ATM have no asset return"):
        run_monitoring({"factors": ["EQ.SPX", "VOL.SPX.ATM"]}, history)
