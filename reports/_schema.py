"""The results schema: one JSON file (``reports/schema.json``) that documents and checks a run directory.

The schema file is the single source of truth: ``docs/schema.md`` is generated from it
(:func:`update_schema_doc`) and :func:`check_run_dir` compares
a run directory's Parquet files (column names, Arrow types and the schema version in each file's key-value
metadata) and ``manifest.json`` (keys and JSON types) against it.  A per-scenario table (those the schema
marks ``partitioned``: :data:`PARTITIONED_TABLES`) is either one file ``<name>.parquet`` or a folder
``<name>/`` of part files ``part-<task>-<family>.parquet`` (:func:`part_file_name`), one per grid task and
scenario family; :func:`table_files` lists the files of a table in either form.  :func:`write_table` writes a table the
way the schema says (declared types for all-null columns, the version in the metadata);
:func:`upgrade_table` reads a table of an older version under the current names.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stressgrid.core import DataError

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "load_schema",
    "table_names",
    "check_table_schema",
    "check_manifest",
    "check_run_dir",
    "validate_run_dir",
    "schema_markdown",
    "update_schema_doc",
    "arrow_table",
    "write_table",
    "upgrade_table",
    "VERSION_KEY",
    "TABLE_KEY",
    "PARTITIONED_TABLES",
    "PART_NAME",
    "part_file_name",
    "table_files",
    "upgraded_column",
]

SCHEMA_PATH = Path(__file__).with_name("schema.json")

_PRESENCE = {
    "always": "always",
    "conditional": "conditional",
    "on_request": "present when the batch asks for it",
}
_JSON_TYPES = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "boolean": (bool,),
}


@functools.cache
def load_schema() -> dict[str, Any]:
    """The parsed schema file (cached; do not modify the returned dict)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


SCHEMA_VERSION: int = load_schema()["schema_version"]
#: key of the schema version in each Parquet file's key-value metadata (and of the table's name)
VERSION_KEY = b"stressgrid.schema_version"
TABLE_KEY = b"stressgrid.table"
_ARROW_TYPES = {"string": pa.string(), "double": pa.float64(), "int64": pa.int64(), "bool": pa.bool_(),
                "timestamp[us]": pa.timestamp("us"), "list<string>": pa.list_(pa.string())}


#: the per-scenario tables, which a run may store as a folder ``<name>/`` of part files instead of ``<name>.parquet``
PARTITIONED_TABLES: tuple[str, ...] = tuple(n for n, t in load_schema()["tables"].items() if t.get("partitioned"))
#: the name of a part file in such a folder: ``part-<task, six digits>-<family code, four digits>.parquet``
PART_NAME = re.compile(load_schema()["partitions"]["regex"])


def part_file_name(task: int, family_code: int) -> str:
    """The name of the part file of grid task ``task`` holding the rows of the family of code ``family_code``,
    e.g. ``part-000003-0001.parquet``; the parts sort by task, then family."""
    if not (0 <= task < 10**6 and 0 <= family_code < 10**4):
        raise ValueError(f"part file name: task must be in [0, 999999] and family_code in [0, 9999] "
                         f"(got task {task!r}, family_code {family_code!r})")
    return f"part-{task:06d}-{family_code:04d}.parquet"


def table_files(run_dir: str | Path, name: str) -> list[Path]:
    """The Parquet files of table ``name`` in a run directory, in the order of its rows: ``[<name>.parquet]``,
    or the part files ``part-*.parquet`` of the folder ``<name>/`` sorted by name, or ``[]`` when the run
    has neither.  (A run that has both is malformed: :func:`check_run_dir` says so; the file comes first.)"""
    run = Path(run_dir)
    out = [run / f"{name}.parquet"] if (run / f"{name}.parquet").is_file() else []
    if (run / name).is_dir():
        out += sorted((p for p in (run / name).glob("part-*.parquet") if p.is_file()), key=lambda p: p.name)
    return out


def table_names() -> list[str]:
    """Names of every table the schema documents, in schema order (file ``<name>.parquet``)."""
    return list(load_schema()["tables"])


def _type_matches(declared: str, actual: pa.DataType, nullable: bool) -> bool:
    """Whether an Arrow type conforms to a declared type (see the schema's ``conventions``)."""
    if nullable and pa.types.is_null(actual):
        return True
    if declared == "string" and pa.types.is_dictionary(actual):
        actual = actual.value_type  # dictionary encoding is storage, the values are text
    if declared == "string":
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or (
            hasattr(pa.types, "is_string_view") and pa.types.is_string_view(actual))
    if declared.startswith("timestamp"):
        return pa.types.is_timestamp(actual) and actual.tz is None
    if declared == "list<string>":
        return ((pa.types.is_list(actual) or pa.types.is_large_list(actual))
                and _type_matches("string", actual.value_type, False))
    return str(actual) == declared


