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
    # hist_10d is valued at its horizon, and so are its daily paths, day by day; the crisis replay is instantaneous
    assert res.notes["liquidity"]["paths_aged"] == ["hist_10d"]
    assert not any("drawdown" in c or "inside the horizon" in c for c in reports.caveats(tmp_path))
    # the default grid holds the book as sized: the headline's days to liquidate are read at 1x
    cap = res.tables["capacity"]
    one = cap[(cap["aum_multiple"] == 1.0) & (cap["level"] == "book")]
    h = {x["key"]: x for x in reports.headline(tmp_path)}
    assert h["days_to_liquidate"]["value"] == one["days_to_liquidate"].max()
    assert h["days_to_liquidate"]["detail"].startswith("book at its current size")


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


def _with_options(directory, book: pd.DataFrame, extra: pd.DataFrame):
    """The section batch's inputs for ``book`` plus the SPX options and bonds of ``extra``: the SPX vol
    surface's shape factors have no history in the test window and are held flat at 0 on purpose."""
    flat = "".join(f"\n    VOL.SPX.{k}: no history in this window" for k in ("SKEW", "CURV", "TERM"))
    text = BATCH.format(params="params: {}").replace(
        "  as_of: 2017-03-29\n", "  as_of: 2017-03-29\n  flat:" + flat + "\n  overrides: {VOL.SPX.SKEW: 0.0, VOL.SPX.CURV: 0.0, "
        "VOL.SPX.TERM: 0.0}\n", 1)
    return section_inputs(directory, text, pd.concat([book, extra], ignore_index=True))


def test_paths_of_a_horizon_family_age_day_by_day_and_end_on_its_scenarios(tmp_path):
    """A book with time in it (an option decaying, a bond carrying): each daily path of the rolling 10-day
    family is valued day by day at the later dates, so its last day is the family's scenario P&L (time
    included), and its first day differs from the book at the as-of date by one day's time component."""
    from stressgrid import kernels

    book = pd.read_csv(DATA / "linear_book.csv")
    extra = pd.DataFrame([
        dict(id="SPX_P", type="option", underlying="EQ.SPX", quantity=-300.0, multiplier=100, currency="USD",
             asset_class="equity", sleeve="short_vol", adv=20000.0, bid_ask_bps=300.0, strike=2300.0,
             expiry="2017-06-16", option_type="put", dividend_yield=0.02),
        dict(id="UST_5Y", type="bond", underlying="IR.USD.5Y", quantity=2e5, multiplier=100, currency="USD",
             asset_class="rates", sleeve="carry", adv=1e9, bid_ask_bps=1.0, coupon=0.05, frequency=2, maturity="2022-02-15"),
    ])
    inputs = _with_options(tmp_path, book, extra)
    res = execute(inputs, SerialExecutor())
    assert res.notes["liquidity"]["paths_aged"] == ["hist_10d"]
    dp = res.tables["drawdown_paths"]
    sc = res.tables["scenarios"].set_index("scenario")
    hist = dp[dp.family == "hist_10d"]
    assert len(hist) and (sc.loc[hist.scenario.unique(), "pnl_time"].abs() > 0).all()
    for scen, g in hist.groupby("scenario"):
        g = g.sort_values("day")
        assert g.pnl.iloc[-1] == pytest.approx(sc.loc[scen, "pnl"], rel=1e-9)
    # day 1 of every path: the book one business day later under the day's levels
    rows, paths = inputs.family_paths["hist_10d"]
    day1 = kernels.revalue(kernels.age(inputs.prepared, inputs.book.positions, "USD", inputs.market.as_of, 1,
                                       inputs.market.levels), inputs.market.levels, paths[:, 0], inputs.market.is_log)
    at_as_of = kernels.revalue(inputs.prepared, inputs.market.levels, paths[:, 0], inputs.market.is_log)
    names = np.asarray(inputs.scenarios.names)[rows]
    for scen, g in hist.groupby("scenario"):
        k = int(np.flatnonzero(names == scen)[0])
        assert g.sort_values("day").pnl.iloc[1] == pytest.approx(day1[k].sum(), rel=1e-10)
        assert abs(day1[k].sum() - at_as_of[k].sum()) > 1.0  # the time component is in it


def test_a_family_whose_paths_are_over_the_limit_is_named_in_the_caveats(tmp_path, monkeypatch):
    from stressgrid.grid import _liquidity

    monkeypatch.setattr(_liquidity, "MAX_PATH_ROWS", 10)
    inputs, res = _run(tmp_path)
    assert "la_drawdown" not in res.tables
    write_outputs(res, tmp_path / "out")
    said = [c for c in reports.caveats(tmp_path / "out") if "leave out the daily paths" in c]
    assert len(said) == 1 and "crisis, hist_10d" in said[0] and "10 in a family" in said[0]


def test_la_risk_left_out_without_the_position_pnl_is_said_in_the_caveats(tmp_path, monkeypatch):
    from stressgrid.grid import _run

    monkeypatch.setattr(_run, "MAX_POSITION_CELLS", 10)  # the scenarios x positions over the limit the driver gathers
    inputs = section_inputs(tmp_path, BATCH.format(params="params: {}") + "outputs: {scenario_pnl: false}\n")
    res = execute(inputs, SerialExecutor())
    assert "la_risk" not in res.tables and "la_drawdown" in res.tables
    write_outputs(res, tmp_path / "out")
    said = [c for c in reports.caveats(tmp_path / "out") if c.startswith("liquidity-adjusted VaR/CVaR")]
    assert len(said) == 1 and "not computed" in said[0]


