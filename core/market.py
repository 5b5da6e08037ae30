"""Market snapshot: factor levels at an as-of date, with curves and vol surfaces read from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import DataError
from .factors import factor_spec, log_mask
from .history import History

__all__ = ["MarketSnapshot", "snapshot_from_history", "latest_common_date"]


@dataclass(frozen=True)
class MarketSnapshot:
    """Factor levels at ``as_of``, in a fixed factor order.

    Attributes
    ----------
    as_of : Timestamp
    factors : tuple of str, ``[F]``
    levels : float64 array ``[F]``
    observed : dict factor -> date of the observation used (may precede ``as_of`` by up to the
        staleness limit)
    """

    as_of: pd.Timestamp
    factors: tuple[str, ...]
    levels: np.ndarray
    observed: Mapping[str, pd.Timestamp] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.factors) != len(self.levels):
            raise ValueError("factors and levels differ in length")

    @property
    def index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.factors)}

    @property
    def is_log(self) -> np.ndarray:
        return log_mask(self.factors)

    def level(self, factor: str) -> float:
        try:
            return float(self.levels[self.factors.index(factor)])
        except ValueError:
            raise DataError(f"market snapshot {self.as_of.date()}: no level for factor {factor}") from None

    def curve(self, currency: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Zero curve of ``currency``: factor names, tenors in years ``[K]`` (sorted), zero yields ``[K]``."""
        pts = sorted(
            (factor_spec(f).tenor_years, f) for f in self.factors if f.startswith(f"IR.{currency}.")
        )
        if not pts:
            raise DataError(f"market snapshot {self.as_of.date()}: no IR.{currency}.* curve factors")
        names = [f for _, f in pts]
        return names, np.array([t for t, _ in pts]), np.array([self.level(f) for f in names])


def latest_common_date(history: History, factors: Iterable[str]) -> pd.Timestamp:
    """The last date on which every one of ``factors`` has an observation."""
    factors = list(factors)
    history.require(factors, "as-of date")
    complete = history.snapshot[factors].notna().all(axis=1)
    if not complete.any():
        spans = {f: history.span(f) for f in factors}
        detail = "; ".join(
            f"{f} {s[0].date()}..{s[1].date()}" if s else f"{f} never" for f, s in spans.items()
        )
        raise DataError(f"history {history.source}: no date on which all book factors are observed ({detail})")
    return complete[complete].index[-1]


def snapshot_from_history(
    history: History,
    factors: Iterable[str],
    as_of: pd.Timestamp | str | None = None,
    max_stale_days: int = 7,
    overrides: Mapping[str, float] | None = None,
) -> MarketSnapshot:
    """Levels of ``factors`` at ``as_of`` from the history.

    Each factor takes its last observation on or before ``as_of``; one older than ``max_stale_days``
    calendar days (markets keep different holidays) is an error naming the factor and its last date.
    ``as_of=None`` takes :func:`latest_common_date`.  ``overrides`` sets levels directly (e.g. today's
    close from a desk's own feed) and wins over the history.
    """
    factors = list(dict.fromkeys(factors))
    overrides = dict(overrides or {})
    for name, value in overrides.items():
        spec = factor_spec(name)
        if not np.isfinite(value) or (spec.is_log and value <= 0):
            raise DataError(f"market override {name}: level {value!r} must be finite{' and positive' if spec.is_log else ''}")
    from_hist = [f for f in factors if f not in overrides]
    missing = [f for f in from_hist if f not in history.snapshot.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise DataError(
            f"market snapshot: the book needs factor(s) {shown} that history {history.source} does not have; "
            "give their levels under market.overrides in the batch file"
        )
    as_of = latest_common_date(history, from_hist) if as_of is None else pd.Timestamp(as_of)
    levels = []
    observed = {}
    problems = []
    for f in factors:
        if f in overrides:
            levels.append(float(overrides[f]))
            observed[f] = as_of
            continue
        s = history.snapshot[f].loc[:as_of].dropna()
        if s.empty:
            span = history.span(f)
            where = f"first observed {span[0].date()}" if span else "never observed"
            problems.append(f"market snapshot {as_of.date()}: factor {f} has no level on or before it ({where})")
            levels.append(np.nan)
            continue
        age = (as_of - s.index[-1]).days
        if age > max_stale_days:
            problems.append(
                f"market snapshot {as_of.date()}: factor {f} last observed {s.index[-1].date()} "
                f"({age} days stale, limit {max_stale_days}); choose an earlier as_of or give a market override"
            )
        levels.append(float(s.iloc[-1]))
        observed[f] = s.index[-1]
    if problems:  # every factor at once, one a line
        shown = problems[:20] + ([f"... and {len(problems) - 20} more factor(s)"] if len(problems) > 20 else [])
        raise DataError("\n".join(shown))
    return MarketSnapshot(as_of=as_of, factors=tuple(factors), levels=np.array(levels, dtype=float), observed=observed)
