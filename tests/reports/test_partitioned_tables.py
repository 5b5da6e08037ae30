"""Per-scenario tables stored as folders of part files (one per grid task and family): read as the single
file is, checked against the schema, reported, limited and stored the same, and read only in part."""

from __future__ import annotations

import filecmp
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from report_helpers import LIMITS, copy_run, drop_family, partition_run

from stressgrid import reports
from stressgrid.core import DataError
from stressgrid.reports._rundir import RunDir, _canonical
from stressgrid.reports._terminal import TERMINAL_SMALL_FAMILY

#: how the folder copies are cut: one task, three tasks (several parts per family), three tasks with every
#: other part storing its text without a dictionary
LAYOUTS = {"one_task": dict(tasks=1), "three_tasks": dict(tasks=3), "mixed_encoding": dict(tasks=3, plain_parts=True)}

#: limits that read breakdown and scenario_pnl for every family, besides the report tests' own
MORE_LIMITS = {"nav": 5e8, "limits": LIMITS["limits"][:2] + [
    {"metric": m, "scope": s, "max": "1%"} for m in ("worst_loss", "stressed_loss")
    for s in ("book", "asset_class:*", "sleeve:*", "position:*")]}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def forms(request, linear_run_src, tmp_path_factory) -> tuple[Path, Path]:
    """(file form, folder form) of the linear run, holding the same tables (read only)."""
    root = tmp_path_factory.mktemp(f"forms_{request.param}")
    return partition_run(linear_run_src, root / "file", root / "folder", **LAYOUTS[request.param])


@pytest.fixture(scope="module")
def split3(linear_run_src, tmp_path_factory) -> tuple[Path, Path]:
    """The linear run in three tasks (read only)."""
    root = tmp_path_factory.mktemp("split3")
    return partition_run(linear_run_src, root / "file", root / "folder", tasks=3)


@pytest.fixture(scope="module")
def large_only(linear_run_src, tmp_path_factory) -> tuple[Path, Path]:
    """The linear run without its small family (crisis), in eight tasks: every family is large (read only)."""
    root = tmp_path_factory.mktemp("large_only")
    src = drop_family(linear_run_src, root / "src", "crisis")
    return partition_run(src, root / "file", root / "folder", tasks=8)


class Spy:
    """Records every read of table data by :class:`RunDir` (table, part file, columns, rows taken)."""

    def __init__(self, monkeypatch):
        self.reads: list[tuple[str, str, tuple[str, ...], int | None]] = []
        original = RunDir._read_piece

        def read_piece(run, name, piece, columns, expr, rows=None):
            t = original(run, name, piece, columns, expr, rows)
            self.reads.append((name, Path(piece.path).name, tuple(t.column_names), None if rows is None else len(rows)))
            return t

        monkeypatch.setattr(RunDir, "_read_piece", read_piece)

    def parts_read(self, name: str) -> set[str]:
        return {part for table, part, _, _ in self.reads if table == name}


def _family_of_parts(folder: Path) -> dict[str, str]:
    """Part file name -> family of its rows (from the part itself)."""
    return {p.name: str(pd.read_parquet(p, columns=["family"])["family"].iloc[0]) for p in sorted(folder.glob("part-*.parquet"))}


def _summary(run: Path) -> str:
    from rich.console import Console

    console = Console(record=True, width=140, file=io.StringIO())
    reports.print_summary(run, console)
    return console.export_text().replace(str(run), "RUN")


def _html(run: Path, **kw) -> str:
    """The report's HTML without what differs from one writing to the next (time, chart id prefixes, the
    run folder's name)."""
    text = reports.render_report(run, **kw)
    text = re.sub(r"on \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", text)
    ids = r"\b(chart|scenario-pnl|distributions|contributions|drawdown-paths|capacity|reoptimisation)\d+-"
    return re.sub(ids, r"\1-", text).replace(f"from {run.name}/", "from RUN/")


# --- reading ---------------------------------------------------------------------------------------------


