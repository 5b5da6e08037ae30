"""Exact mean-CVaR optimisation over scenarios that never sit in one process.

The same problem and the same two phases as :class:`portfolios.CutPlaneCVaR` (Rockafellar-Uryasev's
LP, solved by trust-region cutting planes and finished exactly by the scenario aggregation of Espinoza
and Moreno, Comput. Optim. Appl. 59 (2014)), but the scenario matrix ``R [S, n]`` is cut into chunks of
rows, each held for a whole solve by one process (a Ray actor, or this process one chunk after the
other).  The driver keeps the master LPs (HiGHS) and ``O(n)`` or ``O(groups x n)`` numbers; a chunk is
loaded (or generated) once, and every call on it returns mergeable small things.

Per phase-1 iterate ``w`` (two or three calls on every chunk):

1. ``evaluate``: the chunk computes and keeps its losses ``L_s = -r_s . w`` and sorts its largest ones
   (enough probability that the global VaR cannot lie below them); it returns them all when they are
   few (2,048 or fewer), else 1,024 evenly spaced ones as pivots, with their exact cumulative probability.
2. ``bracket`` (after pivots): the driver bounds the cumulative distribution from the pivots of all
   chunks, narrows the interval that holds VaR, and asks for every key in it.  Keys are ``(loss, global
   scenario index)``, so ties are ordered as in one sorted array whatever the chunking; VaR is the
   smallest loss ``l`` with ``P(L <= l) >= a`` (``core.measures.tail_weights``), found exactly.  This is
   selection by sampled splitters on a coarse-grained machine (Saukas and Song, "A note on parallel
   selection on coarse-grained multicomputers", Algorithmica 24, 1999), weighted by the probabilities.
3. ``tail_sums``: with VaR known, each chunk returns ``sum p_s r_s`` and ``sum p_s L_s`` over its
   scenarios above VaR and at VaR; the fractional weight at VaR then follows in the driver, and with it
   CVaR and the subgradient ``g = -R^T t / (1-a)`` exactly as in one process.

Phase 2 labels the scenarios in the chunks: the initial partition is the in-memory solver's (scenarios
near the VaR of the phase-1 point individual, geometric groups by rank away from it), found with the
same selection at the group boundaries; a chunk returns per group ``sum p_s r_s`` and ``sum p_s``.  Each
round the chunks count, per group, the scenarios above and below ``z`` at the LP's weights; the driver
names the mixed groups and the chunks split them at ``z`` and return the sums of the parts.

The optimum is the full LP's, certified as in memory (the last aggregated LP is a bound that the CVaR of
its weights meets), whatever the number of chunks.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, NamedTuple, Sequence, Union

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from stressgrid.core.errors import ConfigError, DataError, InfeasibleError, StressGridError
from stressgrid.core.measures import TIE_RTOL

from ._constraints import RELAX_HINT, Constraints, LinearSystem, compile_constraints
from ._cvar_solver import CVaRSolution, ExactCVaRBase, GroupLP, _Infeasible, matvec
from ._diagnose import diagnose_infeasibility
from ._validate import check_alpha

__all__ = ["DistributedCVaR", "ScenarioChunks"]

#: a chunk: ``R [s, n]``, ``(R, p)`` with ``p [s]`` the scenarios' probabilities in the whole set, or a
#: callable run where the chunk is held that returns one of those
ChunkSource = Union[np.ndarray, tuple, Callable[[], Any]]

_PIVOTS = 1024  # pivots per chunk and target in a bracketing round
_FULL = 2048  # a chunk sends every key of a bracket that holds at most this many of its keys
# (a reply of pivots or of a full bracket stays under 100 KB, which Ray passes inline: a larger one goes
# through the object store and costs more than a round trip more - measured at 5,000 keys: 24 ms a call
# against 12 ms for pivots and a second call)
_BLOCK = 65536  # rows per block in a chunk's weighted row sums (bounds the temporary copies)
_NEG = (-np.inf, -1)
_POS = (np.inf, -1)


# ---------------------------------------------------------------------------------------------- chunk
class _Keys(NamedTuple):
    """A chunk's sorted keys in a bracket ``(lo, hi]`` (all of them, or evenly spaced pivots)."""

    loss: np.ndarray  #: ``[k]`` ascending, ties by global index
    index: np.ndarray  #: ``[k]`` global scenario indices
    cum_units: np.ndarray  #: ``[k]`` the chunk's units at or below each key
    cum_count: np.ndarray  #: ``[k]`` the chunk's scenarios at or below each key
    units: np.ndarray  #: ``[k]`` each key's own units
    base: tuple  #: (units, count) at or below ``lo``
    top: tuple  #: (units, count) at or below ``hi``
    every: bool  #: whether every key of the bracket was sent


