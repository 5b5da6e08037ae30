"""Revaluation kernels in JAX (float64), each with a plain numpy twin.

Importing this package changes no process setting; :func:`configure_process` turns on float64 and
sets XLA's flags (the command line and the grid's workers call it; :func:`prepare` and :func:`revalue`
refuse to run without float64).  The package registers a pricer for every instrument type: linear (equity, equity_future), CIP (fx_forward), spot and basis
(commodity_future), zero curve (bond, swap, rate_future), flat hazard (cds), Black on a
parametric vol surface (option), and the surface's forward ATM variance and Black-76 with a vol-of-vol
(vix_future, vix_option).  ``docs/kernels.md`` describes the models.  :func:`sensitivities` and
:func:`position_sensitivities` give each position's Greeks, theta and rate convexity per curve by
automatic differentiation.  :func:`fit_lstm` trains the small LSTM of the ``ml_lstm`` correlation
forecaster (optax, imported on the first call), with :func:`lstm_predict_numpy` its numpy twin.
"""

from . import _pricers  # noqa: F401  (registers the pricers)
from ._common import CURVE_TENORS, DEFAULT_TENORS, curve_factors, curve_tenors
from ._credit import CdsBook, jump_to_default_pnl
from ._horizon import age, horizon_date, path_book, path_books, path_days, revalue_path, settlement_days, stack_arrays
from ._linear import LinearBook, linear_pnl, linear_pnl_numpy, linear_pnl_one
from ._lstm import LSTMParams, fit_lstm, lstm_init, lstm_predict, lstm_predict_numpy
from ._forwards import CommodityFutureBook, futures_price
from ._options import T0_YEARS, VOL_FLOOR, VOL_PARAMS, OptionBook, black, black_numpy, option_values_numpy, surface_vol
from ._rates import CashflowBook, RateFutureBook, bond_cashflows, cashflow_values_numpy, coupon_schedule, rate_future_price
from ._revalue import (
    PRICERS,
    PreparedBook,
    Pricer,
    check_levels,
    prepare,
    register,
    required_factors,
    revalue,
    place,
    preferred_order,
    revalue_groups,
    revalue_numpy,
    shocked_levels,
    call_rows,
)
from ._sensitivity import Sensitivities, position_sensitivities, revalue_sensitivity, sensitivities, sensitivity_pnl
from ._stream import StreamResult, revalue_stream
from ._total import total_pnl
from ._vix import (
    VIX_TAU_YEARS,
    VOV_PARAM,
    VixFutureBook,
    VixOptionBook,
    vix_forward_variance,
    vix_future_price,
    vix_futures_level,
    vix_option_values_numpy,
)
from ._x64 import configure_process, x64_enabled

__all__ = [
    "CURVE_TENORS",
    "CashflowBook",
    "CommodityFutureBook",
    "cashflow_values_numpy",
    "futures_price",
    "option_values_numpy",
    "rate_future_price",
    "CdsBook",
    "age",
    "horizon_date",
    "path_book",
    "path_books",
    "path_days",
    "stack_arrays",
    "revalue_path",
    "settlement_days",
    "DEFAULT_TENORS",
    "LinearBook",
    "OptionBook",
    "PRICERS",
    "PreparedBook",
    "Pricer",
    "RateFutureBook",
    "Sensitivities",
    "StreamResult",
    "T0_YEARS",
    "VOL_FLOOR",
    "VOL_PARAMS",
    "black",
    "black_numpy",
    "bond_cashflows",
    "check_levels",
    "configure_process",
    "coupon_schedule",
    "curve_factors",
    "curve_tenors",
    "jump_to_default",
    "jump_to_default_pnl",
    "linear_pnl",
    "linear_pnl_numpy",
    "linear_pnl_one",
    "LSTMParams",
    "fit_lstm",
    "lstm_init",
    "lstm_predict",
    "lstm_predict_numpy",
    "prepare",
    "register",
    "required_factors",
    "revalue",
    "total_pnl",
    "place",
    "position_sensitivities",
    "revalue_groups",
    "call_rows",
    "preferred_order",
    "revalue_numpy",
    "revalue_sensitivity",
    "revalue_stream",
    "sensitivities",
    "sensitivity_pnl",
    "shocked_levels",
    "surface_vol",
    "x64_enabled",
    "VIX_TAU_YEARS",
    "VOV_PARAM",
    "VixFutureBook",
    "VixOptionBook",
    "vix_forward_variance",
    "vix_future_price",
    "vix_futures_level",
    "vix_option_values_numpy",
]


def jump_to_default(book: PreparedBook, base):
    """Jump-to-default P&L ``[n]`` (base currency): each CDS position's P&L if its reference name, or
    one of the names of a credit index (the ``constituents`` column), defaults now; 0 for every other
    position.  See :func:`kernels._credit.jump_to_default_pnl`."""
    import numpy as np

    out = np.zeros(book.n)
    for g in book.groups:
        if isinstance(g.arrays, CdsBook):
            out[g.columns] = jump_to_default_pnl(g.arrays, np.asarray(base, float))
    return out
