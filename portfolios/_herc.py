"""Hierarchical equal risk contribution (Raffinot, "The hierarchical equal risk contribution portfolio",
SSRN 3237540, 2018; building on Raffinot, "Hierarchical clustering-based asset allocation", J. Portfolio
Management 44(2) (2018)).

1. Correlation distance ``d_ij = sqrt((1 - rho_ij) / 2)`` and hierarchical clustering of the condensed
   distances (scipy), with optional optimal leaf ordering (Bar-Joseph et al. 2001), as in :class:`HRP`;
2. the dendrogram cut into ``k`` clusters (scipy ``fcluster``, ``criterion="maxclust"``), ``k`` given
   or chosen by a two-order-difference gap statistic (Yue, Wang and Wei, "Application of two-order
   difference to gap statistic", 2009), see :class:`HERC`;
3. each cluster ``c`` is held as its naive risk-parity portfolio ``u_c`` (weights proportional to the
   inverse of each position's own risk, summing to 1) and has the risk ``r_c = rho(u_c)`` of that
   portfolio;
4. top-down along the dendrogram, from the root to the clusters, each node's weight is split between
   its two children: the left child gets ``a = 1 - r_L / (r_L + r_R)``, the right ``1 - a``, where
   ``r_L`` (``r_R``) is the sum of the risks ``r_c`` of the clusters under that child.  So each
   node's two children get ``a r_L = (1 - a) r_R``: equal risk, measured as weight times risk.
   The final weight of a position is its cluster's weight times its weight in ``u_c``.

With ``risk_measure="vol"`` and two uncorrelated clusters, the Euler contributions of the clusters to
the portfolio volatility, ``a^2 r_L^2 / sigma`` and ``(1 - a)^2 r_R^2 / sigma``, are equal; with
``"variance"`` (the split of skfolio and riskfolio-lib by default) the split is by inverse variance and
those contributions are in the ratio ``r_R : r_L``.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.cluster.hierarchy as sch
from scipy.spatial.distance import squareform

from stressgrid.core.errors import ConfigError, DataError
from stressgrid.core.measures import var_cvar

from ._hrp import LINKAGES, correlation_tree
from ._risk import weighted_covariance
from ._validate import check_alpha, check_choice, check_returns, check_sample_weight

__all__ = ["HERC"]

RISKS = ("variance", "vol", "cvar")
#: rules that choose the number of clusters when ``n_clusters`` is not an integer
CLUSTER_RULES = ("gap", "gap_std")
#: largest number of clusters the ``"gap_std"`` rule considers (riskfolio-lib's ``max_k`` default)
GAP_STD_MAX_K = 10


def _within(dist: np.ndarray, level: np.ndarray, stat) -> float:
    """Sum over the clusters of ``level`` with two or more members of ``stat`` of their pairwise distances."""
    total = 0.0
    for c in np.unique(level):
        ids = np.flatnonzero(level == c)
        if len(ids) > 1:
            total += float(stat(squareform(dist[np.ix_(ids, ids)], checks=False)))
    return total


def gap_mean(dist: np.ndarray, Z: np.ndarray) -> int:
    """Number of clusters by the two-order difference of the within-cluster mean distance (skfolio's rule).

    ``W_k`` is the sum over the ``k`` clusters of the dendrogram cut (``scipy.cluster.hierarchy.cut_tree``)
    of the mean pairwise distance within each cluster (singletons add 0); the number of clusters is the
    first ``k`` in ``2 <= k <= K - 1`` maximising ``W_{k-1} + W_{k+1} - 2 W_k``, with
    ``K = min(N, max(8, round(sqrt(N))))``; 2 when ``N = 2``.
    """
    n = dist.shape[0]
    if n <= 2:
        return n
    cuts = sch.cut_tree(Z)  # column j: n - j clusters
    kmax = min(n, max(8, int(round(np.sqrt(n)))))
    W = np.array([_within(dist, cuts[:, n - k], np.mean) for k in range(1, kmax + 1)])  # W[k - 1] = W_k
    gaps = W[:-2] + W[2:] - 2.0 * W[1:-1]  # gaps[j] at k = j + 2
    return int(np.argmax(gaps)) + 2


def gap_std(dist: np.ndarray, Z: np.ndarray, max_k: int = GAP_STD_MAX_K) -> int:
    """Number of clusters by the two-order difference of the within-cluster standard deviation of the
    distances (riskfolio-lib's ``opt_k_method="twodiff"`` with ``max_k``).

    ``W_k`` is the sum over the ``k`` clusters of the cut of the standard deviation (ddof 0) of the
    pairwise distances within each cluster (singletons add 0); the number of clusters is the first ``k``
    in ``2 <= k <= K - 2`` maximising ``W_k + W_{k+2} - 2 W_{k+1}``, with
    ``K = min(N, floor(min(max_k, sqrt(N)) + 2))``; 1 when there is no such ``k`` (``N <= 3``).
    """
    n = dist.shape[0]
    kmax = min(n, int(np.floor(min(max_k, np.sqrt(n)) + 2.0)))
    if kmax < 4:
        return 1
    cuts = sch.cut_tree(Z)
    W = np.array([_within(dist, cuts[:, n - k], np.std) for k in range(2, kmax + 1)])  # W[k - 2] = W_k
    gaps = W[:-2] + W[2:] - 2.0 * W[1:-1]  # gaps[j] at k = j + 2
    return int(np.argmax(gaps)) + 2


class HERC:
    """Hierarchical equal risk contribution (Raffinot 2018), long-only, weights summing to 1.

    The assets are clustered on the correlation distance; the dendrogram is cut into ``n_clusters``
    clusters; from the root down, each node's weight is split between its two children in inverse
    proportion to the summed risk of the clusters under each (equal risk contribution between
    clusters); within each cluster the weights are inverse to each position's own risk (naive risk
    parity).  See the module docstring for the formulas.

    Parameters
    ----------
    linkage : scipy linkage method (``"ward"``, the default of skfolio; ``"single"``, the default of
        riskfolio-lib; ``"average"``, ``"complete"``, ``"weighted"``).
    optimal_ordering : reorder the leaves so that close assets sit next to each other (scipy
        ``optimal_leaf_ordering``).  It changes ``order_`` only, never the weights.
    risk_measure : ``"variance"`` (inverse-variance weights within clusters, cluster variance),
        ``"vol"`` (inverse volatility, cluster volatility) or ``"cvar"`` (inverse CVaR, cluster CVaR
        at ``alpha``), all under the scenario probabilities ``sample_weight``.
    alpha : CVaR confidence level (``risk_measure="cvar"``).
    n_clusters : an integer in ``[1, N]``, or the rule that chooses it: ``"gap"`` (default; the
        two-order difference of the within-cluster mean distance, :func:`gap_mean`, as skfolio) or
        ``"gap_std"`` (of the within-cluster standard deviation of the distances, :func:`gap_std`, as
        riskfolio-lib).  The cut is scipy's ``fcluster(..., criterion="maxclust")``, which gives fewer
        clusters where merge heights tie; ``n_clusters_`` is the number obtained.

    Attributes
    ----------
    weights_ : ``[N]``, >= 0, summing to 1.
    labels_ : ``[N]`` cluster of each position, ``0 .. n_clusters_ - 1``.  n_clusters_ : int.
    cluster_weights_ : ``[n_clusters_]`` weight of each cluster.  cluster_risks_ : ``[n_clusters_]``
        risk ``r_c`` of each cluster's naive risk-parity portfolio (variance, volatility or CVaR per
        scenario period, fractions of NAV).
    order_ : leaf order.  linkage_ : scipy linkage matrix.  status_ : ``"optimal"``.

    Notes
    -----
    Peer libraries (equal-probability scenarios):

    * skfolio ``HierarchicalEqualRiskContribution``: ``risk_measure`` ``"variance"``, ``"vol"``,
      ``"cvar"`` with ``alpha=0.95`` are its ``RiskMeasure.VARIANCE``, ``STANDARD_DEVIATION``, ``CVAR``;
      ``linkage`` is its ``HierarchicalClustering(linkage_method=...)``; ``n_clusters="gap"`` is its
      default (``max_clusters=None``) and an integer ``k`` is ``max_clusters=k``.
    * riskfolio-lib ``HCPortfolio(alpha=1 - alpha).optimization(model="HERC", codependence="pearson")``:
      ``risk_measure`` ``"variance"``, ``"vol"``, ``"cvar"`` are its ``rm="MV"``, ``"vol"``, ``"CVaR"``;
      ``n_clusters="gap_std"`` is its default ``opt_k_method="twodiff", max_k=10`` and an integer ``k``
      is ``k=k``; its ``leaf_order`` is ``optimal_ordering``.
    """

    def __init__(self, linkage: str = "ward", optimal_ordering: bool = False, risk_measure: str = "variance",
                 alpha: float = 0.95, n_clusters: int | str = "gap"):
        self.linkage = linkage
        self.optimal_ordering = optimal_ordering
        self.risk_measure = risk_measure
        self.alpha = alpha
        self.n_clusters = n_clusters

    def _check_n_clusters(self, n: int):
        k = self.n_clusters
        if isinstance(k, str) and k in CLUSTER_RULES:
            return k
        if isinstance(k, numbers.Integral) and not isinstance(k, bool) and 1 <= int(k) <= n:
            return int(k)
        raise ConfigError(f"n_clusters: expected an integer in [1, {n}] (the number of positions) or one of "
                          f"{list(CLUSTER_RULES)} (got {k!r})")

    def fit(self, returns, sample_weight=None, current_weights=None) -> "HERC":
        """Compute the weights from scenario returns per unit weight ``[S, N]`` under the scenario
        probabilities ``sample_weight [S]`` (default equal); ``current_weights`` is not used."""
        check_choice("linkage", self.linkage, LINKAGES)
        check_choice("risk_measure", self.risk_measure, RISKS)
        R = check_returns(returns)
        p = check_sample_weight(sample_weight, R.shape[0])
        n = R.shape[1]
        rule = self._check_n_clusters(n)
        alpha = check_alpha(self.alpha) if self.risk_measure == "cvar" else None
        cov = weighted_covariance(R, p)
        sd = np.sqrt(np.diag(cov))
        if np.any(sd <= 0):
            i = int(np.flatnonzero(sd <= 0)[0])
            raise DataError(f"returns[:, {i}]: a position with zero variance cannot be clustered (got sd 0)")

        if self.risk_measure == "variance":
            unit = sd * sd

            def risk_of(w):
                return float(w @ cov @ w)
        elif self.risk_measure == "vol":
            unit = sd

            def risk_of(w):
                return float(np.sqrt(max(w @ cov @ w, 0.0)))
        else:
            unit = np.array([var_cvar(R[:, i], alpha, p)[1] for i in range(n)])
            if np.any(unit <= 0):
                i = int(np.flatnonzero(unit <= 0)[0])
                raise DataError(f"returns[:, {i}]: CVaR-based HERC needs a positive CVaR per position "
                                f"(got {unit[i]:.3g})")

            def risk_of(w):
                return var_cvar(R @ w, alpha, p)[1]

        if n == 1:
            self.weights_, self.labels_, self.n_clusters_ = np.ones(1), np.zeros(1, int), 1
            self.cluster_weights_, self.cluster_risks_ = np.ones(1), np.array([risk_of(np.ones(1))])
            self.order_, self.linkage_, self.status_ = np.zeros(1, int), None, "optimal"
            return self

        dist, Z = correlation_tree(cov, sd, self.linkage, self.optimal_ordering)
        if rule == "gap":
            k = gap_mean(dist, Z)
        elif rule == "gap_std":
            k = gap_std(dist, Z)
        else:
            k = rule
        labels = sch.fcluster(Z, t=k, criterion="maxclust")
        _, labels = np.unique(labels, return_inverse=True)
        n_clusters = int(labels.max()) + 1

        # each cluster held as its naive risk-parity portfolio
        inner = np.zeros(n)
        risks = np.zeros(n_clusters)
        for c in range(n_clusters):
            ids = labels == c
            u = np.zeros(n)
            u[ids] = 1.0 / unit[ids]
            u /= u.sum()
            inner[ids] = u[ids]
            risks[c] = risk_of(u)
        if np.any(risks <= 0):
            c = int(np.flatnonzero(risks <= 0)[0])
            raise DataError(f"returns: the naive risk-parity portfolio of the cluster of positions "
                            f"{np.flatnonzero(labels == c).tolist()} has a {self.risk_measure} of {risks[c]:.3g}; "
                            "HERC needs a positive risk per cluster")

        # clusters under each node of the dendrogram (leaves 0..n-1, merges n..2n-2)
        under = np.zeros((2 * n - 1, n_clusters), bool)
        under[np.arange(n), labels] = True
        children = Z[:, :2].astype(int)
        for i, (a, b) in enumerate(children):
            under[n + i] = under[a] | under[b]

        # top-down: split each node's weight until a single cluster is reached
        cluster_weights = np.zeros(n_clusters)
        stack = [(2 * n - 2, 1.0)]
        while stack:
            node, m = stack.pop()
            if under[node].sum() == 1:
                cluster_weights[under[node]] = m
                continue
            left, right = children[node - n]
            r_left, r_right = risks[under[left]].sum(), risks[under[right]].sum()
            a = 1.0 - r_left / (r_left + r_right)
            stack.append((left, m * a))
            stack.append((right, m * (1.0 - a)))

        self.weights_ = inner * cluster_weights[labels]
        self.labels_ = labels
        self.n_clusters_ = n_clusters
        self.cluster_weights_ = cluster_weights
        self.cluster_risks_ = risks
        self.order_ = sch.leaves_list(Z)
        self.linkage_ = Z
        self.status_ = "optimal"
        return self
