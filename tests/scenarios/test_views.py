"""Views by entropy pooling: skfolio's EntropyPooling as the reference, closed forms, identities, bad input."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
import scipy.optimize as sco
from scipy import special

from stressgrid.core import ConfigError
from stressgrid.scenarios._views import (
    View,
    apply_views,
    effective_scenarios,
    entropy_pooling,
    parse_views,
    relative_entropy,
)

FACTORS = ["EQ.SPX", "EQ.NDX", "IR.USD.10Y", "FX.EURUSD"]
S = 2000
WHERE = "scenario family 'mc'"


@pytest.fixture(scope="module")
def moves() -> np.ndarray:
    """2,000 draws of a 4-factor Student-t (5 degrees of freedom), daily-sized moves: ``[S, 4]``."""
    rng = np.random.default_rng(7)
    corr = np.array([[1.0, 0.6, -0.3, 0.2], [0.6, 1.0, -0.2, 0.1], [-0.3, -0.2, 1.0, 0.0], [0.2, 0.1, 0.0, 1.0]])
    vols = np.array([0.012, 0.015, 0.0008, 0.006])
    nu = 5.0
    z = rng.standard_normal((S, 4)) @ np.linalg.cholesky(corr).T
    w = rng.chisquare(nu, S) / nu
    return z / np.sqrt(w)[:, None] * np.sqrt((nu - 2) / nu) * vols + np.array([3e-4, 4e-4, 0.0, 1e-4])


@pytest.fixture(scope="module")
def pnl(moves) -> np.ndarray:
    """A book's P&L (base currency): long 1m SPX and 2m NDX, losing 5,000 per bp rise of the 10y, long
    3m EUR."""
    return np.expm1(moves[:, :2]) @ np.array([1e6, 2e6]) + moves[:, 2:] @ np.array([-5e7, 3e6])


def _gap(q: np.ndarray, ref: np.ndarray, p: np.ndarray) -> float:
    """Largest difference of two posteriors relative to the larger of the posterior and the prior
    probability of each scenario (relative where a view makes a scenario likelier, relative to the prior
    where it makes it unlikely, so that scenarios whose weight vanishes do not dominate)."""
    return float(np.max(np.abs(q - ref) / np.maximum(q, p)))


# ------------------------------------------------------------------------------------------------
# skfolio's EntropyPooling as the reference
# ------------------------------------------------------------------------------------------------

#: skfolio's dual solver (TNC) run to tighter tolerances than its defaults; at the defaults its own
#: posterior misses a correlation view by 2.8e-4 (absolute) and a variance view by 1.5e-7 (relative)
TNC_TIGHT = {"maxfun": 100000, "ftol": 1e-15, "xtol": 1e-15, "gtol": 1e-15, "stepmx": 1, "maxCGit": 50}
#: for skfolio's CVaR root search: under SciPy 1.17, TNC stops with "linear search failed" once xtol or gtol
#: is tightened (before, 1e-14 ran); a tight ftol and a bounded step still converge
TNC_CVAR = {"maxfun": 100000, "ftol": 1e-15, "stepmx": 1}
#: skfolio's primal form (CVXPY, Clarabel) to tight tolerances
CLARABEL_TIGHT = {"tol_gap_abs": 1e-14, "tol_gap_rel": 1e-14, "tol_feas": 1e-14, "tol_ktratio": 1e-10, "max_iter": 500}


@pytest.fixture
def tight_cvar_root(monkeypatch):
    """skfolio finds the VaR level of a CVaR view by ``scipy.optimize.root_scalar(..., xtol=1e-4)``: the
    posterior moves with that level at first order, so at 1e-4 it is only within ~5e-3 of the exact one
    (the CVaR itself is met to second order).  Tighten that search to machine precision."""
    root_scalar = sco.root_scalar

    def tight(f, **kwargs):
        kwargs.update(xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)
        return root_scalar(f, **kwargs)

    monkeypatch.setattr(sco, "root_scalar", tight)


def _skfolio(moves, solver_params=None, solver="TNC", **views) -> np.ndarray:
    from skfolio.prior import EntropyPooling

    ep = EntropyPooling(solver=solver, solver_params=solver_params, **views)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep.fit(moves)
    return np.asarray(ep.return_distribution_.sample_weight)


def _variance(moves, j, m=1.5) -> float:
    """``m^2`` times the prior (equal-weight, biased) variance of column ``j``, as skfolio reads it."""
    return float(m**2 * moves[:, j].var())


def test_skfolio_mean_equality(moves):
    q, rep = apply_views([{"of": "EQ.SPX", "mean": -0.002}], moves, FACTORS)
    ref = _skfolio(moves, mean_views=["x0 == -0.002"])
    assert rep.holds.all()
    assert _gap(q, ref, np.full(S, 1 / S)) < 1e-6  # 1e-7, at skfolio's defaults


def test_skfolio_mean_inequality(moves):
    q, rep = apply_views([{"of": "EQ.NDX", "mean": 0.0015, "op": ">="}], moves, FACTORS)
    ref = _skfolio(moves, mean_views=["x1 >= 0.0015"])
    assert rep.loc["views[0]", "posterior"] == pytest.approx(0.0015, rel=1e-9)  # binding
    assert _gap(q, ref, np.full(S, 1 / S)) < 1e-6  # 6e-10


def test_skfolio_variance(moves):
    q, rep = apply_views([{"of": "EQ.SPX", "vol": "x1.5"}], moves, FACTORS)
    ref = _skfolio(moves, variance_views=[f"x0 == {_variance(moves, 0)!r}"], solver_params=TNC_TIGHT)
    assert rep.loc["views[0]", "posterior"] == pytest.approx(1.5 * moves[:, 0].std(), rel=1e-12)
    assert _gap(q, ref, np.full(S, 1 / S)) < 1e-6  # 5e-9 (3e-7 at skfolio's defaults)
    # stage 2 holds the mean at its stage-1 value, here the prior's
    assert q @ moves[:, 0] == pytest.approx(moves[:, 0].mean(), rel=1e-12)


def test_skfolio_correlation(moves):
    q, rep = apply_views([{"of": ["EQ.SPX", "FX.EURUSD"], "corr": 0.7}], moves, FACTORS)
    ref = _skfolio(moves, correlation_views=["(x0, x3) == 0.7"], solver_params=TNC_TIGHT)
    assert rep.loc["views[0]", "posterior"] == pytest.approx(0.7, abs=1e-12)
    assert _gap(q, ref, np.full(S, 1 / S)) < 1e-6  # 2e-8 (3e-3 at skfolio's defaults)
    # stage 3 holds both means and variances at their prior values
    for j in (0, 3):
        x = moves[:, j]
        assert q @ x == pytest.approx(x.mean(), rel=1e-10)
        assert q @ (x - q @ x) ** 2 == pytest.approx(x.var(), rel=1e-12)


def test_skfolio_cvar(moves, tight_cvar_root):
    # the mean move of SPX over its worst 5% is -4.5% (a CVaR95 of 4.5%; the prior's is 2.7%)
    q, rep = apply_views([{"of": "EQ.SPX", "cvar": -0.045, "confidence": 0.95}], moves, FACTORS)
    ref = _skfolio(moves, cvar_views=["x0 == 0.045"], cvar_beta=0.95)  # skfolio's TNC settings: the closest here
    assert rep.loc["views[0]", "prior"] == pytest.approx(-0.0268256, rel=1e-5)
    assert rep.loc["views[0]", "posterior"] == pytest.approx(-0.045, rel=1e-12)
    assert _gap(q, ref, np.full(S, 1 / S)) < 1e-6  # 1e-7 (5e-3 with skfolio's root search as it is)


def test_skfolio_combination(moves):
    views = [{"of": "EQ.NDX", "mean": -0.001}, {"of": "IR.USD.10Y", "mean": 0.0001, "op": "<="},
             {"of": "EQ.SPX", "vol": "x1.5"}, {"of": ["EQ.SPX", "EQ.NDX"], "corr": 0.8}]
    q, rep = apply_views(views, moves, FACTORS)
    ref = _skfolio(moves, solver="CLARABEL", solver_params=CLARABEL_TIGHT, mean_views=["x1 == -0.001", "x2 <= 0.0001"],
                   variance_views=[f"x0 == {_variance(moves, 0)!r}"], correlation_views=["(x0, x1) == 0.8"])
    assert rep.holds.all()
    assert list(rep.stage) == [1, 1, 2, 3]
    assert _gap(q, ref, np.full(S, 1 / S)) < 1e-6  # 2e-9 (TNC: 2e-7 at best, 2e-3 at its defaults)


def _primal(moves, views, extra=lambda q: []) -> np.ndarray:
    """The stage problem solved in its primal form by CVXPY (Clarabel), with the CVaR view written through
    the dual representation ``CVaR_q(L) = max {w'L / alpha : 0 <= w <= q, sum w = alpha}`` [RU02]: an
    exact, convex form of ``CVaR >= c`` that shares nothing with the cutting planes of the module."""
    q, w = cp.Variable(S), cp.Variable(S)
    cons = [q >= 0, cp.sum(q) == 1] + views(q, w) + extra(q)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.kl_div(q, np.full(S, 1 / S)))), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL", **{k: v for k, v in CLARABEL_TIGHT.items() if k != "tol_ktratio"})
    out = np.maximum(q.value, 0.0)
    return out / out.sum()


def test_skfolio_combination_with_cvar(moves, tight_cvar_root):
    views = [{"of": "EQ.NDX", "mean": -0.001}, {"of": "IR.USD.10Y", "mean": 0.0001, "op": "<="},
             {"of": "EQ.SPX", "vol": "x1.5"}, {"of": ["EQ.SPX", "EQ.NDX"], "corr": 0.8},
             {"of": "FX.EURUSD", "cvar": -0.015, "confidence": 0.9}]
    q, rep = apply_views(views, moves, FACTORS)
    assert rep.holds.all()
    p = np.full(S, 1 / S)
    # skfolio's dual solver misses its own views by up to 5e-7 (relative) here and each stage carries the
    # previous one's error into the moments it holds: its posterior moves by 1.3e-5 when the variance
    # target moves by one ulp (Clarabel and the tighter TNC settings fail on this case)
    ref = _skfolio(moves, solver_params=TNC_CVAR, mean_views=["x1 == -0.001", "x2 <= 0.0001"],
                   variance_views=[f"x0 == {_variance(moves, 0)!r}"], correlation_views=["(x0, x1) == 0.8"],
                   cvar_views=["x3 == 0.015"], cvar_beta=0.9)
    assert _gap(q, ref, p) < 5e-5
    # the same stages solved in the primal by Clarabel, with the CVaR in its dual representation: 2e-9
    x0, x1, loss = moves[:, 0], moves[:, 1], -moves[:, 3]

    def stage1(q, w):
        return [q @ x1 == -0.001, q @ moves[:, 2] <= 0.0001, w >= 0, w <= q, cp.sum(w) == 0.1, w @ loss >= 0.1 * 0.015]

    q1 = _primal(moves, stage1)
    m0, var0 = q1 @ x0, _variance(moves, 0)
    q2 = _primal(moves, stage1, lambda q: [q @ x0 == m0, q @ (x0 - m0) ** 2 == var0])
    m1 = q2 @ x1
    v1 = q2 @ (x1 - m1) ** 2
    q3 = _primal(moves, stage1, lambda q: [q @ x0 == m0, q @ (x0 - m0) ** 2 == var0, q @ x1 == m1,
                                           q @ (x1 - m1) ** 2 == v1,
                                           q @ ((x0 - m0) * (x1 - m1)) == 0.8 * np.sqrt(var0 * v1)])
    assert _gap(q, q3, p) < 1e-6


# ------------------------------------------------------------------------------------------------
# the solver: closed forms and identities
# ------------------------------------------------------------------------------------------------


def test_three_point_mean_view_closed_form():
    # uniform on {-1, 0, 1} with E[x] = 1/2: q ~ exp(l x), t = e^l solves (t - 1/t) / (t + 1 + 1/t) = 1/2,
    # i.e. t^2 - t - 3 = 0
    x = np.array([-1.0, 0.0, 1.0])
    q = entropy_pooling(np.full(3, 1 / 3), x[None, :], np.array([0.5]))
    t = (1 + np.sqrt(13)) / 2
    expected = np.array([1 / t, 1.0, t]) / (1 / t + 1 + t)
    np.testing.assert_allclose(q, expected, rtol=1e-14)
    assert relative_entropy(q, np.full(3, 1 / 3)) == pytest.approx(np.sum(expected * np.log(3 * expected)), rel=1e-13)


def test_binding_and_slack_inequalities_closed_form():
    x = np.array([-1.0, 0.0, 1.0])
    p = np.full(3, 1 / 3)
    # E[x] >= 1/2 binds: the equality's posterior; E[x] >= -1/2 is slack: the prior
    t = (1 + np.sqrt(13)) / 2
    np.testing.assert_allclose(entropy_pooling(p, G=-x[None, :], h=np.array([-0.5])),
                               np.array([1 / t, 1.0, t]) / (1 / t + 1 + t), rtol=1e-14)
    np.testing.assert_array_equal(entropy_pooling(p, G=-x[None, :], h=np.array([0.5])), p)


def test_no_constraints_returns_the_prior_exactly():
    p = np.random.default_rng(1).dirichlet(np.ones(50))
    np.testing.assert_array_equal(entropy_pooling(p), p)


def test_zero_prior_scenarios_stay_at_zero():
    p = np.array([0.0, 0.25, 0.25, 0.5, 0.0])
    x = np.array([-10.0, -1.0, 0.0, 1.0, 10.0])
    q = entropy_pooling(p, x[None, :], np.array([0.2]))
    assert q[0] == 0.0 and q[4] == 0.0
    assert q @ x == pytest.approx(0.2, abs=1e-14)


@pytest.mark.parametrize("p0", [0.5, 0.25, 0.1])
def test_effective_scenarios_two_point(p0):
    q = np.array([p0, 1 - p0])
    assert effective_scenarios(q) == pytest.approx(np.exp(-p0 * np.log(p0) - (1 - p0) * np.log(1 - p0)), rel=1e-14)


def test_effective_scenarios_known_values():
    assert effective_scenarios(np.full(S, 1 / S)) == pytest.approx(S, rel=1e-12)
    assert effective_scenarios(np.array([0.5, 0.5])) == pytest.approx(2.0, rel=1e-15)
    assert effective_scenarios(np.array([1.0, 0.0, 0.0])) == 1.0
    assert relative_entropy(np.full(4, 0.25), np.full(4, 0.25)) == 0.0
    assert relative_entropy(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == np.inf


def test_no_views_returns_the_prior_exactly(moves):
    p = np.random.default_rng(3).dirichlet(np.ones(S))
    q, rep = apply_views([], moves, FACTORS, prior=p)
    np.testing.assert_array_equal(q, p)
    assert rep.empty and list(rep.columns) == ["view", "statistic", "op", "target", "prior", "posterior", "holds",
                                               "stage"]
    assert rep.attrs["relative_entropy"] == 0.0


@pytest.mark.parametrize("view", [
    {"of": "EQ.SPX", "mean": "x1"},
    {"of": "EQ.SPX", "vol": "x1"},
    {"of": ["EQ.SPX", "EQ.NDX"], "corr": "x1"},
    {"of": "EQ.SPX", "mean": "x0.5", "op": "<="},          # the prior's mean is negative: slack
    {"of": "EQ.SPX", "cvar": "x1", "confidence": 0.95},
    {"of": "EQ.SPX", "cvar": "x0.5", "confidence": 0.95, "op": "<="},   # tail mean <= half the prior's
    {"of": "pnl", "cvar": "x0.9", "confidence": 0.99, "op": ">="},
    {"of": "pnl", "var": "x1", "confidence": 0.99, "op": ">="},
])
def test_a_view_the_prior_meets_leaves_it(moves, pnl, view):
    q, rep = apply_views([view], moves, FACTORS, pnl=pnl)
    np.testing.assert_allclose(q, np.full(S, 1 / S), rtol=1e-10, atol=0)
    assert rep.holds.all()


# ------------------------------------------------------------------------------------------------
# views on factors and on the P&L
# ------------------------------------------------------------------------------------------------


def _tail_mean(x, q, share, upper=False):
    """Mean of ``x`` over its lowest (highest) ``share`` of probability, by sorting (an independent route)."""
    order = np.argsort(-x if upper else x)
    w = q[order]
    taken = np.minimum(w, np.maximum(share - (np.cumsum(w) - w), 0.0))
    return float(taken @ x[order] / share)


def test_quantile_view_sets_the_probability_below_its_value(moves):
    views = [{"of": "EQ.SPX", "quantile": "-3%", "prob": 0.05}, {"of": "EQ.NDX", "quantile": "+2%", "prob": 0.9,
                                                                  "op": "<="}]
    q, rep = apply_views(views, moves, FACTORS)
    assert q[moves[:, 0] <= np.log(0.97)].sum() == pytest.approx(0.05, rel=1e-12)
    # the 90% quantile <= +2%: at least 90% of the probability at or below log(1.02)
    assert q[moves[:, 1] <= np.log(1.02)].sum() >= 0.9 - 1e-12
    assert rep.loc["views[0]", "statistic"] == f"P(EQ.SPX <= {np.log(0.97):.10g})"
    assert rep.loc["views[0]", "target"] == 0.05
    assert rep.holds.all()


def test_upper_tail_cvar_of_a_rate(moves):
    # the mean rise of the 10y over its highest 5% of probability is 30bp (an absolute change)
    q, rep = apply_views([{"of": "IR.USD.10Y", "cvar": "+30bp", "confidence": 0.95, "tail": "upper"}], moves,
                         FACTORS)
    assert _tail_mean(moves[:, 2], q, 0.05, upper=True) == pytest.approx(0.003, rel=1e-10)
    assert rep.loc["views[0]", "prior"] == pytest.approx(_tail_mean(moves[:, 2], np.full(S, 1 / S), 0.05, True))


def test_lighter_tail_cvar_and_two_cvar_views(moves):
    # lighter tails (a root search on the VaR level) on two factors at once
    views = [{"of": "EQ.SPX", "cvar": "x0.8", "confidence": 0.95}, {"of": "EQ.NDX", "cvar": "x0.8", "confidence": 0.95}]
    q, rep = apply_views(views, moves, FACTORS)
    p = np.full(S, 1 / S)
    for j in (0, 1):
        assert _tail_mean(moves[:, j], q, 0.05) == pytest.approx(0.8 * _tail_mean(moves[:, j], p, 0.05), rel=1e-9)
    assert rep.holds.all()
    assert 0.0 < rep.attrs["relative_entropy"] < 0.1


def test_pnl_views(moves, pnl):
    # the prior's mean is -445, its VaR95 101k, its CVaR99 201k
    views = [{"of": "pnl", "mean": "-20k"}, {"of": "pnl", "cvar": "x1.2", "confidence": 0.99},
             {"of": "pnl", "var": "0.12%", "confidence": 0.95}, {"of": "EQ.SPX", "quantile": "-3%", "prob": 0.05}]
    q, rep = apply_views(views, moves, FACTORS, pnl=pnl, nav=1e8)
    p = np.full(S, 1 / S)
    assert q @ pnl == pytest.approx(-2e4, rel=1e-10)
    assert -_tail_mean(pnl, q, 0.01) == pytest.approx(1.2 * -_tail_mean(pnl, p, 0.01), rel=1e-9)
    assert q[pnl <= -1.2e5].sum() == pytest.approx(0.05, rel=1e-10)  # VaR95 of 0.12% of a 100m NAV
    assert rep.holds.all()
    assert rep.loc["views[1]", "statistic"] == "CVaR99(pnl), a loss"
    assert rep.loc["views[1]", "target"] == pytest.approx(1.2 * rep.loc["views[1]", "prior"])


def test_pnl_vol_and_correlation_with_a_factor(moves, pnl):
    # the prior's correlation of the P&L with the 10y is -0.74
    q, rep = apply_views([{"of": "pnl", "vol": "x1.5"}, {"of": ["pnl", "IR.USD.10Y"], "corr": -0.5}], moves, FACTORS,
                         pnl=pnl)
    mean = q @ pnl
    assert np.sqrt(q @ (pnl - mean) ** 2) == pytest.approx(1.5 * pnl.std(), rel=1e-10)
    assert mean == pytest.approx(pnl.mean(), rel=1e-10)
    assert list(rep.stage) == [2, 3] and rep.holds.all()


def test_report_rows_and_figures(moves, pnl):
    views = [{"of": "EQ.SPX", "mean": "-1%"}, {"of": "EQ.NDX", "vol": "4%", "op": ">="}]
    q, rep = apply_views(views, moves, FACTORS)
    assert list(rep.index) == ["views[0]", "views[1]"]
    assert rep.loc["views[0]", "view"] == "mean(EQ.SPX) == -1%"
    assert rep.loc["views[0]", "target"] == pytest.approx(np.log(0.99))  # a simple return, as a log-return
    assert rep.loc["views[1]", "view"] == "vol(EQ.NDX) >= 4%"
    assert rep.loc["views[1]", "target"] == 0.04  # a vol is a scale, not converted
    assert rep.loc["views[1]", "posterior"] == pytest.approx(0.04, rel=1e-10)
    assert rep.attrs["effective_scenarios"] == pytest.approx(np.exp(special.entr(q).sum()))
    assert rep.attrs["relative_entropy"] == pytest.approx(np.sum(q * np.log(q * S)))
    assert 1 < rep.attrs["effective_scenarios"] < S
    assert q.sum() == pytest.approx(1.0, abs=1e-14) and (q > 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_random_views_hold(moves, seed):
    rng = np.random.default_rng(seed)
    j, k = rng.choice(4, 2, replace=False)
    views = [{"of": FACTORS[j], "mean": float(np.quantile(moves[:, j], rng.uniform(0.3, 0.7)))},
             {"of": FACTORS[k], "vol": f"x{rng.uniform(0.8, 1.3):.3f}"},
             {"of": [FACTORS[j], FACTORS[k]], "corr": float(rng.uniform(-0.5, 0.5))},
             {"of": FACTORS[k], "cvar": f"x{rng.uniform(0.9, 1.4):.3f}", "confidence": 0.9}]
    q, rep = apply_views(views, moves, FACTORS)
    assert rep.holds.all()
    assert rep.attrs["relative_entropy"] >= 0


def test_prior_with_zeros_and_unequal_weights(moves, pnl):
    p = np.random.default_rng(5).dirichlet(np.ones(S))
    p[:100] = 0.0
    p /= p.sum()
    views = [{"of": "EQ.SPX", "mean": "-0.5%"}, {"of": "pnl", "cvar": "x1.3", "confidence": 0.99},
             {"of": ["EQ.SPX", "EQ.NDX"], "corr": 0.75}]
    q, rep = apply_views(views, moves, FACTORS, prior=p, pnl=pnl)
    assert (q[:100] == 0).all() and q.sum() == pytest.approx(1.0, abs=1e-14)
    assert rep.holds.all()
    assert rep.attrs["effective_scenarios_prior"] == pytest.approx(effective_scenarios(p))
    assert rep.attrs["relative_entropy"] == pytest.approx(relative_entropy(q, p))


def test_posterior_moves_continuously_with_the_targets(moves):
    # one ulp on a target moves the posterior by rounding only (skfolio's TNC moves by 1e-5 on the
    # combination with a CVaR view)
    def views(var):
        return [{"of": "EQ.NDX", "mean": -0.001}, {"of": "EQ.SPX", "vol": np.sqrt(var)},
                {"of": ["EQ.SPX", "EQ.NDX"], "corr": 0.8}, {"of": "FX.EURUSD", "cvar": -0.015, "confidence": 0.9}]

    var = _variance(moves, 0)
    q1, _ = apply_views(views(var), moves, FACTORS)
    q2, _ = apply_views(views(np.nextafter(var, 1.0)), moves, FACTORS)
    assert _gap(q1, q2, np.full(S, 1 / S)) < 1e-9


def test_bundled_history_moves(history):
    from stressgrid.scenarios import WindowSpec, daily_moves

    mv, _ = daily_moves(history, ["EQ.SPX", "IR.USD.10Y", "CMD.WTI"], WindowSpec(end="2017-12-29", lookback_days=750))
    # 743 daily moves; the prior's mean SPX move over its worst 3% is -2.3%, the SPX-WTI correlation 0.31
    views = [{"of": "EQ.SPX", "cvar": "-3%", "confidence": 0.97}, {"of": "IR.USD.10Y", "mean": "-2bp"},
             {"of": ["EQ.SPX", "CMD.WTI"], "corr": 0.6}]
    q, rep = apply_views(views, mv.to_numpy(), list(mv.columns))
    assert rep.holds.all()
    assert rep.loc["views[0]", "target"] == pytest.approx(np.log(0.97))
    assert 1 < rep.attrs["effective_scenarios"] < len(mv)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------


def test_contradictory_views_on_one_statistic(moves):
    with pytest.raises(ConfigError) as e:
        apply_views([{"of": "EQ.SPX", "mean": 0.002, "op": ">="}, {"of": "EQ.SPX", "mean": 0.001, "op": "<="}],
                    moves, FACTORS, where=WHERE)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 2
    assert msg.startswith(WHERE)
    assert "views[0] (mean(EQ.SPX) >= 0.002)" in msg and "views[1] (mean(EQ.SPX) <= 0.001)" in msg


def test_contradictory_views_on_different_statistics(moves):
    # 95% of the probability below -2% leaves no room for a mean of +1%
    views = [{"of": "EQ.NDX", "vol": "x1.1"}, {"of": "EQ.SPX", "quantile": "-2%", "prob": 0.95},
             {"of": "EQ.SPX", "mean": "+1%", "op": ">="}]
    with pytest.raises(ConfigError, match="contradictory views") as e:
        apply_views(views, moves, FACTORS, where=WHERE)
    msg = str(e.value)
    assert "views[1] (quantile(EQ.SPX, prob=0.95) == -2%)" in msg and "views[2] (mean(EQ.SPX) >= +1%)" in msg
    assert "views[0]" not in msg  # a smallest contradictory set


def test_contradiction_in_a_later_stage(moves):
    # the correlation stage holds both means; with them, a perfect negative correlation is out of reach
    views = [{"of": "EQ.SPX", "mean": "-0.5%"}, {"of": ["EQ.SPX", "EQ.NDX"], "corr": -0.99}]
    with pytest.raises(ConfigError) as e:
        apply_views(views, moves, FACTORS, where=WHERE)
    assert "views[1] (corr(EQ.SPX, EQ.NDX) == -0.99)" in str(e.value)


@pytest.mark.parametrize("view, words", [
    ({"of": "EQ.SPX", "mean": "-80%"}, "cannot reach"),
    ({"of": "EQ.SPX", "cvar": "-60%", "confidence": 0.95}, "beyond the scenarios"),
    ({"of": "EQ.SPX", "quantile": "-90%", "prob": 0.05}, "no scenario of EQ.SPX lies at or below"),
    ({"of": "pnl", "var": "1bn", "confidence": 0.99}, "no scenario of pnl lies at or below"),
])
def test_targets_beyond_the_scenarios(moves, pnl, view, words):
    with pytest.raises(ConfigError, match=words) as e:
        apply_views([{"of": "EQ.NDX", "mean": 0.0}, view], moves, FACTORS, pnl=pnl, where=WHERE)
    assert "field 'views[1]'" in str(e.value)


def test_infeasible_constraints_in_the_core():
    x = np.array([-1.0, 0.0, 1.0])
    p = np.full(3, 1 / 3)
    with pytest.raises(ConfigError, match="contradictory views up and down"):
        entropy_pooling(p, G=np.vstack([-x, x]), h=np.array([-0.5, 0.2]), labels=["up", "down"])
    with pytest.raises(ConfigError, match="far: no probabilities"):
        entropy_pooling(p, x[None, :], np.array([2.0]), labels=["far"])
    with pytest.raises(ConfigError, match="edge: met only by giving zero probability"):
        entropy_pooling(p, x[None, :], np.array([1.0]), labels=["edge"])


@pytest.mark.parametrize("view, words", [
    ({"of": "EQ.SPX"}, "exactly one of mean, vol, corr, quantile, var, cvar"),
    ({"of": "EQ.SPX", "mean": "1%", "vol": "2%"}, "this one sets mean, vol"),
    ({"of": "EQ.SPX", "mean": "abc"}, "'abc' is not a number"),
    ({"of": "EQ.SPX", "mean": True}, "True is not a number"),
    ({"of": "EQ.SPX", "vol": "-3%"}, "'-3%' is not a positive number"),
    ({"of": "EQ.SPX", "vol": 0}, "must be positive"),
    ({"of": ["EQ.SPX", "EQ.NDX"], "corr": 1.5}, "not in \\[-1, 1\\]"),
    ({"of": ["EQ.SPX"], "corr": 0.3}, "names two different factors"),
    ({"of": "EQ.SPX", "corr": 0.3}, "is a list of two factors"),
    ({"of": ["EQ.SPX", "EQ.NDX"], "mean": 0.3}, "'of' is a list only for a 'corr' view"),
    ({"of": "EQ.SPX", "quantile": "-10%"}, "'prob' is required"),
    ({"of": "EQ.SPX", "quantile": "-10%", "prob": 1.5}, "prob"),
    ({"of": "EQ.SPX", "mean": "1%", "prob": 0.3}, "'prob' = 0.3 is only for a quantile view"),
    ({"of": "EQ.SPX", "cvar": "-10%"}, "'confidence' is required by a cvar view"),
    ({"of": "EQ.SPX", "var": "10%", "confidence": 0.99}, "'var' is a view on the book's P&L"),
    ({"of": "pnl", "cvar": "1m", "confidence": 0.99, "tail": "upper"}, "'tail' is only for the cvar of a factor"),
    ({"of": "pnl", "cvar": "-1m", "confidence": 0.99}, "must be positive"),
    ({"of": "pnl", "mean": "1 million"}, "is not an amount"),
    ({"of": "spx", "mean": "1%"}, "'of': factor 'spx'"),
    ({"of": "EQ.SPX", "mean": "1%", "op": "="}, "op"),
    ({"of": "EQ.SPX", "mean": "1%", "stat": "mean"}, "views\\[0\\].stat': Extra inputs are not permitted"),
])
def test_bad_view_syntax_names_the_field_and_value(view, words):
    with pytest.raises(ConfigError, match=words) as e:
        parse_views([view], WHERE)
    msg = str(e.value)
    assert msg.startswith(f"{WHERE}, field 'views[0]") and "\n" not in msg and e.value.exit_code == 2


def test_unknown_factor_and_missing_inputs(moves):
    with pytest.raises(ConfigError, match="unknown factor 'EQ.DAX'; the book's factors are EQ.SPX"):
        apply_views([{"of": "EQ.DAX", "mean": "1%"}], moves, FACTORS, where=WHERE)
    with pytest.raises(ConfigError, match="no P&L is given"):
        apply_views([{"of": "pnl", "mean": "-1m"}], moves, FACTORS, where=WHERE)
    with pytest.raises(ConfigError, match="share of NAV, but the batch gives no 'nav'"):
        apply_views([{"of": "pnl", "mean": "-1%"}], moves, FACTORS, pnl=np.linspace(-1, 1, S), where=WHERE)


def test_view_syntax_round_trip():
    views = parse_views([
        {"of": "IR.USD.10Y", "mean": "+100bp"},
        {"of": "EQ.SPX", "mean": "-5%", "op": "<="},
        {"of": "EQ.SPX", "vol": "x1.5"},
        {"of": ["EQ.SPX", "IR.USD.10Y"], "corr": 0.5},
        {"of": "EQ.SPX", "quantile": "-10%", "prob": 0.05},
        {"of": "EQ.SPX", "cvar": "-12%", "confidence": 0.95},
        {"of": "IR.USD.10Y", "cvar": "+60bp", "confidence": 0.95, "tail": "upper"},
        {"of": "pnl", "mean": "-1m"},
        {"of": "pnl", "var": "2%", "confidence": 0.99},
        {"of": "pnl", "cvar": "x1.5", "confidence": 0.99},
    ])
    assert [v.text() for v in views] == [
        "mean(IR.USD.10Y) == +100bp", "mean(EQ.SPX) <= -5%", "vol(EQ.SPX) == x1.5",
        "corr(EQ.SPX, IR.USD.10Y) == 0.5", "quantile(EQ.SPX, prob=0.05) == -10%",
        "cvar(EQ.SPX, confidence=0.95) == -12%", "cvar(IR.USD.10Y, confidence=0.95, tail=upper) == +60bp",
        "mean(pnl) == -1m", "var(pnl, confidence=0.99) == 2%", "cvar(pnl, confidence=0.99) == x1.5"]
    assert views[0].parsed_target().value == pytest.approx(0.01)
    assert views[1].parsed_target().value == pytest.approx(np.log(0.95))
    assert views[7].parsed_target().value == -1e6
    assert (views[8].parsed_target().kind, views[8].parsed_target().value) == ("nav", pytest.approx(0.02))
    assert (views[2].parsed_target().kind, views[2].parsed_target().value) == ("rel", 1.5)
    assert isinstance(views[0], View) and parse_views(views) == views
