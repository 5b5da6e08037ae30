"""The edge: a kernel written for one instrument under one scenario, batched with ``vmap`` and ``jit``.

A kernel is two pure functions of one instrument (a row of the struct-of-arrays book):

``state(inst, L[F]) -> pytree``
    what the instrument's P&L needs from one set of factor levels: its value in the base currency,
    or for a daily-settled future its price and FX rate;
``combine(inst, s0, s1) -> scalar``
    the P&L from the base state ``s0`` to the shocked state ``s1``.

The batched P&L evaluates ``state`` on the base levels and every scenario's levels *in one array*
(``[1 + S, F]``), so the base and a zero-shocked scenario go through the identical compiled code
and a zero shock gives exactly zero P&L, bit for bit.  The compiled program depends only on the
shapes of the book and the scenario chunk: once per instrument type and chunk shape (one shape per
book: :func:`kernels.call_rows`).

The batched kernels of the two heaviest types (bonds and swaps, options) are written by hand over
the whole book instead (``_flows.py``, ``_options.py``): their arrays hold the scenarios on the
minor, contiguous axis, ``[instrument, scenario]``, so that every fused loop of XLA runs over
contiguous memory and is vectorised across scenarios, in blocks of a few dozen scenarios that stay
in cache (:func:`blocks_with_base`, :func:`fill_blocks`).  Their ``state`` and ``combine`` are the
same two steps: values, then the difference of stored values (:func:`block_differences` or
:func:`write_block_differences`).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import _tuning as tuning

__all__ = [
    "make_kernel",
    "numpy_pnl",
    "value_diff",
    "block_differences",
    "write_block_differences",
    "blocks_with_base",
    "fill_blocks",
    "values_width",
]


def value_diff(inst, s0, s1):
    """``combine`` of instruments whose P&L is the change in value."""
    return s1 - s0


def settled_diff(inst, s0, s1):
    """Daily-settled futures: ``units * (F' - F) * X'`` from states ``(price, fx)``."""
    return inst.units * (s1[0] - s0[0]) * s1[1]


def make_kernel(state: Callable, combine: Callable = value_diff) -> tuple[Callable, Callable]:
    """``(pnl_one, pnl)``: the one-instrument P&L ``pnl_one(inst, base[F], new[F])`` and its batch
    ``pnl(book, base[F], new[S, F]) -> [S, n]`` (two jitted programs: states, then combine)."""

    def pnl_one(inst, base, new):
        return combine(inst, state(inst, base), state(inst, new))

    over_instruments = jax.vmap(state, in_axes=(0, None))
    over_levels = jax.vmap(over_instruments, in_axes=(None, 0))
    comb = jax.vmap(jax.vmap(combine, in_axes=(0, 0, 0)), in_axes=(None, None, 0))

    @jax.jit
    def states(book, base, new):
        return over_levels(book, jnp.concatenate([base[None, :], new], axis=0))  # leaves [1 + S, n]

    @jax.jit
    def combine_states(book, st):
        s0 = jax.tree_util.tree_map(lambda a: a[0], st)
        s1 = jax.tree_util.tree_map(lambda a: a[1:], st)
        return comb(book, s0, s1)

    def pnl(book, base, new):
        # Two programs on purpose: fused into one, XLA recomputes the base row inside the consumer
        # and the compiler may contract ``a * b - c * d`` into a fused multiply-add, so that a zero
        # shock leaves a rounding residue.  Materialising the states makes ``s1 - s0`` exact.
        return combine_states(book, states(book, base, new))

    return pnl_one, pnl


def numpy_pnl(state_np: Callable, combine: Callable, book, base: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The numpy twin of a kernel's batch: ``state_np(book, L[1 + S, F])`` gives leaves ``[1 + S, n]``."""
    levels = np.concatenate([np.asarray(base, dtype=float)[None, :], np.asarray(new, dtype=float)], axis=0)
    st = state_np(book, levels)
    s0 = jax.tree_util.tree_map(lambda a: a[:1], st)
    s1 = jax.tree_util.tree_map(lambda a: a[1:], st)
    return combine(book, s0, s1)


def blocks_with_base(base, new, block: int):
    """Levels as blocks ``[nb, F, block]``, scenarios on the minor axis: the rows of ``new[S, F]`` in
    order, then the ``base`` levels in every column left (at least one: ``nb = ceil((S + 1) / block)``).

    Column ``S`` is the base, so that a call whose scenarios leave room in their last block (``S``
    not a multiple of ``block``, e.g. ``2^k - 1`` scenarios) gets the base values in that block's
    padding instead of a block of its own."""
    S, F = new.shape
    nb = -(-(S + 1) // block)
    L = jnp.concatenate([new, jnp.broadcast_to(base, (nb * block - S, F))])
    return L.reshape(nb, block, F).transpose(0, 2, 1)


def fill_blocks(value: Callable, xs: tuple, buffer, block: int):
    """``buffer[:, i block : (i + 1) block] = value(*(x[i] for x in xs))`` for every block ``i``: a loop
    of the compiled program (one block's arrays stay in cache), each block written in place into the
    instrument-major ``buffer [n, nb block]``.  Every block runs the same loop body, so equal levels
    give equal values bit for bit whichever block they are in."""

    def body(i, out):
        v = value(*(jax.lax.dynamic_index_in_dim(x, i, keepdims=False) for x in xs))
        return jax.lax.dynamic_update_slice(out, v, (0, i * block))

    return jax.lax.fori_loop(0, xs[0].shape[0], body, buffer)


def values_width(rows: int, block: int) -> int:
    """Columns of the values of :func:`blocks_with_base` for ``rows`` scenarios: ``nb block``, with
    ``nb = ceil((rows + 1) / block)`` (the scenarios, then the base)."""
    return -(-(rows + 1) // block) * block


@partial(jax.jit, static_argnames=("rows",))
def _block_differences(values, rows: int):
    return values[:, :rows] - values[:, rows : rows + 1]


def block_differences(values, rows: int):
    """P&L ``[rows, n]`` from values ``[n, W]`` whose columns ``0 .. rows - 1`` are at each scenario's
    levels and column ``rows`` at the base levels (:func:`blocks_with_base`).

    A program of its own, so that ``V' - V`` subtracts stored values: fused with the program that
    computes them, XLA may contract the last product and the subtraction into one fused multiply-add,
    and a zero shock would leave a rounding residue.
    The difference is computed as ``[n, rows]``, contiguous in the scenarios like the values, and
    returned transposed: as a Fortran-ordered numpy view when ``values`` is concrete (no copy; numpy
    reductions and matrix products take it as it is), as a JAX transpose under tracing.
    """
    d = _block_differences(values, rows)
    if isinstance(d, jax.core.Tracer):
        return d.T
    return np.asarray(d).T


def write_block_differences(values, out: np.ndarray) -> np.ndarray:
    """Write into ``out[S, n]`` the P&L of :func:`block_differences` and return ``out``.

    numpy subtracts the stored base values straight into ``out``, with no intermediate array.  When
    ``out`` holds each instrument's scenarios contiguously (a Fortran-ordered array, or columns of
    one) this is one pass over memory.  A C-ordered ``out`` is written in tiles of
    :data:`kernels._tuning.TRANSPOSE_TILE` instruments, so that the rows being read stay in cache.
    """
    v = np.asarray(values)
    rows = out.shape[0]
    base = v[:, rows : rows + 1].T
    if out.strides[0] == out.itemsize or rows == 1 or not tuning.TRANSPOSE_TILE:
        np.subtract(v[:, :rows].T, base, out=out)
    else:
        for j in range(0, out.shape[1], tuning.TRANSPOSE_TILE):
            tile = slice(j, j + tuning.TRANSPOSE_TILE)
            np.subtract(v[tile, :rows].T, base[:, tile], out=out[:, tile])
    return out
