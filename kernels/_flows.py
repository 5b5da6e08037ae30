"""The batched kernel of cash-flow instruments (bonds, swaps): discount factors shared through the
nodes of each curve.

:func:`kernels._rates.cashflow_value_one` prices one instrument from its flows padded to the longest
schedule of the book, ``sum_j a_j exp(-(z(t_j) + s) t_j)``, which is what automatic differentiation
and the numpy twin use.  Batched over a book and a chunk of scenarios, that costs one exponential
per flow.  Instruments on one curve with one issuer spread (a class) share discount factors even
when they pay on unrelated dates: on each piece of the curve (between two tenors, or flat outside
them) the discount factor is an entire function of time, interpolated to under half a unit in the
last place from its values at a few Chebyshev nodes (:mod:`kernels._curve_nodes`).  A class's values
are then a matrix product, ``V = A D``, with ``D[k]`` the discount factor at node ``k`` and ``A[i,
k]`` instrument ``i``'s amounts times the Lagrange weight of node ``k`` at their times.  Classes of
a curve share one list of nodes; classes of similar size are padded to a common size and priced
by one batched product (a batch), so that a class of three bonds is not padded to the largest.

The node counts are sized for a range of forward yields and curve slopes
(:data:`kernels._curve_nodes.FORWARD_CAP`, :data:`kernels._curve_nodes.SLOPE_CAP`); a block of
scenarios with one outside it (:func:`curve_nodes_inside`) is priced flow by flow from the padded
flows instead, and no other block's values change.  The values agree with the padded kernel to rounding
(a few units in the 16th digit of the discount factors) plus the interpolation error, under
``2^-54``.  Scenarios are the minor (contiguous) axis of every array in the kernel, so each fused
loop runs over contiguous memory, :data:`kernels._tuning.SCENARIO_BLOCK` scenarios a pass.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _tuning as tuning
from ._curve_nodes import curve_pieces
from ._edge import block_differences, blocks_with_base, fill_blocks, write_block_differences

__all__ = [
    "CurveNodes",
    "PaddedFlows",
    "FlowLayout",
    "flow_layout",
    "layout_pnl",
    "layout_pnl_into",
    "layout_values",
    "layout_stats",
    "curve_nodes_inside",
    "curve_node_values",
]


class CurveNodes(NamedTuple):
    """``G`` classes of instruments (one curve, one issuer spread or none) priced from the discount
    factors at their curve's nodes (:mod:`kernels._curve_nodes`), and the check that a scenario lies
    within the range the interpolation is exact for.

    lo, hi : int ``[K]``, tenor columns of each node; p, q, t : ``[K]``, its exponent coefficients
        (``x = p z_lo + q z_hi + t s``) and time
    spread_idx : int ``[G]``, column of each class's spread; spread_w : ``[G]``, 1 or 0
    amounts : ``[G, m, K]``, instrument ``r`` of class ``g``'s flows interpolated onto node ``k``
        (classes padded to ``m`` rows)
    guard_lo, guard_hi : int ``[R]``, tenor columns of each interpolated piece some class reaches
    coef : ``[5, R]``, ``(p1, q1, t1, p2, q2)``: the exponent's ``u`` coefficient is
        ``p1 z_lo + q1 z_hi + t1 s`` and its ``u^2`` coefficient ``p2 z_lo + q2 z_hi`` (padding: 0)
    cap : ``[2, R]``, the largest magnitudes of the two the node counts are sized for (padding: 0)
    """

    lo: np.ndarray
    hi: np.ndarray
    p: np.ndarray
    q: np.ndarray
    t: np.ndarray
    spread_idx: np.ndarray
    spread_w: np.ndarray
    amounts: np.ndarray
    guard_lo: np.ndarray
    guard_hi: np.ndarray
    coef: np.ndarray
    cap: np.ndarray


class PaddedFlows(NamedTuple):
    """Every instrument's flows padded to ``J`` (book order), for a scenario outside the nodes' range.

    lo, hi : int ``[n, J]``; p, q : ``[n, J]``, ``w_lo t`` and ``w_hi t``; t : ``[n, J]`` times;
    a : ``[n, J]`` amounts (0: padding); spread_idx : int ``[n]``; spread_w : ``[n]``
    """

    lo: np.ndarray
    hi: np.ndarray
    p: np.ndarray
    q: np.ndarray
    t: np.ndarray
    a: np.ndarray
    spread_idx: np.ndarray
    spread_w: np.ndarray


class FlowLayout(NamedTuple):
    """A cash-flow book packed for the batched kernel.

    batches : the curve-node batches
    order : int ``[n]``, row of instrument ``i`` among the batches' rows (``G m`` each, padding
        included), in order, then one row of zeros (instruments without flows)
    flows : the padded flows, for scenarios outside the range of the interpolation
    """

    batches: tuple[CurveNodes, ...]
    order: np.ndarray
    flows: PaddedFlows


# ---------------------------------------------------------------------------------------------------
# building the layout (numpy, once per book)
# ---------------------------------------------------------------------------------------------------


class _Flows(NamedTuple):
    inst: np.ndarray  # [M] instrument of each flow
    t: np.ndarray
    a: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray


def _flat_flows(book) -> _Flows:
    """Every non-zero flow of a padded :class:`kernels._rates.CashflowBook`, instrument by instrument."""
    times = np.atleast_2d(np.asarray(book.times, dtype=float))
    amounts = np.atleast_2d(np.asarray(book.amounts, dtype=float))
    real = amounts != 0.0  # padding, and coupons of 0, contribute nothing
    inst, slot = np.nonzero(real)
    pick = lambda a: np.atleast_2d(np.asarray(a))[inst, slot]  # noqa: E731
    pts = book.pts
    return _Flows(inst, times[inst, slot], amounts[inst, slot], pick(pts.lo).astype(np.int64), pick(pts.hi).astype(np.int64),
                  pick(pts.w_lo).astype(float), pick(pts.w_hi).astype(float))


def _dense_cost(n_inst: int, n_nodes: int) -> float:
    return n_nodes * tuning.COST_NODE + n_inst * n_nodes * tuning.COST_MAC


class _NodeClass(NamedTuple):
    """Instruments of one curve and one issuer spread priced from their curve's nodes."""

    curve: int
    members: np.ndarray  # instruments, increasing
    flows: np.ndarray  # their flows (indices into the book's flows)
    amounts: np.ndarray  # [m, K]
    t: np.ndarray  # [K] node times, p, q, lo, hi likewise
    p: np.ndarray
    q: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    guard_lo: np.ndarray  # [R] tenor columns of the interpolated pieces reached
    guard_hi: np.ndarray
    coef: np.ndarray  # [5, R]
    cap: np.ndarray  # [2, R]
    spread_idx: int
    spread_w: float

    @property
    def n_nodes(self) -> int:
        return len(self.t)

    @property
    def cost(self) -> float:
        return _dense_cost(len(self.members), len(self.t))


