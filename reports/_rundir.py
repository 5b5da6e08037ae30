"""Reading a run directory: the manifest and its Parquet tables, loaded lazily, in parts and only once.

A per-scenario table (:data:`reports.PARTITIONED_TABLES`) is either one file ``<name>.parquet`` or a folder
``<name>/`` of part files, one per grid task and scenario family.  :class:`RunDir` reads both forms into the
same DataFrame, and reads only what is asked for: some columns (``columns=``), the rows of some families
(``families=``, pushed down to the files' statistics so that the parts of other families are not read),
piece by piece (:meth:`RunDir.scan`), or the rows with the smallest values of a column
(:meth:`RunDir.smallest`).  A report never needs a per-scenario table of millions of rows in memory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs

from stressgrid.core import DataError
from stressgrid.core.storage import Location, is_uri, location, stage_dir

from ._schema import PARTITIONED_TABLES, SCHEMA_VERSION, upgrade_table, upgraded_column

__all__ = ["RunDir", "manifest_schema_version", "open_run", "parts_location", "publish_run", "stage_run"]

_FORMAT = ds.ParquetFileFormat()
_LOCAL = fs.LocalFileSystem()


def _values(v) -> tuple:
    """A filter's value(s) as a tuple: one value, or the values of a list, set, array or Series."""
    if isinstance(v, (str, bytes)) or np.isscalar(v):
        return (v,)
    return tuple(dict.fromkeys(v.tolist() if hasattr(v, "tolist") else v))


def _text_like(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t))


def _common_types(schemas: list[pa.Schema]) -> dict[str, pa.DataType]:
    """Column -> the type every file of a table is read as, for the text columns whose Arrow type differs
    between the files: dictionary-encoded (32-bit indices) when it is in any file, else large_string."""
    types: dict[str, set] = {}
    for schema in schemas:
        for f in schema:
            types.setdefault(f.name, set()).add(f.type)
    out = {}
    for name, ts in types.items():
        if len(ts) > 1 and all(_text_like(t.value_type if pa.types.is_dictionary(t) else t) for t in ts):
            out[name] = (pa.dictionary(pa.int32(), pa.large_string()) if any(pa.types.is_dictionary(t) for t in ts)
                         else pa.large_string())
    return out


