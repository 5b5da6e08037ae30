"""Mean-CVaR: against skfolio and riskfolio-lib on the same scenarios, against the full LP, identities."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction

from stressgrid.core import ConfigError, DataError, InfeasibleError, var_cvar
from stressgrid.portfolios import Constraints, FactorBand, MeanCVaR, compile_constraints

from portfolio_data import ASSET_CLASS, synthetic_returns

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 500}


def skfolio_min_cvar(R, alpha, **kw):
    return MeanRisk(risk_measure=RiskMeasure.CVAR, cvar_beta=alpha, solver_params=TIGHT, **kw).fit(R).weights_


def riskfolio_min_cvar(R, alpha):
    import riskfolio as rp

    port = rp.Portfolio(returns=pd.DataFrame(R, columns=[f"a{i}" for i in range(R.shape[1])]))
    port.assets_stats(method_mu="hist", method_cov="hist")
    port.alpha = 1.0 - alpha
    port.solvers = ["CLARABEL"]
    port.sol_params = {"CLARABEL": TIGHT}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = port.optimization(model="Classic", rm="CVaR", obj="MinRisk", hist=True)
    return w.to_numpy().ravel()


def cvar_of(R, w, alpha, p=None):
    return var_cvar(R @ w, alpha, p)[1]


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_min_cvar_matches_skfolio_and_riskfolio_on_history(history_returns, alpha):
    R = history_returns
    ours = MeanCVaR(alpha=alpha).fit(R)
    for name, w in (("skfolio", skfolio_min_cvar(R, alpha)), ("riskfolio", riskfolio_min_cvar(R, alpha))):
        ref = cvar_of(R, w, alpha)
        assert ours.cvar_ == pytest.approx(ref, rel=1e-6), name
        assert ours.cvar_ <= ref * (1 + 1e-9), name  # the exact optimum is never above a solver's
        np.testing.assert_allclose(ours.weights_, w, atol=2e-4, err_msg=name)


def test_min_cvar_matches_peers_on_synthetic_with_lp_method(synthetic):
    R = synthetic(3000, 30, seed=7)
    cp_ = MeanCVaR(alpha=0.95).fit(R)
    lp = MeanCVaR(alpha=0.95, method="lp", solver_options=TIGHT).fit(R)
    sk = skfolio_min_cvar(R, 0.95)
    for w in (lp.weights_, sk):
        assert cp_.cvar_ == pytest.approx(cvar_of(R, w, 0.95), rel=1e-6)
    np.testing.assert_allclose(cp_.weights_, sk, atol=1e-4)


def test_objective_equals_reduction_code_and_certificate(history_returns):
    R = history_returns
    m = MeanCVaR(alpha=0.975).fit(R)
    var, cvar = var_cvar(R @ m.weights_, 0.975)
    assert m.cvar_ == pytest.approx(cvar, rel=1e-12)
    assert m.var_ == pytest.approx(var, rel=1e-12)
    assert m.objective_value_ == pytest.approx(cvar, rel=1e-12)
    # the LP bound certifies the optimum
    assert m.bound_ <= m.cvar_ * (1 + 1e-12)
    assert m.cvar_ - m.bound_ <= 1e-8 * m.cvar_
    assert m.cvar_ >= m.var_


def test_scenario_weights_equal_replicated_scenarios(synthetic):
    """Integer probabilities k_s / K give the same optimum as the scenario repeated k_s times
    (checked against skfolio on the replicated matrix, which has no scenario weights)."""
    R = synthetic(400, 12, seed=3)
    k = np.random.default_rng(3).integers(1, 5, len(R))
    p = k / k.sum()
    ours = MeanCVaR(alpha=0.95).fit(R, sample_weight=p)
    rep = np.repeat(R, k, axis=0)
    w = skfolio_min_cvar(rep, 0.95)
    assert ours.cvar_ == pytest.approx(cvar_of(rep, w, 0.95), rel=1e-6)
    assert ours.cvar_ == pytest.approx(cvar_of(R, ours.weights_, 0.95, p), rel=1e-12)
    lp = MeanCVaR(alpha=0.95, method="lp", solver_options=TIGHT).fit(R, sample_weight=p)
    assert ours.cvar_ == pytest.approx(lp.cvar_, rel=1e-6)


def test_max_return_at_cvar_budget_matches_skfolio(history_returns):
    R = history_returns
    low = MeanCVaR(alpha=0.95).fit(R).cvar_
    budget = 1.5 * low
    ours = MeanCVaR(alpha=0.95, objective="max_return", cvar_budget=budget).fit(R)
    sk = MeanRisk(
        risk_measure=RiskMeasure.CVAR, cvar_beta=0.95, objective_function=ObjectiveFunction.MAXIMIZE_RETURN,
        max_cvar=budget, solver_params=TIGHT,
    ).fit(R).weights_
    mu = R.mean(axis=0)
    assert ours.expected_return_ == pytest.approx(mu @ sk, rel=1e-6)
    assert ours.cvar_ <= budget * (1 + 1e-9)
    assert ours.cvar_ == pytest.approx(budget, rel=1e-6)  # the budget binds


def test_frontier_is_monotone_and_matches_pointwise(synthetic):
    R = synthetic(1500, 10, seed=11)
    m = MeanCVaR(alpha=0.95)
    fr = m.frontier(R, n_points=5)
    assert list(fr.columns) == ["point", "cvar_budget", "cvar", "var", "expected_return"]
    assert np.all(np.diff(fr["expected_return"]) >= -1e-12)
    assert np.all(np.diff(fr["cvar"]) >= -1e-12)
    assert np.all(fr["cvar"] <= fr["cvar_budget"] * (1 + 1e-9))
    assert fr["cvar"].iloc[0] == pytest.approx(MeanCVaR(alpha=0.95).fit(R).cvar_, rel=1e-9)
    # an interior point re-solved alone (full LP) gives the same return
    b = fr["cvar_budget"].iloc[2]
    alone = MeanCVaR(alpha=0.95, objective="max_return", cvar_budget=b, method="lp", solver_options=TIGHT).fit(R)
    assert fr["expected_return"].iloc[2] == pytest.approx(alone.expected_return_, rel=1e-6)
    assert m.frontier_weights_.shape == (5, 10)


def rich_constraints(N, w0, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.normal(0, 1, (N, 3))
    ac = np.array(["equity"] * (N // 2) + ["rates"] * (N - N // 2))
    sleeve = np.array(["trend", "carry"] * (N // 2) + ["carry"] * (N % 2))
    expo = B.T @ w0
    return Constraints(
        budget=1.0, lower=-0.25, upper=0.35, max_gross=1.5,
        groups={"asset_class": ac, "sleeve": sleeve},
        group_bounds={"asset_class": {"equity": (0.3, 0.7)}, "sleeve": {"trend": (-0.1, 0.6)}},
        max_turnover=0.6, turnover_penalty=2e-4,
        max_position=np.full(N, 0.3), max_trade=np.full(N, 0.2),
        frozen=[1, N - 1],
        factor=FactorBand(B, lower=expo - 0.2, upper=expo + 0.2, names=["f1", "f2", "f3"]),
    )


@pytest.mark.parametrize("objective", ["min_cvar", "max_return"])
def test_desk_constraints_hold_and_agree_with_full_lp(synthetic, objective):
    R = synthetic(2500, 16, seed=5)
    N = R.shape[1]
    w0 = np.full(N, 1.0 / N)
    cs = rich_constraints(N, w0)
    budget = 1.2 * cvar_of(R, w0, 0.95)
    kw = dict(alpha=0.95, objective=objective, cvar_budget=budget, constraints=cs)
    ours = MeanCVaR(**kw).fit(R, current_weights=w0)
    lp = MeanCVaR(method="lp", solver_options=TIGHT, **kw).fit(R, current_weights=w0)
    assert ours.objective_value_ == pytest.approx(lp.objective_value_, rel=1e-6)
    system = compile_constraints(cs, N, w0)
    viol = system.check(ours.weights_)
    assert max(viol.values()) <= 1e-8, viol
    w = ours.weights_
    assert abs(w.sum() - 1.0) <= 1e-9
    assert np.abs(w).sum() <= 1.5 + 1e-9
    assert np.abs(w - w0).sum() <= 0.6 + 1e-9
    assert np.all(np.abs(w - w0) <= 0.2 + 1e-9)
    np.testing.assert_allclose(w[[1, N - 1]], w0[[1, N - 1]], atol=1e-12)
    assert ours.turnover_ == pytest.approx(np.abs(w - w0).sum(), rel=1e-12)
    if objective == "max_return":
        assert ours.cvar_ <= budget * (1 + 1e-9)


def test_feasible_current_book_is_never_made_worse(history_returns):
    R = history_returns
    N = R.shape[1]
    rng = np.random.default_rng(0)
    for _ in range(3):
        w0 = rng.dirichlet(np.ones(N))
        cs = Constraints(max_turnover=0.3, turnover_penalty=1e-3)
        m = MeanCVaR(alpha=0.95, constraints=cs).fit(R, current_weights=w0)
        assert m.objective_value_ <= cvar_of(R, w0, 0.95) + 1e-12
        assert m.cvar_ <= cvar_of(R, w0, 0.95) + 1e-12


def test_warm_started_refits_equal_cold_fits(synthetic):
    """Re-solving the same estimator across changed scenarios gives what a fresh estimator gives."""
    warm = MeanCVaR(alpha=0.95, constraints=Constraints(upper=0.3))
    for seed in range(4):
        R = synthetic(2000, 20, seed=100 + seed)
        a = warm.fit(R).cvar_
        b = MeanCVaR(alpha=0.95, constraints=Constraints(upper=0.3)).fit(R).cvar_
        assert a == pytest.approx(b, rel=1e-9)


def test_infeasible_names_the_binding_family_and_can_fall_back(synthetic):
    R = synthetic(500, 8, seed=1)
    cs = Constraints(max_position=np.full(8, 0.1))   # 8 x 10% cannot make a fully invested book
    with pytest.raises(InfeasibleError, match="position_caps"):
        MeanCVaR(constraints=cs).fit(R)
    w0 = np.full(8, 0.125)
    m = MeanCVaR(constraints=cs, fallback="current").fit(R, current_weights=w0)
    assert m.status_ == "fallback"
    np.testing.assert_array_equal(m.weights_, w0)
    assert "position_caps" in m.diagnosis_ and "max_position" in m.diagnosis_
    assert m.cvar_ == pytest.approx(cvar_of(R, w0, 0.95), rel=1e-12)


def test_cvar_budget_below_the_minimum_is_diagnosed(synthetic):
    R = synthetic(500, 8, seed=2)
    low = MeanCVaR().fit(R).cvar_
    with pytest.raises(InfeasibleError, match="cvar_budget") as exc:
        MeanCVaR(objective="max_return", cvar_budget=0.5 * low).fit(R)
    assert f"{low:.6g}" in str(exc.value)


def test_group_conflict_is_diagnosed(history_returns):
    cs = Constraints(
        groups={"asset_class": ASSET_CLASS},
        group_bounds={"asset_class": {"equity": (0.0, 0.2), "fx": (0.0, 0.1), "commodity": (0.0, 0.1)}},
    )
    with pytest.raises(InfeasibleError, match="groups"):
        MeanCVaR(constraints=cs).fit(history_returns)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=1.0), "alpha"),
        (dict(objective="min_var"), "objective"),
        (dict(objective="max_return"), "cvar_budget"),
        (dict(method="simplex"), "method"),
        (dict(fallback="zero"), "fallback"),
    ],
)
def test_bad_settings_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MeanCVaR(**kwargs).fit(np.ones((10, 2)))


def test_bad_inputs_raise_clear_errors():
    R = synthetic_returns(50, 3)
    with pytest.raises(DataError, match=r"returns\[4, 1\]"):
        bad = R.copy()
        bad[4, 1] = np.nan
        MeanCVaR().fit(bad)
    with pytest.raises(ConfigError, match="sum to 1"):
        MeanCVaR().fit(R, sample_weight=np.full(50, 0.01))
    with pytest.raises(ConfigError, match="sample_weight"):
        MeanCVaR().fit(R, sample_weight=np.ones(49) / 49)
    with pytest.raises(ConfigError, match="current_weights"):
        MeanCVaR(constraints=Constraints(max_turnover=0.1)).fit(R)
    with pytest.raises(ConfigError, match=r"constraints.upper"):
        MeanCVaR(constraints=Constraints(upper=[0.5, 0.5])).fit(R)
    with pytest.raises(ConfigError, match="unbounded"):
        MeanCVaR(constraints=Constraints(lower=-np.inf, upper=np.inf)).fit(
            np.column_stack([np.ones(50) * 0.01, -np.ones(50) * 0.01, np.zeros(50)]) + 0.001
        )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    S=st.integers(20, 400),
    N=st.integers(2, 12),
    seed=st.integers(0, 10_000),
    alpha=st.sampled_from([0.9, 0.95, 0.99]),
    long_short=st.booleans(),
)
def test_cutting_plane_equals_full_lp(S, N, seed, alpha, long_short):
    R = synthetic_returns(S, N, seed=seed, k=2)
    cs = Constraints(lower=-0.5, upper=1.0, max_gross=2.0) if long_short else Constraints()
    a = MeanCVaR(alpha=alpha, constraints=cs).fit(R)
    b = MeanCVaR(alpha=alpha, constraints=cs, method="lp", solver="HIGHS").fit(R)
    assert a.cvar_ == pytest.approx(b.cvar_, rel=1e-6, abs=1e-12)
    assert a.cvar_ <= b.cvar_ + 1e-12


def test_a_solve_that_stops_early_is_reported_not_returned(synthetic, monkeypatch):
    """If the aggregation hits its round limit, the estimator raises (or falls back), never returns
    the unfinished weights as optimal."""
    import stressgrid.portfolios._cvar_solver as solver_mod

    init = solver_mod.CutPlaneCVaR.__init__

    def short(self, *a, **k):
        init(self, *a, **k)
        self.max_rounds, self.phase1_max_iter = 1, 0   # one LP from a poor partition

    monkeypatch.setattr(solver_mod.CutPlaneCVaR, "__init__", short)
    R = synthetic(20000, 20, seed=4)
    with pytest.raises(InfeasibleError, match="stopped before the optimum"):
        MeanCVaR().fit(R)
    w0 = np.full(20, 0.05)
    m = MeanCVaR(fallback="current").fit(R, current_weights=w0)
    assert m.status_ == "fallback" and "stopped before the optimum" in m.diagnosis_
    np.testing.assert_array_equal(m.weights_, w0)
