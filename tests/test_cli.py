"""The command line: help everywhere, one-line errors with exit code 2, and the demo as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    return sorted(main.commands)


COMMANDS = ["run", "demo", "validate", "submit", "status", "logs", "fetch", "report", "store", "runs", "compare"]


@pytest.mark.parametrize("cmd", [[]] + [[c] for c in COMMANDS])
def test_every_command_has_help(cmd):
    res = CliRunner().invoke(main, cmd + ["--help"])
    assert res.exit_code == 0
    assert "Usage:" in res.output and len(res.output.splitlines()) > 3


def test_all_commands_are_covered_by_the_help_test():
    assert set(_commands()) <= set(COMMANDS)


def test_validate_the_demo(demo_batch_path):
    res = CliRunner().invoke(main, ["validate", str(demo_batch_path)])
    assert res.exit_code == 0, res.output
    n = len(pd.read_csv(demo_batch_path.parent / "demo_book.csv"))
    assert res.output.startswith(f"ok: batch 'demo': {n} positions ({n} priced)")
    assert "sweep: 'mc_sweep' expands into 6 families" in res.output
    line = [x for x in res.output.splitlines() if x.startswith("horizon: ")]
    assert len(line) == 1 and "hist_10d" in line[0] and "2019-01-14" in line[0] and "crisis," not in line[0]


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "tests" / "data" / "linear_book.csv", tmp_path / "book.csv")
    return tmp_path


def _write_batch(d: Path, extra: str = "", events: str = "[gfc_2008, euro_debt_2011]") -> Path:
    p = d / "batch.yaml"
    p.write_text(textwrap.dedent(f"""
        name: t
        book: book.csv
        market:
          as_of: 2017-03-29
        scenarios:
          - kind: historical
            name: crisis
            events: {events}
        """) + extra)
    return p


def _error(res) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in res.output
    return lines[0]


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda d: d / "missing.yaml", "batch file .*missing.yaml: not found"),
        (lambda d: (d / "b.yaml").write_text("name: [x\n") and d / "b.yaml", "malformed YAML"),
        (lambda d: _write_batch(d, events="[no_such_event]"), "unknown event 'no_such_event'"),
        (lambda d: _write_batch(d, extra="history:\n  path: nope.csv\n"), "history file .*nope.csv: not found"),
        (lambda d: _write_batch(d).write_text(_write_batch(d).read_text().replace("2017-03-29", "2021-01-04"))
         and d / "batch.yaml", "factor .* last observed .* stale"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workdir, setup, match):
    path = setup(workdir)
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(workdir / "out"), "--serial"])
    assert res.exit_code == 2, res.output
    import re

    assert re.search(match, _error(res)), res.output


def test_negative_adv_in_the_book(workdir):
    book = pd.read_csv(workdir / "book.csv")
    book.loc[3, "adv"] = -100
    book.to_csv(workdir / "book.csv", index=False)
    res = CliRunner().invoke(main, ["validate", str(_write_batch(workdir))])
    assert res.exit_code == 2
    assert f"position '{book.loc[3, 'id']}' (row 4), field 'adv'" in _error(res)


def test_unknown_factor_in_a_history_file(workdir):
    (workdir / "h.csv").write_text("date,SPX\n2017-03-28,2358\n2017-03-29,2361\n")
    res = CliRunner().invoke(main, ["validate", str(_write_batch(workdir)), "--history", str(workdir / "h.csv")])
    assert res.exit_code == 2
    assert "column 'SPX'" in _error(res)


def test_history_option_says_it_replaces_the_batchs_history(workdir):
    rows = "date,SPX\n2017-03-28,2358.57\n2017-03-29,2361.13\n"
    (workdir / "mine.csv").write_text(rows)
    extra = "history: {path: mine.csv, columns: {SPX: EQ.SPX}}\n"
    path = _write_batch(workdir, extra)
    # the file named on the command line is merged over the bundled history, and the batch's own is not read
    (workdir / "other.csv").write_text("date,EQ.SPX\n2017-03-28,2358.57\n2017-03-29,2361.13\n")
    res = CliRunner().invoke(main, ["validate", str(path), "--history", str(workdir / "other.csv")])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == (f"note: --history {workdir / 'other.csv'} replaces the batch's history section "
                                          f"({workdir / 'mine.csv'}, bundled); the bundled history follows it")
    assert "note: --history" not in CliRunner().invoke(main, ["validate", str(path)]).output
    assert "it replaces the batch's history section" in " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())


def _validate_own_history(workdir: Path, rows: str, history: str):
    """``validate`` of the test batch with ``history: {path: mine.csv, ...}`` and ``rows`` as mine.csv."""
    (workdir / "mine.csv").write_text(rows)
    return CliRunner().invoke(main, ["validate", str(_write_batch(workdir, f"history: {{path: mine.csv, {history}}}\n"))])


def test_a_yield_in_percent_without_its_unit_stops_the_batch(workdir):
    # read as a decimal, 2.40 is a yield of 240%: the batch used to run on it without a word
    rows = "date,SPX,UST10Y\n2017-03-28,2358.57,2.42\n2017-03-29,2361.13,2.40\n"
    res = _validate_own_history(workdir, rows, "columns: {SPX: EQ.SPX, UST10Y: IR.USD.10Y}")
    assert res.exit_code == 2
    assert "column 'UST10Y' (IR.USD.10Y): its median level, read as a decimal, is 2.41 (241%)" in _error(res)
    res = _validate_own_history(workdir, rows, "columns: {SPX: EQ.SPX, UST10Y: IR.USD.10Y}, units: {UST10Y: percent}")
    assert res.exit_code == 0, res.output


def test_a_history_column_mapped_one_letter_off_the_books_factor_stops_the_batch(workdir):
    res = _validate_own_history(workdir, "date,spx\n2017-03-28,2358.57\n2017-03-29,2361.13\n", "columns: {spx: EQ.SPY}")
    assert res.exit_code == 2
    assert "field 'columns.spx': no position needs EQ.SPY, and the book's EQ.SPX is in none of your sources" in _error(res)


def test_run_serial_writes_outputs(workdir):
    out = workdir / "out"
    res = CliRunner().invoke(main, ["run", str(_write_batch(workdir)), "--out", str(out), "--serial"])
    assert res.exit_code == 0, res.output
    assert "gfc_2008" in res.output and "VaR 99%" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["scenarios"] == 2
    # 'started' is before the inputs were read (it was stamped after the scenarios were generated)
    from datetime import datetime

    t = manifest["timings_seconds"]
    span = (datetime.fromisoformat(manifest["finished"]) - datetime.fromisoformat(manifest["started"])).total_seconds()
    assert span >= t["load_inputs"] + t["generate_scenarios"] + t["run_tasks"]
    assert pd.read_parquet(out / "risk_metrics.parquet")["value"].notna().all()


def test_confidence_levels_are_shown_with_the_digits_they_need(workdir):
    # 97.5% was shown as 98%, and 99.5% and 99.9% both as 100%
    out = workdir / "out"
    extra = ("  - {kind: rolling, name: hist_10d, horizon_days: 10, start: 2007-03-29, end: 2017-03-29}\n"
             "risk: {confidence: [0.975, 0.995, 0.999]}\n")
    res = CliRunner().invoke(main, ["run", str(_write_batch(workdir, extra)), "--out", str(out), "--serial"])
    assert res.exit_code == 0, res.output
    for label in ("VaR 97.5%", "CVaR 97.5%", "VaR 99.5%", "CVaR 99.9%"):
        assert label in res.output, label
        assert label in (out / "report.html").read_text()
    assert "98%" not in res.output and "100%" not in res.output


def test_fail_on_breach_exits_5_after_writing_everything(workdir):
    limits = "limits:\n  limits:\n    - {metric: worst_loss, scope: book, max: 1.0, units: currency}\n"
    out = workdir / "out"
    res = CliRunner().invoke(main, ["run", str(_write_batch(workdir, limits)), "--out", str(out), "--serial",
                                    "--fail-on-breach"])
    assert res.exit_code == 5, res.output
    b = pd.read_parquet(out / "breaches.parquet")
    worst = pd.read_parquet(out / "risk_metrics.parquet").query("metric == 'worst'")["value"]
    assert b["breached"].all() and sorted(b["value"]) == pytest.approx(sorted(worst))
    assert (out / "report.html").exists()
    ok = CliRunner().invoke(main, ["run", str(_write_batch(workdir)), "--out", str(workdir / "ok"), "--serial", "--fail-on-breach"])
    assert ok.exit_code == 2 and "no limits to check" in ok.output


def _stressgrid() -> list[str]:
    exe = Path(sys.executable).with_name("stressgrid")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]


@pytest.mark.slow
def test_the_tour_as_a_user_runs_it(tmp_path):
    """`stressgrid demo` in a fresh process: the tour, in this process (no Ray), every family and section it
    names, the limits and the report; no sensitivity table."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    proc = subprocess.run(_stressgrid() + ["demo", "--out", str(tmp_path / "tour")], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Risk by scenario family" in proc.stdout and "time:" in proc.stdout
    assert "--full" in proc.stdout  # where the rest of the demo is
    assert "does not follow the results schema" not in proc.stdout  # the sensitivity table may be left out
    # the time line says what it counts, and names no Ray start for a run that started none
    time_line = " ".join(proc.stdout.split("time: ", 1)[1].split("\n\n")[0].split())
    assert "in the run, from loading the inputs to writing the tables" in time_line and "start ray" not in time_line
    run = tmp_path / "tour"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["timings_seconds"]["start_ray"] == 0
    assert set(pd.read_parquet(run / "scenarios.parquet")["family"]) == {"crisis", "crisis_amplified", "mc_t_instant"}
    for table in ("la_risk", "capacity", "reoptimisation", "jump_to_default", "coverage"):
        assert (run / f"{table}.parquet").is_file(), table
    assert not (run / "sensitivity.parquet").exists()
    assert f"report: {run / 'report.html'}" in proc.stdout.replace("\n", "")
    assert pd.read_parquet(run / "breaches.parquet")["breached"].any()