def _conform(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    """``table`` with its columns cast to ``types`` (see :func:`_common_types`)."""
    for name, typ in types.items():
        i = table.schema.get_field_index(name)
        if i < 0 or table.schema.field(i).type == typ:
            continue
        col = table.column(i)
        if pa.types.is_dictionary(typ) and not pa.types.is_dictionary(col.type):
            col = pc.dictionary_encode(col.cast(typ.value_type))
        table = table.set_column(i, pa.field(name, typ), col.cast(typ))
    return table


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Pieces of one table (conformed to its common types) as one table; numbers widened, a column absent
    from a piece null there (``pyarrow.concat_tables``, ``permissive``)."""
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"the part files of a table do not agree on their column types ({exc})") from None


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns (dictionary-encoded text) with their categories in the order in which the values
    first appear, and only those: the same whatever dictionary the file, or each part, was written with."""
    for c in df.columns:
        s = df[c]
        if not isinstance(s.dtype, pd.CategoricalDtype) or s.cat.ordered:
            continue
        codes = s.cat.codes.to_numpy()
        seen = pd.unique(codes[codes >= 0])
        if len(seen) == len(s.cat.categories) and (seen == np.arange(len(seen))).all():
            continue
        remap = np.full(len(s.cat.categories) + 1, -1, dtype=np.int64)
        remap[seen] = np.arange(len(seen))
        df[c] = pd.Categorical.from_codes(remap[codes], categories=s.cat.categories.take(seen))
    return df


def _key(columns, families, where) -> tuple:
    cols = None if columns is None else tuple(columns)
    fams = None if families is None else frozenset(_values(families))
    wh = None if not where else frozenset((k, frozenset(_values(v))) for k, v in where.items())
    return cols, fams, wh


class RunDir:
    """A run directory as written by ``stressgrid run``: ``manifest.json`` and the Parquet tables, each the
    file ``<table>.parquet`` or, for a per-scenario table, the folder ``<table>/`` of part files
    ``part-<task>-<family>.parquet`` (:data:`reports.PARTITIONED_TABLES`).

    Tables are read on first use and cached, per table, columns and rows asked for.  A table the run did not
    write is absent, not empty: :meth:`get` returns None for it and :meth:`table` raises
    :class:`core.DataError`.  A table reads the same from a file or from a folder: the same columns in the
    same order, the same rows in the same order (the parts in file-name order), and the same dtypes (text
    that is dictionary-encoded reads as a pandas Categorical whose categories are the values present, in the
    order in which they first appear, whatever the dictionaries of the file or of each part).  A run
    directory of an older schema version (``manifest.json`` ``schema_version``) is read under the current
    names (:func:`reports.upgrade_table`), so reports and limits work on the runs of a results store.

    The part files of a per-scenario table may live elsewhere than the run directory: in object storage
    when the run was written to a URI (``stressgrid run --out s3://...``).  They are then read where they
    are, through Arrow's file systems, and the run directory is the local staging folder that holds the
    manifest and the other tables (:func:`stage_run`).

    Parameters
    ----------
    path : the run directory
    parts : where the folders of part files are (a folder or a URI); default :func:`parts_location` of the
        manifest: the run directory itself unless the manifest's ``storage.parts`` names another place
    """

    def __init__(self, path: str | Path, parts: str | Location | None = None):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"run directory {self.path}: not found (give the --out directory of 'stressgrid run')")
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise DataError(f"run directory {self.path}: has no manifest.json (give the --out directory of 'stressgrid run')")
        try:
            self.manifest: dict = json.loads(mpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{mpath}: not valid JSON ({exc})") from None
        if not isinstance(self.manifest, dict):
            raise DataError(f"{mpath}: expected a JSON object (got {type(self.manifest).__name__})")
        self.parts = location(parts, "parts") if parts is not None else parts_location(self.path, self.manifest)
        self._cache: dict[tuple, pd.DataFrame] = {}
        self._footers: dict[PurePosixPath, tuple[pq.FileMetaData, pa.Schema]] = {}
        self._layouts: dict[str, tuple[list[PurePosixPath], dict[str, str], dict[str, pa.DataType]]] = {}
        self._folders: dict[str, bool] = {}
        #: scenario -> name of the part file it was found in (by :meth:`smallest`), so that its rows in the
        #: other per-scenario tables are looked up in their part of the same task and family only
        self._found: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- where a table is ---------------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        """Whether the run wrote table ``name`` (the file ``<name>.parquet`` or the folder ``<name>/``)."""
        return (self.path / f"{name}.parquet").is_file() or self.is_partitioned(name)

    def is_partitioned(self, name: str) -> bool:
        """Whether table ``name`` is stored as a folder of part files (``<name>/``, in :attr:`parts`) rather
        than one file."""
        if name not in PARTITIONED_TABLES:
            return False
        if name not in self._folders:
            self._folders[name] = self.parts.is_dir(name)
        return self._folders[name]

    def _fs(self, path: PurePosixPath):
        """The file system of a file of :meth:`files`: local for a ``Path``, else that of :attr:`parts`."""
        return _LOCAL if isinstance(path, Path) else self.parts.filesystem

    def files(self, name: str) -> list[PurePosixPath]:
        """The Parquet files of table ``name`` in the order of its rows: ``[<name>.parquet]``, or the part
        files ``<name>/part-*.parquet`` sorted by name (``Path`` objects where they are local, else
        ``PurePosixPath`` objects within the file system of :attr:`parts`).

        Raises
        ------
        core.DataError when the run did not write the table, wrote it both as a file and as a folder, or its
        folder holds no part file.
        """
        single = self.path / f"{name}.parquet"
        if self.is_partitioned(name):
            if single.is_file():
                raise DataError(f"run directory {self.path}: table {name} is both the file {name}.parquet and the folder "
                                f"{name}/ (a table is one or the other); remove the one that is stale")
            names = self.parts.files(name, "part-", ".parquet")
            if not names:
                shown = self.parts.uri(name) if self.parts.remote else name
                raise DataError(f"run directory {self.path}: folder {shown}/ holds no part files "
                                "(part-<task>-<family>.parquet)")
            if self.parts.remote:
                return [PurePosixPath(self.parts.path(f"{name}/{n}")) for n in names]
            return [Path(self.parts.path(f"{name}/{n}")) for n in names]
        if not single.is_file():
            raise DataError(f"run directory {self.path}: has no {name}.parquet")
        return [single]

    # --- reading ------------------------------------------------------------------------------------------

    def _footer(self, path: PurePosixPath) -> tuple[pq.FileMetaData, pa.Schema]:
        """The Parquet metadata and the Arrow schema of one file (its footer, read once)."""
        if path not in self._footers:
            try:
                with pq.ParquetFile(str(path), filesystem=self._fs(path)) as f:
                    self._footers[path] = (f.metadata, f.schema_arrow)
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"{path}: cannot be read as Parquet ({exc})") from None
        return self._footers[path]

    def _layout(self, name: str) -> tuple[list[Path], dict[str, str], dict[str, pa.DataType]]:
        """The files of table ``name``, its columns (current name -> stored name, in the order of the first
        file, then of the others) and the common types of the columns whose type differs between files."""
        if name not in self._layouts:
            paths = self.files(name)
            schemas = [self._footer(p)[1] for p in paths]
            stored: dict[str, str] = {}
            for schema in schemas:
                for f in schema:
                    stored.setdefault(upgraded_column(name, f.name, self.schema_version), f.name)
            self._layouts[name] = (paths, stored, _common_types(schemas))
        return self._layouts[name]

    def _plan(self, name: str, columns: Sequence[str] | None, families, where: dict | None):
        """What a read reads: the files, the stored columns, the filter (an Arrow expression, and column ->
        values for the statistics) and the common types."""
        where = dict(where or {})
        if families is not None:
            where["family"] = families
        paths, stored, types = self._layout(name)
        if len(paths) > 1 and "scenario" in where:
            # scenarios found by smallest(): their rows are in the part of the same task and family
            known = {self._found.get(s) for s in _values(where["scenario"])}
            narrowed = [p for p in paths if p.name in known]
            if None not in known and narrowed:
                paths = narrowed
        missing = [c for c in list(columns or []) + list(where) if c not in stored]
        if missing:
            raise DataError(f"run directory {self.path}: table {name} has no column {missing[0]!r} "
                            f"(has: {', '.join(stored)})")
        expr = None
        for col, v in where.items():
            e = pc.field(stored[col]).isin(list(_values(v)))
            expr = e if expr is None else expr & e
        cols = list(stored.values()) if columns is None else [stored[c] for c in columns]
        return paths, cols, expr, {stored[k]: _values(v) for k, v in where.items()}, types

    def _pieces(self, path: Path, where: dict[str, tuple]) -> list[ds.Fragment]:
        """The row groups of one file that may hold rows matching ``where`` (column -> values), by their
        statistics (Arrow does not prune on the statistics of a dictionary-encoded column itself)."""
        meta, _ = self._footer(path)
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        keep = []
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            ok = True
            for col, values in where.items():
                st = rg.column(index[col]).statistics if col in index else None
                if st is None or not st.has_min_max:
                    continue
                try:
                    ok = any(st.min <= v <= st.max for v in values)
                except TypeError:
                    ok = True
                if not ok:
                    break
            if ok:
                keep.append(g)
        return [_FORMAT.make_fragment(str(path), filesystem=self._fs(path), row_groups=[g]) for g in keep]

    def _read_piece(self, name: str, piece: ds.Fragment, columns: list[str], expr, rows: np.ndarray | None = None) -> pa.Table:
        """Columns ``columns`` (stored names) of the rows of one row group of one file of table ``name`` that
        match ``expr``; with ``rows``, only those of them (positions among the matching rows).  Every read of
        a table's data goes through here."""
        columns = [c for c in columns if c in piece.physical_schema.names]
        try:
            if rows is None:
                return piece.to_table(columns=columns, filter=expr)
            return piece.take(pa.array(rows, type=pa.int64()), columns=columns, filter=expr)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{piece.path}: cannot be read as Parquet ({exc})") from None

    def _frame(self, name: str, tables: list[pa.Table], types: dict, path: Path, cols: list[str],
               columns: Sequence[str] | None) -> pd.DataFrame:
        """Pieces read from table ``name`` as one DataFrame under the current names (``cols``: the stored
        columns read, for the columns of no piece; ``path``: the file whose pandas metadata applies)."""
        if tables:
            t = _concat([_conform(t, types) for t in tables])
        else:  # no row group can hold a matching row: the columns, no rows
            schema = self._footer(path)[1]
            t = _conform(pa.Table.from_batches([], schema=pa.schema([schema.field(c) for c in cols if c in schema.names])), types)
        df = _canonical(t.replace_schema_metadata(self._footer(path)[1].metadata).to_pandas())
        df = upgrade_table(name, df, self.schema_version)
        return df if columns is None else df[list(columns)]

    def _read(self, name, columns, families, where) -> pd.DataFrame:
        paths, cols, expr, stats, types = self._plan(name, columns, families, where)
        tables = [self._read_piece(name, piece, cols, expr) for path in paths for piece in self._pieces(path, stats)]
        return self._frame(name, tables, types, paths[0], cols, columns)

    def table(self, name: str, columns: Sequence[str] | None = None, families: Iterable[str] | str | None = None,
              where: dict | None = None) -> pd.DataFrame:
        """Table ``name`` as a DataFrame (cached; do not modify it in place).

        Parameters
        ----------
        name : the table (``risk_metrics``, ``scenarios``, ...)
        columns : the columns to read, in this order (default: every column, in the file's order)
        families : read only the rows of these scenario families (one name or several)
        where : read only the rows whose column has one of the values given: column -> value or values,
            e.g. ``{"level": "asset_class"}``

        The rows keep the order of the table.  A filter is pushed down to the files: the parts (and row
        groups) whose statistics exclude the families or values asked for are not read.

        Raises
        ------
        core.DataError when the run did not write the table, the table has no such column, or a file cannot
        be read.
        """
        key = (name, *_key(columns, families, where))
        if key not in self._cache:
            self._cache[key] = self._read(name, columns, families, where)
        return self._cache[key]

    def get(self, name: str, columns: Sequence[str] | None = None, families: Iterable[str] | str | None = None,
            where: dict | None = None) -> pd.DataFrame | None:
        """Table ``name`` (see :meth:`table`), or None when the run did not write it."""
        return self.table(name, columns, families, where) if self.has(name) else None

    def scan(self, name: str, columns: Sequence[str] | None = None, families: Iterable[str] | str | None = None,
             where: dict | None = None) -> Iterator[pd.DataFrame]:
        """Table ``name`` piece by piece, in the order of its rows: one DataFrame per row group of each file
        (a part file, or the single file), holding the rows that match ``families`` and ``where``; pieces
        without such rows are skipped (not cached; the arguments are those of :meth:`table`).

        For what reads a large table once, e.g. a histogram, or the smallest values of a column in each
        group: memory holds one piece at a time.
        """
        paths, cols, expr, stats, types = self._plan(name, columns, families, where)
        for path in paths:
            for piece in self._pieces(path, stats):
                t = self._read_piece(name, piece, cols, expr)
                if t.num_rows:
                    yield self._frame(name, [t], types, path, cols, columns)

    def smallest(self, name: str, k: int, by: str = "pnl", columns: Sequence[str] | None = None,
                 families: Iterable[str] | str | None = None, where: dict | None = None) -> pd.DataFrame:
        """The ``k`` rows of table ``name`` with the smallest values of column ``by``, ascending (among equal
        values, the first in the table first; nulls never): the rows of ``table(name).nsmallest(k, by)``,
        found piece by piece, reading column ``by`` of each piece and the other columns only of the rows
        found.

        Parameters
        ----------
        name, columns, families, where : as for :meth:`table` (``columns`` default: every column)
        k : how many rows
        by : the column to rank by, e.g. ``pnl`` (the largest losses first)

        The part file of each scenario found is remembered, so that a later read of the rows of those
        scenarios in another per-scenario table (``where={"scenario": ...}``) reads only the part of the same
        task and family.
        """
        paths, (stored_by,), expr, stats, types = self._plan(name, [by], families, where)
        cols = self._plan(name, columns, None, None)[1]
        pieces = [piece for path in paths for piece in self._pieces(path, stats)]
        best_v = np.empty(0)
        best_i = np.empty((0, 2), dtype=np.int64)  # (piece, position among the piece's matching rows)
        for j, piece in enumerate(pieces):
            v = self._read_piece(name, piece, [stored_by], expr).column(0).to_numpy(zero_copy_only=False).astype(float)
            rows = np.flatnonzero(~np.isnan(v))
            rows = rows[np.argsort(v[rows], kind="stable")[:k]]
            best_v = np.r_[best_v, v[rows]]
            best_i = np.r_[best_i, np.c_[np.full(len(rows), j), rows]]
            order = np.lexsort((best_i[:, 1], best_i[:, 0], best_v))[:k]
            best_v, best_i = best_v[order], best_i[order]
        taken = {}
        for j in np.unique(best_i[:, 0]):
            rows = np.sort(best_i[best_i[:, 0] == j, 1])
            taken[j] = (rows, self._read_piece(name, pieces[j], cols, expr, rows))
        found = [taken[j][1].slice(int(np.searchsorted(taken[j][0], r)), 1) for j, r in best_i]
        df = self._frame(name, found, types, paths[0], cols, columns)
        if self.is_partitioned(name) and "scenario" in df.columns:
            for scen, j in zip(df["scenario"].astype(str), best_i[:, 0]):
                self._found[scen] = PurePosixPath(pieces[j].path).name
        return df.reset_index(drop=True)

    def rows(self, name: str) -> int:
        """The number of rows of table ``name``, from its files' footers (no data read)."""
        return sum(self._footer(p)[0].num_rows for p in self._layout(name)[0])

    def family_sizes(self) -> pd.Series:
        """Scenarios per family (int), indexed by family in the order of the batch.

        From the ``scenarios`` rows of ``risk_metrics`` when they add up to the rows of the ``scenarios``
        table (its files' footers); otherwise (a run directory whose tables do not agree) counted from the
        ``family`` column of ``scenarios``, piece by piece, in the order the families first appear there.
        """
        rm = self.table("risk_metrics")
        n = rm[rm["metric"] == "scenarios"].drop_duplicates("family").set_index("family")["value"]
        fams = self.families
        if all(f in n.index for f in fams) and int(n.loc[fams].sum()) == self.rows("scenarios"):
            return pd.Series([int(n[f]) for f in fams], index=pd.Index(fams, name="family"), name="scenarios", dtype="int64")
        counted: dict[str, int] = {}
        for piece in self.scan("scenarios", columns=["family"]):
            codes, uniques = pd.factorize(piece["family"].astype(str))
            for f, c in zip(uniques, np.bincount(codes[codes >= 0], minlength=len(uniques))):
                counted[f] = counted.get(f, 0) + int(c)
        return pd.Series(list(counted.values()), index=pd.Index(list(counted), name="family"), name="scenarios",
                         dtype="int64")

    @property
    def schema_version(self) -> int:
        """The results schema version the run directory follows (the current one when the manifest does
        not say)."""
        return manifest_schema_version(self.manifest)

    @property
    def base_currency(self) -> str:
        return str(self.manifest.get("base_currency", ""))

    @property
    def batch_name(self) -> str:
        return str(self.manifest.get("batch", {}).get("name", self.path.name))

    @property
    def families(self) -> list[str]:
        """Scenario families in the order the batch lists them (the order of ``risk_metrics``)."""
        return list(dict.fromkeys(self.table("risk_metrics")["family"]))

    @property
    def confidences(self) -> list[float]:
        """Confidence levels of VaR and CVaR in the run, ascending."""
        rm = self.table("risk_metrics")
        return sorted(float(a) for a in rm.loc[rm["metric"] == "cvar", "confidence"].dropna().unique())


