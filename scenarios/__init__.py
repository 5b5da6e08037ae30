"""Scenario generators: each turns a spec from the batch file into a :class:`core.ScenarioSet`.

Generators take plain inputs (a spec, a :class:`core.History`, the factor order, a seed) and know
nothing of Ray or files.

Kinds (the ``kind`` key of a batch file's ``scenarios`` entry):

* ``historical``: crisis library and custom events, replayed from data, calibrated from public facts
  and filled by conditional propagation where the history lacks a factor;
* ``rolling``: overlapping windows of the history;
* ``bootstrap``: stationary block bootstrap (arch);
* ``montecarlo``: Gaussian, Student-t, GARCH(1,1)-t (constant or DCC correlation) and filtered
  historical simulation;
* ``predictive``: conditional stress on a few core factors with a plausibility measure;
* ``reverse``: the most plausible move that costs the book a given loss, and the worst loss within a
  plausibility bound (needs the book's revaluation: ``generate(..., revaluer=...)``);
* ``hypothetical``: shocks written by hand (by factor, by wildcard, curve, vol-surface and credit
  builders), the other factors held at 0 or propagated by their conditional expectation (takes no
  ``amplify`` block).

Every kind takes an optional ``amplify`` block (correlation, volatility and liquidity stress).
Random kinds draw in blocks of :data:`BLOCK_SIZE` scenarios with one child seed per block
(:func:`generate_range` makes any sub-range bit-identical to the same rows of a full run).
"""

from __future__ import annotations

from typing import Annotated, Mapping, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import Field

from stressgrid.core import ConfigError, History, ScenarioSet

from ._amplify import (
    Amplifier,
    AmplifySpec,
    CorrelationStress,
    CorrelationTarget,
    LiquidityStress,
    VolStress,
    build_amplifier,
    stressed_covariance,
)
from ._bootstrap import BootstrapSpec, bootstrap_block, bootstrap_info, bootstrap_scenarios, fit_bootstrap
from ._common import BLOCK_SIZE, WindowSpec, block_seed, daily_moves, n_blocks, parse_shock
from ._correlation import EstimatorSpec, estimate_covariance, nearest_correlation, pairwise_covariance
from ._historical import MAX_STALE_DAYS, CustomEvent, HistoricalSpec, RollingSpec, replay_events, rolling_windows
from ._hypothetical import HypotheticalSpec, HypotheticalStress, hypothetical_scenarios
from ._library import CRISIS_LIBRARY, CrisisEvent, CrisisFacts
from ._montecarlo import (
    MonteCarloSpec,
    fit_dcc,
    fit_garch,
    fit_montecarlo,
    montecarlo_block,
    montecarlo_scenarios,
)
from ._random import assemble_range
from ._guard import GUARD_COLUMNS, GuardSpec, TailGuard, garch_boundary, historical_extreme, parse_garch_boundary
from ._predictive import PredictiveSpec, StressDef, conditional_stress, predictive_scenarios
from ._views import PNL, View, apply_views, effective_scenarios, entropy_pooling, parse_views, relative_entropy
from ._reverse import ReverseModel, ReverseSpec, WithinSpec, fit_reverse, least_distance, reverse_scenarios, reverse_shocks, worst_within

__all__ = [
    "BLOCK_SIZE",
    "CRISIS_LIBRARY",
    "AmplifySpec",
    "BootstrapSpec",
    "CorrelationStress",
    "CorrelationTarget",
    "CrisisEvent",
    "CrisisFacts",
    "CustomEvent",
    "EstimatorSpec",
    "HistoricalSpec",
    "HypotheticalSpec",
    "HypotheticalStress",
    "LiquidityStress",
    "MonteCarloSpec",
    "PredictiveSpec",
    "ReverseSpec",
    "View",
    "PNL",
    "apply_views",
    "effective_scenarios",
    "entropy_pooling",
    "parse_views",
    "relative_entropy",
    "WithinSpec",
    "least_distance",
    "reverse_scenarios",
    "reverse_shocks",
    "fit_reverse",
    "ReverseModel",
    "worst_within",
    "RollingSpec",
    "MAX_STALE_DAYS",
    "fit_dcc",
    "ScenarioSpec",
    "StressDef",
    "VolStress",
    "WindowSpec",
    "block_seed",
    "conditional_stress",
    "daily_moves",
    "draw_range",
    "family_info",
    "estimate_covariance",
    "fit",
    "fit_garch",
    "GUARD_COLUMNS",
    "GuardSpec",
    "TailGuard",
    "garch_boundary",
    "historical_extreme",
    "parse_garch_boundary",
    "generate",
    "generate_block",
    "generate_range",
    "hypothetical_scenarios",
    "n_blocks",
    "nearest_correlation",
    "pairwise_covariance",
    "parse_shock",
    "replay_events",
    "rolling_windows",
]

