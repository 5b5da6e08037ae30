"""The batch's ``factor_model`` section: exposures of each position, sleeve and asset class on declared
factors, by Lasso, ridge and least squares, fitted on the run's own P&L over a dated scenario family.

The observations are the scenarios of ``family``, a ``rolling`` or ``historical`` family: each has a
start and an end date, the book's P&L over it comes from the run, and each factor's move over the same
dates comes from the history (bundled, or the user's: any column of it, whether or not the book holds
it).  A factor is a risk factor of the vocabulary (``EQ.SPX``: its log return; ``IR.USD.10Y``: its
change, decimal) or a linear combination of them (``{FX.BRLUSD: 0.5, FX.MXNUSD: 0.5}``; ``{IR.USD.10Y:
-7}`` is a 7-year-duration bond's return).  Positions are fitted per unit of weight (P&L over exposure),
so ``B^T w`` is the book's exposure for weights ``w`` as fractions of NAV; groups are fitted on their
P&L over NAV.  The position-level loadings of ``method`` feed the ``optimise`` objectives
``factor_target`` and ``factor_risk_parity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["FactorModelSettings", "FittedFactors", "factor_model_tables", "position_exposures"]

METHODS = ("lasso", "ridge", "ols")
TABLE_COLUMNS = ["family", "level", "name", "factor", "method", "loading", "t_stat", "r2", "penalty",
                 "n_observations"]


class FactorModelSettings(BaseModel):
    """``factor_model``: factor exposures from the run's P&L (docs/portfolios.md)."""

    model_config = ConfigDict(extra="forbid")
    family: str  # a rolling or historical family: its scenarios are the observations
    #: factor name -> a risk factor, or {risk factor: coefficient} (a linear combination of their moves)
    factors: dict[str, Union[str, dict[str, float]]] = Field(min_length=1)
    method: Literal["lasso", "ridge", "ols"] = "lasso"  # the loadings the optimise section uses
    alpha: Union[Literal["cv"], float] = "cv"  # penalty of lasso and ridge; cv: time-series cross-validation
    cv_folds: int = Field(default=5, ge=2, le=20)
    levels: list[Literal["position", "sleeve", "asset_class"]] = ["position", "sleeve", "asset_class"]

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v):
        if not isinstance(v, str) and (not np.isfinite(v) or v < 0):
            raise ValueError(f"expected a number >= 0 or cv (got {v!r})")
        return v

    @field_validator("factors")
    @classmethod
    def _factors(cls, v):
        from stressgrid.core.factors import factor_spec

        for name, d in v.items():
            combo = {d: 1.0} if isinstance(d, str) else d
            if not combo:
                raise ValueError(f"factor {name!r}: give a risk factor or a mapping of risk factors to coefficients")
            for f, c in combo.items():
                try:
                    factor_spec(f)
                except Exception as exc:  # the grammar's own message names the factor
                    raise ValueError(f"factor {name!r}: {exc}") from None
                if not np.isfinite(c) or c == 0:
                    raise ValueError(f"factor {name!r}: coefficient of {f} must be a non-zero number (got {c!r})")
        return v

    def combos(self) -> dict[str, dict[str, float]]:
        return {k: ({d: 1.0} if isinstance(d, str) else dict(d)) for k, d in self.factors.items()}


@dataclass(frozen=True)
class FittedFactors:
    """What the optimise section reads: factor names and the position loadings ``[N, K]`` of ``method``
    (zero rows for positions the book cannot price)."""

    names: tuple[str, ...]
    loadings: np.ndarray
    method: str
    family: str
    #: factors on which no position's least-squares loading is significant (|t| < 2; empty when the
    #: family's windows overlap and no t-statistic is reported)
    weak: tuple[str, ...] = ()


def position_exposures(inputs, source: str):
    """``(nav, unit, exposure, priced)``: the NAV, each position's value per unit of quantity, its
    exposure ``q v`` in the base currency, and whether it is priced with a non-zero exposure."""
    from ._liquidity import LiquiditySettings, build_model

    model, _ = build_model(inputs.batch.liquidity or LiquiditySettings(), inputs, source)
    unit = np.asarray(model.unit_value, float)
    exposure = inputs.book.positions["quantity"].to_numpy(float) * unit
    priced = np.asarray(inputs.prepared.priced, bool) & (np.abs(exposure) > 0)
    return float(model.nav), unit, exposure, priced, model


def _factor_moves(settings: FactorModelSettings, history, info: pd.DataFrame, source: str) -> np.ndarray:
    """Each factor's move over each observation's dates ``[T, K]`` (NaN where a series has no level
    within a week before a date)."""
    from stressgrid.core import ConfigError, factor_moves, log_mask
    from stressgrid.scenarios import MAX_STALE_DAYS

    lv = history.levels
    tol = pd.Timedelta(days=MAX_STALE_DAYS)
    start = pd.to_datetime(info["start"]).to_numpy()
    end = pd.to_datetime(info["end"]).to_numpy()
    out = []
    for name, combo in settings.combos().items():
        missing = [f for f in combo if f not in lv.columns]
        if missing:
            raise ConfigError(f"{source}, field 'factor_model.factors.{name}': no history for {', '.join(missing)}; "
                              "add its series to the history (--history or history:) or choose another factor")
        col = np.zeros(len(info))
        for f, c in combo.items():
            s = lv[f].dropna()
            a = s.reindex(pd.DatetimeIndex(start), method="ffill", tolerance=tol).to_numpy()
            b = s.reindex(pd.DatetimeIndex(end), method="ffill", tolerance=tol).to_numpy()
            col = col + c * factor_moves(a[:, None], b[:, None], log_mask([f]))[:, 0]
        out.append(col)
    return np.column_stack(out)