def _column_spec(table: dict, name: str) -> dict | None:
    for col in table.get("columns", []):
        if col["name"] == name:
            return col
    for pat in table.get("patterns", []):
        if re.match(pat["regex"], name):
            return pat
    return None


def check_table_schema(name: str, schema: pa.Schema, file: str | None = None) -> list[str]:
    """Problems of one table's Arrow schema against the results schema (empty when it conforms).

    Every required column must be present with its declared type, and every column present must be
    declared (by name or by pattern); the order of the columns does not matter.  ``file`` names the file
    in the messages (default ``<name>.parquet``; e.g. ``scenarios/part-000000-0001.parquet`` for a part).
    """
    file = file or f"{name}.parquet"
    spec = load_schema()["tables"].get(name)
    if spec is None:
        return [f"{file}: table not in the results schema (reports/schema.json)"]
    if spec.get("open"):
        return []
    problems = []
    present = {f.name: f.type for f in schema}
    for col in spec.get("columns", []):
        if col.get("required", True) and col["name"] not in present:
            problems.append(f"{file}: column {col['name']!r} is missing")
    for col, typ in present.items():
        cs = _column_spec(spec, col)
        if cs is None:
            problems.append(f"{file}: column {col!r} ({typ}) is not in the results schema")
        elif not _type_matches(cs["type"], typ, cs.get("nullable", False)):
            problems.append(f"{file}: column {col!r} has type {typ}, the schema says {cs['type']}")
    return problems


def _lookup(obj: dict, dotted: str) -> tuple[bool, Any]:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def check_manifest(manifest: dict) -> list[str]:
    """Problems of a manifest (parsed ``manifest.json``) against the schema's ``manifest.keys``."""
    spec = load_schema()["manifest"]["keys"]
    problems = []
    declared = {k["name"] for k in spec}
    for key in spec:
        found, value = _lookup(manifest, key["name"])
        if not found:
            if key.get("required", True):
                problems.append(f"manifest.json: key {key['name']!r} is missing")
            continue
        types = _JSON_TYPES[key["type"]]
        bad_bool = isinstance(value, bool) and key["type"] in ("integer", "number")
        if not isinstance(value, types) or bad_bool:
            problems.append(f"manifest.json: key {key['name']!r} is {type(value).__name__}, the schema says {key['type']}")
    # keys of the top level and of the objects whose sub-keys are listed must all be declared
    parents = {k["name"].rsplit(".", 1)[0] for k in spec if "." in k["name"]}
    for k in manifest:
        if k not in declared:
            problems.append(f"manifest.json: key {k!r} is not in the results schema")
    for parent in parents:
        found, value = _lookup(manifest, parent)
        if found and isinstance(value, dict):
            for k in value:
                if f"{parent}.{k}" not in declared:
                    problems.append(f"manifest.json: key '{parent}.{k}' is not in the results schema")
    version = manifest.get("schema_version")
    if isinstance(version, int) and version != SCHEMA_VERSION:
        problems.append(f"manifest.json: schema_version is {version}, this stressgrid reads version {SCHEMA_VERSION}")
    return problems