def _batch_classes(classes: list[_NodeClass], waste: float) -> list[list[_NodeClass]]:
    """Classes of similar size share one padded batch (one batched product): sorted by nodes and
    size, a class joins the last batch while the padded cost stays within ``1 + waste`` of the
    classes' own; then the neighbours that add the least are merged until at most
    :data:`kernels._tuning.MAX_BATCHES` remain (each is a product in the compiled program)."""
    classes = sorted(classes, key=lambda g: (g.n_nodes, len(g.members)))
    padded = lambda gs: len(gs) * _dense_cost(max(len(g.members) for g in gs), max(g.n_nodes for g in gs))  # noqa: E731
    batches: list[list[_NodeClass]] = []
    for g in classes:
        if batches and padded(batches[-1] + [g]) <= (1.0 + waste) * sum(h.cost for h in batches[-1] + [g]):
            batches[-1].append(g)
        else:
            batches.append([g])
    while len(batches) > tuning.MAX_BATCHES:
        added = [padded(a + b) - padded(a) - padded(b) for a, b in zip(batches, batches[1:])]
        i = int(np.argmin(added))
        batches[i : i + 2] = [batches[i] + batches[i + 1]]
    return batches


def _node_classes(fl: _Flows, members: np.ndarray, curve_ids, sp_key, spread_idx, spread_w) -> list[_NodeClass]:
    """Every class (curve, issuer spread) of ``members`` with its instruments' flows interpolated onto
    the nodes of their curve; the pieces of a curve are cut from the flows of all ``members`` on it."""
    out = []
    flow_in = np.isin(fl.inst, members)
    for curve in np.unique(curve_ids[members]):
        f_all = np.flatnonzero(flow_in & (curve_ids[fl.inst] == curve))
        if not len(f_all):
            continue
        pieces, piece_of, nodes, weights = curve_pieces(fl.t[f_all], fl.w_lo[f_all] * fl.t[f_all], fl.w_hi[f_all] * fl.t[f_all],
                                                        fl.lo[f_all], fl.hi[f_all], fl.w_lo[f_all], fl.w_hi[f_all])
        # the curve's flows class by class (a stable sort keeps each instrument's flows in order)
        by_class = np.argsort(sp_key[fl.inst[f_all]], kind="stable")
        _, first = np.unique(sp_key[fl.inst[f_all]][by_class], return_index=True)
        for mine in np.split(by_class, first[1:]):
            f = f_all[mine]
            cls = np.unique(fl.inst[f])
            reached = np.unique(piece_of[mine])
            start = np.concatenate([[0], np.cumsum([len(pieces[k].t) for k in reached])])
            col0 = np.zeros(len(pieces), dtype=np.int64)
            col0[reached] = start[:-1]
            amounts = np.zeros((len(cls), int(start[-1])))
            rows = np.searchsorted(cls, fl.inst[f])
            cols = col0[piece_of[mine]][:, None] + nodes[mine]
            np.add.at(amounts, (np.broadcast_to(rows[:, None], cols.shape), cols), fl.a[f][:, None] * weights[mine])
            cat = lambda name: np.concatenate([getattr(pieces[k], name) for k in reached])  # noqa: E731
            node_lo = np.concatenate([np.full(len(pieces[k].t), pieces[k].lo) for k in reached])
            node_hi = np.concatenate([np.full(len(pieces[k].t), pieces[k].hi) for k in reached])
            guarded = [k for k in reached if pieces[k].interpolated]
            out.append(_NodeClass(
                curve=int(curve), members=cls, flows=f, amounts=amounts, t=cat("t"), p=cat("p"), q=cat("q"), lo=node_lo, hi=node_hi,
                guard_lo=np.array([pieces[k].lo for k in guarded], dtype=np.int64),
                guard_hi=np.array([pieces[k].hi for k in guarded], dtype=np.int64),
                coef=np.array([pieces[k].guard for k in guarded]).reshape(-1, 5).T,
                cap=np.array([[pieces[k].cap_a, pieces[k].cap_b] for k in guarded]).reshape(-1, 2).T,
                spread_idx=int(spread_idx[cls[0]]), spread_w=float(spread_w[cls[0]]),
            ))
    return out


