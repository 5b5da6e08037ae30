"""Fuzzing the inputs a user hands us: the batch file, the book and a history file, mutated (types,
signs, NaN and infinity, sizes, unknown keys and names, dates outside the history, duplicates, YAML
aliases and tags).  Whatever the mutation, ``stressgrid validate`` ends with exit code 0 or 2, never a
traceback or an exception escaping; and mutations that change nothing a batch means (key order,
comments, aliases) change nothing it prints.

The examples are derandomised, so CI runs the same ones every time; ``STRESSGRID_FUZZ_EXAMPLES`` sets
how many per test (default 30), and ``STRESSGRID_FUZZ_RANDOM=1`` draws new ones (to explore).  The
first runs found a book path too long for the file system and a history date of ``-5`` (read as the
year -5) ending in tracebacks.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stressgrid.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("STRESSGRID_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("STRESSGRID_FUZZ_RANDOM") is None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

BASE = {
    "name": "fuzz",
    "book": "book.csv",
    "seed": 7,
    "market": {"as_of": "2017-03-29", "max_stale_days": 7, "overrides": {"EQ.SPX": 2360.0}},
    "scenarios": [
        {"kind": "historical", "name": "crisis", "events": ["gfc_2008", "euro_debt_2011"]},
        {"kind": "rolling", "name": "hist", "horizon_days": 10, "start": "2015-01-02", "end": "2017-03-29", "step": 5},
        {"kind": "montecarlo", "name": "mc", "model": "student_t", "n_scenarios": 200, "horizon_days": 5,
         "window": {"end": "2017-03-29", "lookback_days": 300}},
        {"kind": "bootstrap", "name": "bs", "n_scenarios": 100, "block_length": 5, "horizon_days": 5,
         "window": {"end": "2017-03-29", "lookback_days": 300}},
    ],
    "risk": {"confidence": [0.95, 0.99]},
    "outputs": {"scenario_pnl": "auto"},
}

#: values a mutation puts in place of a field or a cell
WEIRD = [-1, 0, 1, 10**12, -(10**12), 2.5, -0.0, float("nan"), float("inf"), float("-inf"), "", " ", "x" * 300,
         None, True, [], {}, [1, 2], {"a": 1}, "2100-01-01", "1900-01-01", "2017-02-30", "EQ.NOPE", "IR.XXX.2Y",
         "../../../etc/passwd", '=CMD("calc")', "+1", "@SUM(A1)", "0x1F", "1e400", "NaN", "bundled", "auto",
         "unicode ✓ ü", "a\nb"]


def _paths(node, prefix=()):
    """Every key path to a value in a nested batch."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(BASE))


def _set(doc, path, value, op):
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if op == "replace":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif op == "unknown_key" and isinstance(parent, dict):
        parent[f"unknown_{key}"] = value
    return doc


@pytest.fixture
def folder(tmp_path):
    shutil.copy(ROOT / "tests" / "data" / "linear_book.csv", tmp_path / "book.csv")
    return tmp_path


def _validate(folder: Path, text: str, *extra: str):
    (folder / "batch.yaml").write_text(text)
    return CliRunner().invoke(main, ["validate", str(folder / "batch.yaml"), *extra])


