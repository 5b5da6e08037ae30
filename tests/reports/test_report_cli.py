"""The report commands through the stressgrid command line, and the terminal summary."""

from __future__ import annotations

import io
import json

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid import reports
from stressgrid.core.errors import ConfigError, DataError, InfeasibleError, TaskError


@pytest.fixture(scope="module")
def main():
    from stressgrid.cli import main as group

    return group


def _invoke(main, *args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _limits(tmp_path, body: str):
    f = tmp_path / "limits.yaml"
    f.write_text(body)
    return f


def test_every_command_has_help(main):
    for name in ("report", "store", "runs", "compare"):
        r = _invoke(main, name, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output and len(r.output) > 200, name


def test_breach_exit_code_is_distinct():
    codes = {ConfigError.exit_code, DataError.exit_code, InfeasibleError.exit_code, TaskError.exit_code, 0, 1, 130}
    assert reports.BREACH_EXIT_CODE not in codes


def test_report_with_a_breach_and_fail_on_breach_exits_with_the_breach_code(main, linear_run, tmp_path):
    f = _limits(tmp_path, "nav: 500_000_000\nlimits:\n  - {metric: cvar, confidence: 0.99, max: 5%}\n")
    r = _invoke(main, "report", linear_run, "--limits", f, "--fail-on-breach")
    assert r.exit_code == reports.BREACH_EXIT_CODE
    rm = pd.read_parquet(linear_run / "risk_metrics.parquet")
    cvar = rm[(rm.metric == "cvar") & (rm.confidence == 0.99)].set_index("family")["value"] / 5e8
    n = int((cvar > 0.05).sum())
    assert n == 1  # crisis CVaR99 69.2m = 13.8% of NAV; hist_10d 20.0m = 4.0%
    assert f"breach: {n} of 2 limit checks breached" in r.stderr
    assert "Limit breaches: 1 of 2 checks" in r.stdout and "BREACH" in r.stdout
    assert f"report: {linear_run / 'report.html'}" in r.stdout
    assert (linear_run / "report.html").is_file() and (linear_run / "breaches.parquet").is_file()
    # without --fail-on-breach the same breach exits 0
    assert _invoke(main, "report", linear_run, "--limits", f, "-q").exit_code == 0


def test_report_within_limits_exits_zero(main, linear_run, tmp_path):
    f = _limits(tmp_path, "nav: 500_000_000\nlimits:\n  - {metric: worst_loss, max: 20%}\n")
    r = _invoke(main, "report", linear_run, "--limits", f, "--fail-on-breach", "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert "limits: 2 checks, no breach" in r.stdout and (tmp_path / "r.html").is_file()


def test_report_errors_are_one_line_with_the_error_code(main, linear_run, tmp_path):
    r = _invoke(main, "report", tmp_path / "nowhere")
    assert r.exit_code == 2 and r.stderr.startswith("error: run directory") and "Traceback" not in r.output
    r = _invoke(main, "report", linear_run, "--fail-on-breach")
    assert r.exit_code == 2 and "--fail-on-breach: no limits to check" in r.stderr
    bad = _limits(tmp_path, "limits:\n  - {metric: cvar, confidence: 0.99, max: 8%, scope: 'desk:x'}\n")
    r = _invoke(main, "report", linear_run, "--limits", bad)
    assert r.exit_code == 2 and "field 'limits[0].scope': scope must be book" in r.stderr


def test_store_runs_and_compare_commands(main, linear_run, tmp_path):
    store = tmp_path / "store"
    r = _invoke(main, "store", linear_run, store)
    assert r.exit_code == 0 and r.stdout.startswith("stored: ")
    r = _invoke(main, "runs", store)
    assert r.exit_code == 0 and "linear" in r.stdout and "2512" in r.stdout
    row = next(x for x in r.stdout.splitlines() if "linear" in x)
    listed = reports.list_runs(store).iloc[0]
    assert f"{listed['stressed_var'] / 1e6:,.2f}m" in row and " 99% " in row  # the figure and its level
    assert _invoke(main, "store", linear_run, store).exit_code == 2
    r = _invoke(main, "runs", tmp_path / "missing")
    assert r.exit_code == 2 and "not found" in r.stderr

    same = _invoke(main, "compare", linear_run, linear_run)
    assert same.exit_code == 0 and "risk metrics: no change" in same.stdout and "positions: no change" in same.stdout
    assert "CVaR contributions: no change" in same.stdout
    b = tmp_path / "b"
    b.mkdir()
    for p in linear_run.iterdir():
        if p.is_file():
            (b / p.name).write_bytes(p.read_bytes())
    rm = pd.read_parquet(b / "risk_metrics.parquet")
    rm.loc[(rm.metric == "cvar") & (rm.confidence == 0.99) & (rm.family == "crisis"), "value"] *= 1.1
    rm.to_parquet(b / "risk_metrics.parquet", index=False)
    ct = pd.read_parquet(b / "contributions.parquet")
    one = (ct.level == "sleeve") & (ct.family == "crisis") & (ct.confidence == 0.99)
    sleeve = ct.loc[one, "group_name"].iloc[0]
    ct.loc[one & (ct.group_name == sleeve), "cvar_contribution"] *= 1.25
    ct.to_parquet(b / "contributions.parquet", index=False)
    r = _invoke(main, "compare", linear_run, b)
    assert r.exit_code == 0 and "+10.0%" in r.stdout and "crisis" in r.stdout
    # the one contribution that changed, and only it
    rows = [x for x in r.stdout.splitlines() if "+25.0%" in x]
    assert len(rows) == 1 and sleeve in rows[0] and "sleeve" in rows[0] and "CVaR contributions by asset class" in r.stdout
    shown = [x for x in _invoke(main, "compare", linear_run, b, "--all").stdout.splitlines() if " sleeve " in x]
    assert len(shown) == (ct.level == "sleeve").sum()  # every contribution
    # mean is gains positive in risk_metrics: the title says so
    assert "(losses positive, but mean: gains positive)" in " ".join(r.stdout.split())


def test_summary_shows_each_familys_var_recomputed_from_the_scenarios(linear_run_src):
    """The summary prints VaR and CVaR per family; the figures are checked against the lower quantile of
    the scenario losses and Rockafellar-Uryasev's CVaR computed here from scenarios.parquet."""
    from rich.console import Console

    buf = io.StringIO()
    reports.print_summary(linear_run_src, Console(file=buf, width=200, highlight=False))
    out = buf.getvalue()
    sc = pd.read_parquet(linear_run_src / "scenarios.parquet")
    for fam, g in sc.groupby("family"):
        loss = -g["pnl"].to_numpy()
        var = np.quantile(loss, 0.99, method="inverted_cdf")
        cvar = var + np.mean(np.maximum(loss - var, 0)) / 0.01
        line = next(x for x in out.splitlines() if x.strip("│ ").startswith(fam))
        assert f"{var / 1e6:,.2f}m" in line and f"{cvar / 1e6:,.2f}m" in line and str(len(g)) in line
    assert "Scenario P&L by asset class" in out and "gfc_2008" in out
    assert "Full revaluation vs delta-gamma-vega approximation," in out  # of the crisis family's worst scenario
    assert "gfc_2008 (USD)" in out
    assert f"outputs in {linear_run_src}/" in out


def test_finish_run_returns_the_breach_code_after_writing_everything(linear_run, tmp_path):
    from rich.console import Console

    lim = reports.parse_limits({"nav": 1e8, "limits": [{"metric": "worst_loss", "max": "1%"}]})
    code = reports.finish_run(linear_run, Console(file=io.StringIO()), lim, fail_on_breach=True)
    assert code == reports.BREACH_EXIT_CODE
    assert (linear_run / "report.html").is_file()
    assert pd.read_parquet(linear_run / "breaches.parquet")["breached"].all()


def test_a_limits_file_whose_nav_is_not_the_runs_is_said(linear_run):
    from rich.console import Console

    m = json.loads((linear_run / "manifest.json").read_text())
    m["nav"] = 2.5e8
    (linear_run / "manifest.json").write_text(json.dumps(m))
    lim = {"limits": [{"metric": "worst_loss", "max": "50%"}]}
    for nav, said in ((5e8, True), (2.5e8, False), (None, False)):
        buf = io.StringIO()
        reports.finish_run(linear_run, Console(file=buf, width=200), reports.parse_limits({**lim, **({"nav": nav} if nav else {})}),
                           html=False)
        note = "the limits file's nav (500.00m) is not the run's (250.00m)"
        assert (note in buf.getvalue()) == said, buf.getvalue()


def test_output_to_a_file_takes_the_width_columns_gives(monkeypatch):
    # under pytest standard output is not a terminal: the width is COLUMNS, else 140
    monkeypatch.setenv("COLUMNS", "200")
    assert reports.terminal_console().width == 200
    monkeypatch.setenv("COLUMNS", "x")
    assert reports.terminal_console().width == 140
    monkeypatch.delenv("COLUMNS")
    assert reports.terminal_console().width == 140 and reports.terminal_console(quiet=True).quiet


def test_compare_writes_a_small_figure_so_that_its_change_adds_up():
    # 0.2051m and 0.1949m rounded to 0.21m and 0.19m beside a change of -0.01m; in thousands they add up
    from stressgrid.reports._finish import _row_money

    fmt = _row_money({"value_a": 205_100.0, "value_b": 194_900.0})
    assert [fmt(v) for v in (205_100.0, 194_900.0, -10_200.0)] == ["205.1k", "194.9k", "-10.2k"]
    fmt = _row_money({"value_a": 2.5e6, "value_b": float("nan")})
    assert [fmt(v) for v in (2.5e6, float("nan"))] == ["2.50m", ""]
