"""The results store: partitioned layout, listing, DuckDB over every stored run, and comparing two runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from report_helpers import copy_run

from stressgrid import reports
from stressgrid.core import ConfigError


def _restart(run, started: str, name: str | None = None, sha: str | None = None):
    m = json.loads((run / "manifest.json").read_text())
    m["started"] = started
    if name:
        m["batch"]["name"] = name
    if sha:
        m["batch"]["sha256"] = sha
    (run / "manifest.json").write_text(json.dumps(m))
    return run


def test_store_layout_and_listing(linear_run, tmp_path):
    store = tmp_path / "store"
    (linear_run / "tasks").mkdir()
    (linear_run / "tasks" / "task_0.pkl").write_bytes(b"x")
    _restart(linear_run, "2026-03-02T23:59:59+00:00", sha="ab" * 32)
    dest = reports.store_run(linear_run, store)
    assert dest == store / "run_date=2026-03-02" / "batch=linear" / "run=20260302T235959Z-abababab"
    assert not (dest / "tasks").exists()
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in linear_run.iterdir() if p.is_file())
    assert reports.check_run_dir(dest) == []

    other = _restart(copy_run(linear_run, tmp_path / "b"), "2026-03-03T09:00:00-05:00", name="demo book/v2")
    dest2 = reports.store_run(other, store, run_id="second")
    # the start time is converted to UTC for the date partition; names are made safe for a path
    assert dest2 == store / "run_date=2026-03-03" / "batch=demo_book_v2" / "run=second"

    runs = reports.list_runs(store)
    assert runs["run_id"].tolist() == ["20260302T235959Z-abababab", "second"]
    assert runs["batch"].tolist() == ["linear", "demo_book_v2"]
    rm = pd.read_parquet(linear_run / "risk_metrics.parquet")
    var99 = rm[(rm.metric == "var") & (rm.confidence == 0.99)]
    assert runs["stressed_var"].iloc[0] == var99["value"].max()
    assert runs["stressed_var_family"].iloc[0] == var99.loc[var99["value"].idxmax(), "family"]
    assert runs["stressed_var_confidence"].tolist() == [0.99, 0.99]
    assert runs["breaches"].isna().all()
    assert reports.list_runs(store, batch="linear")["run_id"].tolist() == ["20260302T235959Z-abababab"]
    assert reports.list_runs(store, batch="none").empty


def test_the_listing_leaves_designed_families_out_of_the_stressed_var(linear_run, tmp_path):
    # as the report's headline: a reverse stress test's VaR is the loss it was asked for
    rm = pd.read_parquet(linear_run / "risk_metrics.parquet")
    var99 = rm[(rm.metric == "var") & np.isclose(rm.confidence, 0.99)].set_index("family")["value"]
    top, second = var99.sort_values(ascending=False).index[:2]
    assert var99[top] > var99[second]
    # a run whose manifest lists its designed families
    listed = copy_run(linear_run, tmp_path / "listed")
    m = json.loads((listed / "manifest.json").read_text())
    m["designed_families"] = [str(top)]
    (listed / "manifest.json").write_text(json.dumps(m))
    _restart(listed, "2026-03-02T10:00:00+00:00")
    # a run written before the manifest listed them: its scenarios' kinds are read
    older = copy_run(linear_run, tmp_path / "older")
    sc = pd.read_parquet(older / "scenarios.parquet")
    sc.loc[sc["family"] == top, "kind"] = "reverse"
    sc.to_parquet(older / "scenarios.parquet")
    m = json.loads((older / "manifest.json").read_text())
    assert m.pop("designed_families") == []
    (older / "manifest.json").write_text(json.dumps(m))
    _restart(older, "2026-03-03T10:00:00+00:00")
    store = tmp_path / "store"
    for run in (listed, older):
        reports.store_run(run, store)
    runs = reports.list_runs(store)
    assert runs["stressed_var"].tolist() == [var99[second]] * 2
    assert runs["stressed_var_family"].tolist() == [second] * 2
    # and the report's headline agrees
    for run in (listed, older):
        h = {x["key"]: x for x in reports.headline(run)}
        assert h["stressed_var"]["value"] == var99[second]


def test_a_run_is_never_stored_twice(linear_run, tmp_path):
    reports.store_run(linear_run, tmp_path / "s")
    with pytest.raises(ConfigError, match="already stored"):
        reports.store_run(linear_run, tmp_path / "s")
    with pytest.raises(ConfigError, match="results store .*: not found"):
        reports.list_runs(tmp_path / "elsewhere")


def test_duckdb_loads_one_table_of_every_stored_run(linear_run, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    store = tmp_path / "store"
    reports.store_run(_restart(linear_run, "2026-01-05T08:00:00+00:00"), store)
    b = copy_run(linear_run, tmp_path / "b")
    rm = pd.read_parquet(b / "risk_metrics.parquet")
    rm["value"] *= 2
    rm.to_parquet(b / "risk_metrics.parquet", index=False)
    reports.store_run(_restart(b, "2026-01-06T08:00:00+00:00"), store)
    got = duckdb.sql(f"""
        SELECT run_date, batch, family, value FROM read_parquet('{store}/*/*/*/risk_metrics.parquet', hive_partitioning = true)
        WHERE metric = 'cvar' AND confidence = 0.99 ORDER BY run_date, family
    """).df()
    cvar = rm[(rm.metric == "cvar") & (rm.confidence == 0.99)].set_index("family")["value"]  # doubled
    assert got["run_date"].astype(str).tolist() == ["2026-01-05"] * 2 + ["2026-01-06"] * 2
    assert set(got["batch"]) == {"linear"}
    np.testing.assert_allclose(got["value"].to_numpy(), np.r_[cvar.sort_index().to_numpy() / 2, cvar.sort_index().to_numpy()])


def test_compare_runs_metric_by_metric_and_position_by_position(linear_run, tmp_path):
    b = copy_run(linear_run, tmp_path / "b")
    rm = pd.read_parquet(b / "risk_metrics.parquet")
    cvar99 = (rm.metric == "cvar") & (rm.confidence == 0.99) & (rm.family == "crisis")
    rm.loc[cvar99, "value"] *= 1.25
    rm = rm[~((rm.metric == "vol") & (rm.family == "hist_10d"))]  # a metric that B lacks
    rm.to_parquet(b / "risk_metrics.parquet", index=False)
    pos = pd.read_parquet(b / "positions.parquet")
    first, second = pos["position_id"].iloc[0], pos["position_id"].iloc[1]
    pos.loc[1, "quantity"] *= 2
    pos = pd.concat([pos.iloc[1:], pos.iloc[[1]].assign(position_id="NEW_POS")], ignore_index=True)
    pos.to_parquet(b / "positions.parquet", index=False)
    _restart(b, "2027-01-01T00:00:00+00:00", sha="f" * 64)

    c = reports.compare_runs(linear_run, b)
    m = c.metrics.set_index(["family", "metric", "confidence", "level", "group_name"])
    row = m.loc[("crisis", "cvar", 0.99, "book", "book")]
    assert row["value_b"] == pytest.approx(1.25 * row["value_a"])
    assert row["change"] == pytest.approx(0.25 * row["value_a"]) and row["change_pct"] == pytest.approx(0.25)
    same = m.loc[("hist_10d", "cvar", 0.99, "book", "book")]
    assert same["change"] == 0 and same["change_pct"] == 0
    worst = c.metrics[(c.metrics.family == "crisis") & (c.metrics.metric == "worst")]
    assert len(worst) == 1 and worst["change"].iloc[0] == 0  # a null confidence matches a null confidence
    gone = c.metrics[(c.metrics.family == "hist_10d") & (c.metrics.metric == "vol")].iloc[0]
    assert np.isnan(gone["value_b"]) and np.isnan(gone["change"]) and np.isnan(gone["change_pct"])
    contrib = c.metrics[c.metrics.metric == "cvar_contribution"]
    assert set(contrib["level"]) == {"asset_class", "sleeve"} and (contrib["change"] == 0).all()
    assert len(c.metrics) == len(pd.read_parquet(linear_run / "risk_metrics.parquet")) + len(contrib)

    st = c.positions.set_index("position_id")["status"]
    assert st[first] == "removed" and st[second] == "changed" and st["NEW_POS"] == "added"
    assert (st.drop([first, second, "NEW_POS"]) == "unchanged").all()
    info = c.info.set_index("key")
    assert not info.loc["batch.sha256", "same"] and info.loc["batch.name", "same"] and info.loc["as_of", "same"]
    assert info.loc["confidence", "same"] and info.loc["families", "same"]


def test_compare_says_when_the_confidence_levels_or_families_differ(linear_run, tmp_path):
    # a level or a family on one side only has no change to show: the inputs table must say why
    b = copy_run(linear_run, tmp_path / "b")
    rm = pd.read_parquet(b / "risk_metrics.parquet")
    rm.loc[np.isclose(rm["confidence"], 0.95), "confidence"] = 0.975
    rm = rm[rm["family"] != "crisis"]
    rm.to_parquet(b / "risk_metrics.parquet", index=False)
    info = reports.compare_runs(linear_run, b).info.set_index("key")
    a_fams = list(dict.fromkeys(pd.read_parquet(linear_run / "risk_metrics.parquet")["family"]))
    assert info.loc["confidence", "value_a"] == "95%, 99%" and info.loc["confidence", "value_b"] == "97.5%, 99%"
    assert info.loc["families", "value_a"] == ", ".join(a_fams)
    assert info.loc["families", "value_b"] == ", ".join(f for f in a_fams if f != "crisis")
    assert not info.loc["confidence", "same"] and not info.loc["families", "same"]
    import io

    from rich.console import Console

    buf = io.StringIO()
    reports.print_comparison(linear_run, b, console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert "Inputs that differ" in text and "97.5%, 99%" in text
