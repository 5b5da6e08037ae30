"""The scenario x position table (scenario_pnl): a batch that asks for more than the driver gathers is
refused by validate, before any work; one that auto leaves it out of says so, in validate, the summary and
the manifest."""

from __future__ import annotations

import json
import shutil

import yaml
from click.testing import CliRunner

from stressgrid.cli import main
from stressgrid.grid import _run


def _batch(tmp_path, linear_batch_path, scenario_pnl):
    shutil.copy(linear_batch_path.parent / "linear_book.csv", tmp_path)
    spec = yaml.safe_load(linear_batch_path.read_text())
    spec["outputs"] = {"scenario_pnl": scenario_pnl}
    spec["execution"] = {"stream": False}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "b.yaml"


def test_true_over_the_drivers_limit_is_refused_by_validate(tmp_path, linear_batch_path, monkeypatch):
    monkeypatch.setattr(_run, "MAX_POSITION_CELLS", 1000)
    res = CliRunner().invoke(main, ["validate", str(_batch(tmp_path, linear_batch_path, True))])
    assert res.exit_code == 2, res.output
    assert "field 'outputs.scenario_pnl': true asks for 2,512 scenarios x 22 positions = 55,264 rows, over the limit " \
           "of 1,000" in res.output and "execution.stream: true" in res.output


def test_auto_over_its_size_says_the_table_is_not_written(tmp_path, linear_batch_path, monkeypatch):
    monkeypatch.setattr(_run, "AUTO_POSITION_CELLS", 1000)
    batch = _batch(tmp_path, linear_batch_path, "auto")
    said = ("the scenario x position table (scenario_pnl) is not written: 2,512 scenarios x 22 positions = 55,264 rows, "
            "and outputs.scenario_pnl: auto writes it up to 1,000 rows")
    res = CliRunner().invoke(main, ["validate", str(batch)])
    assert res.exit_code == 0 and f"note: {said}" in res.output, res.output
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(batch), "--out", str(out), "--serial", "--no-report"])
    assert res.exit_code == 0, res.output
    assert not (out / "scenario_pnl.parquet").exists() and not (out / "scenario_pnl").exists()
    assert said[:1].upper() + said[1:] in " ".join(res.output.split())
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert notes["outputs"]["scenario_pnl"].startswith(said)
    # under the size, nothing is said
    monkeypatch.setattr(_run, "AUTO_POSITION_CELLS", 100_000)
    res = CliRunner().invoke(main, ["validate", str(batch)])
    assert res.exit_code == 0 and "scenario_pnl" not in res.output