def _check_file(path: Path, table: str, shown: str) -> list[str]:
    """Problems of one Parquet file of ``table`` (``shown``: its name in the messages)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        return [f"{shown}: not a readable Parquet file ({exc})"]
    problems = check_table_schema(table, schema, shown)
    meta = schema.metadata or {}
    version = meta.get(VERSION_KEY)
    if version is None:
        problems.append(f"{shown}: no {VERSION_KEY.decode()} in the file's key-value metadata")
    elif version != str(SCHEMA_VERSION).encode():
        problems.append(f"{shown}: {VERSION_KEY.decode()} is {version.decode(errors='replace')}, "
                        f"this stressgrid reads version {SCHEMA_VERSION}")
    written = meta.get(TABLE_KEY)
    if written is not None and written != table.encode():
        problems.append(f"{shown}: {TABLE_KEY.decode()} is {written.decode(errors='replace')}, the file is a part of "
                        f"table {table}")
    return problems


def _part_family(path: Path) -> str | None:
    """The one family of a part file, from the statistics of its ``family`` column (its footer only);
    ``"<several>"`` when they show more than one, None when they do not say."""
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError):
        return None
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    if "family" not in names:
        return None
    j = names.index("family")
    values: set = set()
    for i in range(meta.num_row_groups):
        st = meta.row_group(i).column(j).statistics
        if meta.row_group(i).num_rows == 0:
            continue
        if st is None or not st.has_min_max:
            return None
        values |= {st.min, st.max}
    return "<several>" if len(values) > 1 else next(iter(values), None)


def _check_folder(run: Path, name: str, codes: dict[str, str]) -> list[str]:
    """Problems of the folder of table ``name``: every entry a part file with a well-formed name, each
    checked like a file and holding one family, whose code is the same in every table (``codes``: family
    code -> family, filled across tables)."""
    folder = run / name
    if name not in PARTITIONED_TABLES:
        return [f"{name}/: only the per-scenario tables ({', '.join(PARTITIONED_TABLES)}) may be stored as a folder"]
    problems = []
    parts = 0
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        shown = f"{name}/{path.name}"
        if path.name.startswith("."):
            continue  # a temporary file of an atomic write
        if not path.is_file():
            problems.append(f"{shown}: not a part file (a folder table holds part-<task>-<family>.parquet files only)")
            continue
        if not PART_NAME.match(path.name):
            problems.append(f"{shown}: not a part file name: expected part-<task, six digits>-<family code, four "
                            f"digits>.parquet, e.g. {part_file_name(0, 1)}")
            if not path.name.startswith("part-") or path.suffix != ".parquet":
                continue  # not read as a part: no more to check
        parts += 1
        found = _check_file(path, name, shown)
        problems += found
        family = None if found else _part_family(path)
        if family == "<several>":
            problems.append(f"{shown}: holds the rows of several families (a part holds one family)")
        elif family is not None and PART_NAME.match(path.name):
            code = path.name[len("part-000000-"):-len(".parquet")]
            seen = codes.setdefault(code, family)
            if seen != family:
                problems.append(f"{shown}: family {family!r} under code {code}, which is the code of family {seen!r} "
                                f"in another part")
    if not parts:
        problems.append(f"{name}/: holds no part files (a table stored as a folder has at least one)")
    return problems


def check_run_dir(run_dir: str | Path, parts=None) -> list[str]:
    """Problems of a run directory against the results schema (empty when it conforms).

    Checks every ``*.parquet`` file at the top of the directory and every part file in the folder of a
    per-scenario table (names, columns, Arrow types, the schema version in each file), that a part file
    holds one family (from its statistics) under the same family code in every table, that no table is
    both a file and a folder, that every table the schema marks ``always`` is present (as a file or a
    folder), and the manifest's keys and types (and that a folder it lists is there).

    ``parts`` (a :class:`core.storage.Location`) is where the folders of part files are when they are not in
    the run directory (a run written to a URI): there only their presence is checked, not each part (that
    would read the footer of every part file over the network).
    """
    run = Path(run_dir)
    problems = []
    manifest_path = run / "manifest.json"
    if not manifest_path.is_file():
        return [f"{run}: no manifest.json (not a run directory)"]
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"{manifest_path}: not valid JSON ({exc})"]
    problems += check_manifest(manifest)
    tables = load_schema()["tables"]
    folders = {p.name for p in run.iterdir() if p.is_dir() and p.name in tables}
    elsewhere = set()
    if parts is not None and getattr(parts, "remote", False):
        listed = manifest.get("files") if isinstance(manifest, dict) else None
        for entry in listed if isinstance(listed, list) else []:
            name = entry[:-1] if isinstance(entry, str) and entry.endswith("/") else None
            if name in PARTITIONED_TABLES and name not in folders and parts.files(name, "part-", ".parquet"):
                elsewhere.add(name)
    for name, spec in tables.items():
        if spec["presence"] == "always" and not (run / f"{name}.parquet").is_file() and name not in folders | elsewhere:
            problems.append(f"{name}.parquet: missing (the schema says it is always written)")
    for path in sorted(run.glob("*.parquet")):
        problems += _check_file(path, path.stem, path.name)
        if path.stem in folders | elsewhere:
            problems.append(f"{path.name}: the table is also the folder {path.stem}/ (a table is a file or a folder "
                            f"of part files, never both)")
    codes: dict[str, str] = {}
    for name in sorted(folders):
        problems += _check_folder(run, name, codes)
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    for entry in listed if isinstance(listed, list) else []:
        if isinstance(entry, str) and entry.endswith("/"):
            if entry[:-1] not in PARTITIONED_TABLES:
                problems.append(f"manifest.json: files lists the folder {entry}, but only the per-scenario tables "
                                f"({', '.join(PARTITIONED_TABLES)}) may be stored as a folder")
            elif entry[:-1] not in folders | elsewhere:
                problems.append(f"manifest.json: files lists the folder {entry}, which the run directory does not have")
    return problems


def validate_run_dir(run_dir: str | Path) -> None:
    """Raise :class:`core.DataError` listing every problem when ``run_dir`` does not follow the schema."""
    problems = check_run_dir(run_dir)
    if problems:
        raise DataError(f"run directory {run_dir}: does not follow results schema version {SCHEMA_VERSION}: "
                        + "; ".join(problems))


def _is_null_type(t: pa.DataType) -> bool:
    """The Arrow type of a column that pandas could not type: null, or a list of nulls (only empty lists)."""
    return pa.types.is_null(t) or ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_null(t.value_type))


def arrow_table(name: str, df: pd.DataFrame, declared: bool = False) -> pa.Table:
    """Table ``name`` of a run as Arrow, as :func:`write_table` writes it.

    ``declared=True`` casts every column the schema declares to its declared type (a part of a table
    stored as a folder: one family's data, e.g. a column without values, must not change its type).

    A column that pandas cannot type (all null, or only empty lists) gets the type the schema declares for
    it, so that the type of a column does not depend on the data of a run; dictionary-encoded text (a
    pandas Categorical) gets 32-bit indices and string values whatever the number of its categories, so that
    the part files of a table stored as a folder share one Arrow type and read as one dataset; the schema
    version and the table's name go into the key-value metadata (:data:`VERSION_KEY`, :data:`TABLE_KEY`).
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type) and _type_matches("string", f.type.value_type, False):
            target = pa.dictionary(pa.int32(), pa.string())
            if f.type != target:
                table = table.set_column(i, pa.field(f.name, target, f.nullable, f.metadata), table.column(i).cast(target))
    spec = load_schema()["tables"].get(name, {})
    if not spec.get("open"):
        for i, f in enumerate(table.schema):
            cs = _column_spec(spec, f.name)
            if cs is None or pa.types.is_dictionary(f.type):
                continue
            target = _ARROW_TYPES[cs["type"]]
            if f.type != target and (_is_null_type(f.type) or declared):
                table = table.set_column(i, pa.field(f.name, target), table.column(i).cast(target))
    meta = dict(table.schema.metadata or {})
    meta.update({VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: name.encode()})
    return table.replace_schema_metadata(meta)


