"""Covariance and correlation estimators, and the nearest correlation matrix.

References
----------
.. [H02] N. J. Higham, "Computing the nearest correlation matrix - a problem from finance",
   IMA Journal of Numerical Analysis 22 (2002) 329-343.
.. [RM96] J.P. Morgan/Reuters, "RiskMetrics - Technical Document", 4th ed. (1996), section 5.2.
.. [LW04] O. Ledoit and M. Wolf, "A well-conditioned estimator for large-dimensional covariance
   matrices", Journal of Multivariate Analysis 88 (2004) 365-411 (scikit-learn's ``LedoitWolf``,
   applied to the standardised moves, i.e. shrinking the correlation matrix toward the identity).
.. [L00] L. Laloux, P. Cizeau, M. Potters and J.-P. Bouchaud, "Random matrix theory and financial
   correlations", International Journal of Theoretical and Applied Finance 3 (2000) 391-397.
.. [LdP20] M. Lopez de Prado, "Machine Learning for Asset Managers", Cambridge (2020), section 2.5
   (constant residual eigenvalue denoising).
.. [T07] M. Tumminello, F. Lillo and R. N. Mantegna, "Hierarchically nested factor model from
   multivariate data", Europhysics Letters 78 (2007) 30006 (average-linkage filtered correlation).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "EstimatorSpec",
    "estimate_covariance",
    "nearest_correlation",
    "cov_to_corr",
    "corr_to_cov",
    "sym_sqrt",
    "pairwise_covariance",
    "is_correlation",
]


class EstimatorSpec(BaseModel):
    """Which covariance estimator a model uses.

    Batch-file key ``estimator``: a method name (``sample``, ``ewma``, ``ledoit_wolf``, ``denoised``,
    ``hierarchical``) or a mapping ``{method: ewma, lam: 0.97}``.
    """

    model_config = ConfigDict(extra="forbid")
    method: Literal["sample", "ewma", "ledoit_wolf", "denoised", "hierarchical"] = "sample"
    lam: float = Field(default=0.94, gt=0.0, lt=1.0, description="EWMA decay (RiskMetrics daily: 0.94)")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v):
        return {"method": v} if isinstance(v, str) else v


def cov_to_corr(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation ``[F, F]`` and standard deviations ``[F]`` of a covariance matrix (``C = D^-1 S D^-1``)."""
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    inv = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 0.0)
    corr = cov * inv[:, None] * inv[None, :]
    np.fill_diagonal(corr, 1.0)
    return (corr + corr.T) / 2.0, sd


