"""The batch's ``liquidity`` section: liquidity-aware tables computed after the kernels have run.

Reads the position-level P&L the run kept and the scenario paths, and writes ``liquidation``,
``la_risk``, ``la_drawdown``, ``drawdown_paths`` and ``capacity`` (with the AUM at which each capacity
limit binds) through :mod:`liquidity`, under the results schema's column names (``group_name``,
``limit_name``: :data:`OUTPUT_NAMES`).
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LiquiditySettings", "liquidity_tables"]

#: path rows (scenarios x days) revalued for the drawdown tables at most, per family
MAX_PATH_ROWS = 400_000
#: worst scenarios per family whose daily P&L paths go into ``drawdown_paths``
WORST_PATHS = 5
#: liquidity's column names -> the results schema's (no reserved SQL word as a column name)
OUTPUT_NAMES = {"group": "group_name", "limit": "limit_name"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleSettings(_Strict):
    """``liquidity.rule``: the unwind a path forces (:class:`liquidity.DeleverageRule`)."""

    drawdown_steps: list[tuple[float, float]] = []
    max_leverage: Optional[float] = Field(default=None, gt=0)
    vol_target: Optional[float] = Field(default=None, gt=0)
    redemption: float = Field(default=0.0, ge=0.0, le=1.0)


class CapacityLimitSettings(_Strict):
    metric: Literal["days_to_liquidate", "cost_bps", "la_cvar", "la_cvar_nav", "la_drawdown", "la_drawdown_nav"]
    max: float = Field(gt=0)
    scope: str = "stress"


#: the liquidity states the capacity table is computed in (uniform base and stress conditions)
CAPACITY_SCOPES = ("base", "stress")


class CapacitySettings(_Strict):
    """``liquidity.capacity``: the AUM grid, the family whose paths drive the drawdowns, the limits."""

    family: Optional[str] = None  # default: the first family with daily paths
    aum_multiples: Optional[list[float]] = None  # default: 20 points from 0.25x to 20x
    alpha: float = Field(default=0.95, gt=0.5, lt=1.0)
    limits: list[CapacityLimitSettings] = []


class LiquiditySettings(_Strict):
    """``liquidity``: cost-model parameters and what to compute (docs/liquidity.md)."""

    params: dict = {}
    unwind_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    rule: RuleSettings = RuleSettings()
    capacity: Optional[CapacitySettings] = CapacitySettings()


def check_liquidity(settings: LiquiditySettings, families: list[str], source: str) -> None:
    """What the section's settings say on their own, checked before any scenario is drawn (``validate``
    included): the cost parameters, the deleverage rule, the capacity family and the scopes of its limits.
    Every problem at once, one a line."""
    from stressgrid import liquidity

    from stressgrid.core import ConfigError

    problems = []
    try:
        liquidity.LiquidityParams.from_dict(settings.params, source=f"{source}, liquidity.params")
    except ConfigError as exc:
        problems.append(str(exc))
    r = settings.rule
    try:
        liquidity.DeleverageRule(drawdown_steps=tuple(r.drawdown_steps), max_leverage=r.max_leverage,
                                 vol_target=r.vol_target, redemption=r.redemption)
    except ConfigError as exc:  # named as the batch writes it
        problems.append(str(exc).replace("deleverage rule, field '", f"{source}, field 'liquidity.rule.", 1))
    cap = settings.capacity
    if cap is not None and cap.family is not None and cap.family not in families:
        problems.append(f"{source}, field 'liquidity.capacity.family': no scenario family {cap.family!r} "
                        f"(families: {', '.join(families)}) (got {cap.family!r})")
    for i, lim in enumerate(cap.limits if cap is not None else []):
        if lim.scope not in CAPACITY_SCOPES:
            problems.append(f"{source}, field 'liquidity.capacity.limits[{i}].scope': the capacity table's scopes are "
                            f"{', '.join(CAPACITY_SCOPES)} (got {lim.scope!r})")
    if problems:
        raise ConfigError("\n".join(problems))


def _ages(inputs, family: str) -> bool:
    """Whether ``family`` is valued at a horizon (its book ages), so its daily paths age day by day."""
    code = inputs.family_books.get(family, 0)
    return 0 < code < len(inputs.books) and inputs.books[code].horizon_days > 0


def build_model(settings: LiquiditySettings, inputs, source: str):
    """The cost model of the batch's book at its market snapshot."""
    from stressgrid import liquidity

    params = liquidity.LiquidityParams.from_dict(settings.params, source=f"{source}, liquidity.params")
    model = liquidity.model_from_market(inputs.book, inputs.market, inputs.prepared, inputs.history,
                                        inputs.batch.base_currency, params, inputs.batch.nav)
    return model, params