def test_an_address_runs_a_serial_batch_on_that_cluster(workdir, monkeypatch):
    """--address names the cluster to run on, even for a batch whose executor is serial (the tour's)."""
    from stressgrid import grid, reports

    seen = {}

    def fake_run(batch, out, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(grid, "run_batch", fake_run)
    monkeypatch.setattr(reports, "finish_run", lambda *a, **k: 0)
    CliRunner().invoke(main, ["demo", "--out", str(workdir / "a"), "--address", "auto"])
    assert seen["serial"] is False and seen["address"] == "auto"
    CliRunner().invoke(main, ["demo", "--out", str(workdir / "b")])
    assert seen["serial"] is None and seen["address"] is None  # the batch's executor: serial
    CliRunner().invoke(main, ["demo", "--out", str(workdir / "c"), "--address", "auto", "--serial"])
    assert seen["serial"] is True


@pytest.mark.slow
def test_demo_command_as_a_user_runs_it(tmp_path):
    """`stressgrid demo --full` in a fresh process: embedded Ray, summary, outputs, timings."""
    cmd = _stressgrid()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    proc = subprocess.run(cmd + ["demo", "--full", "--out", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Risk by scenario family" in proc.stdout and "time:" in proc.stdout
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert manifest["counts"]["tasks"] >= 1 and manifest["timings_seconds"]["start_ray"] > 0
    assert "start ray" in " ".join(proc.stdout.split("time: ", 1)[1].split())
    # it ends with the limits and the HTML report, and says where the report is
    assert f"report: {tmp_path / 'demo' / 'report.html'}" in proc.stdout.replace("\n", "")
    assert (tmp_path / "demo" / "report.html").stat().st_size > 10_000
    assert pd.read_parquet(tmp_path / "demo" / "breaches.parquet")["breached"].any()


def test_interrupt_says_how_to_resume(workdir, monkeypatch):
    from stressgrid import grid

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(grid, "run_batch", interrupted)
    res = CliRunner().invoke(main, ["run", str(_write_batch(workdir)), "--out", str(workdir / "out"), "--serial"])
    assert res.exit_code == 130
    assert "--resume" in _error(res)


def test_an_interrupt_after_the_run_says_the_tables_are_written(workdir, monkeypatch):
    # Ctrl-C while the summary or the report is written: the run is whole, only what follows it is missing
    from stressgrid import reports

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reports, "finish_run", interrupted)
    out = workdir / "out"
    limits = "limits:\n  limits:\n    - {metric: worst_loss, scope: book, max: 1.0, units: currency}\n"
    for batch, hint in ((_write_batch(workdir), f"'stressgrid report {out}' writes the report"),
                        (_write_batch(workdir, limits), "the batch's limits were not checked: continue with --resume")):
        res = CliRunner().invoke(main, ["run", str(batch), "--out", str(out), "--serial", "--quiet"])
        assert res.exit_code == 130
        err = " ".join(_error(res).split())
        assert err.startswith("error: interrupted after the run: its tables and manifest are written") and hint in err, err
        assert (out / "manifest.json").is_file() and reports.check_run_dir(out) == []


def test_the_installed_command_reports_a_bad_batch_in_one_line(tmp_path):
    proc = subprocess.run(_stressgrid() + ["validate", str(tmp_path / "missing.yaml")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "missing.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
