"""The HTML report: sections, charts, self-containment, escaping, and the headline figures."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from stressgrid import reports
from report_helpers import LIMITS

CHARTS = ("scenario-pnl", "distribution", "contributions", "drawdown-paths", "capacity", "reoptimisation")
@pytest.fixture(scope="module")
def full_report(full_report_src):
    return full_report_src.parent, full_report_src, full_report_src.read_text(encoding="utf-8")


def _svgs(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, flags=re.S)


def test_every_section_and_chart_of_a_full_run(full_report):
    run, path, text = full_report
    assert path == run / "report.html"
    for sid in reports.REPORT_SECTIONS:
        if sid == "caveats":  # the linear run has none (test_caveats_are_listed)
            continue
        if sid in ("reverse", "views"):  # runs with such families: tests/grid/test_reverse_run.py, test_views_run.py
            continue
        assert f'<section id="{sid}">' in text, sid
        assert f'href="#{sid}"' in text  # listed in the navigation
    for cid in CHARTS:
        m = re.search(rf'<figure class="chart" id="chart-{cid}"><svg\b', text)
        assert m, cid
    assert len(_svgs(text)) == len(CHARTS)
    for name in reports.MONITORING_TABLES:
        assert f'id="monitoring-{name}"' in text
    assert "<h3>Parameter sweeps</h3>" in text
    for key in ("stressed_var", "worst_scenario", "la_cvar", "la_drawdown", "days_to_liquidate", "capacity", "breaches"):
        assert f'id="headline-{key}"' in text


def test_the_report_fetches_nothing(full_report):
    _, _, text = full_report
    refs = re.findall(r'\b(?:src|href|xlink:href)\s*=\s*"([^"]*)"', text)
    assert refs and all(r.startswith("#") for r in refs), [r for r in refs if not r.startswith("#")]
    for tag in ("<script", "<link", "<iframe", "<img", "@import", "url(http", "url('http", 'url("http'):
        assert tag not in text.lower()
    # the only URLs are XML namespace names, which are never fetched
    no_ns = re.sub(r'\sxmlns(?::\w+)?="[^"]*"', "", text)
    assert "http://" not in no_ns and "https://" not in no_ns


def test_charts_are_well_formed_svg_with_unique_ids(full_report):
    _, _, text = full_report
    ids = re.findall(r'\bid="([^"]+)"', text)
    dup = [i for i, n in Counter(ids).items() if n > 1]
    assert not dup
    for svg in _svgs(text):
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
        assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 20  # drawn, not empty
        for ref in re.findall(r'"#([^"]+)"', svg) + re.findall(r"url\(#([^)]+)\)", svg):
            assert f'id="{ref}"' in svg  # every internal reference resolves inside its own chart


def test_a_run_without_optional_tables_gets_only_its_sections(linear_run):
    text = reports.write_report(linear_run, out=linear_run / "r" / "out.html").read_text()
    present = set(re.findall(r'<section id="([^"]+)">', text))
    # the caveats open with the coverage line, which every run has
    # its rolling family is revalued at its horizon (a linear book: time 0, shown)
    assert present == {"headline", "caveats", "risk", "scenario-pnl", "distribution", "contributions", "explained", "sensitivity", "run"}
    assert "coverage of the " in text
    assert 'id="chart-capacity"' not in text and 'id="headline-breaches"' not in text


def test_the_report_uses_the_runs_breaches_table_when_no_limits_are_given(linear_run):
    lim = reports.parse_limits({"nav": 5e8, "limits": LIMITS["limits"][:2]})
    table = reports.evaluate_limits(linear_run, lim)
    reports.write_breaches(table, linear_run)
    text = reports.write_report(linear_run).read_text()
    assert '<section id="breaches">' in text
    n = int(table["breached"].sum())
    assert n >= 1
    assert text.count('<tr class="breach">') == n
    assert f"{n} of {len(table)} checks breached" in text


def test_caveats_are_listed(linear_run):
    m = json.loads((linear_run / "manifest.json").read_text())
    sizes = pd.read_parquet(linear_run / "scenarios.parquet").groupby("family").size()
    m["uncovered_factors"] = {f: {"CR.X": int(n)} for f, n in sizes.items()} | {"crisis": {"CR.X": 3, "EQ.AMD": 1}}
    m["filled_factors"] = {"crisis": {"EQ.SPX": 1, "EQ.AAPL": 2}}
    (linear_run / "manifest.json").write_text(json.dumps(m))
    text = reports.render_report(linear_run)
    assert '<section id="caveats">' in text
    assert "1 factor has no history and is held flat in every scenario (market overrides): CR.X." in text
    assert "family crisis: no data, held flat, for EQ.AMD (1 of 3)." in text
    assert "family crisis: 2 factors calibrated from public facts or propagated, not replayed: EQ.AAPL, EQ.SPX." in text


def test_names_are_escaped(linear_run):
    m = json.loads((linear_run / "manifest.json").read_text())
    m["batch"]["name"] = "<script>alert(1)</script>"
    (linear_run / "manifest.json").write_text(json.dumps(m))
    text = reports.render_report(linear_run)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def _lower_quantile(loss: np.ndarray, a: float) -> float:
    return float(np.quantile(loss, a, method="inverted_cdf"))


def test_headline_figures_against_the_scenarios_table(linear_run_src):
    """Stressed VaR: the largest 99% VaR over the families, recomputed from the scenario P&L as the lower
    0.99-quantile of the loss (equal weights); the worst scenario: the smallest P&L of the run."""
    sc = pd.read_parquet(linear_run_src / "scenarios.parquet")
    vars_ = {f: _lower_quantile(-g["pnl"].to_numpy(), 0.99) for f, g in sc.groupby("family")}
    h = {x["key"]: x for x in reports.headline(linear_run_src)}
    fam = max(vars_, key=vars_.get)
    assert h["stressed_var"]["value"] == pytest.approx(vars_[fam], rel=1e-12)
    assert fam in h["stressed_var"]["detail"] and h["stressed_var"]["label"] == "Stressed VaR 99%"
    worst = sc.loc[sc["pnl"].idxmin()]
    assert h["worst_scenario"]["value"] == pytest.approx(-worst["pnl"], rel=1e-12)
    assert h["worst_scenario"]["detail"] == f"{worst['scenario']} ({worst['family']})"
    assert set(h) == {"stressed_var", "worst_scenario"}


def test_the_stressed_var_headline_leaves_out_designed_families(linear_run):
    # a reverse stress test's VaR is the loss it was asked for: it must not become the run's stressed VaR
    sc = pd.read_parquet(linear_run / "scenarios.parquet")
    rm = pd.read_parquet(linear_run / "risk_metrics.parquet")
    h = {x["key"]: x for x in reports.headline(linear_run)}
    top = h["stressed_var"]["detail"].split(": ")[1]
    sc.loc[sc["family"] == top, "kind"] = "reverse"
    sc.to_parquet(linear_run / "scenarios.parquet")
    # as a run written before the manifest listed its designed families: the scenarios' kinds are read
    m = json.loads((linear_run / "manifest.json").read_text())
    assert m.pop("designed_families") == []
    (linear_run / "manifest.json").write_text(json.dumps(m))
    rest = rm[(rm["metric"] == "var") & np.isclose(rm["confidence"], 0.99) & (rm["family"] != top)]
    h2 = {x["key"]: x for x in reports.headline(linear_run)}
    assert h2["stressed_var"]["value"] == rest["value"].max() < h["stressed_var"]["value"]
    assert top not in h2["stressed_var"]["detail"]


@pytest.mark.parametrize("limits, text, value", [
    # synthetic capacity (report_helpers): days = ceil(1.5 m s), cost = 8 sqrt(m) s bp, s = 1 (base) or 2 (stress)
    ([{"metric": "days_to_liquidate", "family": "base", "max": 5}], "2x AUM", 2.0),  # base: 6 days at 4x
    ([{"metric": "days_to_liquidate", "max": 5}], "1x AUM", 1.0),  # stress: 6 days at 2x
    ([{"metric": "cost_bps", "family": "base", "max": 20}], "4x AUM", 4.0),  # base: 22.6bp at 8x
    ([{"metric": "cost_bps", "max": 20}, {"metric": "days_to_liquidate", "family": "base", "max": 5}], "1x AUM", 1.0),
    ([{"metric": "days_to_liquidate", "max": 1}], "below 0.5x", 0.0),  # stress: 2 days at 0.5x
    ([{"metric": "days_to_liquidate", "max": 100}], "8x AUM", 8.0),
])
def test_capacity_is_the_largest_multiple_before_a_limit_breaks(full_run_src, limits, text, value):
    parsed = reports.parse_limits({"limits": limits})
    h = {x["key"]: x for x in reports.headline(full_run_src, limits=parsed)}
    assert h["capacity"]["text"] == text and h["capacity"]["value"] == value
    # the report of a run whose limits file is not given again (stressgrid report RUN_DIR) reads the limits
    # from the evaluated breaches table and gives the same capacity
    again = {x["key"]: x for x in reports.headline(full_run_src, breaches=reports.evaluate_limits(full_run_src, parsed))}
    assert {k: again["capacity"][k] for k in ("text", "value", "detail")} == {k: h["capacity"][k] for k in ("text", "value", "detail")}


def test_liquidity_headline_figures(full_run_src):
    h = {x["key"]: x for x in reports.headline(full_run_src)}
    cap = pd.read_parquet(full_run_src / "capacity.parquet")
    one = cap[(cap.aum_multiple == 1.0) & (cap.level == "book")]
    assert h["days_to_liquidate"]["value"] == one["days_to_liquidate"].max() == 3
    la = pd.read_parquet(full_run_src / "la_risk.parquet")
    assert h["la_cvar"]["value"] == la.loc[la.alpha == 0.99, "la_cvar"].max()
    dd = pd.read_parquet(full_run_src / "la_drawdown.parquet")
    assert h["la_drawdown"]["value"] == dd["la_drawdown"].max()
    # the plain figure beside it is the same path's, and the largest plain one is named when it is another path's
    r, plain = dd.loc[dd["la_drawdown"].idxmax()], dd.loc[dd["drawdown"].idxmax()]
    assert f"this path traded at once and free: {r['drawdown'] / 1e6:,.2f}m" in h["la_drawdown"]["detail"]
    assert ("the largest so traded" in h["la_drawdown"]["detail"]) == (plain["scenario"] != r["scenario"])
    assert h["capacity"]["value"] is None and "no book liquidity limit" in h["capacity"]["detail"]


def test_scenario_bars_are_the_small_families_or_the_worst_twenty(linear_run_src, linear_run):
    d = reports.scenario_bar_data(reports.open_run(linear_run_src))
    sc = pd.read_parquet(linear_run_src / "scenarios.parquet")
    crisis = sc[sc.family == "crisis"]
    assert d["scenario"].tolist() == crisis["scenario"].tolist()
    np.testing.assert_array_equal(d["pnl"], crisis["pnl"])
    # with no small family, the 20 worst scenarios
    sc[sc.family != "crisis"].to_parquet(linear_run / "scenarios.parquet", index=False)
    d = reports.scenario_bar_data(reports.open_run(linear_run))
    assert d["pnl"].tolist() == sorted(sc[sc.family != "crisis"]["pnl"])[:20]


def test_a_missing_run_directory_is_a_data_error(tmp_path):
    from stressgrid.core import DataError

    with pytest.raises(DataError, match="not found"):
        reports.write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no manifest.json"):
        reports.write_report(tmp_path / "empty")


def test_many_families_get_a_vector_heat_map_of_contributions(linear_run):
    """Above MAX_BAR_FAMILIES families the contributions are a heat map, drawn as vector cells (no raster
    image inside the SVG), one annotated cell per family and group."""
    rm = pd.read_parquet(linear_run / "risk_metrics.parquet")
    ct = pd.read_parquet(linear_run / "contributions.parquet")
    n = reports.MAX_BAR_FAMILIES // 2 + 1  # copies of each of the 2 families
    pd.concat([rm.assign(family=rm["family"] + f"_{i}") for i in range(n)]).to_parquet(linear_run / "risk_metrics.parquet", index=False)
    pd.concat([ct.assign(family=ct["family"] + f"_{i}", cvar_contribution=ct["cvar_contribution"] * (i + 1)) for i in range(n)]
              ).to_parquet(linear_run / "contributions.parquet", index=False)
    assert len(reports.open_run(linear_run).families) > reports.MAX_BAR_FAMILIES
    text = reports.render_report(linear_run)
    fig = re.search(r'<figure class="chart" id="chart-contributions">(.*?)</figure>', text, flags=re.S).group(1)
    assert "<image" not in fig and "data:" not in fig
    # the CVaR column of the tables is the sum of the family's contributions (Euler): here (i + 1) x its CVaR
    cvar = rm[(rm.metric == "cvar") & (rm.confidence == 0.99)].set_index("family")["value"]
    for fam in ("crisis", "hist_10d"):
        section = text[text.index('<section id="contributions">'):text.index('<section id="sensitivity">')]
        row = re.search(rf"<td class=\"l\">{fam}_{n - 1}</td>(.*?)</tr>", section).group(1)
        assert row.endswith(f">{cvar[fam] * n / 1e6:,.2f}m</td>")


def test_counts_agree_with_their_nouns(linear_run):
    """One family, one check, one task: the singular ("in the 1 families" was written before)."""
    text = reports.render_report(linear_run)
    assert "every scenario in the 1 family of at most 40 scenarios" in text  # crisis is the only small family
    lim = reports.parse_limits({"nav": 5e8, "limits": [{"metric": "cvar", "confidence": 0.99, "family": "crisis", "max": "90%"}]})
    one = reports.render_report(linear_run, breaches=reports.evaluate_limits(linear_run, lim), limits=lim)
    assert "1 check within its limit." in one and "of 1 check<" in one
    assert not re.search(r"\b1 (families|checks|factors|positions|scenarios|tasks|workers)\b", text + one)
    assert reports.plural(1, "family") == "1 family" and reports.plural(2, "family") == "2 families"
    assert reports.plural(0, "check") == "0 checks" and reports.plural(3, "day") == "3 days"


@pytest.mark.parametrize("days, text, value", [
    # days = ceil(3 m) in the stress regime of the default grid (20 multiples from 0.25x to 20x)
    (1, "0.31x AUM", 0.3148492329), (2, "0.62x AUM", 0.6289129425), (5, "1.5x AUM", 1.5821259571), (30, "7.9x AUM", 7.9502259565),
])
def test_the_capacity_headline_has_two_significant_digits_rounded_down(full_run, days, text, value):
    """The multiples of the default grid are not round: the headline shows two significant digits, never
    more than the multiple (0.6289 -> 0.62x, 1.5821 -> 1.5x), and says what a multiple below 1x means."""
    from report_helpers import DEFAULT_AUM_MULTIPLES, _write, synthetic_capacity

    _write(synthetic_capacity(pd.read_parquet(full_run / "positions.parquet"), DEFAULT_AUM_MULTIPLES), full_run, "capacity")
    h = {x["key"]: x for x in reports.headline(full_run, limits=reports.parse_limits(
        {"limits": [{"metric": "days_to_liquidate", "max": days}]}))}
    assert h["capacity"]["text"] == text and h["capacity"]["value"] == pytest.approx(value, rel=1e-6)
    if value < 1:
        assert h["capacity"]["note"] == "Below 1x: the book as sized cannot be liquidated within these limits at that stress."
    else:
        assert "below 1x" in h["capacity"]["note"]
    html = reports.render_report(full_run, limits=reports.parse_limits({"limits": [{"metric": "days_to_liquidate", "max": days}]}))
    assert re.search(r'id="headline-capacity">.*?<div class="v">' + re.escape(text) + "</div>", html)


def _same_ids(svg: str) -> str:
    """The SVG with each chart's id prefix (its name and a per-process counter) made the same."""
    return re.sub(r'\b(scenario-pnl|distributions|contributions|drawdown-paths|capacity|reoptimisation)\d+-', r"\1-", svg)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.skipif(_cpus() < 2, reason="the report draws in one process on a machine with one CPU")