def liquidity_tables(settings: LiquiditySettings, inputs, pnl: np.ndarray | None, source: str = "batch") -> tuple[dict[str, pd.DataFrame], dict]:
    """Tables of the ``liquidity`` section, and notes for the manifest."""
    from stressgrid import liquidity

    from stressgrid.core import ConfigError

    model, params = build_model(settings, inputs, source)
    scen = inputs.scenarios
    frac = settings.unwind_fraction
    rule = liquidity.DeleverageRule(drawdown_steps=tuple(settings.rule.drawdown_steps), max_leverage=settings.rule.max_leverage,
                                    vol_target=settings.rule.vol_target, redemption=settings.rule.redemption)
    tables: dict[str, pd.DataFrame] = {}
    notes: dict = {"nav": model.nav, "nav_source": "batch" if inputs.batch.nav is not None else "gross value of the book"}

    # days to liquidate and cost: base, uniform stress, and each family's most stressed conditions
    scopes = {"base": liquidity.BASE, "stress": model.stress_conditions(params)}
    scopes.update(liquidity.family_conditions(scen))
    schedules = {k: liquidity.liquidation_schedule(model, frac, c) for k, c in scopes.items()}
    tables["liquidation"] = liquidity.liquidation_table(model, schedules).rename(columns=OUTPUT_NAMES)

    # liquidity-adjusted VaR / CVaR per family, from the position-level P&L
    fam = np.asarray(scen.family)
    if pnl is not None:
        tables["la_risk"] = liquidity.la_risk_table(model, pnl, fam, scen.weights, tuple(inputs.batch.risk.confidence),
                                                    liquidity.Conditions.from_scenarios(scen), frac)
    else:
        notes["la_risk"] = "not computed: the position-level P&L was not kept (scenarios x positions over the limit)"

    # drawdowns along the daily paths of the families that have them (worst paths by la_drawdown kept
    # day by day: the book held, the rule traded free, the rule traded at the caps with costs)
    dd, paths_rows, kept = [], [], {}
    path_books: dict = {}  # the book's days as one book per path length, shared by the families' paths
    for f, (rows, paths) in inputs.family_paths.items():
        if rows.size == 0 or rows[-1] >= len(scen) or not np.all(fam[rows] == f) or int(np.sum(fam == f)) != rows.size:
            continue  # paths of a scenario set that has since been replaced
        if paths.shape[0] * paths.shape[1] > MAX_PATH_ROWS:
            notes.setdefault("drawdown_skipped", []).append(f)
            notes["max_path_rows"] = MAX_PATH_ROWS
            continue
        if _ages(inputs, f):  # the family is valued at its horizon: time passes along its paths too
            if paths.shape[1] != inputs.books[inputs.family_books[f]].horizon_days:
                raise ValueError(f"family {f!r}: {paths.shape[1]} path days for a horizon of "
                                 f"{inputs.books[inputs.family_books[f]].horizon_days} business days")
            pp = liquidity.revalue_paths(inputs.prepared, inputs.market, paths, positions=inputs.book.positions,
                                         base_ccy=inputs.batch.base_currency, path_books=path_books)
            notes.setdefault("paths_aged", []).append(f)
        else:
            pp = liquidity.revalue_paths(inputs.prepared, inputs.market, paths)
        cond = liquidity.Conditions.from_scenarios(scen.subset(rows))
        res = liquidity.liquidity_adjusted_drawdown(model, pp, rule, cond, equity=True)
        names = [scen.names[i] for i in rows]
        dd.append(res.table(names, [f] * len(rows)))
        kept[f] = (rows, pp)
        H1 = res.equity.shape[1]
        for k in np.argsort(-res.la_drawdown, kind="stable")[:WORST_PATHS]:
            static = np.concatenate([[0.0], pp[k].sum(axis=1)])  # the book held unchanged
            paths_rows.append(pd.DataFrame({"family": f, "scenario": names[k], "day": np.arange(H1), "pnl": static,
                                            "la_pnl": res.la_equity[k], "rule_pnl": res.equity[k]}))
    if dd:
        tables["la_drawdown"] = pd.concat(dd, ignore_index=True)
        tables["drawdown_paths"] = pd.concat(paths_rows, ignore_index=True)

    # capacity over AUM multiples, driven by one family's paths
    cap = settings.capacity
    if cap is not None:
        fam_name = cap.family or next(iter(kept), None)
        if cap.family is not None and cap.family not in set(scen.family):
            raise ConfigError(f"{source}, field 'liquidity.capacity.family': no scenario family {cap.family!r} "
                              f"(families: {', '.join(dict.fromkeys(scen.family))})")
        pp = w = last = None
        if fam_name is not None:
            if fam_name in kept:
                rows, pp = kept[fam_name]
                last = pp[:, -1, :]
            elif pnl is not None:
                rows = np.flatnonzero(fam == fam_name)
                last = pnl[rows]
            if last is not None:
                w = scen.weights[rows] / scen.weights[rows].sum()
        curve = liquidity.capacity_curve(model, cap.aum_multiples, fraction=frac, pnl=last, pnl_paths=pp, weights=w,
                                         rule=rule, alpha=cap.alpha, params=params)
        curve.insert(0, "family", fam_name or "")
        tables["capacity"] = curve.rename(columns=OUTPUT_NAMES)
        if cap.limits:
            lims = [liquidity.Limit(lm.metric, lm.max, lm.scope) for lm in cap.limits]
            tables["capacity_limits"] = liquidity.binding_aum(curve, lims, model=model, fraction=frac,
                                                              params=params).rename(columns=OUTPUT_NAMES)
    return tables, notes
