"""Champion-challenger on portfolio results (Sharpe, drawdown, turnover, information ratio) with a
stationary-bootstrap test, the significance rule on statistical losses, the correlation drift and its
limit, and the equity-bond regime view: hand computations on short series and closed forms."""

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError
from stressgrid.monitoring import (BacktestResult, choose_champion, correlation_drift, performance, rebalance_backtest,
                                   regime_view)


def test_portfolio_metrics_by_hand_on_a_short_series():
    r = np.array([0.01, -0.02, 0.015, -0.005, 0.01])
    b = np.array([0.0, -0.01, 0.01, 0.0, 0.005])
    p = performance(r, b)
    assert p["sharpe"] == pytest.approx(np.sqrt(252) * 0.002 / np.std(r, ddof=1), rel=1e-12)
    # value path 1.01, 0.9898, 1.004647, 0.99962376..., peak 1.01: the deepest fall is to 0.9898
    assert p["max_drawdown"] == pytest.approx(1 - 0.9898 / 1.01, rel=1e-12)
    a = r - b
    assert p["information_ratio"] == pytest.approx(np.sqrt(252) * a.mean() / a.std(ddof=1), rel=1e-12)
    # turnover: two rebalances of a two-asset book, one-way trades by hand
    idx = pd.bdate_range("2020-01-01", periods=6)
    rets = pd.DataFrame({"x": [0.0, 0.1, 0.0, 0.0, 0.0, 0.0], "y": 0.0}, index=idx)
    w = pd.DataFrame({"date": [idx[0]] * 2 + [idx[2]] * 2, "forecaster": "f", "method": "m", "asset": ["x", "y"] * 2,
                      "weight": [0.5, 0.5, 0.5, 0.5]})
    bt = rebalance_backtest(rets, w, cost_fn=lambda t: 0.0, benchmark="f")
    drift = np.array([0.55, 0.5]) / 1.05  # after x rose 10%: weights 0.5238, 0.4762, traded back to 0.5/0.5
    years = 5 / 252  # the backtest runs from the row after the first forecast date
    assert bt.summary["turnover"].iloc[0] == pytest.approx(np.abs(drift - 0.5).sum() / years, rel=1e-12)


def _errors(losses: dict[str, np.ndarray]) -> pd.DataFrame:
    dates = pd.bdate_range("2015-01-01", periods=len(next(iter(losses.values()))), freq="20B")
    rows = [{"date": d, "forecaster": k, "cov_error": v[i], "corr_error": v[i], "qlike": v[i], "gmv_variance": v[i]}
            for k, v in losses.items() for i, d in enumerate(dates)]
    return pd.DataFrame(rows)


def _backtest(series: dict[str, np.ndarray], method: str = "min_variance", benchmark: str = "sample") -> BacktestResult:
    idx = pd.bdate_range("2016-01-01", periods=len(next(iter(series.values()))))
    rets = pd.DataFrame({f"{k}/{method}": v for k, v in series.items()}, index=idx)
    rows = []
    for k, v in series.items():
        p = performance(v, series[benchmark] if k != benchmark else None)
        rows.append({"forecaster": k, "method": method, **p, "turnover": 0.5 if k == "sample" else 2.0,
                     "benchmark": benchmark})
    return BacktestResult(pd.DataFrame(rows), rets, (1 + rets).cumprod())


def test_a_challenger_with_a_clearly_higher_sharpe_is_promoted_and_a_noisy_one_is_not():
    rng = np.random.default_rng(3)
    n = 750
    base = 0.01 * rng.standard_normal(n)
    series = {"sample": base,
              "strong": base + 0.0015 + 0.001 * rng.standard_normal(n),   # about +2.4 Sharpe, paired
              "noisy": 0.01 * rng.standard_normal(n) + 0.0003}              # independent, a small edge at best
    errors = _errors({k: np.full(10, 1.0) for k in series})
    t = choose_champion(errors, _backtest(series), "sample", "sharpe", margin=0.1, significance=0.05,
                        reps=499, block_days=10).set_index("forecaster")
    assert t.loc["strong", "decision"] == "promote" and t.loc["strong", "p_value"] < 0.01
    assert t.loc["strong", "test"] == "stationary_bootstrap"
    assert t.loc["noisy", "p_value"] > 0.05 and t.loc["noisy", "decision"] == "reject"
    assert t.loc["sample", "decision"] == "replaced" and (t.next_champion == "strong").all()
    np.testing.assert_allclose(t.loc["strong", "improvement"], t.loc["strong", "sharpe"] - t.loc["sample", "sharpe"])
    assert set(["sharpe", "max_drawdown", "turnover", "information_ratio", "qlike"]) <= set(t.columns)
    # the same numbers twice: the bootstrap is seeded
    again = choose_champion(errors, _backtest(series), "sample", "sharpe", margin=0.1, significance=0.05,
                            reps=499, block_days=10).set_index("forecaster")
    assert again.loc["noisy", "p_value"] == t.loc["noisy", "p_value"]


