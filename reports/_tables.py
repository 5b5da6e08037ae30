"""Views of the liquidity tables that do not depend on which of their documented forms a run wrote.

``liquidation.parquet`` holds position rows (``level == "position"``, the id in ``group_name``) and group
rows (``asset_class``, ``sleeve``, ``book``); a table with a ``position_id`` column and no ``level`` holds
position rows only.  ``capacity.parquet`` may or may not carry a ``scope`` (liquidity regime) column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["liquidation_positions", "liquidation_groups", "capacity_scopes", "NO_SCOPE"]

#: the scope label of a capacity table without a ``scope`` column
NO_SCOPE = "all"


def liquidation_positions(lq: pd.DataFrame) -> pd.DataFrame:
    """Position rows: scope, position_id, asset_class, sleeve, days, cost, cost_bps."""
    if "level" in lq.columns:
        p = lq[lq["level"] == "position"].rename(columns={"group_name": "position_id"})
    else:
        p = lq
    return p[["scope", "position_id", "asset_class", "sleeve", "days", "cost", "cost_bps"]].reset_index(drop=True)


def liquidation_groups(lq: pd.DataFrame, level: str) -> pd.DataFrame:
    """Rows of one level (``book``, ``asset_class`` or ``sleeve``): scope, group_name, days, cost, cost_bps.

    Taken from the table's own group rows when it has them; otherwise aggregated from its position rows
    (days: the slowest position, positions being sold in parallel; cost: the sum; cost_bps: null, the
    value unwound not being known).
    """
    if "level" in lq.columns and (lq["level"] == level).any():
        g = lq[lq["level"] == level]
        return g[["scope", "group_name", "days", "cost", "cost_bps"]].reset_index(drop=True)
    p = liquidation_positions(lq)
    key = p[level] if level != "book" else pd.Series("book", index=p.index)
    out = (p.assign(group_name=key).groupby(["scope", "group_name"], sort=False)
           .agg(days=("days", "max"), cost=("cost", "sum")).reset_index())
    out["cost_bps"] = np.nan
    return out


def capacity_scopes(cap: pd.DataFrame) -> pd.DataFrame:
    """The capacity table with a ``scope`` column (:data:`NO_SCOPE` when the run wrote none)."""
    return cap if "scope" in cap.columns else cap.assign(scope=NO_SCOPE)
