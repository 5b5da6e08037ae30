"""What a run does before its first task, kept short: the sensitivities' second derivatives are compiled
only for the table that reads them (``outputs.sensitivity``)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stressgrid import kernels
from stressgrid.grid import run_batch

ROOT = Path(__file__).resolve().parents[2]


def _batch(tmp_path: Path, **changes) -> Path:
    spec = yaml.safe_load((ROOT / "tests" / "data" / "linear_batch.yaml").read_text())
    spec["book"] = str(ROOT / "tests" / "data" / "linear_book.csv")
    for key, value in changes.items():
        spec[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    p = tmp_path / "batch.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_outputs_sensitivity_false_leaves_out_the_sensitivity_table_only(tmp_path):
    on = run_batch(_batch(tmp_path / "a"), tmp_path / "on", serial=True)
    off = run_batch(_batch(tmp_path / "b", outputs={"sensitivity": False}), tmp_path / "off", serial=True)
    assert "sensitivity" in on.tables and "sensitivity" not in off.tables
    assert not (tmp_path / "off" / "sensitivity.parquet").exists()
    metrics = set(off.tables["risk_metrics"]["metric"])
    assert {"var", "cvar"} <= metrics and not metrics & {"var_sensitivity", "cvar_sensitivity"}
    assert {"var_sensitivity", "cvar_sensitivity"} <= set(on.tables["risk_metrics"]["metric"])
    # the same risk numbers, the same coverage shares (from the first derivatives alone), the default loss
    plain = lambda t: t[t["metric"].isin(["var", "cvar"])].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(plain(on.tables["risk_metrics"]), plain(off.tables["risk_metrics"]), check_dtype=False)
    np.testing.assert_allclose(off.tables["coverage"]["exposure_share"], on.tables["coverage"]["exposure_share"],
                               rtol=1e-12, atol=1e-15)
    assert off.tables["coverage"]["exposure_share"].sum() == pytest.approx(1.0)
    pd.testing.assert_frame_equal(on.tables["jump_to_default"], off.tables["jump_to_default"])


def test_first_derivatives_alone_are_those_of_the_full_sensitivities(demo_prepared):
    _, snap, prepared = demo_prepared
    full = kernels.sensitivities(prepared, snap.levels)
    first = kernels.sensitivities(prepared, snap.levels, second_order=False)
    np.testing.assert_allclose(first.grad, full.grad, rtol=1e-12, atol=1e-9)
    assert np.abs(full.grad).sum() > 0 and np.abs(full.gamma).sum() > 0  # the book has options and curves
    assert not first.gamma.any() and first.theta is None and first.convexity is None
    np.testing.assert_array_equal(first.priced, full.priced)
    # closed forms: a stock's delta is its quantity, a future's its quantity times its multiplier (USD book)
    book, _, _ = demo_prepared
    pos = book.positions.reset_index(drop=True)
    col = {f: j for j, f in enumerate(snap.factors)}
    for pid, expected in (("AAPL_US", 368_900.0), ("ES_H9", 400.0 * 50)):
        i = int(pos.index[pos["id"] == pid][0])
        assert first.grad[i, col[pos.loc[i, "underlying"]]] == pytest.approx(expected, rel=1e-12), pid


def test_the_tour_values_the_demo_book_on_the_demo_market():
    """`stressgrid demo` runs the tour; its book and market are the full demo's, so the two agree."""
    tour = yaml.safe_load((ROOT / "examples" / "tour_batch.yaml").read_text())
    demo = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    for key in ("book", "base_currency", "seed", "nav", "market", "default_proxies", "risk", "liquidity"):
        assert tour[key] == demo[key], key
    # the same families; the Monte Carlo, valued at the as-of date, under a name of its own
    families = {s["name"]: s for s in demo["scenarios"]}
    tour_mc = tour["scenarios"][2]
    assert tour["scenarios"][:2] == [families["crisis"], families["crisis_amplified"]]
    assert {**tour_mc, "name": "mc_t"} == {**families["mc_t"], "revaluation": "instantaneous"}
    assert tour_mc["name"] == "mc_t_instant" and "revaluation" not in families["mc_t"]
    assert tour["execution"]["executor"] == "serial" and tour["outputs"] == {"sensitivity": False}


def test_a_bad_sensitivity_value_is_one_line_naming_the_field(tmp_path):
    from stressgrid.core import ConfigError
    from stressgrid.grid import load_batch

    with pytest.raises(ConfigError) as exc:
        load_batch(_batch(tmp_path, outputs={"sensitivity": "maybe"}))
    lines = str(exc.value).splitlines()
    assert len(lines) == 1 and "field 'outputs.sensitivity'" in lines[0] and "(got 'maybe')" in lines[0], lines


def test_a_streamed_run_without_the_sensitivity_table_writes_no_part_of_it(tmp_path):
    from stressgrid import reports

    spec = yaml.safe_load((ROOT / "tests" / "data" / "linear_batch.yaml").read_text())
    mc = {"kind": "montecarlo", "name": "mc", "model": "student_t", "n_scenarios": 5000, "horizon_days": 10,
          "window": {"end": "2017-03-29", "lookback_days": 500}}
    res = run_batch(_batch(tmp_path, scenarios=spec["scenarios"] + [mc], execution={"stream": True},
                           outputs={"sensitivity": False}), tmp_path / "out", serial=True)
    assert (tmp_path / "out" / "scenarios").is_dir()  # a streamed run: its tables are folders of parts
    assert not (tmp_path / "out" / "sensitivity").exists() and not (tmp_path / "out" / "sensitivity.parquet").exists()
    assert not set(res.tables["risk_metrics"]["metric"]) & {"var_sensitivity", "cvar_sensitivity"}
    assert reports.check_run_dir(tmp_path / "out") == []
