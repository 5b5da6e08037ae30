"""Tail guards of the random kinds: moves beyond a multiple of each factor's historical extreme flagged (and
capped on request) identically however a family is drawn, and GARCH fits at a boundary named."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from stressgrid import scenarios
from stressgrid.scenarios import BLOCK_SIZE, daily_moves, fit_garch, garch_boundary, historical_extreme
from stressgrid.scenarios._guard import PERSISTENCE_BOUNDARY, format_garch_boundary

W = {"end": "2017-03-29", "lookback_days": 500}
PLANTED = "EQ.AAPL"
GUARD = list(scenarios.GUARD_COLUMNS)


@pytest.fixture(scope="module")
def planted(history):
    """The bundled history with one +52% day of EQ.AAPL two days before the window's end."""
    lv = history.levels.copy()
    day = lv.index[lv.index <= pd.Timestamp(W["end"])][-3]
    lv.loc[day:, PLANTED] *= 1.52
    return replace(history, levels=lv, snapshot_levels=None)


def _family(spec, **kw):
    body = dict(kind="montecarlo", name="m", model="fhs", window=W, n_scenarios=3000, horizon_days=10)
    body.update(kw)
    return spec(body)


def _extreme(history, factors, window, horizon):
    moves, ok = daily_moves(history, factors, scenarios.WindowSpec(**window))
    out = np.full(len(factors), np.nan)
    out[np.flatnonzero(ok)] = historical_extreme(moves.to_numpy(), horizon)
    return out


def test_historical_extreme_is_the_largest_move_over_overlapping_windows():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 3))
    got = historical_extreme(x, 5)
    brute = np.max([np.abs(x[t:t + 5].sum(axis=0)) for t in range(36)], axis=0)
    np.testing.assert_allclose(got, brute, rtol=1e-12)
    # a horizon longer than the window: the whole window is one move
    np.testing.assert_allclose(historical_extreme(x, 100), np.abs(x.sum(axis=0)), rtol=1e-12)


@pytest.mark.parametrize("model", ["fhs", "garch_t"])
def test_a_planted_extreme_is_flagged_with_its_factor_named(spec, planted, factors, model):
    kw = {"correlation": "dcc"} if model == "garch_t" else {}
    s = _family(spec, model=model, **kw)
    scen = scenarios.generate(s, planted, factors, np.random.SeedSequence(11))
    info = scen.info
    flagged = info[info["implausible"] > 0]
    assert len(flagged) > 0
    worst = info.loc[info["tail_multiple"].idxmax()]
    assert worst["tail_factor"] == PLANTED and worst["tail_multiple"] > 5
    assert (flagged["tail_factor"] == PLANTED).mean() > 0.5
    # the multiple is the move over the factor's largest 10-day move in the window (flagging moves nothing)
    ext = _extreme(planted, factors, W, 10)
    j = factors.index(PLANTED)
    mine = flagged[flagged["tail_factor"] == PLANTED]
    rows = mine.index.to_numpy()
    np.testing.assert_allclose(mine["tail_multiple"], np.abs(scen.shocks[rows, j]) / ext[j], rtol=1e-12)
    assert (np.abs(scen.shocks[rows, j]) > 3 * ext[j]).all()
    assert (info["guard_multiple"] == 3.0).all() and not info["guard_cap"].any()
    # the GARCH fit of the planted factor sits at a boundary, and is named with its parameters
    named = scenarios.parse_garch_boundary(info["garch_boundary"].iloc[0])
    assert named[PLANTED].startswith("alpha ") and ", dof " in named[PLANTED]


def test_the_guard_on_by_default_changes_no_number(spec, planted, factors):
    seed = np.random.SeedSequence(5)
    on = scenarios.generate(_family(spec), planted, factors, seed)
    off = scenarios.generate(_family(spec, guard=None), planted, factors, seed)
    assert np.array_equal(on.shocks, off.shocks)
    assert not set(GUARD + ["guard_multiple", "guard_cap"]) & set(off.info.columns)
    assert (on.info["implausible"] > 0).any()


