"""The batch's ``optimise`` section: the book re-optimised under each scenario family, one grid task per
family, reduced into ``reoptimisation``, ``reoptimisation_weights`` and ``reoptimisation_contributions``.

Weights are exposures as fractions of NAV: ``w_i = q_i v_i / NAV`` with ``v_i`` the position's value per
unit of quantity (liquidity's unit values: price x multiplier x FX for linear instruments, notional for
futures and swaps, the premium for options); a position's return per unit weight in a scenario is its
P&L divided by ``q_i v_i``, so ``R @ w`` is the book's P&L over NAV and re-weighting a position scales it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stressgrid.core.measures import level_label

from ._factors import position_exposures
from ._plan import Task

__all__ = ["FactorTargetSettings", "HRPSettings", "OptimiseSettings", "RiskBudgetSettings", "optimise_tables",
           "position_budgets"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdvCapSettings(_Strict):
    """``optimise.adv_caps``: no position larger than it can be sold in ``horizon_days`` at
    ``participation`` of ADV (cut by each family's liquidity stress)."""

    participation: float = Field(default=0.10, gt=0.0, le=1.0)
    horizon_days: float = Field(default=5.0, gt=0.0)


#: the objectives that re-scale the book along its signs to a gross exposure (risk parity, HRP, HERC)
SIGNED_OBJECTIVES = ("risk_parity", "hrp", "herc")
#: the objectives that read the factor_model section's loadings
FACTOR_OBJECTIVES = ("factor_target", "factor_risk_parity")
#: what to relax, per constraint family, in the batch's words
BATCH_HINTS = {
    "budget": "widen optimise.net_bounds",
    "gross": "raise optimise.max_gross_multiple",
    "bounds": "widen optimise.weight_bounds or scale_bounds, or set signs: free",
    "groups": "widen optimise.group_bounds",
    "turnover": "raise optimise.max_turnover",
    "position_caps": "raise optimise.adv_caps (higher participation or longer horizon_days)",
    "frozen": "unfreeze some of optimise.frozen or optimise.exclude",
    "factor": "widen optimise.factor_target.tolerance",
}
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


class HERCSettings(_Strict):
    """``optimise.herc``: the clustering of ``objective: herc`` (portfolios.HERC, Raffinot 2018)."""

    linkage: Literal["single", "complete", "average", "ward", "weighted"] = "ward"
    #: gap: the mean intra-cluster distance's second difference; gap_std: with the standard deviation; or a count
    n_clusters: Union[Literal["gap", "gap_std"], int] = "gap"
    risk_measure: Literal["variance", "vol", "cvar"] = "variance"  # cvar at optimise.alpha

    @model_validator(mode="after")
    def _check(self) -> "HERCSettings":
        if not isinstance(self.n_clusters, str) and self.n_clusters < 1:
            raise ValueError(f"n_clusters must be gap, gap_std or a count >= 1 (got {self.n_clusters!r})")
        return self


class FactorTargetSettings(_Strict):
    """``optimise.factor_target``: target exposures per factor of the ``factor_model`` section (exposure of
    the book per unit of the factor's move, weights as fractions of NAV); a factor not listed is free."""

    exposures: dict[str, float] = Field(min_length=1)
    tolerance: float = Field(default=0.0, ge=0.0)  # |exposure - target| that counts as on target


class FactorRiskBudgetSettings(_Strict):
    """``optimise.factor_risk_budget``: relative budgets of the systematic risk per factor (default equal)."""

    budgets: dict[str, float] = {}

    @model_validator(mode="after")
    def _check(self) -> "FactorRiskBudgetSettings":
        for k, v in self.budgets.items():
            if not np.isfinite(v) or v <= 0:
                raise ValueError(f"budgets[{k!r}] must be a positive number (got {v!r})")
        return self


class OptimiseSettings(_Strict):
    """``optimise``: re-optimise the book under each stress (docs/portfolios.md).  The section is one
    mapping, or a list of them (cases, each with its own ``name``)."""

    #: the case's name in the tables' ``case`` column (default: the objective); unique within the section
    name: Optional[str] = None
    families: Optional[list[str]] = None  # default: every family but the base one
    base_family: Optional[str] = None  # the unstressed set reported next to the stressed one
    alpha: float = Field(default=0.95, gt=0.5, lt=1.0)
    objective: Literal["min_cvar", "max_return", "risk_parity", "hrp", "herc", "factor_risk_parity",
                       "factor_target"] = "min_cvar"
    cvar_budget: Optional[float] = Field(default=None, gt=0.0)  # fraction of NAV, for max_return
    risk_budget: Optional[RiskBudgetSettings] = None  # risk_parity (default: equal per position, vol)
    hrp: Optional[HRPSettings] = None  # hrp (default: single linkage, variance)
    herc: Optional[HERCSettings] = None  # herc (default: ward linkage, gap rule, variance)
    factor_target: Optional[FactorTargetSettings] = None  # factor_target
    factor_risk_budget: Optional[FactorRiskBudgetSettings] = None  # factor_risk_parity (default equal)
    #: every position's weight (fraction of NAV) in [low, high], on top of the other bounds
    weight_bounds: Optional[tuple[float, float]] = None
    #: keep: no position changes side (default); free: a position may change side within weight_bounds;
    #: or the list of the position ids that may (the others keep their side)
    signs: Union[Literal["keep", "free"], list[str]] = "keep"
    #: the book's net exposure, sum of weights (fractions of NAV), in [low, high]
    net_bounds: Optional[tuple[float, float]] = None
    exclude: list[str] = []  # position ids held at zero (illiquid or excluded names)
    #: factor objectives: the book nearest the current one by tracking error on the family's scenarios, or
    #: by least squares in the weights
    nearest: Literal["tracking_error", "weights"] = "tracking_error"
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
                raise ValueError(f"scale_bounds must satisfy 0 <= low <= 1 <= high (got {list(self.scale_bounds)})")
        if self.objective == "max_return" and self.cvar_budget is None:
            raise ValueError("objective max_return needs cvar_budget (CVaR as a fraction of NAV)")
        for key, objectives in (("risk_budget", ("risk_parity",)), ("hrp", ("hrp",)), ("herc", ("herc",)),
                                ("factor_target", ("factor_target",)), ("factor_risk_budget", ("factor_risk_parity",))):
            if getattr(self, key) is not None and self.objective not in objectives:
                raise ValueError(f"{key} applies to objective {' or '.join(objectives)} (got objective {self.objective})")
        if self.objective == "factor_target" and self.factor_target is None:
            raise ValueError("objective factor_target needs factor_target.exposures (target exposure per factor)")
        if self.weight_bounds is not None:
            lo, hi = self.weight_bounds
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= 0.0 <= hi and lo < hi):
                raise ValueError(f"weight_bounds must satisfy low <= 0 <= high, low < high (got {list(self.weight_bounds)})")
        if self.net_bounds is not None and not self.net_bounds[0] <= self.net_bounds[1]:
            raise ValueError(f"net_bounds must satisfy low <= high (got {list(self.net_bounds)})")
        for lvl, d in self.group_bounds.items():  # a reversed pair failed only inside the grid task (exit 4)
            for g, (lo, hi) in d.items():
                if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                    raise ValueError(f"group_bounds.{lvl}.{g} must satisfy low <= high (got {[lo, hi]})")
        if self.signs != "keep" and self.objective in SIGNED_OBJECTIVES:
            raise ValueError(f"objective {self.objective} keeps the signs of the book; signs: free applies to "
                             "min_cvar, max_return and the factor objectives")
        if self.exclude and self.objective in SIGNED_OBJECTIVES:
            raise ValueError(f"objective {self.objective} keeps every position held; exclude applies to min_cvar, "
                             "max_return and the factor objectives")
        if self.nearest != "tracking_error" and self.objective not in FACTOR_OBJECTIVES:
            raise ValueError(f"nearest applies to the factor objectives (got objective {self.objective})")
        if self.signs != "keep" and self.scale_bounds is not None:
            raise ValueError("signs: free cannot take scale_bounds (multiples of each position's size); "
                             "use weight_bounds")
        if self.objective in SIGNED_OBJECTIVES + FACTOR_OBJECTIVES and self.turnover_penalty:
            raise ValueError(f"objective {self.objective} takes no turnover_penalty (got {self.turnover_penalty}); "
                             "use max_turnover")
        return self

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The scale bounds in force: the given ones, the min_cvar/max_return default, or None."""
        if self.scale_bounds is not None:
            return self.scale_bounds
        if self.objective in SIGNED_OBJECTIVES + FACTOR_OBJECTIVES or self.signs != "keep":
            return None
        return DEFAULT_SCALE_BOUNDS

    @property
    def case(self) -> str:
        return self.name or self.objective


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
    tradable: np.ndarray  # [N] priced, with an exposure, not excluded
    loadings: np.ndarray | None = None  # [N, K] from the factor_model section
    factor_names: tuple[str, ...] = ()
    factor_budget: np.ndarray | None = None  # [K] for objective factor_risk_parity
    weak: tuple[str, ...] = ()  # factors no position loads on significantly (FittedFactors.weak)


def _constraints(pl: _Payload, family: str):
    from stressgrid import portfolios

    st = pl.settings
    signed = st.objective in SIGNED_OBJECTIVES
    if st.bounds is not None:
        lo, hi = st.bounds
        a, b = pl.w0 * lo, pl.w0 * hi
        lower, upper = np.minimum(a, b), np.maximum(a, b)
    else:  # the signs of the current book, except where free: either side (within weight_bounds or the gross)
        lower = np.where(pl.w0 > 0, 0.0, np.where(pl.w0 < 0, -np.inf, 0.0))
        upper = np.where(pl.w0 < 0, 0.0, np.where(pl.w0 > 0, np.inf, 0.0))
        free = (np.ones(len(pl.w0), bool) if st.signs == "free" else
                np.isin(np.asarray(pl.ids, dtype=object), [] if st.signs == "keep" else st.signs))
        lower, upper = np.where(free, -np.inf, lower), np.where(free, np.inf, upper)
    if st.weight_bounds is not None:
        lower, upper = np.maximum(lower, st.weight_bounds[0]), np.minimum(upper, st.weight_bounds[1])
    lower = np.where(pl.tradable, lower, 0.0)  # unpriced, zero-exposure and excluded positions stay at zero
    upper = np.where(pl.tradable, upper, 0.0)
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
        budget=None, net_bounds=None if st.net_bounds is None else tuple(st.net_bounds), max_gross=max_gross,
        lower=lower, upper=upper,
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
        return portfolios.SignedHRP(linkage=h.linkage, optimal_ordering=h.optimal_ordering, risk_measure=h.risk_measure,
                                    alpha=st.alpha, gross=gross, constraints=cs)
    if st.objective == "herc":
        h = st.herc or HERCSettings()
        return portfolios.SignedHERC(linkage=h.linkage, n_clusters=h.n_clusters, risk_measure=h.risk_measure,
                                     alpha=st.alpha, gross=gross, constraints=cs)
    if st.objective == "factor_target":
        ft = st.factor_target
        target = np.array([ft.exposures.get(k, np.nan) for k in pl.factor_names])
        free = np.isnan(target)
        if free.any():  # factors without a target: a band as wide as the book can make
            target = np.where(free, 0.0, target)
            return _PartialTarget(pl.loadings, target, ~free, cs, ft.tolerance, pl.factor_names, st.nearest)
        return portfolios.FactorTargetBook(pl.loadings, target, cs, ft.tolerance, pl.factor_names, BATCH_HINTS, st.nearest)
    if st.objective == "factor_risk_parity":
        return portfolios.FactorRiskParityBook(pl.loadings, pl.factor_budget, cs, pl.factor_names, BATCH_HINTS,
                                               st.nearest)
    return portfolios.MeanCVaR(alpha=st.alpha, objective=st.objective, cvar_budget=st.cvar_budget, constraints=cs)


class _PartialTarget:
    """factor_target with some factors left free: targeting on the listed factors' loadings only."""

    def __init__(self, loadings, target, listed, cs, tolerance, names, nearest):
        from stressgrid import portfolios

        self._inner = portfolios.FactorTargetBook(loadings[:, listed], target[listed], cs, tolerance,
                                                  [n for n, k in zip(names, listed) if k], BATCH_HINTS, nearest)
        self._loadings, self._listed, self._target = loadings, listed, target

    def fit(self, returns, sample_weight=None, current_weights=None):
        self._inner.fit(returns, sample_weight, current_weights)
        self.weights_, self.status_, self.diagnosis_ = self._inner.weights_, self._inner.status_, self._inner.diagnosis_
        self.factor_exposures_ = self._loadings.T @ self.weights_
        self.factor_target_ = np.where(self._listed, self._target, np.nan)
        return self


