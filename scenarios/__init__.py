"""Scenario generators: each turns a spec from the batch file into a :class:`core.ScenarioSet`.

Generators take plain inputs (a spec, a :class:`core.History`, the factor order, a seed) and know
nothing of Ray or files.
"""

from __future__ import annotations

from typing import Annotated, Sequence, Union

import numpy as np
from pydantic import Field

from core import ConfigError, History, ScenarioSet

from ._historical import CustomEvent, HistoricalSpec, RollingSpec, replay_events, rolling_windows
from ._library import CRISIS_LIBRARY, CrisisEvent

__all__ = [
    "CRISIS_LIBRARY",
    "CrisisEvent",
    "CustomEvent",
    "HistoricalSpec",
    "RollingSpec",
    "ScenarioSpec",
    "generate",
    "replay_events",
    "rolling_windows",
]

#: one entry of the batch file's ``scenarios`` list, chosen by its ``kind`` key
ScenarioSpec = Annotated[Union[HistoricalSpec, RollingSpec], Field(discriminator="kind")]


def generate(spec: ScenarioSpec, history: History, factors: Sequence[str], seed: np.random.SeedSequence | int | None = None) -> ScenarioSet:
    """Scenarios of one batch entry on ``factors``.

    ``seed`` feeds the random generators (unused by the historical kinds); equal seeds give
    bit-identical scenarios.
    """
    if isinstance(spec, HistoricalSpec):
        return replay_events(spec.windows(), history, factors, spec.name)
    if isinstance(spec, RollingSpec):
        return rolling_windows(spec, history, factors)
    raise ConfigError(f"scenario kind {getattr(spec, 'kind', spec)!r} is not supported")
