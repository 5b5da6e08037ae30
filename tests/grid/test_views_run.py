"""Views by entropy pooling through a whole run: the scenarios table carries the posterior probabilities,
every figure of the family uses them (identities against the views table and the scenarios table), the
prior column is the equally weighted family, and the errors a user meets."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from stressgrid import reports
from stressgrid.cli import main
from stressgrid.grid import run_batch

from section_helpers import read_run_table

ROOT = Path(__file__).resolve().parents[2]
NAV = 250e6
MC = dict(kind="montecarlo", model="student_t", estimator="ledoit_wolf", n_scenarios=3000, horizon_days=10,
          window={"end": "2018-12-31", "lookback_days": 750})
VIEWS = [{"of": "IR.USD.10Y", "mean": "+20bp"}, {"of": "EQ.SPX", "vol": "x1.2"},
         {"of": "pnl", "mean": "-200k"}, {"of": "pnl", "cvar": "x1.15", "confidence": 0.99}]


def _batch(tmp_path: Path, scenarios: list, stream="auto") -> Path:
    spec = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    for section in ("liquidity", "factor_model", "optimise", "monitoring", "limits"):
        spec.pop(section, None)
    spec["book"] = str(ROOT / "examples" / "demo_book.csv")
    spec["nav"] = NAV
    spec["scenarios"] = scenarios
    spec["execution"] = {"stream": stream}
    p = tmp_path / "batch.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("views")
    p = _batch(tmp, [dict(MC, name="viewed", views=VIEWS)])
    res = run_batch(p, tmp / "out", serial=True)
    return res, tmp / "out"


def test_the_posterior_meets_every_view_on_the_run_tables(run):
    _, out = run
    s = read_run_table(out, "scenarios")
    v = read_run_table(out, "views").set_index("view")
    viewed = s[s["family"] == "viewed"]
    w = viewed["weight"].to_numpy()
    assert w.sum() == pytest.approx(1.0, abs=1e-12) and w.min() >= 0 and np.ptp(w) > 0
    assert v["holds"].all() and len(v) == 4
    # the P&L mean view, recomputed from the scenarios table's P&L and weights
    assert float(w @ viewed["pnl"].to_numpy()) == pytest.approx(-200_000, rel=1e-6)
    # the CVaR view's posterior is the CVaR the run reports for the family
    rm = read_run_table(out, "risk_metrics")
    cvar99 = rm[(rm["family"] == "viewed") & (rm["metric"] == "cvar") & (rm["confidence"] == 0.99)]["value"].iloc[0]
    row = v.loc[[x for x in v.index if x.startswith("cvar(pnl")][0]]
    assert cvar99 == pytest.approx(row["posterior"], rel=1e-9) and row["posterior"] == pytest.approx(1.15 * row["prior"], rel=1e-6)
    # the prior is equal weights: CVaR99 of 3,000 scenarios is the mean loss of the worst 30
    assert row["prior"] == pytest.approx(-np.sort(viewed["pnl"].to_numpy())[:30].mean(), rel=1e-9)
    # the effective number of scenarios, recomputed from the weights
    eff = float(np.exp(-np.sum(w[w > 0] * np.log(w[w > 0]))))
    assert v["effective_scenarios"].iloc[0] == pytest.approx(eff, rel=1e-9) and eff < 3000
    assert v["effective_scenarios_prior"].iloc[0] == pytest.approx(3000, rel=1e-9)


def test_the_weighted_var_uses_the_posterior(run):
    """VaR of the viewed family, from the scenarios table's P&L and weights (docs/schema.md's definition:
    the smallest loss whose cumulative probability from the worst reaches 1 - confidence)."""
    _, out = run
    s = read_run_table(out, "scenarios")
    viewed = s[s["family"] == "viewed"].sort_values("pnl")
    cum = viewed["weight"].cumsum().to_numpy()
    rm = read_run_table(out, "risk_metrics")
    for a in (0.95, 0.99):
        var = rm[(rm["family"] == "viewed") & (rm["metric"] == "var") & (rm["confidence"] == a)]["value"].iloc[0]
        k = int(np.searchsorted(cum, 1 - a - 1e-12))
        assert var == pytest.approx(-viewed["pnl"].to_numpy()[k], rel=1e-9)


def test_terminal_and_report_show_the_views(run):
    from rich.console import Console

    _, out = run
    buf = io.StringIO()
    reports.print_summary(out, console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert "Views by entropy pooling" in text and "mean(IR.USD.10Y) == +20bp" in text and "of 3,000" in text
    # prior and posterior in the view's units: a rate's mean move in bp
    line = next(x for x in text.splitlines() if "mean(IR.USD.10Y) == +20bp" in x)
    assert line.split("│")[4].strip() == "+20.0bp", line
    html = reports.render_report(out)
    assert '<section id="views">' in html and "cvar(pnl, confidence=0.99) == x1.15" in html
    assert ">+20.0bp</td>" in html  # the posterior of the rate view, in bp as in the terminal


def test_views_cannot_stream(tmp_path):
    p = _batch(tmp_path, [dict(MC, name="viewed", views=VIEWS[:1])], stream=True)
    res = CliRunner().invoke(main, ["validate", str(p), "--allow-outside-paths"])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "true cannot run a family with views (family 'viewed')" in lines[0], res.output


@pytest.mark.parametrize("views, match", [
    ([{"of": "IR.USD.10Y", "mean": "+20bp", "op": ">="}, {"of": "IR.USD.10Y", "mean": "+10bp", "op": "<="}],
     r"scenario family 'viewed'.*views\[0\].*views\[1\]|scenario family 'viewed'.*contradict"),
    ([{"of": "EQ.NOPE", "mean": "+1%"}], r"scenario family 'viewed'.*EQ\.NOPE"),
    ([{"of": "IR.USD.10Y", "mean": "+900bp"}], r"scenario family 'viewed'.*views\[0\]"),
])
def test_bad_views_are_one_line_and_exit_2(tmp_path, views, match):
    p = _batch(tmp_path, [dict(MC, name="viewed", n_scenarios=500, views=views)])
    res = CliRunner().invoke(main, ["validate", str(p), "--allow-outside-paths"])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert re.search(match, lines[0]), lines[0]
