"""The batch's ``optimise`` section through the grid: per-family re-optimisation as grid tasks, its
figures recomputed from the run's own position-level P&L, every constraint holding, and the same result
on Ray as serially."""

import numpy as np
import pandas as pd
import pytest

from stressgrid import reports
from stressgrid.core import ConfigError, InfeasibleError, var_cvar
from stressgrid.grid import RayExecutor, SerialExecutor, execute, write_outputs
from section_helpers import BOOT, section_batch, section_inputs

BATCH = section_batch("opt", "2014-03-29", BOOT + """\
optimise:
  base_family: hist_10d
  alpha: 0.95
  max_turnover: 0.4
  adv_caps: {participation: 0.1, horizon_days: 5}
  group_bounds: {sleeve: {trend: [0.2, 1.5]}}
  frozen: [ES_M7]
""")


def _inputs(d, body=BATCH):
    return section_inputs(d, body)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    inputs = _inputs(tmp_path_factory.mktemp("opt"))
    return inputs, execute(inputs, SerialExecutor())


def _scaled_pnl(res, fam_rows, w):
    """The book's P&L with each position scaled from its current weight to its new one."""
    cur = w.set_index("position_id")["weight_current"]
    new = w.set_index("position_id")["weight_new"]
    ids = list(res.inputs.book.positions["id"])
    scale = np.array([new[i] / cur[i] if cur[i] != 0 else 0.0 for i in ids])
    return res.pnl[fam_rows] @ scale


def test_figures_recomputed_from_the_runs_pnl(run):
    inputs, res = run
    summ = res.tables["reoptimisation"]
    wts = res.tables["reoptimisation_weights"]
    fam = np.asarray(inputs.scenarios.family)
    assert list(summ.family) == ["crisis", "boot"]  # every family but the base one
    for _, r in summ.iterrows():
        rows = fam == r.family
        p = inputs.scenarios.weights[rows] / inputs.scenarios.weights[rows].sum()
        var0, cvar0 = var_cvar(res.pnl[rows].sum(axis=1), 0.95, p)
        assert r.cvar_before == pytest.approx(cvar0, rel=1e-9)
        var1, cvar1 = var_cvar(_scaled_pnl(res, rows, wts[wts.family == r.family]), 0.95, p)
        assert r.cvar_after == pytest.approx(cvar1, rel=1e-7) and r.var_after == pytest.approx(var1, rel=1e-7)
        assert r.cvar_after <= r.cvar_before * (1 + 1e-9)  # never made worse on the optimised measure
        base = fam == "hist_10d"
        pb = inputs.scenarios.weights[base] / inputs.scenarios.weights[base].sum()
        _, cvb = var_cvar(_scaled_pnl(res, base, wts[wts.family == r.family]), 0.95, pb)
        assert r.base_cvar_after == pytest.approx(cvb, rel=1e-7)


def test_constraints_hold(run):
    inputs, res = run
    wts = res.tables["reoptimisation_weights"]
    summ = res.tables["reoptimisation"].set_index("family")
    for f, g in wts.groupby("family"):
        assert np.abs(g.trade).sum() <= 0.4 + 1e-7
        assert summ.loc[f, "turnover"] == pytest.approx(np.abs(g.trade).sum(), abs=1e-12)
        es = g[g.position_id == "ES_M7"].iloc[0]
        assert es.weight_new == pytest.approx(es.weight_current, abs=1e-9)  # frozen
        scale = g.weight_new / g.weight_current
        assert (scale >= -1e-7).all() and (scale <= 2 + 1e-7).all()  # no sign flip, at most doubled
        trend = g[g.sleeve == "trend"].weight_new.sum()
        assert 0.2 - 1e-7 <= trend <= 1.5 + 1e-7
        assert np.abs(g.weight_new).sum() <= np.abs(g.weight_current).sum() + 1e-7  # no added leverage
        assert summ.loc[f, "cost"] > 0


def test_statuses_are_optimal(run):
    _, res = run
    assert set(res.tables["reoptimisation"].status) == {"optimal"}


def test_infeasible_falls_back_to_the_current_book_with_a_diagnosis(tmp_path):
    # the trend sleeve is 1.42 of NAV: capping it at 1.0 needs more than the 0.4 turnover allowed
    inputs = _inputs(tmp_path, BATCH.replace("trend: [0.2, 1.5]", "trend: [0.2, 1.0]"))
    res = execute(inputs, SerialExecutor())
    s = res.tables["reoptimisation"]
    assert set(s.status) == {"fallback"} and (s.turnover == 0).all()
    assert s.message.str.contains(r"relaxing any one of \[groups, turnover\]").all()
    w = res.tables["reoptimisation_weights"]
    assert np.array_equal(w.weight_new.to_numpy(), w.weight_current.to_numpy())
    with pytest.raises(InfeasibleError, match=r"re-optimisation of family 'crisis': InfeasibleError: infeasible"):
        execute(_inputs(tmp_path, BATCH.replace("trend: [0.2, 1.5]", "trend: [0.2, 1.0]") + "  fallback: error\n"),
                SerialExecutor())


def test_tables_follow_the_schema(run, tmp_path):
    _, res = run
    write_outputs(res, tmp_path)
    assert reports.check_run_dir(tmp_path) == []


@pytest.mark.ray
def test_ray_gives_the_same_reoptimisation(ray_session, run):
    inputs, res = run
    again = execute(inputs, RayExecutor(workers=2))
    for t in ("reoptimisation", "reoptimisation_weights"):
        pd.testing.assert_frame_equal(again.tables[t], res.tables[t], check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("edit, match", [
    (("base_family: hist_10d", "base_family: nope"), r"field 'optimise.base_family': no scenario family 'nope'"),
    (("frozen: [ES_M7]", "frozen: [XX]"), r"field 'optimise.frozen': no position 'XX'"),
    (("{sleeve: {trend:", "{desk: {trend:"), r"level 'desk' must be asset_class or sleeve"),
])
def test_bad_settings_are_named(tmp_path, edit, match, run):
    with pytest.raises(ConfigError, match=match):  # when the inputs are prepared, before any scenario is drawn
        _inputs(tmp_path, BATCH.replace(*edit))
    from stressgrid.grid._optimise import optimise_tables

    inputs, res = run  # and by the section itself, for a caller that skips the preparation's checks
    bad = inputs.batch.model_copy(update={"optimise": [inputs.batch.optimise[0].model_copy(update={"frozen": ["XX"]})]})
    with pytest.raises(ConfigError, match=r"field 'optimise.frozen': no position 'XX'"):
        optimise_tables(bad.optimise, inputs, res.pnl, SerialExecutor(), "batch 'x'")


def test_bad_scale_bounds_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'optimise': scale_bounds"):
        _inputs(tmp_path, BATCH.replace("  alpha: 0.95\n", "  alpha: 0.95\n  scale_bounds: [1.5, 2]\n"))
