"""Tail risk measures on weighted scenario P&L, and their Euler allocation.

Definitions (Rockafellar and Uryasev, "Conditional value-at-risk for general loss distributions",
J. Banking & Finance 26 (2002)), with losses ``L = -PnL`` and scenario probabilities ``w``:

* ``VaR_a = min { l : P(L <= l) >= a }`` (the a-quantile of the loss, lower-continuous),
* ``CVaR_a = VaR_a + E[(L - VaR_a)^+] / (1 - a)`` (expected shortfall; equals the mean of the worst
  ``1 - a`` probability mass, with a fractional weight on the scenario at the VaR).

``CVaR_a >= VaR_a`` always.  The Euler contribution of position ``j`` to CVaR is its mean loss over the
same tail mass (Tasche 1999); the contributions add up to CVaR exactly.

Losses within :data:`TIE_RTOL` of the VaR (relative to its size) count as tied with it and share the
boundary mass in proportion to their weights.  A minimum-CVaR book puts several scenarios at the VaR
(the active constraints of the linear programme), equal up to rounding; without this, which of them
carries the boundary mass, and so each position's contribution, would follow the last bit of the
arithmetic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["var_cvar", "tail_weights", "cvar_contributions", "level_label", "running_sum"]

#: a cumulative probability within this of the confidence level reaches it (:func:`running_sum` keeps
#: the arithmetic's error well under it)
_TOL = 1e-12
#: rows summed by np.cumsum at a time in :func:`running_sum`
_BLOCK = 1024
#: relative distance from the VaR within which losses are tied with it
TIE_RTOL = 1e-10


def level_label(alpha: float) -> str:
    """A confidence level as a percentage with the digits it needs: ``0.95`` -> ``95%``, ``0.975`` ->
    ``97.5%``, ``0.999`` -> ``99.9%`` (never two levels shown alike)."""
    return f"{round(float(alpha) * 100.0, 9):g}%"


def near(loss: np.ndarray, level: float) -> np.ndarray:
    """Losses tied with ``level``: within :data:`TIE_RTOL` of it, relative to its size."""
    return np.abs(loss - level) <= TIE_RTOL * abs(level)


def running_sum(x: np.ndarray) -> np.ndarray:
    """The running sums of ``x`` along its first axis, within about ``2e-13`` of the total at every row.

    ``np.cumsum`` adds one term at a time, and its error grows with the number of terms: over 100,000
    equal probabilities of ``1e-5`` the sum of the first 95,000 falls about ``2e-12`` short of 0.95, and
    a VaR read off it would be the next scenario's loss.  Here ``np.cumsum`` runs within blocks of
    :data:`_BLOCK` rows (error at most ``_BLOCK * eps`` of a block's sum), and the blocks' totals are
    added with a compensated sum (Neumaier, 1974), so the error no longer grows with the rows.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    if n <= 4 * _BLOCK:  # at most 4096 * eps ~ 1e-12 of the total: np.cumsum is exact enough
        return np.cumsum(x, axis=0)
    pad = (-n) % _BLOCK
    blocks = np.concatenate([x, np.zeros((pad,) + x.shape[1:])]).reshape((-1, _BLOCK) + x.shape[1:])
    inner = np.cumsum(blocks, axis=1)
    totals = inner[:, -1]
    offsets = np.empty_like(totals)
    acc = np.zeros(x.shape[1:])
    comp = np.zeros(x.shape[1:])
    for i, t in enumerate(totals):
        offsets[i] = acc + comp
        big = np.abs(acc) >= np.abs(t)
        new = acc + t
        comp = comp + np.where(big, (acc - new) + t, (t - new) + acc)
        acc = new
    out = inner + np.expand_dims(offsets, 1)
    return out.reshape((-1,) + x.shape[1:])[:n]


def _check(pnl: np.ndarray, weights: np.ndarray | None, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    pnl = np.asarray(pnl, dtype=float)
    if pnl.ndim != 1 or len(pnl) == 0:
        raise ValueError("pnl must be a non-empty 1-d array")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"confidence level {alpha!r} must be in (0, 1)")
    w = np.full(len(pnl), 1.0 / len(pnl)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != pnl.shape or np.any(w < 0) or not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-9):
        raise ValueError("weights must be non-negative, one per scenario, summing to 1")
    return pnl, w


def tail_weights(pnl: np.ndarray, alpha: float, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """VaR and the tail probability mass on each scenario.

    Returns
    -------
    var : float
    t : array ``[S]`` with ``sum(t) == 1 - alpha``: ``w`` on scenarios with loss above VaR, and the
        remaining mass on the scenario(s) at VaR, or tied with it (split in proportion to weight).
    """
    pnl, w = _check(pnl, weights, alpha)
    loss = -pnl
    order = np.argsort(loss, kind="stable")
    cum = running_sum(w[order])
    k = int(np.searchsorted(cum, alpha - _TOL, side="left"))
    k = min(k, len(loss) - 1)
    var = float(loss[order[k]])
    at = near(loss, var)
    above = (loss > var) & ~at
    t = np.where(above, w, 0.0)
    rest = max((1.0 - alpha) - t.sum(), 0.0)
    w_at = w[at].sum()
    if w_at > 0:
        t = t + np.where(at, w * rest / w_at, 0.0)
    return var, t


def var_cvar(pnl: np.ndarray, alpha: float, weights: np.ndarray | None = None) -> tuple[float, float]:
    """VaR and CVaR (expected shortfall) of the loss ``-pnl`` at confidence ``alpha``.

    Parameters
    ----------
    pnl : array ``[S]`` of scenario P&L (currency)
    alpha : confidence level, e.g. 0.99
    weights : array ``[S]`` of scenario probabilities (default equal)

    Returns
    -------
    (VaR, CVaR) as positive numbers for losses, in the currency of ``pnl``.
    """
    var, t = tail_weights(pnl, alpha, weights)
    cvar = float(t @ (-np.asarray(pnl, dtype=float)) / (1.0 - alpha))
    return var, cvar


def cvar_contributions(pnl_matrix: np.ndarray, alpha: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Euler contributions of each column to the CVaR of the row sums.

    Parameters
    ----------
    pnl_matrix : array ``[S, N]``, position (or group) P&L per scenario

    Returns
    -------
    array ``[N]`` summing to ``var_cvar(pnl_matrix.sum(1), alpha, weights)[1]``.
    """
    pnl_matrix = np.asarray(pnl_matrix, dtype=float)
    _, t = tail_weights(pnl_matrix.sum(axis=1), alpha, weights)
    return -(t @ pnl_matrix) / (1.0 - alpha)