def manifest_schema_version(manifest: dict) -> int:
    """The results schema version a run's ``manifest`` says it follows (the current one when it does not)."""
    v = manifest.get("schema_version", SCHEMA_VERSION) if isinstance(manifest, dict) else SCHEMA_VERSION
    return v if isinstance(v, int) and not isinstance(v, bool) else SCHEMA_VERSION


def parts_location(run_dir: str | Path, manifest: dict) -> Location:
    """Where the folders of part files of the run in ``run_dir`` are: the manifest's ``storage.parts``
    (a URI, for a run written to one) or else the run directory."""
    storage = manifest.get("storage") if isinstance(manifest, dict) else None
    parts = storage.get("parts") if isinstance(storage, dict) else None
    if parts is None:
        return Location(run_dir, "run directory")
    if not is_uri(parts):
        raise DataError(f"{Path(run_dir) / 'manifest.json'}: storage.parts must be a URI (got {parts!r})")
    return Location(parts, "the run's part files")


#: a table file's name in a manifest's ``files``: no folder, not hidden
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.parquet")
#: the files of a run directory copied to and from a URI besides its ``*.parquet`` tables
_SMALL_FILES = ("report.html",)


def stage_run(uri: str, stage: str | Path | None = None) -> RunDir:
    """The run written to ``uri`` (``stressgrid run --out URI``): its manifest and the tables that are single
    files are copied into a local staging folder (``stage``, default :func:`core.storage.stage_dir`),
    replacing what an earlier copy left there, and its part files are read at ``uri``.

    Raises
    ------
    core.ConfigError when ``uri`` cannot be opened; core.DataError when it holds no run (no manifest.json).
    """
    loc = Location(uri, "run")
    if not loc.is_file("manifest.json"):
        raise DataError(f"run {uri}: has no manifest.json (give the --out of 'stressgrid run')")
    raw = loc.read_bytes("manifest.json")
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{loc.uri('manifest.json')}: not valid JSON ({exc})") from None
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, list):
        raise DataError(f"{loc.uri('manifest.json')}: has no list of files")
    names = []
    for entry in listed:
        if isinstance(entry, str) and entry.endswith("/"):
            continue  # a folder of part files, read at the URI
        if not isinstance(entry, str) or not _PLAIN_NAME.fullmatch(entry):
            raise DataError(f"{loc.uri('manifest.json')}: files lists {entry!r}, not the name of a table file "
                            "(NAME.parquet)")
        names.append(entry)
    present = set(loc.files(""))
    lost = [n for n in names if n not in present]
    if lost:
        raise DataError(f"run {uri}: manifest.json lists {lost[0]}, which is not there (the run was not copied whole)")
    dest = Path(stage) if stage is not None else stage_dir(uri)
    dest.mkdir(parents=True, exist_ok=True)
    for old in [*dest.glob("*.parquet"), *(dest / n for n in _SMALL_FILES)]:
        old.unlink(missing_ok=True)
    for name in names + [n for n in ("breaches.parquet", *_SMALL_FILES) if n in present and n not in names]:
        (dest / name).write_bytes(loc.read_bytes(name))
    (dest / "manifest.json").write_bytes(raw)
    return RunDir(dest, parts=loc)