def _curve_node_batch(classes: list[_NodeClass]) -> tuple[CurveNodes, list[_NodeClass]]:
    """One :class:`CurveNodes` of ``classes``: their nodes are merged into one list (a class's own
    nodes are those of the curve pieces it reaches, so classes on one curve mostly share them), and
    a class's amounts are 0 on the nodes it does not use.  Returns the batch and the classes in its
    order (class ``g``'s rows start at ``g m``)."""
    rows = np.concatenate([np.stack([c.t, c.p, c.q, c.lo, c.hi], axis=1) for c in classes])
    union, col = np.unique(rows, axis=0, return_inverse=True)
    col = col.ravel()
    m = max(len(c.members) for c in classes)
    amounts = np.zeros((len(classes), m, len(union)))
    at = 0
    for g, c in enumerate(classes):
        amounts[g, : len(c.members)][:, col[at : at + c.n_nodes]] = c.amounts
        at += c.n_nodes
    # the interpolated pieces, once each: the classes of a batch share their curve's pieces, and the
    # range check takes the batch's lowest and highest spread (the exponent's u coefficient is linear
    # in the spread), so it costs a few operations a piece rather than a class
    guards = np.concatenate([np.concatenate([c.guard_lo[None], c.guard_hi[None], c.coef, c.cap]).T for c in classes])
    guards = np.unique(guards[guards[:, 7] > 0], axis=0) if len(guards) else guards
    if not len(guards):  # nothing interpolated: one padding row, which every scenario passes
        guards = np.zeros((1, 9))
    cn = CurveNodes(union[:, 3].astype(np.int64), union[:, 4].astype(np.int64), union[:, 1], union[:, 2], union[:, 0],
                    np.array([c.spread_idx for c in classes], dtype=np.int64), np.array([c.spread_w for c in classes], dtype=float),
                    amounts, guards[:, 0].astype(np.int64), guards[:, 1].astype(np.int64), guards[:, 2:7].T.copy(), guards[:, 7:9].T.copy())
    return cn, classes


