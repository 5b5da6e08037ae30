"""Exact, mergeable summaries of a chunk's P&L.

A task reduces its P&L to, per scenario family: the weighted moments (for mean and vol, merged with
the pairwise update of Chan, Golub and LeVeque, 1979), the worst loss, and its largest losses until
their weight reaches the largest tail mass any confidence level needs.  The union of those tails over
all chunks contains every scenario of the global tail, so VaR and CVaR from the merged summary equal
those of a single in-memory computation, however the scenarios were split.

Euler contributions need the position rows of the tail scenarios.  A summary may carry them
(``tail_rows``, when built from the position P&L); the grid instead finds the global tail from the
merged totals (:func:`tail_scenarios`) and sums ``t_i * row_i`` over it in a second, additive pass, so
no task ever returns more than its totals and group sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stressgrid.core import tail_weights
from stressgrid.core.measures import near

__all__ = ["FamilyPartial", "summarise", "merge_partials", "tail_metrics", "tail_scenarios"]

_TOL = 1e-12


@dataclass
class FamilyPartial:
    """Summary of one family's scenarios within some chunks.

    weight : total probability weight of these scenarios
    mean, m2 : weighted mean of total P&L and sum of ``w (x - mean)^2``
    worst_loss, worst_index : largest loss and its scenario (global index)
    tail_index : int ``[k]`` global scenario indices of the kept largest losses
    tail_loss, tail_weight : ``[k]``
    tail_rows : ``[k, N]`` position P&L of those scenarios, or None (summary of totals only)
    """

    weight: float
    mean: float
    m2: float
    worst_loss: float
    worst_index: int
    tail_index: np.ndarray
    tail_loss: np.ndarray
    tail_weight: np.ndarray
    tail_rows: np.ndarray | None


def _kept(loss: np.ndarray, w: np.ndarray, index: np.ndarray, keep_mass: float) -> np.ndarray:
    """Positions (ascending) of the largest losses until their weight reaches ``keep_mass``, ties by
    scenario ``index``, with every loss tied to the last one kept (:func:`core.measures.near`)."""
    order = np.lexsort((index, -loss))  # largest loss first, ties by scenario order
    cum = np.cumsum(w[order])
    k = int(np.searchsorted(cum, keep_mass + _TOL, side="left")) + 1
    k = min(k, len(order))
    if k < len(order):
        k += int(np.sum(near(loss[order[k:]], loss[order[k - 1]])))
    return np.sort(order[:k])


def summarise(pnl: np.ndarray, start: int, family_codes: np.ndarray, weights: np.ndarray, keep_mass: float,
              rows: np.ndarray | None = None) -> dict[int, FamilyPartial]:
    """Per-family partial summaries of scenarios ``start .. start + len(pnl)``.

    Parameters
    ----------
    pnl : ``[s, N]`` position P&L (the tails keep their rows), or ``[s]`` total P&L (they do not)
    family_codes : int ``[s]``; weights : ``[s]`` (probabilities within each family)
    keep_mass : tail mass to keep, ``1 - min(confidence levels)``
    rows : ``[s, N]`` position P&L whose rows the tails keep, with ``pnl`` the totals ``[s]`` (so that the
        totals are the caller's, not re-summed here)
    """
    pnl = np.asarray(pnl, dtype=float)
    totals = pnl.sum(axis=1) if pnl.ndim == 2 else pnl
    if rows is None and pnl.ndim == 2:
        rows = pnl
    out = {}
    for code in np.unique(family_codes):
        at = np.flatnonzero(family_codes == code)
        x, w = totals[at], weights[at]
        W = float(w.sum())
        mean = float(w @ x / W) if W > 0 else 0.0
        m2 = float(w @ (x - mean) ** 2)
        loss = -x
        keep = _kept(loss, w, at, keep_mass)
        worst = int(np.lexsort((at, -loss))[0])
        out[int(code)] = FamilyPartial(
            weight=W, mean=mean, m2=m2, worst_loss=float(loss[worst]), worst_index=start + int(at[worst]),
            tail_index=start + at[keep], tail_loss=loss[keep], tail_weight=w[keep],
            tail_rows=None if rows is None else rows[at[keep]],
        )
    return out


def merge_partials(parts: list[FamilyPartial], keep_mass: float | None = None) -> FamilyPartial:
    """Merge summaries of disjoint scenario sets of one family (order does not matter for the tail;
    moments are merged pairwise, in the order given).

    With ``keep_mass``, the merged tail is cut after each merge to the largest losses until their weight
    reaches it (and their ties), as :func:`summarise` keeps them: the global tail of every confidence level
    down to ``1 - keep_mass`` stays whole, and a summary that carries its rows holds about
    ``keep_mass`` of the family's scenarios, not the sum of every part's tail.
    """
    acc = parts[0]
    for p in parts[1:]:
        acc = _merge_two(acc, p, keep_mass)
    return acc


def _merge_two(a: FamilyPartial, p: FamilyPartial, keep_mass: float | None) -> FamilyPartial:
    W, mean, m2 = a.weight, a.mean, a.m2
    Wn = W + p.weight
    if Wn > 0:
        delta = p.mean - mean
        mean = mean + delta * p.weight / Wn
        m2 = m2 + p.m2 + delta * delta * W * p.weight / Wn
    worst_loss, worst_index = a.worst_loss, a.worst_index
    if p.worst_loss > worst_loss or (p.worst_loss == worst_loss and p.worst_index < worst_index):
        worst_loss, worst_index = p.worst_loss, p.worst_index
    idx = np.concatenate([a.tail_index, p.tail_index])
    order = np.argsort(idx, kind="stable")
    loss = np.concatenate([a.tail_loss, p.tail_loss])[order]
    w = np.concatenate([a.tail_weight, p.tail_weight])[order]
    rows = (np.concatenate([a.tail_rows, p.tail_rows])[order]
            if a.tail_rows is not None and p.tail_rows is not None else None)
    idx = idx[order]
    if keep_mass is not None:
        keep = _kept(loss, w, idx, keep_mass)
        if len(keep) < len(idx):
            idx, loss, w = idx[keep], loss[keep], w[keep]
            rows = None if rows is None else rows[keep]
    return FamilyPartial(weight=Wn, mean=mean, m2=m2, worst_loss=worst_loss, worst_index=worst_index,
                         tail_index=idx, tail_loss=loss, tail_weight=w, tail_rows=rows)


def tail_scenarios(p: FamilyPartial, alpha: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """VaR, CVaR, and the tail of a merged family summary: global scenario indices ``idx [k]`` and their
    tail probability mass ``t [k]`` (``sum(t) == 1 - alpha``; see :func:`core.tail_weights`).

    The scenarios that were not kept are one atom of the remaining weight below every kept loss;
    the kept tail holds at least ``1 - alpha`` of mass, so that atom never enters the tail.
    """
    loss, w = p.tail_loss, p.tail_weight
    rest = max(p.weight - float(w.sum()), 0.0)
    if rest > 0:
        floor = float(loss.min()) - 1.0 - abs(float(loss.min()))
        loss = np.append(loss, floor)
        w = np.append(w, rest)
    var, t = tail_weights(-loss, alpha, w / p.weight)
    if rest > 0 and t[-1] > 0:
        raise AssertionError("the kept tail is smaller than the confidence level needs")
    t = t[: len(p.tail_loss)]
    cvar = float(t @ p.tail_loss) / (1.0 - alpha)
    return var, cvar, p.tail_index, t


def tail_metrics(p: FamilyPartial, alpha: float) -> tuple[float, float, np.ndarray | None]:
    """VaR, CVaR and Euler contributions ``[N]`` of a merged family summary (None when the summary does
    not carry its tail rows)."""
    var, cvar, _, t = tail_scenarios(p, alpha)
    contrib = None if p.tail_rows is None else -(t @ p.tail_rows) / (1.0 - alpha)
    return var, cvar, contrib