def test_the_folder_layout_is_as_the_grid_writes_it(split3):
    _, folder = split3
    parts = sorted(p.name for p in (folder / "scenarios").iterdir())
    assert parts == ["part-000000-0000.parquet", "part-000000-0001.parquet", "part-000001-0001.parquet",
                     "part-000002-0001.parquet"]
    assert not (folder / "scenarios.parquet").exists()
    m = json.loads((folder / "manifest.json").read_text())
    assert {"scenarios/", "breakdown/", "scenario_pnl/", "sensitivity/", "liquidity/", "risk_metrics.parquet"} <= set(m["files"])
    assert not any(f in m["files"] for f in ("scenarios.parquet", "breakdown.parquet"))
    run = reports.open_run(folder)
    assert run.is_partitioned("scenarios") and not run.is_partitioned("risk_metrics")
    assert run.has("scenarios") and run.has("risk_metrics") and not run.has("capacity")
    assert [p.name for p in run.files("scenarios")] == parts


def test_a_folder_reads_as_the_file(forms):
    file, folder = forms
    a, b = reports.open_run(file), reports.open_run(folder)
    assert b.is_partitioned("breakdown") and not a.is_partitioned("breakdown")
    for name in reports.PARTITIONED_TABLES:
        cols = list(pq.read_schema(file / f"{name}.parquet").names)
        for kw in ({}, dict(families=["crisis"]), dict(families="hist_10d", columns=[cols[-1], "family", "scenario"]),
                   dict(columns=cols[::-1]), dict(families=["crisis", "hist_10d"], where={"scenario": ["gfc_2008", "hist_10d:2008-09-26"]})):
            x, y = a.table(name, **kw), b.table(name, **kw)
            pd.testing.assert_frame_equal(x, y, obj=f"{name} {kw}")
            assert len(x)
    # the whole file reads as pandas reads it, but for the categories of dictionary-encoded text: the values
    # present, in the order in which they first appear
    for name in reports.PARTITIONED_TABLES:
        pd.testing.assert_frame_equal(b.table(name), _canonical(pd.read_parquet(file / f"{name}.parquet")))
    assert isinstance(b.table("breakdown")["group_name"].dtype, pd.CategoricalDtype)
    assert list(b.table("breakdown", families="crisis")["scenario"].cat.categories) == ["gfc_2008", "lehman_2008", "euro_debt_2011"]
    assert b.get("scenarios", columns=["pnl"]).shape == (2512, 1) and b.get("capacity") is None


def test_family_and_column_reads_return_only_those_and_skip_the_other_parts(split3, monkeypatch):
    _, folder = split3
    run = reports.open_run(folder)
    spy = Spy(monkeypatch)
    sc = run.table("scenarios", columns=["pnl", "scenario"], families=["crisis"])
    assert list(sc.columns) == ["pnl", "scenario"] and len(sc) == 3
    assert sc["scenario"].tolist() == ["gfc_2008", "lehman_2008", "euro_debt_2011"]
    assert spy.parts_read("scenarios") == {"part-000000-0000.parquet"}  # the parts of hist_10d are not read
    bd = run.table("breakdown", families="hist_10d", where={"level": "sleeve"})
    full = pd.read_parquet(folder / "breakdown")
    assert len(bd) == int(((full.family == "hist_10d") & (full.level == "sleeve")).sum()) > 0
    assert set(bd["family"]) == {"hist_10d"} and set(bd["level"]) == {"sleeve"}
    assert spy.parts_read("breakdown") == {"part-000000-0001.parquet", "part-000001-0001.parquet", "part-000002-0001.parquet"}
    # cached per table, columns and rows
    n = len(spy.reads)
    assert run.table("scenarios", columns=["pnl", "scenario"], families="crisis") is sc
    assert len(spy.reads) == n
    with pytest.raises(DataError, match="table scenarios has no column 'nope'"):
        run.table("scenarios", columns=["scenario", "nope"])