def flow_layout(book, curve_ids: np.ndarray | None = None, waste: float | None = None) -> FlowLayout:
    """Pack a padded cash-flow book (:class:`kernels._rates.CashflowBook`) for :func:`layout_pnl`.

    Parameters
    ----------
    book : CashflowBook with ``times``, ``amounts`` and ``pts`` ``[n, J]``, ``spread_idx`` and
        ``spread_w`` ``[n]``
    curve_ids : int ``[n]``, the discount curve of each instrument (e.g. a code per currency);
        instruments on different curves never share a batch.  Default: one curve (still exact: a
        node is a time on one curve's tenors)
    waste : padding a batch may add, relative to its classes' cost (default
        :data:`kernels._tuning.BATCH_WASTE`)
    """
    waste = tuning.BATCH_WASTE if waste is None else waste
    fl = _flat_flows(book)
    times = np.atleast_2d(np.asarray(book.times, dtype=float))
    n = times.shape[0]
    spread_idx = np.broadcast_to(np.asarray(book.spread_idx, dtype=np.int64), (n,))
    spread_w = np.broadcast_to(np.asarray(book.spread_w, dtype=float), (n,))
    curve_ids = np.zeros(n, dtype=np.int64) if curve_ids is None else np.asarray(curve_ids, dtype=np.int64)
    sp_key = np.where(spread_w != 0.0, spread_idx, -1)
    classes = _node_classes(fl, np.unique(fl.inst), curve_ids, sp_key, spread_idx, spread_w) if len(fl.t) else []
    batches, row = [], 0
    order = np.full(n, -1, dtype=np.int64)
    # a batch shares one list of nodes: only classes of one curve share a batch
    for curve in sorted({c.curve for c in classes}):
        for batch in _batch_classes([c for c in classes if c.curve == curve], waste):
            cn, batch = _curve_node_batch(batch)
            m = cn.amounts.shape[1]
            for g, c in enumerate(batch):
                order[c.members] = row + g * m + np.arange(len(c.members))
            row += cn.amounts.shape[0] * m
            batches.append(cn)
    order[order < 0] = row  # instruments without flows: the row of zeros after the batches
    pts = book.pts
    as2d = lambda a, dtype: np.atleast_2d(np.asarray(a, dtype=dtype))  # noqa: E731
    flows = PaddedFlows(as2d(pts.lo, np.int64), as2d(pts.hi, np.int64), as2d(pts.w_lo, float) * times, as2d(pts.w_hi, float) * times,
                        times, as2d(book.amounts, float), np.array(spread_idx), np.array(spread_w))
    return FlowLayout(tuple(batches), order, flows)


def layout_stats(layout: FlowLayout) -> dict:
    """Sizes of a layout: instruments, flows, classes, batches, nodes used (summed over classes),
    discount factors computed per scenario (classes times the nodes of their batch), entries of the
    products and interpolated pieces."""
    return dict(
        instruments=len(layout.order),
        flows=int((layout.flows.a != 0).sum()),
        curve_node_classes=sum(int(c.amounts.shape[0]) for c in layout.batches),
        batches=len(layout.batches),
        curve_nodes=sum(int((c.amounts != 0).any(axis=1).sum()) for c in layout.batches),
        curve_node_factors=sum(int(c.amounts.shape[0] * c.amounts.shape[2]) for c in layout.batches),
        curve_node_entries=sum(int(c.amounts.size) for c in layout.batches),
        interpolated_pieces=sum(int((c.cap[0] > 0).sum()) for c in layout.batches),
    )


# ---------------------------------------------------------------------------------------------------
# the kernel (jax): levels with scenarios on the minor axis
# ---------------------------------------------------------------------------------------------------


def curve_nodes_inside(layout: FlowLayout, LT):
    """``[B]`` bool: the scenario's levels ``LT[:, b]`` lie within the range every interpolated piece's
    node count is sized for (``CurveNodes.cap``; True if the layout has no batches)."""
    inside = jnp.ones(LT.shape[1], dtype=bool)
    for c in layout.batches:
        sp = c.spread_w[:, None] * LT[c.spread_idx]  # [G, B]
        zl, zh = LT[c.guard_lo], LT[c.guard_hi]  # [R, B]
        a = c.coef[0][:, None] * zl + c.coef[1][:, None] * zh
        x2 = c.coef[3][:, None] * zl + c.coef[4][:, None] * zh
        ok = jnp.abs(x2) <= c.cap[1][:, None]
        # x1 = a + t1 s is linear in the spread: within the cap for every class if it is for the
        # batch's lowest and highest spread (a class that does not reach a piece is checked too)
        for s in (sp.min(axis=0), sp.max(axis=0)):
            ok &= jnp.abs(a + c.coef[2][:, None] * s[None, :]) <= c.cap[0][:, None]
        inside &= jnp.all(ok, axis=0)
    return inside


