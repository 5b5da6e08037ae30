"""The report in a real browser: headless Chromium (Debian's chromium package) loads it offline, lays out
every chart with a non-zero size and fetches nothing; no two text labels of a chart overlap and no legend
lies over a plotting area; the capacity headline is rounded; a full-page screenshot is not blank.

The report is that of the run with every optional table, its capacity curve on the default grid of AUM
multiples (20 points from 0.25x to 20x, the grid whose tick labels used to overprint).

Skipped only when ``/usr/bin/chromium`` is absent and ``STRESSGRID_REQUIRE_CHROMIUM`` is not set (CI sets
it after installing chromium, so it cannot skip there)."""

from __future__ import annotations

import json
import os
import re

import pytest
from report_helpers import CHROMIUM, DEFAULT_AUM_MULTIPLES, LIMITS, _write, chromium, copy_run, synthetic_capacity

from stressgrid import reports

pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    if os.environ.get("STRESSGRID_REQUIRE_CHROMIUM"):
        raise RuntimeError("STRESSGRID_REQUIRE_CHROMIUM is set but /usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("headless Chromium (/usr/bin/chromium) is not installed", allow_module_level=True)

# runs in the page after it loaded: the size of each chart, the images, and every resource the page fetched
PROBE = """<script>
// the boxes, on the page, of a chart's text labels (matplotlib's text_N groups: tick labels, titles, axis
// labels, annotations, legend entries), of its legends and of its plotting areas (each axes' background)
function box(el) { var r = el.getBoundingClientRect(); return {id: el.id, x: r.left, y: r.top, w: r.width, h: r.height}; }
function layout() {
  return Array.from(document.querySelectorAll('figure.chart')).map(function (f) {
    var gs = Array.from(f.querySelectorAll('svg g[id]'));
    var pick = function (re) { return gs.filter(function (g) { return re.test(g.id); }); };
    var areas = pick(/-axes_[0-9]+$/).map(function (a) { return a.querySelector(':scope > g[id*="-patch_"]'); })
                .filter(function (p) { return p; }).map(box);
    return {id: f.id, texts: pick(/-text_[0-9]+$/).map(box), legends: pick(/-legend_[0-9]+$/).map(box), areas: areas};
  });
}
window.addEventListener('load', function () {
  var figs = Array.from(document.querySelectorAll('figure.chart')).map(function (f) {
    var svg = f.querySelector('svg'), r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    var box = svg ? svg.getBBox() : {width: 0, height: 0};
    return {id: f.id, width: r.width, height: r.height, drawn_width: box.width, drawn_height: box.height,
            paths: svg ? svg.querySelectorAll('path').length : 0};
  });
  var imgs = Array.from(document.images).map(function (i) { return {src: i.src.slice(0, 40), w: i.naturalWidth}; });
  var out = {figures: figs, images: imgs, resources: performance.getEntriesByType('resource').map(function (e) { return e.name; }),
             height: document.documentElement.scrollHeight, sections: document.querySelectorAll('section').length,
             layout: layout(), headline: Array.from(document.querySelectorAll('.card')).map(function (c) {
               return {id: c.id, text: c.querySelector('.v').textContent,
                       lines: Array.from(c.querySelectorAll('.d')).map(function (d) { return d.textContent; })};
             })};
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

CHARTS = {"chart-scenario-pnl", "chart-distribution", "chart-contributions", "chart-drawdown-paths", "chart-capacity",
          "chart-reoptimisation"}


@pytest.fixture(scope="module")
def report(full_run_src, tmp_path_factory):
    from stressgrid import reports as rp

    run = copy_run(full_run_src, tmp_path_factory.mktemp("browser") / "run")
    _write(synthetic_capacity(rp.open_run(run).table("positions"), DEFAULT_AUM_MULTIPLES), run, "capacity")
    # days = ceil(3 m) in the stress regime: 1 day up to 0.3148x, the second multiple of the grid
    limits = {**LIMITS, "limits": LIMITS["limits"][:2] + [{"metric": "days_to_liquidate", "max": 1}]}
    return rp.write_report(run, limits=rp.parse_limits(limits))


def _overlap(a: dict, b: dict, tol: float = 0.5) -> bool:
    """Whether two boxes intersect by more than ``tol`` pixels in both directions."""
    dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return dx > tol and dy > tol


def _collisions(boxes: list[dict], others: list[dict] | None = None) -> list[tuple[str, str]]:
    if others is None:
        return [(a["id"], b["id"]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if _overlap(a, b)]
    return [(a["id"], b["id"]) for a in boxes for b in others if _overlap(a, b)]


def test_the_overlap_check_can_fail():
    a = {"id": "a", "x": 0, "y": 0, "w": 10, "h": 10}
    assert _collisions([a, {**a, "id": "b", "x": 9}]) == [("a", "b")]
    assert _collisions([a, {**a, "id": "b", "x": 10.2}]) == []  # touching is not overlapping
    assert _collisions([a], [{**a, "id": "b", "y": 5}]) == [("a", "b")]


def _probe(page, html: str, tmp_path) -> dict:
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(page.as_uri(), "--dump-dom", "--window-size=1400,2000", user_data_dir=tmp_path / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def test_the_probe_sees_a_fetch_and_a_broken_image(tmp_path):
    """The check below can fail: a page that loads a stylesheet from a URL and an image that is missing."""
    out = _probe(tmp_path / "bad.html", '<html><body><link rel="stylesheet" href="https://cdn.invalid/a.css">'
                 '<img src="missing.png"></body></html>', tmp_path)
    assert out["resources"] == ["https://cdn.invalid/a.css"]
    assert [i["w"] for i in out["images"]] == [0]


def test_chromium_renders_every_chart_and_fetches_nothing(report, tmp_path):
    out = _probe(tmp_path / "probe.html", report.read_text(encoding="utf-8"), tmp_path)
    assert out["resources"] == []  # nothing was fetched: no network, no file besides the page
    assert out["images"] == []  # charts are inline SVG
    assert {f["id"] for f in out["figures"]} == CHARTS
    for f in out["figures"]:
        assert f["width"] > 1000 and f["height"] > 100, f  # laid out at the page's width
        assert f["drawn_width"] > 100 and f["drawn_height"] > 120 and f["paths"] > 20, f  # and something is drawn
    # every section but those of the reverse stress tests (test_the_reverse_stress_chart_has_no_overlapping_labels)
    # and of views (tests/grid/test_views_run.py); the caveats open with the coverage line
    assert out["sections"] == len(reports.REPORT_SECTIONS) - 2


def test_no_two_labels_of_a_chart_overlap_and_no_legend_covers_a_plot(report, tmp_path):
    """In every chart, as Chromium lays it out: the boxes of the text labels are pairwise disjoint (tick
    labels of the capacity panels used to overprint), and a legend lies outside every plotting area (the
    legends of the distribution and drawdown charts used to cover the data)."""
    out = _probe(tmp_path / "probe.html", report.read_text(encoding="utf-8"), tmp_path)
    charts = {c["id"]: c for c in out["layout"]}
    assert set(charts) == CHARTS
    problems = {}
    for cid, c in charts.items():
        texts = [t for t in c["texts"] if t["w"] > 0 and t["h"] > 0]
        assert len(texts) >= 6 and c["areas"], cid  # the probe found the labels and the plotting areas
        problems[cid] = {"labels": _collisions(texts), "legends over plots": _collisions(c["legends"], c["areas"])}
    assert {k: v for k, v in problems.items() if any(v.values())} == {}
    assert charts["chart-distribution"]["legends"] and charts["chart-drawdown-paths"]["legends"]


def test_the_capacity_headline_is_rounded_and_says_what_below_1x_means(report, tmp_path):
    out = _probe(tmp_path / "probe.html", report.read_text(encoding="utf-8"), tmp_path)
    cap = next(c for c in out["headline"] if c["id"] == "headline-capacity")
    assert cap["text"] == "0.31x AUM"  # the multiple 0.314849 of the grid, to two significant digits
    assert re.fullmatch(r"(below )?\d+(\.\d)?\d?x( AUM)?", cap["text"])
    assert any("below 1x" in line.lower() and "cannot be liquidated within" in line for line in cap["lines"]), cap


def test_chromium_screenshot_of_the_whole_report_is_not_blank(report, tmp_path):
    from PIL import Image

    png = tmp_path / "report.png"
    chromium(report.as_uri(), f"--screenshot={png}", "--window-size=1400,2000", "--hide-scrollbars",
             user_data_dir=tmp_path / "profile")
    img = Image.open(png).convert("RGB")
    assert img.size == (1400, 2000)
    # the headline, the risk table and the first chart: many colours, and ink across the page width
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200
    gray = img.convert("L").point(lambda v: 255 if v < 128 else 0)
    assert gray.getbbox() is not None and gray.getbbox()[2] - gray.getbbox()[0] > 900


def test_the_reverse_stress_chart_has_no_overlapping_labels(tmp_path):
    """A run with reverse stress tests (a short strangle and an index future, two losses and a bound): the
    section and its bar chart are laid out at the page's width, and no two labels overlap."""
    from pathlib import Path

    import pandas as pd
    import yaml

    from stressgrid.grid import run_batch

    root = Path(__file__).resolve().parents[2]
    book = pd.read_csv(root / "examples" / "demo_book.csv")
    book[(book["sleeve"] == "short_vol") | (book["id"] == "ES_H9")].to_csv(tmp_path / "book.csv", index=False)
    spec = yaml.safe_load((root / "examples" / "demo_batch.yaml").read_text())
    for section in ("liquidity", "factor_model", "optimise", "monitoring", "limits"):
        spec.pop(section, None)
    spec.update(book="book.csv", scenarios=[dict(kind="reverse", name="reverse", loss=["1%", "5m"],
                                                 within={"probability": 0.01}, window={"end": "2018-12-31"})])
    spec["market"].update(flat={}, max_unmodelled_share=1.0)
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(spec))
    run_batch(tmp_path / "batch.yaml", tmp_path / "run", serial=True)
    out = _probe(tmp_path / "probe.html", reports.render_report(tmp_path / "run"), tmp_path)
    fig = next(f for f in out["figures"] if f["id"] == "chart-reverse")
    assert fig["width"] > 1000 and fig["drawn_height"] > 120 and fig["paths"] > 20, fig
    chart = next(c for c in out["layout"] if c["id"] == "chart-reverse")
    texts = [t for t in chart["texts"] if t["w"] > 0 and t["h"] > 0]
    assert len(texts) >= 6 and len(chart["areas"]) == 3  # three solutions, three panels
    assert _collisions(texts) == []
