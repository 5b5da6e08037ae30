"""Revalue a whole book under a chunk of scenarios: one vectorised kernel call per instrument type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd

from stressgrid.core import DataError, fx_factor

from ._x64 import require_x64
from ._linear import LinearBook, linear_pnl, linear_pnl_numpy, linear_pnl_one

__all__ = ["PreparedBook", "Pricer", "PRICERS", "register", "required_factors", "prepare", "check_levels", "revalue", "revalue_numpy", "shocked_levels", "preferred_order"]


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
    pnl_into : (arrays, base[F], new[S, F], out[S, n]) -> out: ``pnl`` written into ``out``, for
        kernels that can write it without an intermediate array (the option kernel, whose values are
        held scenario-contiguous, writes a Fortran-ordered ``out`` in one pass); optional
    mark : (arrays, L[S, F]) -> ``[S, n]`` numpy: each position's mark in base currency, such that the
        P&L between two books of the same positions at the same levels (today's and the one valued at
        a horizon, :func:`kernels.age`) is the difference of their marks (the value; for futures settled
        daily, ``units x price x FX``); needed to value a book at a horizon
    age : (positions, idx, base_ccy, as_of, at, base[F]) -> ``[(mask, pricer, arrays), ...]``: the
        positions valued at the later date ``at``, split into groups (e.g. options that expire before
        ``at`` settle into a group of their own; ``mask`` selects the rows of ``positions`` of each);
        optional, default ``build`` at ``at``
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


def revalue_groups(book: PreparedBook, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Full-revaluation P&L per instrument group: ``[(columns, pnl [S, len(columns)]), ...]`` in the
    book's group order; positions without a pricer are in no group (their P&L is 0).

    For callers that only aggregate the P&L (totals, sums by group): it skips the copy of every group
    into the book's column order that :func:`revalue` makes.
    """
    require_x64("stressgrid.kernels.revalue")
    new = jnp.asarray(shocked_levels(base, shocks, is_log))
    base_j = jnp.asarray(base)
    # dispatch every group first (JAX runs them asynchronously unless async dispatch is off), then wait
    pending = [(g.columns, g.pricer.pnl(g.arrays, base_j, new)) for g in book.groups]
    if book.offset is None:
        return [(np.asarray(cols), np.asarray(pnl)) for cols, pnl in pending]
    return [(np.asarray(cols), np.asarray(pnl) + book.offset[cols]) for cols, pnl in pending]


def revalue(book: PreparedBook, base: np.ndarray, shocks: np.ndarray, is_log: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Full-revaluation P&L ``[S, n]`` (base currency); unpriced positions are 0 (see ``book.priced``).

    ``out``, if given, is a float array ``[S, n]`` (e.g. rows of a larger chunk) that receives the
    P&L and is returned.
    """
    if out is None:
        out = np.empty((shocks.shape[0], book.n))
    new = jnp.asarray(shocked_levels(base, shocks, is_log))
    base_j = jnp.asarray(base)
    covered = np.zeros(book.n, dtype=bool)
    direct = [g for g in book.groups if g.pricer.pnl_into is not None]
    # dispatch the other groups first (JAX runs them asynchronously unless async dispatch is off)
    pending = [(g.columns, g.pricer.pnl(g.arrays, base_j, new)) for g in book.groups if g.pricer.pnl_into is None]
    for g in direct:
        if _contiguous(g.columns):  # straight into out's columns
            g.pricer.pnl_into(g.arrays, base_j, new, out[:, g.columns[0] : g.columns[-1] + 1])
        else:  # into an array of out's memory order, then copied to the scattered columns
            tmp = np.empty((out.shape[0], len(g.columns)), order="F" if out.strides[0] == out.itemsize else "C")
            place(out, g.columns, g.pricer.pnl_into(g.arrays, base_j, new, tmp))
        covered[g.columns] = True
    for cols, pnl in pending:
        place(out, cols, np.asarray(pnl))
        covered[cols] = True
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
