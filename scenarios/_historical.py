"""Historical scenarios: crisis replays and rolling windows of the factor history."""

from __future__ import annotations

from datetime import date
from typing import Literal, Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core import ConfigError, History, ScenarioSet, factor_moves, log_mask

from ._library import CRISIS_LIBRARY, CrisisEvent

__all__ = ["CustomEvent", "HistoricalSpec", "RollingSpec", "replay_events", "rolling_windows"]

#: an observation older than this many calendar days before a window date does not count
MAX_STALE_DAYS = 7


class CustomEvent(BaseModel):
    """A user's own event: a name and a window of the history."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    start: date
    end: date
    description: str = ""

    @model_validator(mode="after")
    def _order(self) -> "CustomEvent":
        if self.end <= self.start:
            raise ValueError(f"event {self.name!r}: end {self.end} must be after start {self.start}")
        return self


class HistoricalSpec(BaseModel):
    """Replay named crisis windows: each factor's move from the window's start to its end.

    Batch-file keys: ``kind: historical``, ``name`` (the family), ``events`` (names from the crisis
    library), ``custom`` (a list of ``{name, start, end}``).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["historical"]
    name: str = "historical"
    events: list[str] = []
    custom: list[CustomEvent] = []

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
        return self

    def windows(self) -> list[CrisisEvent]:
        out = [CRISIS_LIBRARY[e] for e in self.events]
        out += [CrisisEvent(c.name, pd.Timestamp(c.start), pd.Timestamp(c.end), c.description or "user event", "user") for c in self.custom]
        return out


class RollingSpec(BaseModel):
    """Every overlapping ``horizon_days`` window of the history between ``start`` and ``end``
    (historical simulation), each one scenario of equal weight.

    Batch-file keys: ``kind: rolling``, ``name``, ``horizon_days`` (trading days), ``start``, ``end``
    (default: the whole history of the book's factors), ``step`` (days between window starts, default 1).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["rolling"]
    name: str = "rolling"
    horizon_days: int = Field(default=10, ge=1, le=260)
    start: Optional[date] = None
    end: Optional[date] = None
    step: int = Field(default=1, ge=1)


def _window_levels(levels: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows of ``levels`` from the last trading day on or before ``start`` to ``end`` (forward
    filled inside the window), and which factors were observed at the start and at the end."""
    before = levels.loc[:start]
    if before.empty:
        return levels.iloc[0:0], np.zeros(levels.shape[1], bool), np.zeros(levels.shape[1], bool)
    first = before.index[-1]
    window = levels.loc[first:end]
    last_obs_start = before.apply(lambda s: s.last_valid_index())
    last_obs_end = levels.loc[:end].apply(lambda s: s.last_valid_index())

    def fresh(last: pd.Series, at: pd.Timestamp) -> np.ndarray:
        return np.array([d is not None and (at - d).days <= MAX_STALE_DAYS for d in last])

    ok_start = fresh(last_obs_start, start)
    ok_end = fresh(last_obs_end, end) & ok_start
    # start level: last observation on or before the start date
    filled = levels.loc[:end].ffill().loc[first:end]
    return filled, ok_start, ok_end


def replay_events(events: Sequence[CrisisEvent], history: History, factors: Sequence[str], family: str) -> ScenarioSet:
    """Replay each event on ``factors``.

    The shock is the move from the last close on or before ``start`` to the last close on or before
    ``end`` (log-return for prices, difference otherwise); the path is the cumulative move after each
    trading day of the window.  Factors without an observation within a week of both ends are not
    covered: their shock is 0 and ``covered`` is False.
    """
    factors = list(factors)
    # factors the history does not have at all (e.g. set by a market override) are not covered
    lv = history.levels.reindex(columns=factors)
    is_log = log_mask(factors)
    shocks, paths, covered, info = [], [], [], []
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
        moves = np.where(ok_end[None, :], np.nan_to_num(moves, nan=0.0), 0.0)
        shocks.append(moves[-1])
        paths.append(moves)
        covered.append(ok_end)
        info.append(
            dict(scenario=ev.name, family=family, kind="historical", start=ev.start, end=ev.end,
                 days=len(moves), description=ev.description, source=ev.source,
                 uncovered=",".join(f for f, c in zip(factors, ok_end) if not c))
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
    )


def rolling_windows(spec: RollingSpec, history: History, factors: Sequence[str]) -> ScenarioSet:
    """Overlapping ``horizon_days`` moves of ``factors`` on dates where all of them are observed."""
    factors = list(factors)
    lv = history.levels.reindex(columns=factors)
    lv = lv.loc[pd.Timestamp(spec.start) if spec.start else None : pd.Timestamp(spec.end) if spec.end else None]
    # a factor observed on fewer than half the dates of the window is not covered (held flat, flagged)
    ok = (lv.notna().mean() >= 0.5).to_numpy() if len(lv) else np.zeros(len(factors), bool)
    lv = lv.loc[:, ok].dropna(how="any")
    h = spec.horizon_days
    if len(lv) <= h:
        raise ConfigError(
            f"scenario family {spec.name!r}: only {len(lv)} dates on which the book's factors are "
            f"observed{' in the window' if spec.start or spec.end else ''}, need more than horizon_days={h}"
        )
    x = np.zeros((len(lv), len(factors)))
    x[:, ok] = lv.to_numpy()
    x[:, ~ok] = 1.0  # placeholder level: no move
    is_log = log_mask(factors)
    starts = np.arange(0, len(x) - h, spec.step)
    shocks = factor_moves(x[starts], x[starts + h], is_log)
    paths = np.stack([factor_moves(x[starts], x[starts + k], is_log) for k in range(1, h + 1)], axis=1)
    dates = lv.index
    names = tuple(f"{spec.name}:{dates[i].date()}" for i in starts)
    S = len(starts)
    uncovered = ",".join(f for f, c in zip(factors, ok) if not c)
    info = pd.DataFrame(dict(scenario=names, family=spec.name, kind="rolling", start=dates[starts],
                             end=dates[starts + h], days=h, description=f"{h}-day historical window",
                             source=history.source, uncovered=uncovered))
    return ScenarioSet(names, tuple(factors), shocks, np.full(S, 1.0 / S), (spec.name,) * S,
                       np.repeat(ok[None, :], S, axis=0), paths, info)