class _Chunk:
    """One chunk of scenario rows and probabilities, held for as long as its :class:`ScenarioChunks`.

    Runs as a Ray actor or in the driver's process; every method takes and returns small things.
    Probabilities are kept in "units": 1 per scenario with equal weights (counts are then exact
    integers), else the probabilities themselves.
    """

    def __init__(self, source: ChunkSource, index: int):
        self.source = source
        self.index = index

    # ------------------------------------------------------------------ data
    def load(self) -> dict:
        """Build the chunk (run the callable here) and check it; returns its size and sums."""
        where = f"chunks[{self.index}]"
        data = self.source() if callable(self.source) else self.source
        self.source = None
        R, p = data if isinstance(data, tuple) else (data, None)
        try:
            R = np.ascontiguousarray(R, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a numeric [scenarios, positions] array "
                              f"(got {type(R).__name__})") from None
        if R.ndim != 2 or R.shape[0] < 1 or R.shape[1] < 1:
            raise ConfigError(f"{where}: expected a 2-d [scenarios, positions] array (got shape {R.shape})")
        for i in range(0, R.shape[0], _BLOCK):
            bad = ~np.isfinite(R[i:i + _BLOCK])
            if bad.any():
                s, j = (int(v) for v in np.argwhere(bad)[0])
                raise DataError(f"{where}: returns[{i + s}, {j}] must be finite (got {float(R[i + s, j])!r})")
        if p is not None:
            p = np.asarray(p, dtype=float)
            if p.shape != (R.shape[0],):
                raise ConfigError(f"{where}: expected {R.shape[0]} probabilities, one per row (got shape {p.shape})")
            bad = ~np.isfinite(p) | (p < 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ConfigError(f"{where}: probabilities[{i}] must be finite and >= 0 (got {float(p[i])!r})")
        self.R, self.q = R, p
        self.loss: np.ndarray | None = None
        self.gid: np.ndarray | None = None
        self._drop_sorted()
        return {"rows": R.shape[0], "cols": R.shape[1], "weighted": p is not None,
                "mass": float(R.shape[0] if p is None else p.sum()), "sumsq": float(np.einsum("ij,ij->", R, R))}

    def setup(self, offsets: np.ndarray) -> np.ndarray:
        """Take the global index of the first row; returns ``sum_s q_s r_s [n]``."""
        self.offset = int(offsets[self.index])
        return self.R.sum(axis=0) if self.q is None else self.q @ self.R

    def peak_rss(self) -> int | None:
        """Peak resident memory of the process holding the chunk, in bytes (None where unknown)."""
        try:
            import resource
        except ImportError:  # not a Unix system
            return None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)

    def _units(self, idx: np.ndarray) -> np.ndarray:
        return np.ones(len(idx)) if self.q is None else self.q[idx]

    def _drop_sorted(self) -> None:
        self.sv = self.si = self.cq = None
        self.floor_q = 0.0
        self.floor_n = 0

    # ------------------------------------------------------------------ losses and selection
    def evaluate(self, w: np.ndarray, keep: float | None, lo, hi, full) -> tuple[float, list]:
        """Losses at ``w`` (kept); sort those that can hold VaR: the largest, until their units exceed
        ``keep`` (None: all).  Returns the smallest sorted loss (-inf when all are sorted) and the
        :meth:`bracket` replies for ``lo``, ``hi``."""
        loss = -matvec(self.R, w)
        self.loss = loss
        n = len(loss)
        top = None if keep is None else self._top(loss, keep)
        if top is None:
            order = np.argsort(loss, kind="stable")
        else:
            order = top[np.argsort(loss[top], kind="stable")]
        self.sv = loss[order]
        self.si = order
        units = self._units(order)
        self.cq = np.cumsum(units)
        total = float(n if self.q is None else self.q.sum())
        self.floor_n = n - len(order)
        self.floor_q = total - float(self.cq[-1]) if self.floor_n else 0.0
        cut = float(self.sv[0]) if self.floor_n else -np.inf
        return cut, self.bracket(lo, hi, full)

    def _top(self, loss: np.ndarray, keep: float) -> np.ndarray | None:
        """Indices of every scenario with a loss at or above a cut, holding more than ``keep`` units."""
        n = len(loss)
        if self.q is None:
            m = int(np.floor(keep)) + 1
        else:
            mean = float(self.q.sum()) / n
            m = int(np.ceil(keep / mean * 1.25)) + 1 if mean > 0 else n
        while m < n:
            cut = np.partition(loss, n - m)[n - m]
            top = np.flatnonzero(loss >= cut)
            if self.q is None or float(self.q[top].sum()) > keep:
                return top
            m *= 2
        return None

    def _count(self, v: float, g: int, side: str) -> int:
        """Sorted keys below ``(v, g)`` (side 'left') or at or below it (side 'right')."""
        sv, si = self.sv, self.si
        i0 = int(np.searchsorted(sv, v, "left"))
        i1 = int(np.searchsorted(sv, v, "right"))
        return i0 + int(np.searchsorted(si[i0:i1], g - self.offset, side))

    def bracket(self, lo, hi, full) -> list:
        """Per target ``j``, the sorted keys in ``(lo[j], hi[j]]`` (:class:`_Keys`): all of them when at
        most :data:`_FULL` (or ``full[j]``), else :data:`_PIVOTS` evenly spaced ones, the first and the
        last included."""
        out = []
        fq, fn = self.floor_q, self.floor_n
        for (lv, lg), (hv, hg), f in zip(lo, hi, full):
            a = self._count(lv, lg, "right")
            b = self._count(hv, hg, "right")
            m = b - a
            every = bool(f) or m <= _FULL
            if every:
                pos = np.arange(a, b)
            else:
                pos = np.unique(np.r_[a, a + (np.arange(1, _PIVOTS + 1) * m) // _PIVOTS - 1])
            cq = self.cq
            base = (fq + (float(cq[a - 1]) if a else 0.0), fn + a)
            top = (fq + (float(cq[b - 1]) if b else 0.0), fn + b)
            units = self._units(self.si[pos])
            out.append(_Keys(self.sv[pos], self.si[pos] + self.offset, fq + cq[pos], fn + pos + 1.0, units, base, top,
                             every))
        return out

    def keys_between(self, lo, hi) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys ``lo <= key < hi``: their losses and global indices."""
        a = self._count(*lo, "left")
        b = self._count(*hi, "left")
        return self.sv[a:b], self.si[a:b] + self.offset

    # ------------------------------------------------------------------ tail sums
    def tail_sums(self, var: float, exact_ties: bool) -> tuple:
        """Over the scenarios above VaR and those at VaR (equal losses with equal weights,
        ``core.measures.near`` otherwise, as :func:`portfolios._cvar_solver.tail`): units, ``sum q_s r_s
        [n]`` and ``sum q_s L_s``, in that order, above then at."""
        loss = self.loss
        tie = 0.0 if exact_ties else TIE_RTOL * abs(var)
        idx = np.flatnonzero(loss >= var - tie)
        ls = loss[idx]
        at = (ls == var) if exact_ties else (np.abs(ls - var) <= tie)
        above = (ls > var) & ~at
        ua, ut = self._units(idx[above]), self._units(idx[at])
        return (float(ua.sum()), float(ut.sum()), self._rows_sum(idx[above], ua), self._rows_sum(idx[at], ut),
                float(ua @ ls[above]), float(ut @ ls[at]))

    def _rows_sum(self, idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
        out = np.zeros(self.R.shape[1])
        for i in range(0, len(idx), _BLOCK):
            out += weights[i:i + _BLOCK] @ np.take(self.R, idx[i:i + _BLOCK], axis=0)  # take: faster than R[idx]
        return out

    # ------------------------------------------------------------------ groups
    def assign(self, bounds_v, bounds_g, segment_label, band_segment, band_g, band_label) -> None:
        """Initial groups from the sorted keys: segment ``k`` holds the keys from boundary ``k - 1``
        (inclusive) to boundary ``k``; its scenarios get ``segment_label[k]``, except those of
        ``band_segment``, which get one label each (``band_label`` of their global index in
        ``band_g``, sorted)."""
        p = np.array([self._count(v, g, "left") for v, g in zip(bounds_v, bounds_g)], dtype=np.int64)
        seg = np.searchsorted(p, np.arange(len(self.si)), side="right")
        lab = np.asarray(segment_label, dtype=np.int64)[seg]
        inband = seg == band_segment
        gidx = self.si[inband] + self.offset
        lab[inband] = np.asarray(band_label)[np.searchsorted(band_g, gidx)]
        gid = np.empty(len(self.si), dtype=np.int64)
        gid[self.si] = lab
        self.gid = gid
        self._drop_sorted()

    def group_sums(self, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        """Units ``[G]`` and ``sum q_s r_s [G, n]`` per group."""
        return self._sums(self.gid, np.arange(len(self.gid)), n_groups)

    def _sums(self, rows: np.ndarray, members: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        u = self._units(members)
        G = sp.csr_matrix((u, (rows, members)), shape=(m, self.R.shape[0]))
        return np.bincount(rows, weights=u, minlength=m), np.asarray(G @ self.R)

    def classify(self, w: np.ndarray, z: float, tol: float, n_groups: int) -> tuple:
        """Losses at ``w`` (kept); per group the scenarios above ``z + tol`` and below ``z - tol``, and
        ``sum q_s (L_s - z)^+``."""
        loss = -matvec(self.R, w)
        self.loss = loss
        gid = self.gid
        above = np.bincount(gid[loss > z + tol], minlength=n_groups)
        below = np.bincount(gid[loss < z - tol], minlength=n_groups)
        excess = np.maximum(loss - z, 0.0)
        return above, below, float(excess.sum() if self.q is None else self.q @ excess)

    def split(self, mixed: np.ndarray, z: float, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        """Split each group ``mixed[j]`` at ``z`` (losses of the last :meth:`classify`): the part above
        keeps its label, the part at or below becomes ``n_groups + j``.  Returns units ``[2m]`` and
        ``sum q_s r_s [2m, n]`` of the parts above (rows ``0..m-1``) and below (rows ``m..2m-1``)."""
        m = len(mixed)
        lookup = np.full(n_groups, -1, dtype=np.int64)
        lookup[mixed] = np.arange(m)
        jj = lookup[self.gid]
        members = np.flatnonzero(jj >= 0)
        j = jj[members]
        below = self.loss[members] <= z
        self.gid[members[below]] = n_groups + j[below]
        return self._sums(j + m * below, members, 2 * m)


# ---------------------------------------------------------------------------------------------- pools
class _LocalPool:
    """Chunks in this process, called one after the other."""

    def __init__(self, sources: Sequence[ChunkSource]):
        self.chunks = [_Chunk(s, i) for i, s in enumerate(sources)]

    def call(self, method: str, *args) -> list:
        return [getattr(c, method)(*args) for c in self.chunks]

    def close(self) -> None:
        self.chunks = []


class ScenarioChunks:
    """Scenario chunks held in memory by separate processes (or this one) for one or more solves.

    Parameters
    ----------
    sources : one entry per chunk, in scenario order: an array ``R [s, n]`` of scenario returns per unit
        weight; a tuple ``(R, p)`` with ``p [s]`` the probabilities of those scenarios in the whole set
        (all chunks together sum to 1; give probabilities for every chunk or for none, none meaning
        equal weights); or a callable without arguments that returns one of those, run where the chunk
        is held (so a large set can be generated or read there and never pass through the driver).
        Under Ray a callable must be picklable (``functools.partial`` of an importable function, e.g.
        ``partial(numpy.load, path)``).
    pool : None (the chunks live in this process and are called one after the other), or a factory
        ``pool(chunk_class, sources)`` of an object that holds one ``chunk_class(source, index)`` per
        source elsewhere, with ``call(method, *args) -> list`` (the method on every chunk, results in
        chunk order) and ``close()``: :func:`stressgrid.grid.actor_pool` puts each chunk in a Ray actor.
        ``portfolios`` knows nothing of Ray (docs/architecture.md).

    Attributes
    ----------
    n_scenarios, n_assets, n_chunks : sizes; ``rows`` ``[chunks]`` rows per chunk.
    weighted : whether probabilities were given.
    mean : ``[n]`` the probability-weighted mean scenario.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, sources: Sequence[ChunkSource], pool: Callable | None = None):
        sources = list(sources)
        if not sources:
            raise ConfigError("chunks: expected at least one chunk (got none)")
        self.pool = _LocalPool(sources) if pool is None else pool(_Chunk, sources)
        try:
            self._describe(self.pool.call("load"))
        except BaseException:
            self.close()
            raise

    def _describe(self, infos: list[dict]) -> None:
        cols = {i["cols"] for i in infos}
        if len(cols) > 1:
            first = infos[0]["cols"]
            k = next(k for k, i in enumerate(infos) if i["cols"] != first)
            raise ConfigError(f"chunks[{k}]: expected {first} columns as chunks[0] (got {infos[k]['cols']})")
        weighted = [i["weighted"] for i in infos]
        if any(weighted) and not all(weighted):
            k = weighted.index(not weighted[0])
            raise ConfigError(f"chunks[{k}]: give probabilities for every chunk or for none "
                              f"(chunks[0] {'has' if weighted[0] else 'has none'})")
        self.rows = np.array([i["rows"] for i in infos], dtype=np.int64)
        self.n_chunks = len(infos)
        self.n_scenarios = int(self.rows.sum())
        self.n_assets = int(infos[0]["cols"])
        self.weighted = bool(weighted[0])
        total = float(sum(i["mass"] for i in infos))
        if self.weighted and not np.isclose(total, 1.0, rtol=0, atol=1e-9):
            raise ConfigError(f"chunks: scenario probabilities must sum to 1 over all chunks (got {total!r})")
        #: units of one unit of probability: S with equal weights (one unit per scenario), else 1
        self.unit = float(self.n_scenarios) if not self.weighted else 1.0
        self.total_units = float(self.n_scenarios) if not self.weighted else total
        sumsq = float(sum(i["sumsq"] for i in infos))
        scale = float(np.sqrt(sumsq / (self.n_scenarios * self.n_assets)))
        self.scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        offsets = np.r_[0, np.cumsum(self.rows)[:-1]]
        self.mean = np.sum(self.pool.call("setup", offsets), axis=0) / self.unit

    def call(self, method: str, *args) -> list:
        """``[chunk.method(*args) for chunk in chunks]``, all chunks at once under Ray."""
        if self.pool is None:
            raise ConfigError("chunks: these ScenarioChunks were closed; open them again")
        return self.pool.call(method, *args)

    def peak_rss(self) -> list[int | None]:
        """Peak resident memory of each chunk's process, in bytes (this process's own for every chunk
        held here)."""
        return self.call("peak_rss")

    def close(self) -> None:
        """Release the chunks (kill the actors)."""
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __enter__(self) -> "ScenarioChunks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- driver
def _bounds(parts: list[_Keys], col: int) -> tuple:
    """Merge the bracket replies of all chunks for one target: the keys in order and, at each, lower and
    upper bounds on the cumulative units (``col`` 0) or counts (``col`` 1) of all chunks at or below it,
    plus the cumulative counts' lower bound (all exact when every chunk sent every key).

    A chunk that sent pivots is at least at its last pivot at or below the key and at most just below
    its first pivot above it."""
    v = np.concatenate([p.loss for p in parts])
    g = np.concatenate([p.index for p in parts])
    cid = np.concatenate([np.full(len(p.loss), c) for c, p in enumerate(parts)])
    order = np.lexsort((g, v))
    v, g, cid = v[order], g[order], cid[order]
    k = len(v)
    ar = np.arange(k)
    lb, ub, lbn = np.zeros(k), np.zeros(k), np.zeros(k)
    for c, p in enumerate(parts):
        own = cid == c
        # zeros: np.where below evaluates both branches, so the keys of the other chunks must hold numbers
        cum = np.zeros(k)
        cum_n = np.zeros(k)
        w = np.zeros(k)
        cum[own], cum_n[own] = (p.cum_units if col == 0 else p.cum_count), p.cum_count
        w[own] = p.units if col == 0 else 1.0
        last = np.maximum.accumulate(np.where(own, ar, -1))
        nxt = np.r_[np.minimum.accumulate(np.where(own, ar, k)[::-1])[::-1][1:], k]  # first own key after
        li, ni = np.maximum(last, 0), np.minimum(nxt, k - 1)
        lb += np.where(last >= 0, cum[li], p.base[col])
        lbn += np.where(last >= 0, cum_n[li], p.base[1])
        ub += np.where(nxt < k, cum[ni] - w[ni], p.top[col])
    return v, g, lb, ub, lbn


def _gt(v, g, key) -> np.ndarray:
    return (v > key[0]) | ((v == key[0]) & (g > key[1]))


def _select(chunks: ScenarioChunks, thetas: list[float], col: int, first: list | None = None,
            cut: float = -np.inf) -> list[tuple[float, int, int]]:
    """For each ``theta``, the smallest key ``(loss, global index)`` whose cumulative units (``col`` 0)
    or count (``col`` 1) over all chunks reaches ``theta``; returns ``(loss, index, position)``.

    ``first`` holds the chunks' replies for the whole range (from :meth:`_Chunk.evaluate`); ``cut`` is
    the largest loss below which some chunk left its keys unsorted (the answer is never below it).
    """
    T = len(thetas)
    floor = (cut, -1)
    lo, hi, full = [_NEG] * T, [_POS] * T, [False] * T
    replies = first if first is not None else chunks.call("bracket", lo, hi, full)
    answers: list = [None] * T
    todo = list(range(T))
    for _ in range(200):
        nxt = []
        for r, j in enumerate(todo):
            parts = [rep[r] for rep in replies]
            v, g, lb, ub, lbn = _bounds(parts, col)
            ok = _gt(v, g, floor) if np.isfinite(cut) else np.ones(len(v), bool)
            if all(p.every for p in parts):
                hit = np.flatnonzero(ok & (lb >= thetas[j]))
                if not len(hit) and hi[j] != _POS:  # pragma: no cover - the bracket lost its answer
                    raise RuntimeError("the distributed selection lost its target")
                i = int(hit[0]) if len(hit) else int(np.flatnonzero(ok)[-1])  # theta above the total
                answers[j] = (float(v[i]), int(g[i]), int(round(lbn[i])) - 1)
                continue
            old = (lo[j], hi[j])
            hit = np.flatnonzero(ok & (lb >= thetas[j]))
            if len(hit):
                hi[j] = (float(v[hit[0]]), int(g[hit[0]]))
            below = np.flatnonzero(ok & (ub < thetas[j]))
            if len(below):
                lo[j] = (float(v[below[-1]]), int(g[below[-1]]))
            if np.isfinite(cut) and not _gt(np.array([lo[j][0]]), np.array([lo[j][1]]), floor)[0]:
                lo[j] = floor
            if (lo[j], hi[j]) == old:
                full[j] = True  # no progress from the pivots: fetch the whole bracket
            nxt.append(j)
        if not nxt:
            return answers
        todo = nxt
        replies = chunks.call("bracket", [lo[j] for j in todo], [hi[j] for j in todo], [full[j] for j in todo])
    raise RuntimeError("the distributed selection did not converge")  # pragma: no cover


class DistributedCVaR(ExactCVaRBase):
    """Exact mean-CVaR over scenario chunks held apart (:class:`ScenarioChunks`); same problem, settings
    and result as :class:`portfolios.CutPlaneCVaR`.

    Parameters
    ----------
    system : compiled constraints (:func:`portfolios.compile_constraints`), or use :meth:`from_constraints`.
    alpha, tol, band, phase1_tol, phase1_max_iter, max_rounds, warm_phase1_iter : as
        :class:`portfolios.CutPlaneCVaR`.

    Examples
    --------
    >>> with ScenarioChunks([R1, R2, R3], pool=grid.actor_pool()) as chunks:   # doctest: +SKIP
    ...     sol = DistributedCVaR(compile_constraints(None, n), 0.95).solve(chunks)

    ``solve`` also takes the list of sources and holds them in this process for the one solve.
    """

    #: the constraints and current book the system was compiled from (:meth:`from_constraints`), for
    #: naming the binding family when a solve is infeasible
    constraints: Constraints | None = None
    current_weights: np.ndarray | None = None

    def __init__(self, system: LinearSystem, alpha: float, **kwargs):
        super().__init__(system, check_alpha(alpha), **kwargs)

    @classmethod
    def from_constraints(cls, constraints: Constraints | None, n_assets: int, alpha: float,
                         current_weights: np.ndarray | None = None, **kwargs) -> "DistributedCVaR":
        """Compile ``constraints`` for ``n_assets`` positions (and the current book ``[n_assets]``); an
        infeasible solve then names the binding family (:func:`portfolios.diagnose_infeasibility`)."""
        solver = cls(compile_constraints(constraints, n_assets, current_weights), alpha, **kwargs)
        solver.constraints = constraints
        solver.current_weights = current_weights
        return solver

    # ------------------------------------------------------------------ tail of a portfolio
    def _theta(self, chunks: ScenarioChunks) -> float:
        """Units at or below VaR: ``ceil(S (a - 1e-12))`` scenarios, or ``a - 1e-12`` of probability
        (:func:`core.measures.tail_weights`)."""
        if chunks.weighted:
            return self.alpha - 1e-12
        S = chunks.n_scenarios
        return float(min(max(int(np.ceil(S * (self.alpha - 1e-12))), 1), S))

    def _evaluate(self, chunks: ScenarioChunks, w: np.ndarray, keep_all: bool = False):
        """Losses at ``w`` in every chunk; returns VaR's key and position (the chunks keep the losses)."""
        theta = self._theta(chunks)
        keep = None
        if not keep_all:
            keep = chunks.total_units - theta
            keep = keep * (1.0 + 1e-9) + 1e-12 if chunks.weighted else keep
        first = chunks.call("evaluate", w, keep, [_NEG], [_POS], [False])
        cut = max(f[0] for f in first)
        return _select(chunks, [theta], 0, [f[1] for f in first], cut)[0]

    def _tail(self, chunks: ScenarioChunks, w: np.ndarray) -> tuple[float, float, np.ndarray]:
        """VaR, CVaR and ``sum_s t_s r_s [n]`` at weights ``w`` (``t``: tail probabilities summing to
        ``1 - a``), in the units of ``w`` times the returns."""
        var = self._evaluate(chunks, w)[0]
        parts = chunks.call("tail_sums", var, not chunks.weighted)
        u_above, u_at, r_above, r_at, l_above, l_at = (sum(x) for x in zip(*parts))
        # the tail takes everything above VaR and the rest of its 1 - a from the scenarios at VaR,
        # in proportion to their probabilities (core.measures.tail_weights)
        rest = max((1.0 - self.alpha) * chunks.unit - u_above, 0.0)
        f = rest / u_at if u_at > 0 else 0.0
        tr = (r_above + f * r_at) / chunks.unit
        return var, (l_above + f * l_at) / chunks.unit / (1.0 - self.alpha), tr

    def _oracle(self, chunks: ScenarioChunks):
        scale, c = chunks.scale, self.c

        def oracle(w):
            _, cv, tr = self._tail(chunks, w / scale)
            return cv, -c * tr / scale

        return oracle

    # ------------------------------------------------------------------ phase 2
    def _initial_groups(self, chunks: ScenarioChunks, w_s: np.ndarray) -> int:
        """Label the scenarios with the in-memory solver's initial partition at ``w_s`` (scaled weights):
        scenarios within ``band`` ranks of VaR one by one, then groups of 1, 2, 4, ... by rank away
        from it.  Returns the number of groups."""
        S = chunks.n_scenarios
        k = self._evaluate(chunks, w_s, keep_all=True)[2]
        b = self._band_size(S)
        lo, hi = max(0, k - b), min(S, k + b + 1)
        segments = [(lo, hi)]
        i, size = hi, 1
        while i < S:
            segments.append((i, min(i + size, S)))
            i += size
            size *= 2
        i, size = lo, 1
        while i > 0:
            segments.append((max(0, i - size), i))
            i -= size
            size *= 2
        # labels in the in-memory order: the band's scenarios, the groups above, the groups below
        n_band = hi - lo
        labels = {seg: n_band + j for j, seg in enumerate(segments[1:])}
        ordered = sorted(segments)
        starts = [s for s, _ in ordered[1:]]
        keys = _select(chunks, [s + 1.0 for s in starts], 1) if starts else []
        band_seg = ordered.index((lo, hi))
        key_at = dict(zip(starts, keys))
        band_lo = (key_at[lo][0], key_at[lo][1]) if lo > 0 else _NEG
        band_hi = (key_at[hi][0], key_at[hi][1]) if hi < S else _POS
        members = chunks.call("keys_between", band_lo, band_hi)
        bv = np.concatenate([m[0] for m in members])
        bg = np.concatenate([m[1] for m in members])
        rank = np.empty(len(bv), dtype=np.int64)
        rank[np.lexsort((bg, bv))] = np.arange(len(bv))
        order = np.argsort(bg)
        segment_label = [labels.get(seg, -1) for seg in ordered]
        chunks.call("assign", [kk[0] for kk in keys], [kk[1] for kk in keys], segment_label, band_seg,
                    bg[order], rank[order])
        return n_band + len(segments) - 1

    # ------------------------------------------------------------------ public
    def solve(
        self,
        chunks: ScenarioChunks | Sequence[ChunkSource],
        *,
        objective: str = "min_cvar",
        cvar_budget: float | None = None,
        expected_returns: np.ndarray | None = None,
        start: np.ndarray | None = None,
    ) -> CVaRSolution:
        """Solve over the chunks.

        Parameters
        ----------
        chunks : a :class:`ScenarioChunks` (left open), or a list of chunk sources held in this process
            for this solve.
        objective : ``"min_cvar"`` or ``"max_return"`` (needs ``cvar_budget``, in the units of the returns).
        expected_returns : ``[n]`` for ``max_return`` (default: the probability-weighted mean scenario).
        start : weights to start from (default: the previous solution, else the L1-closest feasible
            point to the current book of :meth:`from_constraints`, else to equal weights).

        Returns
        -------
        :class:`portfolios.CVaRSolution` (``groups`` empty: the partition stays in the chunks).

        Raises
        ------
        ConfigError for bad input; InfeasibleError when no portfolio meets the constraints (or the CVaR
        budget).
        """
        if objective not in ("min_cvar", "max_return"):
            raise ConfigError(f"objective: expected one of ['min_cvar', 'max_return'] (got {objective!r})")
        if objective == "max_return" and (cvar_budget is None or not np.isfinite(float(cvar_budget))):
            raise ConfigError("cvar_budget: a finite number is required when objective='max_return' "
                              f"(got {cvar_budget!r})")
        own = not isinstance(chunks, ScenarioChunks)
        held = ScenarioChunks(chunks) if own else chunks
        try:
            if held.n_assets != self.system.n:
                raise ConfigError(f"chunks: expected {self.system.n} columns, one per position (got {held.n_assets})")
            with threadpool_limits(limits=1, user_api="blas"):
                return self._solve(held, objective, cvar_budget, expected_returns, start)
        except _Infeasible as exc:
            raise self._infeasible(exc.status, objective) from None
        finally:
            if own:
                held.close()

    def _infeasible(self, status: str, objective: str) -> StressGridError:
        if status == "unbounded":
            return ConfigError("constraints: the problem is unbounded (no limit on the weights); set lower/upper "
                               "bounds or max_gross")
        if self.constraints is not None or self.current_weights is not None:
            diag = diagnose_infeasibility(self.constraints, self.system.n, self.current_weights)
            if not diag.feasible:
                return InfeasibleError(diag.message)
        if objective == "max_return":
            return InfeasibleError(f"infeasible: the cvar_budget cannot be met under the constraints; "
                                   f"{RELAX_HINT['cvar_budget']}")
        return InfeasibleError(f"infeasible: no portfolio meets the constraints (solver status {status}); "
                               "check them with portfolios.diagnose_infeasibility")

    def _solve(self, chunks: ScenarioChunks, objective, cvar_budget, expected_returns, start) -> CVaRSolution:
        sysm = self.system
        n = sysm.n
        scale = chunks.scale
        cost_s = sysm.cost / scale
        x0, warm = self._start(self.current_weights if start is None else start)
        cap = self._cap(chunks.n_scenarios, warm)
        oracle = self._oracle(chunks)
        maximise = objective == "max_return"
        mu = mu_s = budget_s = None
        if maximise:
            mu = chunks.mean if expected_returns is None else np.asarray(expected_returns, float)
            if mu.shape != (n,):
                raise ConfigError(f"expected_returns: expected {n} values (got shape {mu.shape})")
            mu_s = mu / scale
            budget_s = float(cvar_budget) / scale
            x1, n_cuts = self._phase1_max(oracle, mu_s, cost_s, budget_s, x0, cap)
        else:
            x1, n_cuts = self._phase1_min(oracle, cost_s, x0, cap)
        n_groups = self._initial_groups(chunks, x1[:n] / scale)
        lp = GroupLP(sysm, self.c, cost_s, mu_s, budget_s)
        groups = _ChunkGroups(chunks, self.c, n_groups)
        lp.add(*groups.sums())
        status, x, zval, lp_obj, rounds = self._phase2(lp, groups, cost_s, budget_s)
        if status != "optimal" and x is None:
            raise _Infeasible(status)
        w = x[:n].copy()
        var, cvar, _ = self._tail(chunks, w)
        er = float((chunks.mean if mu is None else mu) @ w)
        penalty = float(sysm.cost @ sysm.complete(w))
        if maximise:
            objv, bound = er - penalty, -lp_obj * scale
        else:
            objv, bound = cvar + penalty, lp_obj * scale
        self._last_x = x.copy()
        return CVaRSolution(weights=w, x=x, status=status, objective=objv, cvar=cvar, var=var,
                            expected_return=er, bound=bound, n_cuts=n_cuts, n_rounds=rounds,
                            n_groups=groups.n_groups, groups=[])


class _ChunkGroups:
    """The phase-2 partition as labels held by the chunks (the holder :meth:`ExactCVaRBase._phase2` needs)."""

    def __init__(self, chunks: ScenarioChunks, c: float, n_groups: int):
        self.chunks, self.c, self.n_groups = chunks, c, n_groups

    def _means(self, parts: list) -> tuple[np.ndarray, np.ndarray]:
        units = np.sum([u for u, _ in parts], axis=0)
        sums = np.sum([r for _, r in parts], axis=0)
        means = np.divide(sums, units[:, None], out=np.zeros_like(sums), where=units[:, None] > 0)
        return units / self.chunks.unit, means / self.chunks.scale

    def sums(self) -> tuple[np.ndarray, np.ndarray]:
        return self._means(self.chunks.call("group_sums", self.n_groups))

    def classify(self, w: np.ndarray, z: float, tol: float) -> tuple[np.ndarray, float]:
        parts = self.chunks.call("classify", w / self.chunks.scale, z, tol, self.n_groups)
        above, below, excess = (sum(x) for x in zip(*parts))
        mixed = np.flatnonzero((above > 0) & (below > 0))
        cv = z + self.c * excess / self.chunks.unit
        return mixed, cv

    def split(self, mixed: np.ndarray, z: float, lp: GroupLP) -> None:
        parts = self.chunks.call("split", mixed, z, self.n_groups)
        lp.split(mixed, *self._means(parts))
        self.n_groups += len(mixed)
