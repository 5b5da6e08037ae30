"""Bad input as a user or an attacker gives it: every problem at once, one line each with its file and
field, exit code 2; duplicate keys, paths outside the batch's folder and formula cells refused."""

import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "tests" / "data" / "linear_book.csv", tmp_path / "book.csv")
    return tmp_path


def _batch(d: Path, body: str) -> Path:
    p = d / "batch.yaml"
    p.write_text(textwrap.dedent(body))
    return p


GOOD = """\
    name: t
    book: book.csv
    seed: 1
    market:
      as_of: 2017-03-29
    scenarios:
      - {kind: historical, name: crisis, events: [gfc_2008]}
    """


def _lines(res) -> list[str]:
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert all(l.startswith("error: ") for l in lines), res.output
    return lines


def _validate(path: Path, *extra: str):
    return CliRunner().invoke(main, ["validate", str(path), *extra])


def test_a_duplicate_key_is_an_error_with_both_lines(workdir):
    res = _validate(_batch(workdir, GOOD + "seed: 2\n"))
    assert res.exit_code == 2
    [line] = _lines(res)
    assert "line 8, column 1: duplicate key 'seed' (first at line 3)" in line


@pytest.mark.parametrize("value, problem", [("2017-02-30", "day is out of range for month"),
                                            ("2017-13-01", "month must be in 1..12")])
def test_an_impossible_date_is_an_error_at_its_line(workdir, value, problem):
    res = _validate(_batch(workdir, GOOD.replace("2017-03-29", value)))
    assert res.exit_code == 2
    [line] = _lines(res)
    assert f"line 5, column 10: invalid date '{value}': {problem}" in line


def test_a_bad_history_source_gives_its_own_error_only(workdir):
    # it also said "field 'history': Input should be 'bundled'", the other member of the source union
    res = _validate(_batch(workdir, GOOD + "history: {path: h.csv, units: {y: percnt}}\n"))
    assert res.exit_code == 2
    [line] = _lines(res)
    assert line.endswith("field 'history.units.y': Input should be 'decimal', 'percent' or 'bp' (got 'percnt')"), line
    res = _validate(_batch(workdir, GOOD + "history: [bundled, nope, {path: h.csv, colour: 1}]\n"))
    assert [l.split("field ")[1] for l in _lines(res)] == [
        "'history[1]': a history source is a mapping with 'path', or the word 'bundled' (got 'nope')",
        "'history[2].colour': unknown key"]


def test_a_confidence_level_out_of_range_names_it(workdir):
    res = _validate(_batch(workdir, GOOD + "risk: {confidence: [0.95, 1.5]}\n"))
    assert res.exit_code == 2
    [line] = _lines(res)
    assert line.endswith("field 'risk.confidence': a confidence level must be in [0.5, 1) (got 1.5)"), line


def test_three_faults_give_three_lines(workdir):
    body = GOOD.replace("seed: 1", "seed: -1").replace("name: t", "name: t\n    base_currency: usd") + "colour: blue\n"
    res = _validate(_batch(workdir, body))
    assert res.exit_code == 2
    lines = _lines(res)
    assert len(lines) == 3, lines
    text = "\n".join(lines)
    assert "field 'seed'" in text and "(got -1)" in text
    assert "field 'base_currency'" in text and "(got 'usd')" in text
    assert "field 'colour': unknown key" in text


def test_every_bad_row_of_the_book_at_once(workdir):
    book = pd.read_csv(workdir / "book.csv")
    book.loc[1, "adv"] = -5
    book.loc[4, "bid_ask_bps"] = -1
    book.loc[6, "id"] = '=CMD("calc")'
    book.to_csv(workdir / "book.csv", index=False)
    res = _validate(_batch(workdir, GOOD))
    assert res.exit_code == 2
    lines = _lines(res)
    assert len(lines) == 3, lines
    assert "(row 2), field 'adv'" in lines[0] and "(row 5), field 'bid_ask_bps'" in lines[1]
    assert "(row 7), field 'id': must not start with '='" in lines[2]


def test_a_book_outside_the_batch_folder_is_refused_unless_allowed(workdir):
    inner = workdir / "batches"
    inner.mkdir()
    for path in ("../book.csv", str(workdir / "book.csv"), "../../../etc/passwd"):
        res = _validate(_batch(inner, GOOD.replace("book: book.csv", f"book: {path}")))
        assert res.exit_code == 2
        [line] = _lines(res)
        assert f"field 'book': {path!r} is outside the batch file's folder" in line and "--allow-outside-paths" in line
    ok = _validate(_batch(inner, GOOD.replace("book: book.csv", "book: ../book.csv")), "--allow-outside-paths")
    assert ok.exit_code == 0, ok.output


def test_a_rolling_window_that_ends_before_it_starts(workdir):
    body = GOOD.replace("{kind: historical, name: crisis, events: [gfc_2008]}",
                        "{kind: rolling, name: r, start: 2016-01-01, end: 2015-01-01}")
    res = _validate(_batch(workdir, body))
    assert res.exit_code == 2
    [line] = _lines(res)
    assert "field 'scenarios[0]'" in line and "start 2016-01-01 is not before end 2015-01-01" in line


def test_an_as_of_after_the_history_names_the_field_and_every_stale_factor(workdir):
    res = _validate(_batch(workdir, GOOD.replace("2017-03-29", "2026-11-30")))
    assert res.exit_code == 2
    lines = _lines(res)
    assert len(lines) > 3
    assert all("field 'market.as_of': market snapshot 2026-11-30: factor " in l for l in lines[:-1])
    assert any("EQ.SPX last observed" in l for l in lines)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_limit_on_a_family_the_batch_lacks_fails_before_any_work(tmp_path, command):
    """The demo batch with its 10-day CVaR limit mistyped (hist_10x): one error naming the limit, the field,
    the value and the batch's families, before any scenario is drawn; no run directory is created.  A
    liquidation limit's family is a liquidity regime (stress), not a scenario family, and passes."""
    shutil.copy(ROOT / "examples" / "demo_book.csv", tmp_path / "demo_book.csv")
    text = (ROOT / "examples" / "demo_batch.yaml").read_text()
    assert "family: hist_10d, max: 12%" in text and "family: stress, max: 5" in text
    batch = tmp_path / "batch.yaml"
    batch.write_text(text.replace("family: hist_10d, max: 12%", "family: hist_10x, max: 12%"))
    args = [command, str(batch)] + (["--out", str(tmp_path / "out"), "--serial"] if command == "run" else [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert _lines(res) == ["error: limit 'cvar99 book in hist_10x <= 12% NAV', field 'family': no scenario family "
                           "'hist_10x' in the batch (have: crisis, crisis_amplified, hist_10d, boot_10d, mc_t, "
                           "mc_garch_dcc, mc_sweep[multiplier=1.5,blend=0.5], mc_sweep[multiplier=1.5,blend=1], "
                           "mc_sweep[multiplier=2,blend=0.5], mc_sweep[multiplier=2,blend=1], "
                           "mc_sweep[multiplier=3,blend=0.5], mc_sweep[multiplier=3,blend=1], predictive)"]
    assert not (tmp_path / "out").exists()
