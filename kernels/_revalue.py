"""Revalue a whole book under a chunk of scenarios: one vectorised kernel call per instrument type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import DataError, fx_factor

from . import _tuning as tuning
from ._x64 import require_x64
from ._linear import LinearBook, linear_pnl, linear_pnl_numpy, linear_pnl_one

__all__ = ["PreparedBook", "Pricer", "PRICERS", "register", "required_factors", "prepare", "check_levels", "revalue", "revalue_numpy", "call_rows", "shocked_levels", "preferred_order"]


def _registered_pricer(types: tuple[str, ...]) -> "Pricer":
    pricer = PRICERS.get(types[0])
    if pricer is None or pricer.types != types:
        raise KeyError(f"no registered pricer for instrument types {types}")
    return pricer


@dataclass(frozen=True)
class Pricer:
    """How one instrument family is priced.

    factors : positions DataFrame, base currency -> list of factor names per position
    build : positions DataFrame, factor index, base currency, as-of date -> struct-of-arrays (NamedTuple)
    pnl : (arrays, base[F], new[S, F]) -> P&L ``[S, n]`` (a JAX array, or for the hand-batched kernels
        a Fortran-ordered numpy view of their ``[n, S]`` result)
    pnl_numpy : the plain numpy twin of ``pnl``
    pnl_one : (one row of arrays, base[F], new[F]) -> scalar P&L, the unbatched kernel that ``pnl``
        vmaps (used for sensitivities by automatic differentiation); None if not available
    check : (arrays, base[F], ids[n], factors[F]) -> None, raises :class:`core.DataError` for market
        levels the instruments cannot be priced at (e.g. a non-positive implied vol); optional
    rows : arrays -> the struct-of-arrays with one row per instrument that ``pnl_one`` is vmapped
        over, where ``arrays`` also carry data of the whole book (e.g. the packed cash flows of
        ``_flows.py``); optional, default the arrays themselves
    pnl_into : (arrays, base[F], new[S, F], out[m, n]) -> out: ``pnl`` of the first ``m <= S`` rows
        written into ``out``, for kernels that can write it without an intermediate array (the option
        kernel, whose values are held scenario-contiguous, writes a Fortran-ordered ``out`` in one
        pass); when ``m < S``, row ``m`` of ``new`` must be the base levels (the padding of a
        fixed-size call), as the kernel takes its values as the base; optional
    mark : (arrays, L[S, F]) -> ``[S, n]`` numpy: each position's mark in base currency, such that the
        P&L between two books of the same positions at the same levels (today's and the one valued at
        a horizon, :func:`kernels.age`) is the difference of their marks (the value; for futures settled
        daily, ``units x price x FX``); needed to value a book at a horizon
    age : (positions, idx, base_ccy, as_of, at, base[F], pack=True) -> ``[(mask, pricer, arrays), ...]``:
        the positions valued at the later date ``at``, split into groups (e.g. options that expire before
        ``at`` settle into a group of their own; ``mask`` selects the rows of ``positions`` of each);
        with ``pack`` False the arrays may leave a packed layout unbuilt, for a caller that packs the
        days of a path together (:func:`kernels.path_book`); optional, default ``build`` at ``at``
    """

    types: tuple[str, ...]
    factors: Callable[[pd.DataFrame, str], list[list[str]]]
    build: Callable[[pd.DataFrame, dict[str, int], str, pd.Timestamp], NamedTuple]
    pnl: Callable
    pnl_numpy: Callable
    pnl_one: Callable | None = None
    check: Callable | None = None
    rows: Callable | None = None
    pnl_into: Callable | None = None
    mark: Callable | None = None
    age: Callable | None = None

    def __reduce__(self):
        # Pickle a registered pricer as a reference to the registry of the process that loads it.  Its
        # functions are closures over jitted programs; shipped by value (as Ray would), every task
        # would get fresh jit objects with empty caches and recompile its kernels on every chunk.
        return (_registered_pricer, (self.types,))


def _linear_factors(df: pd.DataFrame, base_ccy: str) -> list[list[str]]:
    out = []
    for und, ccy in zip(df["underlying"], df["currency"]):
        fx = fx_factor(ccy, base_ccy)
        out.append([und] + ([fx] if fx else []))
    return out


def _linear_build(df: pd.DataFrame, idx: dict[str, int], base_ccy: str, as_of: pd.Timestamp) -> LinearBook:
    fx_idx = []
    for ccy in df["currency"]:
        fx = fx_factor(ccy, base_ccy)
        fx_idx.append(-1 if fx is None else idx[fx])
    return LinearBook(
        price_idx=np.array([idx[u] for u in df["underlying"]], dtype=np.int64),
        fx_idx=np.array(fx_idx, dtype=np.int64),
        units=(df["quantity"] * df["multiplier"]).to_numpy(dtype=float),
        funded=(df["type"] == "equity").to_numpy(),
    )


#: instrument type -> pricer; a type absent here is reported as not priced
PRICERS: dict[str, Pricer] = {}


def register(pricer: Pricer) -> None:
    for t in pricer.types:
        PRICERS[t] = pricer


def _linear_mark(b: LinearBook, L) -> np.ndarray:
    L = np.atleast_2d(np.asarray(L, dtype=float))
    fx = np.where(b.fx_idx >= 0, L[:, np.maximum(b.fx_idx, 0)], 1.0)
    return b.units * L[:, b.price_idx] * fx


register(Pricer(("equity", "equity_future"), _linear_factors, _linear_build, linear_pnl, linear_pnl_numpy, linear_pnl_one,
                mark=_linear_mark))


class _Group(NamedTuple):
    pricer: Pricer
    columns: np.ndarray  # positions of this group in the book order
    arrays: NamedTuple


@dataclass(frozen=True)
class PreparedBook:
    """A book turned into per-pricer struct-of-arrays on a fixed factor order.

    n : number of positions; priced : bool ``[n]``; unpriced_types : types without a pricer;
    ids : position ids ``[n]`` (for messages).  A book valued at a horizon (:func:`kernels.age`) also
    has ``horizon_days`` (business days after the as-of date), ``at`` (that date), ``horizon_years``
    (Actual/365 from the as-of date to ``at``) and ``offset``
    ``[n]``, the P&L of the time that passes at unchanged factor levels, which every revaluation adds:
    its P&L is the value at ``at`` under the shocked levels, plus the cash paid meanwhile, less today's
    value at the base levels.
    """

    n: int
    factors: tuple[str, ...]
    groups: tuple[_Group, ...]
    priced: np.ndarray
    unpriced_types: tuple[str, ...] = field(default=())
    ids: tuple[str, ...] = field(default=())
    offset: np.ndarray | None = None
    horizon_days: int = 0
    at: pd.Timestamp | None = None
    horizon_years: float = 0.0


def required_factors(positions: pd.DataFrame, base_ccy: str) -> list[str]:
    """Every factor the priced positions of the book need, in first-use order."""
    out: list[str] = []
    for pricer in {id(p): p for p in PRICERS.values()}.values():
        sub = positions[positions["type"].isin(pricer.types)]
        if len(sub):
            for fs in pricer.factors(sub, base_ccy):
                out.extend(fs)
    return list(dict.fromkeys(out))


def prepare(
    positions: pd.DataFrame,
    factors: tuple[str, ...],
    base_ccy: str,
    as_of: pd.Timestamp,
    levels: np.ndarray | None = None,
) -> PreparedBook:
    """Group positions by pricer and build their arrays against the factor order ``factors``.

    With the snapshot's ``levels[F]``, also check that every instrument can be priced at them (e.g.
    that the vol surface gives each option a positive implied vol); see :func:`check_levels`.
    """
    require_x64("stressgrid.kernels.prepare")
    idx = {f: i for i, f in enumerate(factors)}
    missing = [f for f in required_factors(positions, base_ccy) if f not in idx]
    if missing:
        raise DataError(f"book needs factor(s) {', '.join(missing)} that the market snapshot lacks")
    groups = []
    priced = np.zeros(len(positions), dtype=bool)
    seen: dict[int, Pricer] = {id(p): p for p in PRICERS.values()}
    for pricer in seen.values():
        mask = positions["type"].isin(pricer.types).to_numpy()
        if mask.any():
            cols = np.flatnonzero(mask)
            groups.append(_Group(pricer, cols, pricer.build(positions.iloc[cols], idx, base_ccy, pd.Timestamp(as_of))))
            priced |= mask
    unpriced = tuple(sorted(set(positions.loc[~priced, "type"])))
    book = PreparedBook(len(positions), tuple(factors), tuple(groups), priced, unpriced, tuple(positions["id"]))
    if levels is not None:
        check_levels(book, levels)
    return book


def check_levels(book: PreparedBook, levels: np.ndarray) -> None:
    """Raise :class:`core.DataError` naming the position and field if an instrument cannot be
    priced at the market levels ``levels[F]`` (e.g. a non-positive implied vol)."""
    levels = np.asarray(levels, dtype=float)
    for g in book.groups:
        if g.pricer.check is not None:
            ids = [book.ids[i] for i in g.columns] if book.ids else [str(i) for i in g.columns]
            g.pricer.check(g.arrays, levels, ids, book.factors)


def shocked_levels(base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray) -> np.ndarray:
    """``base * exp(s)`` for log factors, ``base + s`` otherwise; ``[S, F]``."""
    base = np.asarray(base, dtype=float)
    shocks = np.asarray(shocks, dtype=float)
    is_log = np.asarray(is_log, dtype=bool)
    new = base + shocks
    if is_log.any():  # exponentials only where they are used
        new[..., is_log] = base[is_log] * np.exp(shocks[..., is_log])
    return new


def call_rows(n_positions: int, n_factors: int) -> int:
    """Scenarios of one compiled kernel call for a book of ``n_positions`` on ``n_factors`` factors.

    The largest power of two ``B`` with ``B x max(positions, factors)`` at most
    :data:`kernels._tuning.CALL_CELLS`, within :data:`kernels._tuning.CALL_ROWS`, less one: the base
    levels, which the batched kernels evaluate after the scenarios, then take the last column of the
    last pass of their compiled loop instead of a pass of their own (``kernels._edge.blocks_with_base``).

    :func:`revalue` and :func:`revalue_groups` run every call at this size (fewer scenarios are padded
    with unshocked rows, more are split), so that a book's kernels compile once per process, whatever
    the sizes of the scenario sets a run revalues, instead of once per size: compiling is most of the
    kernels' time in a run of a few thousand scenarios.  A larger set of ``2^k - 1`` rows (below the
    upper bound) is one call of its own size: its caller chose that size for its calls.
    """
    width = max(int(n_positions), int(n_factors), 1)
    lo, hi = tuning.CALL_ROWS
    return int(np.clip(2 ** int(np.floor(np.log2(max(tuning.CALL_CELLS // width, 1)))), lo, hi)) - 1


def _calls(book: PreparedBook, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray):
    """``(a, b, base, new)`` of each fixed-size call over rows ``[a, b)`` of ``shocks``: the shocked
    levels of those rows, then unshocked rows (exactly the base levels) up to :func:`call_rows`."""
    require_x64("stressgrid.kernels.revalue")
    shocks = np.asarray(shocks, dtype=float)
    S, F = shocks.shape
    P = call_rows(book.n, F)
    if P < S < tuning.CALL_ROWS[1] and (S + 1) & S == 0:
        # a set already sized as a call (2^k - 1 rows, as revalue_stream's chunks are): one call as it is;
        # a 2,000-option book revalued 2,047 rows 25-30% faster in one call than in four of 511
        P = S
    base_j = jnp.asarray(base)
    for a in range(0, S, P):
        b = min(a + P, S)
        rows = shocks[a:b] if b - a == P else np.concatenate([shocks[a:b], np.zeros((P - (b - a), F))])
        yield a, b, base_j, jnp.asarray(shocked_levels(base, rows, is_log))


def revalue_groups(book: PreparedBook, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Full-revaluation P&L per instrument group: ``[(columns, pnl [S, len(columns)]), ...]`` in the
    book's group order; positions without a pricer are in no group (their P&L is 0).

    For callers that only aggregate the P&L (totals, sums by group): it skips the copy of every group
    into the book's column order that :func:`revalue` makes.  The kernels run in calls of
    :func:`call_rows` scenarios; a set that fills one call returns the kernels' arrays without a copy.
    """
    parts: list[list] = [[] for _ in book.groups]
    for a, b, base_j, new in _calls(book, base, shocks, is_log):
        # dispatch every group first (JAX runs them asynchronously unless async dispatch is off), then wait
        pending = [g.pricer.pnl(g.arrays, base_j, new) for g in book.groups]
        for part, pnl in zip(parts, pending):
            part.append(np.asarray(pnl)[: b - a])
    out = []
    for g, part in zip(book.groups, parts):
        pnl = part[0] if len(part) == 1 else (np.concatenate(part) if part else np.zeros((0, len(g.columns))))
        out.append((np.asarray(g.columns), pnl if book.offset is None else pnl + book.offset[g.columns]))
    return out