def test_scan_reads_piece_by_piece_in_the_order_of_the_rows(split3):
    file, folder = split3
    pieces = list(reports.open_run(folder).scan("scenarios", columns=["scenario", "pnl"], families="hist_10d"))
    assert len(pieces) == 3  # one per task's part of the family
    whole = reports.open_run(file).table("scenarios", columns=["scenario", "pnl"], families="hist_10d")
    got = pd.concat(pieces, ignore_index=True)
    assert got["scenario"].tolist() == whole["scenario"].tolist()
    np.testing.assert_array_equal(got["pnl"], whole["pnl"])


def test_smallest_is_nsmallest_found_part_by_part(forms):
    file, folder = forms
    for run in (reports.open_run(file), reports.open_run(folder)):
        sc = pd.read_parquet(file / "scenarios.parquet")
        want = sc[["scenario", "family", "pnl"]].nsmallest(20, "pnl").reset_index(drop=True)
        pd.testing.assert_frame_equal(run.smallest("scenarios", 20, "pnl", columns=["scenario", "family", "pnl"]), want)
        bd = pd.read_parquet(file / "breakdown.parquet")
        want = _canonical(bd[(bd.level == "sleeve") & (bd.family == "hist_10d")].nsmallest(7, "pnl").reset_index(drop=True))
        pd.testing.assert_frame_equal(run.smallest("breakdown", 7, families="hist_10d", where={"level": "sleeve"}), want)
        assert run.smallest("scenarios", 5, families="crisis")["scenario"].tolist() == ["gfc_2008", "lehman_2008", "euro_debt_2011"]


def test_smallest_breaks_ties_by_the_order_of_the_rows(tmp_path):
    """Equal values in several parts: the first in the table first, as pandas' nsmallest does."""
    run = tmp_path / "ties"
    (run / "scenarios").mkdir(parents=True)
    rm = pd.DataFrame({"family": ["f"], "metric": ["scenarios"], "confidence": [np.nan], "value": [9.0], "scenario": [None]})
    reports.write_table("risk_metrics", rm, run / "risk_metrics.parquet")
    pnl = np.array([[3.0, -1.0, -2.0], [-2.0, -1.0, -2.0], [-1.0, 5.0, -2.0]])
    rows = []
    for t in range(3):
        part = pd.DataFrame({"scenario": [f"s{t}{i}" for i in range(3)], "family": "f", "weight": 1 / 9, "pnl": pnl[t]})
        reports.write_table("scenarios", part, run / "scenarios" / reports.part_file_name(t, 0))
        rows.append(part)
    (run / "manifest.json").write_text(json.dumps({"batch": {"name": "ties"}, "files": ["risk_metrics.parquet", "scenarios/"]}))
    want = pd.concat(rows, ignore_index=True).nsmallest(5, "pnl")["scenario"].tolist()
    assert want == ["s02", "s10", "s12", "s22", "s01"]
    assert reports.open_run(run).smallest("scenarios", 5)["scenario"].tolist() == want
    assert reports.open_run(run).family_sizes().to_dict() == {"f": 9}


def test_family_sizes_come_from_risk_metrics_in_batch_order(forms, linear_run, monkeypatch):
    file, folder = forms
    for run in (reports.open_run(file), reports.open_run(folder)):
        spy = Spy(monkeypatch)
        sizes = run.family_sizes()
        assert sizes.to_dict() == {"crisis": 3, "hist_10d": 2509} and list(sizes.index) == ["crisis", "hist_10d"]
        assert sizes.dtype == np.int64 and sizes.index.name == "family"
        assert not spy.parts_read("scenarios")  # the counts and the files' footers only
        monkeypatch.undo()
    # a risk_metrics that does not add up to the scenarios table: counted from the table
    rm = pd.read_parquet(linear_run / "risk_metrics.parquet")
    rm.loc[rm.metric == "scenarios", "value"] = 7.0
    rm.to_parquet(linear_run / "risk_metrics.parquet", index=False)
    assert reports.open_run(linear_run).family_sizes().to_dict() == {"crisis": 3, "hist_10d": 2509}


# --- the schema ------------------------------------------------------------------------------------------


