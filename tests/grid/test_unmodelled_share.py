"""The share of the book's gross exposure that rests on proxied or flat factors: measured per factor,
reported in the coverage table, and limited by ``market.max_unmodelled_share`` before any work."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid.cli import main
from stressgrid.core import load_history
from stressgrid.grid import load_batch, prepare_inputs

ROWS = {
    "ES_M7": "ES_M7,equity_future,EQ.SPX,400.0,50,USD,equity,trend,1500000.0,1.1,,,,,,,,,,,,",
    "AAPL_US": "AAPL_US,equity,EQ.AAPL,414600.0,1,USD,equity,value,120000000.0,1.5,,,,,,,,,,,,",
    "CDX": "CDX,cds,CR.CDX_IG,50000000.0,1,USD,credit,carry,5000000000.0,1.0,,,,0.01,,2022-06-20,0.4,,,,125,",
}
HEADER = ("id,type,underlying,quantity,multiplier,currency,asset_class,sleeve,adv,bid_ask_bps,strike,expiry,option_type,"
          "coupon,frequency,maturity,recovery,forward_rate,spread_factor,dividend_yield,constituents,description")


def _batch(d, rows, limit=None):
    (d / "book.csv").write_text("\n".join([HEADER] + [ROWS[r] for r in rows]) + "\n")
    cds = "CR.CDX_IG" in "".join(ROWS[r] for r in rows)
    market = "market:\n  as_of: 2017-03-29\n"
    if cds:
        market += "  overrides: {CR.CDX_IG: 0.0063}\n  flat: {CR.CDX_IG: no credit spread history in the bundle}\n"
    if limit is not None:
        market += f"  max_unmodelled_share: {limit}\n"
    p = d / "batch.yaml"
    p.write_text("name: share\nbook: book.csv\n" + market + textwrap.dedent("""\
        scenarios:
          - {kind: historical, name: crisis, events: [gfc_2008]}
        """))
    return p


def test_linear_positions_put_their_whole_exposure_on_their_underlying(tmp_path):
    """Two linear positions: each factor's share is the position's |quantity x multiplier x price| over
    the book's, from the prices in the history (no pricing code involved)."""
    b, digest = load_batch(_batch(tmp_path, ["ES_M7", "AAPL_US"]))
    inputs = prepare_inputs(b, digest)
    share = dict(zip(inputs.market.factors, inputs.exposure_share))
    px = load_history().levels.loc["2017-03-29", ["EQ.SPX", "EQ.AAPL"]]
    e = np.array([400 * 50 * px["EQ.SPX"], 414600 * px["EQ.AAPL"]])
    assert share["EQ.SPX"] == pytest.approx(e[0] / e.sum(), rel=1e-12)
    assert share["EQ.AAPL"] == pytest.approx(e[1] / e.sum(), rel=1e-12)
    assert sum(share.values()) == pytest.approx(1.0, rel=1e-12)


def test_a_flat_factor_over_the_limit_is_refused_before_any_work(tmp_path):
    b, digest = load_batch(_batch(tmp_path, ["ES_M7", "AAPL_US", "CDX"]))
    inputs = prepare_inputs(b, digest)
    share = dict(zip(inputs.market.factors, inputs.exposure_share))
    assert sum(share.values()) == pytest.approx(1.0, rel=1e-12)
    # the CDS's gross is its notional; the spread takes most of it, the USD curve the rest
    px = load_history().levels.loc["2017-03-29", ["EQ.SPX", "EQ.AAPL"]]
    cds = 50e6 / (50e6 + 400 * 50 * px["EQ.SPX"] + 414600 * px["EQ.AAPL"])
    usd = sum(v for f, v in share.items() if f.startswith("IR.USD."))
    assert 0.5 * cds < share["CR.CDX_IG"] < cds and share["CR.CDX_IG"] + usd == pytest.approx(cds, rel=1e-12)
    res = CliRunner().invoke(main, ["run", str(_batch(tmp_path, ["ES_M7", "AAPL_US", "CDX"], limit=0.05)),
                                    "--out", str(tmp_path / "out"), "--serial"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "field 'market.max_unmodelled_share'" in line, line
    assert re.search(r"\d+\.\d% of the book's gross exposure rests on proxied or flat factors, over the limit of 5\.0%", line)
    assert "CR.CDX_IG (flat)" in line
    assert not (tmp_path / "out").exists()


def test_within_the_limit_the_run_reports_the_shares(tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(_batch(tmp_path, ["ES_M7", "AAPL_US", "CDX"], limit=0.9)),
                                    "--out", str(out), "--serial", "--no-report"])
    assert res.exit_code == 0, res.output
    cov = pd.read_parquet(out / "coverage.parquet").set_index("factor")
    assert cov["exposure_share"].sum() == pytest.approx(1.0, rel=1e-12)
    flat = cov.loc["CR.CDX_IG", "exposure_share"]
    assert f"{flat:.1%} on flat ones" in " ".join(res.output.split())
