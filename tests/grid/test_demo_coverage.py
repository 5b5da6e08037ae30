"""The demo's coverage: every factor is history, bundled, interpolated, proxied or flat with a reason."""

from __future__ import annotations

import pytest

from stressgrid.grid import load_batch, prepare_inputs
from stressgrid.grid._coverage import coverage_tables


@pytest.fixture(scope="module")
def demo_coverage(demo_batch_path):
    b, digest = load_batch(demo_batch_path)
    b = b.model_copy(update={"scenarios": [s for s in b.scenarios if s.name == "crisis"], "liquidity": None,
                             "optimise": None, "factor_model": None, "monitoring": None})
    return coverage_tables(prepare_inputs(b, digest))["coverage"]


def test_no_flat_factor_without_a_reason(demo_coverage):
    flat = demo_coverage[demo_coverage["source"] == "flat"]
    assert len(flat) and flat["detail"].str.len().gt(20).all()
    assert not flat["detail"].str.contains("no reason given").any()
    assert set(demo_coverage["source"]) <= {"bundled", "interpolated", "proxy", "flat"}


def test_the_default_map_moves_the_curves_and_the_smile(demo_coverage):
    cov = demo_coverage.set_index("factor")
    proxied = cov[cov["source"] == "proxy"]
    assert {"IR.EUR.10Y", "IR.JPY.2Y", "VOL.SPX.SKEW", "VOL.SPX.TERM", "VOL.SPX.CURV"} <= set(proxied.index)
    assert proxied["detail"].str.contains("default map").all()
    assert cov.loc["BASIS.WTI", "source"] == "flat" and "carry" in cov.loc["BASIS.WTI", "detail"]
    # the book's flat and proxied factors carry a small share of its gross exposure, under the demo's limit
    unmodelled = cov.loc[cov["source"].isin(["proxy", "flat"]), "exposure_share"].sum()
    assert 0 < unmodelled <= 0.10
    assert cov["exposure_share"].sum() == pytest.approx(1.0, rel=1e-12)
