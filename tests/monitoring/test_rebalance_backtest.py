"""Portfolio weights, asset returns and the rebalancing backtest against closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError, History
from stressgrid.monitoring import (
    asset_returns,
    gmv_weights,
    min_variance_weights,
    performance,
    proportional_costs,
    rebalance_backtest,
    risk_parity_weights,
    run_walk_forward,
)


def _cov(seed=0, k=6):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((300, k)) @ (rng.standard_normal((k, k)) * 0.4 + np.eye(k))
    return np.cov(a * 0.01, rowvar=False)


def test_gmv_closed_form():
    s = _cov()
    w = gmv_weights(s)
    ref = np.linalg.inv(s) @ np.ones(6)
    assert np.allclose(w, ref / ref.sum(), rtol=1e-10)


def test_long_only_min_variance_is_the_gmv_when_that_is_long_and_kkt_otherwise():
    # a covariance whose unconstrained minimum variance portfolio is long: the two must agree
    s = np.diag([0.04, 0.09, 0.01]) + 0.002
    g = gmv_weights(s)
    assert (g > 0).all()
    assert np.allclose(min_variance_weights(s), g, atol=1e-9)
    # in general the KKT conditions of min w'Sw, 1'w = 1, w >= 0: (S w)_i = lam where w_i > 0 and
    # (S w)_i >= lam where w_i = 0, with lam = w'Sw
    sd = np.array([0.1, 0.3, 0.2, 0.25])
    c = np.array([[1, 0.9, 0.2, 0.1], [0.9, 1, 0.3, 0.2], [0.2, 0.3, 1, 0.8], [0.1, 0.2, 0.8, 1]])
    designed = c * np.outer(sd, sd)
    assert (gmv_weights(designed) < 0).any()  # the long-only constraint binds here
    binding = 0
    for s in [designed] + [_cov(seed) for seed in range(4)]:
        w = min_variance_weights(s)
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
        grad = s @ w
        lam = w @ grad
        on = w > 1e-8
        assert np.allclose(grad[on], lam, rtol=1e-8)
        assert (grad[~on] >= lam * (1 - 1e-8)).all()
        binding += int((~on).any())
    assert binding >= 1


def test_min_variance_does_not_depend_on_earlier_solves():
    # the cvxpy problem is built once per size and re-solved; the answer is polished to the exact
    # solution on its support, so it is bit-identical whatever was solved before (as on a Ray worker)
    s = _cov(7, k=10)
    first = min_variance_weights(s)
    for seed in range(30):
        min_variance_weights(_cov(100 + seed, k=10))
    assert np.array_equal(min_variance_weights(s), first)


def test_risk_parity_closed_forms_and_equal_contributions():
    # two assets: w_i ~ 1/sigma_i whatever the correlation (Maillard, Roncalli and Teiletche 2010)
    for rho in (-0.5, 0.0, 0.7):
        s = np.array([[0.04, rho * 0.2 * 0.1], [rho * 0.2 * 0.1, 0.01]])
        w = risk_parity_weights(s)
        assert np.allclose(w, np.array([1 / 0.2, 1 / 0.1]) / 15.0, rtol=1e-10)
    # uncorrelated assets: inverse vol
    sd = np.array([0.1, 0.2, 0.4, 0.05])
    assert np.allclose(risk_parity_weights(np.diag(sd ** 2)), (1 / sd) / (1 / sd).sum(), rtol=1e-10)
    # general: equal risk contributions w_i (S w)_i
    s = _cov(3)
    w = risk_parity_weights(s)
    rc = w * (s @ w)
    assert np.allclose(rc, rc.mean(), rtol=1e-8) and (w > 0).all()


def test_risk_parity_matches_skfolio():
    skfolio = pytest.importorskip("skfolio")
    from skfolio.optimization import RiskBudgeting
    from skfolio.prior import EmpiricalPrior

    rng = np.random.default_rng(8)
    x = rng.standard_normal((500, 5)) @ (rng.standard_normal((5, 5)) * 0.3 + np.eye(5)) * 0.01
    s = np.cov(x, rowvar=False, ddof=1)
    model = RiskBudgeting(prior_estimator=EmpiricalPrior()).fit(x)
    ref = model.weights_
    # skfolio's empirical covariance is the ddof=1 sample covariance; the solver is accurate to ~1e-6
    assert np.allclose(risk_parity_weights(s), ref, atol=2e-5)


def _history(levels: dict, dates) -> History:
    return History(levels=pd.DataFrame(levels, index=pd.DatetimeIndex(dates, name="date")), source="test")


def test_asset_returns_prices_and_zero_coupon_bonds():
    dates = pd.to_datetime(["2020-01-06", "2020-01-07", "2020-01-10", "2020-01-13"])
    h = _history({"EQ.X": [100.0, 110.0, 99.0, 99.0], "IR.USD.10Y": [0.02, 0.02, 0.03, 0.03],
                  "CR.Y": [0.01, 0.01, 0.01, 0.01]}, dates)
    r = asset_returns(h, ["EQ.X", "IR.USD.10Y"])
    assert np.allclose(r["EQ.X"], [0.1, -0.1, 0.0])
    # unchanged yield over one day: carry exp(y dt) - 1; a 100bp rise over three days: 10y duration loss
    assert r["IR.USD.10Y"].iloc[0] == pytest.approx(np.expm1(0.02 / 365), rel=1e-12)
    assert r["IR.USD.10Y"].iloc[1] == pytest.approx(np.expm1(0.02 * 10 - 0.03 * (10 - 3 / 365)), rel=1e-12)
    assert r["IR.USD.10Y"].iloc[2] == pytest.approx(np.expm1(0.03 * 3 / 365), rel=1e-12)
    # a series that stops for weeks: the move across the gap is not a day's return
    gap = _history({"EQ.X": [100.0, 101.0, 150.0, 151.0]}, pd.to_datetime(["2020-01-06", "2020-01-07", "2020-03-02", "2020-03-03"]))
    g = asset_returns(gap, ["EQ.X"])
    assert list(g.index) == [pd.Timestamp("2020-01-07"), pd.Timestamp("2020-03-03")]
    assert np.allclose(g["EQ.X"], [0.01, 151 / 150 - 1])
    with pytest.raises(ConfigError, match="CR.Y have no asset return"):
        asset_returns(h, ["EQ.X", "CR.Y"])
    with pytest.raises(ConfigError, match="EQ.Z not in the history"):
        asset_returns(h, ["EQ.Z"])


def _weights(dates, table: list[list[float]], assets, label="sample", method="min_variance"):
    return pd.DataFrame([{"date": d, "forecaster": label, "method": method, "asset": a, "weight": w}
                         for d, ws in zip(dates, table) for a, w in zip(assets, ws)])


def test_single_asset_is_the_asset():
    idx = pd.bdate_range("2021-01-04", periods=4)
    r = pd.DataFrame({"A": [0.0, 0.1, -0.2, 0.125]}, index=idx)
    res = rebalance_backtest(r, _weights([idx[0], idx[1]], [[1.0], [1.0]], ["A"]))
    assert np.allclose(res.returns.iloc[:, 0], [0.1, -0.2, 0.125], rtol=0, atol=1e-15)
    row = res.summary.iloc[0]
    assert row["max_drawdown"] == pytest.approx(0.2)  # 1.1 -> 0.88
    assert row["turnover"] == 0.0 and row["costs"] == 0.0
    d = np.array([0.1, -0.2, 0.125])
    assert row["sharpe"] == pytest.approx(np.sqrt(252) * d.mean() / d.std(ddof=1))
    assert np.isnan(row["information_ratio"])


def test_drift_turnover_and_costs_by_hand():
    idx = pd.bdate_range("2021-01-04", periods=4)
    r = pd.DataFrame({"A": [0.0, 0.10, 0.0, 0.02], "B": [0.0, 0.0, 0.05, -0.01]}, index=idx)
    # rebalanced to 50/50 after days 0 and 1
    w = _weights([idx[0], idx[1]], [[0.5, 0.5], [0.5, 0.5]], ["A", "B"])
    res = rebalance_backtest(r, w, proportional_costs(10.0, ["A", "B"]))
    # day 1: 0.5 * 1.1 + 0.5 = 1.05; drift (0.55, 0.5)/1.05; trade back to 50/50 = |0.5 - 0.5238| * 2
    trade = 2 * abs(0.5 - 0.55 / 1.05)
    cost = trade * 10e-4
    day2 = (1 - cost) * (0.5 * 1.0 + 0.5 * 1.05) - 1
    day3 = (0.5 * 1.02 + 0.5 * 1.05 * 0.99) / (0.5 + 0.5 * 1.05) - 1
    assert np.allclose(res.returns.iloc[:, 0], [0.05, day2, day3], rtol=0, atol=1e-15)
    row = res.summary.iloc[0]
    years = 3 / 252
    assert row["turnover"] == pytest.approx(trade / years)
    assert row["costs"] == pytest.approx(cost / years)


def test_information_ratio_against_the_benchmark():
    idx = pd.bdate_range("2021-01-04", periods=6)
    r = pd.DataFrame({"A": [0, 0.01, -0.02, 0.03, 0.01, -0.01], "B": [0, 0.0, 0.01, -0.01, 0.02, 0.0]}, index=idx)
    w = pd.concat([_weights([idx[0]], [[1.0, 0.0]], ["A", "B"], "sample"),
                   _weights([idx[0]], [[0.0, 1.0]], ["A", "B"], "ewma")])
    res = rebalance_backtest(r, w, benchmark="sample")
    s = res.summary.set_index("forecaster")
    a = r["B"].to_numpy()[1:] - r["A"].to_numpy()[1:]
    assert s.loc["ewma", "information_ratio"] == pytest.approx(np.sqrt(252) * a.mean() / a.std(ddof=1))
    assert s.loc["ewma", "tracking_error"] == pytest.approx(np.sqrt(252) * a.std(ddof=1))
    with pytest.raises(ConfigError, match="'benchmark'"):
        rebalance_backtest(r, w, benchmark="dcc")


def test_costs_and_performance_helpers():
    f = proportional_costs({"A": 10.0, "default": 2.0}, ["A", "B", "C"])
    assert f(np.array([0.1, -0.2, 0.3])) == pytest.approx((0.1 * 10 + 0.2 * 2 + 0.3 * 2) / 1e4)
    with pytest.raises(ConfigError, match="'cost_bps'"):
        proportional_costs(-1.0)
    with pytest.raises(ConfigError, match="'Z' is not one of the assets"):
        proportional_costs({"Z": 1.0}, ["A"])
    p = performance(np.array([0.01, -0.01, 0.02]))
    assert p["max_drawdown"] == pytest.approx(0.01)


def test_walk_forward_weights_feed_the_backtest(returns):
    res = run_walk_forward(returns, ["sample", "ewma"], 100, 10, 20)
    bt = rebalance_backtest(returns, res.weights)
    assert set(bt.summary.forecaster) == {"sample", "ewma"} and set(bt.summary.method) == {"min_variance", "risk_parity"}
    # the first holding day is the day after the first forecast date
    assert bt.returns.index[0] == returns.index[100]
    assert (bt.summary.turnover > 0).all() and np.isfinite(bt.summary.sharpe).all()