def test_margin_without_significance_keeps_the_champion():
    """A challenger beats the champion's mean loss by 20% on average but with huge noise: the
    Diebold-Mariano p-value is large, so a significance of 5% keeps the champion (1.0: the margin alone)."""
    champ = np.full(12, 1.0)
    chal = 0.8 + 1.5 * np.tile([1.0, -1.0], 6)  # mean 0.8, alternating 2.3 and -0.7: DM t about -0.46
    errors = _errors({"sample": champ, "ewma": chal})
    strict = choose_champion(errors, None, "sample", "qlike", margin=0.05, significance=0.05).set_index("forecaster")
    assert strict.loc["ewma", "improvement"] > 0.05 and strict.loc["ewma", "p_value"] > 0.05
    assert strict.loc["ewma", "decision"] == "reject" and strict.loc["ewma", "test"] == "diebold_mariano"
    loose = choose_champion(errors, None, "sample", "qlike", margin=0.05, significance=1.0).set_index("forecaster")
    assert loose.loc["ewma", "decision"] == "promote"
    with pytest.raises(ConfigError, match="sharpe is a result of the rebalanced portfolios"):
        choose_champion(errors, None, "sample", "sharpe")


def test_drawdown_and_turnover_are_lower_is_better():
    n = 300
    t = np.arange(n)
    series = {"sample": 0.001 * np.sin(t / 5.0) - 0.0002 * (t % 50 == 0) * 20,
              "calm": 0.0005 * np.sin(t / 5.0) + 0.0001}
    errors = _errors({k: np.full(6, 1.0) for k in series})
    bt = _backtest(series)
    dd = choose_champion(errors, bt, "sample", "max_drawdown", margin=0.05, significance=1.0).set_index("forecaster")
    mdd = dd["max_drawdown"]
    assert dd.loc["calm", "improvement"] == pytest.approx(1 - mdd["calm"] / mdd["sample"], rel=1e-12)
    assert dd.loc["calm", "decision"] == "promote"
    to = choose_champion(errors, bt, "sample", "turnover", margin=0.05).set_index("forecaster")
    assert to.loc["calm", "improvement"] == pytest.approx(1 - 2.0 / 0.5) and to.loc["calm", "decision"] == "reject"
    assert np.isnan(to.loc["calm", "p_value"]) and to.loc["calm", "test"] is None


def test_correlation_drift_is_the_rms_pairwise_error_and_its_rolling_mean():
    K = 4
    err = np.array([0.6, 1.2, 1.8, 2.4])  # Frobenius norms of the correlation error
    errors = pd.DataFrame({"date": pd.bdate_range("2016-01-01", periods=4, freq="20B"), "forecaster": "sample",
                           "corr_error": err})
    d = correlation_drift(errors, K, "sample", window=2)
    np.testing.assert_allclose(d["error"], err / np.sqrt(12))
    np.testing.assert_allclose(d["rolling_error"].iloc[1:], (err[1:] + err[:-1]) / 2 / np.sqrt(12))
    assert np.isnan(d["rolling_error"].iloc[0]) and (d.role == "champion").all()
    # one pair off by 0.3 on a 2x2 matrix: Frobenius 0.3 sqrt(2), RMS pairwise error 0.3
    two = pd.DataFrame({"date": [pd.Timestamp("2016-01-01")], "forecaster": "f", "corr_error": [0.3 * np.sqrt(2)]})
    assert correlation_drift(two, 2, "f", 1)["error"].iloc[0] == pytest.approx(0.3)


def test_regime_view_allocations_meet_the_target_volatility():
    rng = np.random.default_rng(1)
    idx = pd.bdate_range("2015-01-01", periods=600)
    x = rng.multivariate_normal([0, 0], [[1e-4, -2e-5], [-2e-5, 4e-5]], size=600)
    rets = pd.DataFrame(x, index=idx, columns=["EQ.SPX", "IR.USD.10Y"])
    fc = {}
    h = 20
    for k, d in enumerate(idx[300::40]):
        rho = 0.5 if k % 2 else -0.4
        se, sb = 0.2 * np.sqrt(h / 252), 0.06 * np.sqrt(h / 252)
        fc[(d, "sample")] = np.array([[se * se, rho * se * sb], [rho * se * sb, sb * sb]])
    dates = sorted(d for d, _ in fc)
    level = pd.Series([0.3 if k % 2 else 0.15 for k in range(len(dates))], index=pd.DatetimeIndex(dates))
    v = regime_view(fc, rets, "sample", "EQ.SPX", "IR.USD.10Y", h, level, 0.25, 0.10).set_index("regime")
    assert v.loc["historical", "correlation"] == pytest.approx(np.corrcoef(x.T)[0, 1], rel=1e-12)
    assert v.loc["risk_off", "correlation"] == pytest.approx(0.5) and v.loc["risk_on", "correlation"] == pytest.approx(-0.4)
    for reg in ("historical", "risk_off", "risk_on", "latest"):
        r = v.loc[reg]
        cov = np.array([[r.equity_vol ** 2, r.correlation * r.equity_vol * r.bond_vol],
                        [r.correlation * r.equity_vol * r.bond_vol, r.bond_vol ** 2]])
        for w in (np.array([r.erc_equity, r.erc_bond]), np.array([r.minvar_equity, r.minvar_bond])):
            assert np.sqrt(w @ cov @ w) == pytest.approx(0.10, rel=1e-10)
        # equal risk contributions
        w = np.array([r.erc_equity, r.erc_bond])
        rc = w * (cov @ w)
        assert rc[0] == pytest.approx(rc[1], rel=1e-10)
    assert v.loc["risk_off", "equity_vol"] == pytest.approx(0.2) and v.loc["risk_off", "bond_vol"] == pytest.approx(0.06)
    # a positive equity-bond correlation leaves less room at the same volatility
    assert v.loc["risk_off", "erc_gross"] < v.loc["risk_on", "erc_gross"]
    with pytest.raises(ConfigError, match="regime_view.bond"):
        regime_view(fc, rets, "sample", "EQ.SPX", "IR.USD.2Y", h, level, 0.25)
