"""Reverse stress tests against closed forms: the least-distance scenario of a linear book under a
Gaussian model (Breuer et al. 2009), the worst loss within a distance, the restricted search through the
conditional expectation, the Student-t tail probability by simulation, and the errors a user meets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stressgrid import scenarios
from stressgrid.core import ConfigError, History
from stressgrid.scenarios import _reverse as rv

FACTORS = ["EQ.SPX", "EQ.AAPL", "EQ.JPM", "FX.EURUSD", "FX.JPYUSD", "CMD.WTI", "CMD.GOLD",
           "IR.USD.2Y", "IR.USD.10Y", "VOL.SPX.ATM"]

AS_OF = "2017-03-29"
WINDOW = {"end": AS_OF, "lookback_days": 500}
H = 10


def _cov(history, factors=FACTORS, estimator="ledoit_wolf"):
    """The covariance of the 10-day move the family estimates (the input; the closed forms are the reference)."""
    moves, _ = scenarios.daily_moves(history, factors, scenarios.WindowSpec(**WINDOW), None, "t")
    return scenarios.estimate_covariance(moves.to_numpy(), scenarios.EstimatorSpec(method=estimator))[0] * H


def _linear(w):
    w = np.asarray(w, float)
    return lambda s: (float(w @ s), w.copy())


W = 10 * np.array([3e6, 1e6, -2e6, 5e5, 0.0, 1e6, -5e5, -4e7, 9e7, -1e6])  # P&L per unit shock of each factor


def _run(spec, history, revaluer, **kw):
    return scenarios.generate(spec, history, FACTORS, seed=7, revaluer=revaluer, **kw)


def test_linear_gaussian_least_distance_is_the_closed_form(spec, history):
    """s* = L S w / (w'S w) and distance L / sqrt(w'S w) for loss(s) = -w's, to 1e-8."""
    cov = _cov(history)
    w = -W  # a loss of L means w's = L with w = -W
    out = _run(spec({"kind": "reverse", "name": "r", "loss": ["4m", 9000000], "window": WINDOW}), history, _linear(W))
    for i, L in enumerate([4e6, 9e6]):
        want = L * cov @ w / (w @ cov @ w)
        np.testing.assert_allclose(out.shocks[i], want, rtol=1e-8, atol=1e-12 * np.abs(want).max())
        assert out.info["distance"][i] == pytest.approx(L / np.sqrt(w @ cov @ w), rel=1e-8)
        assert out.info["tail_probability"][i] == pytest.approx(stats.norm.sf(L / np.sqrt(w @ cov @ w)), rel=1e-8)
        assert bool(out.info["converged"][i]) and bool(out.info["starts_agree"][i])
        assert float(W @ out.shocks[i]) == pytest.approx(-L, rel=1e-9)
    assert list(out.names) == ["r:loss=4m", "r:loss=9m"]


def test_worst_loss_within_a_distance_and_a_probability(spec, history):
    """Linear book: the worst loss within distance D is D sqrt(w'S w), at D S w / sqrt(w'S w); a tail
    probability p is the distance Phi^-1(1 - p)."""
    cov = _cov(history)
    w = -W
    sd = np.sqrt(w @ cov @ w)
    out = _run(spec({"kind": "reverse", "name": "r", "within": [{"distance": 2.5}, {"probability": 0.01}],
                     "window": WINDOW}), history, _linear(W))
    for i, D in enumerate([2.5, stats.norm.isf(0.01)]):
        assert -float(W @ out.shocks[i]) == pytest.approx(D * sd, rel=1e-8)
        np.testing.assert_allclose(out.shocks[i], D * cov @ w / sd, rtol=1e-7, atol=1e-10)
        assert out.info["distance"][i] == pytest.approx(D, rel=1e-8)
    assert out.info["tail_probability"][1] == pytest.approx(0.01, rel=1e-8)


def test_restricted_factors_move_the_others_by_their_conditional_expectation(spec, history):
    """With factors C free: x = M u, M = [I; S_oc S_cc^-1], u* = L S_cc v / (v'S_cc v), v = M'w."""
    cov = _cov(history)
    c = [FACTORS.index("EQ.SPX"), FACTORS.index("IR.USD.10Y")]
    o = [j for j in range(len(FACTORS)) if j not in c]
    M = np.zeros((len(FACTORS), 2))
    M[c] = np.eye(2)
    M[o] = cov[np.ix_(o, c)] @ np.linalg.inv(cov[np.ix_(c, c)])
    w = -W
    v = M.T @ w
    s_cc = cov[np.ix_(c, c)]
    L = 5e6
    out = _run(spec({"kind": "reverse", "name": "r", "loss": L, "factors": ["EQ.SPX", "IR.USD.1*"], "window": WINDOW}),
               history, _linear(W))
    u = L * s_cc @ v / (v @ s_cc @ v)
    np.testing.assert_allclose(out.shocks[0], M @ u, rtol=1e-8, atol=1e-12)
    assert out.info["distance"][0] == pytest.approx(L / np.sqrt(v @ s_cc @ v), rel=1e-8)
    assert list(out.info["core"][0].split(",")) == ["EQ.SPX", "IR.USD.10Y"]
    assert out.filled[0, o].all() and not out.filled[0, c].any()


