"""Historical scenarios: crisis replays (calibrated and propagated where the history lacks a factor)
and rolling windows of the factor history."""

from __future__ import annotations

from datetime import date
from typing import Literal, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stressgrid.core import ConfigError, History, ScenarioSet, factor_moves, log_mask

from ._amplify import AmplifySpec
from ._common import parse_shock
from ._correlation import pairwise_covariance
from ._library import CRISIS_LIBRARY, CrisisEvent
from ._views import View

__all__ = ["CustomEvent", "HistoricalSpec", "RollingSpec", "replay_events", "rolling_windows", "propagation_model"]

#: an observation older than this many calendar days before a window date does not count
MAX_STALE_DAYS = 7


class CustomEvent(BaseModel):
    """A user's own event: a name, a window of the history and optional factor overrides
    (``{factor: shock}``: ``"-30%"``, ``"+100bp"`` or a number in the factor's convention) that win
    over the data."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    start: date
    end: date
    description: str = ""
    overrides: dict[str, Union[float, str]] = {}

    @model_validator(mode="after")
    def _order(self) -> "CustomEvent":
        if self.end <= self.start:
            raise ValueError(f"event {self.name!r}: end {self.end} must be after start {self.start}")
        for k, v in self.overrides.items():
            parse_shock(v, k)
        return self


class HistoricalSpec(BaseModel):
    """Replay named crisis windows: each factor's move from the window's start to its end, as a daily
    path and as the instantaneous shock.

    Batch-file keys: ``kind: historical``, ``name`` (the family), ``events`` (names from the crisis
    library), ``custom`` (a list of ``{name, start, end, description, overrides}``), ``fill`` (default
    true: calibrate factors the history lacks in a window from public facts and fill the rest by
    conditional propagation; false: leave them uncovered), ``amplify``.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["historical"]
    name: str = "historical"
    events: list[str] = []
    custom: list[CustomEvent] = []
    fill: bool = True
    amplify: Optional[AmplifySpec] = None

    @field_validator("events")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for e in v:
            if e not in CRISIS_LIBRARY:
                raise ValueError(f"unknown event {e!r}; the library has {', '.join(CRISIS_LIBRARY)}")
        return v

    @model_validator(mode="after")
    def _some(self) -> "HistoricalSpec":
        if not self.events and not self.custom:
            raise ValueError("give at least one of 'events' or 'custom'")
        names = self.events + [c.name for c in self.custom]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"event {sorted(dup)[0]!r} appears twice")
        return self

    def windows(self) -> list[CrisisEvent]:
        out = [CRISIS_LIBRARY[e] for e in self.events]
        out += [CrisisEvent(c.name, pd.Timestamp(c.start), pd.Timestamp(c.end), c.description or "user event", "user",
                            None, {k: parse_shock(v, k) for k, v in c.overrides.items()}) for c in self.custom]
        return out


