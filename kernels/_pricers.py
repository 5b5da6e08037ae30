"""The pricers of every instrument type, registered with :func:`kernels.register` on import."""

from __future__ import annotations

import numpy as np

from ._credit import cds_age, cds_build, cds_factors, cds_mark, cds_pnl, cds_pnl_numpy, cds_pnl_one
from ._forwards import (
    commodity_build,
    commodity_factors,
    commodity_future_mark,
    fx_forward_mark,
    commodity_future_pnl,
    commodity_future_pnl_numpy,
    commodity_future_pnl_one,
    fx_forward_build,
    fx_forward_factors,
    fx_forward_pnl,
    fx_forward_pnl_numpy,
    fx_forward_pnl_one,
)
from ._options import (
    check_option_vols,
    option_build,
    option_factors,
    option_mark,
    option_pnl,
    option_pnl_into,
    option_pnl_numpy,
    option_pnl_one,
    settled_option_build,
    settled_option_mark,
    settled_option_pnl,
    settled_option_pnl_numpy,
    settled_option_pnl_into,
    settled_option_pnl_one,
)
from ._rates import (
    cashflow_age,
    cashflow_build,
    cashflow_mark,
    cashflow_pnl,
    cashflow_pnl_into,
    cashflow_pnl_numpy,
    cashflow_pnl_one,
    rate_future_build,
    rate_future_pnl,
    rate_future_pnl_numpy,
    rate_future_mark,
    rate_future_pnl_one,
    rates_factors,
)
from ._revalue import Pricer, register
from ._vix import (
    check_vix_future,
    check_vix_option,
    settled_vix_option_build,
    settled_vix_option_mark,
    settled_vix_option_pnl,
    settled_vix_option_pnl_numpy,
    settled_vix_option_pnl_one,
    vix_future_build,
    vix_future_factors,
    vix_future_mark,
    vix_future_pnl,
    vix_future_pnl_numpy,
    vix_future_pnl_one,
    vix_option_build,
    vix_option_factors,
    vix_option_mark,
    vix_option_pnl,
    vix_option_pnl_numpy,
    vix_option_pnl_one,
)

__all__ = ["OPTION", "SETTLED_OPTION", "CASHFLOW", "RATE_FUTURE", "FX_FORWARD", "COMMODITY_FUTURE", "CDS", "VIX_FUTURE",
           "VIX_OPTION", "SETTLED_VIX_OPTION"]


def _option_age(df, idx, base_ccy, as_of, at, base, pack=True):
    """Options alive at ``at`` on the shorter time to expiry; the others hold their payoff."""
    import pandas as pd

    live = (pd.to_datetime(df["expiry"]) > pd.Timestamp(at).normalize()).to_numpy()
    out = []
    if live.any():
        out.append((live, OPTION, option_build(df[live], idx, base_ccy, at)))
    if (~live).any():
        out.append((~live, SETTLED_OPTION, settled_option_build(df[~live], idx, base_ccy, at)))
    return out


def _vix_option_age(df, idx, base_ccy, as_of, at, base, pack=True):
    """VIX options alive at ``at`` on the shorter time to expiry; the others hold their payoff."""
    import pandas as pd

    live = (pd.to_datetime(df["expiry"]) > pd.Timestamp(at).normalize()).to_numpy()
    out = []
    if live.any():
        out.append((live, VIX_OPTION, vix_option_build(df[live], idx, base_ccy, at)))
    if (~live).any():
        out.append((~live, SETTLED_VIX_OPTION, settled_vix_option_build(df[~live], idx, base_ccy, at)))
    return out


def _cashflow_age(df, idx, base_ccy, as_of, at, base, pack=True):
    return [(np.ones(len(df), dtype=bool), CASHFLOW, cashflow_age(df, idx, base_ccy, as_of, at, base, pack=pack))]


def _cds_age(df, idx, base_ccy, as_of, at, base, pack=True):
    return [(np.ones(len(df), dtype=bool), CDS, cds_age(df, idx, base_ccy, as_of, at, base))]


OPTION = Pricer(("option",), option_factors, option_build, option_pnl, option_pnl_numpy, option_pnl_one, check_option_vols,
                pnl_into=option_pnl_into, mark=option_mark, age=_option_age)
#: options that expired inside a horizon, held as their payoff (no position has this type)
SETTLED_OPTION = Pricer(("option:settled",), option_factors, settled_option_build, settled_option_pnl, settled_option_pnl_numpy,
                        settled_option_pnl_one, pnl_into=settled_option_pnl_into, mark=settled_option_mark)
CASHFLOW = Pricer(("bond", "swap"), rates_factors, cashflow_build, cashflow_pnl, cashflow_pnl_numpy, cashflow_pnl_one,
                  rows=lambda b: b.rows(), pnl_into=cashflow_pnl_into, mark=cashflow_mark, age=_cashflow_age)
RATE_FUTURE = Pricer(("rate_future",), rates_factors, rate_future_build, rate_future_pnl, rate_future_pnl_numpy, rate_future_pnl_one,
                     mark=rate_future_mark)
FX_FORWARD = Pricer(("fx_forward",), fx_forward_factors, fx_forward_build, fx_forward_pnl, fx_forward_pnl_numpy, fx_forward_pnl_one,
                    mark=fx_forward_mark)
COMMODITY_FUTURE = Pricer(
    ("commodity_future",), commodity_factors, commodity_build, commodity_future_pnl, commodity_future_pnl_numpy, commodity_future_pnl_one,
    mark=commodity_future_mark,
)
CDS = Pricer(("cds",), cds_factors, cds_build, cds_pnl, cds_pnl_numpy, cds_pnl_one, mark=cds_mark, age=_cds_age)
#: VIX futures settle daily (a future that settles inside a horizon is worth the spot VIX: the default age,
#: ``build`` at the later date, clips its time to 0)
VIX_FUTURE = Pricer(("vix_future",), vix_future_factors, vix_future_build, vix_future_pnl, vix_future_pnl_numpy, vix_future_pnl_one,
                    check_vix_future, mark=vix_future_mark)
VIX_OPTION = Pricer(("vix_option",), vix_option_factors, vix_option_build, vix_option_pnl, vix_option_pnl_numpy, vix_option_pnl_one,
                    check_vix_option, mark=vix_option_mark, age=_vix_option_age)
#: VIX options that expired inside a horizon, held as their payoff (no position has this type)
SETTLED_VIX_OPTION = Pricer(("vix_option:settled",), vix_option_factors, settled_vix_option_build, settled_vix_option_pnl,
                            settled_vix_option_pnl_numpy, settled_vix_option_pnl_one, mark=settled_vix_option_mark)

for _p in (OPTION, SETTLED_OPTION, CASHFLOW, RATE_FUTURE, FX_FORWARD, COMMODITY_FUTURE, CDS, VIX_FUTURE, VIX_OPTION, SETTLED_VIX_OPTION):
    register(_p)