def test_cap_bounds_every_move_at_the_multiple_and_keeps_the_others_bits(spec, planted, factors):
    seed = np.random.SeedSequence(5)
    flag = scenarios.generate(_family(spec, paths=True), planted, factors, seed)
    cap = scenarios.generate(_family(spec, paths=True, guard={"max_multiple": 3, "cap": True}), planted, factors, seed)
    bound = 3.0 * _extreme(planted, factors, W, 10)
    fitted = scenarios.fit(_family(spec, guard={"cap": True}), planted, factors)
    np.testing.assert_array_equal(fitted.guard.bound, np.where(np.isnan(bound), np.inf, bound))
    over = np.abs(flag.shocks) > fitted.guard.bound
    assert over.any()
    np.testing.assert_array_equal(flag.info["implausible"], over.sum(axis=1))  # a flagged move is a capped one
    # the moves beyond are clipped to the bound exactly, with their sign; every other move keeps its bits
    np.testing.assert_array_equal(cap.shocks[over], np.sign(flag.shocks[over]) * np.broadcast_to(fitted.guard.bound, over.shape)[over])
    np.testing.assert_array_equal(cap.shocks[~over], flag.shocks[~over])
    assert (np.abs(cap.shocks) <= fitted.guard.bound).all()
    assert (np.abs(cap.paths) <= fitted.guard.bound).all() and np.array_equal(cap.paths[:, -1], cap.shocks)
    untouched = ~over.any(axis=0)
    np.testing.assert_array_equal(cap.shocks[:, untouched], flag.shocks[:, untouched])
    # the judgement is of the model's moves: the same with and without the cap
    pd.testing.assert_frame_equal(cap.info[GUARD], flag.info[GUARD])
    assert cap.info["guard_cap"].all()


def test_the_cap_bounds_the_model_before_the_amplify_stress(spec, planted, factors):
    """A pure volatility stress of x2 doubles the capped moves: the cap bounds the model, the stress is the
    user's and applies on top."""
    seed = np.random.SeedSequence(9)
    g = {"max_multiple": 2, "cap": True}
    plain = scenarios.generate(_family(spec, guard=g), planted, factors, seed)
    amp = scenarios.generate(_family(spec, guard=g, amplify={"vol": {"multiplier": 2.0}}), planted, factors, seed)
    np.testing.assert_allclose(amp.shocks, 2.0 * plain.shocks, rtol=1e-9, atol=1e-14)
    pd.testing.assert_frame_equal(amp.info[GUARD], plain.info[GUARD])


def test_a_stress_in_the_covariance_scales_the_extreme(spec, history, factors):
    """Gaussian and Student-t draws come from the stressed covariance: each factor's extreme is scaled by its
    stressed to estimated volatility, so a declared x3 volatility is not judged implausible."""
    base = scenarios.fit(_family(spec, model="gaussian"), history, factors)
    amp = scenarios.fit(_family(spec, model="gaussian", amplify={"vol": {"multiplier": 3.0}}), history, factors)
    np.testing.assert_allclose(amp.guard.extreme, 3.0 * base.guard.extreme, rtol=1e-9)


