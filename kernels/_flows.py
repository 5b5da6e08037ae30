"""The batched kernel of cash-flow instruments (bonds, swaps): flows packed by curve segment,
discount factors computed once per distinct date where instruments share their payment dates, or
once per node of their curve where a class of instruments shares a curve and a spread.

:func:`kernels._rates.cashflow_value_one` prices one instrument from its flows padded to the longest
schedule of the book, ``sum_j a_j exp(-(z(t_j) + s) t_j)``, which is what automatic differentiation
and the numpy twin use.  Batched over a book and a chunk of scenarios that layout wastes most of the
work (a book of 2-year and 30-year bonds pads every bond to the 30-year schedule) and it reads the
curve through two gathers per flow, which XLA's CPU backend executes one element at a time.  This
module prices the same sum from a :class:`FlowLayout` built once per book by :func:`flow_layout`:

Slot buckets
    Instruments with a similar number of flows in each curve segment (the interval between two
    tenors of the curve, over which the zero yield is linear in time) share a bucket.  Slot ``j`` of
    a bucket lies in the same segment for every instrument of the bucket, so the curve yields it
    needs are one row of the levels, broadcast over the bucket, and the exponent of a flow is three
    multiply-adds (``(w_lo t) z_lo + (w_hi t) z_hi + t s``) with coefficients fixed at preparation.
    Empty slots have amount 0.  The buckets are formed greedily, instruments sorted by the segment
    of their last flow and their number of flows, so that padding stays under :data:`SLOT_WASTE`.

Node blocks
    Instruments that discount off the same curve with the same issuer spread and pay on common
    dates need the discount factor of each date once per scenario, ``D[k] = exp(-(z(t_k) + s) t_k)``,
    and their values are then a matrix product, ``V = A D`` with ``A[i, k]`` instrument ``i``'s
    amount paid at ``t_k``.  Bonds pay on common dates when they share a coupon cycle (US Treasuries
    maturing on 15 February or 15 August all pay on every 15 February and 15 August), and bonds of
    one cycle have the same first payment date: the groups are the instruments with one curve, one
    spread factor and one first payment date.  A group becomes a node block when that costs clearly
    less than its flows in slot buckets (one exponential per date instead of per flow; the product
    is dense within a cycle).  Groups of similar size are padded to a common size and priced by one
    batched product.  In a book of bonds maturing on random days only the bonds that happen to share
    a cycle form groups; a book of bonds issued on market conventions is mostly node blocks.

Curve nodes
    Instruments on one curve with one issuer spread (a class) share discount factors even when
    they pay on unrelated dates: on each piece of the curve the discount factor is an entire
    function of time, interpolated to under half a unit in the last place from its values at a
    few Chebyshev nodes (:mod:`kernels._curve_nodes`).  The class's values are again ``V = A D``,
    with ``A[i, k]`` instrument ``i``'s amounts times the Lagrange weight of node ``k`` at their
    times.  The node counts are sized for a range of forward yields and curve slopes; a scenario
    outside it (:func:`curve_nodes_inside`) is priced from the class's flows in slot buckets kept
    for that (``FlowLayout.exact``), and no other scenario's values change.  A class is priced
    this way when the cost model says it is cheaper than its own dates and slots; it is what makes
    a book of bonds maturing on random days fast.

Slot buckets and node blocks compute ``exp(-(w_lo z_lo + w_hi z_hi + s) t)`` for every flow (with
the products regrouped), so the values agree with the padded kernel to rounding (a few units in the
16th digit of the discount factors); curve nodes add an interpolation error under ``2^-54``.
Scenarios are the minor (contiguous) axis of every array in the kernel, so each
fused loop runs over contiguous memory.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._common import EXP_RANGE, exp_in_range
from ._curve_nodes import curve_pieces
from ._edge import (
    block_differences,
    blocks_with_base,
    fill_blocks,
    keep_scratch,
    take_scratch,
    values_width,
    write_block_differences,
)

__all__ = [
    "SlotBucket",
    "NodeBlocks",
    "CurveNodes",
    "FlowLayout",
    "flow_layout",
    "layout_pnl",
    "layout_pnl_into",
    "layout_values",
    "layout_stats",
    "SLOT_WASTE",
]

#: largest share of empty slots a bucket may add (relative to its flows) before a new bucket starts
SLOT_WASTE = 0.25
#: at most this many slot buckets (each is one loop of the compiled program; more compile longer)
MAX_BUCKETS = 24
#: costs in nanoseconds per scenario, measured on the 2-core development machine (XLA, float64,
#: AVX-512), that decide between a node block and slot buckets: one slot (three multiply-adds and an
#: exponential), one node (an exponential), one multiply-add of the dense product
COST_SLOT, COST_NODE, COST_MAC = 1.25, 0.8, 0.02
#: a group of two or more instruments is priced from its nodes if that costs at most this share of
#: its flows' cost in slot buckets
DENSE_GAIN = 0.9
#: at most this many node blocks (each is one batched matrix product in the compiled program)
MAX_BLOCKS = 16
#: cost in nanoseconds per scenario of one more batched product: curve-node classes are cut into
#: tiers by size when a tier's product saves more than this in padding (measured on the random-day
#: benchmark book: two to four tiers of its 35 issuers cost the same, 5% less than one)
COST_PRODUCT = 40.0
#: cost in nanoseconds per scenario of checking one interpolated piece of a curve-node class
COST_GUARD = 0.5
#: scenarios per pass of the compiled loop (the levels are padded to a multiple of it).  64 rather
#: than 128: a block's arrays (the random-day benchmark book's issuer discount factors were then 35 x
#: 159 x block) then stay nearer the core, which matters when two processes share the machine's cache
#: (random-day book, two one-core processes, 100,000 scenarios: 111-115 -> 118-125 M evaluations a
#: second), and a block of base levels, where a call needs one, is half as large; one process alone
#: and the market-date book run the same
SCENARIO_BLOCK = 64
#: scenarios per pass of the curve-node classes' discount factors and products within a block (0:
#: the whole block): their discount factors (35 x 150 x 64 for the random-day benchmark book's
#: issuers, 2.6 MiB) then stay nearer the core (measured on that book, one core: 11.1 -> 10.5 ns a
#: bond and scenario; two processes side by side: 11.5 -> 11.1 ns each; the same bits)
SUB_BLOCK = 32
#: ... only for a batch whose classes have at most this many rows on average: the products of
#: larger classes lose more in sub-blocks than their discount factors gain (10,000 random-day bonds,
#: about 200 a class: 4.9 -> 5.7 ns a bond and scenario with sub-blocks)
SUB_BLOCK_ROWS = 32


class SlotBucket(NamedTuple):
    """``m`` instruments whose ``J`` flow slots lie in the same curve segments.

    lo, hi : int ``[J]``, factor columns of the two tenors around slot ``j``
    p, q : ``[m, J]``, ``w_lo t`` and ``w_hi t`` (interpolation weight times the flow's time, years)
    t : ``[m, J]``, flow times (years); a : ``[m, J]``, amounts per unit face (0: empty slot)
    spread_idx : int ``[m]``, column of the issuer spread; spread_w : ``[m]``, 1 or 0
    """

    lo: np.ndarray
    hi: np.ndarray
    p: np.ndarray
    q: np.ndarray
    t: np.ndarray
    a: np.ndarray
    spread_idx: np.ndarray
    spread_w: np.ndarray


class NodeBlocks(NamedTuple):
    """``G`` groups of instruments, each group on one curve with one issuer spread and paying on
    common dates (its nodes), padded to ``m`` instruments and ``K`` nodes per group.

    lo, hi : int ``[G, K]``; p, q, t : ``[G, K]`` as in :class:`SlotBucket`, per node (0: padding)
    spread_idx : int ``[G]``; spread_w : ``[G]``
    amounts : ``[G, m, K]``, what instrument ``r`` of group ``g`` receives at node ``k`` (0 if none)
    """

    lo: np.ndarray
    hi: np.ndarray
    p: np.ndarray
    q: np.ndarray
    t: np.ndarray
    spread_idx: np.ndarray
    spread_w: np.ndarray
    amounts: np.ndarray


class CurveNodes(NamedTuple):
    """``G`` classes of instruments (one curve, one issuer spread or none) priced from the discount
    factors at their curve's nodes (:mod:`kernels._curve_nodes`), and the check that a scenario lies
    within the range the interpolation is exact for.

    nodes : a :class:`NodeBlocks` whose ``G`` groups share one list of nodes (``lo``, ``hi``, ``p``,
        ``q``, ``t`` are ``[1, K]``) and whose ``amounts`` is a tuple of size tiers
        (:func:`_size_tiers`): ``[G_i, m_i, K]`` arrays for consecutive classes (``sum G_i = G``),
        each padded to its largest class, ``amounts[i][g, r, k]`` instrument ``r``'s flows
        interpolated onto node ``k``
    lo, hi : int ``[R]``, tenor columns of each interpolated piece some class of the batch reaches
        (the classes of a batch share one curve, hence its pieces; padding: 0)
    coef : ``[5, R]``, ``(p1, q1, t1, p2, q2)``: the exponent's ``u`` coefficient is
        ``p1 z_lo + q1 z_hi + t1 s`` (``t1 > 0``) and its ``u^2`` coefficient ``p2 z_lo + q2 z_hi``
        (padding: 0)
    cap : ``[2, R]``, the largest magnitudes of the two the node counts are sized for (padding: 0)
    """

    nodes: NodeBlocks
    lo: np.ndarray
    hi: np.ndarray
    coef: np.ndarray
    cap: np.ndarray


class FlowLayout(NamedTuple):
    """A cash-flow book packed for the batched kernel.

    buckets, blocks, curve_nodes : the slot buckets, the node blocks and the curve-node classes
    order : int ``[n]``, row of instrument ``i`` in the rows of the buckets, then of the blocks, then
        of the curve-node classes (``G m`` rows each, padding included), in order
    exact : slot buckets of the instruments priced from curve nodes, for scenarios outside the range
        of the interpolation
    exact_rows : int ``[rows of the curve-node classes]``, the row of the same instrument in
        ``exact`` (-1: padding)
    exp_cols : int ``[C]``, the factor columns (curve tenors and issuer spreads) of every exponent
    exp_cap : the largest ``|level|`` of those columns for which every exponent lies within
        ``kernels._common.EXP_RANGE`` (:func:`levels_in_exp_range`)
    """

    buckets: tuple[SlotBucket, ...]
    blocks: tuple[NodeBlocks, ...]
    order: np.ndarray
    curve_nodes: tuple[CurveNodes, ...] = ()
    exact: tuple[SlotBucket, ...] = ()
    exact_rows: np.ndarray = np.zeros(0, dtype=np.int64)
    exp_cols: np.ndarray = np.zeros(0, dtype=np.int64)
    exp_cap: np.ndarray = np.array(np.inf)


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
    return n_nodes * COST_NODE + n_inst * n_nodes * COST_MAC


class _Group(NamedTuple):
    members: np.ndarray  # instruments, increasing
    sel: np.ndarray  # bool [M]: their flows
    first: np.ndarray  # one flow per node
    node_of: np.ndarray  # node of each selected flow
    spread_idx: int
    spread_w: float

    @property
    def n_nodes(self) -> int:
        return len(self.first)

    @property
    def cost(self) -> float:
        return _dense_cost(len(self.members), len(self.first))


def _group(fl: _Flows, members: np.ndarray, spread_idx: int, spread_w: float) -> _Group:
    sel = np.isin(fl.inst, members)
    # a node is a time on one curve: flows at the same time and tenor columns share a discount factor
    keys = np.stack([fl.t[sel], fl.lo[sel], fl.hi[sel]], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return _Group(members, sel, np.flatnonzero(sel)[first], inverse.ravel(), spread_idx, spread_w)


def _node_blocks(fl: _Flows, groups: list[_Group]) -> NodeBlocks:
    G = len(groups)
    m = max(len(g.members) for g in groups)
    K = max(len(g.first) for g in groups)
    lo, hi = np.zeros((G, K), dtype=np.int64), np.zeros((G, K), dtype=np.int64)
    p, q, t = np.zeros((G, K)), np.zeros((G, K)), np.zeros((G, K))
    amounts = np.zeros((G, m, K))
    for i, g in enumerate(groups):
        f, k = g.first, len(g.first)
        lo[i, :k], hi[i, :k] = fl.lo[f], fl.hi[f]
        p[i, :k], q[i, :k], t[i, :k] = fl.w_lo[f] * fl.t[f], fl.w_hi[f] * fl.t[f], fl.t[f]
        row = np.searchsorted(g.members, fl.inst[g.sel])
        np.add.at(amounts[i], (row, g.node_of), fl.a[g.sel])
    return NodeBlocks(lo, hi, p, q, t, np.array([g.spread_idx for g in groups], dtype=np.int64),
                      np.array([g.spread_w for g in groups], dtype=float), amounts)


def _batch_groups(groups: list, waste: float) -> list[list]:
    """Groups of similar size share one padded :class:`NodeBlocks` (one batched product); a group is a
    :class:`_Group` or a :class:`_NodeClass`, ``n_nodes`` nodes for ``len(members)`` instruments."""
    groups = sorted(groups, key=lambda g: (g.n_nodes, len(g.members)))
    padded = lambda gs: len(gs) * _dense_cost(max(len(g.members) for g in gs), max(g.n_nodes for g in gs))  # noqa: E731
    batches: list[list[_Group]] = []
    for g in groups:
        if batches and padded(batches[-1] + [g]) <= (1.0 + waste) * sum(h.cost for h in batches[-1] + [g]):
            batches[-1].append(g)
        else:
            batches.append([g])
    while len(batches) > MAX_BLOCKS:
        added = [padded(a + b) - padded(a) - padded(b) for a, b in zip(batches, batches[1:])]
        i = int(np.argmin(added))
        batches[i : i + 2] = [batches[i] + batches[i + 1]]
    return batches


def _slot_buckets(fl: _Flows, members: np.ndarray, curve: np.ndarray, spread_idx, spread_w, waste: float) -> list[tuple[np.ndarray, SlotBucket]]:
    """Greedy bucketing of ``members`` (instrument numbers) by their flow counts per curve segment."""
    if not len(members):
        return []
    in_set = np.isin(fl.inst, members)
    seg_keys = np.stack([fl.lo[in_set], fl.hi[in_set]], axis=1)
    segs, seg_of = np.unique(seg_keys, axis=0, return_inverse=True)
    seg_of = seg_of.ravel()
    S = len(segs)
    rows = np.searchsorted(members, fl.inst[in_set])  # members are increasing
    counts = np.zeros((len(members), S), dtype=np.int64)
    np.add.at(counts, (rows, seg_of), 1)
    last = np.where(counts.any(axis=1), S - 1 - np.argmax(counts[:, ::-1] > 0, axis=1), -1)
    total = counts.sum(axis=1)
    order = np.lexsort((total, last, curve[members]))
    groups: list[list[int]] = []
    cur: list[int] = []
    width = np.zeros(S, dtype=np.int64)
    flows = 0
    for r in order:
        grown = np.maximum(width, counts[r])
        same_curve = not cur or curve[members[cur[0]]] == curve[members[r]]
        if cur and (not same_curve or (len(cur) + 1) * grown.sum() > (1.0 + waste) * (flows + total[r])):
            groups.append(cur)
            cur, width, flows = [], np.zeros(S, dtype=np.int64), 0
            grown = counts[r].copy()
        cur.append(int(r))
        width = grown
        flows += int(total[r])
    groups.append(cur)
    # each bucket is a loop of its own in the compiled program: merge the neighbours (in the sort
    # order) that add the fewest empty slots until at most MAX_BUCKETS remain, to bound compile time
    widths = [counts[g].max(axis=0) for g in groups]
    while len(groups) > MAX_BUCKETS:
        added = [(len(a) + len(b)) * int(np.maximum(wa, wb).sum()) - len(a) * int(wa.sum()) - len(b) * int(wb.sum())
                 for a, b, wa, wb in zip(groups, groups[1:], widths, widths[1:])]
        i = int(np.argmin(added))
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
        widths[i : i + 2] = [np.maximum(widths[i], widths[i + 1])]

    # every flow's bucket, row in it and slot: flows come instrument by instrument in time order, so
    # an instrument's flows in one segment are consecutive and their rank in the run is the position
    idx_flows = np.flatnonzero(in_set)
    run_key = rows * max(S, 1) + seg_of
    new_run = np.concatenate([[True], run_key[1:] != run_key[:-1]])
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(run_key)), 0))
    within = np.arange(len(run_key)) - run_start
    bucket_of = np.empty(len(members), dtype=np.int64)
    row_in = np.empty(len(members), dtype=np.int64)
    for b, g in enumerate(groups):
        bucket_of[g] = b
        row_in[g] = np.arange(len(g))
    out = []
    for b, g in enumerate(groups):
        g = np.array(g, dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(widths[b])])
        m, J = len(g), int(start[-1])
        mine = bucket_of[rows] == b
        f = idx_flows[mine]
        r, j = row_in[rows[mine]], start[seg_of[mine]] + within[mine]
        p, q, t, a = (np.zeros((m, J)) for _ in range(4))
        p[r, j] = fl.w_lo[f] * fl.t[f]
        q[r, j] = fl.w_hi[f] * fl.t[f]
        t[r, j] = fl.t[f]
        a[r, j] = fl.a[f]
        seg_slot = np.repeat(np.arange(S), widths[b])
        inst = members[g]
        bucket = SlotBucket(
            lo=segs[seg_slot, 0].astype(np.int64), hi=segs[seg_slot, 1].astype(np.int64), p=p, q=q, t=t, a=a,
            spread_idx=np.asarray(spread_idx, dtype=np.int64)[inst], spread_w=np.asarray(spread_w, dtype=float)[inst],
        )
        out.append((inst, bucket))
    return out


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
        return _dense_cost(len(self.members), len(self.t)) + self.coef.shape[1] * COST_GUARD


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


def _size_tiers(sizes: np.ndarray, n_nodes: int) -> list[int]:
    """Where to cut classes of ``sizes`` instruments (increasing) into tiers, each padded to its
    largest class: the cuts ``[c_1, ..., G]`` that minimise the products' multiply-adds
    (:data:`COST_MAC` each) plus :data:`COST_PRODUCT` for each tier's product (dynamic programming
    over the sorted sizes)."""
    G = len(sizes)
    best = np.full(G + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(G + 1, dtype=np.int64)
    for j in range(1, G + 1):
        for i in range(j):
            c = best[i] + (j - i) * sizes[j - 1] * n_nodes * COST_MAC + COST_PRODUCT
            if c < best[j]:
                best[j], cut[j] = c, i
    ends, j = [], G
    while j > 0:
        ends.append(j)
        j = cut[j]
    return ends[::-1]


def _curve_node_batch(classes: list[_NodeClass]) -> tuple[CurveNodes, list[_NodeClass], list[int]]:
    """One :class:`CurveNodes` of ``classes``: their nodes are merged into one list (a class's own
    nodes are those of the curve pieces it reaches, so classes on one curve mostly share them), and
    a class's amounts are 0 on the nodes it does not use.  The classes are sorted by size and cut
    into tiers (:func:`_size_tiers`), so that a class of three bonds is not padded to the batch's
    largest (measured on the random-day benchmark book, 35 issuers of 3 to 10 bonds in four tiers:
    11.6 -> 11.0 ns a bond and scenario on one core).  Returns the batch, the classes in its order
    and the first row of each."""
    classes = sorted(classes, key=lambda c: len(c.members))
    rows = np.concatenate([np.stack([c.t, c.p, c.q, c.lo, c.hi], axis=1) for c in classes])
    union, col = np.unique(rows, axis=0, return_inverse=True)
    col = col.ravel()
    K = len(union)
    sizes = np.array([len(c.members) for c in classes])
    tiers, starts, first, row = [], [], 0, 0
    for end in _size_tiers(sizes, K):
        m = int(sizes[end - 1])
        tiers.append(np.zeros((end - first, m, K)))
        starts += [row + i * m for i in range(end - first)]
        row += (end - first) * m
        first = end
    at = 0
    g = 0
    for amounts in tiers:
        for i in range(amounts.shape[0]):
            c = classes[g]
            k = c.n_nodes
            amounts[i, : len(c.members)][:, col[at : at + k]] = c.amounts
            at += k
            g += 1
    # the interpolated pieces, once each: the classes of a batch share their curve's pieces, and the
    # range check takes the batch's lowest and highest spread (the exponent's u coefficient is linear
    # in the spread), so it costs a few operations a piece rather than a class
    guards = np.concatenate([np.concatenate([c.guard_lo[None], c.guard_hi[None], c.coef, c.cap]).T for c in classes])
    guards = np.unique(guards[guards[:, 7] > 0], axis=0) if len(guards) else guards
    if not len(guards):  # nothing interpolated: one padding row, which every scenario passes
        guards = np.zeros((1, 9))
    nodes = NodeBlocks(union[None, :, 3].astype(np.int64), union[None, :, 4].astype(np.int64), union[None, :, 1], union[None, :, 2],
                       union[None, :, 0], np.array([c.spread_idx for c in classes], dtype=np.int64),
                       np.array([c.spread_w for c in classes], dtype=float), tuple(tiers))
    cn = CurveNodes(nodes, guards[:, 0].astype(np.int64), guards[:, 1].astype(np.int64), guards[:, 2:7].T.copy(), guards[:, 7:9].T.copy())
    return cn, classes, starts


def _exact_cost(fl: _Flows, sel: np.ndarray) -> float:
    """What the instruments of the flows ``sel`` (one curve, one spread) cost in node blocks of shared
    dates and slot buckets: the estimate :func:`flow_layout` makes for them, by first payment date."""
    members, inst_row = np.unique(fl.inst[sel], return_inverse=True)
    t = fl.t[sel]
    first_t = np.full(len(members), np.inf)
    np.minimum.at(first_t, inst_row.ravel(), t)
    cycles, cycle_of = np.unique(first_t, return_inverse=True)  # the group of each instrument
    cycle = cycle_of.ravel()[inst_row.ravel()]  # and of each flow
    dates = np.unique(np.stack([cycle, t, fl.lo[sel], fl.hi[sel]], axis=1), axis=0)
    nodes = np.bincount(dates[:, 0].astype(np.int64), minlength=len(cycles))
    flows = np.bincount(cycle, minlength=len(cycles))
    size = np.bincount(cycle_of.ravel(), minlength=len(cycles))
    dense = nodes * COST_NODE + size * nodes * COST_MAC
    slots = flows * COST_SLOT
    return float(np.where((size >= 2) & (dense <= DENSE_GAIN * slots), dense, slots).sum())


def flow_layout(book, curve_ids: np.ndarray | None = None, dense: bool | None = None, waste: float = SLOT_WASTE,
                interpolate: bool | None = None) -> FlowLayout:
    """Pack a padded cash-flow book (:class:`kernels._rates.CashflowBook`) for :func:`layout_pnl`.

    Parameters
    ----------
    book : CashflowBook with ``times``, ``amounts`` and ``pts`` ``[n, J]``, ``spread_idx`` and
        ``spread_w`` ``[n]``
    curve_ids : int ``[n]``, the discount curve of each instrument (e.g. a code per currency);
        instruments on different curves never share a node block or a bucket.  Default: one class
        (still exact: a node is a time on one curve's tenors, and a bucket's slots belong to one
        curve segment each, so mixing curves costs only padding)
    dense : force every group into node blocks (True) or slot buckets (False); default: by cost
    waste : :data:`SLOT_WASTE`
    interpolate : price every class of instruments (one curve, one issuer spread) from its curve's
        nodes (True), none (False), or those for which that costs less (default, unless ``dense``
        forces the rest of the book one way)
    """
    fl = _flat_flows(book)
    n = np.atleast_2d(np.asarray(book.times)).shape[0]
    spread_idx = np.broadcast_to(np.asarray(book.spread_idx, dtype=np.int64), (n,))
    spread_w = np.broadcast_to(np.asarray(book.spread_w, dtype=float), (n,))
    if curve_ids is None:
        curve_ids = np.zeros(n, dtype=np.int64)
    curve_ids = np.asarray(curve_ids, dtype=np.int64)
    sp_key = np.where(spread_w != 0.0, spread_idx, -1)

    # classes of instruments (one curve, one spread) priced from discount factors at their curve's
    # nodes, where that costs less than their own dates
    node_classes: list[_NodeClass] = []
    in_nodes = np.zeros(n, dtype=bool)
    if (interpolate or (interpolate is None and dense is None)) and len(fl.t):
        for c in _node_classes(fl, np.unique(fl.inst), curve_ids, sp_key, spread_idx, spread_w):
            if interpolate or c.cost <= DENSE_GAIN * _exact_cost(fl, c.flows):
                node_classes.append(c)
                in_nodes[c.members] = True

    # groups of instruments on one curve, with one spread and the same first payment date, i.e. the
    # same coupon cycle (semi-annual on the 15th of February and August, ...): they pay on common
    # dates.  Each is a candidate for a node block.
    batches: list[list[_Group]] = []
    in_block = np.zeros(n, dtype=bool)
    if dense is not False and len(fl.t):
        first_t = np.full(n, np.inf)
        np.minimum.at(first_t, fl.inst, fl.t)
        has = np.isfinite(first_t) & ~in_nodes
        keys = np.stack([curve_ids, sp_key, np.where(has, first_t, -1.0)], axis=1)[has]
        uniq, gid = np.unique(keys, axis=0, return_inverse=True)
        gid, inst_with = gid.ravel(), np.flatnonzero(has)
        chosen = []
        for k in range(len(uniq)):
            members = inst_with[gid == k]
            g = _group(fl, members, int(spread_idx[members[0]]), float(spread_w[members[0]]))
            if dense or (len(members) >= 2 and g.cost <= DENSE_GAIN * int(g.sel.sum()) * COST_SLOT):
                chosen.append(g)
                in_block[members] = True
        batches = _batch_groups(chosen, waste) if chosen else []
    rest = np.flatnonzero(~in_block & ~in_nodes)
    # instruments without flows (value = const) sort first and form a bucket of width 0
    buckets = _slot_buckets(fl, rest, curve_ids, spread_idx, spread_w, waste)
    order = np.empty(n, dtype=np.int64)
    row = 0
    for inst, _ in buckets:
        order[inst] = row + np.arange(len(inst))
        row += len(inst)
    blocks = []
    for batch in batches:
        nb = _node_blocks(fl, batch)
        m = nb.amounts.shape[1]
        for i, g in enumerate(batch):
            order[g.members] = row + i * m + np.arange(len(g.members))
        row += len(batch) * m
        blocks.append(nb)
    curve_nodes, exact, exact_rows = [], [], np.zeros(0, dtype=np.int64)
    if node_classes:
        first_row = row
        # a batch shares one list of nodes: only classes of one curve share a batch
        batches = [b for curve in sorted({c.curve for c in node_classes})
                   for b in _batch_groups([c for c in node_classes if c.curve == curve], waste)]
        for batch in batches:
            cn, batch, starts = _curve_node_batch(batch)
            for c, start in zip(batch, starts):
                order[c.members] = row + start + np.arange(len(c.members))
            row += sum(a.shape[0] * a.shape[1] for a in cn.nodes.amounts)
            curve_nodes.append(cn)
        # the same instruments in slot buckets, for scenarios outside the interpolation's range
        members = np.flatnonzero(in_nodes)
        exact_row = np.empty(n, dtype=np.int64)
        at = 0
        for inst, b in _slot_buckets(fl, members, curve_ids, spread_idx, spread_w, waste):
            exact_row[inst] = at + np.arange(len(inst))
            at += len(inst)
            exact.append(b)
        exact_rows = np.full(row - first_row, -1, dtype=np.int64)
        exact_rows[order[members] - first_row] = exact_row[members]
    parts = [b for _, b in buckets] + blocks + [c.nodes for c in curve_nodes] + exact
    exp_cols, exp_cap = _exp_bound(parts)
    return FlowLayout(tuple(b for _, b in buckets), tuple(blocks), order, tuple(curve_nodes), tuple(exact), exact_rows, exp_cols, exp_cap)


def _exp_bound(parts: list) -> tuple[np.ndarray, np.ndarray]:
    """The columns every exponent of ``parts`` (slot buckets and node blocks) reads, and the largest
    ``|level|`` of them that keeps every exponent within ``EXP_RANGE``: an exponent is
    ``p z_lo + q z_hi + t s`` with the curve's yields ``z`` and the spread ``s`` among those columns,
    so ``|x| <= (max(|p| + |q|) + max(t)) * max |level|``."""
    cols, span_z, span_s = [np.zeros(0, dtype=np.int64)], 0.0, 0.0
    for b in parts:
        if not np.size(b.t):
            continue
        cols += [np.ravel(b.lo), np.ravel(b.hi), np.ravel(b.spread_idx)[np.ravel(b.spread_w) != 0.0]]
        span_z = max(span_z, float(np.max(np.abs(b.p) + np.abs(b.q))))
        span_s = max(span_s, float(np.max(np.abs(b.t)) * np.max(np.abs(b.spread_w), initial=0.0)))
    span = span_z + span_s
    return np.unique(np.concatenate(cols)), np.array(EXP_RANGE / span if span > 0.0 else np.inf)


def layout_stats(layout: FlowLayout) -> dict:
    """Sizes of a layout: flows; slots (flows plus padding) in slot buckets; distinct dates (nodes),
    nodes with padding, entries of the products and groups in node blocks; instruments, classes,
    nodes used (summed over classes), discount factors computed per scenario (classes times the
    nodes of their batch) and interpolated pieces of the curve-node classes."""
    in_curve_nodes = sum(int(b.a.shape[0]) for b in layout.exact)
    return dict(
        instruments=len(layout.order),
        flows=sum(int((b.a != 0).sum()) for b in layout.buckets + layout.exact) + sum(int((k.amounts != 0).sum()) for k in layout.blocks),
        slots=sum(int(b.a.size) for b in layout.buckets),
        buckets=len(layout.buckets),
        nodes=sum(int((k.amounts != 0).any(axis=1).sum()) for k in layout.blocks),
        padded_nodes=sum(int(k.t.size) for k in layout.blocks),
        dense_entries=sum(int(k.amounts.size) for k in layout.blocks),
        groups=sum(int(k.t.shape[0]) for k in layout.blocks),
        block_instruments=len(layout.order) - sum(int(b.a.shape[0]) for b in layout.buckets) - in_curve_nodes,
        blocks=len(layout.blocks),
        curve_node_instruments=in_curve_nodes,
        curve_node_classes=sum(int(a.shape[0]) for c in layout.curve_nodes for a in c.nodes.amounts),
        curve_nodes=sum(int((a != 0).any(axis=1).sum()) for c in layout.curve_nodes for a in c.nodes.amounts),
        curve_node_factors=sum(int(a.shape[0] * a.shape[2]) for c in layout.curve_nodes for a in c.nodes.amounts),
        curve_node_entries=sum(int(a.size) for c in layout.curve_nodes for a in c.nodes.amounts),
        curve_node_tiers=sum(len(c.nodes.amounts) for c in layout.curve_nodes),
        interpolated_pieces=sum(int((c.cap[0] > 0).sum()) for c in layout.curve_nodes),  # distinct in each batch
    )


# ---------------------------------------------------------------------------------------------------
# the kernel (jax): levels with scenarios on the minor axis
# ---------------------------------------------------------------------------------------------------


def _bucket_values(b: SlotBucket, LT, exp=jnp.exp):
    zl = LT[b.lo]  # [J, B]
    zh = LT[b.hi]
    sp = b.spread_w[:, None] * LT[b.spread_idx]  # [m, B]
    x = b.p[:, :, None] * zl[None] + b.q[:, :, None] * zh[None] + b.t[:, :, None] * sp[:, None, :]
    # a batched product rather than a sum of a * exp(-x): XLA computes the exponentials in one
    # vectorised pass and the sum as a product (measured on the 47 bonds of the random-day benchmark
    # book left in buckets: 1.58 -> 1.26 us a scenario on one core)
    return jnp.einsum("mj,mjb->mb", b.a, exp(-x), precision=jax.lax.Precision.HIGHEST)


def _node_values(k: NodeBlocks, LT, sp, exp=jnp.exp):
    x = k.p[:, :, None] * LT[k.lo] + k.q[:, :, None] * LT[k.hi] + k.t[:, :, None] * sp[:, None, :]  # [G, K, B]
    v = jnp.einsum("gmk,gkb->gmb", k.amounts, exp(-x), precision=jax.lax.Precision.HIGHEST)
    return v.reshape(-1, v.shape[-1])


def curve_nodes_inside(layout: FlowLayout, LT):
    """``[B]`` bool: the scenario's levels ``LT[:, b]`` lie within the range every interpolated piece's
    node count is sized for (``CurveNodes.cap``; True if the layout has no curve nodes)."""
    inside = jnp.ones(LT.shape[1], dtype=bool)
    for c in layout.curve_nodes:
        sp = c.nodes.spread_w[:, None] * LT[c.nodes.spread_idx]  # [G, B]
        zl, zh = LT[c.lo], LT[c.hi]  # [R, B]
        a = c.coef[0][:, None] * zl + c.coef[1][:, None] * zh
        x2 = c.coef[3][:, None] * zl + c.coef[4][:, None] * zh
        ok = jnp.abs(x2) <= c.cap[1][:, None]
        # x1 = a + t1 s is linear in the spread: within the cap for every class if it is for the
        # batch's lowest and highest spread (a class that does not reach a piece is checked too)
        for s in (sp.min(axis=0), sp.max(axis=0)):
            ok &= jnp.abs(a + c.coef[2][:, None] * s[None, :]) <= c.cap[0][:, None]
        inside &= jnp.all(ok, axis=0)
    return inside


def levels_in_exp_range(layout: FlowLayout, LT):
    """``[B]`` bool: every exponent of the scenario lies within ``EXP_RANGE``, where
    :func:`kernels._common.exp_in_range` is exact to a unit in the last place (its levels' largest
    magnitude is at most ``layout.exp_cap``: 11.8, i.e. 1,180%, for a book of 30-year bonds)."""
    if not len(layout.exp_cols):
        return jnp.ones(LT.shape[1], dtype=bool)
    return jnp.max(jnp.abs(LT[layout.exp_cols]), axis=0) <= layout.exp_cap


def _clipped_exp(x):
    """:func:`kernels._common.exp_in_range` of ``x`` clipped to ``EXP_RANGE``: exact where ``|x|``
    is within it, and beyond it ``e^-708`` (3.3e-308) for what would underflow and ``e^708`` for what
    would overflow, for the rare chunk with a scenario outside the range."""
    return exp_in_range(jnp.clip(x, -EXP_RANGE, EXP_RANGE))


def _shared_node_values(k: NodeBlocks, LT, exp=jnp.exp):
    """Values ``[sum G_i m_i, B]`` of node blocks whose ``G`` groups share one list of nodes (``[1, K]``),
    each with its own spread, tier after tier (``k.amounts`` is a tuple of size tiers, see
    :class:`CurveNodes`): the curve's discount factors once, times each group's spread factors.
    The curve's take XLA's own exponential whatever ``exp`` is: it is costly enough that XLA
    computes it once, where a cheaper one is fused into every group's product and recomputed
    for each (measured: 12.4 -> 16.6 ns a bond and scenario on the random-day benchmark book).
    The spread factors and products run :data:`SUB_BLOCK` scenarios at a time."""
    curve = jnp.exp(-(k.p[0][:, None] * LT[k.lo[0]] + k.q[0][:, None] * LT[k.hi[0]]))  # [K, B]
    sp = k.spread_w[:, None] * LT[k.spread_idx]  # [G, B]

    def values(curve, sp):
        D = curve[None] * exp(-(k.t[0][None, :, None] * sp[:, None, :]))  # [G, K, B]
        parts, g = [], 0
        for a in k.amounts:  # one product per size tier, on its classes' rows of D
            v = jnp.einsum("gmk,gkb->gmb", a, D[g : g + a.shape[0]], precision=jax.lax.Precision.HIGHEST)
            parts.append(v.reshape(-1, v.shape[-1]))
            g += a.shape[0]
        return jnp.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]

    B, sub = LT.shape[1], SUB_BLOCK
    rows = sum(a.shape[0] * a.shape[1] for a in k.amounts)
    if not sub or B <= sub or B % sub or rows > SUB_BLOCK_ROWS * len(k.spread_idx):
        return values(curve, sp)

    def body(j, out):
        cols = lambda x: jax.lax.dynamic_slice_in_dim(x, j * sub, sub, axis=1)  # noqa: E731
        return jax.lax.dynamic_update_slice_in_dim(out, values(cols(curve), cols(sp)), j * sub, axis=1)

    return jax.lax.fori_loop(0, B // sub, body, jnp.zeros((rows, B), dtype=curve.dtype))


def curve_node_values(layout: FlowLayout, LT, exp=_clipped_exp):
    """Values ``[rows, B]`` of the curve-node classes' rows from their nodes alone (no range check)."""
    return jnp.concatenate([_shared_node_values(c.nodes, LT, exp) for c in layout.curve_nodes], axis=0)


