"""Daily factor history: the bundled default and user files, validated once at load."""

from __future__ import annotations

import warnings

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .factors import factor_spec

__all__ = ["History", "load_history", "frame_to_history", "BUNDLED_HISTORY"]

BUNDLED_HISTORY = Path(__file__).resolve().parent / "data" / "market_history.parquet"


@dataclass(frozen=True)
class History:
    """Daily factor levels.

    Attributes
    ----------
    levels : DataFrame
        Index: sorted unique ``DatetimeIndex`` named ``date``; one float64 column per factor; NaN
        where a factor has no observation that day.
    source : str
        Where the data came from (file path or ``"bundled"``, or several joined by ``" + "``).
    snapshot_levels : DataFrame or None
        The levels a market snapshot reads, when they differ from ``levels``: for merged sources, each
        date's level from the highest-precedence source that has one, while ``levels`` chains the
        sources' moves (:func:`stressgrid.core.sources.merge_histories`).  None: ``levels``.
    provenance : dict
        Factor -> :class:`stressgrid.core.sources.Provenance` (filled by the merge); empty for a single
        file loaded directly.
    """

    levels: pd.DataFrame
    source: str
    mapping: Mapping[str, str] = field(default_factory=dict)
    snapshot_levels: pd.DataFrame | None = None
    provenance: Mapping[str, object] = field(default_factory=dict)

    @property
    def snapshot(self) -> pd.DataFrame:
        """The levels a market snapshot reads (see ``snapshot_levels``)."""
        return self.levels if self.snapshot_levels is None else self.snapshot_levels

    @property
    def factors(self) -> list[str]:
        return list(self.levels.columns)

    def span(self, factor: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last date with an observation of ``factor`` (None if never observed)."""
        s = self.snapshot[factor].dropna()
        return (s.index[0], s.index[-1]) if len(s) else None

    def require(self, factors: list[str], what: str) -> None:
        missing = [f for f in factors if f not in self.levels.columns]
        if missing:
            raise DataError(f"{what}: factor(s) {', '.join(missing)} not in history {self.source}")


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"history file {path}: not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _index_as_column(pd.read_parquet(path))
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:  # the reader's own message names the problem
        raise DataError(f"history file {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    raise DataError(f"history file {path}: unsupported extension {suffix!r}; expected .csv or .parquet")


def _index_as_column(df: pd.DataFrame) -> pd.DataFrame:
    """A frame read from Parquet with its dates as a column: pandas writes a named index (``Date``) or a
    date index into the file's metadata and reads it back as the index, not as a column."""
    if isinstance(df.index, pd.RangeIndex) and df.index.name is None:
        return df
    if df.index.name is None and isinstance(df.index, pd.DatetimeIndex):
        return df.rename_axis("date").reset_index()
    return df.reset_index() if all(n is not None for n in df.index.names) else df


def _names(columns) -> str:
    """The first columns of a table, and how many more there are."""
    columns = [str(c) for c in columns]
    more = f" and {len(columns) - 8} more" if len(columns) > 8 else ""
    return ", ".join(columns[:8]) + more


KIND_WORDS = {"rate": "rate", "spread": "credit spread", "basis": "futures basis", "vol": "implied volatility"}
#: the median absolute level, read as a decimal, above which a column of this kind must have been given
#: in percent or basis points (100% for a rate, a spread or a basis; 300% for an implied volatility)
PLAUSIBLE_MEDIAN = {"rate": 1.0, "spread": 1.0, "basis": 1.0, "vol": 3.0}


def load_history(
    path: str | Path | None = None,
    mapping: Mapping[str, str] | None = None,
    date_column: str = "date",
    units: Mapping[str, str] | None = None,
) -> History:
    """Load and validate a daily factor history.

    Parameters
    ----------
    path : path to a CSV or Parquet file, or None for the bundled history
    mapping : optional ``{column name in the file: factor name}`` for columns not named as factors
    date_column : name of the date column
    units : optional ``{column name: unit}``, a unit of :data:`stressgrid.core.sources.UNITS`
        (``percent`` and ``bp`` are turned into decimals; a price column cannot take a unit)

    Raises
    ------
    DataError
        Naming the file, the column and the row (1-based data row; for CSV, line = row + 1) of the first
        problem: unparseable or unsorted or duplicate dates, non-numeric values, non-positive prices.
    ConfigError
        If a column is neither a valid factor name nor mapped to one.
    """
    p = BUNDLED_HISTORY if path is None else Path(path)
    source = "bundled" if path is None else str(p)
    return frame_to_history(_read(p), source, mapping, date_column, units)


def frame_to_history(raw: pd.DataFrame, source: str, mapping: Mapping[str, str] | None = None,
                     date_column: str = "date", units: Mapping[str, str] | None = None) -> History:
    """Validate a table of a date column and factor columns (as read from a file or a database) into a
    :class:`History`; the checks and messages of :func:`load_history`."""
    from .sources import UNITS

    mapping = dict(mapping or {})
    units = dict(units or {})
    for col, unit in units.items():
        if col not in raw.columns:
            raise ConfigError(f"history file {source}, field 'units': no column {col!r} (columns: "
                              f"{_names(raw.columns)})")
        if unit not in UNITS:
            raise ConfigError(f"history file {source}, field 'units.{col}': unknown unit {unit!r}; expected one of "
                              f"{', '.join(UNITS)}")
    for col, name in mapping.items():
        if col not in raw.columns:
            raise ConfigError(f"history file {source}, field 'columns': no column {col!r} to map to {name} "
                              f"(columns: {_names(raw.columns)})")
    if date_column not in raw.columns:
        raise DataError(f"history file {source}: no {date_column!r} column (columns: {_names(raw.columns)})")
    if not len(raw):
        raise DataError(f"history file {source}: no rows of data below its header (columns: {_names(raw.columns)})")
    with warnings.catch_warnings():  # mixed formats are parsed one by one; a bad one is reported below
        warnings.simplefilter("ignore", UserWarning)
        column = raw[date_column]
        if pd.api.types.is_string_dtype(column) or column.dtype == object:  # " 2018-12-31" from a hand-edited file
            column = column.map(lambda x: x.strip() if isinstance(x, str) else x)
        dates = pd.to_datetime(column, errors="coerce")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    # a year outside 1900-2199 is a typo or a number read as a date
    dates = dates.where((dates >= pd.Timestamp("1900-01-01")) & (dates < pd.Timestamp("2200-01-01")))
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        i = bad[0]
        raise DataError(f"history file {source}, column {date_column!r}, row {i + 1}: {raw[date_column].iloc[i]!r} is not a date "
                        "between 1900 and 2199")
    dates = dates.dt.normalize()
    d = dates.to_numpy()
    dup = np.flatnonzero(d[1:] == d[:-1])
    if len(dup):
        i = dup[0] + 1
        raise DataError(f"history file {source}, column {date_column!r}, row {i + 1}: duplicate date {dates.iloc[i].date()}")
    down = np.flatnonzero(d[1:] < d[:-1])
    if len(down):
        i = down[0] + 1
        raise DataError(
            f"history file {source}, column {date_column!r}, row {i + 1}: date {dates.iloc[i].date()} is earlier than "
            f"row {i}'s {dates.iloc[i - 1].date()}; dates must be sorted ascending"
        )
    columns = {}
    for col in raw.columns:
        if col == date_column:
            continue
        name = mapping.get(col, col)
        try:
            spec = factor_spec(str(name))
        except ConfigError as exc:
            raise ConfigError(f"history file {source}, column {col!r}: {exc} (map it with a column mapping)") from None
        if name in columns:
            raise DataError(f"history file {source}, column {col!r}: factor {name} appears twice")
        values = pd.to_numeric(raw[col], errors="coerce")
        nonnum = np.flatnonzero(values.isna().to_numpy() & raw[col].notna().to_numpy())
        if len(nonnum):
            i = nonnum[0]
            raise DataError(f"history file {source}, column {col!r}, row {i + 1}: {raw[col].iloc[i]!r} is not a number")
        v = values.to_numpy(dtype=float)
        unit = units.get(col, "decimal")
        if unit != "decimal":
            if spec.is_log:
                raise ConfigError(f"history file {source}, field 'units.{col}': {name} is a price; a unit "
                                  f"({unit!r}) applies to rates, spreads, vols and bases only")
            v = v * UNITS[unit]
        inf = np.flatnonzero(np.isinf(v))
        if len(inf):
            raise DataError(f"history file {source}, column {col!r}, row {inf[0] + 1}: value is infinite")
        bound = PLAUSIBLE_MEDIAN.get(spec.kind)
        seen = np.abs(v[~np.isnan(v)])
        if bound is not None and len(seen) and float(np.median(seen)) > bound:
            m = float(np.median(seen))
            read = f"read in {unit}" if unit != "decimal" else "read as a decimal"
            fix = (f"check the column's unit under history.units (got {unit!r})" if unit != "decimal" else
                   f"if the column is in percent or basis points, say so under history.units, e.g. units: {{{col}: percent}}")
            raise ConfigError(f"history file {source}, column {col!r} ({name}): its median level, {read}, is {m:.4g} "
                              f"({m:.0%}), not a plausible {KIND_WORDS[spec.kind]}; {fix}")
        if spec.is_log:
            nonpos = np.flatnonzero(v <= 0)
            if len(nonpos):
                i = nonpos[0]
                raise DataError(
                    f"history file {source}, column {col!r}, row {i + 1} ({dates.iloc[i].date()}): "
                    f"price {float(v[i])!r} is not positive"
                )
        columns[name] = v
    if not columns:
        raise DataError(f"history file {source}: no factor columns besides {date_column!r}")
    levels = pd.DataFrame(columns, index=pd.DatetimeIndex(dates, name="date"))
    return History(levels=levels, source=source, mapping=mapping)