def corr_to_cov(corr: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Covariance ``D C D`` from correlation ``C [F, F]`` and standard deviations ``sd [F]``."""
    return corr * sd[:, None] * sd[None, :]


def is_correlation(c: np.ndarray, tol: float = 1e-10) -> bool:
    """True if ``c`` is symmetric, has a unit diagonal and no eigenvalue below ``-tol``."""
    return (np.allclose(c, c.T, atol=tol) and np.allclose(np.diag(c), 1.0, atol=tol)
            and float(np.linalg.eigvalsh((c + c.T) / 2).min()) >= -tol)


def _proj_psd(a: np.ndarray) -> np.ndarray:
    """Nearest positive semidefinite matrix in the Frobenius norm: eigenvalues clipped at 0 [H02, Thm 3.2]."""
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.clip(w, 0.0, None)) @ v.T


def nearest_correlation(a: np.ndarray, tol: float = 1e-10, max_iter: int = 1000) -> tuple[np.ndarray, float, int]:
    """Nearest correlation matrix to a symmetric matrix in the Frobenius norm [H02].

    Alternating projections onto the positive semidefinite cone ``S`` and the unit-diagonal matrices
    ``U``, with Dykstra's correction on the projection onto ``S`` (which is not affine) [H02,
    Algorithm 3.3 with ``W = I``)::

        dS = 0; Y = A
        repeat:  R = Y - dS;  X = P_S(R);  dS = X - R;  Y = P_U(X)
        until ||Y - X||_F / ||Y||_F < tol

    A last eigenvalue clip and diagonal rescaling make the result exactly PSD with a unit diagonal.
    An input that already is a valid correlation matrix is returned unchanged.

    Parameters
    ----------
    a : float ``[F, F]``, symmetric (e.g. a blended or pairwise-estimated correlation matrix)
    tol : relative convergence tolerance
    max_iter : iteration limit

    Returns
    -------
    x : float ``[F, F]``
        PSD, unit diagonal.
    distance : float
        ``||x - a||_F``, the distance moved.
    iterations : int
    """
    a = np.asarray(a, dtype=float)
    a = (a + a.T) / 2.0
    if np.allclose(np.diag(a), 1.0, rtol=0, atol=0) and np.linalg.eigvalsh(a).min() >= 0.0:
        return a.copy(), 0.0, 0
    ds = np.zeros_like(a)
    y = a.copy()
    it = 0
    for it in range(1, max_iter + 1):
        r = y - ds
        x = _proj_psd(r)
        ds = x - r
        y = x.copy()
        np.fill_diagonal(y, 1.0)
        if np.linalg.norm(y - x) / max(np.linalg.norm(y), 1e-300) < tol:
            break
    # exact PSD and unit diagonal: clip, then rescale (a congruence keeps PSD)
    x = _proj_psd(y)
    d = np.sqrt(np.clip(np.diag(x), 1e-300, None))
    x = x / d[:, None] / d[None, :]
    x = (x + x.T) / 2.0
    np.fill_diagonal(x, 1.0)
    return x, float(np.linalg.norm(x - a)), it


def sym_sqrt(s: np.ndarray, inverse: bool = False, floor: float = 0.0) -> np.ndarray:
    """Symmetric square root ``S^{1/2}`` (or pseudo-inverse root ``S^{-1/2}``) of a PSD matrix ``[F, F]``
    from its eigendecomposition; eigenvalues at or below ``floor`` count as zero in the inverse."""
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    w = np.clip(w, 0.0, None)
    if inverse:
        cut = max(floor, 1e-12 * max(w.max(), 1e-300))
        r = np.where(w > cut, 1.0 / np.sqrt(np.where(w > cut, w, 1.0)), 0.0)
    else:
        r = np.sqrt(w)
    return (v * r) @ v.T


def _ewma_cov(x: np.ndarray, lam: float) -> np.ndarray:
    """Exponentially weighted covariance [RM96]: weights ``lam^(T-1-t)`` normalised to 1, around the
    weighted mean (the ``adjust=True, bias=True`` form of pandas' ``ewm().cov()``)."""
    T = len(x)
    w = lam ** np.arange(T - 1, -1, -1, dtype=float)
    w /= w.sum()
    mu = w @ x
    xc = x - mu
    return (xc * w[:, None]).T @ xc


def _denoise_corr(c: np.ndarray, T: int) -> np.ndarray:
    """Constant residual eigenvalue denoising [L00, LdP20 s.2.5].

    Eigenvalues of the correlation matrix below the Marchenko-Pastur edge ``(1 + sqrt(F/T))^2`` (the
    largest eigenvalue of the correlation of ``T`` draws of ``F`` independent unit-variance series) are
    replaced by their mean, which keeps the trace; the result is rescaled to a unit diagonal.
    """
    F = len(c)
    edge = (1.0 + np.sqrt(F / T)) ** 2
    w, v = np.linalg.eigh(c)
    noise = w < edge
    if noise.sum() >= 1:
        w = w.copy()
        w[noise] = w[noise].mean()
    out = (v * w) @ v.T
    d = np.sqrt(np.diag(out))
    out = out / d[:, None] / d[None, :]
    np.fill_diagonal(out, 1.0)
    return (out + out.T) / 2.0


def _hierarchical_corr(c: np.ndarray) -> np.ndarray:
    """Average-linkage filtered correlation [T07]: ``rho_ij`` is replaced by ``1 - d_ij`` with ``d_ij`` the
    cophenetic distance at which ``i`` and ``j`` join in an average-linkage tree on ``d = 1 - rho``."""
    from scipy.cluster.hierarchy import cophenet, linkage
    from scipy.spatial.distance import squareform

    F = len(c)
    if F < 3:
        return c.copy()
    d = np.clip(1.0 - c, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(d, checks=False), method="average")
    out = 1.0 - squareform(cophenet(z))
    np.fill_diagonal(out, 1.0)
    return out


def estimate_covariance(moves: np.ndarray, spec: EstimatorSpec | None = None) -> tuple[np.ndarray, dict]:
    """Covariance of daily moves ``[T, F]`` by the chosen estimator.

    Returns
    -------
    cov : float ``[F, F]``, in squared shock units per day
    details : dict
        ``method`` and, where it applies, ``shrinkage`` (Ledoit-Wolf intensity), ``repair_distance``
        (Frobenius distance moved to make the result a valid correlation).
    """
    spec = spec or EstimatorSpec()
    x = np.asarray(moves, dtype=float)
    T, F = x.shape
    details: dict = {"method": spec.method}
    if spec.method == "ewma":
        details["lam"] = spec.lam
        return _ewma_cov(x, spec.lam), details
    if spec.method == "ledoit_wolf":
        from sklearn.covariance import LedoitWolf

        # factors come in different units (a daily equity log-return's variance is ~1e-4, a rate's
        # change ~1e-8): shrinking the raw covariance toward mu I would inflate the rates' variance a
        # hundredfold.  Shrink the correlation instead: Ledoit-Wolf on the standardised moves (unit
        # variances, target the identity), rescaled by the vols (biased, as Ledoit-Wolf's own).
        sd = x.std(axis=0, ddof=0)
        sd = np.where(sd > 0, sd, 1.0)
        lw = LedoitWolf().fit(x / sd)
        details["shrinkage"] = float(lw.shrinkage_)
        return np.asarray(lw.covariance_) * sd[:, None] * sd[None, :], details
    s = np.cov(x, rowvar=False, ddof=1).reshape(F, F)
    if spec.method == "sample":
        return s, details
    corr, sd = cov_to_corr(s)
    if spec.method == "denoised":
        corr = _denoise_corr(corr, T)
    else:
        corr = _hierarchical_corr(corr)
    corr, dist, _ = nearest_correlation(corr)
    details["repair_distance"] = dist
    return corr_to_cov(corr, sd), details


def pairwise_covariance(levels: pd.DataFrame, is_log: np.ndarray, min_overlap: int = 60) -> tuple[np.ndarray, np.ndarray, float]:
    """Covariance of daily moves from pairwise-complete observations, repaired to a valid one.

    Each factor's daily move is taken only where it is observed on two consecutive dates of the
    index; each pair uses the days both move.  Such a matrix need not be positive semidefinite, so
    its correlation is replaced by the nearest correlation matrix [H02].  A pair that overlaps on
    fewer than ``min_overlap`` days gets correlation 0 before the repair.

    Parameters
    ----------
    levels : DataFrame ``[T, F]`` of factor levels (NaN where unobserved)
    is_log : bool ``[F]``

    Returns
    -------
    cov : ``[F, F]`` (NaN rows/columns for a factor with fewer than ``min_overlap`` moves)
    has : bool ``[F]``, factors with enough moves
    repair_distance : float, Frobenius distance of the correlation repair
    """
    x = levels.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(is_log, np.log(x[1:] / x[:-1]), x[1:] - x[:-1])
    df = pd.DataFrame(m, columns=levels.columns)
    cnt = df.notna().sum().to_numpy()
    has = cnt >= min_overlap
    F = len(levels.columns)
    cov = np.full((F, F), np.nan)
    if not has.any():
        return cov, has, 0.0
    sub = df.loc[:, has]
    c = sub.cov(min_periods=min_overlap).to_numpy()
    sd = np.sqrt(np.diag(c))
    corr = c / sd[:, None] / sd[None, :]
    corr = np.where(np.isfinite(corr), np.clip(corr, -1.0, 1.0), 0.0)
    np.fill_diagonal(corr, 1.0)
    corr, dist, _ = nearest_correlation(corr)
    idx = np.flatnonzero(has)
    cov[np.ix_(idx, idx)] = corr_to_cov(corr, sd)
    return cov, has, dist