def test_the_folder_form_follows_the_schema(forms):
    file, folder = forms
    assert reports.check_run_dir(file) == []
    assert reports.check_run_dir(folder) == []
    reports.validate_run_dir(folder)


def test_schema_problems_of_folders(split3, tmp_path):
    file, folder = split3
    run = copy_run(folder, tmp_path / "run")
    for name in reports.PARTITIONED_TABLES:
        shutil.copytree(folder / name, run / name)
    assert reports.check_run_dir(run) == []
    # a table both as a file and as a folder
    shutil.copy2(file / "sensitivity.parquet", run / "sensitivity.parquet")
    assert reports.check_run_dir(run) == ["sensitivity.parquet: the table is also the folder sensitivity/ (a table is a "
                                          "file or a folder of part files, never both)"]
    with pytest.raises(DataError, match="both the file sensitivity.parquet and the folder sensitivity/"):
        reports.open_run(run).table("sensitivity")
    (run / "sensitivity.parquet").unlink()
    # a badly named part, a stray file, a part holding two families, a part of another table
    (run / "scenarios" / "part-000002-0001.parquet").rename(run / "scenarios" / "part-2-1.parquet")
    (run / "liquidity" / "notes.txt").write_text("x")
    bd = pd.concat([pd.read_parquet(run / "breakdown" / p) for p in ("part-000000-0000.parquet", "part-000000-0001.parquet")])
    reports.write_table("breakdown", bd, run / "breakdown" / "part-000000-0000.parquet")
    shutil.copy2(run / "sensitivity" / "part-000000-0000.parquet", run / "scenario_pnl" / "part-000009-0000.parquet")
    problems = reports.check_run_dir(run)
    assert "scenarios/part-2-1.parquet: not a part file name: expected part-<task, six digits>-<family code, four " \
           "digits>.parquet, e.g. part-000000-0001.parquet" in problems
    assert any(p.startswith("liquidity/notes.txt: not a part file name") for p in problems)
    assert "breakdown/part-000000-0000.parquet: holds the rows of several families (a part holds one family)" in problems
    assert "scenario_pnl/part-000009-0000.parquet: stressgrid.table is sensitivity, the file is a part of table scenario_pnl" in problems
    assert "scenario_pnl/part-000009-0000.parquet: column 'position_id' is missing" in problems
    # and the sensitivity part in scenario_pnl: 2 columns missing, 4 not in the schema, its table name
    assert len(problems) == 3 + 7
    # a family code naming two families
    shutil.copy2(run / "scenarios" / "part-000000-0000.parquet", run / "scenarios" / "part-000005-0001.parquet")
    assert any("family 'crisis' under code 0001, which is the code of family 'hist_10d'" in p for p in reports.check_run_dir(run))


def test_schema_problems_of_folders_that_should_not_be(split3, tmp_path):
    _, folder = split3
    run = copy_run(folder, tmp_path / "run")
    for name in reports.PARTITIONED_TABLES:
        if name != "scenarios":
            shutil.copytree(folder / name, run / name)
    (run / "scenarios").mkdir()
    (run / "risk_metrics").mkdir()
    shutil.copy2(run / "risk_metrics.parquet", run / "risk_metrics" / reports.part_file_name(0, 0))
    m = json.loads((run / "manifest.json").read_text())
    m["files"] += ["positions/", "capacity/"]
    (run / "manifest.json").write_text(json.dumps(m))
    problems = reports.check_run_dir(run)
    assert problems == [
        "risk_metrics.parquet: the table is also the folder risk_metrics/ (a table is a file or a folder of part files, never both)",
        "risk_metrics/: only the per-scenario tables (breakdown, scenarios, scenario_pnl, sensitivity, liquidity) may be "
        "stored as a folder",
        "scenarios/: holds no part files (a table stored as a folder has at least one)",
        "manifest.json: files lists the folder positions/, but only the per-scenario tables (breakdown, scenarios, "
        "scenario_pnl, sensitivity, liquidity) may be stored as a folder",
        "manifest.json: files lists the folder capacity/, but only the per-scenario tables (breakdown, scenarios, "
        "scenario_pnl, sensitivity, liquidity) may be stored as a folder",
    ]
    with pytest.raises(DataError, match="folder scenarios/ holds no part files"):
        reports.open_run(run).table("scenarios")
    (run / "scenarios").rmdir()
    assert "scenarios.parquet: missing (the schema says it is always written)" in reports.check_run_dir(run)


