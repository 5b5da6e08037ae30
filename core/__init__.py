"""Shared vocabulary of stressgrid: errors, risk factors, history, market snapshot, book, scenario sets, measures.

Everything else (scenarios, kernels, portfolios, grid) meets in these types.
"""

from .book import ASSET_CLASSES, INSTRUMENT_TYPES, Book, Position, book_from_records, load_book
from .errors import ConfigError, DataError, InfeasibleError, StressGridError, TaskError
from .factors import (
    FactorSpec,
    apply_shocks,
    curve_factor,
    factor_moves,
    factor_spec,
    fx_factor,
    is_log_factor,
    log_mask,
    tenor_years,
)
from .history import BUNDLED_HISTORY, History, load_history
from .market import MarketSnapshot, latest_common_date, snapshot_from_history
from .measures import cvar_contributions, tail_weights, var_cvar
from .scenarioset import ScenarioSet, concat_scenarios

__all__ = [
    "ASSET_CLASSES",
    "BUNDLED_HISTORY",
    "Book",
    "ConfigError",
    "DataError",
    "FactorSpec",
    "History",
    "INSTRUMENT_TYPES",
    "InfeasibleError",
    "MarketSnapshot",
    "Position",
    "ScenarioSet",
    "StressGridError",
    "TaskError",
    "apply_shocks",
    "book_from_records",
    "concat_scenarios",
    "curve_factor",
    "cvar_contributions",
    "factor_moves",
    "factor_spec",
    "fx_factor",
    "is_log_factor",
    "latest_common_date",
    "load_book",
    "load_history",
    "log_mask",
    "snapshot_from_history",
    "tail_weights",
    "tenor_years",
    "var_cvar",
]