#: one entry of the batch file's ``scenarios`` list, chosen by its ``kind`` key
ScenarioSpec = Annotated[
    Union[HistoricalSpec, RollingSpec, BootstrapSpec, MonteCarloSpec, PredictiveSpec, ReverseSpec,
          HypotheticalSpec], Field(discriminator="kind")
]

RANDOM_KINDS = (BootstrapSpec, MonteCarloSpec)


def _market(market) -> tuple[pd.Timestamp | None, dict[str, float] | None]:
    """(as_of, levels) of a :class:`core.MarketSnapshot`, or of a plain mapping of levels."""
    if market is None:
        return None, None
    if isinstance(market, Mapping):
        return None, dict(market)
    return market.as_of, {f: float(v) for f, v in zip(market.factors, market.levels)}


def _random_levels(spec, history: History, as_of, levels):
    """Levels for a random family's ``iv_level`` targets, falling back to the history at the window's end."""
    amp = getattr(spec, "amplify", None)
    if amp is None or amp.vol is None or not amp.vol.iv_level:
        return levels
    return _levels_fallback(levels, list(amp.vol.iv_level), history, as_of if as_of is not None else spec.window.end)


def _amplify(scen: ScenarioSet, spec: AmplifySpec, history: History, factors: Sequence[str], family: str,
             as_of, levels) -> ScenarioSet:
    cov, index = None, np.array([], int)
    if spec.moves_factors:
        moves, ok = daily_moves(history, factors, spec.window, as_of, family)
        cov = estimate_covariance(moves.to_numpy(), spec.estimator)[0]
        index = np.flatnonzero(ok)
    if spec.vol is not None and spec.vol.iv_level:
        levels = _levels_fallback(levels, list(spec.vol.iv_level), history,
                                  as_of if as_of is not None else spec.window.end)
    return build_amplifier(spec, factors, cov, index, family, levels).apply(scen)


def _levels_fallback(levels, names, history: History, at) -> dict[str, float]:
    """``levels`` completed, for ``names`` it lacks, by the history's last observation on or before
    ``at`` (the as-of date or the window's end; the history's last date when None)."""
    out = dict(levels or {})
    for f in names:
        if f not in out and f in history.levels.columns:
            s = history.levels[f].loc[: pd.Timestamp(at) if at is not None else None].dropna()
            if len(s):
                out[f] = float(s.iloc[-1])
    return out


def fit(spec, history: History, factors: Sequence[str], market=None):
    """The deterministic part of a random family (the window's moves, the fitted model, the stress),
    for :func:`generate_block`; None for the other kinds."""
    as_of, levels = _market(market)
    levels = _random_levels(spec, history, as_of, levels)
    if isinstance(spec, BootstrapSpec):
        return fit_bootstrap(spec, history, factors, as_of, levels)
    if isinstance(spec, MonteCarloSpec):
        return fit_montecarlo(spec, history, factors, as_of, levels)
    return None


def generate_block(spec, fitted, block_index: int, seed: np.random.SeedSequence | int | None,
                   guard_rows: bool = False, rows: int | None = None):
    """Block ``block_index`` (scenarios ``[b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE)``) of a random family:
    ``(shocks [BLOCK_SIZE, F], paths [BLOCK_SIZE, H, F] or None)`` on ``fitted.factors``, bit-identical
    to the same rows of :func:`generate` with the same ``seed``; with ``guard_rows``, the tail guard's
    judgement of each scenario third (``GuardRows``: implausible, multiple, worst; None without a guard).
    ``rows``: only the block's first ``rows`` scenarios, with the same bits (every random number of the
    block is still drawn)."""
    if isinstance(spec, BootstrapSpec):
        return bootstrap_block(spec, fitted, block_index, seed, guard_rows, rows)
    if isinstance(spec, MonteCarloSpec):
        return montecarlo_block(spec, fitted, block_index, seed, guard_rows, rows)
    raise ConfigError(f"scenario kind {getattr(spec, 'kind', spec)!r} is not random; use generate()")


def family_info(spec, fitted, source: str) -> dict:
    """The info columns shared by every scenario of a random family (``fitted`` from :func:`fit`; ``source``
    names the history)."""
    if isinstance(spec, BootstrapSpec):
        return bootstrap_info(spec, fitted, source)
    return dict(fitted.info)