def test_part_file_names():
    assert reports.part_file_name(3, 1) == "part-000003-0001.parquet"
    assert reports.PART_NAME.match(reports.part_file_name(999_999, 9_999))
    assert not reports.PART_NAME.match("part-3-1.parquet")
    with pytest.raises(ValueError, match="family_code in"):
        reports.part_file_name(0, 10_000)
    assert set(reports.PARTITIONED_TABLES) == {"scenarios", "breakdown", "scenario_pnl", "sensitivity", "liquidity"}


def test_the_schema_document_describes_the_folders():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "schema.md").read_text()
    assert "SELECT family, count(*) FROM read_parquet('RUN/scenarios/*.parquet') GROUP BY family" in doc
    for name in reports.PARTITIONED_TABLES:
        assert f"Stored as: the file `{name}.parquet`, or the folder `{name}/` of part files" in doc
    assert "Stored as: the file `risk_metrics.parquet`" not in doc


def test_the_documented_duckdb_query_reads_a_folder(forms):
    duckdb = pytest.importorskip("duckdb")
    _, folder = forms
    doc = reports.load_schema()["conventions"]
    query = re.search(r"`(SELECT family, count\(\*\) FROM read_parquet\('RUN/scenarios/\*\.parquet'\) GROUP BY family)`",
                      " ".join(doc)).group(1)
    got = dict(duckdb.sql(query.replace("RUN/", f"{folder}/")).fetchall())
    assert got == reports.open_run(folder).family_sizes().to_dict() == {"crisis": 3, "hist_10d": 2509}
    # the whole table, with the dictionaries of the parts (or none) read as text
    n = duckdb.sql(f"SELECT count(DISTINCT scenario), count(*) FROM read_parquet('{folder}/breakdown/*.parquet')").fetchall()[0]
    assert n == (2512, len(pd.read_parquet(folder / "breakdown")))


# --- reports ---------------------------------------------------------------------------------------------


def test_the_terminal_summary_is_the_same(forms, linear_run_src):
    file, folder = forms
    text = _summary(folder)
    assert text == _summary(file)
    assert text == _summary(linear_run_src)  # and as before the tables were split
    assert "Scenario P&L by asset class" in text and "gfc_2008" in text and "Full revaluation vs delta-gamma-vega" in text


def test_limits_and_breaches_are_the_same(forms, linear_run_src):
    file, folder = forms
    limits = reports.parse_limits(MORE_LIMITS)
    got = reports.evaluate_limits(folder, limits)
    pd.testing.assert_frame_equal(got, reports.evaluate_limits(file, limits))
    pd.testing.assert_frame_equal(got, reports.evaluate_limits(linear_run_src, limits))
    assert set(got["scope"]) == {"book", "asset_class:*", "sleeve:*", "position:*", "sleeve:*"} and len(got) > 50
    assert got["breached"].any() and not got["breached"].all()


def test_the_html_report_is_the_same(full_run_src, tmp_path):
    """The run with every optional table, every section and chart: the same page from either form."""
    file, folder = partition_run(full_run_src, tmp_path / "file", tmp_path / "folder", tasks=3, plain_parts=True)
    lim = reports.parse_limits(LIMITS)
    a, b = _html(file, limits=lim), _html(folder, limits=lim)
    assert a == b
    assert a == _html(copy_run(full_run_src, tmp_path / "orig"), limits=lim)
    assert 'id="chart-distribution"' in b and 'id="chart-scenario-pnl"' in b and '<section id="sensitivity">' in b
    path = reports.write_report(folder, limits=lim)
    assert path == folder / "report.html" and path.read_text().count("<svg") == 6


