"""VaR and ES backtests against closed forms and published figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stressgrid.core import ConfigError, DataError
from stressgrid.monitoring import (
    acerbi_szekely_z2,
    basel_zone,
    christoffersen,
    ewma_vol,
    kupiec_pof,
    mcneil_frey,
    model_var_series,
    simulate_z2,
    transition_counts,
    var_backtest,
    z2_critical_value,
    z2_pvalue,
)

CHI2_95 = stats.chi2.ppf(0.95, 1)


@pytest.mark.parametrize("n,x,p", [(250, 0, 0.01), (250, 4, 0.01), (1000, 15, 0.01), (500, 40, 0.05), (252, 6, 0.01)])
def test_kupiec_is_the_g_test_of_the_exception_count(n, x, p):
    # the POF statistic is the likelihood-ratio (G) goodness-of-fit statistic of (non-exceptions,
    # exceptions) against (n (1-p), n p): scipy's power divergence with lambda = "log-likelihood"
    lr, pv = kupiec_pof(n, x, p)
    obs = np.array([n - x, x], dtype=float)
    exp = np.array([n * (1 - p), n * p])
    if x == 0:  # G = 2 sum O ln(O/E) with 0 ln 0 = 0
        ref = 2 * (n - x) * np.log((n - x) / exp[0])
    else:
        ref = stats.power_divergence(obs, exp, lambda_="log-likelihood").statistic
    assert lr == pytest.approx(ref, rel=1e-12)
    assert pv == pytest.approx(stats.chi2.sf(ref, 1), rel=1e-12)


def test_kupiec_nonrejection_regions_published():
    # Kupiec (1995), as tabulated in P. Jorion, "Value at Risk", 3rd ed. (2007), ch. 6 ("model
    # backtesting, 95% nonrejection test confidence regions"): exceptions N not rejected at 5%, for
    # T = 255, 510, 1000 days
    table = {
        0.01: [(None, 7), (1, 11), (4, 17)],
        0.025: [(2, 12), (6, 21), (15, 36)],
        0.05: [(6, 21), (16, 36), (37, 65)],
        0.075: [(11, 28), (27, 51), (59, 92)],
        0.10: [(16, 36), (38, 65), (81, 120)],
    }
    for p, regions in table.items():
        for T, (lo, hi) in zip((255, 510, 1000), regions):
            accepted = [x for x in range(T + 1) if kupiec_pof(T, x, p)[0] < CHI2_95]
            assert accepted[-1] == hi - 1, (p, T)
            if lo is not None:  # the table prints no lower bound for p = 1%, T = 255
                assert accepted[0] == lo + 1, (p, T)


def test_jorion_exercise_unconditional_and_independence():
    # Jorion (2007), ch. 6, question 10: 6 exceptions at 99% in 252 days, 4 of them after an exception
    # day; the answer gives LR_uc = 3.498 and LR_ind = 25.837 (exception table n00=244, n01=2, n10=2, n11=4)
    assert kupiec_pof(252, 6, 0.01)[0] == pytest.approx(3.498, abs=1e-3)  # printed truncated
    lr, pv = christoffersen(244, 2, 2, 4)
    assert lr == pytest.approx(25.837, abs=5e-4)
    assert pv < 1e-5


def test_christoffersen_is_the_g_test_of_independence():
    # LR_ind is the likelihood-ratio (G) test of independence of the 2x2 transition table
    rng = np.random.default_rng(0)
    for _ in range(5):
        table = rng.integers(1, 40, size=(2, 2))
        ref = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")[0]
        assert christoffersen(*table.ravel())[0] == pytest.approx(ref, rel=1e-10)


def test_transition_counts_by_hand():
    hits = np.array([0, 1, 1, 0, 0, 1, 0], dtype=bool)
    # pairs: 01 11 10 00 01 10
    assert transition_counts(hits) == (1, 2, 2, 1)
    assert np.isnan(christoffersen(10, 0, 0, 0)[0])  # no exception: no test


def test_basel_traffic_light_table():
    # Basel Committee (1996), supervisory framework for backtesting, table 2: 250 observations at 99%,
    # cumulative probability (%) of 0..10 exceptions, zones and plus factors
    cum = [8.11, 28.58, 54.32, 75.81, 89.22, 95.88, 98.63, 99.60, 99.89, 99.97, 99.99]
    plus = [0, 0, 0, 0, 0, 0.40, 0.50, 0.65, 0.75, 0.85, 1.00]
    for k in range(11):
        zone, c, pf = basel_zone(k, 250, 0.99)
        assert 100 * c == pytest.approx(cum[k], abs=0.005)
        assert zone == ("green" if k <= 4 else "yellow" if k <= 9 else "red")
        assert pf == plus[k]
    assert basel_zone(15, 250)[0] == "red" and basel_zone(15, 250)[2] == 1.0
    # other sample sizes: the same binomial rule, no plus factor
    zone, c, pf = basel_zone(8, 500, 0.99)
    assert c == pytest.approx(stats.binom.cdf(8, 500, 0.01)) and zone == "green" and np.isnan(pf)


def test_z2_by_hand():
    loss = np.array([1.0, 3.0, 0.5, 5.0])
    var = np.full(4, 2.0)
    es = np.full(4, 4.0)
    # exceedances 3 and 5: Z2 = 1 - (3/4 + 5/4) / (4 * 0.5)
    assert acerbi_szekely_z2(loss, var, es, 0.5) == pytest.approx(1 - 2.0 / 2.0)


def test_z2_under_the_model_is_centred():
    z = simulate_z2(250, 0.975, n_sim=20000, seed=1)
    assert abs(z.mean()) < 4 * z.std() / np.sqrt(len(z))


# MathWorks Risk Management Toolbox documentation, esbacktest unconditionalNormal / unconditionalT example:
# 1966 observations, VaR level 0.975, test level 0.99: critical values -0.34639 (normal) and -0.42986
# (Student t, 3 degrees of freedom); the normal test's p-value of Z2 = -0.38265 is 0.0054099.
# Tolerances are about three Monte Carlo standard errors of the simulated quantile or probability.


def test_z2_critical_value_and_pvalue_published_normal():
    assert z2_critical_value(1966, 0.975, 0.01, "normal", n_sim=12000, seed=11) == pytest.approx(-0.34639, abs=0.015)
    assert z2_pvalue(-0.38265, 1966, 0.975, "normal", n_sim=12000, seed=13) == pytest.approx(0.0054099, abs=0.002)


@pytest.mark.slow
def test_z2_critical_value_published_student_t():
    assert z2_critical_value(1966, 0.975, 0.01, "t", dof=3, n_sim=40000, seed=12) == pytest.approx(-0.42986, abs=0.015)


def _normal_model(n=1500, scale_model=1.0, seed=0, alpha=0.99):
    rng = np.random.default_rng(seed)
    sig = 0.01 * np.exp(0.3 * np.sin(np.arange(n) / 50))  # a known, varying vol
    pnl = rng.standard_normal(n) * sig
    q = stats.norm.ppf(alpha)
    var = q * sig * scale_model
    es = stats.norm.pdf(q) / (1 - alpha) * sig * scale_model
    return pd.Series(pnl, index=pd.bdate_range("2010-01-01", periods=n)), var, es


def test_a_right_model_passes_and_an_understated_one_fails():
    pnl, var, es = _normal_model(scale_model=1.0)
    ok = var_backtest(pnl, var, es, 0.99, n_sim=5000)
    assert not ok["reject_coverage"] and not ok["reject_es"]
    assert ok["exceptions"] == int((-pnl.to_numpy() > var).sum())
    assert ok["start"] == pnl.index[0] and ok["days"] == 1500
    bad = var_backtest(pnl, 0.7 * var, 0.7 * es, 0.99, n_sim=5000)
    assert bad["reject_coverage"] and bad["reject_es"] and bad["basel_zone"] == "red"
    assert bad["z2"] < ok["z2"] and bad["mf_pvalue"] < 0.05


def test_mcneil_frey_sees_an_understated_es_with_the_right_var():
    pnl, var, es = _normal_model(n=4000, seed=5)
    loss = -pnl.to_numpy()
    m_ok, p_ok, k = mcneil_frey(loss, var, es, seed=1)
    m_bad, p_bad, _ = mcneil_frey(loss, var, 0.8 * es, seed=1)
    assert k == int((loss > var).sum()) and p_ok > 0.05 and p_bad < 0.01 and m_bad > m_ok


def test_model_var_series_historical_by_hand():
    pnl, _, _ = _normal_model(n=400, seed=2)
    s = model_var_series(pnl, "historical", 250, 0.99)
    assert s["var"].iloc[:250].isna().all()
    t = 300
    losses = np.sort(-pnl.to_numpy()[t - 250:t])
    # the 99% quantile of 250 equally likely losses is the 248th smallest; the 1% tail holds the two
    # largest and half of the 248th (Rockafellar and Uryasev 2002)
    assert s["var"].iloc[t] == pytest.approx(losses[247])
    assert s["es"].iloc[t] == pytest.approx((losses[249] + losses[248] + 0.5 * losses[247]) / 2.5)
    assert bool(s["exception"].iloc[t]) == (-pnl.iloc[t] > losses[247])


def test_model_var_series_normal_is_riskmetrics():
    pnl, _, _ = _normal_model(n=400, seed=3)
    s = model_var_series(pnl, "normal", 100, 0.99, lam=0.94)
    x = pnl.to_numpy()
    s2 = np.mean(x[:20] ** 2)
    for t in range(1, 301):
        s2 = 0.94 * s2 + 0.06 * x[t - 1] ** 2
    assert s["var"].iloc[300] == pytest.approx(stats.norm.ppf(0.99) * np.sqrt(s2), rel=1e-12)
    assert np.allclose(ewma_vol(x)[300], np.sqrt(s2))


@pytest.mark.parametrize("method", ["historical", "fhs", "normal"])
def test_model_var_series_reads_no_future(method):
    pnl, _, _ = _normal_model(n=500, seed=4)
    spiked = pnl.copy()
    spiked.iloc[350] = -1.0
    a = model_var_series(pnl, method, 250, 0.99)
    b = model_var_series(spiked, method, 250, 0.99)
    assert np.array_equal(a["var"].iloc[:351].to_numpy(), b["var"].iloc[:351].to_numpy(), equal_nan=True)
    assert np.array_equal(a["es"].iloc[:351].to_numpy(), b["es"].iloc[:351].to_numpy(), equal_nan=True)
    assert b["es"].iloc[351] > a["es"].iloc[351]  # the day after, the spike is in the data


def test_bad_input():
    with pytest.raises(ConfigError, match="'alpha'"):
        var_backtest(np.zeros(10), np.ones(10), alpha=1.2)
    with pytest.raises(DataError, match="differ in length"):
        var_backtest(np.zeros(10), np.ones(9))
    with pytest.raises(ConfigError, match="'method'"):
        model_var_series(pd.Series(np.zeros(300)), "garch")
    with pytest.raises(DataError, match="need more than window"):
        model_var_series(pd.Series(np.zeros(100)), "historical", 250)