def write_table(name: str, df: pd.DataFrame, path: str | Path, declared: bool = False) -> Path:
    """Write table ``name`` of a run to ``path`` (Parquet, atomically: a temporary file renamed into place,
    none left behind on failure), with the declared types (every declared column's with ``declared``)
    and the schema version in its metadata (:func:`arrow_table`)."""
    import os

    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        pq.write_table(arrow_table(name, df, declared), tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


# --- older versions --------------------------------------------------------------------------------------

#: version 1 -> 2: columns renamed, per table
_V1_RENAMES = {
    **{t: {"group": "group_name"} for t in ("contributions", "breakdown", "reoptimisation_contributions",
                                             "liquidation", "capacity")},
    **{t: {"limit": "limit_name", "group": "group_name"} for t in ("capacity_limits", "breaches")},
    **{t: {"id": "position_id"} for t in ("positions", "adapted_positions")},
    "reoptimisation_weights": {"position": "position_id"},
    **{t: {"start": "window_start", "end": "window_end"} for t in ("scenarios", "walk_forward", "rebalance_backtest")},
    "var_backtest": {"window": "lookback_days", "start": "window_start", "end": "window_end"},
}
#: version 1 -> 2: metric names
_V1_METRICS = {"VaR": "var", "CVaR": "cvar", "VaR_sensitivity": "var_sensitivity", "CVaR_sensitivity": "cvar_sensitivity"}
#: version 1 -> 2: text joined with commas that became lists (table -> column -> separator)
_V1_LISTS = {"scenarios": {c: "," for c in ("uncovered", "calibrated", "propagated", "core", "not_in_model")},
             "rules_fired": {"signal": ", "}}


def _split(value, sep: str):
    if pd.isna(value):
        return None
    return [x.strip() for x in str(value).split(sep) if x.strip()]


def upgraded_column(name: str, column: str, version: int) -> str:
    """The current name of column ``column`` of table ``name`` in a file of schema ``version`` (see
    :func:`upgrade_table`)."""
    if version >= SCHEMA_VERSION:
        return column
    column = _V1_RENAMES.get(name, {}).get(column, column)
    return re.sub(r"^(spread_mult|adv_mult)\.", r"\1_", column)


def upgrade_table(name: str, df: pd.DataFrame, version: int) -> pd.DataFrame:
    """Table ``name`` of a run directory of schema ``version``, with the names and types of the current
    version (a new DataFrame; the same one when ``version`` is current).

    From version 1: the columns renamed in version 2 (``group`` -> ``group_name``, ``id`` and ``position``
    -> ``position_id``, ``limit`` -> ``limit_name``, ``start``/``end`` -> ``window_start``/``window_end``,
    ``spread_mult.<class>`` -> ``spread_mult_<class>``), lower-case metric names, and lists for the text
    joined with commas.
    """
    if version >= SCHEMA_VERSION:
        return df
    df = df.rename(columns=lambda c: upgraded_column(name, c, version))
    if "metric" in df.columns and name in ("risk_metrics", "adapted_risk_metrics"):
        df = df.assign(metric=df["metric"].replace(_V1_METRICS))
    for col, sep in _V1_LISTS.get(name, {}).items():
        if col in df.columns and not df[col].map(lambda v: isinstance(v, (list, np.ndarray))).any():
            df = df.assign(**{col: df[col].map(lambda v, sep=sep: _split(v, sep))})
    return df


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def schema_markdown() -> str:
    """The tables and manifest keys of the schema as Markdown (the generated part of ``docs/schema.md``)."""
    s = load_schema()
    out = [f"Schema version: **{s['schema_version']}** (`manifest.json` key `schema_version`).", ""]
    out += ["Conventions:", ""] + [f"- {_md_escape(c)}" for c in s["conventions"]] + [""]
    out += ["| type | meaning |", "|---|---|"] + [f"| `{k}` | {_md_escape(v)} |" for k, v in s["types"].items()]
    parts = s["partitions"]
    out += ["", f"Part files: `{parts['pattern']}` (file-name pattern `{_md_escape(parts['regex'])}`): {parts['description']}."]
    for name, t in s["tables"].items():
        presence = _PRESENCE[t["presence"]]
        if t.get("presence_note"):
            presence += f": {t['presence_note']}"
        out += ["", f"### `{name}.parquet`", "", f"{t['description']}", "", f"Presence: {presence}."]
        if t.get("partitioned"):
            out += ["", f"Stored as: the file `{name}.parquet`, or the folder `{name}/` of part files "
                        f"`{parts['pattern']}` (one per grid task and family; never both)."]
        if t.get("key"):
            out += ["", "One row per " + ", ".join(f"`{k}`" for k in t["key"]) + "."]
        if t.get("open"):
            out += ["", "Columns: defined by the module that writes it (not checked)."]
            continue
        out += ["", "| column | type | nullable | required | unit | description |", "|---|---|---|---|---|---|"]
        for c in t.get("columns", []) + t.get("patterns", []):
            name_cell = f"`{c['name']}`" if "name" in c else f"`{c['pattern']}` (pattern)"
            out.append(
                f"| {name_cell} | `{c['type']}` | {'yes' if c.get('nullable') else 'no'} | "
                f"{'yes' if c.get('required', True) else 'no'} | {_md_escape(c.get('unit', ''))} | "
                f"{_md_escape(c['description'])} |"
            )
    m = s["manifest"]
    out += ["", "### `manifest.json`", "", m["description"], "",
            "| key | JSON type | required | description |", "|---|---|---|---|"]
    for k in m["keys"]:
        out.append(f"| `{k['name']}` | {k['type']} | {'yes' if k.get('required', True) else 'no'} | "
                   f"{_md_escape(k['description'])} |")
    return "\n".join(out) + "\n"


BEGIN_MARK = "<!-- BEGIN GENERATED FROM reports/schema.json -->"
END_MARK = "<!-- END GENERATED -->"


def update_schema_doc(path: str | Path) -> None:
    """Rewrite the generated part of a Markdown file (between :data:`BEGIN_MARK` and :data:`END_MARK`) from
    the schema: ``python -c "from stressgrid import reports; reports.update_schema_doc('docs/schema.md')"``."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    start, end = text.index(BEGIN_MARK) + len(BEGIN_MARK), text.index(END_MARK)
    p.write_text(text[:start] + "\n" + schema_markdown() + text[end:], encoding="utf-8")