def position_budgets(rb: RiskBudgetSettings, ids, groups: dict, held: np.ndarray, source: str,
                     section: str = "optimise") -> np.ndarray:
    """Risk budgets per position ``[N]`` (summing to 1, zero where the book holds nothing) from
    ``optimise.risk_budget``: a group's budget is split equally over its positions held.

    Raises
    ------
    ConfigError
        A budget for a position or group the book does not have, or one the book does not hold; a
        position or group held without a budget when ``budgets`` is given.
    """
    from stressgrid.core import ConfigError

    field = f"{source}, field '{section}.risk_budget.budgets'"
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
    if pl.loadings is not None:  # contributions by factor, from the factor returns implied in each scenario
        kw.update(loadings=pl.loadings, factor_names=list(pl.factor_names),
                  factor_returns=portfolios.mimicking_factor_returns(R, pl.loadings))
        if pl.base is not None:
            kw["base_factor_returns"] = portfolios.mimicking_factor_returns(kw["base_returns"], pl.loadings)
    cost = liquidity.cost_fn(pl.model, pl.conditions.get(fam))
    res = portfolios.reoptimise_family(
        fam, R, pl.w0, methods={st.objective: opt}, alpha=st.alpha, sample_weight=p, positions=list(pl.ids),
        groups=pl.groups, cost_fn=cost, fallback="current" if st.fallback == "current" else None, **kw)
    res.task_id = task.task_id
    res.exposures = None
    if pl.loadings is not None:
        w = res.weights["weight_new"].to_numpy(float)
        target = getattr(opt, "factor_target_", None)
        budget = getattr(opt, "factor_risk_budget_", None)
        omega = portfolios.weighted_covariance(portfolios.mimicking_factor_returns(R, pl.loadings), p)

        def shares(x):
            y = pl.loadings.T @ x
            v = float(y @ omega @ y)
            return y * (omega @ y) / v if v > 0 else np.full(len(y), np.nan)

        k = len(pl.factor_names)
        fell_back = res.summary["status"].iloc[0] == "fallback"
        res.exposures = pd.DataFrame({
            "family": fam, "method": st.objective, "factor": list(pl.factor_names),
            "target": np.full(k, np.nan) if target is None or fell_back else np.asarray(target, float),
            "exposure_before": pl.loadings.T @ pl.w0, "exposure_after": pl.loadings.T @ w,
            "risk_budget": np.full(k, np.nan) if budget is None or fell_back else np.asarray(budget, float),
            "risk_share_before": shares(pl.w0), "risk_share_after": shares(w)})
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
        lambda k: f"thin tail: the CVaR at {level_label(alpha)} rests on {k} scenario{'' if k == 1 else 's'}, fewer than "
                  f"risk.min_tail_scenarios ({min_tail}); the optimum fits those scenarios")
    old = summary["message"].where(summary["message"].notna(), None)
    summary["message"] = [(f"{n}; {m}" if m else n) if thin else m
                          for n, m, thin in zip(note, old, summary["thin_tail"])]