def revalue(book: PreparedBook, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Full-revaluation P&L ``[S, n]`` (base currency); unpriced positions are 0 (see ``book.priced``).

    ``out``, if given, is a float array ``[S, n]`` (e.g. rows of a larger chunk) that receives the
    P&L and is returned.  The kernels run in calls of :func:`call_rows` scenarios.
    """
    if out is None:
        out = np.empty((np.shape(shocks)[0], book.n))
    covered = np.zeros(book.n, dtype=bool)
    for g in book.groups:
        covered[g.columns] = True
    direct = [g for g in book.groups if g.pricer.pnl_into is not None]
    for a, b, base_j, new in _calls(book, base, shocks, is_log):
        rows = out[a:b]
        # dispatch the other groups first (JAX runs them asynchronously unless async dispatch is off)
        pending = [(g.columns, g.pricer.pnl(g.arrays, base_j, new)) for g in book.groups if g.pricer.pnl_into is None]
        for g in direct:  # the rows of ``new`` after b - a are unshocked: pnl_into takes the first as the base
            if _contiguous(g.columns):  # straight into out's columns
                g.pricer.pnl_into(g.arrays, base_j, new, rows[:, g.columns[0] : g.columns[-1] + 1])
            else:  # into an array of out's memory order, then copied to the scattered columns
                tmp = np.empty((b - a, len(g.columns)), order="F" if out.strides[0] == out.itemsize else "C")
                place(rows, g.columns, g.pricer.pnl_into(g.arrays, base_j, new, tmp))
        for cols, pnl in pending:
            place(rows, cols, np.asarray(pnl)[: b - a])
    if not covered.all():
        out[:, ~covered] = 0.0
    if book.offset is not None:
        out += book.offset
    return out


def _contiguous(cols: np.ndarray) -> bool:
    return bool(len(cols)) and cols[-1] - cols[0] + 1 == len(cols)


def preferred_order(book: PreparedBook) -> str:
    """``"F"`` when every instrument group of ``book`` writes a Fortran-ordered P&L array fastest
    (see ``Pricer.pnl_into``), else ``"C"``: the memory order for an ``out`` given to :func:`revalue`."""
    return "F" if book.groups and all(g.pricer.pnl_into is not None for g in book.groups) else "C"


def place(out: np.ndarray, cols: np.ndarray, pnl: np.ndarray) -> None:
    """``out[:, cols] = pnl``, as a slice when ``cols`` is increasing and contiguous."""
    if _contiguous(cols):
        out[:, cols[0] : cols[-1] + 1] = pnl
    else:
        out[:, cols] = pnl


def revalue_numpy(book: PreparedBook, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray) -> np.ndarray:
    """The same as :func:`revalue` through every pricer's numpy twin."""
    new = shocked_levels(base, shocks, is_log)
    out = np.zeros((shocks.shape[0], book.n))
    for g in book.groups:
        out[:, g.columns] = g.pricer.pnl_numpy(g.arrays, base, new)
    if book.offset is not None:
        out += book.offset
    return out
