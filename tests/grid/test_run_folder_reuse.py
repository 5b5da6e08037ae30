"""A run into a folder that holds an earlier run: nothing of the earlier run is read as the new one's, and
an interrupted run never passes for the finished run it was overwriting."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from stressgrid import reports
from stressgrid.cli import main
from stressgrid.core import DataError
from stressgrid.grid import SerialExecutor, execute, load_batch, prepare_inputs
from section_helpers import Interrupt


def _batches(tmp_path, linear_batch_path):
    shutil.copy(linear_batch_path.parent / "linear_book.csv", tmp_path)
    base = yaml.safe_load(linear_batch_path.read_text())
    first = {**base, "name": "first", "nav": 100_000_000, "liquidity": {"unwind_fraction": 1.0},
             "limits": {"limits": [{"metric": "stressed_loss", "scope": "book", "family": "crisis", "max": "1k"}]}}
    second = {**base, "name": "second", "risk": {"confidence": [0.9, 0.975]}}
    for name, spec in (("first", first), ("second", second)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "first.yaml", tmp_path / "second.yaml"


def test_a_run_removes_the_tables_of_an_earlier_run_that_it_does_not_write(tmp_path, linear_batch_path):
    first, second = _batches(tmp_path, linear_batch_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(first), "--out", str(out), "--serial", "--quiet"])
    assert res.exit_code == 0, res.output
    before = {p.name for p in out.glob("*.parquet")} | {p.name for p in out.glob("*.html")}
    assert {"breaches.parquet", "la_risk.parquet", "report.html"} <= before
    res = CliRunner().invoke(main, ["run", str(second), "--out", str(out), "--serial", "--quiet", "--no-report"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    # every table left is one this run wrote; the earlier run's breaches and report are gone
    assert {p.name for p in out.glob("*.parquet")} == {f for f in manifest["files"] if f.endswith(".parquet")}
    assert not (out / "breaches.parquet").exists() and not (out / "report.html").exists()
    assert reports.open_run(out).confidences == [0.9, 0.975]
    # this batch has no limits: nothing to fail on, rather than the earlier run's breach
    res = CliRunner().invoke(main, ["report", str(out), "--fail-on-breach", "--quiet"])
    assert res.exit_code == 2 and "no limits to check" in res.output


def _first_run(tmp_path, linear_batch_path):
    """The two batches, and the first one run into ``out``."""
    first, second = _batches(tmp_path, linear_batch_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(first), "--out", str(out), "--serial", "--quiet", "--no-report"])
    assert res.exit_code == 0, res.output
    return second, out


def test_an_interrupted_run_over_a_finished_one_is_not_read_as_a_run(tmp_path, linear_batch_path):
    second, out = _first_run(tmp_path, linear_batch_path)
    batch, digest = load_batch(second)
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": 256})})
    with pytest.raises(KeyboardInterrupt):
        execute(prepare_inputs(batch, digest), SerialExecutor(fn=Interrupt(at=1)), run_dir=out)
    # the first run's manifest went before the second run wrote anything: report and store refuse the folder
    assert not (out / "manifest.json").exists()
    with pytest.raises(DataError, match="has no manifest.json"):
        reports.open_run(out)
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 2 and "has no manifest.json" in res.output
    res = CliRunner().invoke(main, ["store", str(out), str(tmp_path / "store")])
    assert res.exit_code == 2 and "manifest.json" in res.output


def test_a_batch_that_fails_to_load_leaves_the_earlier_run_whole(tmp_path, linear_batch_path):
    # nothing is removed before the new batch's inputs are loaded and checked
    second, out = _first_run(tmp_path, linear_batch_path)
    files = sorted(p.name for p in out.iterdir())
    bad = yaml.safe_load(second.read_text())
    bad["market"]["as_of"] = "1990-01-01"
    second.write_text(yaml.safe_dump(bad))
    res = CliRunner().invoke(main, ["run", str(second), "--out", str(out), "--serial", "--quiet"])
    assert res.exit_code == 2, res.output
    assert sorted(p.name for p in out.iterdir()) == files
    assert reports.open_run(out).manifest["batch"]["name"] == "first"
