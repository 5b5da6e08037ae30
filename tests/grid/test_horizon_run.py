"""Families revalued at their horizon through a whole run: the same windows revalued at the as-of date
give the market move bit for bit, the time component is the aged book's, streamed and in-memory runs
write the same split, and the terminal summary shows it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stressgrid import kernels

from section_helpers import read_run_table, run_in_memory_and_streamed

ROOT = Path(__file__).resolve().parents[2]


def _batch(tmp_path: Path, stream: bool) -> Path:
    spec = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    for section in ("liquidity", "factor_model", "optimise", "monitoring", "limits"):
        spec.pop(section, None)
    window = dict(horizon_days=10, start="2016-06-01", end="2018-12-31")
    spec["scenarios"] = [dict(kind="rolling", name="at_horizon", **window),
                         dict(kind="rolling", name="today", revaluation="instantaneous", **window)]
    spec["book"] = str(ROOT / "examples" / "demo_book.csv")
    spec["execution"] = {"stream": stream, "chunk_size": 200}
    p = tmp_path / f"batch_{stream}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


_read = read_run_table


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("horizon")
    mem, streamed = run_in_memory_and_streamed(_batch, tmp)
    return mem, streamed, tmp


def test_the_horizon_splits_into_time_market_and_cross(runs):
    mem, _, tmp = runs
    inputs = mem.run.inputs
    s = _read(tmp / "memory", "scenarios")
    h, t = s[s["family"] == "at_horizon"].reset_index(drop=True), s[s["family"] == "today"].reset_index(drop=True)
    assert len(h) == len(t) > 100
    assert set(h["revaluation"]) == {"horizon"} and set(t["revaluation"]) == {"instantaneous"}
    # the same windows: the market move is the P&L of the family revalued today, bit for bit
    np.testing.assert_array_equal(h["pnl_market"].to_numpy(), t["pnl"].to_numpy())
    assert np.all(t["pnl_time"] == 0.0) and np.all(t["pnl_cross"] == 0.0) and np.all(t["pnl_market"] == t["pnl"])
    # the time component is that of the book valued 10 business days later, recomputed here
    aged = kernels.age(inputs.prepared, inputs.book.positions, "USD", inputs.market.as_of, 10, inputs.market.levels)
    assert aged.at == pd.Timestamp("2019-01-14")
    np.testing.assert_allclose(h["pnl_time"].to_numpy(), aged.offset.sum(), rtol=1e-12)
    assert aged.offset.sum() != 0.0
    np.testing.assert_allclose(h["pnl"], h["pnl_time"] + h["pnl_market"] + h["pnl_cross"], rtol=0, atol=1e-6)
    # and the P&L is the aged book's under each window's shocks
    rows = np.flatnonzero(np.asarray(inputs.scenarios.family) == "at_horizon")
    ref = kernels.revalue(aged, inputs.market.levels, inputs.scenarios.shocks[rows], inputs.market.is_log).sum(axis=1)
    np.testing.assert_allclose(h["pnl"].to_numpy(), ref, rtol=1e-12, atol=1e-6)
    # the short-vol sleeve (two short SPX options) earns its decay at unchanged levels
    short_vol = (inputs.book.positions["sleeve"] == "short_vol").to_numpy()
    assert short_vol.sum() == 2 and aged.offset[short_vol].sum() > 0


def test_streamed_and_in_memory_runs_write_the_same_split(runs):
    _, _, tmp = runs
    a = _read(tmp / "memory", "scenarios")
    b = _read(tmp / "streamed", "scenarios")
    for c in ("scenario", "revaluation"):
        assert list(a[c].astype(str)) == list(b[c].astype(str))
    for c in ("pnl", "pnl_time", "pnl_market", "pnl_cross"):
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy())
    rm_a = _read(tmp / "memory", "risk_metrics").set_index(["family", "metric", "confidence"])["value"].sort_index()
    rm_b = _read(tmp / "streamed", "risk_metrics").set_index(["family", "metric", "confidence"])["value"].sort_index()
    np.testing.assert_allclose(rm_a.to_numpy(), rm_b.to_numpy(), rtol=1e-12)


def test_terminal_summary_explains_the_worst_scenario_at_the_horizon(runs):
    from rich.console import Console

    from stressgrid.reports import horizon_explained, print_summary

    _, _, tmp = runs
    ex = horizon_explained(tmp / "memory")
    assert list(ex["family"]) == ["at_horizon"] and int(ex["days"].iloc[0]) == 10
    s = _read(tmp / "memory", "scenarios").set_index("scenario")
    row = s.loc[ex["scenario"].iloc[0]]
    assert row["pnl"] == s[s["family"] == "at_horizon"]["pnl"].min()
    buf = io.StringIO()
    print_summary(tmp / "memory", console=Console(file=buf, width=200, highlight=False))
    text = buf.getvalue()
    assert "P&L explained at the horizon" in text and ex["scenario"].iloc[0] in text
