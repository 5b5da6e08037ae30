"""Revaluation kernels in JAX (float64), each with a plain numpy twin.

Importing this package turns on float64 for JAX in the importing process.
"""

from . import _x64  # noqa: F401  (must come before any jax computation)
from ._linear import LinearBook, linear_pnl, linear_pnl_numpy, linear_pnl_one
from ._revalue import PRICERS, PreparedBook, Pricer, prepare, register, required_factors, revalue, revalue_numpy, shocked_levels
from ._x64 import x64_enabled

__all__ = [
    "LinearBook",
    "PRICERS",
    "PreparedBook",
    "Pricer",
    "linear_pnl",
    "linear_pnl_numpy",
    "linear_pnl_one",
    "prepare",
    "register",
    "required_factors",
    "revalue",
    "revalue_numpy",
    "shocked_levels",
    "x64_enabled",
]
