"""Bad definitions are rejected with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from stressgrid import scenarios
from stressgrid.core import ConfigError


def _msg(spec, d) -> str:
    with pytest.raises(ValidationError) as e:
        spec(d)
    err = e.value.errors()[0]
    return ".".join(str(x) for x in err["loc"]) + ": " + err["msg"]


def test_correlation_target_outside_range(spec):
    m = _msg(spec, dict(kind="bootstrap", amplify={"correlation": {"targets": [{"a": "equity", "b": "rates", "value": 1.3}]}}))
    assert m.endswith("targets.0.value: Value error, correlation target must be in [-1, 1]")


def test_negative_vol_multiplier(spec):
    m = _msg(spec, dict(kind="montecarlo", amplify={"vol": {"multiplier": -1}}))
    assert m.endswith("vol.multiplier: Value error, vol multiplier must be positive")
    m = _msg(spec, dict(kind="montecarlo", amplify={"vol": {"multiplier": {"equity": -2}}}))
    assert "vol multiplier for 'equity' must be positive, got -2" in m


@pytest.mark.parametrize("d,needle", [
    (dict(kind="montecarlo", dof=1.5), "degrees of freedom must be above 2"),
    (dict(kind="montecarlo", model="gaussian", correlation="dcc"), "correlation 'dcc' needs model garch_t"),
    (dict(kind="bootstrap", block_length=0.5), "greater than or equal to 1"),
    (dict(kind="predictive", stresses=[{"name": "x", "shocks": {"EQ.SPX": "-30 percent"}}]), "is not a number, 'N%' or 'Nbp'"),
    (dict(kind="predictive", stresses=[{"name": "x", "shocks": {"EQ.SPX": "-120%"}}]), "a price stays positive"),
    (dict(kind="historical", events=["crash_1929"]), "unknown event 'crash_1929'"),
    (dict(kind="bootstrap", amplify={"liquidity": {"spread_mult": {"equities": 3}}}), "unknown asset class 'equities'"),
    (dict(kind="bootstrap", amplify={}), "give at least one of"),
    (dict(kind="bootstrap", window={"start": "2016-01-01", "end": "2015-01-01"}), "must be after start"),
    (dict(kind="montecarlo", amplify={"vol": {"iv_shift": {"EQ.SPX": 0.1}}}), "is not an implied-vol factor"),
])
def test_bad_specs(spec, d, needle):
    assert needle in _msg(spec, d)


def test_unknown_factor(spec, history, factors):
    s = spec(dict(kind="predictive", name="p", stresses=[{"name": "x", "shocks": {"EQ.NOPE": "-10%"}}]))
    with pytest.raises(ConfigError, match=r"family 'p', field 'stresses': unknown factor 'EQ.NOPE'"):
        scenarios.generate(s, history, factors)
    s = spec(dict(kind="bootstrap", name="b", amplify={"correlation": {"targets": [{"a": "EQ.NOPE", "b": "rates", "value": 0.5}]}}))
    with pytest.raises(ConfigError, match=r"field 'amplify.correlation.targets\[0\].a': 'EQ.NOPE' matches no factor"):
        scenarios.generate(s, history, factors, 0)


def test_window_outside_history(spec, history, factors):
    s = spec(dict(kind="montecarlo", name="m", window={"start": "1980-01-01", "end": "1985-01-01"}))
    with pytest.raises(ConfigError, match=r"family 'm', field 'window': .*outside the history 1990-01-01"):
        scenarios.generate(s, history, factors, 0)
    s = spec(dict(kind="historical", name="h", custom=[{"name": "c87", "start": "1987-10-14", "end": "1987-10-19"}]))
    with pytest.raises(ConfigError, match=r"event 'c87': window 1987-10-14..1987-10-19 is outside the history"):
        scenarios.generate(s, history, factors)


def test_block_longer_than_window(spec, history, factors):
    s = spec(dict(kind="bootstrap", name="b", block_length=400, window={"end": "2017-03-29", "lookback_days": 250}))
    with pytest.raises(ConfigError, match=r"family 'b', field 'block_length': expected block length 400 days is longer than the window's \d+ daily moves"):
        scenarios.generate(s, history, factors, 0)


def test_batch_file_message(tmp_path):
    # through the batch loader, the user sees the field path and the value
    grid_batch = pytest.importorskip("stressgrid.grid._batch")
    p = tmp_path / "b.yaml"
    p.write_text("name: x\nbook: b.csv\nscenarios:\n  - kind: historical\n    events: [gfc_2008]\n"
                 "  - kind: montecarlo\n    amplify:\n      vol:\n        multiplier: -1\n")
    with pytest.raises(ConfigError, match=r"field 'scenarios\[1\]\.amplify\.vol\.multiplier': vol multiplier must be positive \(got -1\)$"):
        grid_batch.load_batch(p)


def test_batch_file_correlation_message(tmp_path):
    grid_batch = pytest.importorskip("stressgrid.grid._batch")
    p = tmp_path / "b.yaml"
    p.write_text("name: x\nbook: b.csv\nscenarios:\n  - kind: bootstrap\n    amplify:\n      correlation:\n"
                 "        targets: [{a: equity, b: rates, value: 1.3}]\n")
    with pytest.raises(ConfigError, match=r"field 'scenarios\[0\]\.amplify\.correlation\.targets\[0\]\.value': "
                                          r"correlation target must be in \[-1, 1\] \(got 1.3\)$"):
        grid_batch.load_batch(p)


def test_selector_on_factor_without_history_is_ignored(spec, history, factors):
    # CR.CDX_IG is a book factor without history: a credit block cannot be stressed but is no error
    s = spec(dict(kind="bootstrap", name="b", n_scenarios=10, window={"end": "2017-03-29"},
                  amplify={"correlation": {"targets": [{"a": "equity", "b": "credit", "scale": 1.3}]}}))
    out = scenarios.generate(s, history, factors + ["CR.CDX_IG"], 0)
    assert not out.covered[:, -1].any()
