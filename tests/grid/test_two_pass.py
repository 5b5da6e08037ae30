"""Summaries-only tasks: without the position P&L on the driver, the Euler contributions come from a
second pass over the global tail, and equal a single in-memory computation."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from stressgrid import kernels
from stressgrid.core import ConfigError, cvar_contributions, var_cvar
from stressgrid.grid import RayExecutor, SerialExecutor, execute, load_batch, prepare_inputs
from stressgrid.grid._run import AUTO_POSITION_CELLS, MAX_POSITION_CELLS, keeps_positions


def _with(inputs, chunk=512, scenario_pnl=False):
    b = inputs.batch
    batch = b.model_copy(update={
        "liquidity": None, "optimise": None, "factor_model": None, "monitoring": None,
        "execution": b.execution.model_copy(update={"chunk_size": chunk}),
        "outputs": b.outputs.model_copy(update={"scenario_pnl": scenario_pnl}),
    })
    return replace(inputs, batch=batch)


@pytest.fixture(scope="module")
def inputs(demo_batch_path):
    batch, digest = load_batch(demo_batch_path)
    return prepare_inputs(batch, digest)


@pytest.fixture(scope="module")
def summaries_only(inputs):
    return execute(_with(inputs), SerialExecutor())


@pytest.fixture(scope="module")
def in_memory(inputs):
    """The whole [S, N] P&L, one call of the kernels per family, with the family's book (valued at its
    horizon or at the as-of date)."""
    scen = inputs.scenarios
    fam = np.asarray(scen.family)
    out = np.zeros((len(scen), inputs.prepared.n))
    assert len(inputs.books) > 1  # the demo has families valued at a horizon
    for f in dict.fromkeys(scen.family):
        rows = fam == f
        book = inputs.books[inputs.family_books[f]]
        out[rows] = kernels.revalue(book, inputs.market.levels, scen.shocks[rows], inputs.market.is_log)
    return out


def test_tasks_return_summaries_only(summaries_only):
    res = summaries_only
    assert res.pnl is None and "scenario_pnl" not in res.tables
    assert len(res.tasks) > 10
    for r in res.results:
        assert r.pnl is None
        assert all(p.tail_rows is None for p in r.families.values())
    assert res.timings["tail_tasks"] > 0


def test_var_cvar_and_contributions_equal_one_in_memory_computation(inputs, summaries_only, in_memory):
    scen = inputs.scenarios
    fam = np.asarray(scen.family)
    rm = summaries_only.tables["risk_metrics"].set_index(["family", "metric", "confidence"])["value"]
    ct = summaries_only.tables["contributions"]
    ids = list(inputs.book.positions["id"])
    checked = 0
    for f in dict.fromkeys(scen.family):
        rows = fam == f
        for a in inputs.batch.risk.confidence:
            var, cvar = var_cvar(in_memory[rows].sum(axis=1), a, scen.weights[rows])
            assert rm[(f, "var", a)] == pytest.approx(var, rel=1e-12, abs=1e-6)
            assert rm[(f, "cvar", a)] == pytest.approx(cvar, rel=1e-12, abs=1e-6)
            ref = cvar_contributions(in_memory[rows], a, scen.weights[rows])
            got = ct[(ct.family == f) & (ct.confidence == a) & (ct.level == "position")].set_index("group_name")["cvar_contribution"]
            scale = max(abs(cvar), 1.0)
            np.testing.assert_allclose(got.loc[ids].to_numpy(), ref, rtol=0, atol=1e-12 * scale)
            assert got.sum() == pytest.approx(cvar, rel=1e-10)
            checked += 1
    assert checked >= 10


def test_second_pass_matches_the_gathered_run_and_other_chunkings(inputs, summaries_only):
    gathered = execute(_with(inputs, scenario_pnl=True), SerialExecutor())
    assert gathered.pnl is not None and "tail_tasks" not in gathered.timings
    other = execute(_with(inputs, chunk=2048), SerialExecutor())
    for res in (gathered, other):
        for name in ("contributions", "risk_metrics"):
            a, b = summaries_only.tables[name], res.tables[name]
            assert a.drop(columns=[c for c in ("cvar_contribution", "value") if c in a]).equals(
                b.drop(columns=[c for c in ("cvar_contribution", "value") if c in b]))
            col = "cvar_contribution" if name == "contributions" else "value"
            scale = summaries_only.tables["risk_metrics"]["value"].abs().max()
            np.testing.assert_allclose(a[col], b[col], rtol=1e-12, atol=1e-12 * scale)
        pd.testing.assert_frame_equal(summaries_only.tables["breakdown"], res.tables["breakdown"], check_exact=False, rtol=1e-12)


@pytest.mark.ray
def test_second_pass_on_ray_gives_identical_numbers(ray_session, inputs, summaries_only):
    res = execute(_with(inputs), RayExecutor(workers=2))
    for name in ("contributions", "risk_metrics", "breakdown", "scenarios"):
        pd.testing.assert_frame_equal(res.tables[name], summaries_only.tables[name], check_exact=True)


def test_which_runs_gather_the_position_pnl(inputs):
    b = inputs.batch.model_copy(update={"liquidity": None, "optimise": None, "factor_model": None})
    auto = b.model_copy(update={"outputs": b.outputs.model_copy(update={"scenario_pnl": "auto"})})
    assert keeps_positions(auto, 1000, AUTO_POSITION_CELLS // 1000) == (True, True)
    assert keeps_positions(auto, 1000, AUTO_POSITION_CELLS // 1000 + 1) == (False, False)
    never = b.model_copy(update={"outputs": b.outputs.model_copy(update={"scenario_pnl": False})})
    assert keeps_positions(never, 10, 10) == (False, False)
    # liquidity and optimise need the matrix, up to the driver's limit, without the table
    assert keeps_positions(inputs.batch.model_copy(update={"outputs": never.outputs}), 10, 10) == (True, False)
    assert keeps_positions(inputs.batch, 1000, MAX_POSITION_CELLS // 1000 + 1) == (False, False)
    always = b.model_copy(update={"outputs": b.outputs.model_copy(update={"scenario_pnl": True})})
    assert keeps_positions(always, 1000, MAX_POSITION_CELLS // 1000) == (True, True)
    with pytest.raises(ConfigError, match=r"outputs\.scenario_pnl.*20,000,000"):
        keeps_positions(always, 1000, MAX_POSITION_CELLS // 1000 + 1)


def test_sensitivity_pnl_per_type_is_the_sum_of_the_positions_approximations(inputs, summaries_only):
    """Per family, over its horizon (theta times the horizon's years, 0 at the as-of date)."""
    scen = inputs.scenarios
    fam = np.asarray(scen.family)
    approx = np.zeros((len(scen), inputs.prepared.n))
    for f in dict.fromkeys(scen.family):
        rows = fam == f
        dt = inputs.books[inputs.family_books[f]].horizon_years
        approx[rows] = kernels.sensitivity_pnl(inputs.sens, inputs.market.levels, scen.shocks[rows], inputs.market.is_log, dt=dt)
    assert np.any(inputs.sens.theta != 0) and np.any(inputs.sens.convexity != 0)
    types = inputs.book.positions["type"].to_numpy()
    st = summaries_only.tables["sensitivity"]
    for t in dict.fromkeys(types):
        got = st[st["type"] == t].set_index("scenario")["pnl_sensitivity"].loc[list(scen.names)].to_numpy()
        ref = approx[:, types == t].sum(axis=1)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-9 * np.abs(ref).max())


@pytest.mark.ray
def test_a_second_pass_of_many_tasks_on_ray_equals_serial(ray_session, inputs, summaries_only, monkeypatch):
    import stressgrid.grid._run as grid_run

    monkeypatch.setattr(grid_run, "tail_chunk_size", lambda n_tail, n_positions, block: 64)
    ray_res = execute(_with(inputs), RayExecutor(workers=2))
    serial = execute(_with(inputs), SerialExecutor())
    pd.testing.assert_frame_equal(ray_res.tables["contributions"], serial.tables["contributions"], check_exact=True)
    # another split of the tail adds the same terms in another order
    a, b = serial.tables["contributions"], summaries_only.tables["contributions"]
    scale = summaries_only.tables["risk_metrics"]["value"].abs().max()
    np.testing.assert_allclose(a["cvar_contribution"], b["cvar_contribution"], rtol=1e-12, atol=1e-12 * scale)
