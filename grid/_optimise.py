"""The batch's ``optimise`` section: the book re-optimised under each scenario family, one grid task per
family, reduced into ``reoptimisation``, ``reoptimisation_weights`` and ``reoptimisation_contributions``.

Weights are exposures as fractions of NAV: ``w_i = q_i v_i / NAV`` with ``v_i`` the position's value per
unit of quantity (liquidity's unit values: price x multiplier x FX for linear instruments, notional for
futures and swaps, the premium for options); a position's return per unit weight in a scenario is its
P&L divided by ``q_i v_i``, so ``R @ w`` is the book's P&L over NAV and re-weighting a position scales it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._plan import Task

__all__ = ["HRPSettings", "OptimiseSettings", "RiskBudgetSettings", "optimise_tables", "position_budgets"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdvCapSettings(_Strict):
    """``optimise.adv_caps``: no position larger than it can be sold in ``horizon_days`` at
    ``participation`` of ADV (cut by each family's liquidity stress)."""

    participation: float = Field(default=0.10, gt=0.0, le=1.0)
    horizon_days: float = Field(default=5.0, gt=0.0)


#: the objectives that re-scale the book along its signs to a gross exposure (risk parity, HRP)
SIGNED_OBJECTIVES = ("risk_parity", "hrp")
#: the default ``scale_bounds`` of min_cvar and max_return
DEFAULT_SCALE_BOUNDS = (0.0, 2.0)


class RiskBudgetSettings(_Strict):
    """``optimise.risk_budget``: the risk budgets of ``objective: risk_parity``.

    ``level: position`` budgets positions by id; ``sleeve`` or ``asset_class`` budgets the groups, each
    group's budget split equally over its positions held.  Without ``budgets`` every position (or group)
    gets an equal one; with them, every position or group held needs one.  Budgets are relative (they
    are normalised to sum to 1)."""

    measure: Literal["vol", "cvar"] = "vol"  # the scenario covariance, or CVaR at optimise.alpha
    level: Literal["position", "sleeve", "asset_class"] = "position"
    budgets: dict[str, float] = {}
    #: ``position``: every position sized on its own, a group's budget split equally over its positions;
    #: ``group``: each group keeps its composition and is scaled as a whole (sleeve or asset_class level)
    scale: Literal["position", "group"] = "position"

    @model_validator(mode="after")
    def _check(self) -> "RiskBudgetSettings":
        if self.scale == "group" and self.level == "position":
            raise ValueError("scale group needs level sleeve or asset_class (got level position)")
        for k, v in self.budgets.items():
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"budgets[{k!r}] must be a positive number (got {v!r})")
        return self


class HRPSettings(_Strict):
    """``optimise.hrp``: the clustering of ``objective: hrp`` (portfolios.HRP)."""

    linkage: Literal["single", "complete", "average", "ward", "weighted"] = "single"
    optimal_ordering: bool = False
    risk_measure: Literal["variance", "cvar"] = "variance"  # cvar at optimise.alpha