def _curve_node_values(layout: FlowLayout, LT, exp):
    """Values of the curve-node classes' rows ``[rows, B]``; a scenario outside the range the node
    counts are sized for (:func:`curve_nodes_inside`) takes the exact slot-bucket values of every row."""
    v = curve_node_values(layout, LT, exp)
    ok = curve_nodes_inside(layout, LT)

    def exact(v):
        e = jnp.concatenate([_bucket_values(b, LT, exp) for b in layout.exact] + [jnp.zeros((1, LT.shape[1]))], axis=0)
        return jnp.where(ok[None, :], v, e[layout.exact_rows])  # row -1: the zeros of a padding row

    return jax.lax.cond(jnp.all(ok), lambda v: v, exact, v)


def _present_values(layout: FlowLayout, LT, checked: bool = True):
    """``sum_j a_j DF_j`` of every instrument, ``[n, B]``, from levels ``LT[F, B]``.

    ``checked=True``: whatever the levels (exponents clipped to ``EXP_RANGE``, a scenario outside
    the curve nodes' range priced flow by flow).  ``checked=False``: ``(values, inside)``, with no
    clipping and the curve-node rows from their nodes, and whether that was exact for every
    scenario (:func:`levels_in_exp_range` and :func:`curve_nodes_inside`).  Where both are exact
    they compute the same expressions."""
    exp = _clipped_exp if checked else exp_in_range
    parts = [_bucket_values(b, LT, exp) for b in layout.buckets]
    parts += [_node_values(k, LT, k.spread_w[:, None] * LT[k.spread_idx], exp) for k in layout.blocks]
    if checked:
        if layout.curve_nodes:
            parts.append(_curve_node_values(layout, LT, exp))
        return jnp.concatenate(parts, axis=0)[layout.order]
    inside = jnp.all(levels_in_exp_range(layout, LT))
    if layout.curve_nodes:
        parts.append(curve_node_values(layout, LT, exp))
        inside &= jnp.all(curve_nodes_inside(layout, LT))
    return jnp.concatenate(parts, axis=0)[layout.order], inside


