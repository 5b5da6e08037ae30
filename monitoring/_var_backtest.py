"""Backtests of a model's one-day VaR and expected shortfall on a P&L history.

Losses are ``L_t = -PnL_t``; VaR and ES forecasts are positive numbers in the same currency, made with
data before day ``t``.  An exception is a day with ``L_t > VaR_t``; ``p = 1 - alpha`` is its
probability under the model.

* Kupiec (1995) proportion of failures, ``x`` exceptions in ``n`` days::

      LR_pof = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]   ~ chi2(1)

* Christoffersen (1998) independence, from the transition counts ``n_ij`` (day ``t-1`` in state ``i``,
  day ``t`` in state ``j``; 1 = exception), ``pi_01 = n01/(n00+n01)``, ``pi_11 = n11/(n10+n11)``,
  ``pi = (n01+n11)/(n00+n01+n10+n11)``::

      LR_ind = -2 ln[(1-pi)^(n00+n10) pi^(n01+n11)]
               + 2 ln[(1-pi_01)^n00 pi_01^n01 (1-pi_11)^n10 pi_11^n11]   ~ chi2(1)

  and conditional coverage ``LR_cc = LR_pof + LR_ind ~ chi2(2)`` (``0 ln 0 = 0`` throughout).
* Basel traffic light (Basel Committee on Banking Supervision, "Supervisory framework for the use of
  'backtesting' in conjunction with the internal models approach to market risk capital requirements",
  January 1996, tables 1-2): with ``X ~ Binomial(n, p)``, the zone of ``x`` exceptions is green while
  ``P(X <= x) < 95%``, yellow while ``P(X <= x) < 99.99%``, red beyond: 0-4 / 5-9 / 10+ for 250 days at
  99%.  The plus factor of the capital multiplier (0 in green; 0.40, 0.50, 0.65, 0.75, 0.85 for 5-9
  exceptions; 1 in red) is given for that 250-day, 99% case.
* Expected shortfall, Acerbi and Szekely ("Backtesting expected shortfall", Risk, December 2014), test 2::

      Z2 = 1 - sum_t L_t 1{L_t > VaR_t} / (n p ES_t)

  ``E[Z2] = 0`` under the model, negative when ES is underestimated; the p-value ``P(Z2 <= z)`` is
  simulated under a Gaussian (or Student-t) predictive distribution (the statistic does not depend on
  the scale; Acerbi and Szekely report that its critical values vary little with the distribution).
* Expected shortfall, McNeil and Frey ("Estimation of tail-related risk measures for heteroscedastic
  financial time series: an extreme value approach", J. Empirical Finance 7 (2000) 271-300, s.5):
  exceedance residuals ``e_t = (L_t - ES_t) / ES_t`` on exception days have mean zero under the model;
  the one-sided bootstrap p-value of their mean (Efron and Tibshirani 1993, s.16.4: centred resampling)
  is small when ES is too low.

``model_var_series`` makes the one-day forecasts of a book's P&L history with data strictly before each
day: ``historical`` (the last ``window`` days' P&L, :func:`core.var_cvar`), ``fhs`` (filtered historical
simulation with EWMA volatility: the window's P&L divided by its EWMA vol and rescaled by today's;
Hull and White, "Incorporating volatility updating into the historical simulation method for
value-at-risk", J. Risk 1 (1998) 5-19) and ``normal`` (RiskMetrics: zero-mean Gaussian with EWMA
vol, RiskMetrics Technical Document (1996) s.6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import xlogy

from stressgrid.core import ConfigError, DataError, var_cvar

__all__ = [
    "kupiec_pof",
    "christoffersen",
    "transition_counts",
    "basel_zone",
    "BASEL_PLUS_FACTOR",
    "acerbi_szekely_z2",
    "simulate_z2",
    "z2_pvalue",
    "z2_critical_value",
    "mcneil_frey",
    "var_backtest",
    "model_var_series",
    "ewma_vol",
]

#: Basel (1996) table 2: plus factor of the capital multiplier by exceptions in 250 days at 99%
BASEL_PLUS_FACTOR = {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}


def _check_alpha(alpha: float, field: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.5 <= alpha < 1.0:
        raise ConfigError(f"var_backtest, field '{field}': confidence level must be in [0.5, 1) (got {alpha!r})")
    return float(alpha)


def kupiec_pof(n: int, x: int, p: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures LR statistic and its chi-square(1) p-value (module docstring)."""
    if n <= 0 or not 0 <= x <= n:
        raise DataError(f"Kupiec test: need 0 <= exceptions <= days and days > 0 (got {x} of {n})")
    phat = x / n
    lr = -2.0 * (xlogy(n - x, 1.0 - p) + xlogy(x, p)) + 2.0 * (xlogy(n - x, 1.0 - phat) + xlogy(x, phat))
    lr = max(float(lr), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def transition_counts(hits: np.ndarray) -> tuple[int, int, int, int]:
    """``(n00, n01, n10, n11)``: pairs of consecutive days by exception state (``n_ij``: ``i`` then ``j``)."""
    h = np.asarray(hits, dtype=bool)
    a, b = h[:-1], h[1:]
    return (int(np.sum(~a & ~b)), int(np.sum(~a & b)), int(np.sum(a & ~b)), int(np.sum(a & b)))


def christoffersen(n00: int, n01: int, n10: int, n11: int) -> tuple[float, float]:
    """Christoffersen's independence LR statistic and its chi-square(1) p-value from transition counts.

    NaN when no exception or no non-exception day leads a transition (the test has no power)."""
    if n00 + n01 == 0 or n10 + n11 == 0:
        return float("nan"), float("nan")
    tot = n00 + n01 + n10 + n11
    pi01, pi11, pi = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / tot
    l0 = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    l1 = xlogy(n00, 1.0 - pi01) + xlogy(n01, pi01) + xlogy(n10, 1.0 - pi11) + xlogy(n11, pi11)
    lr = max(float(2.0 * (l1 - l0)), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def basel_zone(x: int, n: int = 250, alpha: float = 0.99) -> tuple[str, float, float]:
    """Basel traffic-light zone of ``x`` exceptions in ``n`` days at VaR confidence ``alpha``.

    Returns ``(zone, P(X <= x), plus_factor)``; the plus factor is NaN unless ``n == 250`` and
    ``alpha == 0.99`` (the case the Basel table covers)."""
    cum = float(stats.binom.cdf(x, n, 1.0 - alpha))
    zone = "green" if cum < 0.95 else ("yellow" if cum < 0.9999 else "red")
    plus = float("nan")
    if n == 250 and abs(alpha - 0.99) < 1e-12:
        plus = BASEL_PLUS_FACTOR.get(int(x), 1.0)
    return zone, cum, plus


def acerbi_szekely_z2(loss: np.ndarray, var: np.ndarray, es: np.ndarray, alpha: float) -> float:
    """Acerbi-Szekely ``Z2`` (module docstring) of losses against VaR and ES forecasts at ``alpha``."""
    loss, var, es = (np.asarray(a, dtype=float) for a in (loss, var, es))
    p = 1.0 - alpha
    hit = loss > var
    return float(1.0 - np.sum(np.where(hit, loss / es, 0.0)) / (len(loss) * p))


def _dist_tail(alpha: float, dist: str, dof: float) -> tuple[object, float, float]:
    """(frozen loss distribution, VaR, ES) of a standard normal or Student-t loss at ``alpha``."""
    if dist == "normal":
        q = stats.norm.ppf(alpha)
        return stats.norm(), float(q), float(stats.norm.pdf(q) / (1.0 - alpha))
    if dist == "t":
        if not dof > 1:
            raise ConfigError(f"var_backtest, field 'dof': Student-t ES needs dof > 1 (got {dof!r})")
        q = stats.t.ppf(alpha, dof)
        es = (dof + q * q) / (dof - 1.0) * stats.t.pdf(q, dof) / (1.0 - alpha)
        return stats.t(dof), float(q), float(es)
    raise ConfigError(f"var_backtest, field 'es_dist': expected 'normal' or 't' (got {dist!r})")


def simulate_z2(n: int, alpha: float, dist: str = "normal", dof: float = 5.0, n_sim: int = 20000,
                seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """``n_sim`` draws ``[n_sim]`` of ``Z2`` under the model: ``n`` iid losses from a standard ``normal`` or
    Student-``t`` (``dof``) tested against their exact VaR and ES at ``alpha``."""
    rng = np.random.default_rng(seed)
    d, q, es = _dist_tail(alpha, dist, dof)
    p = 1.0 - alpha
    out = np.empty(n_sim)
    chunk = max(1, min(n_sim, 4_000_000 // max(n, 1)))
    for i in range(0, n_sim, chunk):
        m = min(chunk, n_sim - i)
        L = d.rvs(size=(m, n), random_state=rng)
        out[i:i + m] = 1.0 - np.sum(np.where(L > q, L, 0.0), axis=1) / (n * p * es)
    return out


def z2_pvalue(z2: float, n: int, alpha: float, dist: str = "normal", dof: float = 5.0, n_sim: int = 20000,
              seed: int | np.random.Generator | None = 0) -> float:
    """``P(Z2 <= z2)`` for ``n`` days under the model, by :func:`simulate_z2`."""
    return float(np.mean(simulate_z2(n, alpha, dist, dof, n_sim, seed) <= z2))


def z2_critical_value(n: int, alpha: float, level: float = 0.05, dist: str = "normal", dof: float = 5.0,
                      n_sim: int = 20000, seed: int | np.random.Generator | None = 0) -> float:
    """The ``level`` quantile of ``Z2`` for ``n`` days under the model (reject below it)."""
    return float(np.quantile(simulate_z2(n, alpha, dist, dof, n_sim, seed), level))


def mcneil_frey(loss: np.ndarray, var: np.ndarray, es: np.ndarray, n_boot: int = 10000,
                seed: int | np.random.Generator | None = 0) -> tuple[float, float, int]:
    """McNeil-Frey exceedance residual test: ``(mean residual, one-sided bootstrap p-value, exceptions)``.

    NaN when there are fewer than two exceptions."""
    loss, var, es = (np.asarray(a, dtype=float) for a in (loss, var, es))
    hit = loss > var
    e = (loss[hit] - es[hit]) / es[hit]
    if len(e) < 2:
        return (float(e.mean()) if len(e) else float("nan")), float("nan"), int(len(e))
    sd = e.std(ddof=1)
    t_obs = e.mean() / (sd / np.sqrt(len(e))) if sd > 0 else np.inf * np.sign(e.mean())
    rng = np.random.default_rng(seed)
    c = e - e.mean()  # resample under the null: the residuals centred
    b = c[rng.integers(0, len(c), size=(n_boot, len(c)))]
    bsd = b.std(axis=1, ddof=1)
    tb = np.where(bsd > 0, b.mean(axis=1) / np.where(bsd > 0, bsd, 1.0) * np.sqrt(len(c)), 0.0)
    return float(e.mean()), float(np.mean(tb >= t_obs)), int(len(e))


def var_backtest(pnl, var, es=None, alpha: float = 0.99, es_dist: str = "normal", dof: float = 5.0,
                 n_sim: int = 20000, seed: int = 0, significance: float = 0.05) -> dict:
    """Backtest one-day VaR (and ES) forecasts against realised P&L.

    Parameters
    ----------
    pnl : ``[n]`` realised daily P&L (a Series keeps its dates)
    var, es : ``[n]`` VaR and ES forecasts at ``alpha`` for the same days (positive = loss); NaN days
        (no forecast) are dropped
    alpha : the forecasts' confidence level
    es_dist, dof, n_sim, seed : the predictive distribution, simulations and seed of the Z2 p-value
    significance : level of the ``reject`` flags

    Returns
    -------
    dict with ``alpha``, ``days``, ``start``, ``end``, ``exceptions``, ``expected``, ``rate``,
    ``kupiec_lr``, ``kupiec_pvalue``, ``christoffersen_lr``, ``christoffersen_pvalue``, ``cc_lr``,
    ``cc_pvalue``, ``basel_zone``, ``basel_cum_prob``, ``basel_plus_factor``, ``reject_coverage``,
    ``reject_independence``, and with ``es``: ``z2``, ``z2_pvalue``, ``mf_mean_residual``,
    ``mf_pvalue``, ``reject_es``.
    """
    alpha = _check_alpha(alpha)
    s = pd.Series(np.asarray(pnl, dtype=float), index=getattr(pnl, "index", None))
    v = np.asarray(var, dtype=float)
    e = None if es is None else np.asarray(es, dtype=float)
    if len(v) != len(s) or (e is not None and len(e) != len(s)):
        raise DataError(f"var_backtest: pnl ({len(s)}), var ({len(v)}) and es ({'-' if e is None else len(e)}) differ in length")
    ok = np.isfinite(s.to_numpy()) & np.isfinite(v) & (np.isfinite(e) if e is not None else True)
    if ok.sum() == 0:
        raise DataError("var_backtest: no day has both a P&L and a VaR forecast")
    loss = -s.to_numpy()[ok]
    v = v[ok]
    hits = loss > v
    n, x = len(loss), int(hits.sum())
    p = 1.0 - alpha
    lr_pof, p_pof = kupiec_pof(n, x, p)
    lr_ind, p_ind = christoffersen(*transition_counts(hits))
    lr_cc = lr_pof + lr_ind if np.isfinite(lr_ind) else float("nan")
    zone, cum, plus = basel_zone(x, n, alpha)
    dates = s.index[ok] if s.index is not None else None
    out = {
        "alpha": alpha, "days": n,
        "start": dates[0] if dates is not None and len(dates) and isinstance(dates, pd.DatetimeIndex) else None,
        "end": dates[-1] if dates is not None and len(dates) and isinstance(dates, pd.DatetimeIndex) else None,
        "exceptions": x, "expected": n * p, "rate": x / n,
        "kupiec_lr": lr_pof, "kupiec_pvalue": p_pof,
        "christoffersen_lr": lr_ind, "christoffersen_pvalue": p_ind,
        "cc_lr": lr_cc, "cc_pvalue": float(stats.chi2.sf(lr_cc, 2)) if np.isfinite(lr_cc) else float("nan"),
        "basel_zone": zone, "basel_cum_prob": cum, "basel_plus_factor": plus,
        "reject_coverage": bool(p_pof < significance),
        "reject_independence": bool(np.isfinite(p_ind) and p_ind < significance),
    }
    if e is not None:
        e = e[ok]
        if np.any(e <= 0):
            raise DataError("var_backtest: ES forecasts must be positive (a loss)")
        z2 = acerbi_szekely_z2(loss, v, e, alpha)
        pz = z2_pvalue(z2, n, alpha, es_dist, dof, n_sim, seed)
        mf_mean, mf_p, _ = mcneil_frey(loss, v, e, seed=seed)
        out.update(z2=z2, z2_pvalue=pz, mf_mean_residual=mf_mean, mf_pvalue=mf_p, reject_es=bool(pz < significance))
    return out


def ewma_vol(x: np.ndarray, lam: float = 0.94, init: int = 20) -> np.ndarray:
    """One-day-ahead EWMA volatility ``[n]``: ``s_t^2 = lam s_{t-1}^2 + (1 - lam) x_{t-1}^2``, started at
    the mean square of the first ``init`` values (``s_t`` uses data before ``t`` only, for
    ``t >= init``)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    s2 = np.empty(n)
    k = min(init, n)
    s2[0] = np.mean(x[:k] ** 2) if k else 0.0
    for t in range(1, n):
        s2[t] = lam * s2[t - 1] + (1.0 - lam) * x[t - 1] ** 2
    return np.sqrt(s2)


def model_var_series(pnl_history: pd.Series, method: str = "historical", window: int = 250, alpha: float = 0.99,
                     lam: float = 0.94) -> pd.DataFrame:
    """One-day VaR and ES forecasts of a P&L history, each made with the days before it only.

    Parameters
    ----------
    pnl_history : Series of daily P&L (DatetimeIndex), e.g. the book's P&L replayed over history
    method : ``historical``, ``fhs`` or ``normal`` (module docstring)
    window : days of P&L behind each forecast (``historical``, ``fhs``); also the first forecast day
    alpha : confidence level
    lam : EWMA decay (``fhs``, ``normal``)

    Returns
    -------
    DataFrame indexed by date: ``pnl``, ``var``, ``es`` (NaN for the first ``window`` days),
    ``exception`` (``-pnl > var``).
    """
    alpha = _check_alpha(alpha)
    if method not in ("historical", "fhs", "normal"):
        raise ConfigError(f"var_backtest, field 'method': expected historical, fhs or normal (got {method!r})")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 20:
        raise ConfigError(f"var_backtest, field 'window': expected a whole number of days >= 20 (got {window!r})")
    s = pd.Series(pnl_history, dtype=float).dropna()
    x = s.to_numpy()
    n = len(x)
    if n <= window:
        raise DataError(f"var_backtest: {n} days of P&L; need more than window={window}")
    var = np.full(n, np.nan)
    es = np.full(n, np.nan)
    if method == "historical":
        for t in range(window, n):
            var[t], es[t] = var_cvar(x[t - window:t], alpha)
    else:
        sig = ewma_vol(x, lam, init=min(20, window))
        if method == "normal":
            q = stats.norm.ppf(alpha)
            var[window:] = q * sig[window:]
            es[window:] = stats.norm.pdf(q) / (1.0 - alpha) * sig[window:]
        else:
            safe = np.where(sig > 0, sig, np.nan)
            z = x / safe  # standardised P&L of each day by its own (earlier-data) vol
            for t in range(window, n):
                zt = z[t - window:t]
                zt = zt[np.isfinite(zt)]
                if len(zt) >= 20 and sig[t] > 0:
                    var[t], es[t] = var_cvar(zt * sig[t], alpha)
    out = pd.DataFrame({"pnl": x, "var": var, "es": es}, index=s.index)
    out["exception"] = (-out["pnl"] > out["var"]) & out["var"].notna()
    return out
