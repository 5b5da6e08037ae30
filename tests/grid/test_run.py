"""End to end through the grid: replay figures against public closes, identities, and independence
of the results from the executor and the number of workers."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ScenarioSet
from stressgrid.grid import RayExecutor, SerialExecutor, execute, load_batch, prepare_inputs, write_outputs


@pytest.fixture(scope="module")
def demo_inputs(demo_batch_path):
    batch, digest = load_batch(demo_batch_path)
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": 512})})
    return prepare_inputs(batch, digest)


@pytest.fixture(scope="module")
def serial_result(demo_inputs):
    return execute(demo_inputs, SerialExecutor())


def test_gfc_replay_moves_spx_by_the_published_closes(demo_inputs):
    scen = demo_inputs.scenarios
    i, j = scen.names.index("gfc_2008"), scen.factors.index("EQ.SPX")
    # S&P 500 close 1565.15 on 2007-10-09 and 676.53 on 2009-03-09 (crisis-facts reference, ^GSPC)
    assert scen.shocks[i, j] == pytest.approx(np.log(676.53 / 1565.15), abs=1e-12)
    # the crisis family on its own keeps its daily paths; the last day is the shock
    from stressgrid import scenarios

    crisis = next(sp for sp in demo_inputs.batch.scenarios if sp.name == "crisis")
    fam = scenarios.generate(crisis, demo_inputs.history, scen.factors, seed=0, market=demo_inputs.market)
    k = fam.names.index("gfc_2008")
    assert fam.paths[k, -1, j] == pytest.approx(np.log(676.53 / 1565.15), abs=1e-12)
    assert fam.paths.shape[1] >= 300  # trading days from 2007-10-09 to 2009-03-09
    assert np.exp(scen.shocks[i, j]) - 1 == pytest.approx(-0.5678, abs=5e-5)


def test_gfc_pnl_of_linear_positions_from_the_history(demo_inputs, serial_result, history):
    """The P&L of each equity and index-future position under the GFC replay, recomputed from the
    history file's closes with pandas (not through the kernels)."""
    pos = demo_inputs.book.positions
    as_of = demo_inputs.market.as_of
    lv = history.levels
    row = demo_inputs.scenarios.names.index("gfc_2008")
    checked = 0
    for k, p in pos.iterrows():
        if p["type"] not in ("equity", "equity_future") or p["currency"] != "USD":
            continue
        s = lv[p["underlying"]]
        ret = s.loc[:"2009-03-09"].iloc[-1] / s.loc[:"2007-10-09"].iloc[-1] - 1
        expected = p["quantity"] * p["multiplier"] * s.loc[:as_of].iloc[-1] * ret
        assert serial_result.pnl[row, k] == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked >= 20


def test_var_at_most_cvar_and_contributions_add_up(serial_result):
    rm = serial_result.tables["risk_metrics"]
    ct = serial_result.tables["contributions"]
    for (fam, a), g in rm.dropna(subset=["confidence"]).groupby(["family", "confidence"]):
        var = g.loc[g.metric == "var", "value"].iloc[0]
        cvar = g.loc[g.metric == "cvar", "value"].iloc[0]
        assert var <= cvar + 1e-9 * abs(cvar)
        for level, c in ct[(ct.family == fam) & (ct.confidence == a)].groupby("level"):
            assert c["cvar_contribution"].sum() == pytest.approx(cvar, rel=1e-10)
    sc = serial_result.tables["scenarios"]
    for fam, g in sc.groupby("family"):
        worst = rm[(rm.family == fam) & (rm.metric == "worst")].iloc[0]
        k = g["pnl"].idxmin()
        assert worst["scenario"] == g.loc[k, "scenario"] and worst["value"] == pytest.approx(-g.loc[k, "pnl"])


def test_zero_shock_gives_zero_pnl(demo_inputs):
    s = demo_inputs.scenarios
    zero = ScenarioSet(("calm",), s.factors, np.zeros((1, len(s.factors))), np.ones(1), ("z",), np.ones((1, len(s.factors)), bool))
    # the kernels only: the demo's liquidity, optimise and monitoring sections name its families
    batch = demo_inputs.batch.model_copy(update={"liquidity": None, "optimise": None, "factor_model": None, "monitoring": None})
    res = execute(replace(demo_inputs, batch=batch, scenarios=zero), SerialExecutor())
    assert np.array_equal(res.pnl, np.zeros_like(res.pnl))


def test_breakdown_sums_to_scenario_total(serial_result):
    bd = serial_result.tables["breakdown"]
    total = serial_result.pnl.sum(axis=1)
    for level in ("asset_class", "sleeve"):
        by = bd[bd.level == level].groupby("scenario", sort=False)["pnl"].sum()
        names = list(serial_result.inputs.scenarios.names)
        np.testing.assert_allclose(by.loc[names].to_numpy(), total, rtol=1e-12, atol=1e-6)


@pytest.mark.ray
@pytest.mark.parametrize("workers", [1, 2])
def test_ray_gives_identical_numbers_for_1_and_2_workers(ray_session, demo_inputs, serial_result, workers):
    res = execute(demo_inputs, RayExecutor(workers=workers))
    assert len(res.tasks) > 2
    assert np.array_equal(res.pnl, serial_result.pnl)
    pd.testing.assert_frame_equal(res.tables["risk_metrics"], serial_result.tables["risk_metrics"])
    assert all(r.float64 for r in res.results)  # float64 inside the Ray worker processes


def test_outputs_and_manifest(serial_result, tmp_path):
    manifest = write_outputs(serial_result, tmp_path / "run")
    for f in manifest["files"]:
        df = pd.read_parquet(tmp_path / "run" / f)
        assert len(df) > 0
    assert (tmp_path / "run" / "manifest.json").exists()
    assert manifest["seeds"]["root"] == serial_result.inputs.batch.seed
    assert manifest["counts"]["scenarios"] == len(serial_result.inputs.scenarios)
    assert manifest["as_of"] == "2018-12-31"
    assert {"numpy", "jax", "ray"} <= set(manifest["versions"])
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_sensitivity_table_sits_next_to_full_revaluation(serial_result):
    st = serial_result.tables["sensitivity"]
    total = st.groupby("scenario", sort=False)["pnl_full"].sum()
    names = list(serial_result.inputs.scenarios.names)
    np.testing.assert_allclose(total.loc[names].to_numpy(), serial_result.pnl.sum(axis=1), rtol=1e-12, atol=1e-6)
    assert np.allclose(st["error"], st["pnl_sensitivity"] - st["pnl_full"])
    # linear base-currency instruments have no approximation error; options do, in a crash
    gfc = st[st.scenario == "gfc_2008"].set_index("type")
    assert abs(gfc.loc["equity_future", "error"]) < 1e-6 * abs(gfc.loc["equity_future", "pnl_full"])
    assert abs(gfc.loc["option", "error"]) > 0.05 * abs(gfc.loc["option", "pnl_full"])
    rm = serial_result.tables["risk_metrics"]
    assert {"var_sensitivity", "cvar_sensitivity"} <= set(rm["metric"])
    jtd = serial_result.tables["jump_to_default"]
    assert (jtd.loc[jtd["type"] != "cds", "pnl"] == 0).all() and (jtd.loc[jtd["type"] == "cds", "pnl"] < 0).all()