CASES = [
    dict(kind="montecarlo", model="fhs", horizon_days=10, guard={"max_multiple": 2.5, "cap": True}),
    dict(kind="montecarlo", model="garch_t", correlation="dcc", horizon_days=5),
    dict(kind="montecarlo", model="student_t", horizon_days=10, guard={"max_multiple": 1.5, "cap": True}),
    dict(kind="bootstrap", horizon_days=10, paths=True, guard={"max_multiple": 0.8, "cap": True}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.get("model", c["kind"]))
def test_flags_and_caps_are_the_same_however_the_family_is_drawn(spec, planted, factors, market, case):
    s = spec(dict(case, name="f", window=W, n_scenarios=BLOCK_SIZE + 57))
    seed = np.random.SeedSequence(2024).spawn(2)[1]
    whole = scenarios.generate(s, planted, factors, seed, market)
    assert (whole.info["implausible"] > 0).any()
    fitted = scenarios.fit(s, planted, factors, market)
    info = scenarios.family_info(s, fitted, planted.source)
    edges = [0, 13, BLOCK_SIZE - 2, BLOCK_SIZE + 20, s.n_scenarios]
    drawn = [scenarios.draw_range(s, fitted, seed, info, a, b) for a, b in zip(edges[:-1], edges[1:])]
    assert np.array_equal(np.concatenate([p.shocks for p in drawn]), whole.shocks)
    cols = GUARD + ["guard_multiple", "guard_cap"]
    pd.testing.assert_frame_equal(pd.concat([p.info[cols] for p in drawn], ignore_index=True), whole.info[cols])
    parts = [scenarios.generate_range(s, planted, factors, seed, a, b, market) for a, b in zip(edges[:-1], edges[1:])]
    pd.testing.assert_frame_equal(pd.concat([p.info[cols] for p in parts], ignore_index=True), whole.info[cols])
    # a block drawn alone judges its scenarios as the whole family does
    b = scenarios.generate_block(s, fitted, 1, seed, guard_rows=True)
    np.testing.assert_array_equal(b[2].implausible[:57], whole.info["implausible"].to_numpy()[BLOCK_SIZE:])


def _simulate_garch(omega, alpha, beta, nu, T, seed):
    """A GARCH(1,1) series with standardised Student-t innovations."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, size=T) * np.sqrt((nu - 2) / nu)
    s2, x = omega / (1 - alpha - beta), np.empty(T)
    for t in range(T):
        x[t] = np.sqrt(s2) * z[t]
        s2 = omega + alpha * x[t] ** 2 + beta * s2
    return x


def test_a_near_integrated_garch_is_reported_and_a_well_behaved_one_is_not():
    near = _simulate_garch(1e-6, 0.06, 0.939, 8, 3000, 0)  # alpha + beta = 0.999
    calm = _simulate_garch(2e-6, 0.05, 0.85, 8, 3000, 100)  # alpha + beta = 0.9
    g = fit_garch(np.column_stack([near, calm]))
    found = garch_boundary(["EQ.NEAR", "EQ.CALM"], g.alpha, g.beta, g.nu)
    assert [f for f, *_ in found] == ["EQ.NEAR"]
    f, a, b, nu = found[0]
    assert a + b >= PERSISTENCE_BOUNDARY and (a, b, nu) == (g.alpha[0], g.beta[0], g.nu[0])
    text = format_garch_boundary(found)
    assert text.startswith("EQ.NEAR: alpha ") and "dof" in text
    assert scenarios.parse_garch_boundary(text) == {"EQ.NEAR": text.split(": ", 1)[1]}


@pytest.mark.parametrize("params, named", [((0.05, 0.9, 2.5), True), ((0.35, 0.5, 8.0), True),
                                           ((0.05, 0.9, 8.0), False), ((0.1, 0.897, 8.0), True), ((0.05, 0.9, 3.0), True)])
def test_each_boundary_of_the_garch_report(params, named):
    a, b, nu = params
    assert bool(garch_boundary(["X"], [a], [b], [nu])) is named


def test_a_well_behaved_family_reports_no_garch_boundary(spec, history, factors):
    fitted = scenarios.fit(_family(spec, model="garch_t"), history, factors)
    g = fitted.garch
    expected = format_garch_boundary(
        garch_boundary([factors[i] for i in fitted.index], g.alpha, g.beta, g.nu))
    assert fitted.info["garch_boundary"] == expected
    assert PLANTED not in scenarios.parse_garch_boundary(expected)


@pytest.mark.parametrize("guard, message", [({"max_multiple": 0}, "greater than 0"),
                                            ({"max_multiple": -2}, "greater than 0"),
                                            ({"cap": True, "bound": 3}, "Extra inputs")])
def test_guard_spec_errors_name_the_field(spec, guard, message):
    with pytest.raises(ValidationError, match=message) as err:
        _family(spec, guard=guard)
    assert "guard" in str(err.value)