class OptimiseSettings(_Strict):
    """``optimise``: re-optimise the book under each stress (docs/portfolios.md)."""

    families: Optional[list[str]] = None  # default: every family but the base one
    base_family: Optional[str] = None  # the unstressed set reported next to the stressed one
    alpha: float = Field(default=0.95, gt=0.5, lt=1.0)
    objective: Literal["min_cvar", "max_return", "risk_parity", "hrp"] = "min_cvar"
    cvar_budget: Optional[float] = Field(default=None, gt=0.0)  # fraction of NAV, for max_return
    risk_budget: Optional[RiskBudgetSettings] = None  # risk_parity (default: equal per position, vol)
    hrp: Optional[HRPSettings] = None  # hrp (default: single linkage, variance)
    #: each position's new size as a multiple of its current one, in [low, high] (no sign flips);
    #: default (0, 2) for min_cvar and max_return, none for risk_parity and hrp
    scale_bounds: Optional[tuple[float, float]] = None
    #: gross exposure at most this multiple of the current book's (1: no added leverage); risk_parity and
    #: hrp scale the book to exactly this multiple
    max_gross_multiple: float = Field(default=1.0, gt=0.0)
    max_turnover: Optional[float] = Field(default=None, gt=0.0)  # fraction of NAV
    turnover_penalty: float = Field(default=0.0, ge=0.0)
    adv_caps: Optional[AdvCapSettings] = None
    frozen: list[str] = []  # position ids kept as they are
    group_bounds: dict[str, dict[str, tuple[float, float]]] = {}  # level -> group -> (low, high) net weight
    fallback: Literal["current", "error"] = "current"

    @model_validator(mode="after")
    def _check(self) -> "OptimiseSettings":
        if self.scale_bounds is not None:
            lo, hi = self.scale_bounds
            if not 0.0 <= lo <= 1.0 <= hi:
                raise ValueError(f"scale_bounds {list(self.scale_bounds)} must satisfy 0 <= low <= 1 <= high")
        if self.objective == "max_return" and self.cvar_budget is None:
            raise ValueError("objective max_return needs cvar_budget (CVaR as a fraction of NAV)")
        for key, objective in (("risk_budget", "risk_parity"), ("hrp", "hrp")):
            if getattr(self, key) is not None and self.objective != objective:
                raise ValueError(f"{key} applies to objective {objective} (got objective {self.objective})")
        if self.objective in SIGNED_OBJECTIVES and self.turnover_penalty:
            raise ValueError(f"objective {self.objective} takes no turnover_penalty (got {self.turnover_penalty}); "
                             "use max_turnover")
        return self

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The scale bounds in force: the given ones, the min_cvar/max_return default, or None."""
        if self.scale_bounds is not None:
            return self.scale_bounds
        return None if self.objective in SIGNED_OBJECTIVES else DEFAULT_SCALE_BOUNDS


@dataclass(frozen=True)
class _Payload:
    returns: np.ndarray  # [S, N] per unit weight
    weights: np.ndarray  # [S] scenario probabilities (normalised per family in the task)
    w0: np.ndarray
    families: tuple[str, ...]
    base: tuple[int, int] | None  # rows of the base family
    settings: OptimiseSettings
    ids: tuple[str, ...]
    groups: dict
    unit_value: np.ndarray
    adv: np.ndarray
    nav: float
    model: object  # liquidity.LiquidityModel for the trading cost
    risk_budget: np.ndarray | None  # [N] per position, for objective risk_parity
    conditions: dict  # family -> liquidity.Conditions (uniform, the family's most stressed)
    adv_mult: dict  # family -> [N] ADV multiplier


def _constraints(pl: _Payload, family: str):
    from stressgrid import portfolios

    st = pl.settings
    signed = st.objective in SIGNED_OBJECTIVES
    if st.bounds is not None:
        lo, hi = st.bounds
        a, b = pl.w0 * lo, pl.w0 * hi
        lower, upper = np.minimum(a, b), np.maximum(a, b)
    else:  # the signs of the current book only
        lower = np.where(pl.w0 > 0, 0.0, np.where(pl.w0 < 0, -np.inf, 0.0))
        upper = np.where(pl.w0 < 0, 0.0, np.where(pl.w0 > 0, np.inf, 0.0))
    idx = {k: i for i, k in enumerate(pl.ids)}
    frozen = [idx[k] for k in st.frozen]
    max_position = None
    if st.adv_caps is not None:
        caps = portfolios.adv_caps(pl.nav, pl.unit_value, pl.adv, st.adv_caps.participation, st.adv_caps.horizon_days,
                                   pl.adv_mult.get(family, 1.0))
        # a position already above its cap may keep its size but not grow
        max_position = np.maximum(caps, np.abs(pl.w0))
    gb = {lvl: {g: tuple(v) for g, v in d.items()} for lvl, d in st.group_bounds.items()}
    # risk parity and HRP set the gross exposure themselves
    max_gross = None if signed else st.max_gross_multiple * float(np.abs(pl.w0).sum())
    return portfolios.Constraints(
        budget=None, max_gross=max_gross, lower=lower, upper=upper,
        groups={lvl: pl.groups[lvl] for lvl in gb} or None, group_bounds=gb or None,
        max_turnover=st.max_turnover, turnover_penalty=st.turnover_penalty, max_position=max_position,
        frozen=frozen or None,
    )


def _optimiser(pl: _Payload, family: str):
    """The optimiser of ``optimise.objective`` for one family."""
    from stressgrid import portfolios

    st = pl.settings
    cs = _constraints(pl, family)
    gross = st.max_gross_multiple * float(np.abs(pl.w0).sum())
    if st.objective == "risk_parity":
        rb = st.risk_budget or RiskBudgetSettings()
        return portfolios.SignedRiskParity(measure=rb.measure, alpha=st.alpha, risk_budget=pl.risk_budget,
                                           gross=gross, constraints=cs, labels=list(pl.ids),
                                           groups=pl.groups[rb.level] if rb.scale == "group" else None)
    if st.objective == "hrp":
        h = st.hrp or HRPSettings()
        return portfolios.SignedHRP(linkage=h.linkage, optimal_ordering=h.optimal_ordering,
                                    risk_measure=h.risk_measure, alpha=st.alpha, gross=gross, constraints=cs)
    return portfolios.MeanCVaR(alpha=st.alpha, objective=st.objective, cvar_budget=st.cvar_budget, constraints=cs)


def position_budgets(rb: RiskBudgetSettings, ids, groups: dict, held: np.ndarray, source: str) -> np.ndarray:
    """Risk budgets per position ``[N]`` (summing to 1, zero where the book holds nothing) from
    ``optimise.risk_budget``: a group's budget is split equally over its positions held.

    Raises
    ------
    ConfigError
        A budget for a position or group the book does not have, or one the book does not hold; a
        position or group held without a budget when ``budgets`` is given.
    """
    from stressgrid.core import ConfigError

    field = f"{source}, field 'optimise.risk_budget.budgets'"
    labels = np.asarray(ids, dtype=object) if rb.level == "position" else np.asarray(groups[rb.level], dtype=object)
    what = "position" if rb.level == "position" else rb.level
    names = list(dict.fromkeys(labels[held]))
    for k in rb.budgets:
        if k not in set(labels):
            known = ", ".join(map(str, dict.fromkeys(labels)))
            raise ConfigError(f"{field}: no {what} {k!r} in the book ({what}s: {known})")
        if k not in names:
            raise ConfigError(f"{field}: the book holds no priced exposure in {what} {k!r}; drop its budget")
    if rb.budgets:
        missing = [str(g) for g in names if g not in rb.budgets]
        if missing:
            raise ConfigError(f"{field}: no budget for {what}s {', '.join(missing)}; give every {what} held a budget, "
                              "or none for equal budgets")
    group_budget = {g: float(rb.budgets.get(g, 1.0)) for g in names}
    total = sum(group_budget.values())
    b = np.zeros(len(labels))
    for g in names:
        on = held & (labels == g)
        b[on] = group_budget[g] / total / on.sum()
    return b


def _optimise_task(pl: _Payload, task: Task):
    """One family: its rows ``task.start:task.stop`` of the returns."""
    from stressgrid import liquidity
    from stressgrid import portfolios

    fam = pl.families[task.task_id]
    st = pl.settings
    R = pl.returns[task.start:task.stop]
    p = pl.weights[task.start:task.stop]
    p = p / p.sum()
    opt = _optimiser(pl, fam)
    kw = {}
    if pl.base is not None:
        b0, b1 = pl.base
        pb = pl.weights[b0:b1]
        kw = dict(base_returns=pl.returns[b0:b1], base_sample_weight=pb / pb.sum())
    cost = liquidity.cost_fn(pl.model, pl.conditions.get(fam))
    res = portfolios.reoptimise_family(
        fam, R, pl.w0, methods={st.objective: opt}, alpha=st.alpha, sample_weight=p, positions=list(pl.ids),
        groups=pl.groups, cost_fn=cost, fallback="current" if st.fallback == "current" else None, **kw)
    res.task_id = task.task_id
    return res


def _thin_tails(summary: pd.DataFrame, pnl: np.ndarray, weights: np.ndarray, family: np.ndarray, alpha: float,
                min_tail: int) -> None:
    """Add ``tail_scenarios`` and ``thin_tail`` to the re-optimisation ``summary`` (in place), and name a thin
    tail in its ``message``: a CVaR at ``alpha`` that averages fewer than ``min_tail`` scenarios (of the
    current book's P&L ``pnl [S]``, with the scenario ``weights`` normalised within each ``family [S]``) is
    minimised by fitting those few scenarios, whatever the solver's status says."""
    from stressgrid.core import tail_weights

    from ._guards import tail_count

    counts = {}
    for f in dict.fromkeys(summary["family"]):
        on = family == f
        p = weights[on] / weights[on].sum()
        counts[f] = tail_count(tail_weights(pnl[on], alpha, p)[1], alpha)
    summary["tail_scenarios"] = summary["family"].map(counts).astype(np.int64)
    summary["thin_tail"] = summary["tail_scenarios"] < min_tail
    note = summary["tail_scenarios"].map(
        lambda k: f"thin tail: the CVaR at {alpha:.0%} rests on {k} scenario{'' if k == 1 else 's'}, fewer than "
                  f"risk.min_tail_scenarios ({min_tail}); the optimum fits those scenarios")
    old = summary["message"].where(summary["message"].notna(), None)
    summary["message"] = [(f"{n}; {m}" if m else n) if thin else m
                          for n, m, thin in zip(note, old, summary["thin_tail"])]


def optimise_tables(settings: OptimiseSettings, inputs, pnl: np.ndarray | None, executor, source: str) -> tuple[dict[str, pd.DataFrame], dict]:
    """Re-optimise per family on the executor; tables and notes for the manifest."""
    from stressgrid import liquidity
    from stressgrid import portfolios

    from stressgrid.core import ConfigError

    from stressgrid.core.executor import TaskFailure
    from ._liquidity import LiquiditySettings, build_model

    if pnl is None:
        raise ConfigError(f"{source}, field 'optimise': needs the position-level P&L, which is not kept for "
                          "scenarios x positions over 20 million; run fewer scenarios or positions")
    scen = inputs.scenarios
    fam = np.asarray(scen.family)
    names = list(dict.fromkeys(scen.family))
    for key, val in (("families", settings.families or []), ("base_family", [settings.base_family] if settings.base_family else [])):
        for f in val:
            if f not in names:
                raise ConfigError(f"{source}, field 'optimise.{key}': no scenario family {f!r} (families: {', '.join(names)})")
    pos = inputs.book.positions
    ids = tuple(pos["id"])
    for k in settings.frozen:
        if k not in ids:
            raise ConfigError(f"{source}, field 'optimise.frozen': no position {k!r} in the book")
    for lvl, d in settings.group_bounds.items():
        if lvl not in ("asset_class", "sleeve"):
            raise ConfigError(f"{source}, field 'optimise.group_bounds': level {lvl!r} must be asset_class or sleeve")
        for g in d:
            if g not in set(pos[lvl]):
                raise ConfigError(f"{source}, field 'optimise.group_bounds.{lvl}': no {lvl} {g!r} in the book")

    model, _ = build_model(inputs.batch.liquidity or LiquiditySettings(), inputs, source)
    nav = float(model.nav)
    unit = np.asarray(model.unit_value, float)
    exposure = pos["quantity"].to_numpy(float) * unit
    priced = np.asarray(inputs.prepared.priced, bool) & (np.abs(exposure) > 0)
    safe = np.where(priced, exposure, 1.0)
    R = np.where(priced[None, :], pnl / safe[None, :], 0.0)
    w0 = np.where(priced, exposure / nav, 0.0)

    targets = settings.families or [f for f in names if f != settings.base_family]
    tasks, fams = [], []
    for f in targets:
        rows = np.flatnonzero(fam == f)
        tasks.append(Task(len(tasks), int(rows[0]), int(rows[-1]) + 1, (0,)))
        fams.append(f)
    base = None
    if settings.base_family:
        rows = np.flatnonzero(fam == settings.base_family)
        base = (int(rows[0]), int(rows[-1]) + 1)
    fc = liquidity.family_conditions(scen)
    classes = pos["asset_class"].to_numpy()
    adv_mult = {}
    from stressgrid.core.scenarioset import LIQUIDITY_CLASSES

    for f in fams:
        _, adv = scen.subset(fam == f).liquidity()
        per_class = adv.min(axis=0)
        adv_mult[f] = np.array([per_class[LIQUIDITY_CLASSES.index(c)] for c in classes])
    groups = {"asset_class": pos["asset_class"].to_numpy(), "sleeve": pos["sleeve"].to_numpy()}
    budget = None
    if settings.objective == "risk_parity":
        budget = position_budgets(settings.risk_budget or RiskBudgetSettings(), ids, groups, priced, source)
    payload = _Payload(R, scen.weights, w0, tuple(fams), base, settings, ids, groups,
                       unit, pos["adv"].to_numpy(float), nav, model, budget, fc, adv_mult)
    try:
        results = executor.map(payload, tasks, fn=_optimise_task, cpu_only=True)
    except TaskFailure as exc:
        from stressgrid.core import InfeasibleError, TaskError

        msg = f"re-optimisation of family {fams[exc.task.task_id]!r}: {exc.reason}"
        if exc.reason.startswith("InfeasibleError"):
            raise InfeasibleError(msg + " (or set optimise.fallback: current)") from None
        raise TaskError(msg) from None
    res = portfolios.ReoptimisationResult.concat(sorted(results, key=lambda r: r.task_id))
    summary = res.summary.copy()
    for col in ("cvar_before", "cvar_after", "var_before", "var_after", "base_cvar_before", "base_cvar_after",
                "base_var_before", "base_var_after"):
        summary[col] = summary[col] * nav  # base currency, like every other risk table
    summary["cost"] = summary["cost"] * nav
    _thin_tails(summary, R @ w0, scen.weights, fam, settings.alpha, inputs.batch.risk.min_tail_scenarios)
    w = res.weights.rename(columns={"position": "position_id"})  # the results schema's position key
    w.insert(3, "asset_class", w["position_id"].map(dict(zip(ids, pos["asset_class"]))))
    w.insert(4, "sleeve", w["position_id"].map(dict(zip(ids, pos["sleeve"]))))
    contrib = res.contributions.rename(columns={"group": "group_name"})
    contrib["cvar_contribution"] = contrib["cvar_contribution"] * nav
    tables = {"reoptimisation": summary, "reoptimisation_weights": w, "reoptimisation_contributions": contrib}
    notes = {"nav": nav, "weights": "exposure / NAV", "unpriced_or_zero_exposure": [ids[i] for i in np.flatnonzero(~priced)]}
    return tables, notes