@partial(jax.jit, static_argnames=("block",), donate_argnames=("buffer",))
def _states(layout: FlowLayout, const, units, fx_idx, base, new, buffer, block: int = SCENARIO_BLOCK):
    """Values in base currency ``[n, nb block]``: one column per row of ``new``, then the base levels
    (column ``S``; ``kernels._edge.blocks_with_base``), written into the donated ``buffer``."""

    def one(lt):
        return _in_base_currency(_present_values(layout, lt), lt, const, units, fx_idx)

    return fill_blocks(one, (blocks_with_base(base, new, block),), buffer, block)


def _in_base_currency(pv, lt, const, units, fx_idx):
    """Position values ``[n, B]`` in the base currency from present values per unit of face."""
    fx = jnp.where(fx_idx[:, None] >= 0, lt[jnp.maximum(fx_idx, 0)], 1.0)
    return units[:, None] * (pv + const[:, None]) * fx


@partial(jax.jit, static_argnames=("block",), donate_argnames=("buffer",))
def _states_unchecked(layout: FlowLayout, const, units, fx_idx, base, new, buffer, block: int = SCENARIO_BLOCK):
    """:func:`_states` with every curve-node row from its nodes and every exponential unclipped, and
    whether that was exact for every scenario: ``(values, inside)``.  Without the per-block branch
    to the exact values the program runs faster (measured on the random-day benchmark book: 15.4 ->
    14.6 ns a bond and scenario on one core), and without the clipping the exponentials cost less
    (:func:`kernels._common.exp_in_range`); :func:`layout_values` recomputes the rare chunk that
    leaves either range with :func:`_states`."""
    blocks = blocks_with_base(base, new, block)

    def body(i, carry):
        out, inside = carry
        lt = jax.lax.dynamic_index_in_dim(blocks, i, keepdims=False)
        pv, ok = _present_values(layout, lt, checked=False)
        v = _in_base_currency(pv, lt, const, units, fx_idx)
        return jax.lax.dynamic_update_slice(out, v, (0, i * block)), inside & ok

    return jax.lax.fori_loop(0, blocks.shape[0], body, (buffer, jnp.array(True)))