def test_charts_drawn_in_a_second_process_are_the_charts_drawn_here(full_run_src, monkeypatch):
    from stressgrid.reports import _charts, _html

    run = reports.RunDir(full_run_src)
    assert _html._Charts(run)._proc is None  # one distribution panel: quicker without a second process
    monkeypatch.setattr(_html, "CHILD_MIN_PANELS", 1)
    charts = _html._Charts(run)
    try:
        assert charts._proc is not None
        charts.draw_here()
        drawn = {n: charts(n) for n in _charts.IN_CHILD}
    finally:
        charts.close()
    assert set(charts._drawn) == set(_html.CHILD_CHARTS)  # those came from the second process
    for name in _charts.IN_CHILD:
        here = getattr(_charts, name)(run)
        assert here is not None and drawn[name] is not None, name
        assert _same_ids(drawn[name]) == _same_ids(here), name


@pytest.mark.skipif(_cpus() < 2, reason="the report draws in one process on a machine with one CPU")
def test_a_chart_the_second_process_does_not_deliver_is_drawn_here(full_run_src, monkeypatch):
    from stressgrid.reports import _charts, _html

    # the second process refuses chart_reverse (not one it draws) and exits with an error: nothing comes back
    monkeypatch.setattr(_html, "CHILD_CHARTS", ("chart_distributions", "chart_reverse"))
    monkeypatch.setattr(_html, "CHILD_MIN_PANELS", 1)
    run = reports.RunDir(full_run_src)
    charts = _html._Charts(run)
    try:
        svg = charts("chart_distributions")
    finally:
        charts.close()
    assert charts._drawn == {}
    assert _same_ids(svg) == _same_ids(_charts.chart_distributions(run))


