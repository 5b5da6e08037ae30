"""Hierarchical risk parity (Lopez de Prado, "Building diversified portfolios that outperform
out-of-sample", J. Portfolio Management 42 (2016)).

1. Correlation distance ``d_ij = sqrt((1 - rho_ij) / 2)``; hierarchical clustering of the condensed
   distances (scipy), with optional optimal leaf ordering (Bar-Joseph et al. 2001);
2. quasi-diagonalisation: assets in dendrogram leaf order;
3. recursive bisection of the ordered list into halves; each half's risk is that of its
   inverse-variance (or inverse-CVaR) portfolio, and the split gives ``1 - r_left / (r_left + r_right)``
   to the left half.
"""

from __future__ import annotations

import numpy as np
import scipy.cluster.hierarchy as sch
from scipy.spatial.distance import squareform

from stressgrid.core.errors import DataError
from stressgrid.core.measures import var_cvar

from ._risk import weighted_covariance
from ._validate import check_alpha, check_choice, check_returns, check_sample_weight

__all__ = ["HRP"]

LINKAGES = ("single", "complete", "average", "ward", "weighted")
RISKS = ("variance", "cvar")


def correlation_tree(cov: np.ndarray, sd: np.ndarray, linkage: str, optimal_ordering: bool) -> tuple[np.ndarray, np.ndarray]:
    """The correlation distance ``sqrt((1 - rho) / 2)`` ``[N, N]`` of a covariance (``sd`` its volatilities)
    and scipy's linkage matrix on it, with optimal leaf ordering when asked (Lopez de Prado 2016, step 1)."""
    corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
    dist = np.sqrt(np.clip(0.5 * (1.0 - corr), 0.0, None))
    np.fill_diagonal(dist, 0.0)
    condensed = squareform(dist, checks=False)
    Z = sch.linkage(condensed, method=linkage)
    if optimal_ordering:
        Z = sch.optimal_leaf_ordering(Z, condensed)
    return dist, Z


class HRP:
    """Hierarchical risk parity, long-only, weights summing to 1.

    Parameters
    ----------
    linkage : scipy linkage method (``"single"`` as in Lopez de Prado 2016, or ``"ward"``, ...).
    optimal_ordering : reorder the leaves to put close assets next to each other (scipy
        ``optimal_leaf_ordering``).
    risk_measure : ``"variance"`` (inverse-variance within clusters, cluster variance) or ``"cvar"``
        (inverse-CVaR weights, cluster CVaR at ``alpha``).

    Attributes
    ----------
    weights_ : ``[N]``.  order_ : leaf order.  linkage_ : scipy linkage matrix.  status_ : ``"optimal"``.
    """

    def __init__(self, linkage: str = "single", optimal_ordering: bool = False, risk_measure: str = "variance",
                 alpha: float = 0.95):
        self.linkage = linkage
        self.optimal_ordering = optimal_ordering
        self.risk_measure = risk_measure
        self.alpha = alpha

    def fit(self, returns, sample_weight=None, current_weights=None) -> "HRP":
        check_choice("linkage", self.linkage, LINKAGES)
        check_choice("risk_measure", self.risk_measure, RISKS)
        R = check_returns(returns)
        p = check_sample_weight(sample_weight, R.shape[0])
        n = R.shape[1]
        cov = weighted_covariance(R, p)
        sd = np.sqrt(np.diag(cov))
        if np.any(sd <= 0):
            i = int(np.flatnonzero(sd <= 0)[0])
            raise DataError(f"returns[:, {i}]: a position with zero variance cannot be clustered (got sd 0)")
        if n == 1:
            self.weights_, self.order_, self.linkage_, self.status_ = np.ones(1), np.zeros(1, int), None, "optimal"
            return self
        _, Z = correlation_tree(cov, sd, self.linkage, self.optimal_ordering)
        order = sch.leaves_list(Z)

        if self.risk_measure == "variance":
            unit = np.diag(cov)

            def cluster_risk(w):
                return float(w @ cov @ w)
        else:
            alpha = check_alpha(self.alpha)
            unit = np.array([var_cvar(R[:, i], alpha, p)[1] for i in range(n)])
            if np.any(unit <= 0):
                i = int(np.flatnonzero(unit <= 0)[0])
                raise DataError(f"returns[:, {i}]: CVaR-based HRP needs a positive CVaR per position (got {unit[i]:.3g})")

            def cluster_risk(w):
                return var_cvar(R @ w, alpha, p)[1]

        w = np.ones(n)
        items = [order]
        while items:
            items = [c[j:k] for c in items for j, k in ((0, len(c) // 2), (len(c) // 2, len(c))) if len(c) > 1]
            for i in range(0, len(items), 2):
                left, right = items[i], items[i + 1]
                risks = []
                for ids in (left, right):
                    iv = np.zeros(n)
                    iv[ids] = 1.0 / unit[ids]
                    iv /= iv.sum()
                    risks.append(cluster_risk(iv))
                a = 1.0 - risks[0] / (risks[0] + risks[1])
                w[left] *= a
                w[right] *= 1.0 - a
        self.weights_ = w
        self.order_ = order
        self.linkage_ = Z
        self.status_ = "optimal"
        return self
