"""The batch's ``liquidity`` section through the grid: tables written, consistent with the grid's own
figures, reducing to the plain figures with zero costs, and in the results schema."""

import textwrap

import numpy as np
import pandas as pd
import pytest

from stressgrid import reports
from stressgrid.core import ConfigError
from stressgrid.grid import SerialExecutor, execute, load_batch, prepare_inputs, write_outputs
from section_helpers import DATA, section_batch, section_inputs

BATCH = section_batch("liq", "2014-03-29") + """\
liquidity:
  {params}
  rule: {{drawdown_steps: [[0.03, 0.5], [0.06, 0.0]]}}
  capacity:
    family: crisis
    limits: [{{metric: days_to_liquidate, max: 5, scope: stress}}]
"""


def _run(tmp_path, params: str = "params: {}", zero_spread: bool = False):
    book = pd.read_csv(DATA / "linear_book.csv")
    if zero_spread:
        book["bid_ask_bps"] = 0.0
    inputs = section_inputs(tmp_path, BATCH.format(params=params), book)
    return inputs, execute(inputs, SerialExecutor())


@pytest.fixture(scope="module")
def costly(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("costly"))


def test_tables_and_schema(costly, tmp_path):
    inputs, res = costly
    for t in ("liquidation", "la_risk", "la_drawdown", "drawdown_paths", "capacity", "capacity_limits"):
        assert t in res.tables and len(res.tables[t]), t
    write_outputs(res, tmp_path)
    assert reports.check_run_dir(tmp_path) == []
    assert res.notes["liquidity"]["nav"] == 50_000_000
    # hist_10d is valued at its horizon, the paths at the as-of date: the caveats say so
    assert sum("no time passes along a path" in c for c in reports.caveats(tmp_path)) == 1


def test_la_figures_sit_on_the_grids_own(costly):
    inputs, res = costly
    la = res.tables["la_risk"]
    rm = res.tables["risk_metrics"]
    for _, r in la.iterrows():
        var = rm[(rm.family == r.family) & (rm.metric == "var") & (rm.confidence == r.alpha)].value.iloc[0]
        cvar = rm[(rm.family == r.family) & (rm.metric == "cvar") & (rm.confidence == r.alpha)].value.iloc[0]
        # the plain columns equal the grid's exact merged reduction; exit costs only add
        assert r["var"] == pytest.approx(var, rel=1e-12) and r["cvar"] == pytest.approx(cvar, rel=1e-12)
        assert r.la_cvar >= r.cvar and r.la_var >= r["var"] - 1e-9
    # each path's last day is its scenario: the plain P&L at the horizon equals the scenario's total
    dp = res.tables["drawdown_paths"]
    totals = res.tables["scenarios"].set_index("scenario")["pnl"]
    for scen, g in dp.groupby("scenario"):
        assert g.sort_values("day").pnl.iloc[-1] == pytest.approx(totals[scen], rel=1e-9, abs=1e-6)
        assert g.sort_values("day").pnl.iloc[0] == 0.0
    dd = res.tables["la_drawdown"]
    # (la_drawdown can be below drawdown: a capped sale leaves more of the book for a rebound)
    assert (dd.la_drawdown >= 0).all() and (dd.unwind_cost >= 0).all() and (dd.unwind_cost > 0).any()
    assert set(dd.family) == {"crisis", "hist_10d"}


def test_zero_costs_give_the_plain_figures_exactly(tmp_path):
    inputs, res = _run(tmp_path, "params: {default: {impact_k: 0.0}}", zero_spread=True)
    la = res.tables["la_risk"]
    assert np.array_equal(la.la_var.to_numpy(), la["var"].to_numpy())
    assert np.array_equal(la.la_cvar.to_numpy(), la.cvar.to_numpy())
    dd = res.tables["la_drawdown"]
    assert np.array_equal(dd.la_drawdown.to_numpy(), dd.drawdown.to_numpy())
    dp = res.tables["drawdown_paths"]
    assert np.array_equal(dp.la_pnl.to_numpy(), dp.rule_pnl.to_numpy())


def test_bad_liquidity_parameters_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"liquidity.params, field 'equity.participation_cap'"):
        _run(tmp_path, "params: {equity: {participation_cap: 1.5}}")


def test_unknown_capacity_family(tmp_path):
    book = pd.read_csv(DATA / "linear_book.csv")
    book.to_csv(tmp_path / "book.csv", index=False)
    p = tmp_path / "b.yaml"
    p.write_text(textwrap.dedent(BATCH.format(params="params: {}")).replace("family: crisis", "family: nope"))
    batch, digest = load_batch(p)
    with pytest.raises(ConfigError, match=r"field 'liquidity.capacity.family': no scenario family 'nope'"):
        execute(prepare_inputs(batch, digest), SerialExecutor())
