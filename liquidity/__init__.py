"""Liquidity, trading costs and capacity.

A state-dependent cost model (half the bid-ask spread plus square-root market impact, both scaled by a
scenario's spread widening, ADV cut and volatility; participation caps per asset class, tightened in
stress; an optional daily turnover cap) and what is computed with it:

* liquidation schedules: days to liquidate each position and the book, for a full or partial unwind
  (:func:`liquidation_schedule`, :func:`liquidation_table`);
* liquidity-adjusted drawdowns along scenario paths, with the unwind a rule forces spread over the days
  the caps require while prices keep moving (:func:`liquidity_adjusted_drawdown`);
* liquidity-adjusted VaR and CVaR next to the plain ones (:func:`la_var_cvar`, :func:`la_risk_table`);
* capacity curves over AUM multiples and the AUM at which a limit binds (:func:`capacity_curve`,
  :func:`binding_aum`);
* implementation shortfall of trades, and a cost callable for the optimisers (:func:`implementation_shortfall`,
  :func:`cost_fn`).

Everything works on plain numpy arrays; :func:`model_from_market` builds the model from a book, a market
snapshot and the history.  ``docs/liquidity.md`` describes the model, its parameters and their sources.
"""

from ._capacity import CAPACITY_METRICS, DEFAULT_AUM_MULTIPLES, Limit, binding_aum, capacity_curve, days_capacity
from ._drawdown import DeleverageRule, DrawdownResult, drawdown_table, liquidity_adjusted_drawdown
from ._inputs import daily_vols, market_inputs, model_from_market, path_vol_multiplier, revalue_paths, unit_values
from ._model import BASE, Conditions, LiquidityModel
from ._params import DEFAULT_CLASS_PARAMS, ClassParams, LiquidityParams
from ._schedule import Schedule, execution_schedule, family_conditions, liquidation_schedule, liquidation_table
from ._shortfall import cost_fn, implementation_shortfall, path_realised_vol, rebalance_trades, vol_target_trades
from ._var import LARisk, exit_cost, la_risk_table, la_var_cvar, marked_unit_value

__all__ = [
    "BASE",
    "CAPACITY_METRICS",
    "DEFAULT_AUM_MULTIPLES",
    "ClassParams",
    "Conditions",
    "DEFAULT_CLASS_PARAMS",
    "DeleverageRule",
    "DrawdownResult",
    "LARisk",
    "Limit",
    "LiquidityModel",
    "LiquidityParams",
    "Schedule",
    "binding_aum",
    "capacity_curve",
    "cost_fn",
    "daily_vols",
    "days_capacity",
    "drawdown_table",
    "execution_schedule",
    "exit_cost",
    "family_conditions",
    "implementation_shortfall",
    "la_risk_table",
    "la_var_cvar",
    "liquidation_schedule",
    "liquidation_table",
    "liquidity_adjusted_drawdown",
    "market_inputs",
    "marked_unit_value",
    "model_from_market",
    "path_realised_vol",
    "path_vol_multiplier",
    "rebalance_trades",
    "revalue_paths",
    "unit_values",
    "vol_target_trades",
]
