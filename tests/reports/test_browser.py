"""The report in a real browser: headless Chromium (Debian's chromium package) loads it offline, lays out
every chart with a non-zero size and fetches nothing; a full-page screenshot is not blank.

Skipped only when ``/usr/bin/chromium`` is absent and ``STRESSGRID_REQUIRE_CHROMIUM`` is not set (CI sets
it after installing chromium, so it cannot skip there)."""

from __future__ import annotations

import json
import os
import re

import pytest
from report_helpers import CHROMIUM, chromium

from stressgrid import reports

pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    if os.environ.get("STRESSGRID_REQUIRE_CHROMIUM"):
        raise RuntimeError("STRESSGRID_REQUIRE_CHROMIUM is set but /usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("headless Chromium (/usr/bin/chromium) is not installed", allow_module_level=True)

# runs in the page after it loaded: the size of each chart, the images, and every resource the page fetched
PROBE = """<script>
window.addEventListener('load', function () {
  var figs = Array.from(document.querySelectorAll('figure.chart')).map(function (f) {
    var svg = f.querySelector('svg'), r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    var box = svg ? svg.getBBox() : {width: 0, height: 0};
    return {id: f.id, width: r.width, height: r.height, drawn_width: box.width, drawn_height: box.height,
            paths: svg ? svg.querySelectorAll('path').length : 0};
  });
  var imgs = Array.from(document.images).map(function (i) { return {src: i.src.slice(0, 40), w: i.naturalWidth}; });
  var out = {figures: figs, images: imgs, resources: performance.getEntriesByType('resource').map(function (e) { return e.name; }),
             height: document.documentElement.scrollHeight, sections: document.querySelectorAll('section').length};
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

CHARTS = {"chart-scenario-pnl", "chart-distribution", "chart-contributions", "chart-drawdown-paths", "chart-capacity",
          "chart-reoptimisation"}


@pytest.fixture(scope="module")
def report(full_report_src):
    return full_report_src


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
    assert out["sections"] == len(reports.REPORT_SECTIONS)  # every section; the caveats open with the coverage line


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
