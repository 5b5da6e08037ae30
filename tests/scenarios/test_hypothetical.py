"""Hypothetical stress: the spec's validation, the resolution of patterns and builders, curve shapes
that depend on the tenor only, and propagation against the conditional mean computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from stressgrid import scenarios
from stressgrid.core import ConfigError, History
from stressgrid.core.curves import curve_shock
from stressgrid.scenarios import conditional_stress

USD = [f"IR.USD.{t}" for t in ("1M", "3M", "6M", "1Y", "2Y", "3Y", "5Y", "7Y", "10Y", "20Y", "30Y")]
YEARS = np.array([1 / 12, 0.25, 0.5, 1, 2, 3, 5, 7, 10, 20, 30])


def _hyp(spec, **kw):
    return spec(dict(kind="hypothetical", name="h", **kw))


def _one(spec, history, factors, market=None, **kw):
    """The shocks ``{factor: shock}`` of a one-scenario family."""
    s = scenarios.generate(_hyp(spec, **kw), history, factors, market=market)
    assert len(s) == 1
    return dict(zip(s.factors, s.shocks[0]))


# --- the spec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    (dict(), "give shocks, curves, surfaces or spreads"),
    (dict(shocks={"EQ.SPX": "-10%"}, stresses=[{"name": "a", "shocks": {"EQ.SPX": "-5%"}}]), "not both"),
    (dict(stresses=[{"name": "a", "shocks": {"EQ.SPX": "-5%"}}, {"name": "a", "shocks": {"EQ.SPX": "-6%"}}]),
     "'a' is used twice"),
    (dict(stresses=[{"name": "a"}]), "give at least one of shocks"),
    (dict(shocks={"EQX.SPX": "-10%"}), "unknown prefix"),
    (dict(shocks={"EQ.SPX": "-10 percent"}), "is not a number, 'N%' or 'Nbp'"),
    (dict(shocks={"EQ.*": "ten"}), "is not a number"),
    (dict(curves=[{"currency": "USD", "kind": "twst", "size": "+10bp"}]), "parallel"),
    (dict(curves=[{"currency": "usd", "kind": "parallel", "size": "+10bp"}]), "three-letter"),
    (dict(curves=[{"currency": "USD", "kind": "parallel", "size": "+10bq"}]), "is not a number"),
    (dict(curves=[{"currency": "USD", "kind": "parallel", "size": "x2"}]), "not a multiplier"),
    (dict(curves=[{"currency": "USD", "kind": "parallel", "size": 0.001, "pivot": "5Y"}]), "parallel takes no 'pivot'"),
    (dict(curves=[{"currency": "USD", "kind": "key_rate", "size": 0.001}]), "key_rate needs key_tenor"),
    (dict(curves=[{"currency": "USD", "kind": "twist", "size": 0.001, "key_tenor": "5Y"}]), "takes no 'key_tenor'"),
    (dict(curves=[{"currency": "USD", "kind": "twist", "size": 0.001, "short": "10Y", "long": "2Y"}]),
     "must be longer than short"),
    (dict(curves=[{"currency": "USD", "kind": "twist", "size": 0.001, "short": "2X"}]), "tenor '2X'"),
    (dict(surfaces=[{"underlying": "SPX"}]), "at least one of atm, skew, term, curv"),
    (dict(surfaces=[{"underlying": "SPX", "atm": "x0"}]), "must be above 0"),
    (dict(spreads=[{"factors": "CR.*", "shift": "+10bp", "relative": "+5%"}]), "exactly one of shift"),
    (dict(spreads=[{"factors": "CR.*"}]), "exactly one of shift"),
    (dict(spreads=[{"factors": "CR.*", "relative": "-100%"}]), "fall of 100% or more"),
    (dict(spreads=[{"factors": "CR.*", "relative": "+5bp"}]), "is not 'N%' or a fraction"),
    (dict(shocks={"EQ.SPX": "-10%"}, propagate={"dof": 2}), "above 2"),
    (dict(shocks={"EQ.SPX": "-10%"}, amplify={"vol": {"multiplier": 2}}), "Extra inputs"),
])
def test_bad_specs_are_field_errors(spec, kw, match):
    with pytest.raises(ValidationError, match=match):
        _hyp(spec, **kw)


def test_the_two_forms_and_their_defaults(spec):
    one = _hyp(spec, shocks={"EQ.SPX": "-10%"})
    assert one.n_scenarios == 1 and one.revaluation == "instantaneous" and one.horizon_days == 1
    many = _hyp(spec, stresses=[{"name": "a", "shocks": {"EQ.SPX": "-10%"}}, {"name": "b", "shocks": {"EQ.SPX": 0}}])
    assert many.n_scenarios == 2
    from stressgrid.grid._run import horizon_days

    assert horizon_days(one) == 0
    assert horizon_days(_hyp(spec, shocks={"EQ.SPX": "-10%"}, revaluation="horizon", horizon_days=5)) == 5


def test_literal_length_orders_patterns():
    from stressgrid.scenarios._hypothetical import literal_length

    assert literal_length("EQ.*") == 3
    assert literal_length("EQ.J*") == 4
    assert literal_length("FX.*USD") == 6
    assert literal_length("IR.USD.?Y") == 8
    assert literal_length("EQ.[AB]*") == 3


# --- factors and patterns -----------------------------------------------------------------------------


def test_exact_names_beat_patterns_and_the_most_specific_pattern_wins(spec, history, factors):
    x = _one(spec, history, factors, shocks={"EQ.*": "-10%", "EQ.J*": "-30%", "EQ.SPX": "-20%", "FX.*USD": "+2%",
                                             "IR.USD.10Y": "+50bp"})
    assert x["EQ.SPX"] == pytest.approx(np.log(0.80), abs=1e-15)
    assert x["EQ.JPM"] == pytest.approx(np.log(0.70), abs=1e-15)
    assert x["EQ.AAPL"] == pytest.approx(np.log(0.90), abs=1e-15)
    assert x["FX.EURUSD"] == x["FX.JPYUSD"] == pytest.approx(np.log(1.02), abs=1e-15)
    assert x["IR.USD.10Y"] == pytest.approx(0.005, abs=1e-17)
    # what no shock names is held at 0
    assert x["CMD.WTI"] == x["IR.USD.2Y"] == x["VOL.SPX.ATM"] == 0.0


def test_a_tie_between_patterns_is_an_error_unless_they_agree(spec, history, factors):
    with pytest.raises(ConfigError, match=r"scenario family 'h', field 'shocks': patterns '\*\.SPX' \(-10%\) and "
                                          r"'EQ\.S\*' \(-20%\) both match EQ\.SPX"):
        _one(spec, history, factors, shocks={"*.SPX": "-10%", "EQ.S*": "-20%"})
    x = _one(spec, history, factors, shocks={"*.SPX": "-10%", "EQ.S*": "-10.0%"})
    assert x["EQ.SPX"] == pytest.approx(np.log(0.9), abs=1e-15)


def test_a_pattern_or_name_that_matches_nothing_is_an_error(spec, history, factors):
    with pytest.raises(ConfigError, match=r"field 'stresses\[1\]\.shocks': pattern 'EQ\.SPY\*' matches no factor of the book"):
        scenarios.generate(_hyp(spec, stresses=[{"name": "a", "shocks": {"EQ.SPX": "-1%"}},
                                                {"name": "b", "shocks": {"EQ.SPY*": "-1%"}}]), history, factors)
    # a factor of the history that the book does not hold moves nothing without propagate
    with pytest.raises(ConfigError, match=r"field 'shocks': 'EQ\.MSFT' is not a factor of the book"):
        _one(spec, history, factors, shocks={"EQ.MSFT": "-10%"})
    with pytest.raises(ConfigError, match=r"'EQ\.NOPE' is neither a factor of the book nor in the history"):
        _one(spec, history, factors, shocks={"EQ.NOPE": "-10%"}, propagate={"window": {"end": "2017-03-29"}})


def test_a_price_fall_of_100_percent_under_a_pattern_is_an_error(spec, history, factors):
    with pytest.raises(ConfigError, match=r"field 'shocks\.EQ\.\*': shock of EQ\.SPX: '-100%' is a fall of 100%"):
        _one(spec, history, factors, shocks={"EQ.*": "-100%"})


def test_zero_shocks_are_zero_and_every_factor_is_covered(spec, history, factors):
    s = scenarios.generate(_hyp(spec, shocks={"*": 0}), history, factors)
    assert np.all(s.shocks == 0.0) and s.covered.all() and s.filled is None and s.paths is None
    assert s.names == ("h",) and s.family == ("h",) and s.weights.tolist() == [1.0]
    assert s.info.loc[0, "kind"] == "hypothetical" and s.info.loc[0, "days"] == 0
    assert s.info.loc[0, "core"].split(",") == factors


# --- curve builders -----------------------------------------------------------------------------------


def test_a_twist_is_the_slope_change_between_short_and_long(spec, history):
    """2s10s 30bp steeper: 10Y minus 2Y moves by +30bp, zero at the pivot sqrt(2 x 10), log-linear in
    tenor between the ends (written out here) and :func:`core.curves.curve_shock` with half the size."""
    x = _one(spec, history, USD, curves=[{"currency": "USD", "kind": "twist", "short": "2Y", "long": "10Y",
                                          "size": "+30bp"}])
    got = np.array([x[f] for f in USD])
    assert got[USD.index("IR.USD.10Y")] - got[USD.index("IR.USD.2Y")] == pytest.approx(0.003, abs=1e-16)
    p = np.sqrt(20.0)
    by_hand = 0.0015 * np.clip(np.log(YEARS / p) / np.log(10.0 / p), -1.0, 1.0)
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-16)
    np.testing.assert_array_equal(got, curve_shock(YEARS, "twist", 0.0015, pivot=p, short=2.0, long=10.0))
    # a given pivot, and the ends defaulting to the curve's first and last tenors
    y = _one(spec, history, USD, curves=[{"currency": "USD", "kind": "twist", "pivot": "7Y", "size": -0.002}])
    np.testing.assert_array_equal([y[f] for f in USD], curve_shock(YEARS, "twist", -0.001, pivot=7.0))
    assert y["IR.USD.30Y"] - y["IR.USD.1M"] == pytest.approx(-0.002, abs=1e-16)


def test_parallel_butterfly_and_key_rate_keep_core_curves_meaning(spec, history):
    b = [{"currency": "USD", "kind": "butterfly", "short": "2Y", "long": "30Y", "size": "+10bp"}]
    x = _one(spec, history, USD, curves=b)
    np.testing.assert_array_equal([x[f] for f in USD],
                                  curve_shock(YEARS, "butterfly", 0.001, pivot=np.sqrt(60.0), short=2.0, long=30.0))
    assert x["IR.USD.2Y"] == x["IR.USD.30Y"] == pytest.approx(0.001) and x["IR.USD.1M"] == pytest.approx(0.001)
    k = _one(spec, history, USD, curves=[{"currency": "USD", "kind": "key_rate", "key_tenor": "10Y", "size": "+25bp"}])
    assert k["IR.USD.10Y"] == pytest.approx(0.0025, abs=1e-18) and sum(abs(k[f]) for f in USD) == pytest.approx(0.0025)
    # the key-rate shifts of every node add up to the parallel shift (Ho 1992)
    total = np.zeros(len(USD))
    for t in ("1M", "3M", "6M", "1Y", "2Y", "3Y", "5Y", "7Y", "10Y", "20Y", "30Y"):
        kr = _one(spec, history, USD, curves=[{"currency": "USD", "kind": "key_rate", "key_tenor": t, "size": 0.001}])
        total += [kr[f] for f in USD]
    par = _one(spec, history, USD, curves=[{"currency": "USD", "kind": "parallel", "size": 0.001}])
    np.testing.assert_allclose(total, [par[f] for f in USD], rtol=0, atol=1e-18)


def test_builders_and_shocks_on_one_factor_add_up(spec, history):
    x = _one(spec, history, USD, shocks={"IR.USD.10Y": "+50bp"},
             curves=[{"currency": "USD", "kind": "parallel", "size": "+35bp"},
                     {"currency": "USD", "kind": "twist", "short": "2Y", "long": "10Y", "size": "+30bp"}])
    assert x["IR.USD.10Y"] == pytest.approx(0.0050 + 0.0035 + 0.0015, abs=1e-16)
    assert x["IR.USD.2Y"] == pytest.approx(0.0035 - 0.0015, abs=1e-16)


def test_the_shape_depends_on_the_tenor_not_on_the_tenors_the_book_holds(spec, history):
    """The builders are evaluated on the union of the book's and the history's tenors: a book that holds
    only some of them gets the same shocks at those tenors as a book that holds them all."""
    subset = ["EQ.SPX", "IR.USD.2Y", "IR.USD.10Y", "IR.USD.30Y"]
    for b in ({"currency": "USD", "kind": "twist", "size": "+30bp"},
              {"currency": "USD", "kind": "twist", "short": "2Y", "long": "10Y", "size": "+30bp"},
              {"currency": "USD", "kind": "butterfly", "size": "-20bp"},
              {"currency": "USD", "kind": "key_rate", "key_tenor": "10Y", "size": "+25bp"}):
        full = _one(spec, history, USD, curves=[b])
        part = _one(spec, history, subset, curves=[b])
        for f in subset[1:]:
            assert part[f] == full[f], (b, f)
    # a key-rate shift at a node the book lacks: its triangle ends at the neighbouring nodes 3Y and 7Y
    kr = _one(spec, history, subset, curves=[{"currency": "USD", "kind": "key_rate", "key_tenor": "5Y", "size": 0.001}])
    assert kr["IR.USD.2Y"] == kr["IR.USD.10Y"] == 0.0
    # the grid is the union: a history with tenors 1Y, 5Y, 30Y and a book with 2Y, 10Y give 1Y..30Y
    lv = history.levels.loc["2016-01-01":"2017-03-29", ["EQ.SPX", "IR.USD.1Y", "IR.USD.5Y", "IR.USD.30Y"]]
    small = History(lv, "test")
    book = ["EQ.SPX", "IR.USD.2Y", "IR.USD.10Y"]
    x = _one(spec, small, book, curves=[{"currency": "USD", "kind": "twist", "size": 0.002}])
    ref = curve_shock(np.array([1.0, 2.0, 5.0, 10.0, 30.0]), "twist", 0.001)
    assert x["IR.USD.2Y"] == ref[1] and x["IR.USD.10Y"] == ref[3]
    with pytest.raises(ConfigError, match=r"field 'curves\[0\]\.key_tenor': '7Y' is not a node of the USD curve "
                                          r"\(its nodes in the book and the history: 1Y, 2Y, 5Y, 10Y, 30Y\)"):
        _one(spec, small, book, curves=[{"currency": "USD", "kind": "key_rate", "key_tenor": "7Y", "size": 0.001}])


def test_a_builder_on_an_unknown_currency_or_a_bad_pivot_is_an_error(spec, history, factors):
    with pytest.raises(ConfigError, match=r"scenario family 'h', field 'stresses\[1\]\.curves\[0\]\.currency': 'XYZ' "
                                          r"has no curve: no IR\.XYZ\.\* factor in the book or the history \(curves: USD\)"):
        scenarios.generate(_hyp(spec, stresses=[
            {"name": "a", "curves": [{"currency": "USD", "kind": "parallel", "size": 0.001}]},
            {"name": "b", "curves": [{"currency": "XYZ", "kind": "parallel", "size": 0.001}]}]), history, factors)
    with pytest.raises(ConfigError, match=r"field 'curves\[0\]\.pivot': the pivot \(1Y\) must lie strictly between"):
        _one(spec, history, factors, curves=[{"currency": "USD", "kind": "twist", "short": "2Y", "long": "10Y",
                                              "pivot": "1Y", "size": 0.001}])
    # a curve the history has but the book does not: the builder would move nothing
    with pytest.raises(ConfigError, match=r"field 'curves\[0\]\.currency': the book holds no IR\.USD\.\* factor"):
        _one(spec, history, ["EQ.SPX"], curves=[{"currency": "USD", "kind": "parallel", "size": 0.001}])


# --- surfaces and spreads -----------------------------------------------------------------------------


def test_surfaces_absolute_and_multiplied(spec, history, market):
    factors = ["EQ.SPX", "VOL.SPX.ATM", "VOL.SPX.SKEW"]
    atm = market.level("VOL.SPX.ATM")
    x = _one(spec, history, factors, market=market, surfaces=[{"underlying": "SPX", "atm": "+5%", "skew": -0.05}])
    assert x["VOL.SPX.ATM"] == pytest.approx(0.05, abs=1e-17) and x["VOL.SPX.SKEW"] == -0.05
    y = _one(spec, history, factors, market=market, surfaces=[{"underlying": "SPX", "atm": "x2"}])
    assert y["VOL.SPX.ATM"] == pytest.approx(atm, rel=1e-15) and 0.05 < atm < 0.5
    # without a market snapshot, the history's last observation on or before the window's date
    z = _one(spec, history, factors, surfaces=[{"underlying": "SPX", "atm": "x1.5"}])
    last = history.levels["VOL.SPX.ATM"].dropna().iloc[-1]
    assert z["VOL.SPX.ATM"] == pytest.approx(0.5 * last, rel=1e-15)
    with pytest.raises(ConfigError, match=r"field 'surfaces\[0\]\.term': VOL\.SPX\.TERM is not a factor of the book"):
        _one(spec, history, factors, surfaces=[{"underlying": "SPX", "term": -0.01}])
    with pytest.raises(ConfigError, match=r"field 'surfaces\[0\]\.skew': no current level of VOL\.SPX\.SKEW"):
        _one(spec, history, factors, surfaces=[{"underlying": "SPX", "skew": "x2"}])


def test_spreads_absolute_and_relative(spec, history):
    factors = ["EQ.SPX", "CR.CDX_IG", "CR.IBM"]
    levels = {"EQ.SPX": 2400.0, "CR.CDX_IG": 0.0088, "CR.IBM": 0.0125}
    x = _one(spec, history, factors, market=levels, spreads=[{"factors": "CR.*", "shift": "+40bp"}])
    assert x["CR.CDX_IG"] == x["CR.IBM"] == pytest.approx(0.004, abs=1e-18) and x["EQ.SPX"] == 0.0
    y = _one(spec, history, factors, market=levels, spreads=[{"factors": "CR.*", "relative": "+50%"},
                                                             {"factors": "CR.IBM", "shift": "+10bp"}])
    assert y["CR.CDX_IG"] == pytest.approx(0.0044, abs=1e-18)
    assert y["CR.IBM"] == pytest.approx(0.00625 + 0.001, abs=1e-18)
    with pytest.raises(ConfigError, match=r"field 'spreads\[0\]\.relative': no current level of CR\.IBM"):
        _one(spec, history, factors, market={"CR.CDX_IG": 0.0088}, spreads=[{"factors": "CR.*", "relative": 0.5}])
    with pytest.raises(ConfigError, match=r"field 'spreads\[0\]\.factors': 'CR\.ITRAXX' matches no credit spread factor"):
        _one(spec, history, factors, market=levels, spreads=[{"factors": "CR.ITRAXX", "shift": "+10bp"}])


# --- scenarios, paths and info ------------------------------------------------------------------------


def test_stresses_are_rows_of_equal_weight_with_their_description(spec, history, factors):
    s = scenarios.generate(_hyp(spec, stresses=[
        {"name": "a", "description": "bear steepener", "curves": [{"currency": "USD", "kind": "twist", "size": "+30bp"}]},
        {"name": "b", "shocks": {"EQ.SPX": "-10%"}},
        {"name": "c", "shocks": {"EQ.SPX": "-20%"}}], revaluation="horizon", horizon_days=5), history, factors)
    assert s.names == ("a", "b", "c") and s.family == ("h",) * 3
    np.testing.assert_allclose(s.weights, 1 / 3)
    assert s.paths.shape == (3, 5, len(factors))
    np.testing.assert_allclose(s.paths[:, -1], s.shocks, rtol=0, atol=0)
    np.testing.assert_allclose(s.paths[:, 0], s.shocks / 5, rtol=1e-15)
    assert list(s.info["days"]) == [5, 5, 5]
    assert s.info.loc[0, "description"] == "bear steepener: USD twist +30bp; every other factor held at 0"
    assert s.info.loc[0, "core"] == "IR.USD.2Y,IR.USD.10Y"
    assert s.info.loc[1, "description"] == "EQ.SPX -10%; every other factor held at 0"
    assert "mahalanobis" not in s.info.columns


def test_the_count_of_the_resource_estimate_matches(spec, history, factors):
    from stressgrid.grid._resources import count_scenarios

    for kw in (dict(shocks={"EQ.SPX": "-10%"}),
               dict(stresses=[{"name": n, "shocks": {"EQ.SPX": "-10%"}} for n in "abcd"])):
        s = _hyp(spec, **kw)
        assert count_scenarios(s, history, factors) == len(scenarios.generate(s, history, factors))


# --- propagation --------------------------------------------------------------------------------------


def _sample_moves(history, names, start, end):
    """Daily moves of ``names`` (log-returns of prices, differences otherwise) on the dates all are observed,
    with pandas."""
    lv = history.levels.loc[start:end, names].dropna(how="any")
    out = {}
    for f in names:
        out[f] = np.log(lv[f]).diff() if f.split(".")[0] in ("EQ", "FX", "CMD") else lv[f].diff()
    return pd.DataFrame(out).iloc[1:]


def test_propagation_is_the_conditional_mean_under_the_window_covariance(spec, history, factors, market):
    """The other factors move by ``S_oc S_cc^-1 c`` with ``S`` the sample covariance of the window's daily
    moves times the horizon, computed here with pandas and a linear solve; the core is exact; the
    Mahalanobis distance and tail probability are those of :func:`conditional_stress`."""
    window = {"start": "2015-01-02", "end": "2017-03-29"}
    prop = {"estimator": "sample", "window": window, "horizon_days": 10}
    s = scenarios.generate(_hyp(spec, shocks={"EQ.SPX": "-10%", "IR.USD.10Y": "+20bp"}, propagate=prop),
                           history, factors, market=market)
    x = s.shocks[0]
    cov = np.cov(_sample_moves(history, factors, *window.values()).to_numpy(), rowvar=False, ddof=1) * 10
    core = [factors.index("EQ.SPX"), factors.index("IR.USD.10Y")]
    other = [j for j in range(len(factors)) if j not in core]
    c = np.array([np.log(0.9), 0.002])
    mean = cov[np.ix_(other, core)] @ np.linalg.solve(cov[np.ix_(core, core)], c)
    np.testing.assert_allclose(x[core], c, rtol=1e-15, atol=0)
    np.testing.assert_allclose(x[other], mean, rtol=1e-9, atol=1e-15)
    res = conditional_stress(cov, np.array(core), c)
    np.testing.assert_allclose(x[other], res.mean, rtol=1e-9, atol=1e-15)
    info = s.info.iloc[0]
    assert info["mahalanobis"] == pytest.approx(np.sqrt(c @ np.linalg.solve(cov[np.ix_(core, core)], c)), rel=1e-9)
    assert info["tail_prob"] == pytest.approx(res.tail_prob, rel=1e-9)
    assert info["distribution"] == "gaussian" and info["kind"] == "hypothetical" and info["core"] == "EQ.SPX,IR.USD.10Y"
    assert s.covered.all() and s.filled[0, other].all() and not s.filled[0, core].any()


def test_a_propagated_curve_builder_conditions_on_the_whole_curve(spec, history, factors, market):
    """With propagate a builder sets every node of the curve in the history, also those the book does not
    hold: they condition the others (a twist is not a parallel move of the book's two nodes)."""
    window = {"start": "2015-01-02", "end": "2017-03-29"}
    s = scenarios.generate(_hyp(spec, stresses=[
        {"name": "twist", "curves": [{"currency": "USD", "kind": "twist", "short": "2Y", "long": "10Y", "size": "+30bp"}],
         "propagate": {"estimator": "sample", "window": window}},
        {"name": "flat", "shocks": {"EQ.SPX": "-5%"}}]), history, factors, market=market)
    assert sorted(s.info.loc[0, "core"].split(",")) == sorted(USD)
    universe = factors + [f for f in USD if f not in factors]
    cov = np.cov(_sample_moves(history, universe, *window.values()).to_numpy(), rowvar=False, ddof=1) * 10
    core = np.array([universe.index(f) for f in USD])
    p = np.sqrt(20.0)
    c = 0.0015 * np.clip(np.log(YEARS / p) / np.log(10.0 / p), -1.0, 1.0)
    res = conditional_stress(cov, core, c)
    other = [f for f in universe if f not in USD]
    got = dict(zip(s.factors, s.shocks[0]))
    np.testing.assert_allclose([got[f] for f in other], res.mean, rtol=1e-9, atol=1e-15)
    assert got["IR.USD.10Y"] - got["IR.USD.2Y"] == pytest.approx(0.003, abs=1e-16)
    assert s.info.loc[0, "mahalanobis"] == pytest.approx(res.mahalanobis, rel=1e-9)
    # the stress without propagate holds the others at 0 and has no plausibility
    assert np.count_nonzero(s.shocks[1]) == 1 and pd.isna(s.info.loc[1, "mahalanobis"])
    assert not s.filled[1].any() and s.covered[1].all()


def test_propagation_leaves_factors_without_history_uncovered(spec, history, market):
    factors = ["EQ.SPX", "EQ.AAPL", "CR.CDX_IG"]
    levels = {"EQ.SPX": 2400.0, "EQ.AAPL": 140.0, "CR.CDX_IG": 0.0088}
    s = scenarios.generate(_hyp(spec, shocks={"EQ.SPX": "-10%"}, propagate={"window": {"end": "2017-03-29"}}),
                           history, factors, market=levels)
    assert s.shocks[0, 2] == 0.0 and not s.covered[0, 2] and s.info.loc[0, "uncovered"] == "CR.CDX_IG"
    assert s.shocks[0, 1] < 0 and s.filled[0, 1]
    # a shock written for it is applied, outside the model
    s = scenarios.generate(_hyp(spec, shocks={"EQ.SPX": "-10%", "CR.CDX_IG": "+40bp"},
                                propagate={"window": {"end": "2017-03-29"}}), history, factors, market=levels)
    assert s.shocks[0, 2] == pytest.approx(0.004) and s.covered[0, 2] and s.info.loc[0, "not_in_model"] == "CR.CDX_IG"


def test_shock_forms_in_each_convention():
    import math

    from stressgrid.scenarios._common import parse_shock

    # a price: '%' and 'bp' are simple returns, stored as log-returns; a number is the log-return itself
    assert parse_shock("-30%", "EQ.SPX") == math.log1p(-0.30)
    assert parse_shock("-50bp", "EQ.SPX") == parse_shock("-0.5%", "EQ.SPX") == math.log1p(-0.005)
    assert parse_shock(-0.1, "EQ.SPX") == -0.1
    # a rate: 'bp' and '%' are absolute changes of the decimal level
    assert parse_shock("+100bp", "IR.USD.10Y") == 0.01
    assert parse_shock("+2%", "IR.USD.10Y") == 0.02
    with pytest.raises(ValueError, match="a fall of 100% or more"):
        parse_shock("-100%", "EQ.SPX")
