"""Scenario sets: factor shocks with their names, factor order and weights carried alongside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .book import ASSET_CLASSES

__all__ = ["ScenarioSet", "concat_scenarios", "LIQUIDITY_CLASSES"]

#: column order of :attr:`ScenarioSet.spread_mult` and :attr:`ScenarioSet.adv_mult` (the book's asset classes)
LIQUIDITY_CLASSES: tuple[str, ...] = tuple(ASSET_CLASSES)


@dataclass(frozen=True)
class ScenarioSet:
    """Instantaneous shocks ``[S, F]`` and, optionally, daily paths ``[S, H, F]``.

    Attributes
    ----------
    names : tuple ``[S]``
        One name per scenario, unique within a batch.
    factors : tuple ``[F]``
        Factor order of the last axis.
    shocks : float64 ``[S, F]``
        Shock to each factor in its convention (log-return for prices, absolute change otherwise).
    paths : float64 ``[S, H, F]`` or None
        Cumulative shock from the start after each of ``H`` days; ``paths[:, -1]`` equals ``shocks``
        for path-based scenarios.
    weights : float64 ``[S]``
        Probability weight of each scenario within its family (each family sums to 1).
    family : tuple ``[S]``
        Scenario family (one batch entry, e.g. ``"crisis"``); risk measures are computed per family.
    covered : bool ``[S, F]``
        False where the generator had no information about the factor (shock set to 0); reports
        list these so that a zero is never mistaken for a calm market.
    info : DataFrame ``[S]``
        Per-scenario metadata (kind, window, source, ...).
    filled : bool ``[S, F]`` or None
        True where the shock was not replayed or simulated from the factor's own history but set from
        public facts (calibrated) or by conditional propagation from other factors.  Filled shocks are
        covered.  None means no cell is filled.
    spread_mult : float64 ``[S, C]`` or None
        Bid-ask spread multiplier per scenario and asset class (columns :data:`LIQUIDITY_CLASSES`);
        1 = unchanged.  None means 1 everywhere.
    adv_mult : float64 ``[S, C]`` or None
        Multiplier of average daily volume (tradable capacity) per scenario and asset class; 0.5 =
        volume halved.  None means 1 everywhere.
    """

    names: tuple[str, ...]
    factors: tuple[str, ...]
    shocks: np.ndarray
    weights: np.ndarray
    family: tuple[str, ...]
    covered: np.ndarray
    paths: np.ndarray | None = None
    info: pd.DataFrame = field(default_factory=pd.DataFrame)
    filled: np.ndarray | None = None
    spread_mult: np.ndarray | None = None
    adv_mult: np.ndarray | None = None

    def __post_init__(self) -> None:
        S, F = len(self.names), len(self.factors)
        if self.shocks.shape != (S, F):
            raise ValueError(f"shocks shape {self.shocks.shape} != (S={S}, F={F})")
        if self.weights.shape != (S,) or self.covered.shape != (S, F) or len(self.family) != S:
            raise ValueError("weights, covered and family must match the scenario count")
        if self.paths is not None and (self.paths.ndim != 3 or self.paths.shape[0] != S or self.paths.shape[2] != F):
            raise ValueError(f"paths shape {self.paths.shape} != (S={S}, H, F={F})")
        if self.filled is not None and self.filled.shape != (S, F):
            raise ValueError(f"filled shape {self.filled.shape} != (S={S}, F={F})")
        C = len(LIQUIDITY_CLASSES)
        for name in ("spread_mult", "adv_mult"):
            m = getattr(self, name)
            if m is not None and m.shape != (S, C):
                raise ValueError(f"{name} shape {m.shape} != (S={S}, C={C}) (columns {', '.join(LIQUIDITY_CLASSES)})")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def filled_mask(self) -> np.ndarray:
        """``filled`` as a bool array ``[S, F]`` (all False when None)."""
        return np.zeros(self.shocks.shape, bool) if self.filled is None else self.filled

    def liquidity(self) -> tuple[np.ndarray, np.ndarray]:
        """Spread and ADV multipliers ``[S, C]`` each, ones where the set carries none."""
        ones = np.ones((len(self), len(LIQUIDITY_CLASSES)))
        return (ones if self.spread_mult is None else self.spread_mult,
                ones if self.adv_mult is None else self.adv_mult)

    def liquidity_table(self) -> pd.DataFrame:
        """One row per scenario: ``scenario``, ``family`` and ``spread_mult.<class>``, ``adv_mult.<class>``."""
        spread, adv = self.liquidity()
        cols = {"scenario": list(self.names), "family": list(self.family)}
        for j, c in enumerate(LIQUIDITY_CLASSES):
            cols[f"spread_mult.{c}"] = spread[:, j]
        for j, c in enumerate(LIQUIDITY_CLASSES):
            cols[f"adv_mult.{c}"] = adv[:, j]
        return pd.DataFrame(cols)

    def reorder(self, factors: Sequence[str]) -> "ScenarioSet":
        """The same scenarios on another factor order; factors this set lacks get 0 and covered=False."""
        factors = tuple(factors)
        S = len(self)
        idx = {f: i for i, f in enumerate(self.factors)}
        shocks = np.zeros((S, len(factors)))
        covered = np.zeros((S, len(factors)), dtype=bool)
        filled = None if self.filled is None else np.zeros((S, len(factors)), dtype=bool)
        paths = None if self.paths is None else np.zeros(self.paths.shape[:2] + (len(factors),))
        for j, f in enumerate(factors):
            if f in idx:
                shocks[:, j] = self.shocks[:, idx[f]]
                covered[:, j] = self.covered[:, idx[f]]
                if filled is not None:
                    filled[:, j] = self.filled[:, idx[f]]
                if paths is not None:
                    paths[:, :, j] = self.paths[:, :, idx[f]]
        return ScenarioSet(self.names, factors, shocks, self.weights, self.family, covered, paths, self.info,
                           filled, self.spread_mult, self.adv_mult)

    def subset(self, rows: slice | np.ndarray) -> "ScenarioSet":
        sel = np.arange(len(self))[rows]
        return ScenarioSet(
            tuple(self.names[i] for i in sel),
            self.factors,
            self.shocks[sel],
            self.weights[sel],
            tuple(self.family[i] for i in sel),
            self.covered[sel],
            None if self.paths is None else self.paths[sel],
            self.info.iloc[sel].reset_index(drop=True) if len(self.info) else self.info,
            None if self.filled is None else self.filled[sel],
            None if self.spread_mult is None else self.spread_mult[sel],
            None if self.adv_mult is None else self.adv_mult[sel],
        )


def concat_scenarios(sets: Sequence[ScenarioSet]) -> ScenarioSet:
    """Stack scenario sets on the union of their factors; paths are padded with their last day.

    ``filled`` and the liquidity multipliers are kept when any set has them (False and 1 elsewhere).
    """
    if not sets:
        raise ValueError("no scenario sets")
    factors = tuple(dict.fromkeys(f for s in sets for f in s.factors))
    sets = [s.reorder(factors) for s in sets]
    names = tuple(n for s in sets for n in s.names)
    dup = pd.Index(names)[pd.Index(names).duplicated()]
    if len(dup):
        raise ValueError(f"duplicate scenario name {dup[0]!r}")
    paths = None
    if all(s.paths is not None for s in sets):
        H = max(s.paths.shape[1] for s in sets)
        padded = []
        for s in sets:
            p = s.paths
            if p.shape[1] < H:
                p = np.concatenate([p, np.repeat(p[:, -1:, :], H - p.shape[1], axis=1)], axis=1)
            padded.append(p)
        paths = np.concatenate(padded)
    info = pd.concat([s.info for s in sets], ignore_index=True) if any(len(s.info) for s in sets) else pd.DataFrame()
    filled = np.concatenate([s.filled_mask for s in sets]) if any(s.filled is not None for s in sets) else None
    spread = adv = None
    if any(s.spread_mult is not None or s.adv_mult is not None for s in sets):
        spread = np.concatenate([s.liquidity()[0] for s in sets])
        adv = np.concatenate([s.liquidity()[1] for s in sets])
    return ScenarioSet(
        names=names,
        factors=factors,
        shocks=np.concatenate([s.shocks for s in sets]),
        weights=np.concatenate([s.weights for s in sets]),
        family=tuple(f for s in sets for f in s.family),
        covered=np.concatenate([s.covered for s in sets]),
        paths=paths,
        info=info,
        filled=filled,
        spread_mult=spread,
        adv_mult=adv,
    )