def layout_values(layout: FlowLayout, const, units, fx_idx, base, new, block: int = SCENARIO_BLOCK):
    """:func:`_states` of ``new[S, F]`` into this thread's scratch buffer (``kernels._edge.take_scratch``).

    It runs :func:`_states_unchecked` first; only if some scenario lies outside the curve nodes'
    range, or has a curve yield or spread so large (beyond ``layout.exp_cap``) that an exponent
    could leave ``EXP_RANGE``, does it run :func:`_states` on the whole chunk (into the same
    buffer): the values of those scenarios are then the exact ones, and those of the chunk's other
    scenarios (the base column included, so a zero shock still gives a zero P&L) are computed as
    in the first program.  That second program compiles the first time a chunk needs it; under
    tracing only it runs."""
    new = jnp.asarray(new)
    base = jnp.asarray(base)
    buffer = take_scratch((len(layout.order), values_width(new.shape[0], block)), new)
    if isinstance(new, jax.core.Tracer) or isinstance(base, jax.core.Tracer):
        return _states(layout, const, units, fx_idx, base, new, buffer, block=block)
    values, inside = _states_unchecked(layout, const, units, fx_idx, base, new, buffer, block=block)
    if bool(inside):
        return values
    return _states(layout, const, units, fx_idx, base, new, values, block=block)


def layout_pnl(layout: FlowLayout, const, units, fx_idx, base, new, block: int = SCENARIO_BLOCK):
    """P&L ``[S, n]`` (base currency) from ``base[F]`` to each row of ``new[S, F]``, as the transpose of
    an ``[n, S]`` array (``kernels._edge.block_differences``).

    ``const``, ``units``, ``fx_idx`` are the book's ``[n]`` arrays (value at time 0, quantity x
    multiplier, FX column or -1); ``block`` scenarios are evaluated per pass of the compiled loop.
    """
    values = layout_values(layout, const, units, fx_idx, base, new, block)
    pnl = block_differences(values, np.shape(new)[0])
    keep_scratch(values)
    return pnl


def layout_pnl_into(layout: FlowLayout, const, units, fx_idx, base, new, out: np.ndarray, block: int = SCENARIO_BLOCK):
    """:func:`layout_pnl` written into ``out[S, n]`` (``kernels._edge.write_block_differences``)."""
    values = layout_values(layout, const, units, fx_idx, base, new, block)
    write_block_differences(values, out)
    keep_scratch(values)
    return out
