import textwrap

import pytest

from stressgrid.core import ConfigError
from stressgrid.grid import load_batch


def _batch(tmp_path, body: str):
    p = tmp_path / "b.yaml"
    p.write_text(textwrap.dedent(body))
    return p


BASE = """
name: t
book: book.csv
scenarios:
  - kind: historical
    events: [gfc_2008]
"""


def test_demo_batch_validates(demo_batch_path):
    batch, digest = load_batch(demo_batch_path)
    assert batch.name == "demo" and len(digest) == 64
    assert batch.book.is_absolute() and batch.book.exists()


@pytest.mark.parametrize(
    "body, match",
    [
        (BASE.replace("gfc_2008", "gfc_2099"), r"field 'scenarios\[0\].events': .*unknown event 'gfc_2099'"),
        (BASE.replace("historical", "astrology"), r"field 'scenarios\[0\].kind'"),
        (BASE + "risk:\n  confidence: [0.95, 1.5]\n", r"field 'risk.confidence': .*1.5"),
        (BASE + "colour: red\n", r"field 'colour': unknown key"),
        (BASE.replace("name: t\n", ""), r"field 'name': missing"),
        (BASE + "seed: -1\n", r"field 'seed'"),
        (BASE + "base_currency: usd\n", r"field 'base_currency'"),
        (BASE + "market:\n  overrides: {SPX: 1}\n", r"factor 'SPX'"),
        (BASE + "execution:\n  workers: 0\n", r"field 'execution.workers'"),
        (BASE + "execution:\n  chunk_size: 0\n", r"field 'execution.chunk_size'"),
        (BASE + "execution:\n  gpu: sometimes\n", r"field 'execution.gpu': must be true, false or auto \(got 'sometimes'\)"),
        (BASE + "outputs:\n  scenario_pnl: maybe\n", r"field 'outputs.scenario_pnl': must be true, false or auto \(got 'maybe'\)"),
        (BASE + "outputs:\n  positions: true\n", r"field 'outputs.positions': unknown key"),
        ("name: [unclosed\n", r"line \d+, column \d+: malformed YAML"),
        ("- just\n- a list\n", r"expected a mapping"),
    ],
)
def test_bad_batch_is_one_clear_error(tmp_path, body, match):
    with pytest.raises(ConfigError, match=match):
        load_batch(_batch(tmp_path, body))


def test_missing_batch_file(tmp_path):
    with pytest.raises(ConfigError, match="batch file .* not found"):
        load_batch(tmp_path / "nope.yaml")


def test_duplicate_family_names(tmp_path):
    body = BASE + "  - kind: historical\n    events: [lehman_2008]\n"
    with pytest.raises(ConfigError, match="family name 'historical' is used twice"):
        load_batch(_batch(tmp_path, body))


def test_a_tic_tree_file_is_read_from_the_batch_files_folder(tmp_path, monkeypatch):
    """A forecaster's tree_file, like the book, is relative to the batch file, not to where the command runs."""
    import textwrap

    from stressgrid.grid import load_batch

    d = tmp_path / "b"
    d.mkdir()
    (d / "book.csv").write_text("id,type,underlying,quantity\nA,equity,EQ.SPX,1\n")
    (d / "tree.csv").write_text("factor,class\nEQ.SPX,equity\nIR.USD.10Y,rates\n")
    (d / "batch.yaml").write_text(textwrap.dedent("""\
        name: t
        book: book.csv
        scenarios: [{kind: historical, name: crisis, events: [gfc_2008]}]
        monitoring:
          factors: [EQ.SPX, IR.USD.10Y]
          forecasters: [sample, {name: tic, tree_file: tree.csv}]
        """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    batch, _ = load_batch(d / "batch.yaml")
    spec = batch.monitoring.forecasters[1]
    assert spec.params["tree_file"] == str((d / "tree.csv").resolve())
    with pytest.raises(ConfigError, match=r"monitoring.forecasters\[1\].tree_file': '../tree.csv' is outside"):
        (d / "batch.yaml").write_text((d / "batch.yaml").read_text().replace("tree.csv", "../tree.csv"))
        load_batch(d / "batch.yaml", allow_outside_paths=False)


def test_two_bad_values_keyed_by_factor_are_both_reported(tmp_path, linear_batch_path):
    # a factor name used as a key (EQ.SPX) is not a form of a field: its error is not dropped for another's
    import yaml

    spec = yaml.safe_load(linear_batch_path.read_text())
    spec["book"] = str(linear_batch_path.parent / "linear_book.csv")
    spec["market"]["overrides"] = {"EQ.SPX": [1], "EQ.NDX": "abc"}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError) as exc:
        load_batch(tmp_path / "b.yaml")
    lines = str(exc.value).splitlines()
    assert len(lines) == 2, lines
    assert any("field 'market.overrides.EQ.SPX': Input should be a valid number" in x for x in lines)
    assert any("field 'market.overrides.EQ.NDX'" in x and "(got 'abc')" in x for x in lines)