@pytest.mark.parametrize("sent", ['[1, 2]', '{"chart_distributions": 3}', 'not json'])
def test_what_the_second_process_sends_that_is_not_charts_is_drawn_here(full_run_src, sent):
    from stressgrid.reports import _charts, _html

    class Sent:  # a finished second process that wrote ``sent``
        returncode = 0

        def communicate(self, timeout=None):
            return sent, None

        def poll(self):
            return 0

    run = reports.RunDir(full_run_src)
    charts = _html._Charts(run)
    charts._proc = Sent()
    svg = charts("chart_distributions")
    assert charts._drawn == {}
    assert _same_ids(svg) == _same_ids(_charts.chart_distributions(run))


def test_the_reoptimisation_table_shows_money_in_millions_and_returns_in_percent(full_run):
    # base_var read 6.565e+06 and the expected return -0.08301, with no unit
    ro = pd.read_parquet(full_run / "reoptimisation.parquet")
    ro["base_var_before"] = 6_565_432.0
    ro["expected_return_before"] = -0.08301
    ro.to_parquet(full_run / "reoptimisation.parquet")
    text = reports.render_report(full_run)
    part = text[text.index("Tail risk before and after"):]
    part = part[:part.index("</table>")]
    assert ">6.57m<" in part
    assert ">-8.30%<" in part
    assert "e+06" not in part


@pytest.mark.parametrize("p, shown", [(0.0592, "5.92%"), (0.0013, "0.13%"), (1e-4, "0.01%"), (7.1e-6, "0.00071%"),
                                      (3e-12, "3e-10%")])
def test_a_tail_probability_always_reads_as_a_percentage(p, shown):
    from stressgrid.reports._reverse import probability

    assert probability(p) == shown


def test_the_liquidity_tables_say_their_units(full_run_src):
    html = reports.render_report(full_run_src)
    assert "Liquidity-adjusted VaR and CVaR (millions USD, losses positive)" in html
    i = html.index("Liquidity-adjusted VaR and CVaR")
    table = html[i:html.index("</table>", i)]
    assert ">99%</td>" in table and ">0.99</td>" not in table  # the level as the rest of the report writes it


@pytest.mark.parametrize("x, shown", [(4862.5, "4.9k"), (500000.0, "500.0k"), (8.612e8, "861.20m"), (12.0, "12"), (None, "")])
def test_a_small_amount_is_not_written_as_zero_millions(x, shown):
    from stressgrid.reports._html import _amount

    assert _amount(x) == shown