def test_a_run_written_before_paths_aged_keeps_its_caveat(costly, tmp_path):
    """Re-read later (report, compare), a run folder whose horizon family's paths were valued at the as-of
    date (no ``paths_aged`` in its notes, as runs before this version) still says so."""
    import json

    inputs, res = costly
    write_outputs(res, tmp_path)
    assert not any("no time passes along a path" in c for c in reports.caveats(tmp_path))
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["notes"]["liquidity"]["paths_aged"]
    path.write_text(json.dumps(manifest))
    said = [c for c in reports.caveats(tmp_path) if "no time passes along a path" in c]
    assert len(said) == 1 and said[0].startswith("the daily paths of hist_10d in the liquidity drawdowns")


def test_an_option_expiring_inside_the_horizon_settles_on_its_day_on_the_paths_and_is_named(tmp_path):
    """A put expiring on day 5 of the 10-day family: each kept path's last day differs from the scenario's
    P&L by exactly the payoff on day 5's spot less the payoff on day 10's (the scenario settles it on the
    horizon's levels), and the caveats name the position and the families."""
    book = pd.read_csv(DATA / "linear_book.csv")
    extra = pd.DataFrame([dict(id="SPX_WEEKLY", type="option", underlying="EQ.SPX", quantity=-100.0, multiplier=100,
                               currency="USD", asset_class="equity", sleeve="short_vol", adv=20000.0, bid_ask_bps=300.0,
                               strike=2350.0, expiry="2017-04-05", option_type="put", dividend_yield=0.02)])
    inputs = _with_options(tmp_path, book, extra)
    res = execute(inputs, SerialExecutor())
    rows, paths = inputs.family_paths["hist_10d"]
    names = list(np.asarray(inputs.scenarios.names)[rows])
    spx = list(inputs.market.factors).index("EQ.SPX")
    s0 = inputs.market.levels[spx]
    sc = res.tables["scenarios"].set_index("scenario")["pnl"]
    dp = res.tables["drawdown_paths"]
    kept = dp[dp.family == "hist_10d"].groupby("scenario")
    assert len(kept) > 0
    moved = 0
    for scen, g in kept:
        k = names.index(scen)
        s5, s10 = s0 * np.exp(paths[k, 4, spx]), s0 * np.exp(paths[k, 9, spx])
        expected = -100.0 * 100 * (max(2350.0 - s5, 0.0) - max(2350.0 - s10, 0.0))
        assert g.sort_values("day").pnl.iloc[-1] - sc[scen] == pytest.approx(expected, rel=1e-9, abs=1e-6)
        moved += abs(expected) > 1000.0
    assert moved > 0  # the spot moved the payoff between day 5 and day 10 on some kept path
    write_outputs(res, tmp_path / "out")
    said = [c for c in reports.caveats(tmp_path / "out") if "inside the horizon of" in c]
    assert len(said) == 1 and said[0].startswith("1 position expires or matures inside the horizon of hist_10d: SPX_WEEKLY.")


@pytest.mark.parametrize("section, message", [
    ("params: {equity: {stress_adv_mult: -0.5}}", r"liquidity.params, field 'equity.stress_adv_mult': Input should be greater than 0"),
    ("params: {equities: {participation_cap: 0.1}}", r"liquidity.params: unknown field 'equities'"),
    ("rule: {drawdown_steps: [[-0.03, 0.5]]}", r"field 'liquidity.rule.drawdown_steps': drawdown trigger must be > 0 .*\(got -0.03\)"),
    ("capacity: {family: crisiss}", r"field 'liquidity.capacity.family': no scenario family 'crisiss' .*\(got 'crisiss'\)"),
    ("capacity: {limits: [{metric: days_to_liquidate, max: 5, scope: stres}]}",
     r"field 'liquidity.capacity.limits\[0\].scope': the capacity table's scopes are base, stress \(got 'stres'\)"),
])
def test_validate_catches_what_the_section_would_refuse_later(tmp_path, section, message):
    # each passed validate (exit 0) and stopped the run only when the section ran, after every scenario
    from click.testing import CliRunner

    from stressgrid.cli import main

    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    text = section_batch("liq", "2014-03-29").replace("book: linear_book.csv", "book: book.csv")
    (tmp_path / "b.yaml").write_text(text + "liquidity:\n  " + section + "\n")
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    [line] = [x for x in res.output.splitlines() if x.strip()]
    import re

    assert line.startswith("error: ") and re.search(message, line), line


def test_each_sections_problem_is_reported_at_once(tmp_path):
    from click.testing import CliRunner

    from stressgrid.cli import main

    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    text = section_batch("liq", "2014-03-29")
    (tmp_path / "b.yaml").write_text(text + "liquidity:\n  capacity: {family: crisiss}\n"
                                     "optimise: {families: [crisiss], base_family: hist_10d}\n")
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 2, lines
    assert "field 'optimise.families': no scenario family 'crisiss'" in lines[0]
    assert "field 'liquidity.capacity.family': no scenario family 'crisiss'" in lines[1]


def test_every_problem_of_the_liquidity_section_is_reported_at_once(tmp_path):
    from click.testing import CliRunner

    from stressgrid.cli import main

    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    text = section_batch("liq", "2014-03-29")
    (tmp_path / "b.yaml").write_text(text + "liquidity:\n  params: {equities: {participation_cap: 0.1}}\n"
                                     "  rule: {drawdown_steps: [[-0.03, 0.5]]}\n"
                                     "  capacity: {family: crisiss, limits: [{metric: days_to_liquidate, max: 5, scope: stres}]}\n")
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 4 and all(x.startswith("error: ") for x in lines), lines
    for said in ("unknown field 'equities'", "field 'liquidity.rule.drawdown_steps'", "field 'liquidity.capacity.family'",
                 "field 'liquidity.capacity.limits[0].scope'"):
        assert sum(said in x for x in lines) == 1, (said, lines)
