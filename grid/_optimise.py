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

__all__ = ["OptimiseSettings", "optimise_tables"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdvCapSettings(_Strict):
    """``optimise.adv_caps``: no position larger than it can be sold in ``horizon_days`` at
    ``participation`` of ADV (cut by each family's liquidity stress)."""

    participation: float = Field(default=0.10, gt=0.0, le=1.0)
    horizon_days: float = Field(default=5.0, gt=0.0)


class OptimiseSettings(_Strict):
    """``optimise``: re-optimise the book under each stress (docs/portfolios.md)."""

    families: Optional[list[str]] = None  # default: every family but the base one
    base_family: Optional[str] = None  # the unstressed set reported next to the stressed one
    alpha: float = Field(default=0.95, gt=0.5, lt=1.0)
    objective: Literal["min_cvar", "max_return"] = "min_cvar"
    cvar_budget: Optional[float] = Field(default=None, gt=0.0)  # fraction of NAV, for max_return
    #: each position's new size as a multiple of its current one, in [low, high] (no sign flips)
    scale_bounds: tuple[float, float] = (0.0, 2.0)
    #: gross exposure at most this multiple of the current book's (1: no added leverage)
    max_gross_multiple: float = Field(default=1.0, gt=0.0)
    max_turnover: Optional[float] = Field(default=None, gt=0.0)  # fraction of NAV
    turnover_penalty: float = Field(default=0.0, ge=0.0)
    adv_caps: Optional[AdvCapSettings] = None
    frozen: list[str] = []  # position ids kept as they are
    group_bounds: dict[str, dict[str, tuple[float, float]]] = {}  # level -> group -> (low, high) net weight
    fallback: Literal["current", "error"] = "current"

    @model_validator(mode="after")
    def _check(self) -> "OptimiseSettings":
        lo, hi = self.scale_bounds
        if not 0.0 <= lo <= 1.0 <= hi:
            raise ValueError(f"scale_bounds {list(self.scale_bounds)} must satisfy 0 <= low <= 1 <= high")
        if self.objective == "max_return" and self.cvar_budget is None:
            raise ValueError("objective max_return needs cvar_budget (CVaR as a fraction of NAV)")
        return self


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
    conditions: dict  # family -> liquidity.Conditions (uniform, the family's most stressed)
    adv_mult: dict  # family -> [N] ADV multiplier


def _constraints(pl: _Payload, family: str):
    from stressgrid import portfolios

    st = pl.settings
    lo, hi = st.scale_bounds
    a, b = pl.w0 * lo, pl.w0 * hi
    lower, upper = np.minimum(a, b), np.maximum(a, b)
    idx = {k: i for i, k in enumerate(pl.ids)}
    frozen = [idx[k] for k in st.frozen]
    max_position = None
    if st.adv_caps is not None:
        caps = portfolios.adv_caps(pl.nav, pl.unit_value, pl.adv, st.adv_caps.participation, st.adv_caps.horizon_days,
                                   pl.adv_mult.get(family, 1.0))
        # a position already above its cap may keep its size but not grow
        max_position = np.maximum(caps, np.abs(pl.w0))
    gb = {lvl: {g: tuple(v) for g, v in d.items()} for lvl, d in st.group_bounds.items()}
    return portfolios.Constraints(
        budget=None, max_gross=st.max_gross_multiple * float(np.abs(pl.w0).sum()), lower=lower, upper=upper,
        groups={lvl: pl.groups[lvl] for lvl in gb} or None, group_bounds=gb or None,
        max_turnover=st.max_turnover, turnover_penalty=st.turnover_penalty, max_position=max_position,
        frozen=frozen or None,
    )


def _optimise_task(pl: _Payload, task: Task):
    """One family: its rows ``task.start:task.stop`` of the returns."""
    from stressgrid import liquidity
    from stressgrid import portfolios

    fam = pl.families[task.task_id]
    st = pl.settings
    R = pl.returns[task.start:task.stop]
    p = pl.weights[task.start:task.stop]
    p = p / p.sum()
    opt = portfolios.MeanCVaR(alpha=st.alpha, objective=st.objective, cvar_budget=st.cvar_budget,
                              constraints=_constraints(pl, fam))
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
    payload = _Payload(R, scen.weights, w0, tuple(fams), base, settings, ids,
                       {"asset_class": pos["asset_class"].to_numpy(), "sleeve": pos["sleeve"].to_numpy()},
                       unit, pos["adv"].to_numpy(float), nav, model, fc, adv_mult)
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

