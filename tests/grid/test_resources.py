"""Memory and output size estimated before any work, and batches that do not fit refused."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import TypeAdapter

from stressgrid import scenarios
from stressgrid.cli import main
from stressgrid.core import ConfigError
from stressgrid.grid._resources import Estimate, check_resources, count_scenarios

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec", [
    dict(kind="historical", name="h", events=["gfc_2008", "covid_2020"],
         custom=[{"name": "c", "start": "2015-08-10", "end": "2015-08-25"}]),
    dict(kind="montecarlo", name="m", model="gaussian", n_scenarios=1234, window={"end": "2017-03-29", "lookback_days": 300}),
    dict(kind="bootstrap", name="b", n_scenarios=777, block_length=5, horizon_days=5,
         window={"end": "2017-03-29", "lookback_days": 300}),
    dict(kind="predictive", name="p", n_draws=7, window={"end": "2017-03-29", "lookback_days": 300},
         stresses=[{"name": "a", "shocks": {"EQ.SPX": "-20%"}}, {"name": "b", "shocks": {"EQ.SPX": "-10%"}}]),
    dict(kind="rolling", name="r", horizon_days=10, start="2012-01-01", end="2016-12-30", step=3),
])
def test_the_count_matches_the_generated_scenarios(spec, history):
    from stressgrid.core import snapshot_from_history

    s = TypeAdapter(scenarios.ScenarioSpec).validate_python(spec)
    factors = ["EQ.SPX", "IR.USD.10Y"]
    market = snapshot_from_history(history, factors, "2017-03-29")
    n = len(scenarios.generate(s, history, factors, np.random.SeedSequence(0), market))
    assert count_scenarios(s, history, factors) == n


def test_a_batch_over_the_memory_or_the_disk_is_refused_unless_forced(tmp_path):
    est = Estimate({"crisis": 11, "mc": 5_000_000}, driver_bytes=30e9, disk_bytes=2e9)
    with pytest.raises(ConfigError, match=r"largest family 'mc': 5,000,000 scenarios\): the run needs about 30\.0 GB "
                                          r"of memory for 5,000,011 scenarios, over the 8\.0 GB"):
        check_resources(est, "batch 'b'", memory=10e9)
    check_resources(est, "batch 'b'", memory=10e9, force=True)
    free = shutil.disk_usage(tmp_path).free
    big = Estimate({"mc": 10}, driver_bytes=1.0, disk_bytes=free * 2.0)
    with pytest.raises(ConfigError, match=f"in {tmp_path / 'new' / 'run'}, which has"):
        check_resources(big, "batch 'b'", out=tmp_path / "new" / "run", memory=10e9)
    check_resources(big, "batch 'b'", out=None, memory=10e9)  # no output folder: nothing to check


def test_validate_refuses_a_hundred_million_scenarios_before_drawing_any(tmp_path):
    shutil.copy(ROOT / "tests" / "data" / "linear_book.csv", tmp_path / "book.csv")
    (tmp_path / "b.yaml").write_text(textwrap.dedent("""\
        name: huge
        book: book.csv
        market: {as_of: 2017-03-29}
        scenarios:
          - {kind: historical, name: crisis, events: [gfc_2008]}
          - {kind: montecarlo, name: mc, model: gaussian, n_scenarios: 100000000,
             window: {end: 2017-03-29, lookback_days: 500}}
        execution: {stream: false}
        """))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "largest family 'mc': 100,000,000 scenarios" in line and "--force" in line
    # streamed, the driver holds the tail, not the scenarios: 100 million fit; the position rows of
    # half of 400 million (a 50% confidence level) do not
    streamed = (tmp_path / "b.yaml").read_text().replace("stream: false", "stream: auto")
    (tmp_path / "b.yaml").write_text(streamed)
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 0 and "streamed:" in res.output, res.output
    more = "".join(f"  - {{kind: montecarlo, name: mc{i}, model: gaussian, n_scenarios: 100000000,\n"
                   "     window: {end: 2017-03-29, lookback_days: 500}}\n" for i in range(3))
    (tmp_path / "b.yaml").write_text(streamed.replace("execution:", more + "risk: {confidence: [0.5]}\nexecution:"))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2 and "memory for 400,000,001 scenarios" in res.output, res.output
    (tmp_path / "b.yaml").write_text(streamed)
    small = (tmp_path / "b.yaml").read_text().replace("100000000", "1000")
    (tmp_path / "b.yaml").write_text(small)
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 0, res.output
    assert "needs: about" in res.output and "for 1,001 scenarios" in res.output
    # a small batch's tables read in MB or kB, not as 0.00 GB
    assert re.search(r"and [\d.,]+ (MB|kB) of tables", res.output) and "0.00 GB" not in res.output, res.output
