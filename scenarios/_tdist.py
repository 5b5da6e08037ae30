"""Multivariate Student-t: degrees of freedom by profile likelihood, and seeded draws.

References
----------
.. [MFE15] A. J. McNeil, R. Frey and P. Embrechts, "Quantitative Risk Management", revised ed.,
   Princeton (2015), section 6.2.3 (multivariate t: density, stochastic representation, fitting).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import gammaln

__all__ = ["fit_t_dof", "t_loglik", "mvt_scale_draws", "independent_columns"]

#: search range of the estimated degrees of freedom
DOF_BOUNDS = (2.1, 200.0)


def t_loglik(nu: float, q: np.ndarray, p: int, logdet_cov: float) -> float:
    """Log-likelihood of a centred multivariate t sample whose covariance (not scale) is ``S``.

    With scale ``Psi = S (nu - 2) / nu`` and ``q_t = x_t' S^-1 x_t`` the density of [MFE15, eq. 6.29]
    gives, summed over ``T`` observations::

        T [lnG((nu+p)/2) - lnG(nu/2) - p/2 ln(pi nu) - 1/2 ln|Psi|] - (nu+p)/2 sum ln(1 + q_t/(nu - 2))

    Parameters
    ----------
    nu : degrees of freedom (> 2)
    q : ``[T]`` Mahalanobis distances squared under ``S``
    p : dimension
    logdet_cov : ``ln|S|``
    """
    T = len(q)
    logdet_psi = logdet_cov + p * np.log((nu - 2.0) / nu)
    const = gammaln((nu + p) / 2.0) - gammaln(nu / 2.0) - 0.5 * p * np.log(np.pi * nu) - 0.5 * logdet_psi
    return float(T * const - 0.5 * (nu + p) * np.log1p(q / (nu - 2.0)).sum())


def independent_columns(x: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Indices (in order) of the columns of ``x [T, p]`` that are not linear combinations of earlier
    ones: each standardised column is kept when its component orthogonal to the kept ones has a norm
    above ``tol`` times its own (Gram-Schmidt, orthogonalised twice).  A proxied factor without residual
    is beta times its proxy and drops out when it comes after it; columns that merely correlate stay."""
    sd = x.std(axis=0)
    keep: list[int] = []
    basis = np.zeros((x.shape[0], 0))
    for j in np.flatnonzero(sd > 0):
        v = (x[:, j] - x[:, j].mean()) / sd[j]
        r = v - basis @ (basis.T @ v)
        r = r - basis @ (basis.T @ r)
        n = np.linalg.norm(r)
        if n > tol * np.linalg.norm(v):
            keep.append(int(j))
            basis = np.column_stack([basis, r / n])
    return np.asarray(keep, dtype=int)


def fit_t_dof(x: np.ndarray, cov: np.ndarray, mean: np.ndarray | None = None) -> float:
    """Degrees of freedom of a multivariate t with covariance ``cov`` that best fits ``x [T, p]``.

    Profile likelihood in ``nu`` with the scale tied to the given covariance, maximised on
    :data:`DOF_BOUNDS` (the upper bound stands for "close to Gaussian") [MFE15, s.6.2.3].  The fit uses
    the :func:`independent_columns` of ``x``: a column that moves exactly with others (a duplicate, or a
    factor proxied without residual) would otherwise count as a dimension of its own, and a shrunk
    covariance gives it variance the data never shows, which biases ``nu`` down.
    """
    x = np.asarray(x, float)
    if x.ndim == 1:
        x = x[:, None]
    mean = np.zeros(x.shape[1]) if mean is None else np.asarray(mean, float)
    keep = independent_columns(x - mean)
    if len(keep) < x.shape[1]:  # a factor that moves exactly with others adds no information on the tails
        x, mean, cov = x[:, keep], mean[keep], np.asarray(cov)[np.ix_(keep, keep)]
    xc = x - mean
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        # a singular covariance: fit on its non-degenerate eigen-directions
        w, v = np.linalg.eigh(cov)
        keep = w > 1e-12 * w.max()
        z = (xc @ v[:, keep]) / np.sqrt(w[keep])
        q = (z ** 2).sum(axis=1)
        p, logdet = int(keep.sum()), float(np.log(w[keep]).sum())
    else:
        q = np.einsum("ij,ij->i", xc, np.linalg.solve(cov, xc.T).T)
        p = x.shape[1]
    res = minimize_scalar(lambda nu: -t_loglik(nu, q, p, logdet), bounds=DOF_BOUNDS, method="bounded",
                          options={"xatol": 1e-4})
    return float(res.x)


def mvt_scale_draws(rng: np.random.Generator, n: int, nu: float | None) -> np.ndarray:
    """Mixing factors ``sqrt((nu - 2) / g)``, ``g ~ chi2(nu)``, shape ``[n]``.

    Multiplying a ``N(0, S)`` draw by this factor gives a multivariate t with ``nu`` degrees of
    freedom and covariance ``S`` (since ``E[1/g] = 1/(nu - 2)``) [MFE15, eq. 6.24]. ``nu=None``
    (Gaussian) gives ones and draws nothing.
    """
    if nu is None:
        return np.ones(n)
    return np.sqrt((nu - 2.0) / rng.chisquare(nu, size=n))


def check_dof(v: float | None) -> float | None:
    """Validator of a Student-t degrees-of-freedom setting: None (estimate it) or above 2 (finite variance)."""
    if v is not None and not v > 2.0:
        raise ValueError("Student-t degrees of freedom must be above 2 (finite variance)")
    return v