def factor_model_tables(settings: FactorModelSettings, inputs, pnl: np.ndarray | None,
                        source: str) -> tuple[dict[str, pd.DataFrame], dict, FittedFactors]:
    """The ``factor_exposures`` table, notes for the manifest, and the fitted position loadings."""
    from sklearn.model_selection import TimeSeriesSplit

    from stressgrid import portfolios
    from stressgrid.core import ConfigError

    if pnl is None:
        raise ConfigError(f"{source}, field 'factor_model': needs the position-level P&L, which is not kept for "
                          "scenarios x positions over 20 million; run fewer scenarios or positions")
    scen = inputs.scenarios
    fam = np.asarray(scen.family)
    names = list(dict.fromkeys(scen.family))
    field = f"{source}, field 'factor_model.family'"
    if settings.family not in names:
        raise ConfigError(f"{field}: no scenario family {settings.family!r} (families: {', '.join(names)})")
    rows = np.flatnonzero(fam == settings.family)
    info = scen.info.iloc[rows] if len(scen.info) else pd.DataFrame()
    kinds = set(info["kind"]) if "kind" in info.columns else set()
    if not kinds or not kinds <= {"rolling", "historical"} or info[["start", "end"]].isna().any().any():
        raise ConfigError(f"{field}: family {settings.family!r} is {'/'.join(sorted(kinds)) or 'undated'}; the "
                          "factor model needs dated observations: a rolling or historical family")
    F = _factor_moves(settings, inputs.history, info.reset_index(drop=True), source)
    order = np.argsort(pd.to_datetime(info["start"]).to_numpy(), kind="stable")
    ok = np.all(np.isfinite(F), axis=1)[order]
    order = order[ok]
    k = F.shape[1]
    if len(order) < max(3 * (k + 1), 2 * settings.cv_folds + 2):
        raise ConfigError(f"{field}: {len(order)} observations of family {settings.family!r} have every factor's "
                          f"history; need at least {max(3 * (k + 1), 2 * settings.cv_folds + 2)} for {k} factors")
    F = F[order]
    st = pd.to_datetime(info["start"]).to_numpy()[order]
    en = pd.to_datetime(info["end"]).to_numpy()[order]
    overlapping = bool(np.any(st[1:] < en[:-1]))
    P = pnl[rows][order]

    nav, unit, exposure, priced, _ = position_exposures(inputs, source)
    pos = inputs.book.positions
    ids = list(pos["id"])
    ys: list[tuple[str, list[str], np.ndarray]] = []
    for level in settings.levels:
        if level == "position":
            idx = np.flatnonzero(priced)
            ys.append((level, [ids[i] for i in idx], P[:, idx] / exposure[idx]))
        else:
            labels = pos[level].astype(str).to_numpy()
            groups = list(dict.fromkeys(labels[priced]))
            ys.append((level, groups, np.column_stack([P[:, (labels == g) & priced].sum(axis=1) for g in groups]) / nav))
    fnames = list(settings.factors)
    weak: tuple[str, ...] = ()
    cv = TimeSeriesSplit(n_splits=settings.cv_folds)
    frames = []
    loadings = np.zeros((len(ids), k))
    for level, labels, Y in ys:
        for method in METHODS:
            m = portfolios.FactorExposureModel(alpha=settings.alpha, method=method, cv=cv, tol=1e-8).fit(Y, F)
            t = m.t_stats_ if not overlapping else np.full_like(m.loadings_, np.nan)
            if level == "position" and method == "ols" and not overlapping:
                weak = tuple(f for f, col in zip(fnames, np.abs(t).T) if not np.nanmax(col, initial=0.0) >= 2.0)
            frames.append(pd.DataFrame({
                "family": settings.family, "level": level, "name": np.repeat(labels, k),
                "factor": np.tile(fnames, len(labels)), "method": method, "loading": m.loadings_.ravel(),
                "t_stat": t.ravel(), "r2": np.repeat(m.r2_, k), "penalty": np.repeat(m.alpha_, k),
                "n_observations": len(F)}))
            if level == "position" and method == settings.method:
                loadings[np.flatnonzero(priced)] = m.loadings_
    if "position" not in settings.levels:
        m = portfolios.FactorExposureModel(alpha=settings.alpha, method=settings.method, cv=cv, tol=1e-8).fit(
            P[:, priced] / exposure[priced], F)
        loadings[np.flatnonzero(priced)] = m.loadings_
    table = pd.concat(frames, ignore_index=True)[TABLE_COLUMNS]
    notes = {"family": settings.family, "observations": int(len(F)), "dropped_observations": int(len(rows) - len(F)),
             "factors": {k_: v for k_, v in settings.combos().items()}, "method": settings.method,
             "t_stats": ("not reported: the family's windows overlap (use a rolling family with step >= horizon_days)"
                         if overlapping else "least squares, homoskedastic standard errors"),
             "unpriced_or_zero_exposure": [ids[i] for i in np.flatnonzero(~priced)],
             "weak_factors": list(weak)}
    return {"factor_exposures": table}, notes, FittedFactors(tuple(fnames), loadings, settings.method, settings.family, weak)