def publish_run(run_dir: str | Path, uri: str, names: Sequence[str] | None = None) -> list[str]:
    """Copy the files of the run directory ``run_dir`` that are not part files to ``uri``: the tables its
    manifest lists as files, ``breaches.parquet`` and ``report.html`` where present (or only ``names``
    of them, e.g. the report written after the run), and ``manifest.json`` last, so that a reader of
    ``uri`` never finds a manifest without its tables.  Returns the names copied."""
    run = Path(run_dir)
    loc = Location(uri)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    listed = [f for f in manifest.get("files", []) if isinstance(f, str) and not f.endswith("/")]
    wanted = listed + ["breaches.parquet", *_SMALL_FILES] if names is None else list(names)
    names = [n for n in dict.fromkeys(wanted) if n != "manifest.json" and (run / n).is_file()]
    for name in names + ["manifest.json"]:
        loc.write_bytes(name, (run / name).read_bytes())
    return names + ["manifest.json"]


def open_run(run_dir: str | Path | RunDir) -> RunDir:
    """A :class:`RunDir` for ``run_dir`` (returned as is when it already is one); a URI is read through
    :func:`stage_run`."""
    if isinstance(run_dir, RunDir):
        return run_dir
    if is_uri(str(run_dir)):
        return stage_run(str(run_dir))
    return RunDir(run_dir)
