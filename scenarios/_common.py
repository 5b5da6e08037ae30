"""Shared pieces of the generators: estimation windows, daily moves, shock units, seeded blocks."""

from __future__ import annotations

import re
from datetime import date
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stressgrid.core import ConfigError, History, factor_moves, factor_spec, log_mask
from stressgrid.core.sources import proxy_noise

__all__ = [
    "BLOCK_SIZE",
    "WindowSpec",
    "block_seed",
    "n_blocks",
    "daily_moves",
    "parse_shock",
    "parse_amount",
    "check_factors",
    "as_seed_sequence",
]

#: scenarios per random block: block ``b`` holds scenarios ``[b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE)`` and
#: draws from its own child seed, so any split of a family into tasks gives the same numbers
BLOCK_SIZE = 4096

#: a factor observed on fewer than this share of the window's dates is not covered
MIN_COVERAGE = 0.5


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WindowSpec(_Strict):
    """The stretch of history a model is estimated on.

    Batch-file keys: ``start``, ``end`` (dates; ``end`` defaults to the market's as-of date when the
    grid passes it, else to the history's last date), ``lookback_days`` (trading days ending at ``end``;
    default 750, about three years; ignored when ``start`` is given).
    """

    start: Optional[date] = None
    end: Optional[date] = None
    lookback_days: int = Field(default=750, ge=20)

    @model_validator(mode="after")
    def _order(self) -> "WindowSpec":
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after start {self.start}")
        return self


def as_seed_sequence(seed: np.random.SeedSequence | int | None) -> np.random.SeedSequence:
    """``seed`` as a SeedSequence (an int or None becomes ``SeedSequence(seed)``)."""
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def block_seed(seed: np.random.SeedSequence | int | None, block_index: int) -> np.random.SeedSequence:
    """Child seed of random block ``block_index`` of a family.

    Equal to the ``block_index``-th child that ``seed.spawn`` would return on a fresh sequence
    (same entropy, spawn key extended by the index), but computed directly, so a worker that generates
    only block 17 gets the same seed as a run that generates all blocks.
    """
    ss = as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (int(block_index),),
                                  pool_size=ss.pool_size)


