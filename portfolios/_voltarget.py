"""Volatility targeting: scale the book's gross exposure inversely to its forecast volatility.

``scale = min(target_vol / forecast_vol, max_leverage / gross(w))`` and ``w_new = scale * w``
(e.g. Moreira and Muir, "Volatility-managed portfolios", J. Finance 72 (2017); Harvey et al., "The impact
of volatility targeting", J. Portfolio Management 45 (2018)).  The forecast is the RiskMetrics EWMA of the
book's daily returns (J.P. Morgan/Reuters, "RiskMetrics - Technical Document", 4th ed. 1996:
``s2_t = lam s2_{t-1} + (1 - lam) r_{t-1}^2``, ``lam = 0.94`` for daily data), or the sample volatility,
annualised with ``sqrt(periods_per_year)``.
"""

from __future__ import annotations

import numpy as np

from stressgrid.core.errors import ConfigError

from ._validate import check_choice, check_returns, check_vector

__all__ = ["VolTarget", "ewma_variance"]


def ewma_variance(r: np.ndarray, lam: float, seed_obs: int = 20) -> float:
    """One-step-ahead EWMA variance of a return series (oldest first), seeded with the mean square of
    the first ``seed_obs`` returns."""
    r = np.asarray(r, float)
    s2 = float(np.mean(r[: max(1, min(seed_obs, len(r)))] ** 2))
    for x in r:
        s2 = lam * s2 + (1.0 - lam) * x * x
    return s2


class VolTarget:
    """Scale a book to a volatility target with a leverage cap.

    Parameters
    ----------
    target_vol : annualised volatility target (e.g. 0.10).
    max_leverage : cap on the gross exposure ``sum |w|`` after scaling.
    estimator : ``"ewma"`` or ``"sample"``.
    lam : EWMA decay (RiskMetrics daily 0.94).
    periods_per_year : observations per year of ``returns`` (252 for daily).

    Attributes
    ----------
    forecast_vol_ : annualised forecast volatility of the book.
    scale_ : the multiplier applied.  weights_ : ``scale_ * weights``.  leverage_ : ``sum |weights_|``.
    capped_ : whether the leverage cap bound.  status_ : ``"optimal"``.
    """

    def __init__(self, target_vol: float, max_leverage: float, estimator: str = "ewma", lam: float = 0.94,
                 periods_per_year: float = 252.0):
        self.target_vol = target_vol
        self.max_leverage = max_leverage
        self.estimator = estimator
        self.lam = lam
        self.periods_per_year = periods_per_year

    def fit(self, returns, sample_weight=None, current_weights=None) -> "VolTarget":
        """``returns [T, N]``: a history of per-period returns (oldest first); ``current_weights [N]``: the
        book to scale (required).  ``sample_weight`` is not used (the history is a time series)."""
        for name in ("target_vol", "max_leverage", "periods_per_year"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ConfigError(f"{name}: expected a positive number (got {v!r})")
        check_choice("estimator", self.estimator, ("ewma", "sample"))
        if not 0.0 < float(self.lam) < 1.0:
            raise ConfigError(f"lam: expected a decay in (0, 1) (got {self.lam!r})")
        R = check_returns(returns)
        if current_weights is None:
            raise ConfigError("current_weights: VolTarget scales a book and needs one (got None)")
        w = check_vector("current_weights", current_weights, R.shape[1])
        gross = float(np.abs(w).sum())
        if gross == 0:
            raise ConfigError("current_weights: the book is empty (gross exposure 0)")
        r = R @ w
        if self.estimator == "ewma":
            var = ewma_variance(r, float(self.lam))
        else:
            if len(r) < 2:
                raise ConfigError(f"returns: the sample estimator needs at least 2 periods (got {len(r)})")
            var = float(np.var(r, ddof=1))
        vol = float(np.sqrt(var * self.periods_per_year))
        scale_vol = np.inf if vol == 0 else self.target_vol / vol
        scale_cap = self.max_leverage / gross
        self.capped_ = bool(scale_cap < scale_vol)
        self.scale_ = float(min(scale_vol, scale_cap))
        self.forecast_vol_ = vol
        self.weights_ = self.scale_ * w
        self.leverage_ = float(np.abs(self.weights_).sum())
        self.status_ = "optimal"
        return self