def test_finish_run_on_a_folder_form(forms, tmp_path):
    from rich.console import Console

    _, src = forms
    folder = copy_run(src, tmp_path / "run")
    for name in reports.PARTITIONED_TABLES:
        shutil.copytree(src / name, folder / name)
    console = Console(record=True, width=140, file=io.StringIO())
    code = reports.finish_run(folder, console, limits=reports.parse_limits(MORE_LIMITS), fail_on_breach=True)
    out = console.export_text()
    assert code == reports.BREACH_EXIT_CODE
    assert "does not follow the results schema" not in out and "report: " in out
    assert (folder / "breaches.parquet").is_file() and (folder / "report.html").is_file()
    assert reports.check_run_dir(folder) == []


def test_the_terminal_summary_never_reads_a_large_family(split3, monkeypatch):
    """Only the small families' rows are read, and of hist_10d (2509 scenarios) only the P&L explained of
    its worst scenario; and nothing reads a table around the run directory's reader."""
    _, folder = split3
    family = _family_of_parts(folder / "scenarios")
    sizes = reports.open_run(folder).family_sizes()
    assert sizes["hist_10d"] > TERMINAL_SMALL_FAMILY >= sizes["crisis"]

    def refuse(*args, **kwargs):
        raise AssertionError("a table read around RunDir")

    spy = Spy(monkeypatch)
    monkeypatch.setattr(pd, "read_parquet", refuse)
    monkeypatch.setattr(pq, "read_table", refuse)
    text = _summary(folder)
    assert "Scenario P&L by asset class" in text
    read = {(t, part) for t, part, _, _ in spy.reads}
    # coverage_families (family x factor, small): the tail guards' flagged moves and GARCH boundaries
    assert {t for t, _ in read} == {"risk_metrics", "breakdown", "scenarios", "sensitivity", "coverage", "coverage_families"}
    explained = {"scenario", "family", "days", "pnl", "pnl_time", "pnl_market", "pnl_cross", "revaluation"}
    for table, part, columns, _ in spy.reads:
        if table in reports.PARTITIONED_TABLES and sizes[family[part]] > TERMINAL_SMALL_FAMILY:
            # only the P&L explained of a large family's worst scenario, read by its name
            assert table == "scenarios" and set(columns) <= explained, (table, part, columns)
    assert "P&L explained at the horizon" in text and "hist_10d" in text
    scenario_reads = [(t, c) for t, _, c, _ in spy.reads if "scenario" in c]
    assert scenario_reads and all(t in ("scenarios", "breakdown", "sensitivity", "risk_metrics") for t, _ in scenario_reads)


def test_without_a_small_family_only_the_worst_rows_are_read_whole(large_only, monkeypatch):
    """Bars of the 20 worst scenarios: the scenario column of a large family is read for those rows only,
    and the breakdown only from the parts that hold them; the histogram reads pnl and weight only."""
    file, folder = large_only
    assert reports.open_run(folder).family_sizes().to_dict() == {"hist_10d": 2509}
    want = reports.scenario_bar_data(reports.open_run(file))
    spy = Spy(monkeypatch)
    run = reports.open_run(folder)
    got = reports.scenario_bar_data(run)
    pd.testing.assert_frame_equal(got, want)
    sc = pd.read_parquet(file / "scenarios.parquet")
    assert got["scenario"].tolist() == sc.nsmallest(20, "pnl")["scenario"].tolist()
    scen = [(c, rows) for t, _, c, rows in spy.reads if t == "scenarios" and "scenario" in c]
    assert scen and all(rows is not None for _, rows in scen) and sum(rows for _, rows in scen) == 20
    html = _html(folder)
    assert "The 20 worst scenarios of the run" in html
    worst_parts = {p for t, p, c, rows in spy.reads if t == "scenarios" and rows}
    assert spy.parts_read("breakdown") == worst_parts
    assert len(worst_parts) < len(list((folder / "breakdown").iterdir())) == 8  # the other tasks' parts are not read
    assert all(set(c) <= {"pnl", "weight"} for t, _, c, rows in spy.reads if t == "scenarios" and rows is None)
    assert html == _html(file)