def optimise_tables(cases, inputs, pnl: np.ndarray | None, executor, source: str,
                    factors=None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Re-optimise per case and family on the executor, every (case, family) one task of one map;
    tables (each with a column after ``method``: ``case_name``) and notes for the manifest.  ``cases``:
    one :class:`OptimiseSettings` or a list of them; ``factors``: the factor_model section's
    :class:`FittedFactors` (needed by the factor objectives)."""
    from stressgrid.core import ConfigError, InfeasibleError, TaskError
    from stressgrid.core.executor import TaskFailure

    single = isinstance(cases, OptimiseSettings)
    cases = [cases] if single else list(cases)
    if pnl is None:
        raise ConfigError(f"{source}, field 'optimise': needs the position-level P&L, which is not kept for "
                          "scenarios x positions over 20 million; run fewer scenarios or positions")
    book = _BookReturns.of(inputs, pnl, source)
    prepared = [_prepare_case(st, inputs, book, source, "optimise" if single or len(cases) == 1 else f"optimise[{i}]",
                              factors) for i, st in enumerate(cases)]
    tasks, where = [], []
    for c, (payload, local, _) in enumerate(prepared):
        for t in local:
            tasks.append(Task(len(tasks), t.start, t.stop, (c, t.task_id)))
            where.append((c, t.task_id))
    try:
        results = executor.map(tuple(p for p, _, _ in prepared), tasks, fn=_optimise_any_task, cpu_only=True)
    except TaskFailure as exc:
        c, local = where[exc.task.task_id]
        payload, _, field = prepared[c]
        at = "" if field == "optimise" else f" ({field}, case {payload.settings.case})"
        msg = f"re-optimisation of family {payload.families[local]!r}{at}: {exc.reason}"
        if exc.reason.startswith("InfeasibleError"):
            raise InfeasibleError(msg + f" (or set {field}.fallback: current)") from None
        raise TaskError(msg) from None
    tables: dict[str, list[pd.DataFrame]] = {}
    notes: dict = {}
    for c, (payload, _, field) in enumerate(prepared):
        mine = sorted((r for r in results if r.case_index == c), key=lambda r: r.task_id)
        t, n = _case_tables(payload, mine, inputs, book)
        for k, df in t.items():
            df = df.copy()
            df.insert(list(df.columns).index("method") + 1, "case_name", payload.settings.case)
            tables.setdefault(k, []).append(df)
        notes.update(n)
        notes.setdefault("cases", {})[payload.settings.case] = payload.settings.objective
    return {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}, notes


@dataclass(frozen=True)
class _BookReturns:
    """What every case reads: the NAV, the positions' returns per unit weight ``[S, N]``, the current
    weights, which positions are priced, the unit values and the liquidity model."""

    nav: float
    returns: np.ndarray
    w0: np.ndarray
    priced: np.ndarray
    unit: np.ndarray
    model: object

    @classmethod
    def of(cls, inputs, pnl: np.ndarray, source: str) -> "_BookReturns":
        nav, unit, exposure, priced, model = position_exposures(inputs, source)
        safe = np.where(priced, exposure, 1.0)
        R = np.where(priced[None, :], pnl / safe[None, :], 0.0)
        return cls(nav, R, np.where(priced, exposure / nav, 0.0), priced, unit, model)


def _optimise_any_task(payloads: tuple, task: Task):
    """The task of one case (``task.seed = (case, family index within the case)``)."""
    c, local = task.seed
    res = _optimise_task(payloads[c], Task(local, task.start, task.stop, (0,)))
    res.case_index = c
    res.task_id = task.task_id  # the executor returns results by the map's task ids
    return res


def _prepare_case(settings: OptimiseSettings, inputs, book: _BookReturns, source: str, field: str, factors):
    """One case's payload, its tasks (one per family) and its field name in messages; checks the case's
    names against the book and the run."""
    from stressgrid import liquidity

    from stressgrid.core import ConfigError

    scen = inputs.scenarios
    fam = np.asarray(scen.family)
    names = list(dict.fromkeys(scen.family))
    for key, val in (("families", settings.families or []), ("base_family", [settings.base_family] if settings.base_family else [])):
        for f in val:
            if f not in names:
                raise ConfigError(f"{source}, field '{field}.{key}': no scenario family {f!r} (families: {', '.join(names)})")
    pos = inputs.book.positions
    ids = tuple(pos["id"])
    for key in ("frozen", "exclude", "signs"):
        for k in (getattr(settings, key) if isinstance(getattr(settings, key), list) else []):
            if k not in ids:
                raise ConfigError(f"{source}, field '{field}.{key}': no position {k!r} in the book")
    for lvl, d in settings.group_bounds.items():
        if lvl not in ("asset_class", "sleeve"):
            raise ConfigError(f"{source}, field '{field}.group_bounds': level {lvl!r} must be asset_class or sleeve")
        for g in d:
            if g not in set(pos[lvl]):
                raise ConfigError(f"{source}, field '{field}.group_bounds.{lvl}': no {lvl} {g!r} in the book")

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
        budget = position_budgets(settings.risk_budget or RiskBudgetSettings(), ids, groups, book.priced, source, field)
    loadings, fnames, fbudget, weak = None, (), None, ()
    if factors is not None:
        loadings, fnames, weak = factors.loadings, factors.names, factors.weak
    if settings.objective in FACTOR_OBJECTIVES:
        if factors is None:
            raise ConfigError(f"{source}, field '{field}.objective': {settings.objective} needs the factor_model section "
                              "(the factors and the family their exposures are fitted on)")
        given = (settings.factor_target.exposures if settings.objective == "factor_target"
                 else (settings.factor_risk_budget.budgets if settings.factor_risk_budget else {}))
        key = "factor_target.exposures" if settings.objective == "factor_target" else "factor_risk_budget.budgets"
        for k in given:
            if k not in fnames:
                raise ConfigError(f"{source}, field '{field}.{key}': no factor {k!r} in factor_model.factors "
                                  f"({', '.join(fnames)})")
        if settings.objective == "factor_risk_parity" and given:
            missing = [k for k in fnames if k not in given]
            if missing:
                raise ConfigError(f"{source}, field '{field}.{key}': no budget for factor(s) {', '.join(missing)}; give "
                                  "every factor a budget, or none for equal budgets")
            fbudget = np.array([given[k] for k in fnames], float)
    tradable = book.priced & ~np.isin(np.asarray(ids, dtype=object), settings.exclude)
    payload = _Payload(book.returns, scen.weights, book.w0, tuple(fams), base, settings, ids, groups,
                       book.unit, pos["adv"].to_numpy(float), book.nav, book.model, budget, fc, adv_mult, tradable,
                       loadings, tuple(fnames), fbudget, weak)
    return payload, tasks, field


def check_sections(batch, positions: pd.DataFrame, priced: np.ndarray, history, source: str) -> None:
    """What the optimise and factor_model sections name, checked against the book, the scenario families
    and the history before any scenario is drawn (so ``stressgrid validate`` reports it): families,
    positions, groups, risk-budget names, and each factor's series.  Raises :class:`core.ConfigError`."""
    from stressgrid.core import ConfigError

    names = [s.name for s in batch.scenarios]
    ids = tuple(positions["id"])
    held = np.asarray(priced, bool) & (positions["quantity"].to_numpy(float) != 0)
    groups = {"asset_class": positions["asset_class"].to_numpy(), "sleeve": positions["sleeve"].to_numpy()}
    cases = batch.optimise or []
    for i, st in enumerate(cases):
        field = "optimise" if len(cases) == 1 else f"optimise[{i}]"
        for key, val in (("families", st.families or []), ("base_family", [st.base_family] if st.base_family else [])):
            for f in val:
                if f not in names:
                    raise ConfigError(f"{source}, field '{field}.{key}': no scenario family {f!r} (families: {', '.join(names)})")
        for key in ("frozen", "exclude", "signs"):
            for k in (getattr(st, key) if isinstance(getattr(st, key), list) else []):
                if k not in ids:
                    raise ConfigError(f"{source}, field '{field}.{key}': no position {k!r} in the book")
        for lvl, d in st.group_bounds.items():
            if lvl not in groups:
                raise ConfigError(f"{source}, field '{field}.group_bounds': level {lvl!r} must be asset_class or sleeve")
            for g in d:
                if g not in set(groups[lvl]):
                    raise ConfigError(f"{source}, field '{field}.group_bounds.{lvl}': no {lvl} {g!r} in the book")
        if st.objective == "risk_parity":
            position_budgets(st.risk_budget or RiskBudgetSettings(), ids, groups, held, source, field)
    fm = batch.factor_model
    if fm is not None:
        for name, combo in fm.combos().items():
            missing = [f for f in combo if f not in history.levels.columns]
            if missing:
                raise ConfigError(f"{source}, field 'factor_model.factors.{name}': no history for {', '.join(missing)}; "
                                  "add its series to the history (--history or history:) or choose another factor")


def _case_tables(pl: _Payload, results: list, inputs, book: _BookReturns) -> tuple[dict[str, pd.DataFrame], dict]:
    """One case's tables from its tasks' results."""
    from stressgrid import portfolios

    nav, ids, pos = book.nav, pl.ids, inputs.book.positions
    res = portfolios.ReoptimisationResult.concat(results)
    summary = res.summary.copy()
    for col in ("cvar_before", "cvar_after", "var_before", "var_after", "base_cvar_before", "base_cvar_after",
                "base_var_before", "base_var_after"):
        summary[col] = summary[col] * nav  # base currency, like every other risk table
    summary["cost"] = summary["cost"] * nav
    _thin_tails(summary, book.returns @ book.w0, inputs.scenarios.weights, np.asarray(inputs.scenarios.family),
                pl.settings.alpha, inputs.batch.risk.min_tail_scenarios)
    if pl.settings.objective in FACTOR_OBJECTIVES and pl.weak:
        # a factor no position loads on significantly: its exposure (and risk share) rests on noise
        listed = (set(pl.settings.factor_target.exposures) if pl.settings.objective == "factor_target"
                  else set(pl.factor_names))
        weak = [f for f in pl.weak if f in listed]
        if weak:
            note = (f"weak factor{'s' if len(weak) > 1 else ''} {', '.join(weak)}: no position's least-squares "
                    "loading is significant (|t| < 2 in factor_exposures); the exposure to it rests on noise")
            old = summary["message"].where(summary["message"].notna(), None)
            summary["message"] = [f"{m}; {note}" if m else note for m in old]
    w = res.weights.rename(columns={"position": "position_id"})  # the results schema's position key
    w.insert(3, "asset_class", w["position_id"].map(dict(zip(ids, pos["asset_class"]))))
    w.insert(4, "sleeve", w["position_id"].map(dict(zip(ids, pos["sleeve"]))))
    contrib = res.contributions.rename(columns={"group": "group_name"})
    contrib["cvar_contribution"] = contrib["cvar_contribution"] * nav
    tables = {"reoptimisation": summary, "reoptimisation_weights": w, "reoptimisation_contributions": contrib}
    if pl.loadings is not None:
        tables["reoptimisation_exposures"] = pd.concat([r.exposures for r in results], ignore_index=True)
    notes = {"nav": nav, "weights": "exposure / NAV",
             "unpriced_or_zero_exposure": [ids[i] for i in np.flatnonzero(~book.priced)]}
    return tables, notes
