"""The results store: run directories appended under ``run_date=YYYY-MM-DD/batch=NAME/run=RUN_ID/``.

The partition folders are Hive-style (``key=value``), so a warehouse can load one table of every stored
run at once, with the partitions as columns, e.g. in DuckDB::

    SELECT * FROM read_parquet('STORE/*/*/*/risk_metrics.parquet', hive_partitioning = true)

A per-scenario table that a run wrote as a folder of part files is stored as that folder
(``STORE/*/*/*/scenarios/*.parquet``).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError

from ._rundir import RunDir, open_run

__all__ = ["store_run", "list_runs", "compare_runs", "RunComparison", "run_id_of"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def store_run(run_dir: str | Path | RunDir, store_root: str | Path, run_id: str | None = None) -> Path:
    """Copy a run directory into the results store (``manifest.json``, the Parquet tables, every part file of
    a table stored as a folder, and ``report.html``; not the task checkpoints).

    The run lands in ``store_root/run_date=YYYY-MM-DD/batch=NAME/run=RUN_ID/``, where the date is the
    run's UTC start date and ``RUN_ID`` defaults to :func:`run_id_of`.  The copy is made in a temporary
    folder and renamed into place, so a listing never sees half a run.

    Returns
    -------
    The stored run's directory.

    Raises
    ------
    core.ConfigError when that run is already stored (runs in the store are never overwritten).
    """
    run = open_run(run_dir)
    rid = _safe(run_id) if run_id else run_id_of(run)
    dest = Path(store_root) / f"run_date={_started(run):%Y-%m-%d}" / f"batch={_safe(run.batch_name)}" / f"run={rid}"
    if dest.exists():
        raise ConfigError(f"results store {store_root}: run {rid!r} of batch {run.batch_name!r} is already stored at {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for p in sorted(run.path.iterdir()):
            if p.is_file() and not p.name.startswith(".") and (p.suffix == ".parquet" or p.name in ("manifest.json", "report.html")):
                shutil.copy2(p, tmp / p.name)
            elif p.is_dir() and run.is_partitioned(p.name):  # a per-scenario table as a folder of part files
                (tmp / p.name).mkdir()
                for part in sorted(p.glob("part-*.parquet")):
                    if part.is_file():
                        shutil.copy2(part, tmp / p.name / part.name)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


_LIST_COLUMNS = ["run_date", "batch", "run_id", "started", "as_of", "batch_sha256", "scenarios", "positions",
                 "stressed_var", "stressed_var_family", "breaches", "path"]


def list_runs(store_root: str | Path, batch: str | None = None) -> pd.DataFrame:
    """The runs in a results store, oldest first.

    Columns: run_date, batch, run_id, started, as_of, batch_sha256, scenarios, positions,
    stressed_var (the largest VaR at the highest confidence level over the families, base currency) and
    its family, breaches (breached limit checks; null when no limits were evaluated) and path.
    """
    root = Path(store_root)
    if not root.is_dir():
        raise ConfigError(f"results store {root}: not found (store runs with 'stressgrid store RUN_DIR {root}')")
    rows = []
    pattern = f"run_date=*/batch={_safe(batch) if batch else '*'}/run=*/manifest.json"
    for mpath in sorted(root.glob(pattern)):
        run = RunDir(mpath.parent)
        m = run.manifest
        rm = run.get("risk_metrics")
        sv, sv_fam = np.nan, None
        if rm is not None and (rm["metric"] == "var").any():
            var = rm[rm["metric"] == "var"]
            var = var[np.isclose(var["confidence"], var["confidence"].max())]
            top = var.loc[var["value"].idxmax()]
            sv, sv_fam = float(top["value"]), str(top["family"])
        br = run.get("breaches")
        rows.append(dict(
            run_date=mpath.parent.parent.parent.name.partition("=")[2],
            batch=mpath.parent.parent.name.partition("=")[2],
            run_id=mpath.parent.name.partition("=")[2],
            started=m.get("started"), as_of=m.get("as_of"), batch_sha256=m.get("batch", {}).get("sha256"),
            scenarios=m.get("counts", {}).get("scenarios"), positions=m.get("counts", {}).get("positions"),
            stressed_var=sv, stressed_var_family=sv_fam,
            breaches=None if br is None else int(br["breached"].sum()), path=str(mpath.parent),
        ))
    df = pd.DataFrame(rows, columns=_LIST_COLUMNS)
    df["breaches"] = df["breaches"].astype("Int64")
    return df.sort_values(["started", "batch"], kind="stable").reset_index(drop=True)


@dataclass
class RunComparison:
    """What changed from run A to run B.

    Attributes
    ----------
    metrics : family, metric, confidence, level, group_name, value_a, value_b, change (B - A), change_pct
        (change / |A|; null when A is 0 or missing): every risk measure (level ``book``) and the CVaR
        contributions by asset class and sleeve (metric ``cvar_contribution``)
    positions : position_id, status (added, removed, changed, unchanged), quantity_a, quantity_b
    info : key, value_a, value_b, same: batch, batch hash, as-of date, history, code version, counts, seed
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

    info_keys = ["batch.name", "batch.sha256", "as_of", "history.source", "history.last", "versions.stressgrid",
                 "seeds.root", "counts.scenarios", "counts.positions", "base_currency", "started"]
    info = pd.DataFrame([(k, pick(a.manifest, k), pick(b.manifest, k)) for k in info_keys],
                        columns=["key", "value_a", "value_b"])
    info["same"] = [x == y for x, y in zip(info["value_a"], info["value_b"])]
    for c in ("value_a", "value_b"):
        info[c] = info[c].map(lambda v: None if v is None else str(v))
    return RunComparison(m.reset_index(drop=True), p, info)

