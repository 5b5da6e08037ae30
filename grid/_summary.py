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


def summarise(pnl: np.ndarray, start: int, family_codes: np.ndarray, weights: np.ndarray, keep_mass: float) -> dict[int, FamilyPartial]:
    """Per-family partial summaries of scenarios ``start .. start + len(pnl)``.

    Parameters
    ----------
    pnl : ``[s, N]`` position P&L (the tails keep their rows), or ``[s]`` total P&L (they do not)
    family_codes : int ``[s]``; weights : ``[s]`` (probabilities within each family)
    keep_mass : tail mass to keep, ``1 - min(confidence levels)``
    """
    pnl = np.asarray(pnl, dtype=float)
    totals = pnl.sum(axis=1) if pnl.ndim == 2 else pnl
    out = {}
    for code in np.unique(family_codes):
        rows = np.flatnonzero(family_codes == code)
        x, w = totals[rows], weights[rows]
        W = float(w.sum())
        mean = float(w @ x / W) if W > 0 else 0.0
        m2 = float(w @ (x - mean) ** 2)
        loss = -x
        order = np.lexsort((rows, -loss))  # largest loss first, ties by scenario order
        cum = np.cumsum(w[order])
        k = int(np.searchsorted(cum, keep_mass + _TOL, side="left")) + 1
        k = min(k, len(order))
        if k < len(order):  # keep every scenario tied with the last one kept (core.measures.near)
            k += int(np.sum(near(loss[order[k:]], loss[order[k - 1]])))
        keep = np.sort(order[:k])
        worst = int(order[0])
        out[int(code)] = FamilyPartial(
            weight=W, mean=mean, m2=m2, worst_loss=float(loss[worst]), worst_index=start + int(rows[worst]),
            tail_index=start + rows[keep], tail_loss=loss[keep], tail_weight=w[keep], tail_rows=pnl[rows[keep]] if pnl.ndim == 2 else None,
        )
    return out


def merge_partials(parts: list[FamilyPartial]) -> FamilyPartial:
    """Merge summaries of disjoint scenario sets of one family (order does not matter for the tail;
    moments are merged pairwise)."""
    acc = parts[0]
    W, mean, m2 = acc.weight, acc.mean, acc.m2
    worst_loss, worst_index = acc.worst_loss, acc.worst_index
    for p in parts[1:]:
        Wn = W + p.weight
        if Wn > 0:
            delta = p.mean - mean
            mean = mean + delta * p.weight / Wn
            m2 = m2 + p.m2 + delta * delta * W * p.weight / Wn
        W = Wn
        if p.worst_loss > worst_loss or (p.worst_loss == worst_loss and p.worst_index < worst_index):
            worst_loss, worst_index = p.worst_loss, p.worst_index
    idx = np.concatenate([p.tail_index for p in parts])
    order = np.argsort(idx, kind="stable")
    return FamilyPartial(
        weight=W, mean=mean, m2=m2, worst_loss=worst_loss, worst_index=worst_index,
        tail_index=idx[order],
        tail_loss=np.concatenate([p.tail_loss for p in parts])[order],
        tail_weight=np.concatenate([p.tail_weight for p in parts])[order],
        tail_rows=(np.concatenate([p.tail_rows for p in parts])[order]
                   if all(p.tail_rows is not None for p in parts) else None),
    )


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
