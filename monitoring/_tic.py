"""Theory-implied correlation (TIC): the correlation a declared tree of the factors implies.

López de Prado's TIC [LdP19] fits a tree of the assets (a classification: asset class, region,
sector, ...) to the empirical correlation and reads a correlation matrix off the fitted dendrogram, so
that the structure comes from the theory and only the distances from the data.  The steps, as
implemented in :func:`tic_correlation` (the functions named are those of [LdP19]'s code):

1. **Distances.** ``d_ij = sqrt((1 - rho_ij) / 2)`` from the empirical correlation ``rho``
   (``getLinkage_corr``; a metric, [LdP19] after [M99]).
2. **Tree.** Every column is a leaf below its path of labels, top level first; a root sits above the
   top level (``getLinkage_corr`` adds the level ``All`` when the top level has several labels).  A label
   names a node under its parent, so ``us`` under ``equity`` and ``us`` under ``rates`` are two nodes.
3. **Fit, bottom-up.** At every node with two or more children, the distance between two children is
   the mean of ``d`` over the pairs of their leaves, and a single-linkage fit (``linkage``) on those
   distances joins the children into a binary dendrogram, one merge at a time, each at a height ``h``.
   In [LdP19]'s ``updateDist`` a merged cluster's distances are the average of its two parts'
   distances weighted by their numbers of leaves: by induction, the mean over leaf pairs.  A node with a single child is that
   child (``getLinkage_corr`` renames it).
4. **Implied correlation.** Two leaves first joined by a merge at height ``h`` get ``1 - 2 h^2``
   (``link2corr``, step 1 inverted); the diagonal is 1.

[LdP19]'s ``getTIC`` goes on to denoise step 4's matrix (constant residual eigenvalue method); here,
as issue #24 declares, :class:`TICCov` shrinks it toward the empirical correlation instead,
``R = (1 - w) R_TIC + w R_emp`` with ``w`` the ``shrinkage`` (the weight on the *empirical* matrix), and
repairs ``R`` to the nearest correlation matrix [H02] where it is not positive semidefinite (heights
that are not monotone across the tree's levels give an implied matrix that need not be).  How far the
matrices are from the empirical one is the correlation matrix distance of [HB04],
:func:`correlation_matrix_distance`.

References
----------
.. [LdP19] M. López de Prado, "Estimation of theory-implied correlation matrices", SSRN working paper
   3484152 (2019), Cornell University: the TIC algorithm (``getLinkage_corr``, ``linkClusters``,
   ``updateDist``, ``getAtoms``, ``link2corr``, ``getTIC``) and its comparison with the empirical
   correlation by the correlation matrix distance.
.. [M99] R. N. Mantegna, "Hierarchical structure in financial markets", European Physical Journal B 11
   (1999) 193-197 (the distance ``sqrt(2 (1 - rho))``, twice step 1's).
.. [HB04] M. Herdin and E. Bonek, "A MIMO correlation matrix based metric for characterizing
   non-stationarity", Proceedings of the IST Mobile & Wireless Communications Summit, Lyon (2004); also
   M. Herdin, N. Czink, H. Özcelik and E. Bonek, "Correlation matrix distance, a meaningful measure for
   evaluation of non-stationary MIMO channels", IEEE VTC 2005-Spring.
.. [H02] N. J. Higham, "Computing the nearest correlation matrix - a problem from finance", IMA Journal
   of Numerical Analysis 22 (2002) 329-343.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from stressgrid.core import ConfigError, DataError, factor_spec
from stressgrid.scenarios import EstimatorSpec, estimate_covariance, nearest_correlation

from ._forecast import CovarianceForecaster, cov_to_corr

__all__ = ["TICCov", "tic_correlation", "correlation_matrix_distance", "LINKAGES"]

#: linkage methods a node's children may be joined by (scipy's names); [LdP19] uses ``single``
LINKAGES = ("single", "complete", "average", "weighted")


def correlation_matrix_distance(r1: np.ndarray, r2: np.ndarray) -> float:
    """Correlation matrix distance of [HB04]: ``d = 1 - tr(R1 R2) / (||R1||_F ||R2||_F)``.

    Zero when the matrices are equal (or proportional), one when they are orthogonal in the Frobenius
    inner product; in ``[0, 1]`` for positive semidefinite matrices (``tr(R1 R2) >= 0``), in ``[0, 2]``
    for any (Cauchy-Schwarz; the result is clipped at 0 against rounding).

    Parameters
    ----------
    r1, r2 : float ``[K, K]``, symmetric (correlation matrices)

    Raises
    ------
    DataError
        If the two are not square matrices of one shape.
    """
    a = np.asarray(r1, dtype=float)
    b = np.asarray(r2, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise DataError(f"correlation_matrix_distance: expected two square matrices of one shape, got {a.shape} and {b.shape}")
    # tr(A B) = sum_ij A_ij B_ji
    return max(0.0, float(1.0 - np.sum(a * b.T) / (np.linalg.norm(a) * np.linalg.norm(b))))


def tic_correlation(corr: np.ndarray, paths: Sequence[Sequence[str]], linkage: str = "single") -> np.ndarray:
    """Theory-implied correlation of [LdP19], steps 1 to 4 of the module docstring.

    Parameters
    ----------
    corr : float ``[K, K]``
        Empirical correlation matrix.
    paths : ``K`` sequences of labels
        Column ``i``'s place in the tree, top level first (``()``: directly under the root).  Paths
        may differ in length.
    linkage : one of :data:`LINKAGES`
        How the children of a node are joined ([LdP19]: ``single``).

    Returns
    -------
    float ``[K, K]``
        Unit diagonal; ``1 - 2 h^2`` for two columns first joined at height ``h``.  Symmetric, not
        necessarily positive semidefinite.

    Raises
    ------
    DataError
        If ``corr`` is not ``[K, K]`` for ``K`` paths.
    ConfigError
        For an unknown ``linkage``.
    """
    from scipy.cluster.hierarchy import linkage as fit_linkage
    from scipy.spatial.distance import squareform

    c = np.asarray(corr, dtype=float)
    K = len(paths)
    if c.shape != (K, K):
        raise DataError(f"tic_correlation: corr has shape {c.shape}, expected ({K}, {K}) for {K} paths")
    if linkage not in LINKAGES:
        raise ConfigError(f"tic_correlation, argument 'linkage': expected one of {', '.join(LINKAGES)} (got {linkage!r})")
    d = np.sqrt(np.clip((1.0 - (c + c.T) / 2.0) / 2.0, 0.0, 1.0))  # step 1

    # step 2: nodes are label paths (tuples of str); leaves are the column numbers
    children: dict[tuple, list] = {(): []}
    for i, path in enumerate(paths):
        path = tuple(path)
        for depth in range(len(path)):
            node = path[:depth + 1]
            if node not in children:
                children[node] = []
                children[path[:depth]].append(node)
        children[path].append(i)

    out = np.eye(K)
    leaves: dict = {}

    def atoms(node) -> list[int]:
        if isinstance(node, int):
            return [node]
        if node not in leaves:
            leaves[node] = [a for ch in children[node] for a in atoms(ch)]
        return leaves[node]

    for node, kids in children.items():
        m = len(kids)
        if m < 2:
            continue  # a single child stands for its parent
        # step 3: distances between children, the mean of d over their leaf pairs
        groups = [atoms(k) for k in kids]
        dk = np.zeros((m, m))
        for a in range(m):
            for b in range(a + 1, m):
                dk[a, b] = dk[b, a] = d[np.ix_(groups[a], groups[b])].mean()
        z = fit_linkage(squareform(dk, checks=False), method=linkage)
        # step 4: each merge sets the correlation of the leaf pairs it joins
        members = list(groups)
        for i0, i1, h, _ in z:
            x, y = members[int(i0)], members[int(i1)]
            out[np.ix_(x, y)] = 1.0 - 2.0 * h * h
            out[np.ix_(y, x)] = 1.0 - 2.0 * h * h
            members.append(x + y)
    return out


def _label(v, where: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, np.integer)):
        raise ConfigError(f"{where}: expected a label (text), got {v!r}; quote it in the batch file")
    s = str(v).strip()
    if not s:
        raise ConfigError(f"{where}: an empty label")
    return s


def _tree_from_mapping(tree) -> dict[str, tuple[str, ...]]:
    """``{factor: [label, ...]}`` (top level first; a single label may stand alone) as paths."""
    if not isinstance(tree, Mapping):
        raise ConfigError(
            f"tic forecaster, field 'tree': expected a mapping {{factor: [label, ...]}} (top level first), "
            f"got {type(tree).__name__} {tree!r}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for factor, path in tree.items():
        name = _label(factor, "tic forecaster, field 'tree'")
        if isinstance(path, (str, int)) and not isinstance(path, bool):
            path = [path]
        if not isinstance(path, (list, tuple)):
            raise ConfigError(
                f"tic forecaster, field 'tree', factor {name!r}: expected a list of labels, top level first "
                f"(got {path!r})"
            )
        out[name] = tuple(_label(v, f"tic forecaster, field 'tree', factor {name!r}, level {j + 1}")
                          for j, v in enumerate(path))
    return out


def _read_tree_file(path) -> dict[str, tuple[str, ...]]:
    """A tree from a CSV file: a header ``factor,<level 1>,<level 2>,...`` (top level first), then one
    row per factor with a label in every level column.  Read as text only."""
    p = Path(path)
    where = f"tic forecaster, field 'tree_file': {str(path)!r}"
    if not p.is_file():
        raise ConfigError(f"{where}: not found (expected a CSV file: factor, then one column per level)")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [(n, row) for n, row in _numbered(csv.reader(fh))]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{where}: cannot be read as a CSV file ({exc})") from None
    rows = [(n, [cell.strip() for cell in row]) for n, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ConfigError(f"{where}: empty; expected a header 'factor,<level 1>,...' and one row per factor")
    n0, header = rows[0]
    if header[0].lower() != "factor":
        raise ConfigError(f"tree file {path}, line {n0}: the first column must be 'factor' (got {header[0]!r})")
    for j, h in enumerate(header[1:], start=2):
        if not h:
            raise ConfigError(f"tree file {path}, line {n0}, column {j}: a level column without a name")
        if header.index(h) != j - 1:
            raise ConfigError(f"tree file {path}, line {n0}: column {h!r} appears twice")
    out: dict[str, tuple[str, ...]] = {}
    first: dict[str, int] = {}
    for n, row in rows[1:]:
        if len(row) != len(header):
            raise ConfigError(
                f"tree file {path}, line {n}: {len(row)} fields, expected {len(header)} ({', '.join(header)})"
            )
        factor = row[0]
        if not factor:
            raise ConfigError(f"tree file {path}, line {n}, field 'factor': empty")
        if factor in out:
            raise ConfigError(f"tree file {path}, line {n}, field 'factor': {factor!r} is already on line {first[factor]}")
        for h, v in zip(header[1:], row[1:]):
            if not v:
                raise ConfigError(f"tree file {path}, line {n}, field {h!r}: empty label for {factor!r}")
        out[factor] = tuple(row[1:])
        first[factor] = n
    if not out:
        raise ConfigError(f"{where}: a header and no factors")
    return out


def _numbered(reader):
    for row in reader:
        yield reader.line_num, row


def default_paths(columns: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The default tree: root, then the factor's prefix (``EQ``, ``FX``, ``CMD``, ``IR``, ``CR``, ``VOL``,
    ``BASIS``; the factor grammar of :mod:`core.factors`), then the factor."""
    out = {}
    for c in columns:
        try:
            factor_spec(c)
        except ConfigError:
            raise ConfigError(
                f"tic forecaster: column {c!r} is not a factor name (e.g. EQ.SPX, FX.EURUSD), so the default "
                f"tree (by prefix) cannot place it; give the tree as 'tree' or 'tree_file'"
            ) from None
        out[c] = (c.split(".", 1)[0],)
    return out


