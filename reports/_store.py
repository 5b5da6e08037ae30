"""The results store: run directories appended under ``run_date=YYYY-MM-DD/batch=NAME/run=RUN_ID/``, in a
local folder or in object storage (a URI).

The partition folders are Hive-style (``key=value``), so a warehouse can load one table of every stored
run at once, with the partitions as columns, e.g. in DuckDB::

    SELECT * FROM read_parquet('STORE/*/*/*/risk_metrics.parquet', hive_partitioning = true)

A per-scenario table that a run wrote as a folder of part files is stored as that folder
(``STORE/*/*/*/scenarios/*.parquet``).
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, DataError
from stressgrid.core.measures import level_label
from stressgrid.core.storage import Location

from ._rundir import RunDir, manifest_schema_version, open_run
from ._schema import upgrade_table
from ._terminal import designed_families, stressed_var

__all__ = ["store_run", "list_runs", "compare_runs", "RunComparison", "run_id_of"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: a folder of part files named in a manifest's ``files``: no path, not hidden
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _safe(text: str) -> str:
    return _SAFE.sub("_", text).strip("._") or "unnamed"


def _started(run: RunDir) -> datetime:
    raw = run.manifest.get("started")
    try:
        t = datetime.fromisoformat(str(raw))
    except ValueError:
        raise ConfigError(f"run directory {run.path}: manifest.json 'started' is not an ISO 8601 time (got {raw!r})") from None
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def run_id_of(run_dir: str | Path | RunDir) -> str:
    """The default id of a run in the store: UTC start time and the first 8 hex digits of the batch hash,
    e.g. ``20261121T073412Z-648a1c14``."""
    run = open_run(run_dir)
    sha = str(run.manifest.get("batch", {}).get("sha256", ""))[:8] or "nohash"
    return f"{_started(run):%Y%m%dT%H%M%SZ}-{_safe(sha)}"


def store_run(run_dir: str | Path | RunDir, store_root: str | Path, run_id: str | None = None) -> Path | str:
    """Copy a run into the results store (``manifest.json``, the Parquet tables, every part file of a table
    stored as a folder, and ``report.html``; not the task checkpoints).

    The run lands in ``store_root/run_date=YYYY-MM-DD/batch=NAME/run=RUN_ID/``, where the date is the
    run's UTC start date and ``RUN_ID`` defaults to :func:`run_id_of`.  ``store_root`` is a local folder
    or a URI of object storage (``s3://BUCKET/PREFIX``, any file system Arrow opens).  The part files are
    copied wherever the run keeps them (a run written to a URI keeps them there), so a stored run holds
    all of its tables: its manifest no longer names ``storage.parts``.  In a local store the copy is made
    in a temporary folder and renamed into place; in object storage the manifest is written last; either
    way a listing never sees half a run.

    Returns
    -------
    The stored run's directory (its URI for a store at a URI).

    Raises
    ------
    core.ConfigError when that run is already stored (runs in the store are never overwritten).
    """
    run = open_run(run_dir)
    rid = _safe(run_id) if run_id else run_id_of(run)
    rel = f"run_date={_started(run):%Y-%m-%d}/batch={_safe(run.batch_name)}/run={rid}"
    store = Location(store_root, "results store")
    store.check()  # a store that cannot be opened or written is named as given, before the run's folder in it
    files = [p for p in sorted(run.path.iterdir()) if p.is_file() and not p.name.startswith(".")
             and (p.suffix == ".parquet" or p.name in ("manifest.json", "report.html"))]
    folders = _part_folders(run)
    text = (run.path / "manifest.json").read_bytes()
    storage = run.manifest.get("storage")
    if isinstance(storage, dict) and "parts" in storage:  # the part files are copied beside the manifest
        manifest = json.loads(text)
        del manifest["storage"]["parts"]
        text = json.dumps(manifest, indent=2).encode("utf-8")
    if not store.remote:
        return _store_local(run, Path(store_root), rel, rid, files, folders, text)
    dest = Location(store.uri(rel), "results store")
    if dest.is_file("manifest.json"):
        raise ConfigError(f"results store {store.uri()}: run {rid!r} of batch {run.batch_name!r} is already stored at "
                          f"{dest.uri()}")
    dest.delete_dir("")  # what an interrupted copy left (no manifest: no listing saw it)
    try:
        for f in files:
            if f.name != "manifest.json":
                dest.write_bytes(f.name, f.read_bytes())
        for name, parts in folders.items():
            for part in parts:
                dest.copy_from(run.parts, f"{name}/{part}", f"{name}/{part}")
        dest.write_bytes("manifest.json", text)
    except BaseException:
        dest.delete_dir("")
        raise
    return dest.uri()


def _part_folders(run: RunDir) -> dict[str, list[str]]:
    """The tables of ``run`` stored as folders of part files: name -> the part files' names.  The names
    come from the manifest's ``files`` (``NAME/``), checked to be plain names: a manifest is data."""
    out = {}
    for entry in run.manifest.get("files", []):
        if isinstance(entry, str) and entry.endswith("/") and _FOLDER.fullmatch(entry[:-1]) and run.is_partitioned(entry[:-1]):
            out[entry[:-1]] = run.parts.files(entry[:-1], "part-", ".parquet")
    return out


def _store_local(run: RunDir, root: Path, rel: str, rid: str, files: list[Path], folders: dict, manifest: bytes) -> Path:
    dest = root / rel
    if dest.exists():
        raise ConfigError(f"results store {root}: run {rid!r} of batch {run.batch_name!r} is already stored at {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    staged = Location(tmp, "results store")
    try:
        for f in files:
            if f.name != "manifest.json":
                shutil.copy2(f, tmp / f.name)
        for name, parts in folders.items():
            (tmp / name).mkdir()
            for part in parts:
                if run.parts.remote:
                    staged.copy_from(run.parts, f"{name}/{part}", f"{name}/{part}")
                else:
                    shutil.copy2(Path(run.parts.path(f"{name}/{part}")), tmp / name / part)
        (tmp / "manifest.json").write_bytes(manifest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


_LIST_COLUMNS = ["run_date", "batch", "run_id", "started", "as_of", "batch_sha256", "scenarios", "positions",
                 "stressed_var", "stressed_var_confidence", "stressed_var_family", "breaches", "path"]


def list_runs(store_root: str | Path, batch: str | None = None) -> pd.DataFrame:
    """The runs in a results store (a local folder or a URI), oldest first.

    Columns: run_date, batch, run_id, started, as_of, batch_sha256, scenarios, positions,
    stressed_var (the largest VaR at the highest confidence level over the families that are distributions,
    as the report's headline: hypothetical and reverse families are lists of stresses; base currency), that
    level (stressed_var_confidence) and its family, breaches (breached limit checks; null when no limits were evaluated) and path (the
    stored run's folder, or its URI).  Only the manifest, ``risk_metrics`` and ``breaches`` of each run
    are read (and the kinds of the small families of a run whose manifest does not list its hypothetical
    and reverse families, one written before it did); a folder without a manifest (a copy under way or interrupted) is not a stored run.
    """
    store = Location(store_root, "results store")
    if not store.is_dir(""):
        raise ConfigError(f"results store {store.uri()}: not found (store runs with 'stressgrid store RUN_DIR "
                          f"{store.uri()}')")
    rows = []
    for d in store.dirs("", "run_date="):
        for b in store.dirs(d, f"batch={_safe(batch)}" if batch else "batch="):
            if batch and b != f"batch={_safe(batch)}":
                continue
            for r in store.dirs(f"{d}/{b}", "run="):
                rel = f"{d}/{b}/{r}"
                if store.is_file(f"{rel}/manifest.json"):
                    rows.append(_listed(store, rel, d, b, r))
    df = pd.DataFrame(rows, columns=_LIST_COLUMNS)
    df["breaches"] = df["breaches"].astype("Int64")
    return df.sort_values(["started", "batch"], kind="stable").reset_index(drop=True)


def _listed(store: Location, rel: str, run_date: str, batch: str, run: str) -> dict:
    """One row of :func:`list_runs`: the stored run in folder ``rel`` of ``store``."""
    shown = store.uri(f"{rel}/manifest.json")
    try:
        m = json.loads(store.read_bytes(f"{rel}/manifest.json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{shown}: not valid JSON ({exc})") from None
    if not isinstance(m, dict):
        raise DataError(f"{shown}: not a JSON object")

    def table(name: str) -> pd.DataFrame | None:
        if not store.is_file(f"{rel}/{name}.parquet"):
            return None
        try:
            df = pd.read_parquet(io.BytesIO(store.read_bytes(f"{rel}/{name}.parquet")))
        except (OSError, ValueError) as exc:
            raise DataError(f"{store.uri(f'{rel}/{name}.parquet')}: not a readable Parquet file ({exc})") from None
        return upgrade_table(name, df, manifest_schema_version(m))  # a run stored before a schema change

    rm, br = table("risk_metrics"), table("breaches")
    sv, sv_fam, sv_conf = np.nan, None, np.nan
    top = None if rm is None else stressed_var(rm, _designed(store, rel, m))
    if top is not None:
        sv, sv_fam, sv_conf = top
    batch_info = m.get("batch") if isinstance(m.get("batch"), dict) else {}
    counts = m.get("counts") if isinstance(m.get("counts"), dict) else {}
    return dict(
        run_date=run_date.partition("=")[2], batch=batch.partition("=")[2], run_id=run.partition("=")[2],
        started=m.get("started"), as_of=m.get("as_of"), batch_sha256=batch_info.get("sha256"),
        scenarios=counts.get("scenarios"), positions=counts.get("positions"),
        stressed_var=sv, stressed_var_confidence=sv_conf, stressed_var_family=sv_fam,
        breaches=None if br is None else int(br["breached"].sum()),
        path=store.uri(rel) if store.remote else str(Path(store.target) / rel),
    )


def _designed(store: Location, rel: str, manifest: dict) -> set[str]:
    """The families of stored run ``rel`` that are lists of stresses (the report's stressed VaR leaves them
    out): from its manifest, or, for a run written before the manifest listed them, from its scenarios when
    the store is a local folder (in object storage such a run's listing takes every family)."""
    listed = manifest.get("designed_families")
    if isinstance(listed, list):
        return {str(f) for f in listed}
    if store.remote:
        return set()
    return designed_families(RunDir(Path(store.target) / rel))


@dataclass
class RunComparison:
    """What changed from run A to run B.

    Attributes
    ----------
    metrics : family, metric, confidence, level, group_name, value_a, value_b, change (B - A), change_pct
        (change / |A|; null when A is 0 or missing): every risk measure (level ``book``) and the CVaR
        contributions by asset class and sleeve (metric ``cvar_contribution``)
    positions : position_id, status (added, removed, changed, unchanged), quantity_a, quantity_b
    info : key, value_a, value_b, same: batch, batch hash, as-of date, history, code version, counts, seed,
        confidence levels and families
    """

    metrics: pd.DataFrame
    positions: pd.DataFrame
    info: pd.DataFrame


def _metric_rows(run: RunDir) -> pd.DataFrame:
    rm = run.table("risk_metrics")[["family", "metric", "confidence", "value"]].copy()
    rm["level"], rm["group_name"] = "book", "book"
    ct = run.table("contributions")
    ct = ct[ct["level"].isin(["asset_class", "sleeve"])].rename(columns={"cvar_contribution": "value"})
    ct = ct.assign(metric="cvar_contribution")[["family", "metric", "confidence", "value", "level", "group_name"]]
    return pd.concat([rm, ct], ignore_index=True)


def compare_runs(run_a: str | Path | RunDir, run_b: str | Path | RunDir) -> RunComparison:
    """Compare two runs (run directories or stored runs) metric by metric, position by position."""
    a, b = open_run(run_a), open_run(run_b)
    keys = ["family", "metric", "confidence", "level", "group_name"]
    ma, mb = _metric_rows(a), _metric_rows(b)
    # a null confidence (mean, vol, worst, scenarios) must match a null confidence
    for df in (ma, mb):
        df["_conf"] = df["confidence"].fillna(-1.0).round(12)
    m = ma.merge(mb, on=["family", "metric", "_conf", "level", "group_name"], how="outer", suffixes=("_a", "_b"), sort=False)
    m["confidence"] = m["confidence_a"].combine_first(m["confidence_b"])
    m = m[keys + ["value_a", "value_b"]]
    m["change"] = m["value_b"] - m["value_a"]
    denom = m["value_a"].abs()
    m["change_pct"] = np.where(denom > 0, m["change"] / denom.where(denom > 0, 1.0), np.nan)
    m.loc[m["value_a"].isna() | m["value_b"].isna(), "change_pct"] = np.nan

    pa_, pb = a.table("positions")[["position_id", "quantity"]], b.table("positions")[["position_id", "quantity"]]
    p = pa_.merge(pb, on="position_id", how="outer", suffixes=("_a", "_b"), sort=False, indicator=True)
    p["status"] = np.select(
        [p["_merge"] == "right_only", p["_merge"] == "left_only", ~np.isclose(p["quantity_a"].fillna(0), p["quantity_b"].fillna(0))],
        ["added", "removed", "changed"], "unchanged")
    p = p[["position_id", "status", "quantity_a", "quantity_b"]].reset_index(drop=True)

    def pick(man: dict, path: str):
        cur = man
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    info_keys = ["batch.name", "batch.sha256", "batch.book", "as_of", "history.source", "history.last", "versions.stressgrid",
                 "seeds.root", "counts.scenarios", "counts.positions", "base_currency", "started"]
    rows = [(k, pick(a.manifest, k), pick(b.manifest, k)) for k in info_keys]
    # what the metrics are measured at and over: a level or a family on one side only has no change to show
    rows += [("confidence", ", ".join(level_label(x) for x in a.confidences), ", ".join(level_label(x) for x in b.confidences)),
             ("families", ", ".join(a.families), ", ".join(b.families))]
    info = pd.DataFrame(rows, columns=["key", "value_a", "value_b"])
    info["same"] = [x == y for x, y in zip(info["value_a"], info["value_b"])]
    for c in ("value_a", "value_b"):
        info[c] = info[c].map(lambda v: None if v is None else str(v))
    return RunComparison(m.reset_index(drop=True), p, info)

