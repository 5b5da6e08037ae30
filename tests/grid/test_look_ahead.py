"""A family whose history window ends after the as-of date uses data a forecast made on that date could not
have had: validate, the summary and the manifest say so; a crisis replay's later events are not flagged."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import yaml
from click.testing import CliRunner

from stressgrid.cli import main
from stressgrid.grid import load_batch, windows_after


def _batch(tmp_path, linear_batch_path, extra):
    shutil.copy(linear_batch_path.parent / "linear_book.csv", tmp_path)
    spec = yaml.safe_load(linear_batch_path.read_text())
    spec["scenarios"] += extra
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "b.yaml"


def test_windows_that_end_after_the_as_of_date(tmp_path, linear_batch_path):
    late = [
        {"kind": "montecarlo", "name": "mc_late", "model": "gaussian", "n_scenarios": 200, "horizon_days": 10,
         "window": {"end": "2019-06-28", "lookback_days": 250}},
        {"kind": "rolling", "name": "roll_late", "horizon_days": 10, "start": "2016-01-04", "end": "2018-01-02"},
        {"kind": "historical", "name": "amp_late", "events": ["covid_2020"],
         "amplify": {"window": {"end": "2018-06-29", "lookback_days": 250}, "vol": {"multiplier": 1.5}}},
        {"kind": "montecarlo", "name": "mc_ok", "model": "gaussian", "n_scenarios": 200, "horizon_days": 10,
         "window": {"end": "2017-03-29", "lookback_days": 250}},
    ]
    batch, _ = load_batch(_batch(tmp_path, linear_batch_path, late))
    # amp_late replays covid_2020, after the as-of date too: only its amplification window is flagged
    assert windows_after(batch, pd.Timestamp("2017-03-29")) == {
        "mc_late": "2019-06-28", "roll_late": "2018-01-02", "amp_late": "2018-06-29"}

    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 0, res.output
    said = ("the history windows of mc_late (to 2019-06-28), roll_late (to 2018-01-02), amp_late (to 2018-06-29) end "
            "after the as-of date 2017-03-29")
    assert f"note: {said}" in " ".join(res.output.split())
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(tmp_path / "b.yaml"), "--out", str(out), "--serial", "--no-report"])
    assert res.exit_code == 0, res.output
    assert said in " ".join(res.output.split())
    assert json.loads((out / "manifest.json").read_text())["notes"]["windows"]["after_as_of"] == {
        "mc_late": "2019-06-28", "roll_late": "2018-01-02", "amp_late": "2018-06-29"}


def test_a_batch_whose_windows_end_by_the_as_of_date_says_nothing(tmp_path, linear_batch_path):
    res = CliRunner().invoke(main, ["validate", str(_batch(tmp_path, linear_batch_path, []))])
    assert res.exit_code == 0 and "after the as-of date" not in res.output
