"""Regime signals: a planted regime change fires them, calm data does not; references and edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from stressgrid.core import History
from stressgrid.monitoring import SIGNALS, SignalThresholds, average_correlation, evaluate_signals, signal_history
from monitoring_helpers import regime_history


@pytest.fixture(scope="module")
def regime():
    return regime_history()


def test_average_correlation_matches_pandas_rolling():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((120, 5)) @ (rng.standard_normal((5, 5)) * 0.5 + np.eye(5)))
    ours = average_correlation(x, 30)
    rc = x.rolling(30).corr()
    for t in (29, 64, 119):
        c = rc.loc[t].to_numpy()
        ref = (c.sum() - 5) / 20
        assert ours.iloc[t] == pytest.approx(ref, rel=1e-10)
    assert ours.iloc[:29].isna().all()


def test_every_signal_fires_in_the_crisis_and_none_in_the_calm(regime):
    history, stress_start = regime
    sh = signal_history(history)
    assert set(sh.signal) == set(SIGNALS)
    calm = sh[(sh.date >= history.levels.index[400]) & (sh.date < stress_start)]
    crisis = sh[(sh.date >= stress_start) & (sh.date < stress_start + pd.Timedelta(days=120))]
    fired_calm = calm.groupby("signal").fired.any()
    fired_crisis = crisis.groupby("signal").fired.any()
    assert not fired_calm.any(), fired_calm[fired_calm]
    assert fired_crisis.all(), fired_crisis[~fired_crisis]


def test_evaluate_on_a_date_reads_the_series_up_to_it(regime):
    history, stress_start = regime
    d = history.levels.index[history.levels.index.get_loc(stress_start) + 40]
    ev = evaluate_signals(history, as_of=d).set_index("signal")
    assert ev.loc["avg_corr", "fired"] and ev.loc["credit_spread", "fired"] and ev.loc["iv_term", "fired"]
    assert (ev["as_of"] == d).all() and (ev["date"] == d).all()
    assert ev.loc["iv_term", "detail"].startswith("term slope VOL.SPX.TERM")
    sh = signal_history(history, end=d)
    last = sh[sh.date == d].set_index("signal")
    assert np.allclose(last.value.reindex(ev.index), ev.value)
    calm = evaluate_signals(history, as_of=history.levels.index[600])
    assert not calm.fired.any()


def test_a_planted_future_spike_does_not_move_earlier_signals(regime):
    history, _ = regime
    lv = history.levels.copy()
    d = lv.index[500]
    lv.loc[lv.index[501]:, "EQ.S3"] *= 3.0
    lv.loc[lv.index[501]:, "CR.CDX_IG"] += 0.05
    spiked = History(lv, "spiked")
    a = evaluate_signals(history, as_of=d)
    b = evaluate_signals(spiked, as_of=d)
    assert np.array_equal(a.value.to_numpy(), b.value.to_numpy(), equal_nan=True)
    ha = signal_history(history, end=lv.index[-1])
    hb = signal_history(spiked, end=lv.index[-1])
    m = ha.merge(hb, on=["date", "signal"])
    early = m[m.date <= d]
    assert np.array_equal(early.value_x.to_numpy(), early.value_y.to_numpy())
    assert not np.allclose(m[m.date > d].value_x, m[m.date > d].value_y)


def test_proxy_and_missing_data_are_said_not_zeroed(regime):
    history, stress_start = regime
    lv = history.levels.drop(columns=["VOL.SPX.TERM", "CR.CDX_IG"])
    h = History(lv, "no term, no credit")
    d = lv.index[lv.index.get_loc(stress_start) + 10]
    ev = evaluate_signals(h, as_of=d).set_index("signal")
    assert ev.loc["iv_term", "detail"].startswith("proxy")
    assert ev.loc["iv_term", "threshold"] == SignalThresholds().iv_term.proxy_threshold
    assert np.isnan(ev.loc["credit_spread", "value"]) and not ev.loc["credit_spread", "fired"]
    assert "no fresh spread factor" in ev.loc["credit_spread", "detail"]
    # stale: the as-of date a month after the last observation
    late = evaluate_signals(history, as_of=lv.index[-1] + pd.Timedelta(days=30))
    assert late.value.isna().all() and not late.fired.any()
    assert late.detail.str.contains("stale|fresh").all()


def test_thresholds_and_disabled_signals(regime):
    history, stress_start = regime
    d = history.levels.index[history.levels.index.get_loc(stress_start) + 40]
    t = SignalThresholds.model_validate({"avg_corr": {"threshold": 0.99}, "credit_spread": {"enabled": False}})
    ev = evaluate_signals(history, t, as_of=d).set_index("signal")
    assert not ev.loc["avg_corr", "fired"] and ev.loc["avg_corr", "threshold"] == 0.99
    assert "credit_spread" not in ev.index
    with pytest.raises(ValidationError):
        SignalThresholds.model_validate({"avg_corr": {"threshhold": 0.5}})
    with pytest.raises(ValidationError):
        SignalThresholds.model_validate({"avg_corr": {"window": 2}})


def test_bundled_history_crises(history_2017):
    history = history_2017  # no VIX before 2014 here: the iv_term signal must say so, not zero it
    # a sanity check on real data: 2008 and 2020 light up the correlation signals, mid-2005 does not
    gfc = evaluate_signals(history, as_of="2008-10-15").set_index("signal")
    assert gfc.loc["avg_corr", "fired"] and gfc.loc["dispersion", "fired"]
    calm = evaluate_signals(history, as_of="2005-06-29").set_index("signal")
    assert not calm.loc[["avg_corr", "avg_corr_jump", "dispersion", "vol_of_vol", "equity_bond"], "fired"].any()
    # the bundled history has no credit spreads and no VIX before 2014: said, not zeroed
    assert np.isnan(gfc.loc["credit_spread", "value"]) and np.isnan(gfc.loc["iv_term", "value"])