def test_the_histogram_read_part_by_part_is_numpys(split3):
    from stressgrid.reports._charts import weighted_histogram

    file, folder = split3
    sc = pd.read_parquet(file / "scenarios.parquet")
    g = sc[sc.family == "hist_10d"]
    mass, edges = np.histogram(g["pnl"] / 1e6, bins=60, weights=g["weight"])
    got_edges, got_mass = weighted_histogram(reports.open_run(folder), "hist_10d", unit=1e6)
    np.testing.assert_array_equal(got_edges, edges)
    np.testing.assert_allclose(got_mass, mass, rtol=1e-12, atol=1e-15)
    assert got_mass.sum() == pytest.approx(1.0)
    assert weighted_histogram(reports.open_run(folder), "nope") is None


def test_weights_that_do_not_sum_to_one_still_give_numpys_histogram(linear_run_src, tmp_path):
    """A run folder from elsewhere whose weights sum to far more than 1 (here 5,000 a scenario): the exact
    integer sum would overflow, so the histogram is summed in floating point and is still numpy's."""
    from stressgrid.reports._charts import weighted_histogram

    run = copy_run(linear_run_src, tmp_path / "run")
    sc = pd.read_parquet(run / "scenarios.parquet")
    sc["weight"] = 5_000.0
    sc.to_parquet(run / "scenarios.parquet", index=False)
    g = sc[sc.family == "hist_10d"]
    mass, edges = np.histogram(g["pnl"] / 1e6, bins=60, weights=g["weight"])
    got_edges, got_mass = weighted_histogram(reports.open_run(run), "hist_10d", unit=1e6)
    np.testing.assert_array_equal(got_edges, edges)
    np.testing.assert_allclose(got_mass, mass, rtol=1e-12)
    assert got_mass.min() >= 0


# --- the results store -----------------------------------------------------------------------------------


def test_the_store_copies_every_part(split3, tmp_path):
    file, folder = split3
    dest = reports.store_run(folder, tmp_path / "store")
    for name in reports.PARTITIONED_TABLES:
        parts = sorted(p.name for p in (folder / name).iterdir())
        assert sorted(p.name for p in (dest / name).iterdir()) == parts and len(parts) >= 2
        assert all(filecmp.cmp(folder / name / p, dest / name / p, shallow=False) for p in parts)
        assert not (dest / f"{name}.parquet").exists()
    assert not [p for p in dest.rglob(".*")]  # no temporary file or folder left
    assert reports.check_run_dir(dest) == []
    pd.testing.assert_frame_equal(reports.open_run(dest).table("breakdown"), reports.open_run(file).table("breakdown"))
    runs = reports.list_runs(tmp_path / "store")
    assert runs["path"].tolist() == [str(dest)] and runs["scenarios"].tolist() == [2512]
    cmp = reports.compare_runs(file, dest)
    assert (cmp.metrics["change"].fillna(0) == 0).all() and set(cmp.positions["status"]) == {"unchanged"}
    assert len(cmp.metrics) > 20


def test_a_version_1_file_reads_only_the_columns_asked_for(linear_run):
    """Projection and filters name the current columns; a file of schema version 1 stores the old names."""
    bd = pd.read_parquet(linear_run / "breakdown.parquet").rename(columns={"group_name": "group"})
    bd.to_parquet(linear_run / "breakdown.parquet", index=False)
    m = json.loads((linear_run / "manifest.json").read_text())
    m["schema_version"] = 1
    (linear_run / "manifest.json").write_text(json.dumps(m))
    got = reports.open_run(linear_run).table("breakdown", columns=["group_name", "pnl"], where={"level": "sleeve"})
    assert list(got.columns) == ["group_name", "pnl"] and set(got["group_name"]) == set(bd.loc[bd.level == "sleeve", "group"])
