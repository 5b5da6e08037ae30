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
shapes of the book and the scenario chunk: once per instrument type and chunk shape.

The batched kernels of the two heaviest types (bonds and swaps, options) are written by hand over
the whole book instead (``_flows.py``, ``_options.py``): their arrays hold the scenarios on the
minor, contiguous axis, ``[instrument, scenario]``, so that every fused loop of XLA runs over
contiguous memory and is vectorised across scenarios, in blocks of a few dozen scenarios that stay
in cache (:func:`scenario_blocks`).  Their ``state`` and ``combine`` are the same two programs:
values, then :func:`value_differences`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["make_kernel", "numpy_pnl", "value_diff", "scenario_blocks", "from_blocks", "value_differences"]


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


def scenario_blocks(base, new, block: int):
    """Levels ``[1 + S, F]`` (base first) as blocks ``[nb, F, block]``: scenarios on the minor axis.

    The last block is completed with copies of the base levels, so that every column, the base
    included, goes through the same vector code (a zero shock then gives the base value bit for bit).
    Returns the blocks and ``1 + S``.
    """
    L = jnp.concatenate([base[None, :], new], axis=0)
    rows = L.shape[0]
    pad = (-rows) % block
    L = jnp.concatenate([L, jnp.broadcast_to(base, (pad, L.shape[1]))], axis=0)
    return L.reshape(-1, block, L.shape[1]).transpose(0, 2, 1), rows


def from_blocks(v, rows: int):
    """Per-block values ``[nb, n, block]`` -> ``[rows, n]``."""
    return v.transpose(0, 2, 1).reshape(-1, v.shape[1])[:rows]


@jax.jit
def value_differences(values):
    """P&L ``[S, n]`` from values ``[1 + S, n]`` (row 0 at the base levels).

    A program of its own, so that ``V' - V`` subtracts stored values: fused with the program that
    computes them, XLA may recompute the base row inside the subtraction along another path.
    """
    return values[1:] - values[:1]