class TICCov(CovarianceForecaster):
    """Theory-implied correlation [LdP19] shrunk toward the empirical one, with sample vols.

    The correlation is steps 1 to 4 of the module docstring on the window's sample correlation
    ``R_emp``, then ``R = (1 - shrinkage) R_TIC + shrinkage R_emp`` (``shrinkage`` is the weight on the
    empirical matrix: 1 gives ``R_emp`` back, 0 the pure theory-implied matrix), repaired to the nearest
    correlation matrix [H02] if it is not positive semidefinite.  ``covariance_ = D R D`` with ``D`` the
    window's sample standard deviations (``ddof = 1``, as the ``sample`` forecaster).

    Parameters
    ----------
    tree : mapping ``{factor: [label, ...]}``, optional
        Each column's path of labels, top level first (e.g. ``{EQ.SPX: [equity, us]}``); paths may
        differ in length.  Factors the window does not have are ignored.
    tree_file : path, optional
        The same as a CSV file: a header ``factor,<level 1>,<level 2>,...`` (top level first) and a
        label in every cell.  Read when the forecaster is built; a relative path is read from the working
        directory.
    shrinkage : float in [0, 1], default 0.5
        Weight on the empirical correlation.
    linkage : one of :data:`LINKAGES`, default ``single`` ([LdP19])
        How the children of a node are joined.

    With neither ``tree`` nor ``tree_file`` the tree is root -> prefix of the factor name (asset class)
    -> factor, which needs factor names as columns.

    Attributes (after :meth:`fit`)
    ------------------------------
    paths_ : ``{column: path}`` of the tree used
    implied_correlation_ : float ``[K, K]``, ``R_TIC`` (step 4)
    empirical_correlation_ : float ``[K, K]``, ``R_emp``
    shrunk_correlation_ : float ``[K, K]``, ``R`` after the repair (the correlation of ``covariance_``)
    details_ : ``shrinkage``, ``linkage``, ``cmd`` (the distance [HB04] of ``R`` from ``R_emp``),
        ``cmd_implied`` (of ``R_TIC`` from ``R_emp``, the one [LdP19] reports), ``psd_repaired``
        (whether ``(1 - w) R_TIC + w R_emp`` needed the repair) and ``repair_distance`` (Frobenius).

    Raises
    ------
    ConfigError
        For a bad setting or tree file (naming the file, line and field), and in :meth:`fit` for a
        column the tree does not place.
    """

    name = "tic"

    def __init__(self, tree: Optional[Mapping[str, Sequence[str]]] = None, tree_file: Optional[str] = None,
                 shrinkage: float = 0.5, linkage: str = "single"):
        if tree is not None and tree_file is not None:
            raise ConfigError("tic forecaster: give the tree as 'tree' or as 'tree_file', not both")
        if (isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float, np.floating))
                or not 0.0 <= float(shrinkage) <= 1.0):
            raise ConfigError(
                f"tic forecaster, field 'shrinkage': expected the weight on the empirical correlation, in [0, 1] "
                f"(got {shrinkage!r})"
            )
        if linkage not in LINKAGES:
            raise ConfigError(f"tic forecaster, field 'linkage': expected one of {', '.join(LINKAGES)} (got {linkage!r})")
        if tree_file is not None and not isinstance(tree_file, (str, Path)):
            raise ConfigError(f"tic forecaster, field 'tree_file': expected a path (got {tree_file!r})")
        self._tree = (_tree_from_mapping(tree) if tree is not None
                      else _read_tree_file(tree_file) if tree_file is not None else None)
        self.tree = tree
        self.tree_file = tree_file
        self.shrinkage = float(shrinkage)
        self.linkage = linkage

    def _paths(self, columns: Sequence[str]) -> dict[str, tuple[str, ...]]:
        if self._tree is None:
            return default_paths(columns)
        missing = [c for c in columns if c not in self._tree]
        if missing:
            src = f"tree file {self.tree_file}" if self.tree_file is not None else "field 'tree'"
            others = missing[1:]
            more = ""
            if others:
                more = f" (also missing: {', '.join(map(repr, others[:3]))}"
                more += f" and {len(others) - 3} more)" if len(others) > 3 else ")"
            raise ConfigError(f"tic forecaster, {src}: column {missing[0]!r} is not in the tree{more}; add it with its labels")
        return {c: self._tree[c] for c in columns}

    def _fit(self, x: np.ndarray) -> np.ndarray:
        self.paths_ = self._paths(self.columns_)
        s = estimate_covariance(x, EstimatorSpec(method="sample"))[0]
        sd = np.sqrt(np.diag(s))
        emp = cov_to_corr(s)
        tic = tic_correlation(emp, [self.paths_[c] for c in self.columns_], self.linkage)
        w = self.shrinkage
        blend = (1.0 - w) * tic + w * emp
        np.fill_diagonal(blend, 1.0)  # (1 - w) + w may round off 1
        r, dist, iters = nearest_correlation(blend)
        self.implied_correlation_ = tic
        self.empirical_correlation_ = emp
        self.shrunk_correlation_ = r
        self.details_.update(
            shrinkage=w,
            linkage=self.linkage,
            cmd=correlation_matrix_distance(r, emp),
            cmd_implied=correlation_matrix_distance(tic, emp),
            psd_repaired=iters > 0,
            repair_distance=dist,
        )
        return r * sd[:, None] * sd[None, :]
