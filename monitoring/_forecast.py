"""Covariance and correlation forecasters behind one estimator interface.

Every forecaster follows the estimator contract: ``__init__`` stores settings, :meth:`fit` reads a
window of daily returns ``[T, K]`` and sets ``covariance_`` (the one-day-ahead covariance ``[K, K]``),
``correlation_`` and ``details_``; :meth:`forecast` gives the covariance of the sum of the next
``horizon`` daily returns.  The estimators themselves are the ones the Monte Carlo uses
(:func:`scenarios.estimate_covariance`, :func:`scenarios.fit_garch` and DCC), so a forecast validated
here is the covariance a scenario family would simulate from.

A new model (a learned one, say) joins by subclassing :class:`CovarianceForecaster`, implementing
``_fit`` and, if its forecast is not ``horizon x`` the one-day covariance, ``forecast``; then
:func:`register_forecaster` makes it available to the batch file by name.

References
----------
.. [RM96] J.P. Morgan/Reuters, "RiskMetrics - Technical Document", 4th ed. (1996), section 5.2.1:
   ``sigma2_t = lam sigma2_{t-1} + (1 - lam) r_{t-1}^2`` with zero mean, ``lam = 0.94`` for daily data,
   and the square-root-of-time rule for longer horizons (section 6.3).
.. [LW04] O. Ledoit and M. Wolf, "A well-conditioned estimator for large-dimensional covariance
   matrices", Journal of Multivariate Analysis 88 (2004) 365-411 (scikit-learn's ``LedoitWolf``).
.. [E02] R. Engle, "Dynamic conditional correlation", Journal of Business & Economic Statistics 20
   (2002) 339-350.
.. [ES01] R. Engle and K. Sheppard, "Theoretical and empirical properties of dynamic conditional
   correlation multivariate GARCH", NBER Working Paper 8554 (2001), section 4: the k-step correlation
   forecast ``R_{T+k} = (1 - (a+b)^{k-1}) Rbar + (a+b)^{k-1} R_{T+1}``.
.. [L00] L. Laloux, P. Cizeau, M. Potters and J.-P. Bouchaud, "Random matrix theory and financial
   correlations", IJTAF 3 (2000) 391-397 (denoising).
.. [T07] M. Tumminello, F. Lillo and R. N. Mantegna, "Hierarchically nested factor model from
   multivariate data", Europhysics Letters 78 (2007) 30006 (hierarchical filtering).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stressgrid.core import ConfigError, DataError
from stressgrid.scenarios import EstimatorSpec, estimate_covariance, fit_garch
from stressgrid.scenarios import fit_dcc

__all__ = [
    "CovarianceForecaster",
    "SampleCov",
    "EWMACov",
    "LedoitWolfCov",
    "DenoisedCov",
    "HierarchicalCov",
    "DCCGarch",
    "FORECASTERS",
    "ForecasterSpec",
    "register_forecaster",
    "make_forecaster",
    "ewma_covariance",
    "cov_to_corr",
]

#: fewest daily returns a forecaster is fitted on
MIN_OBS = 20


def cov_to_corr(cov: np.ndarray) -> np.ndarray:
    """Correlation ``D^-1 S D^-1`` of a covariance ``[K, K]`` (0 off the diagonal for a zero-variance series)."""
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    inv = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 0.0)
    corr = cov * inv[:, None] * inv[None, :]
    np.fill_diagonal(corr, 1.0)
    return (corr + corr.T) / 2.0


def _as_array(returns) -> tuple[np.ndarray, list[str]]:
    if isinstance(returns, pd.DataFrame):
        cols = [str(c) for c in returns.columns]
        x = returns.to_numpy(dtype=float)
    else:
        x = np.asarray(returns, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        cols = [str(i) for i in range(x.shape[1])] if x.ndim == 2 else []
    if x.ndim != 2 or x.shape[1] == 0:
        raise DataError(f"returns: expected a 2-d table of daily returns [T, K], got shape {x.shape}")
    if len(x) < MIN_OBS:
        raise DataError(f"returns: {len(x)} daily returns; a forecaster needs at least {MIN_OBS}")
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"returns: column {cols[c]!r}, row {r + 1}: {x[r, c]!r} is not a finite number")
    return x, cols


class CovarianceForecaster:
    """Base class: fit on a window of daily returns, forecast the covariance over a horizon.

    Attributes (after :meth:`fit`)
    ------------------------------
    covariance_ : float ``[K, K]``
        One-day-ahead covariance, in squared return units per day.
    correlation_ : float ``[K, K]``
    columns_ : list of ``K`` column names of the window.
    details_ : dict
        Estimator details (shrinkage intensity, DCC parameters, ...).
    """

    #: registry name; set by subclasses
    name: str = ""
    #: True for a forecaster that also reads market features (``fit(returns, features)``; its ``_fit``
    #: takes ``(x, features)``); the walk-forward then hands it the feature rows of the training window
    uses_features: bool = False

    covariance_: np.ndarray
    columns_: list[str]
    details_: dict

    def fit(self, returns: pd.DataFrame | np.ndarray, features: pd.DataFrame | np.ndarray | None = None) -> "CovarianceForecaster":
        """Estimate on ``returns [T, K]`` (rows in time order, the last row the latest day).

        ``features [T, F]`` (rows aligned with the returns', NaN where missing) are market features known
        on each row's date; only a forecaster with ``uses_features`` reads them, the others ignore them.

        Raises
        ------
        DataError
            If the window has fewer than 20 rows or a non-finite value.
        """
        x, cols = _as_array(returns)
        self.columns_ = cols
        self.details_ = {}
        cov = self._fit(x, features) if self.uses_features else self._fit(x)
        self.covariance_ = (cov + cov.T) / 2.0
        return self

    def _fit(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def correlation_(self) -> np.ndarray:
        return cov_to_corr(self.covariance_)

    def forecast(self, horizon: int = 1) -> np.ndarray:
        """Covariance ``[K, K]`` of the sum of the next ``horizon`` daily returns.

        For the constant-covariance estimators this is ``horizon * covariance_`` (returns uncorrelated
        over time, the square-root-of-time rule of [RM96])."""
        _check_horizon(horizon)
        return float(horizon) * self.covariance_

    def get_params(self) -> dict:
        """The settings given to ``__init__``."""
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _check_horizon(horizon: int) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"forecast horizon: expected a whole number of days >= 1 (got {horizon!r})")


class SampleCov(CovarianceForecaster):
    """Sample covariance (``ddof = 1``) of the last ``window`` rows of the fit window (all rows when None)."""

    name = "sample"

    def __init__(self, window: Optional[int] = None):
        if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < MIN_OBS):
            raise ConfigError(f"sample forecaster, field 'window': expected a whole number of days >= {MIN_OBS} or null (got {window!r})")
        self.window = window

    def _fit(self, x: np.ndarray) -> np.ndarray:
        if self.window is not None:
            x = x[-self.window:]
        return estimate_covariance(x, EstimatorSpec(method="sample"))[0]


def ewma_covariance(x: np.ndarray, lam: float = 0.94) -> np.ndarray:
    """Zero-mean exponentially weighted covariance of ``x [T, K]`` [RM96, s.5.2.1].

    ``S = sum_t w_t x_t x_t'`` with ``w_t = (1 - lam) lam^(T-1-t) / (1 - lam^T)``: the RiskMetrics
    recursion ``S_t = lam S_{t-1} + (1 - lam) x_t x_t'`` started from zero, with weights normalised to
    sum to one over the finite window."""
    x = np.asarray(x, dtype=float)
    T = len(x)
    w = lam ** np.arange(T - 1, -1, -1, dtype=float)
    w /= w.sum()
    return (x * w[:, None]).T @ x


class EWMACov(CovarianceForecaster):
    """Exponentially weighted covariance, RiskMetrics (1996).

    Parameters
    ----------
    lam : decay in (0, 1); 0.94 is RiskMetrics' daily value [RM96, s.5.3.2]
    mean : ``"zero"`` (RiskMetrics: daily returns have mean zero) or ``"sample"`` (around the weighted
        mean, the estimator the Monte Carlo's ``estimator: ewma`` uses)
    """

    name = "ewma"

    def __init__(self, lam: float = 0.94, mean: str = "zero"):
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0.0 < lam < 1.0:
            raise ConfigError(f"ewma forecaster, field 'lam': expected a decay in (0, 1) (got {lam!r})")
        if mean not in ("zero", "sample"):
            raise ConfigError(f"ewma forecaster, field 'mean': expected 'zero' or 'sample' (got {mean!r})")
        self.lam = float(lam)
        self.mean = mean

    def _fit(self, x: np.ndarray) -> np.ndarray:
        self.details_["lam"] = self.lam
        if self.mean == "zero":
            return ewma_covariance(x, self.lam)
        return estimate_covariance(x, EstimatorSpec(method="ewma", lam=self.lam))[0]


class LedoitWolfCov(CovarianceForecaster):
    """Ledoit-Wolf shrinkage [LW04], by scikit-learn.

    Parameters
    ----------
    standardise : True (default) shrinks the correlation toward the identity (Ledoit-Wolf on returns
        divided by their sd, rescaled; the Monte Carlo's ``ledoit_wolf``, right for series in different
        units); False shrinks the raw covariance toward ``mu I`` (the textbook estimator, for returns of
        comparable scale)
    """

    name = "ledoit_wolf"

    def __init__(self, standardise: bool = True):
        if not isinstance(standardise, bool):
            raise ConfigError(f"ledoit_wolf forecaster, field 'standardise': expected true or false (got {standardise!r})")
        self.standardise = standardise

    def _fit(self, x: np.ndarray) -> np.ndarray:
        if self.standardise:
            cov, det = estimate_covariance(x, EstimatorSpec(method="ledoit_wolf"))
            self.details_["shrinkage"] = det["shrinkage"]
            return cov
        from sklearn.covariance import LedoitWolf

        lw = LedoitWolf().fit(x)
        self.details_["shrinkage"] = float(lw.shrinkage_)
        return np.asarray(lw.covariance_, dtype=float)


class _RepairedCov(CovarianceForecaster):
    """Sample vols with a repaired correlation, estimated as the Monte Carlo's estimator ``method``."""

    method = ""

    def __init__(self):
        pass

    def _fit(self, x: np.ndarray) -> np.ndarray:
        cov, det = estimate_covariance(x, EstimatorSpec(method=self.method))
        self.details_["repair_distance"] = det.get("repair_distance", 0.0)
        return cov


class DenoisedCov(_RepairedCov):
    """Sample vols with the correlation's noise eigenvalues (below the Marchenko-Pastur edge) replaced by
    their mean [L00] (the Monte Carlo's ``denoised``)."""

    name = method = "denoised"


class HierarchicalCov(_RepairedCov):
    """Sample vols with the average-linkage hierarchically filtered correlation [T07] (the Monte Carlo's
    ``hierarchical``)."""

    name = method = "hierarchical"


class DCCGarch(CovarianceForecaster):
    """GARCH(1,1)-t per series (arch) with DCC(1,1) correlation [E02]: the Monte Carlo's ``garch_t`` with
    ``correlation: dcc``.

    ``covariance_`` is the one-day-ahead ``D_{T+1} R_{T+1} D_{T+1}``; :meth:`forecast` sums the k-step
    forecasts ``D_{T+k} R_{T+k} D_{T+k}``, ``k = 1..horizon``, with GARCH variances
    ``s2_{T+k} = omega + (alpha + beta) s2_{T+k-1}`` (arch's analytic forecast) and the correlation of
    [ES01] reverting from ``R_{T+1}`` to ``Rbar`` at rate ``a + b``.
    """

    name = "dcc"

    def __init__(self):
        pass

    def _fit(self, x: np.ndarray) -> np.ndarray:
        g = fit_garch(x)
        a, b, qbar, q_next = fit_dcc(g.std_resid)
        d = 1.0 / np.sqrt(np.diag(q_next))
        r_next = q_next * d[:, None] * d[None, :]
        np.fill_diagonal(r_next, 1.0)
        self._garch, self._a, self._b, self._rbar, self._r_next = g, a, b, qbar, r_next
        self.details_.update(dcc_a=a, dcc_b=b, garch_persistence=(g.alpha + g.beta).tolist())
        sd = g.scale * np.sqrt(g.sigma2_next)
        return r_next * sd[:, None] * sd[None, :]

    def variance_path(self, horizon: int) -> np.ndarray:
        """GARCH variance forecasts ``[horizon, K]`` of days ``T+1 .. T+horizon`` (return units)."""
        _check_horizon(horizon)
        g = self._garch
        s2 = np.empty((horizon, len(g.scale)))
        s2[0] = g.sigma2_next
        for k in range(1, horizon):
            s2[k] = g.omega + (g.alpha + g.beta) * s2[k - 1]
        return s2 * g.scale ** 2

    def correlation_path(self, horizon: int) -> np.ndarray:
        """Correlation forecasts ``[horizon, K, K]`` of days ``T+1 .. T+horizon`` [ES01]."""
        _check_horizon(horizon)
        phi = (self._a + self._b) ** np.arange(horizon, dtype=float)
        return (1.0 - phi)[:, None, None] * self._rbar + phi[:, None, None] * self._r_next

    def forecast(self, horizon: int = 1) -> np.ndarray:
        sd = np.sqrt(self.variance_path(horizon))
        r = self.correlation_path(horizon)
        cov = np.einsum("ki,kij,kj->ij", sd, r, sd)
        return (cov + cov.T) / 2.0


#: the forecasters the batch file can name
FORECASTERS: dict[str, type[CovarianceForecaster]] = {
    cls.name: cls for cls in (SampleCov, EWMACov, LedoitWolfCov, DenoisedCov, HierarchicalCov, DCCGarch)
}


def register_forecaster(name: str, cls: type[CovarianceForecaster]) -> None:
    """Make ``cls`` available under ``name`` (for a model added later, e.g. a learned one)."""
    if not (isinstance(cls, type) and issubclass(cls, CovarianceForecaster)):
        raise ConfigError(f"forecaster {name!r}: {cls!r} is not a CovarianceForecaster subclass")
    FORECASTERS[name] = cls


from ._tic import TICCov  # noqa: E402  (theory-implied correlation; it subclasses CovarianceForecaster above)

register_forecaster(TICCov.name, TICCov)


from ._ml import GBMCorrelation, LSTMCorrelation  # noqa: E402  (learned correlation forecasters, docs/monitoring.md)

register_forecaster(GBMCorrelation.name, GBMCorrelation)
register_forecaster(LSTMCorrelation.name, LSTMCorrelation)


class ForecasterSpec(BaseModel):
    """One entry of the batch file's ``monitoring.forecasters``.

    A name (``sample``, ``ewma``, ``ledoit_wolf``, ``denoised``, ``hierarchical``, ``dcc``) or a mapping
    ``{name: ewma, lam: 0.97, label: ewma97}``: every key besides ``name`` and ``label`` is a setting of
    the forecaster.  ``label`` (default the name) names it in the tables and must be unique.
    """

    model_config = ConfigDict(extra="allow")
    name: str
    label: Optional[str] = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v):
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _known(self) -> "ForecasterSpec":
        if self.name not in FORECASTERS:
            raise ValueError(f"unknown forecaster {self.name!r}; expected one of {', '.join(FORECASTERS)}")
        self.build()  # settings are checked here, at the boundary
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def key(self) -> str:
        return self.label or self.name

    def build(self) -> CovarianceForecaster:
        cls = FORECASTERS[self.name]
        try:
            return cls(**self.params)
        except TypeError:
            allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            unknown = sorted(set(self.params) - set(allowed))
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)} of {self.name!r}; "
                f"it takes {', '.join(allowed) or 'no settings'}"
            ) from None
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


def make_forecaster(spec: str | Mapping[str, Any] | ForecasterSpec | CovarianceForecaster) -> CovarianceForecaster:
    """A fresh, unfitted forecaster from a name, a mapping ``{name: ..., setting: value}``, a
    :class:`ForecasterSpec`, or a forecaster (copied with the same settings).

    Raises
    ------
    ConfigError
        For an unknown name or setting.
    """
    if isinstance(spec, CovarianceForecaster):
        return type(spec)(**spec.get_params())
    if not isinstance(spec, ForecasterSpec):
        from pydantic import ValidationError

        try:
            spec = ForecasterSpec.model_validate(spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"forecaster {spec!r}: {err['msg'].removeprefix('Value error, ')}") from None
    return spec.build()
