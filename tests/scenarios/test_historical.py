"""Crisis replays: exact moves of the bundled history, public facts, calibration and propagation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid import scenarios
from stressgrid.scenarios import CRISIS_LIBRARY


def test_replay_reproduces_history_exactly(spec, history, factors):
    s = spec(dict(kind="historical", name="c", events=["gfc_2008", "cny_2015"], fill=False))
    out = scenarios.generate(s, history, factors)
    for k, ev in enumerate(["gfc_2008", "cny_2015"]):
        e = CRISIS_LIBRARY[ev]
        for j, f in enumerate(factors):
            col = history.levels[f]
            a, b = col.loc[: e.start].dropna(), col.loc[: e.end].dropna()
            if a.empty or (e.start - a.index[-1]).days > 7 or (e.end - b.index[-1]).days > 7:
                assert not out.covered[k, j]
                continue
            want = np.log(b.iloc[-1] / a.iloc[-1]) if f.startswith(("EQ", "FX", "CMD")) else b.iloc[-1] - a.iloc[-1]
            assert out.shocks[k, j] == want  # bit for bit
            assert out.paths[k, -1, j] == want
            # each path day is the move from the start close to that day's close
            days = col.loc[a.index[-1]: e.end].ffill().iloc[1:]
            ref = np.log(days / a.iloc[-1]) if f.startswith(("EQ", "FX", "CMD")) else days - a.iloc[-1]
            assert np.array_equal(out.paths[k, : len(ref), j], ref.to_numpy())


def test_facts_agree_with_bundled_history(history):
    # where the history covers an event, the public S&P 500 closes of the facts file match it
    spx = history.levels["EQ.SPX"]
    checked = 0
    for ev in CRISIS_LIBRARY.values():
        if ev.facts is None or ev.facts.spx is None or ev.end > spx.last_valid_index():
            continue
        assert spx.loc[ev.start] == pytest.approx(ev.facts.spx[0], abs=0.005)
        assert spx.loc[ev.end] == pytest.approx(ev.facts.spx[1], abs=0.005)
        checked += 1
    assert checked >= 4


def test_data_windows_are_the_named_extremes(history):
    # the windows of events not in the facts file are extremes of the bundled history, as documented
    spx = history.levels["EQ.SPX"].dropna()
    for ev, lo, hi in [("ltcm_1998", "1998-07-01", "1998-10-31"), ("cny_2015", "2015-07-01", "2015-09-30"),
                       ("vol_spike_2018", "2018-01-01", "2018-03-31")]:
        w = spx.loc[lo:hi]
        peak = w.idxmax()
        assert CRISIS_LIBRARY[ev].start == peak
        assert CRISIS_LIBRARY[ev].end == w.loc[peak:].idxmin()
    y = history.levels["IR.USD.10Y"].dropna().loc["2013-04-15":"2013-09-30"]
    low = y.loc[:"2013-06-30"].idxmin()
    assert CRISIS_LIBRARY["taper_2013"].start == low
    assert CRISIS_LIBRARY["taper_2013"].end == y.loc[low:].idxmax()


def test_calibration_and_propagation(spec, history_2017, factors, market):
    # on the bundle's coverage before its extension (curve to 2017, VIX 2014-2018): calibration from facts
    s = spec(dict(kind="historical", name="c", events=["covid_2020", "tariff_2025", "gfc_2008"]))
    out = scenarios.generate(s, history_2017, factors, market=market)
    i = {n: k for k, n in enumerate(out.names)}
    j = {f: k for k, f in enumerate(factors)}
    vix0 = market.level("VOL.SPX.ATM")
    # COVID: the S&P 500 is replayed from data; the 10y (curve ends 2017) and the VIX come from the facts
    c = i["covid_2020"]
    assert not out.filled[c, j["EQ.SPX"]]
    assert out.shocks[c, j["IR.USD.10Y"]] == pytest.approx((0.76 - 1.56) / 100)
    assert out.shocks[c, j["VOL.SPX.ATM"]] == pytest.approx(0.8269 - vix0)
    assert out.filled[c, j["IR.USD.10Y"]] and out.covered[c, j["IR.USD.10Y"]]
    # the 2y is propagated, and flagged
    assert out.filled[c, j["IR.USD.2Y"]] and "IR.USD.2Y" in out.info.loc[c, "propagated"]
    # 2025: the S&P 500 from the facts (-12.14%), FX replayed from data
    t = i["tariff_2025"]
    assert out.shocks[t, j["EQ.SPX"]] == pytest.approx(np.log(4982.77 / 5670.97))
    assert not out.filled[t, j["FX.EURUSD"]] and out.covered[t, j["FX.EURUSD"]]
    assert out.filled[t, j["EQ.AAPL"]]
    # GFC: everything but the VIX replayed; the VIX goes to its closing high of 80.86
    g = i["gfc_2008"]
    assert out.shocks[g, j["VOL.SPX.ATM"]] == pytest.approx(0.8086 - vix0)
    assert out.filled[g].sum() == 1


def test_the_extended_bundle_replays_covid_rates_and_vix_from_data(spec, history, factors, market):
    """With the Treasury curve and VIX to 2024 in the bundle, covid_2020 moves the 10y and the VIX by
    their own data: the change between the closes on or before 2020-02-19 and 2020-03-23."""
    s = spec(dict(kind="historical", name="c", events=["covid_2020", "inflation_2022"]))
    out = scenarios.generate(s, history, factors, market=market)
    j = {f: k for k, f in enumerate(factors)}
    for row, (a, b) in enumerate((("2020-02-19", "2020-03-23"), ("2022-01-03", "2022-10-12"))):
        for f in ("IR.USD.10Y", "IR.USD.2Y", "VOL.SPX.ATM"):
            x = history.levels[f].dropna()
            assert out.shocks[row, j[f]] == pytest.approx(x.loc[:b].iloc[-1] - x.loc[:a].iloc[-1], abs=1e-15)
            assert not out.filled[row, j[f]] and out.covered[row, j[f]]
    # the VIX went from 14.38 to 61.59 over the covid window (Cboe closes; the facts' high is 82.69)
    assert out.shocks[0, j["VOL.SPX.ATM"]] == pytest.approx(0.6159 - 0.1438, abs=1e-4)


def test_propagation_is_the_gaussian_conditional_mean(spec, history, factors, market):
    # the propagated shocks equal conditional_stress on the propagation covariance given the known ones
    from stressgrid.scenarios._historical import propagation_model

    s = spec(dict(kind="historical", name="c", events=["covid_2020"]))
    out = scenarios.generate(s, history, factors, market=market)
    from stressgrid.scenarios._historical import PROPAGATION_NEIGHBOURS

    cov, has, _ = propagation_model(history, factors)
    known = np.flatnonzero(~out.filled[0] | np.isin(factors, ["IR.USD.10Y", "VOL.SPX.ATM"]))
    target = np.setdiff1d(np.arange(len(factors)), known)
    assert len(target) > 0
    sd = np.sqrt(np.diag(cov))
    for t in target:
        # each target is conditioned on its most correlated known factors
        corr = np.abs(cov[t, known]) / (sd[t] * sd[known])
        nb = known[np.argsort(-corr, kind="stable")[:PROPAGATION_NEIGHBOURS]]
        sub = np.concatenate([nb, [t]])
        res = scenarios.conditional_stress(cov[np.ix_(sub, sub)], np.arange(len(nb)), out.shocks[0, nb])
        assert out.shocks[0, t] == pytest.approx(res.mean[0], rel=1e-8, abs=1e-12)


def test_custom_event_overrides(spec, history, factors):
    s = spec(dict(kind="historical", name="c",
                  custom=[{"name": "mine", "start": "2016-06-22", "end": "2016-06-27",
                           "overrides": {"EQ.SPX": "-10%", "CR.CDX_IG": "+50bp"}}]))
    out = scenarios.generate(s, history, factors + ["CR.CDX_IG"])
    assert out.shocks[0, 0] == pytest.approx(np.log(0.9))
    assert out.shocks[0, -1] == pytest.approx(0.005)
    assert out.covered[0, -1] and out.filled[0, -1]
    # the path ramps linearly to the override
    H = out.paths.shape[1]
    assert np.allclose(out.paths[0, :, -1], 0.005 * np.arange(1, H + 1) / H)


def test_a_crisis_window_is_the_forward_filled_history_cut_to_the_window():
    """The window's levels equal pandas' forward fill of the whole history up to its end, cut from the last
    trading day on or before its start; a factor is usable at the start (and at the end) when its last
    observation then is at most MAX_STALE_DAYS old.  Factors with gaps, a late start, one that stops."""
    from stressgrid.scenarios._historical import MAX_STALE_DAYS, _window_levels

    rng = np.random.default_rng(11)
    days = pd.bdate_range("2019-01-01", periods=400)
    levels = pd.DataFrame(rng.lognormal(size=(len(days), 6)), index=days, columns=list("abcdef"))
    levels[levels > np.exp(1.2)] = np.nan  # gaps everywhere
    levels.loc[:"2019-09-30", "d"] = np.nan  # starts late
    levels.loc["2019-06-01":, "e"] = np.nan  # stops
    levels["f"] = np.nan  # never observed
    for k in range(40):
        start = days[rng.integers(0, len(days) - 40)] + pd.Timedelta(days=int(rng.integers(0, 3)))
        end = start + pd.Timedelta(days=int(rng.integers(1, 80)))
        window, ok_start, ok_end = _window_levels(levels, start, end)
        first = levels.loc[:start].index[-1]
        pd.testing.assert_frame_equal(window, levels.loc[:end].ffill().loc[first:end], check_freq=False)

        def usable(at):
            last = levels.loc[:at].apply(lambda s: s.last_valid_index())
            return np.array([d is not None and (at - d).days <= MAX_STALE_DAYS for d in last])

        assert (ok_start == usable(start)).all() and (ok_end == (usable(end) & usable(start))).all()
        assert not ok_start[5] and not ok_end[5]
    empty, none_start, none_end = _window_levels(levels, days[0] - pd.Timedelta(days=3), days[10])
    assert empty.empty and not none_start.any() and not none_end.any()
