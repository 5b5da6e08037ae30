"""The batch file: validated once, at the boundary."""

from __future__ import annotations

import hashlib
import typing
from datetime import date
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import ConfigError
from core.factors import factor_spec
from scenarios import ScenarioSpec

__all__ = ["Batch", "load_batch", "RiskSettings", "ExecutionSettings", "MarketSettings", "HistorySettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistorySettings(_Strict):
    """``history``: a user's factor history instead of the bundled one."""

    path: Path
    date_column: str = "date"
    columns: dict[str, str] = {}


class MarketSettings(_Strict):
    """``market``: the snapshot the book is valued at."""

    as_of: Optional[date] = None
    max_stale_days: int = Field(default=7, ge=0)
    overrides: dict[str, float] = {}

    @field_validator("overrides")
    @classmethod
    def _names(cls, v: dict[str, float]) -> dict[str, float]:
        for k in v:
            factor_spec(k)
        return v


class RiskSettings(_Strict):
    """``risk``: confidence levels of VaR and CVaR."""

    confidence: list[float] = [0.95, 0.99]

    @field_validator("confidence")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one confidence level")
        for a in v:
            if not 0.5 <= a < 1.0:
                raise ValueError(f"confidence level {a!r} must be in [0.5, 1)")
        return sorted(set(v))


class ExecutionSettings(_Strict):
    """``execution``: how the batch is split and run."""

    executor: Literal["ray", "serial"] = "ray"
    workers: Optional[int] = Field(default=None, ge=1)
    chunk_size: Optional[int] = Field(default=None, ge=1)


class Batch(_Strict):
    """A stress batch."""

    name: str = Field(min_length=1)
    book: Path
    base_currency: str = "USD"
    seed: int = Field(default=0, ge=0)
    history: Optional[HistorySettings] = None
    market: MarketSettings = MarketSettings()
    scenarios: list[ScenarioSpec] = Field(min_length=1)
    risk: RiskSettings = RiskSettings()
    execution: ExecutionSettings = ExecutionSettings()

    @field_validator("base_currency")
    @classmethod
    def _ccy(cls, v: str) -> str:
        if len(v) != 3 or not v.isalpha() or not v.isupper():
            raise ValueError(f"{v!r} is not a three-letter upper-case currency code")
        return v

    @field_validator("scenarios")
    @classmethod
    def _unique_families(cls, v: list) -> list:
        names = [s.name for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"scenario family name {sorted(dup)[0]!r} is used twice; give each entry its own 'name'")
        return v


def _kind_tags() -> set[str]:
    models = typing.get_args(typing.get_args(ScenarioSpec)[0])
    return {a for m in models for a in typing.get_args(m.model_fields["kind"].annotation)}


def _loc(loc: tuple) -> str:
    tags = _kind_tags()
    parts = []
    for x in loc:
        if isinstance(x, int):
            parts.append(f"[{x}]")
        elif x in tags or str(x).startswith("function-"):
            continue  # discriminator tags add nothing for the user
        else:
            parts.append(("." if parts else "") + str(x))
    return "".join(parts)


def load_batch(path: str | Path) -> tuple[Batch, str]:
    """Read and validate a batch file.

    Returns the batch, with ``book`` and ``history.path`` made relative to the batch file's folder,
    and the SHA-256 of the file's bytes.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"batch file {p}: not found")
    data = p.read_bytes()
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"batch file {p}{where}: malformed YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"batch file {p}: expected a mapping of keys (name, book, scenarios, ...), got {type(raw).__name__}")
    try:
        batch = Batch.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _loc(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            raise ConfigError(f"batch file {p}, field '{loc}': missing") from None
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"batch file {p}, field '{loc}': unknown key") from None
        if err["type"] == "union_tag_invalid":
            raise ConfigError(f"batch file {p}, field '{loc}.kind': {msg}") from None
        value = err.get("input")
        shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
        raise ConfigError(f"batch file {p}, field '{loc}': {msg}{shown}") from None
    except ConfigError as exc:  # a factor-name check inside a validator
        raise ConfigError(f"batch file {p}: {exc}") from None
    base = p.resolve().parent
    updates = {"book": (base / batch.book)}
    if batch.history is not None:
        updates["history"] = batch.history.model_copy(update={"path": base / batch.history.path})
    return batch.model_copy(update=updates), hashlib.sha256(data).hexdigest()
