"""Parameter sweeps: one batch-file entry expands into a grid of scenario families, each reported on its
own, with common random numbers across the points."""

import shutil
import textwrap

import numpy as np
import pytest

from stressgrid import scenarios
from stressgrid.core import ConfigError
from stressgrid.grid import SerialExecutor, execute, load_batch, prepare_inputs

DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data"

SWEEP = """
name: sweep
book: linear_book.csv
seed: 11
market:
  as_of: 2017-03-29
scenarios:
  - kind: historical
    name: crisis
    events: [gfc_2008, euro_debt_2011]
  - kind: montecarlo
    name: mc
    model: gaussian
    n_scenarios: 300
    window: {end: 2017-03-29, lookback_days: 500}
    amplify:
      window: {end: 2017-03-29, lookback_days: 500}
      vol: {multiplier: 1.0}
    sweep:
      amplify.vol.multiplier: [1.5, 2.0, 3.0]
      amplify.correlation.blend: [0.25, 1.0]
      amplify.correlation.targets: [[{a: equity, b: equity, value: 0.9}]]
"""


def _write(tmp_path, body: str):
    shutil.copy(DATA / "linear_book.csv", tmp_path / "linear_book.csv")
    p = tmp_path / "b.yaml"
    p.write_text(textwrap.dedent(body))
    return p


def test_sweep_expands_to_the_cartesian_product(tmp_path):
    batch, _ = load_batch(_write(tmp_path, SWEEP))
    names = [s.name for s in batch.scenarios]
    assert names[0] == "crisis"
    assert names[1:] == [f"mc[multiplier={m},blend={b},targets=[{{'a': 'equity', 'b': 'equity', 'value': 0.9}}]]"
                         for m in ("1.5", "2", "3") for b in ("0.25", "1")]
    assert batch.origins == [0, 1, 1, 1, 1, 1, 1]
    pts = batch.sweep_points
    assert len(pts) == 6 and {p.base for p in pts} == {"mc"}
    assert [(p.values["amplify.vol.multiplier"], p.values["amplify.correlation.blend"]) for p in pts] == [
        (1.5, 0.25), (1.5, 1.0), (2.0, 0.25), (2.0, 1.0), (3.0, 0.25), (3.0, 1.0)]
    # the values reached the validated specs
    spec = batch.scenarios[4]
    assert spec.amplify.vol.multiplier == 2.0 and spec.amplify.correlation.blend == 1.0


def test_each_point_is_its_own_family_with_common_random_numbers(tmp_path, history):
    body = SWEEP.replace("      amplify.correlation.blend: [0.25, 1.0]\n", "").replace(
        "      amplify.correlation.targets: [[{a: equity, b: equity, value: 0.9}]]\n", "")
    batch, digest = load_batch(_write(tmp_path, body))
    inputs = prepare_inputs(batch, digest)
    result = execute(inputs, SerialExecutor())
    fam = np.asarray(inputs.scenarios.family)
    m15, m3 = "mc[multiplier=1.5]", "mc[multiplier=3]"
    a, b = inputs.scenarios.shocks[fam == m15], inputs.scenarios.shocks[fam == m3]
    # same draws, different vol multiplier: every shock scales by exactly 3 / 1.5 (a pure vol stress on a
    # Gaussian model multiplies the de-meaned draws; compare around the family mean)
    da, db = a - a.mean(axis=0), b - b.mean(axis=0)
    assert np.allclose(db, 2.0 * da, rtol=1e-9, atol=1e-12)
    # reported separately: VaR per point, increasing with the multiplier
    rm = result.tables["risk_metrics"]
    var = {f: rm[(rm.family == f) & (rm.metric == "var") & (rm.confidence == 0.99)].value.iloc[0]
           for f in ("mc[multiplier=1.5]", "mc[multiplier=2]", "mc[multiplier=3]")}
    assert var["mc[multiplier=1.5]"] < var["mc[multiplier=2]"] < var["mc[multiplier=3]"]
    sw = result.tables["sweeps"]
    assert list(sw.columns) == ["family", "base", "parameter", "value", "value_number"]
    assert sw.value_number.tolist() == [1.5, 2.0, 3.0]
    # the terminal summary shows the point names as written (not eaten as markup)
    from stressgrid import reports
    from stressgrid.grid import write_outputs
    from rich.console import Console

    write_outputs(result, tmp_path / "run")
    console = Console(record=True, width=200)
    reports.print_summary(tmp_path / "run", console)
    assert "mc[multiplier=1.5]" in console.export_text()
    # the point with multiplier 1.5 equals generating that spec on its own with the entry's seed
    child = np.random.SeedSequence(batch.seed).spawn(2)[1]
    alone = scenarios.generate(batch.scenarios[1], inputs.history, inputs.market.factors, seed=child,
                               market=inputs.market).reorder(inputs.scenarios.factors)
    assert np.array_equal(alone.shocks, a)


def test_a_batch_without_sweeps_keeps_its_seeds(linear_batch_path):
    batch, _ = load_batch(linear_batch_path)
    assert batch.origins == list(range(len(batch.scenarios))) and batch.sweep_points == []


@pytest.mark.parametrize("sweep, match", [
    ("sweep: [1, 2]", r"scenarios\[1\]\.sweep': expected a mapping"),
    ("sweep: {amplify.vol.multiplier: 2}", r"scenarios\[1\]\.sweep\.amplify\.vol\.multiplier': expected a non-empty list"),
    ("sweep: {amplify.vol.multiplier: []}", r"non-empty list"),
    ("sweep: {name: [a, b]}", r"'name' cannot be swept"),
    ("sweep: {amplify.vol.multiplier: [2, 2]}", r"listed twice"),
    ("sweep: {amplify.vol.multiplier: [2, 2.0]}", r"a value is listed twice; each value names its point \(got \[2, 2.0\]\)"),
    ("sweep: {amplify.vol.multiplier: [2, -1]}",
     r"field 'scenarios\[1\] \(sweep point mc\[multiplier=-1\]\)\.amplify\.vol\.multiplier'"),
    ("sweep: {n_scenarios: [10, 0]}", r"scenarios\[1\] \(sweep point mc\[n_scenarios=0\]\)\.n_scenarios'"),
    ("sweep: {model.dof: [3]}", r"'model' in 'model.dof' is a str"),
    # a key the entry does not take: one line for the sweep, not one per point
    ("sweep: {amplify.vol.multipler: [1.5, 2, 3]}",
     r"^batch file .*, field 'scenarios\[1\]\.sweep\.amplify\.vol\.multipler': not a key of this kind of entry$"),
])
def test_bad_sweeps_name_the_entry_and_the_point(tmp_path, sweep, match):
    body = SWEEP.split("    sweep:")[0] + "    " + sweep + "\n"
    with pytest.raises(ConfigError, match=match):
        load_batch(_write(tmp_path, body))
