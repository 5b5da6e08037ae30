"""Every tuning constant of the batched bond and option kernels, in one place.

A constant here changes how fast a kernel runs, never what it returns beyond floating-point rounding
(the interpolation caps also decide which scenarios are priced flow by flow, to the same values).
The switches are read when a program is traced, and the kernels pass :func:`snapshot` to their
compiled programs as a static argument, so that changing one (as ``benchmarks/kernel_layers.py``
does, to measure what a layer gains in the same process) compiles the other variant instead of
reusing the first.  What each layer gains, as measured, is in ``docs/kernels.md``.
"""

from __future__ import annotations

# --- both batched kernels (kernels._edge, kernels._flows, kernels._options) -------------------------

#: scenarios per pass of the compiled loops (the levels are padded to a multiple of it); the grid
#: sizes its blocks to whole passes of it (``grid._worker.KERNEL_PASS``)
SCENARIO_BLOCK = 64
#: scenario x position cells of one kernel call: small enough for the caches, large enough that the
#: call overhead is small (measured with 490 and 4,900 positions: one process per core was fastest
#: near 2**20 cells, and two processes slowed each other least there)
CALL_CELLS = 2**20
#: bounds of the scenarios of one call (powers of two)
CALL_ROWS = (256, 16384)
#: instruments per tile of the transposing subtraction into a C-ordered output (0: one untiled pass)
TRANSPOSE_TILE = 64

# --- cash-flow kernel (kernels._flows, kernels._curve_nodes) ----------------------------------------

#: price the cash flows from their curve's nodes (False: every flow's own discount factor)
CURVE_NODES = True
#: costs in nanoseconds per scenario that decide how curve-node classes are batched: one node (an
#: exponential), one multiply-add of the product
COST_NODE, COST_MAC = 0.8, 0.02
#: padding a batch of curve-node classes may add, relative to its classes' own cost
BATCH_WASTE = 0.25
#: at most this many batches of curve-node classes a curve (each is one batched product in the
#: compiled program: more compile longer; 1: every class of a curve in one padded product)
MAX_BATCHES = 16
#: largest ``|F + s|`` (instantaneous forward yield plus spread, decimal) at a piece's centre that the
#: node counts are sized for; beyond it a scenario is priced flow by flow
FORWARD_CAP = 0.25
#: largest ``|z_hi - z_lo|`` (the two zero yields around a piece) the node counts are sized for
SLOPE_CAP = 0.05
#: most nodes a piece may take; a piece that would need more keeps its dates
MAX_NODES = 200
#: consecutive days of a path book (``kernels.path_book``) whose cash flows share one curve's nodes: the
#: days' flow times differ, so one list for every day has many more nodes per class, and one list per
#: day many more batches to compile (10,000 demo paths of 20 days: one list per day revalued the bonds
#: in 0.36 s after 4.1 s of compiling, one for all days in 0.53 s after 1.0 s, blocks of 5 in 0.37 s
#: after 1.3 s)
PATH_CURVE_DAYS = 5

# --- option kernel (kernels._options) ---------------------------------------------------------------

#: one logarithm of the spot per underlying and scenario (False: one per option)
LOG_SPOT_PER_UNDERLYING = True
#: both CDFs of the Black formula from one exponential and the tail ratio (False: two ``erfc``)
TAIL_RATIO = True
#: XLA options of the programs that run once per batch at the base levels (the sensitivities' derivatives
#: and theta): their run time is milliseconds, their compile time seconds, so XLA skips its costly
#: optimisation passes there (demo book, empty compile cache: 5.4 s of compiling the derivatives
#: became 3.7 s; at 300 times the book, 14,700 positions, they ran in 1.74 s instead of 1.42 s)
ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def snapshot() -> tuple:
    """The switches read at trace time, as a hashable static argument of the compiled programs."""
    return (SCENARIO_BLOCK, CURVE_NODES, TAIL_RATIO)
