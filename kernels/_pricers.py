"""The pricers of every instrument type, registered with :func:`kernels.register` on import."""

from __future__ import annotations

from ._credit import cds_build, cds_factors, cds_pnl, cds_pnl_numpy, cds_pnl_one
from ._forwards import (
    commodity_build,
    commodity_factors,
    commodity_future_pnl,
    commodity_future_pnl_numpy,
    commodity_future_pnl_one,
    fx_forward_build,
    fx_forward_factors,
    fx_forward_pnl,
    fx_forward_pnl_numpy,
    fx_forward_pnl_one,
)
from ._options import check_option_vols, option_build, option_factors, option_pnl, option_pnl_into, option_pnl_numpy, option_pnl_one
from ._rates import (
    cashflow_build,
    cashflow_pnl,
    cashflow_pnl_into,
    cashflow_pnl_numpy,
    cashflow_pnl_one,
    rate_future_build,
    rate_future_pnl,
    rate_future_pnl_numpy,
    rate_future_pnl_one,
    rates_factors,
)
from ._revalue import Pricer, register

__all__ = ["OPTION", "CASHFLOW", "RATE_FUTURE", "FX_FORWARD", "COMMODITY_FUTURE", "CDS"]

OPTION = Pricer(("option",), option_factors, option_build, option_pnl, option_pnl_numpy, option_pnl_one, check_option_vols,
                pnl_into=option_pnl_into)
CASHFLOW = Pricer(("bond", "swap"), rates_factors, cashflow_build, cashflow_pnl, cashflow_pnl_numpy, cashflow_pnl_one,
                  rows=lambda b: b.rows(), pnl_into=cashflow_pnl_into)
RATE_FUTURE = Pricer(("rate_future",), rates_factors, rate_future_build, rate_future_pnl, rate_future_pnl_numpy, rate_future_pnl_one)
FX_FORWARD = Pricer(("fx_forward",), fx_forward_factors, fx_forward_build, fx_forward_pnl, fx_forward_pnl_numpy, fx_forward_pnl_one)
COMMODITY_FUTURE = Pricer(
    ("commodity_future",), commodity_factors, commodity_build, commodity_future_pnl, commodity_future_pnl_numpy, commodity_future_pnl_one
)
CDS = Pricer(("cds",), cds_factors, cds_build, cds_pnl, cds_pnl_numpy, cds_pnl_one)

for _p in (OPTION, CASHFLOW, RATE_FUTURE, FX_FORWARD, COMMODITY_FUTURE, CDS):
    register(_p)
