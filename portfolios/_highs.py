"""Small helpers around HiGHS (highspy): a model from a :class:`LinearSystem`, and a feasibility check."""

from __future__ import annotations

import os
import sys

import highspy
import numpy as np
import scipy.sparse as sp

from ._constraints import LinearSystem

__all__ = ["new_model", "add_columns", "add_rows", "solution", "is_feasible", "model_status"]

INF = highspy.kHighsInf


_BANNER_SHOWN = False


def _highs() -> highspy.Highs:
    """``highspy.Highs()``; the first in a process prints HiGHS's banner on the C library's stdout before
    any option can silence it, so that one is built with file descriptor 1 pointed at /dev/null (a
    ``--quiet`` run prints nothing, and ``validate``'s output stays its own)."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return highspy.Highs()
    _BANNER_SHOWN = True
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no file descriptor 1 to redirect
        return highspy.Highs()
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_model(tol: float = 1e-9) -> highspy.Highs:
    """An empty, silent HiGHS model with tight feasibility tolerances, on one thread.

    HiGHS runs every model of a process on one global thread pool, sized by the first model that runs;
    a later model that asks for another size fails to run (status "not set"), which the solvers would
    report as infeasible.  Another library's HiGHS (cvxpy's) may have sized it first, so the pool is
    reset here (it starts again, at one thread, on the next run)."""
    h = _highs()
    h.silent()
    h.setOptionValue("primal_feasibility_tolerance", tol)
    h.setOptionValue("dual_feasibility_tolerance", tol)
    reset = getattr(highspy.Highs, "resetGlobalScheduler", None)
    if reset is not None:
        reset(True)
    h.setOptionValue("threads", 1)
    return h


def add_columns(h: highspy.Highs, lo, hi, cost=None) -> np.ndarray:
    """Append columns; returns their indices."""
    lo = np.atleast_1d(np.asarray(lo, dtype=float))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, dtype=float), lo.shape))
    n0 = h.getNumCol()
    n = len(lo)
    if n == 0:
        return np.arange(n0, n0)
    h.addVars(n, np.where(np.isinf(lo), -INF, lo), np.where(np.isinf(hi), INF, hi))
    idx = np.arange(n0, n0 + n, dtype=np.int32)
    if cost is not None:
        h.changeColsCost(n, idx, np.asarray(cost, dtype=float))
    return idx


def add_rows(h: highspy.Highs, A: sp.spmatrix, lo, hi) -> np.ndarray:
    """Append rows ``lo <= A @ x <= hi`` (``A`` over the first ``A.shape[1]`` columns)."""
    A = sp.csr_matrix(A)
    m = A.shape[0]
    r0 = h.getNumRow()
    if m == 0:
        return np.arange(r0, r0)
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, dtype=float), (m,)))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, dtype=float), (m,)))
    h.addRows(
        m,
        np.where(np.isinf(lo), -INF, lo),
        np.where(np.isinf(hi), INF, hi),
        A.nnz,
        A.indptr[:-1].astype(np.int32),
        A.indices.astype(np.int32),
        A.data.astype(float),
    )
    return np.arange(r0, r0 + m)


def add_dense_rows(h: highspy.Highs, cols: np.ndarray, vals: np.ndarray, lo, hi) -> None:
    """Append rows with the same column pattern ``cols`` and values ``vals [m, len(cols)]``."""
    vals = np.atleast_2d(np.asarray(vals, dtype=float))
    m, k = vals.shape
    if m == 0:
        return
    idx = np.broadcast_to(np.asarray(cols, dtype=np.int32), (m, k))
    lo = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, dtype=float), (m,)))
    hi = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, dtype=float), (m,)))
    h.addRows(
        m,
        np.where(np.isinf(lo), -INF, lo),
        np.where(np.isinf(hi), INF, hi),
        m * k,
        (np.arange(m) * k).astype(np.int32),
        np.ascontiguousarray(idx).ravel(),
        np.ascontiguousarray(vals).ravel(),
    )


def load_system(h: highspy.Highs, system: LinearSystem, cost=None) -> None:
    """Columns ``x`` and rows of ``system`` into an empty model."""
    add_columns(h, system.col_lo, system.col_hi, system.cost if cost is None else cost)
    add_rows(h, system.A, system.row_lo, system.row_hi)


def model_status(h: highspy.Highs) -> str:
    """HiGHS model status as a lower-case word: optimal, infeasible, unbounded, ..."""
    st = h.getModelStatus()
    if st == highspy.HighsModelStatus.kOptimal:
        return "optimal"
    if st == highspy.HighsModelStatus.kInfeasible:
        return "infeasible"
    if st in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return "unbounded"
    return h.modelStatusToString(st).lower()


def solution(h: highspy.Highs) -> np.ndarray:
    return np.asarray(h.getSolution().col_value, dtype=float)


def is_feasible(system: LinearSystem) -> bool:
    """Whether the constraints alone admit a point (zero objective)."""
    h = new_model()
    load_system(h, system, cost=np.zeros(system.n_x))
    h.run()
    st = model_status(h)
    if st == "unbounded":  # cannot happen with a zero objective, but be explicit
        return True
    return st == "optimal"


def project(system: LinearSystem, target: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Feasible ``x`` closest in L1 to weights ``target``: ``min sum |w - target|`` over the system.

    Returns (status, x).
    """
    n = system.n
    h = new_model()
    load_system(h, system, cost=np.zeros(system.n_x))
    add_columns(h, np.zeros(n), np.full(n, np.inf), np.ones(n))  # e >= |w - target|
    eye = sp.identity(n, format="csr")
    pad = sp.csr_matrix((n, system.n_x - n))
    add_rows(h, sp.hstack([-eye, pad, eye], format="csr"), -target, np.inf)  # e - w >= -target
    add_rows(h, sp.hstack([eye, pad, eye], format="csr"), target, np.inf)  # e + w >= target
    h.run()
    st = model_status(h)
    if st != "optimal":
        return st, None
    return st, solution(h)[: system.n_x]