def draw_range(spec, fitted, seed, info: dict, start: int, stop: int) -> ScenarioSet:
    """Scenarios ``[start, stop)`` of a random family from its fitted model (:func:`fit`) and ``info``
    (:func:`family_info`), without the history: what a grid task draws for its share of the family.
    Equal, row for row, to the same rows of :func:`generate` with the same seed (without the daily paths)."""
    return assemble_range(spec.name, spec.n_scenarios, fitted.factors, fitted.covered,
                          lambda b, rows: generate_block(spec, fitted, b, seed, guard_rows=True, rows=rows),
                          info, start, stop, fitted.amplifier, keep_paths=False)


def generate_range(spec, history: History, factors: Sequence[str], seed, start: int, stop: int,
                   market=None, fitted=None) -> ScenarioSet:
    """Scenarios ``[start, stop)`` of a random family (what a grid worker would generate for its chunk);
    equal, row for row, to ``generate(...).subset(slice(start, stop))``."""
    as_of, levels = _market(market)
    levels = _random_levels(spec, history, as_of, levels)
    if isinstance(spec, BootstrapSpec):
        return bootstrap_scenarios(spec, history, factors, seed, as_of, levels, start, stop)
    if isinstance(spec, MonteCarloSpec):
        return montecarlo_scenarios(spec, history, factors, seed, as_of, levels, start, stop, fitted)
    return generate(spec, history, factors, seed, market).subset(slice(start, stop))


def generate(
    spec: ScenarioSpec,
    history: History,
    factors: Sequence[str],
    seed: np.random.SeedSequence | int | None = None,
    market=None,
    revaluer=None,
    nav: float | None = None,
    limits: dict[str, float] | None = None,
) -> ScenarioSet:
    """Scenarios of one batch entry on ``factors``.

    Parameters
    ----------
    spec : one validated entry of the batch file's ``scenarios``
    history : the factor history
    factors : ``[F]`` factor order (the book's factors)
    seed : feeds the random kinds (unused by historical and rolling); equal seeds give bit-identical
        scenarios
    market : optional :class:`core.MarketSnapshot` (or a mapping factor -> level): its ``as_of`` is the
        default end of estimation windows (no look-ahead) and its levels turn level targets (a crisis's
        VIX high, ``iv_level``) into shocks; without it windows end at the history's last date and the
        VIX level and ``iv_level`` bases are taken from the history's last close on or before the
        window's end (the history's last close for crisis replays)
    revaluer : ``reverse`` only: ``f(shock[F]) -> (pnl, gradient[F])``, the book's P&L on ``factors`` as the
        family values it (:func:`stressgrid.kernels.total_pnl`)
    nav : ``reverse`` only: the batch's NAV, for losses in % of NAV
    limits : ``reverse`` only: limit name -> loss of the batch's book-level loss limits (``loss: "limit:NAME"``)
    """
    as_of, levels = _market(market)
    factors = list(factors)
    if isinstance(spec, HistoricalSpec):
        scen = replay_events(spec.windows(), history, factors, spec.name, fill=spec.fill, levels=levels)
    elif isinstance(spec, RollingSpec):
        scen = rolling_windows(spec, history, factors)
    elif isinstance(spec, (BootstrapSpec, MonteCarloSpec)):
        levels = _random_levels(spec, history, as_of, levels)
        if isinstance(spec, BootstrapSpec):
            return bootstrap_scenarios(spec, history, factors, seed, as_of, levels)
        return montecarlo_scenarios(spec, history, factors, seed, as_of, levels)
    elif isinstance(spec, PredictiveSpec):
        return predictive_scenarios(spec, history, factors, seed, as_of)
    elif isinstance(spec, HypotheticalSpec):
        return hypothetical_scenarios(spec, history, factors, seed, as_of, levels)
    elif isinstance(spec, ReverseSpec):
        return reverse_scenarios(spec, history, factors, revaluer, seed, as_of, nav, limits)
    else:
        raise ConfigError(f"scenario kind {getattr(spec, 'kind', spec)!r} is not supported")
    if spec.amplify is not None:
        scen = _amplify(scen, spec.amplify, history, factors, spec.name, as_of, levels)
        if isinstance(spec, HistoricalSpec):
            # the same event may be replayed plain in another family: amplified ones are "family:event"
            names = tuple(f"{spec.name}:{n}" for n in scen.names)
            info = scen.info.assign(scenario=list(names))
            scen = ScenarioSet(names, scen.factors, scen.shocks, scen.weights, scen.family, scen.covered, scen.paths,
                               info, scen.filled, scen.spread_mult, scen.adv_mult)
    return scen