def test_student_t_tail_probability_matches_simulation(spec, history):
    """Under a multivariate t with covariance S, P(-w'x >= L) for the linear book, by 400k draws."""
    cov = _cov(history)
    nu = 5.0
    out = _run(spec({"kind": "reverse", "name": "r", "loss": "6m", "distribution": "student_t", "dof": nu,
                     "window": WINDOW}), history, _linear(W))
    p = float(out.info["tail_probability"][0])
    rng = np.random.default_rng(1)
    n = 400_000
    z = rng.standard_normal((n, len(FACTORS))) @ np.linalg.cholesky(cov * (nu - 2) / nu).T
    x = z * np.sqrt(nu / rng.chisquare(nu, n))[:, None]
    mc = float(np.mean(-(x @ W) >= 6e6))
    assert abs(mc - p) < 4 * np.sqrt(p * (1 - p) / n)
    # the distance is the model's, whatever the distribution: same minimiser as the Gaussian
    g = _run(spec({"kind": "reverse", "name": "r", "loss": "6m", "window": WINDOW}), history, _linear(W))
    np.testing.assert_allclose(out.shocks, g.shocks, rtol=1e-9)


def test_two_local_solutions_are_both_reported():
    """loss(z) = z1^2 (a short straddle in whitened units): loss 4 is reached at z1 = +2 and -2."""
    def loss(z):
        return float(z[0] ** 2), np.array([2 * z[0], 0.0])

    starts = rv._starting_points(np.zeros(2), 1.0, 8, 3)
    kept, agree = rv._distinct(rv.least_distance(loss, 4.0, starts), key=lambda s: s.distance)
    assert len(kept) == 2 and not agree
    assert sorted(round(float(s.z[0]), 9) for s in kept) == [-2.0, 2.0]
    assert all(s.distance == pytest.approx(2.0, rel=1e-9) for s in kept)


def test_a_failed_search_is_not_a_solution():
    """A loss with no gradient (a step) cannot be searched: every start reports converged false."""
    def loss(z):
        return (10.0 if z[0] > 1.0 else 0.0), np.zeros(2)

    sols = rv.least_distance(loss, 5.0, rv._starting_points(np.zeros(2), 1.0, 4, 0))
    assert not any(s.converged for s in sols)
    kept, agree = rv._distinct(sols, key=lambda s: s.distance)
    assert kept == [] and not agree


def test_bad_input_names_the_field_and_value(spec, history):
    lin = _linear(W)
    with pytest.raises(ConfigError, match=r"'r', field 'loss': '900bn'.*beyond the worst loss within distance 10"):
        _run(spec({"kind": "reverse", "name": "r", "loss": "900bn", "window": WINDOW}), history, lin)
    with pytest.raises(ConfigError, match=r"field 'loss': '5%' is a share of NAV, but the batch gives no 'nav'"):
        _run(spec({"kind": "reverse", "name": "r", "loss": "5%", "window": WINDOW}), history, lin)
    with pytest.raises(ConfigError, match=r"field 'factors': 'EQ.NOPE' matches none"):
        _run(spec({"kind": "reverse", "name": "r", "loss": "1m", "factors": ["EQ.NOPE"], "window": WINDOW}), history, lin)
    with pytest.raises(ConfigError, match=r"already lost with no factor move"):
        _run(spec({"kind": "reverse", "name": "r", "loss": "1m", "window": WINDOW}), history,
             lambda s: (-2e6 + float(W @ s), W.copy()))
    with pytest.raises(Exception, match=r"loss 'lots' is not an amount"):
        spec({"kind": "reverse", "name": "r", "loss": "lots"})
    with pytest.raises(Exception, match=r"loss '-5m' must be a positive amount"):
        spec({"kind": "reverse", "name": "r", "loss": "-5m"})
    with pytest.raises(Exception, match=r"give 'loss'"):
        spec({"kind": "reverse", "name": "r"})
    with pytest.raises(Exception, match=r"exactly one of 'distance' and 'probability'"):
        spec({"kind": "reverse", "name": "r", "within": {"distance": 2, "probability": 0.01}})


def test_singular_covariance_is_an_error(spec):
    """Two factors that move together exactly: the sample covariance is singular."""
    idx = __import__("pandas").bdate_range("2015-01-01", periods=300, name="date")
    x = np.cumsum(np.random.default_rng(0).normal(0, 0.01, 300))
    lv = __import__("pandas").DataFrame({"EQ.A": 100 * np.exp(x), "EQ.B": 50 * np.exp(x)}, index=idx)
    hist = History(lv, "synthetic")
    with pytest.raises(ConfigError, match=r"field 'covariance'.*singular \(rank 1\)"):
        scenarios.generate(spec({"kind": "reverse", "name": "r", "loss": 1.0, "covariance": "sample"}), hist,
                           ["EQ.A", "EQ.B"], revaluer=_linear([1.0, 1.0]))


def test_needs_the_book(spec, history):
    with pytest.raises(ConfigError, match="needs the book"):
        scenarios.generate(spec({"kind": "reverse", "name": "r", "loss": 1.0}), history, FACTORS)