def n_blocks(n_scenarios: int) -> int:
    """Number of :data:`BLOCK_SIZE` blocks that hold ``n_scenarios``."""
    return -(-int(n_scenarios) // BLOCK_SIZE)


def check_factors(names: Sequence[str], factors: Sequence[str], family: str, field: str) -> None:
    """Raise :class:`ConfigError` if a name in ``names`` is not one of the book's ``factors``."""
    known = set(factors)
    for n in names:
        if n not in known:
            raise ConfigError(
                f"scenario family {family!r}, field '{field}': unknown factor {n!r}; the book's factors are "
                f"{', '.join(list(factors)[:12])}{' ...' if len(factors) > 12 else ''}"
            )


_SHOCK = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*(%|bp)?\s*$")


def parse_shock(value: float | str, factor: str) -> float:
    """A shock given in the batch file, in the factor's convention.

    * a number is already in the convention: a log-return for prices, a decimal change otherwise
      (0.01 = 100bp);
    * ``"-30%"`` on a price factor is a simple return, converted to ``log(1 - 0.30)``; ``"-50bp"`` too
      (a fall of 0.5%);
    * ``"+100bp"`` is 0.01 and ``"+2%"`` is 0.02 on a rate, spread, vol or basis factor.

    Raises ``ValueError`` with the accepted forms (pydantic turns it into a field error).
    """
    spec = factor_spec(factor)
    if isinstance(value, bool):
        raise ValueError(f"shock of {factor}: {value!r} is not a number")
    if isinstance(value, (int, float)):
        x = float(value)
        if not np.isfinite(x):
            raise ValueError(f"shock of {factor}: {value!r} is not finite")
        return x
    m = _SHOCK.match(str(value))
    if not m:
        raise ValueError(f"shock of {factor}: {value!r} is not a number, 'N%' or 'Nbp' (e.g. '-30%', '+100bp')")
    x, unit = float(m.group(1)), m.group(2)
    if spec.is_log:
        if unit == "bp":
            x = x * 1e-4
        elif unit == "%":
            x = x / 100.0
        else:
            return x
        if x <= -1.0:
            raise ValueError(f"shock of {factor}: {value!r} is a fall of 100% or more; a price stays positive")
        return float(np.log1p(x))
    if unit == "bp":
        return x * 1e-4
    if unit == "%":
        return x / 100.0
    return x


def daily_moves(
    history: History,
    factors: Sequence[str],
    window: WindowSpec,
    as_of: pd.Timestamp | None = None,
    family: str = "",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Daily factor moves over an estimation window, on the dates all covered factors are observed.

    Parameters
    ----------
    history : the factor history
    factors : ``[F]`` factor order
    window : start / end / lookback
    as_of : default end of the window (the market date), else the history's last date

    Returns
    -------
    moves : DataFrame ``[T, F_c]``
        Day-over-day moves (log-returns for prices, differences otherwise) of the covered factors,
        between consecutive dates on which all of them are observed.  A proxied factor's moves on the
        dates its proxy filled carry the proxy's residual (:func:`stressgrid.core.sources.proxy_noise`),
        so that a model fitted on them does not take it as perfectly correlated with its proxy.
    covered : bool ``[F]``
        True for a factor with history on at least half of the window's dates.

    Raises
    ------
    ConfigError
        If the window lies outside the history or leaves fewer than 20 daily moves.
    """
    factors = list(factors)
    lv = history.levels.reindex(columns=factors)
    first, last = history.levels.index[0], history.levels.index[-1]
    end = pd.Timestamp(window.end) if window.end else (pd.Timestamp(as_of) if as_of is not None else last)
    start = pd.Timestamp(window.start) if window.start else None
    where = f"scenario family {family!r}, field 'window'"
    if end < first or (start is not None and start > last):
        raise ConfigError(
            f"{where}: {start.date() if start is not None else '...'}..{end.date()} is outside the history "
            f"{first.date()}..{last.date()}"
        )
    if start is not None and start < first:
        raise ConfigError(f"{where}: start {start.date()} is before the history's first date {first.date()}")
    lv = lv.loc[start:end]
    if start is None:
        # the last lookback_days + 1 dates on which at least one factor is observed
        lv = lv.dropna(how="all").iloc[-(window.lookback_days + 1):]
    ok = (lv.notna().mean() >= MIN_COVERAGE).to_numpy() if len(lv) else np.zeros(len(factors), bool)
    if not ok.any():
        raise ConfigError(f"{where}: none of the book's factors has history in {lv.index[0].date() if len(lv) else start}..{end.date()}")
    cov_f = [f for f, c in zip(factors, ok) if c]
    sub = lv[cov_f].dropna(how="any")
    x = sub.to_numpy()
    moves = factor_moves(x[:-1], x[1:], log_mask(cov_f))
    for j, f in enumerate(cov_f):
        e = proxy_noise(history, f, sub.index[1:], sub.index[:-1])
        if e is not None:
            moves[:, j] += e
    if len(moves) < 20:
        raise ConfigError(
            f"{where}: only {len(moves)} daily moves on which {', '.join(cov_f[:5])}{'...' if len(cov_f) > 5 else ''} "
            f"are all observed; need at least 20 (widen the window)"
        )
    return pd.DataFrame(moves, index=sub.index[1:], columns=cov_f), ok


_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_AMOUNT = re.compile(rf"^\s*([+-]?(?:{_NUMBER}))\s*(%|k|m|bn)?\s*$")
_AMOUNT_UNIT = {None: 1.0, "k": 1e3, "m": 1e6, "bn": 1e9}


def parse_amount(value: float | str) -> tuple[float, bool] | None:
    """``(x, of_nav)`` of an amount in the batch file: a number or ``"12.5m"``, ``"800k"``, ``"1bn"`` (base
    currency, ``of_nav`` False), or ``"2%"`` (``x = 0.02``, a share of NAV); None for text of another
    form.  Raises ``ValueError`` for a boolean or a value that is not finite."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, str):
        m = _AMOUNT.match(value)
        if not m:
            return None
        x, unit = float(m.group(1)), m.group(2)
        return (x / 100.0, True) if unit == "%" else (x * _AMOUNT_UNIT[unit], False)
    x = float(value)
    if not np.isfinite(x):
        raise ValueError(f"{value!r} is not finite")
    return x, False
