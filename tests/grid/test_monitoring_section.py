"""The batch's ``monitoring`` section through the grid: the book's P&L history, walk-forward, signals,
rules, VaR backtests, and the stress batch re-run on the book the rules produce."""

import numpy as np
import pandas as pd
import pytest

from stressgrid import reports
from stressgrid.core import var_cvar
from stressgrid.grid import SerialExecutor, execute, write_outputs
from section_helpers import section_batch, section_inputs
from stressgrid.grid._monitoring import book_pnl_history

BATCH = section_batch("mon", "2015-03-29", """\
  - kind: montecarlo
    name: mc
    model: gaussian
    n_scenarios: 300
    window: {end: 2017-03-29, lookback_days: 500}
monitoring:
  forecasters: [sample, ewma]
  walk_forward: {train_days: 250, horizon_days: 20, roll_days: 60, start: 2016-01-01}
  drift: {window: 2}
  signals: {avg_corr: {threshold: 0.10}}      # low on purpose: it fires on 2017-03-29 (0.15)
  rules:
    - {kind: delever_cluster, when: [avg_corr], factor: 0.5, min_corr: 0.3}
    - kind: stressed_correlation
      when: [avg_corr]
      correlation: {blend: 1.0, targets: [{a: equity, b: equity, value: 0.9}]}
  var_backtest: {window: 250, alpha: [0.99]}
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("mon")
    inputs = section_inputs(d, BATCH)
    return inputs, execute(inputs, SerialExecutor()), d


def test_book_pnl_history_is_the_daily_replay(run, history):
    inputs, res, _ = run
    ph = book_pnl_history(inputs, 30)
    assert len(ph) == 30 and ph.index[-1] == pd.Timestamp("2017-03-29")
    # an equity position's P&L on a day: quantity x multiplier x its price the day before x that day's
    # log move mapped back: the kernels revalue at today's level, so P&L = q m S0 (exp(r) - 1)
    pos = inputs.book.positions
    k = int(np.flatnonzero(pos["type"].to_numpy() == "equity")[0])
    p = pos.iloc[k]
    s = history.levels[p["underlying"]].loc[:"2017-03-29"].dropna()
    day = ph.index[-5]
    r = np.log(s.loc[:day].iloc[-1] / s.loc[:day].iloc[-2])
    expected = p["quantity"] * p["multiplier"] * s.iloc[-1] * np.expm1(r)
    assert ph.iloc[-5, k] == pytest.approx(expected, rel=1e-10)


def test_tables_and_schema(run, tmp_path):
    inputs, res, _ = run
    for t in ("walk_forward", "champion_challenger", "signals", "rules_fired", "var_backtest",
              "adapted_risk_metrics", "adapted_positions"):
        assert t in res.tables and len(res.tables[t]), t
    assert res.notes["monitoring"]["rules_fired"] >= 1
    write_outputs(res, tmp_path)
    assert reports.check_run_dir(tmp_path) == []
    # the monitoring tables' columns (not fixed by the schema) follow its naming too: no reserved SQL word,
    # date ranges as window_start/window_end, the position key position_id, lists of signal names
    for name, df in res.tables.items():
        assert not {"start", "end", "window", "id", "group", "limit", "position"} & set(df.columns), name
    for name in ("walk_forward", "var_backtest", "rebalance_backtest"):
        assert {"window_start", "window_end"} <= set(res.tables[name].columns), name
    assert res.tables["var_backtest"]["lookback_days"].tolist() == [250]
    assert "position_id" in res.tables["adapted_positions"]
    rf = pd.read_parquet(tmp_path / "rules_fired.parquet")
    assert [list(v) for v in rf["signal"]] == [["avg_corr"], ["avg_corr"]]


def test_the_adapted_book_is_rerun_exactly(run):
    inputs, res, _ = run
    ap = res.tables["adapted_positions"]
    scale = (ap["quantity"] / ap["quantity_before"]).to_numpy()
    assert set(np.round(scale, 12)) <= {0.5, 1.0} and (scale == 0.5).any()
    # linear book: the adapted P&L is each position's P&L times its scale, so its CVaR can be recomputed
    # from the original run's position-level P&L without the kernels
    pnl = res.pnl * scale[None, :]
    fam = np.asarray(inputs.scenarios.family)
    arm = res.tables["adapted_risk_metrics"]
    for f in ("crisis", "hist_10d"):
        idx = fam == f
        for a in (0.95, 0.99):
            var, cvar = var_cvar(pnl[idx].sum(axis=1), a, inputs.scenarios.weights[idx])
            got = arm[(arm.family == f) & (arm.metric == "cvar") & (arm.confidence == a)].value.iloc[0]
            assert got == pytest.approx(cvar, rel=1e-10)


def test_a_stressed_correlation_rule_regenerates_the_monte_carlo(run):
    from stressgrid import kernels
    from stressgrid import scenarios

    inputs, res, _ = run
    ap = res.tables["adapted_positions"]
    scale = (ap["quantity"] / ap["quantity_before"]).to_numpy()
    rows = np.asarray(inputs.scenarios.family) == "mc"
    _, same_draws = var_cvar((res.pnl[rows] * scale).sum(axis=1), 0.99, inputs.scenarios.weights[rows])
    arm = res.tables["adapted_risk_metrics"]
    got = arm[(arm.family == "mc") & (arm.metric == "cvar") & (arm.confidence == 0.99)].value.iloc[0]
    assert abs(got - same_draws) > 1e-6 * same_draws  # new draws, not the old ones rescaled
    # the same thing built by hand: the mc entry with the rule's correlation stress, its own seed,
    # revalued on the adapted book
    spec = inputs.batch.scenarios[2].model_dump(mode="json", exclude_none=True)
    spec["amplify"] = {"correlation": {"blend": 1.0, "targets": [{"a": "equity", "b": "equity", "value": 0.9}]}}
    spec = type(inputs.batch.scenarios[2]).model_validate(spec)
    seed = np.random.SeedSequence(inputs.batch.seed).spawn(3)[2]
    mc = scenarios.generate(spec, inputs.history, inputs.market.factors, seed=seed, market=inputs.market).reorder(inputs.market.factors)
    book = inputs.book.positions.assign(quantity=ap["quantity"].to_numpy())
    prepared = kernels.prepare(book, inputs.market.factors, "USD", inputs.market.as_of, levels=inputs.market.levels)
    pnl = kernels.revalue(prepared, inputs.market.levels, mc.shocks, inputs.market.is_log)
    _, expected = var_cvar(pnl.sum(axis=1), 0.99, mc.weights)
    assert got == pytest.approx(expected, rel=1e-10)
    log = res.tables["rules_fired"]
    assert set(log[log.fired].kind) == {"delever_cluster", "stressed_correlation"}


def test_var_backtest_counts_exceptions_of_the_book(run):
    inputs, res, _ = run
    vs = res.tables["var_series"]
    vb = res.tables["var_backtest"].iloc[0]
    live = vs.dropna(subset=["var"])
    assert int(vb["exceptions"]) == int((-live["pnl"] > live["var"]).sum()) == int(live["exception"].sum())
    assert vb["days"] == len(live) and vb["expected"] == pytest.approx(0.01 * len(live))
    # the model's VaR on a day is the historical VaR of the 250 days before it (Rockafellar-Uryasev
    # quantile, equal weights), recomputed here from the book's P&L history
    pnl = vs["pnl"].to_numpy()
    t = len(vs) - 1
    var, _ = var_cvar(pnl[t - 250:t], 0.99)
    assert vs["var"].iloc[t] == pytest.approx(var, rel=1e-12)


def test_drift_limit_and_regime_view_through_the_run(run, tmp_path):
    """The champion's correlation drift goes into breaches through a limit, like any other; the regime view
    and the portfolio columns of the champion table are written and shown in the report."""
    inputs, res, _ = run
    cc = res.tables["champion_challenger"]
    assert {"sharpe", "max_drawdown", "turnover", "information_ratio", "p_value", "significance"} <= set(cc.columns)
    bt = res.tables["rebalance_backtest"]
    first = bt[bt.method == cc.method.iloc[0]].set_index("forecaster")
    np.testing.assert_allclose(cc.set_index("forecaster")["sharpe"], first.loc[cc.forecaster, "sharpe"].to_numpy())
    drift = res.tables["correlation_drift"]
    champ = drift[(drift.role == "champion") & drift.rolling_error.notna()].sort_values("date")
    write_outputs(res, tmp_path)
    lim = reports.parse_limits({"limits": [{"metric": "correlation_drift", "max": 0.0001}]})
    b = reports.evaluate_limits(tmp_path, lim)
    assert b.breached.all() and b.value.iloc[0] == pytest.approx(champ.rolling_error.iloc[-1])
    html = reports.render_report(tmp_path, breaches=b)
    assert 'id="monitoring-correlation_drift"' in html and "correlation_drift book" in html
    # the default monitoring factors include EQ.SPX and IR.USD.10Y: the regime view is on
    view = res.tables["regime_view"].set_index("regime")
    assert list(view.index) == ["historical", "risk_off", "risk_on", "latest"]
    assert view.loc["latest", "forecaster"] == "sample" and 'id="monitoring-regime_view"' in html


def test_on_ray_the_walk_forward_runs_beside_the_other_sections_with_the_same_tables(ray_session, run):
    """On a parallel executor the walk-forward starts before the run is reduced, its steps on the workers
    while the driver computes the other sections; every table is the serial run's."""
    from stressgrid.grid import RayExecutor

    inputs, serial, _ = run
    res = execute(inputs, RayExecutor())
    assert res.timings["monitoring_walk_forward"] > 0  # started beside the other sections
    assert "monitoring_walk_forward" not in serial.timings  # a serial run has nothing to run beside it
    assert set(res.tables) == set(serial.tables)
    for name in res.tables:
        timed = [c for c in res.tables[name].columns if c == "seconds"]  # the fits' own timings
        pd.testing.assert_frame_equal(res.tables[name].drop(columns=timed), serial.tables[name].drop(columns=timed),
                                      check_exact=True, obj=name)


def test_a_failed_walk_forward_started_early_fails_the_run_with_its_error(ray_session, run, monkeypatch):
    """The walk-forward's error, raised on its own thread, is raised by the run (not lost with the thread)."""
    from stressgrid import monitoring
    from stressgrid.core import TaskError
    from stressgrid.grid import RayExecutor

    inputs, _, _ = run
    calls = []

    def fails(*args, **kwargs):
        calls.append(args)
        raise TaskError("walk-forward step 2016-01-04 failed: ValueError: broken")

    monkeypatch.setattr(monitoring, "monitoring_walk_forward", fails)
    with pytest.raises(TaskError, match="2016-01-04 failed: ValueError: broken"):
        execute(inputs, RayExecutor())
    assert len(calls) == 1


def test_a_walk_forward_longer_than_the_history_stops_the_batch_at_validate(tmp_path):
    # it passed validate and stopped the run only when the walk-forward was planned, after the scenarios
    from click.testing import CliRunner

    from section_helpers import DATA
    from stressgrid.cli import main

    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(BATCH.replace("train_days: 250", "train_days: 20000"))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    [line] = [x for x in res.output.splitlines() if x.strip()]
    assert line.startswith(f"error: batch file {tmp_path / 'b.yaml'}, field 'monitoring.walk_forward': no forecast date fits: "), line
    assert "with train_days=20000, horizon_days=20, start=2016-01-01, end=2017-03-29;" in line