def _clean(res) -> None:
    """Exit 0 or 2, no traceback, no Python exception escaping, every error line with its prefix."""
    assert res.exit_code in (0, 2), (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    if res.exit_code == 2:
        lines = [l for l in res.output.splitlines() if l.strip()]
        assert lines and all(l.startswith("error: ") for l in lines), res.output


def _dump(doc) -> str:
    # NaN and infinities as YAML writes them; everything else plain
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


@FUZZ
@given(path=st.sampled_from(PATHS), value=st.sampled_from(WEIRD),
       op=st.sampled_from(["replace", "replace", "replace", "delete", "unknown_key"]))
def test_a_mutated_batch_is_run_or_refused_cleanly(folder, path, value, op):
    doc = _set(copy.deepcopy(BASE), path, value, op)
    _clean(_validate(folder, _dump(doc)))


RAW = [
    "seed: 8\n",                                             # a duplicate key
    "extra: !!python/object/apply:os.system ['echo hacked']\n",  # a tag that would run code
    "name: !!binary aGVsbG8=\n",
    "anchors: &a [1, 2]\nmore: *a\n",                        # aliases in an unknown key
    "scenarios: *undefined\n",
    "\t\tname: tabs\n",
    "---\nname: second document\n",
    "[unclosed\n",
    "name: {a: 1, a: 2}\n",
    "\x00\n",
]


@pytest.mark.parametrize("tail", RAW)
def test_raw_yaml_mutations_are_refused_cleanly(folder, tail):
    res = _validate(folder, _dump(BASE) + tail)
    _clean(res)
    assert res.exit_code == 2
    assert not (folder / "hacked").exists()


def test_irrelevant_changes_change_nothing(folder):
    """Key order, comments, flow style and aliases do not change what validate prints."""
    base = _validate(folder, _dump(BASE))
    assert base.exit_code == 0, base.output
    doc = copy.deepcopy(BASE)
    doc = dict(reversed(list(doc.items())))
    text = "# a comment\n" + yaml.safe_dump(doc, sort_keys=True, default_flow_style=True) + "# the end\n"
    other = _validate(folder, text)
    assert other.output == base.output
    aliased = "defaults: &w {end: 2017-03-29, lookback_days: 300}\n"
    text = _dump(BASE).replace("window:\n    end: '2017-03-29'\n    lookback_days: 300", "window: *w")
    assert "window: *w" in text
    res = _validate(folder, aliased + text)
    # the alias works; the anchor's own key is unknown to the batch and refused by name
    assert res.exit_code == 2 and "field 'defaults': unknown key" in res.output


BOOK = pd.read_csv(ROOT / "tests" / "data" / "linear_book.csv", dtype=str, keep_default_na=False)


@FUZZ
@given(row=st.integers(0, len(BOOK) - 1), col=st.sampled_from(list(BOOK.columns)),
       value=st.sampled_from([str(v) for v in WEIRD if not isinstance(v, (list, dict))]))
def test_a_mutated_book_is_run_or_refused_cleanly(folder, row, col, value):
    book = BOOK.copy()
    book.loc[row, col] = value
    book.to_csv(folder / "book.csv", index=False)
    _clean(_validate(folder, _dump(BASE)))


def _history(folder: Path) -> pd.DataFrame:
    from stressgrid.core import load_history

    lv = load_history().levels.loc["2014-01-01":"2017-03-31", ["EQ.SPX", "EQ.AAPL", "IR.USD.10Y"]].dropna()
    return pd.DataFrame({"date": lv.index.strftime("%Y-%m-%d"), "SPX": lv["EQ.SPX"].round(4).astype(str),
                         "AAPL": lv["EQ.AAPL"].round(4).astype(str), "UST10Y": (lv["IR.USD.10Y"] * 100).round(4).astype(str)})


HIST = None


@FUZZ
@given(row=st.integers(0, 700), col=st.sampled_from(["date", "SPX", "AAPL", "UST10Y"]),
       value=st.sampled_from(["", "-5", "0", "nan", "inf", "abc", "2017-13-01", "1800-01-01", "2099-01-01", "1e400",
                              "2016-06-01", "=1+1"]),
       header=st.booleans())
def test_a_mutated_history_file_is_run_or_refused_cleanly(folder, row, col, value, header):
    global HIST
    if HIST is None:
        HIST = _history(folder)
    h = HIST.copy()
    row = min(row, len(h) - 1)
    h.loc[h.index[row], col] = value
    if header:
        h = h.rename(columns={col: col + "_renamed"})
    h.to_csv(folder / "h.csv", index=False)
    doc = copy.deepcopy(BASE)
    doc["history"] = {"path": "h.csv", "columns": {"SPX": "EQ.SPX", "AAPL": "EQ.AAPL", "UST10Y": "IR.USD.10Y"},
                      "units": {"UST10Y": "percent"}}
    _clean(_validate(folder, _dump(doc)))
