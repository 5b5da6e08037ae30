"""Stationary block bootstrap of recent daily factor moves (arch's ``StationaryBootstrap``).

References
----------
.. [PR94] D. N. Politis and J. P. Romano, "The stationary bootstrap", Journal of the American
   Statistical Association 89 (1994) 1303-1313.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from stressgrid.core import ConfigError, History, ScenarioSet

from ._amplify import Amplifier, AmplifySpec, build_amplifier
from ._common import BLOCK_SIZE, WindowSpec, block_seed, daily_moves
from ._correlation import estimate_covariance
from ._guard import GuardSpec, TailGuard, fit_guard
from ._random import assemble_range
from ._views import View

__all__ = ["BootstrapSpec", "FittedBootstrap", "fit_bootstrap", "bootstrap_block", "bootstrap_scenarios"]


class BootstrapSpec(BaseModel):
    """Stationary block bootstrap of the daily moves in a window of history.

    Batch-file keys: ``kind: bootstrap``, ``name``, ``window`` (``start``, ``end``, ``lookback_days``),
    ``block_length`` (expected block length in days, geometric blocks [PR94]; default 10),
    ``horizon_days`` (path length, default 10), ``n_scenarios`` (default 1000), ``paths`` (keep the daily
    paths, default true), ``amplify``, ``guard`` (the tail guard, :class:`GuardSpec`; on by default,
    flagging only; ``null`` turns it off), ``views`` (scenario probabilities by entropy pooling,
    :mod:`._views`; the grid applies them).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["bootstrap"]
    name: str = "bootstrap"
    window: WindowSpec = WindowSpec()
    block_length: float = Field(default=10.0, ge=1.0)
    horizon_days: int = Field(default=10, ge=1, le=260)
    #: value the book at the horizon (time passes: kernels.age) or at the as-of date
    revaluation: Literal["horizon", "instantaneous"] = "horizon"
    n_scenarios: int = Field(default=1000, ge=1, le=10_000_000)
    paths: bool = True
    amplify: Optional[AmplifySpec] = None
    guard: Optional[GuardSpec] = GuardSpec()
    views: Optional[list[View]] = Field(default=None, min_length=1)


@dataclass(frozen=True)
class FittedBootstrap:
    """What every block of a bootstrap family reads.

    moves : ``[T, K]`` daily moves of the covered factors; index : ``[K]`` their positions in ``factors``;
    guard : the tail guard (None when the spec turns it off)
    """

    factors: tuple[str, ...]
    moves: np.ndarray
    index: np.ndarray
    covered: np.ndarray
    dates: tuple[pd.Timestamp, pd.Timestamp]
    amplifier: Amplifier | None
    guard: TailGuard | None = None


def fit_bootstrap(spec: BootstrapSpec, history: History, factors: Sequence[str], as_of=None,
                  levels: Mapping[str, float] | None = None) -> FittedBootstrap:
    """Read the window's moves and check the block length against it.

    Raises
    ------
    ConfigError
        If the expected block length exceeds the window's number of daily moves.
    """
    factors = tuple(factors)
    moves, ok = daily_moves(history, factors, spec.window, as_of, spec.name)
    T = len(moves)
    if spec.block_length > T:
        raise ConfigError(
            f"scenario family {spec.name!r}, field 'block_length': expected block length {spec.block_length:g} days "
            f"is longer than the window's {T} daily moves ({moves.index[0].date()}..{moves.index[-1].date()})"
        )
    index = np.flatnonzero(ok)
    amp = None
    if spec.amplify is not None:
        cov = estimate_covariance(moves.to_numpy(), spec.amplify.estimator)[0] if spec.amplify.moves_factors else None
        amp = build_amplifier(spec.amplify, factors, cov, index, spec.name, levels)
    x = moves.to_numpy()
    guard = fit_guard(spec.guard, x, index, factors, spec.horizon_days) if spec.guard is not None else None
    return FittedBootstrap(factors, x, index, ok, (moves.index[0], moves.index[-1]), amp, guard)


def bootstrap_block(spec: BootstrapSpec, fitted: FittedBootstrap, block_index: int,
                    seed: np.random.SeedSequence | int | None, guard_rows: bool = False,
                    rows: int | None = None) -> tuple:
    """Block ``block_index`` of the family: ``BLOCK_SIZE`` resampled paths, or the first ``rows`` of them
    (the family's share of its last block; the resamples are drawn in order, so they are the whole
    block's first rows).

    Each path is the first ``horizon_days`` indices of one stationary-bootstrap resample of the
    window (``StationaryBootstrap.update_indices``, seeded with this block's generator); the daily
    moves along it are cumulated (log-returns and absolute changes both add over days).  The tail guard
    (``fitted.guard``) judges, and with ``cap`` clips, the resampled paths before the ``amplify`` stress.

    Returns shocks ``[rows, F]`` and paths ``[rows, H, F]`` (None unless ``spec.paths``), and with
    ``guard_rows`` the block's ``GuardRows`` (None without a guard) third.
    """
    from arch.bootstrap import StationaryBootstrap  # imported on first use: arch takes 1.5 s to import

    n_rows = BLOCK_SIZE if rows is None else int(rows)
    if not 0 < n_rows <= BLOCK_SIZE:
        raise ValueError(f"rows must be in [1, {BLOCK_SIZE}], got {rows}")
    rng = np.random.default_rng(block_seed(seed, block_index))
    bs = StationaryBootstrap(spec.block_length, fitted.moves, seed=rng)
    H = spec.horizon_days
    idx = np.empty((n_rows, H), dtype=np.int64)
    for i in range(n_rows):
        idx[i] = bs.update_indices()[:H]
    cum = np.cumsum(fitted.moves[idx], axis=1)  # [rows, H, K]
    F = len(fitted.factors)
    paths = np.zeros((n_rows, H, F))
    paths[:, :, fitted.index] = cum
    judged = None
    if fitted.guard is not None:
        paths, judged = fitted.guard.apply(paths)
    if fitted.amplifier is not None:
        paths = fitted.amplifier.apply_moves(paths)
    if guard_rows:
        return paths[:, -1, :].copy(), (paths if spec.paths else None), judged
    return paths[:, -1, :].copy(), (paths if spec.paths else None)


def bootstrap_scenarios(spec: BootstrapSpec, history: History, factors: Sequence[str],
                        seed: np.random.SeedSequence | int | None, as_of=None, levels=None,
                        start: int = 0, stop: int | None = None) -> ScenarioSet:
    """Scenarios ``[start, stop)`` (default all) of a bootstrap family."""
    fitted = fit_bootstrap(spec, history, factors, as_of, levels)
    info = bootstrap_info(spec, fitted, history.source)
    return assemble_range(spec.name, spec.n_scenarios, fitted.factors, fitted.covered,
                          lambda b, rows: bootstrap_block(spec, fitted, b, seed, guard_rows=True, rows=rows), info,
                          start, stop, fitted.amplifier)


def bootstrap_info(spec: BootstrapSpec, fitted, source: str) -> dict:
    """The info columns of a bootstrap family's scenarios (the same for all of them)."""
    return dict(kind="bootstrap", start=fitted.dates[0], end=fitted.dates[1], days=spec.horizon_days,
                description=f"stationary bootstrap, expected block {spec.block_length:g} days, "
                            f"{len(fitted.moves)} daily moves",
                source=source,
                uncovered=",".join(f for f, c in zip(fitted.factors, fitted.covered) if not c),
                **({} if fitted.guard is None else dict(guard_multiple=fitted.guard.max_multiple,
                                                        guard_cap=fitted.guard.cap)))