def _batch_values(c: CurveNodes, LT):
    """Values ``[G m, B]`` of one batch: the curve's discount factors once, times each class's spread
    factors, times the amounts.  The curve's take XLA's own exponential: it is costly enough that XLA
    computes it once, where a cheaper one is fused into every class's product and recomputed."""
    curve = jnp.exp(-(c.p[:, None] * LT[c.lo] + c.q[:, None] * LT[c.hi]))  # [K, B]
    sp = c.spread_w[:, None] * LT[c.spread_idx]  # [G, B]
    D = curve[None] * jnp.exp(-(c.t[None, :, None] * sp[:, None, :]))  # [G, K, B]
    v = jnp.einsum("gmk,gkb->gmb", c.amounts, D, precision=jax.lax.Precision.HIGHEST)
    return v.reshape(-1, v.shape[-1])


def curve_node_values(layout: FlowLayout, LT):
    """Values ``[n, B]`` of every instrument from the nodes alone (no range check), in book order."""
    parts = [_batch_values(c, LT) for c in layout.batches] + [jnp.zeros((1, LT.shape[1]))]
    return jnp.concatenate(parts, axis=0)[layout.order]


def _flow_values(f: PaddedFlows, LT):
    """Values ``[n, B]`` flow by flow, ``sum_j a_j exp(-(p_j z_lo + q_j z_hi + t_j s))``."""
    x = f.p[:, :, None] * LT[f.lo] + f.q[:, :, None] * LT[f.hi] + f.t[:, :, None] * (f.spread_w[:, None] * LT[f.spread_idx])[:, None, :]
    return jnp.einsum("nj,njb->nb", f.a, jnp.exp(-x), precision=jax.lax.Precision.HIGHEST)


def _present_values(layout: FlowLayout, LT):
    """``sum_j a_j DF_j`` of every instrument, ``[n, B]``, from levels ``LT[F, B]``: from the curve
    nodes, unless a scenario of the block lies outside their range; then the block's scenarios
    outside it are priced flow by flow."""
    if not tuning.CURVE_NODES:
        return _flow_values(layout.flows, LT)
    v = curve_node_values(layout, LT)
    ok = curve_nodes_inside(layout, LT)

    def exact(v):
        return jnp.where(ok[None, :], v, _flow_values(layout.flows, LT))

    return jax.lax.cond(jnp.all(ok), lambda v: v, exact, v)


def _in_base_currency(pv, lt, const, units, fx_idx):
    """Position values ``[n, B]`` in the base currency from present values per unit of face."""
    fx = jnp.where(fx_idx[:, None] >= 0, lt[jnp.maximum(fx_idx, 0)], 1.0)
    return units[:, None] * (pv + const[:, None]) * fx


@partial(jax.jit, static_argnames=("block", "key"))
def _states(layout: FlowLayout, const, units, fx_idx, base, new, block: int, key: tuple = ()):
    """Values in base currency ``[n, nb block]``: one column per row of ``new``, then the base levels
    (column ``S``; ``kernels._edge.blocks_with_base``).  ``key``: :func:`kernels._tuning.snapshot`."""

    def one(lt):
        return _in_base_currency(_present_values(layout, lt), lt, const, units, fx_idx)

    LT = blocks_with_base(base, new, block)
    return fill_blocks(one, (LT,), jnp.zeros((len(layout.order), LT.shape[0] * block)), block)


def layout_values(layout: FlowLayout, const, units, fx_idx, base, new, block: int | None = None):
    """:func:`_states` of ``new[S, F]``, ``block`` scenarios a pass of the compiled loop (default
    :data:`kernels._tuning.SCENARIO_BLOCK`)."""
    return _states(layout, const, units, fx_idx, jnp.asarray(base), jnp.asarray(new), block=block or tuning.SCENARIO_BLOCK,
                   key=tuning.snapshot())


def layout_pnl(layout: FlowLayout, const, units, fx_idx, base, new, block: int | None = None):
    """P&L ``[S, n]`` (base currency) from ``base[F]`` to each row of ``new[S, F]``, as the transpose of
    an ``[n, S]`` array (``kernels._edge.block_differences``).

    ``const``, ``units``, ``fx_idx`` are the book's ``[n]`` arrays (value at time 0, quantity x
    multiplier, FX column or -1).
    """
    return block_differences(layout_values(layout, const, units, fx_idx, base, new, block), np.shape(new)[0])


def layout_pnl_into(layout: FlowLayout, const, units, fx_idx, base, new, out: np.ndarray, block: int | None = None):
    """:func:`layout_pnl` written into ``out[S, n]`` (``kernels._edge.write_block_differences``)."""
    return write_block_differences(layout_values(layout, const, units, fx_idx, base, new, block), out)
