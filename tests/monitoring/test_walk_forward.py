"""Walk-forward validation: no look-ahead, losses by hand, the plan, champion-challenger, executors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError, TaskError
from stressgrid.monitoring import (
    FORECASTERS,
    CovarianceForecaster,
    champion_challenger,
    plan_walk_forward,
    run_walk_forward,
    walk_forward,
)

CHEAP = ["sample", "ewma", "ledoit_wolf", "denoised", "hierarchical"]


def _spiked(returns: pd.DataFrame, row: int) -> pd.DataFrame:
    out = returns.copy()
    out.iloc[row] = 0.5  # a 50% move in every asset: fifty daily standard deviations
    return out


def test_a_planted_future_spike_does_not_move_earlier_forecasts(returns):
    train, horizon, roll, spike = 100, 10, 10, 255
    clean = run_walk_forward(returns, CHEAP, train, horizon, roll, keep_forecasts=True)
    dirty = run_walk_forward(_spiked(returns, spike), CHEAP, train, horizon, roll, keep_forecasts=True)
    rows = plan_walk_forward(returns.index, train, horizon, roll)
    dates = returns.index
    before = [dates[t.row - 1] for t in rows if t.row <= spike]           # spike after the forecast date
    evaluated = [dates[t.row - 1] for t in rows if t.row <= spike < t.row + horizon]
    trained = [dates[t.row - 1] for t in rows if t.row - train <= spike < t.row]  # spike in the training rows
    assert before and evaluated and trained
    for (d, label), f in clean.forecasts.items():
        if d in before:
            assert np.array_equal(f, dirty.forecasts[(d, label)]), (d, label)
        elif d in trained:
            assert not np.allclose(f, dirty.forecasts[(d, label)]), (d, label)  # the spike is seen once it is past
    e0 = clean.errors.set_index(["date", "forecaster"])
    e1 = dirty.errors.set_index(["date", "forecaster"])
    w0 = clean.weights.set_index(["date", "forecaster", "method", "asset"]).weight
    w1 = dirty.weights.set_index(["date", "forecaster", "method", "asset"]).weight
    for d in before:
        assert np.array_equal(w0.loc[d].to_numpy(), w1.loc[d].to_numpy())
    for d in evaluated:
        # the realised window holds the spike: the evaluation reads it, the forecast did not
        assert (e1.loc[d, "cov_error"] > 10 * e0.loc[d, "cov_error"]).all()
    for d in before:
        if d not in evaluated:
            cols = ["cov_error", "corr_error", "qlike", "gmv_variance", "gmv_forecast"]
            assert np.array_equal(e0.loc[d, cols].to_numpy(dtype=float), e1.loc[d, cols].to_numpy(dtype=float))


@pytest.mark.slow
def test_dcc_sees_no_future_either(returns):
    spike = 255
    kw = dict(train=150, horizon=10, roll=10, start=returns.index[235], end=returns.index[275], keep_forecasts=True)
    clean = run_walk_forward(returns, ["dcc"], **kw)
    dirty = run_walk_forward(_spiked(returns, spike), ["dcc"], **kw)
    for (d, label), f in clean.forecasts.items():
        row = returns.index.get_loc(d) + 1
        same = np.array_equal(f, dirty.forecasts[(d, label)])
        assert same == (row <= spike), d


def test_losses_by_hand(returns):
    train, h = 120, 15
    res = walk_forward(returns, ["sample"], train, h, 50)
    row = res.iloc[1]
    t = train + 50
    assert row["date"] == returns.index[t - 1] and row["start"] == returns.index[t]
    x = returns.to_numpy()
    f = h * np.cov(x[t - train:t], rowvar=False)
    r = x[t:t + h].T @ x[t:t + h]
    w = np.linalg.solve(f, np.ones(4))
    w /= w.sum()

    def corr(a):
        d = np.sqrt(np.diag(a))
        return a / np.outer(d, d)

    assert row["cov_error"] == pytest.approx(np.sqrt(((f - r) ** 2).sum()), rel=1e-12)
    assert row["corr_error"] == pytest.approx(np.sqrt(((corr(f) - corr(r)) ** 2).sum()), rel=1e-10)
    assert row["qlike"] == pytest.approx(np.log(np.linalg.det(f)) + np.trace(np.linalg.inv(f) @ r), rel=1e-10)
    assert row["gmv_variance"] == pytest.approx(((x[t:t + h] @ w) ** 2).sum(), rel=1e-10)
    assert row["gmv_forecast"] == pytest.approx(w @ f @ w, rel=1e-10)


def test_plan_honours_start_end_and_says_when_nothing_fits(returns):
    tasks = plan_walk_forward(returns.index, 100, 20, 30)
    assert [t.row for t in tasks] == list(range(100, 381, 30))
    d = returns.index
    tasks = plan_walk_forward(d, 100, 20, 30, start=d[150], end=d[250])
    assert d[tasks[0].row - 1] >= d[150] and d[tasks[-1].row - 1] <= d[250]
    assert d[tasks[0].row - 2] < d[150]
    with pytest.raises(ConfigError, match="no forecast date fits"):
        plan_walk_forward(d, 390, 20, 10)
    with pytest.raises(ConfigError, match="train_days"):
        plan_walk_forward(d, 5, 20, 10)


def _losses(means: dict[str, list[float]]) -> pd.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=len(next(iter(means.values()))))
    rows = [{"date": d, "forecaster": k, "gmv_variance": v[i]} for k, v in means.items() for i, d in enumerate(dates)]
    return pd.DataFrame(rows)


def test_champion_challenger_margin():
    champ = [1.0, 1.2, 0.8, 1.0]  # mean 1.0
    res = _losses({"sample": champ,
                   "a": [0.96, 1.1, 0.82, 0.96],   # 4% better on average
                   "b": [0.90, 1.0, 0.70, 1.00],   # 10% better
                   "c": [0.93, 1.2, 0.70, 0.89]})  # 7% better
    t = champion_challenger(res, "sample", margin=0.05).set_index("forecaster")
    assert t.loc["b", "decision"] == "promote" and t.loc["sample", "decision"] == "replaced"
    assert t.loc["a", "decision"] == "reject" and t.loc["c", "decision"] == "reject"
    assert (t.next_champion == "b").all()
    assert t.loc["a", "improvement"] == pytest.approx(0.04)
    assert t.loc["b", "win_rate"] == pytest.approx(0.75)  # ties do not count as wins
    assert list(t.index) == ["sample", "a", "b", "c"]
    t = champion_challenger(res, "sample", margin=0.12).set_index("forecaster")
    assert (t.next_champion == "sample").all() and t.loc["sample", "decision"] == "retain"
    # exactly at the margin is not enough: the challenger must win by more
    t = champion_challenger(res, "sample", margin=0.10 + 1e-12).set_index("forecaster")
    assert t.loc["sample", "decision"] == "retain"
    with pytest.raises(ConfigError, match="'champion'"):
        champion_challenger(res, "dcc")
    with pytest.raises(ConfigError, match="'margin'"):
        champion_challenger(res, "sample", margin=1.5)


def test_diebold_mariano_matches_statsmodels_hac():
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    n = 60
    base = rng.gamma(2.0, 1.0, n)
    other = base * (0.95 + 0.2 * rng.standard_normal(n)).clip(0.1)
    res = _losses({"sample": list(base), "x": list(other)})
    for lags in (0, 1, 3):
        t = champion_challenger(res, "sample", lags=lags).set_index("forecaster")
        d = other - base
        ols = sm.OLS(d, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
        assert t.loc["x", "dm_stat"] == pytest.approx(float(ols.tvalues[0]), rel=1e-10)


def test_serial_grid_executor_gives_the_same_numbers(returns):
    from stressgrid.grid._executor import SerialExecutor

    a = run_walk_forward(returns, CHEAP, 100, 10, 25)
    b = run_walk_forward(returns, CHEAP, 100, 10, 25, executor=SerialExecutor())
    pd.testing.assert_frame_equal(a.errors.drop(columns="seconds"), b.errors.drop(columns="seconds"), check_exact=True)
    pd.testing.assert_frame_equal(a.weights, b.weights, check_exact=True)


@pytest.mark.ray
def test_ray_gives_identical_results(ray_session, returns):
    from stressgrid.grid._executor import RayExecutor

    a = run_walk_forward(returns, CHEAP, 100, 10, 25)
    b = run_walk_forward(returns, CHEAP, 100, 10, 25, executor=RayExecutor(workers=2))
    pd.testing.assert_frame_equal(a.errors.drop(columns="seconds"), b.errors.drop(columns="seconds"), check_exact=True)
    pd.testing.assert_frame_equal(a.weights, b.weights, check_exact=True)
    # GARCH-DCC too: its optimisers are sensitive to the BLAS thread count, which the step pins to one
    kw = dict(train=150, horizon=10, roll=40, start=returns.index[200], end=returns.index[330])
    a = run_walk_forward(returns, ["dcc"], **kw)
    b = run_walk_forward(returns, ["dcc"], **kw, executor=RayExecutor(workers=2))
    assert len(a.errors) >= 3
    pd.testing.assert_frame_equal(a.errors.drop(columns="seconds"), b.errors.drop(columns="seconds"), check_exact=True)
    pd.testing.assert_frame_equal(a.weights, b.weights, check_exact=True)


class _Fails(CovarianceForecaster):
    name = "fails"

    def __init__(self):
        pass

    def _fit(self, x):
        if x[-1, 0] > 0:
            raise FloatingPointError("diverged")
        return np.cov(x, rowvar=False)


def test_a_failed_step_names_its_forecast_date(returns):
    FORECASTERS["fails"] = _Fails
    try:
        with pytest.raises(TaskError, match=r"walk-forward step \d+ \(forecast date \d{4}-\d\d-\d\d\) failed: FloatingPointError: diverged"):
            run_walk_forward(returns, ["sample", "fails"], 100, 10, 5)
    finally:
        FORECASTERS.pop("fails")


def test_bad_input_is_named(returns):
    r = returns.copy()
    r.iloc[5, 2] = np.nan
    from stressgrid.core import DataError

    with pytest.raises(DataError, match="EQ.A2"):
        walk_forward(r, ["sample"], 100, 10, 10)
    with pytest.raises(ConfigError, match="label 'sample' is used twice"):
        walk_forward(returns, ["sample", {"name": "sample", "window": 50}], 100, 10, 10)
    with pytest.raises(Exception, match="unknown forecaster"):
        walk_forward(returns, ["nope"], 100, 10, 10)
