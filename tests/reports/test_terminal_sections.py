"""The terminal summary shows each section's result in brief where the run has its table."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from stressgrid import reports
from stressgrid.reports._terminal import TERMINAL_SECTION_ROWS, money

TITLES = ("Liquidity-adjusted risk", "Factor exposures by", "Re-optimised under each family", "forecasters: champion",
          "Regime view")


def _printed(run) -> str:
    buf = io.StringIO()
    reports.print_summary(run, Console(file=buf, width=250, highlight=False))
    return buf.getvalue()


def test_each_section_is_summarised_with_the_numbers_of_its_table(full_run_src):
    out = _printed(full_run_src)
    for title in TITLES:
        assert title in out, title
    ro = pd.read_parquet(full_run_src / "reoptimisation.parquet")
    for _, r in ro.iterrows():
        row = next(line for line in out.splitlines() if r["family"] in line and money(r["cvar_after"]) in line)
        assert money(r["cvar_before"]) in row and f"{r['turnover']:.1%}" in row
    la = pd.read_parquet(full_run_src / "la_risk.parquet")
    top = la[la["alpha"] == la["alpha"].max()]
    assert all(money(v) in out for v in top["la_cvar"].head(TERMINAL_SECTION_ROWS))
    fx = pd.read_parquet(full_run_src / "factor_exposures.parquet")
    first = fx[(fx["name"] == fx["name"].iloc[0]) & (fx["method"] == fx["method"].iloc[0])]
    row = next(line for line in out.splitlines() if line.strip("│ ").startswith(str(fx["name"].iloc[0])))
    assert all(f"{v:.3f}" in row for v in first["loading"])  # one method's loadings, not an average over methods
    assert "champion ewma on qlike" in out
    assert "rule vix_above_30 fired: de-risk 20%" in out and "rule drawdown_5pct fired: alert" in out
    assert "+0.30" in out and "-0.40" in out  # the regime view's correlations


def test_a_run_without_the_sections_prints_none_of_them(linear_run_src):
    out = _printed(linear_run_src)
    assert not any(title in out for title in TITLES)
    assert "Risk by scenario family" in out
