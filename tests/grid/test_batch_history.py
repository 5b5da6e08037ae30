"""The batch's ``history``: one source over the bundled history, a list in order of precedence, errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from stressgrid.core import ConfigError
from stressgrid.grid import load_batch, stage_batch

ROOT = Path(__file__).resolve().parents[2]


def _batch(tmp_path, history) -> Path:
    book = (ROOT / "tests" / "data" / "linear_book.csv").read_text()
    (tmp_path / "book.csv").write_text(book)
    pd.DataFrame({"date": ["2016-01-04", "2016-01-05"], "SPX": [2012.66, 2016.71], "Y10": [2.24, 2.25]}).to_csv(
        tmp_path / "mine.csv", index=False)
    body = {"name": "h", "book": "book.csv", "history": history,
            "scenarios": [{"kind": "historical", "name": "crisis", "events": ["gfc_2008"]}]}
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


MINE = {"path": "mine.csv", "columns": {"SPX": "EQ.SPX", "Y10": "IR.USD.10Y"}, "units": {"Y10": "percent"}}


def test_one_source_is_merged_over_the_bundled_history(tmp_path):
    batch, _ = load_batch(_batch(tmp_path, MINE))
    src = batch.history_sources()
    assert [s.label for s in src] == [str(tmp_path / "mine.csv"), "bundled"]
    assert src[0].units == {"Y10": "percent"}
    # --history replaces the batch's sources, and still adds the bundled history
    assert [s.label for s in batch.history_sources("other.csv")] == ["other.csv", "bundled"]


def test_a_list_is_taken_in_order_and_bundled_only_where_named(tmp_path):
    batch, _ = load_batch(_batch(tmp_path, ["bundled", MINE]))
    assert [s.label for s in batch.history_sources()] == ["bundled", str(tmp_path / "mine.csv")]
    batch, _ = load_batch(_batch(tmp_path, [MINE]))
    assert [s.label for s in batch.history_sources()] == [str(tmp_path / "mine.csv")]


@pytest.mark.parametrize("history,message", [
    ({**MINE, "units": {"Y10": "percents"}}, r"field 'history\.units\.Y10'"),
    ([], r"field 'history': an empty list"),
    ({**MINE, "colums": {}}, r"field 'history\.colums': unknown key"),
    ([MINE, "bundle"], r"field 'history\[1\]': a history source is a mapping with 'path', or the word 'bundled'"),
    ([{**MINE, "units": {"Y10": "pc"}}], r"field 'history\[0\]\.units\.Y10'"),
])
def test_bad_history_settings_name_the_field(tmp_path, history, message):
    with pytest.raises(ConfigError, match=message):
        load_batch(_batch(tmp_path, history))


def test_staging_copies_every_listed_source(tmp_path):
    staged = stage_batch(_batch(tmp_path, [MINE, "bundled"]))
    raw = yaml.safe_load((staged.folder / "batch.yaml").read_text())
    assert raw["history"][1] == "bundled"
    name = raw["history"][0]["path"]
    assert (staged.folder / name).read_text() == (tmp_path / "mine.csv").read_text()
    again, _ = load_batch(staged.folder / "batch.yaml")  # the staged batch loads as it is
    assert [s.label for s in again.history_sources()] == [str(staged.folder / name), "bundled"]