class RollingSpec(BaseModel):
    """Every overlapping ``horizon_days`` window of the history between ``start`` and ``end``
    (historical simulation), each one scenario of equal weight.

    Batch-file keys: ``kind: rolling``, ``name``, ``horizon_days`` (trading days), ``start``, ``end``
    (default: the whole history of the book's factors), ``step`` (days between window starts, default 1),
    ``amplify``, ``views`` (scenario probabilities by entropy pooling, :mod:`._views`; the grid applies them).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["rolling"]
    name: str = "rolling"
    horizon_days: int = Field(default=10, ge=1, le=260)
    #: value the book at the horizon (time passes: kernels.age) or at the as-of date
    revaluation: Literal["horizon", "instantaneous"] = "horizon"
    start: Optional[date] = None
    end: Optional[date] = None
    step: int = Field(default=1, ge=1)
    amplify: Optional[AmplifySpec] = None
    views: Optional[list[View]] = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> "RollingSpec":
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"start {self.start} is not before end {self.end}")
        return self


def _window_levels(levels: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows of ``levels`` from the last trading day on or before ``start`` to ``end`` (forward
    filled inside the window), and which factors were observed at the start and at the end."""
    upto_end = levels.loc[:end]
    n_before = int(levels.index.searchsorted(start, side="right"))  # rows on or before the start date
    if n_before == 0:
        return levels.iloc[0:0], np.zeros(levels.shape[1], bool), np.zeros(levels.shape[1], bool)
    first = levels.index[n_before - 1]
    seen = upto_end.notna().to_numpy()
    dates = upto_end.index

    def last_seen(rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Per factor: whether it has an observation in the first ``rows`` rows, and the row of the last."""
        m = seen[:rows]
        has = m.any(axis=0)
        return has, rows - 1 - np.argmax(m[::-1], axis=0)

    def fresh(rows: int, at: pd.Timestamp) -> np.ndarray:
        has, row = last_seen(rows)
        return has & np.asarray((at - dates[row]).days <= MAX_STALE_DAYS)

    ok_start = fresh(n_before, start)
    ok_end = fresh(len(upto_end), end) & ok_start
    # start level: last observation on or before the start date, then forward filled inside the window
    has, row = last_seen(n_before)
    filled = upto_end.iloc[n_before - 1:].copy()
    start_row = upto_end.to_numpy()[row, np.arange(len(row))]
    filled.iloc[0] = np.where(has, start_row, np.nan)
    return filled.ffill(), ok_start, ok_end


def propagation_model(history: History, factors: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Daily covariance ``[F, F]`` of ``factors`` for filling, from pairwise-complete moves over the
    whole history, repaired to a valid correlation (:func:`pairwise_covariance`); a factor the history
    lacks has NaN rows.  Returns (cov, has history ``[F]``, repair distance)."""
    lv = history.levels.reindex(columns=list(factors))
    return pairwise_covariance(lv, log_mask(factors))


#: each propagated factor is conditioned on this many known factors, those most correlated with it
PROPAGATION_NEIGHBOURS = 5


def _propagate(cov: np.ndarray, known: np.ndarray, target: np.ndarray, known_paths: np.ndarray,
               neighbours: int = PROPAGATION_NEIGHBOURS) -> np.ndarray:
    """Conditional expectation of ``target`` factors given known ones, day by day of a path.

    ``E[x_t | x_k] = S_tk S_kk^+ x_k`` (zero-mean Gaussian conditioning, [MFE15, Prop. 6.2]); the
    coefficient matrix does not depend on the horizon, so it maps daily covariances onto crisis-sized
    moves.  Each target is conditioned only on the ``neighbours`` known factors with the largest absolute
    correlation to it: conditioning on every known factor at once (dozens, collinear, some calibrated to
    moves of tens of daily standard deviations) over-fits the estimated covariance, and in the GFC window
    moved the Mexican peso by -82% where the market moved about -35%.  With five neighbours, hiding a
    replayed factor and propagating it recovers its realised crisis move in sign and size (tested).
    ``known_paths`` is ``[H, K]`` (columns in the order of ``known``); returns ``[H, T]``.
    """
    sd = np.sqrt(np.diag(cov))
    out = np.zeros((known_paths.shape[0], len(target)))
    for j, t in enumerate(target):
        corr = np.abs(cov[t, known]) / (sd[t] * sd[known])
        corr = np.where(np.isfinite(corr), corr, -1.0)
        pick = np.argsort(-corr, kind="stable")[:neighbours]
        pick = pick[corr[pick] >= 0]
        if len(pick) == 0:
            continue
        k = known[pick]
        beta = cov[t, k] @ np.linalg.pinv(cov[np.ix_(k, k)], rcond=1e-10, hermitian=True)
        out[:, j] = known_paths[:, pick] @ beta
    return out


def replay_events(
    events: Sequence[CrisisEvent],
    history: History,
    factors: Sequence[str],
    family: str,
    fill: bool = True,
    levels: Mapping[str, float] | None = None,
) -> ScenarioSet:
    """Replay each event on ``factors``.

    The shock is the move from the last close on or before ``start`` to the last close on or before
    ``end`` (log-return for prices, difference otherwise); the path is the cumulative move after each
    trading day of the window.  A factor observed within a week of both ends is *replayed*.

    With ``fill`` (the default), for the other factors:

    1. *calibrated*: an event's public facts (:class:`CrisisFacts`) and a custom event's overrides set the
       shock (overrides win over data too); the path ramps linearly to it over the window's days;
    2. *propagated*: a factor with history elsewhere moves by its conditional expectation given the
       replayed and calibrated factors, day by day of the path (:func:`_propagate`, covariance of
       :func:`propagation_model`).

    Filled factors are covered and ``filled``; the info columns ``calibrated`` and ``propagated`` name
    them.  The rest (no data, no fact, no history at all) have shock 0 and are not covered.

    Parameters
    ----------
    levels : current factor levels (the market snapshot): the VIX figure is a level, and its shock is
        taken from ``levels['VOL.SPX.ATM']`` (or the history's last VOL.SPX.ATM close if absent)

    Raises
    ------
    ConfigError
        If an event's window starts outside the history or has no trading day.
    """
    factors = list(factors)
    F = len(factors)
    lv_all = history.levels
    extra = []
    for ev in events:
        extra += list(ev.overrides)
        if fill and ev.facts is not None:
            extra += ev.facts.factors
    universe = factors + [f for f in dict.fromkeys(extra) if f not in factors]
    lv = lv_all.reindex(columns=universe)
    is_log = log_mask(universe)
    lev = dict(levels or {})
    if "VOL.SPX.ATM" not in lev and "VOL.SPX.ATM" in lv_all.columns and lv_all["VOL.SPX.ATM"].notna().any():
        lev["VOL.SPX.ATM"] = float(lv_all["VOL.SPX.ATM"].dropna().iloc[-1])
    model = None
    shocks, paths, covered, filled, info = [], [], [], [], []
    for ev in events:
        if ev.start < lv.index[0] or ev.start > lv.index[-1]:
            raise ConfigError(
                f"scenario family {family!r}, event {ev.name!r}: window {ev.start.date()}..{ev.end.date()} "
                f"is outside the history {lv.index[0].date()}..{lv.index[-1].date()}"
            )
        window, ok_start, ok_end = _window_levels(lv, ev.start, ev.end)
        base = window.iloc[0].to_numpy()
        moves = factor_moves(base[None, :], window.to_numpy()[1:], is_log)
        if len(moves) == 0:
            raise ConfigError(f"scenario family {family!r}, event {ev.name!r}: no trading day inside the window")
        H = len(moves)
        moves = np.where(ok_end[None, :], np.nan_to_num(moves, nan=0.0), 0.0)
        replayed = ok_end.copy()
        calibrated = np.zeros(len(universe), bool)
        propagated = np.zeros(len(universe), bool)
        ramp = np.arange(1, H + 1, dtype=float)[:, None] / H
        if fill:
            cal: dict[str, float] = {}
            if ev.facts is not None:
                cal.update({f: v for f, v in ev.facts.shocks(lev).items() if not replayed[universe.index(f)]})
            cal.update(ev.overrides)
            for f, v in cal.items():
                j = universe.index(f)
                moves[:, j] = v * ramp[:, 0]
                calibrated[j] = True
                replayed[j] = False
            if model is None:
                model = propagation_model(history, universe)
            cov, has, _ = model
            known = np.flatnonzero((replayed | calibrated) & has)
            target = np.flatnonzero(~(replayed | calibrated) & has)
            if len(known) and len(target):
                moves[:, target] = _propagate(cov, known, target, moves[:, known])
                propagated[target] = True
        else:
            for f, v in ev.overrides.items():
                j = universe.index(f)
                moves[:, j] = v * ramp[:, 0]
                calibrated[j] = True
                replayed[j] = False
        cov_mask = replayed | calibrated | propagated
        shocks.append(moves[-1, :F])
        paths.append(moves[:, :F])
        covered.append(cov_mask[:F])
        filled.append((calibrated | propagated)[:F])
        names = np.array(universe)
        src = ev.source
        if calibrated.any() and ev.facts is not None:
            src += f"; calibrated: {ev.facts.note}" if ev.facts.note else ""
        info.append(
            dict(scenario=ev.name, family=family, kind="historical", start=ev.start, end=ev.end,
                 days=H, description=ev.description, source=src,
                 uncovered=",".join(f for f, c in zip(factors, cov_mask[:F]) if not c),
                 calibrated=",".join(names[:F][calibrated[:F]]),
                 propagated=",".join(names[:F][propagated[:F]]))
        )
    H = max(len(p) for p in paths)
    padded = np.stack([np.concatenate([p, np.repeat(p[-1:], H - len(p), axis=0)]) for p in paths])
    S = len(events)
    return ScenarioSet(
        names=tuple(ev.name for ev in events),
        factors=tuple(factors),
        shocks=np.stack(shocks),
        weights=np.full(S, 1.0 / S),
        family=(family,) * S,
        covered=np.stack(covered),
        paths=padded,
        info=pd.DataFrame(info),
        filled=np.stack(filled),
    )


def rolling_windows(spec: RollingSpec, history: History, factors: Sequence[str]) -> ScenarioSet:
    """Overlapping ``horizon_days`` moves of ``factors``.

    The windows run over the dates on which every factor observed on at least half the dates of the
    period is observed.  A factor observed on fewer dates (VIX in the bundled history starts in 2014, say)
    moves in the windows where it is observed at both ends (its level carried over at most
    :data:`MAX_STALE_DAYS` calendar days to the windows' dates) and is held flat, and flagged as not
    covered, in the others.
    """
    factors = list(factors)
    lv_all = history.levels.reindex(columns=factors)
    lv_all = lv_all.loc[pd.Timestamp(spec.start) if spec.start else None : pd.Timestamp(spec.end) if spec.end else None]
    frac = lv_all.notna().mean().to_numpy() if len(lv_all) else np.zeros(len(factors))
    ok = frac >= 0.5
    sparse = ~ok & (frac > 0)
    lv = lv_all.loc[:, ok].dropna(how="any")
    h = spec.horizon_days
    if len(lv) <= h:
        raise ConfigError(
            f"scenario family {spec.name!r}: only {len(lv)} dates on which the book's factors are "
            f"observed{' in the window' if spec.start or spec.end else ''}, need more than horizon_days={h}"
        )
    x = np.ones((len(lv), len(factors)))  # placeholder level 1 for a factor without data: no move
    x[:, ok] = lv.to_numpy()
    if sparse.any():
        tol = pd.Timedelta(days=MAX_STALE_DAYS)
        vals = np.column_stack([lv_all[f].dropna().reindex(lv.index, method="ffill", tolerance=tol).to_numpy()
                                for f in np.asarray(factors)[sparse]])
        seen = ~np.isnan(vals)
        x[:, sparse] = np.where(seen, vals, 1.0)
    is_log = log_mask(factors)
    starts = np.arange(0, len(x) - h, spec.step)
    cover = np.repeat(ok[None, :], len(starts), axis=0)
    if sparse.any():
        both = seen[starts] & seen[starts + h]
        for k in range(1, h):  # a path needs every day of the window
            both &= seen[starts + k]
        cover[:, sparse] = both
        x_end = [x[starts + k].copy() for k in range(1, h + 1)]
        for xe in x_end:  # a window not covered for a factor: no move, at every day of the path
            xe[:, sparse] = np.where(both, xe[:, sparse], x[starts][:, sparse])
    else:
        x_end = [x[starts + k] for k in range(1, h + 1)]
    shocks = factor_moves(x[starts], x_end[-1], is_log)
    paths = np.stack([factor_moves(x[starts], xe, is_log) for xe in x_end], axis=1)
    dates = lv.index
    names = tuple(f"{spec.name}:{dates[i].date()}" for i in starts)
    S = len(starts)
    uncovered = [",".join(f for f, c in zip(factors, row) if not c) for row in cover]
    info = pd.DataFrame(dict(scenario=names, family=spec.name, kind="rolling", start=dates[starts],
                             end=dates[starts + h], days=h, description=f"{h}-day historical window",
                             source=history.source, uncovered=uncovered))
    return ScenarioSet(names, tuple(factors), shocks, np.full(S, 1.0 / S), (spec.name,) * S, cover, paths, info)
