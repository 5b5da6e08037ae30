"""Rules that add and the convexity overlay through the grid: a boost and an index-put overlay fire, show in
``rules_fired`` and ``rules_impact`` with their kind, the hedge is a row of ``adapted_positions`` and the
re-run's risk includes it; a zero budget changes nothing, bit for bit; a CVaR target is met by the re-run;
bad entries stop ``stressgrid validate`` with one line and exit 2."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from section_helpers import DATA, section_batch, section_inputs
from stressgrid import kernels, monitoring, reports
from stressgrid.cli import main
from stressgrid.core import var_cvar
from stressgrid.grid import SerialExecutor, execute, write_outputs

#: the overlay's vol surface: the bundled history has the SPX ATM vol only
MARKET = """\
market:
  as_of: 2017-03-29
  overrides: {VOL.SPX.SKEW: -0.2, VOL.SPX.CURV: 0.03, VOL.SPX.TERM: 0.01}
  flat:
    "VOL.SPX.SKEW": no skew history in the bundle
    "VOL.SPX.CURV": no curvature history in the bundle
    "VOL.SPX.TERM": no term-slope history in the bundle
"""
BOOST = "    - {kind: boost, when: [avg_corr], sleeves: [trend], factor: 1.2}\n"
PUT = "    - {kind: overlay, when: [avg_corr], underlying: EQ.SPX, strike: 0.9, expiry_days: 90, %s}\n"


def _batch(rules: str) -> str:
    text = section_batch("rules", "2015-03-29", """\
monitoring:
  forecasters: [sample]
  walk_forward: {train_days: 250, horizon_days: 20, roll_days: 120, start: 2016-06-01}
  backtest: {enabled: false}
  signals: {avg_corr: {threshold: 0.10}}      # low on purpose: it fires on 2017-03-29 (0.15)
  rules:
""" + rules + """\
  var_backtest: {window: 250, alpha: [0.99]}
""")
    return text.replace("market:\n  as_of: 2017-03-29\n", MARKET)


def _book() -> pd.DataFrame:
    """The linear test book and an S&P 500 put (so the snapshot holds the SPX surface and the USD curve)."""
    book = pd.read_csv(DATA / "linear_book.csv")
    put = {c: None for c in book.columns}
    put.update(id="SPX_P2200", type="option", underlying="EQ.SPX", quantity=20.0, multiplier=100, currency="USD",
               asset_class="equity", sleeve="defensive", adv=20000.0, bid_ask_bps=300.0, strike=2200.0,
               expiry="2017-09-15", option_type="put", dividend_yield=0.02)
    return pd.concat([book, pd.DataFrame([put])], ignore_index=True)


def _run(tmp_path_factory, name: str, rules: str):
    d = tmp_path_factory.mktemp(name)
    inputs = section_inputs(d, _batch(rules), _book())
    return inputs, execute(inputs, SerialExecutor())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _run(tmp_path_factory, "both", BOOST + PUT % "instrument: put, budget: 0.002")


def test_the_boost_and_the_overlay_fire_with_their_kind(run, tmp_path):
    inputs, res = run
    log = res.tables["rules_fired"]
    assert list(log.kind) == ["boost", "overlay"] and log.fired.all()
    assert log.action.iloc[0] == "scaled 2 positions by 1.2" and log.action.iloc[1].startswith("bought")
    imp = res.tables["rules_impact"]
    assert list(imp.kind) == ["boost", "overlay"] and list(imp.rule) == [0, 1]
    assert imp.position_id.iloc[1] == "OVERLAY_1"
    assert imp.premium.iloc[1] == pytest.approx(0.002 * 50_000_000, rel=1e-12)
    assert imp.carry_cost.iloc[1] > 0 and imp.carry_days.iloc[1] == 20
    assert imp.trade_cost.iloc[0] > 0  # the liquidity model's cost of the boost's trades
    assert imp.gross_after.iloc[0] > imp.gross_before.iloc[0] and imp.history_days.iloc[0] == 1250
    assert imp.cvar_after.iloc[1] < imp.cvar_before.iloc[1]  # the put cuts the book's historical CVaR
    write_outputs(res, tmp_path)
    assert reports.check_run_dir(tmp_path) == []
    back = pd.read_parquet(tmp_path / "rules_impact.parquet")
    assert list(back.columns) == monitoring.IMPACT_COLUMNS


def test_the_adapted_book_holds_the_hedge_and_its_risk(run):
    inputs, res = run
    ap = res.tables["adapted_positions"]
    new = ap[ap.position_id == "OVERLAY_1"].iloc[0]
    assert new["type"] == "option" and new["quantity_before"] == 0.0 and new["sleeve"] == "overlay"
    old = ap.iloc[: len(inputs.book.positions)]
    scale = (old["quantity"] / old["quantity_before"]).to_numpy()
    trend = inputs.book.positions["sleeve"].to_numpy() == "trend"
    assert np.all(scale[trend] == 1.2) and np.all(scale[~trend] == 1.0)
    # the re-run's crisis CVaR is that of the scaled positions plus the put revalued by the kernels
    rule = inputs.batch.monitoring.rules[1]
    hedge = monitoring.price_hedge(rule, 1, inputs.market, "USD", inputs.book.positions)
    fam = np.asarray(inputs.scenarios.family) == "crisis"
    put = kernels.revalue(hedge.prepared, inputs.market.levels, inputs.scenarios.shocks[fam], inputs.market.is_log)[:, 0]
    pnl = res.pnl[fam] @ scale + new["quantity"] * put
    arm = res.tables["adapted_risk_metrics"]
    got = arm[(arm.family == "crisis") & (arm.metric == "cvar") & (arm.confidence == 0.99)].value.iloc[0]
    assert got == pytest.approx(var_cvar(pnl, 0.99, inputs.scenarios.weights[fam])[1], rel=1e-10)
    rm = res.tables["risk_metrics"]
    assert set(arm.family) == set(rm.family)  # with the overlay, next to the original


def test_a_zero_budget_overlay_changes_nothing_bit_for_bit(tmp_path_factory):
    _, with_zero = _run(tmp_path_factory, "zero", BOOST + PUT % "instrument: put, budget: 0.0")
    _, alone = _run(tmp_path_factory, "alone", BOOST)
    for name in ("adapted_risk_metrics", "adapted_positions"):
        pd.testing.assert_frame_equal(with_zero.tables[name], alone.tables[name], check_exact=True)
    log = with_zero.tables["rules_fired"]
    assert log.kind.iloc[1] == "overlay" and log.fired.iloc[1] and log.action.iloc[1] == "none"


def test_an_overlay_sized_to_a_cvar_target_meets_it_in_the_rerun(tmp_path_factory):
    inputs, res = _run(tmp_path_factory, "target", PUT % "target: {cvar_cut: 0.2, family: hist_10d}")
    rm, arm = res.tables["risk_metrics"], res.tables["adapted_risk_metrics"]
    pick = lambda t: t[(t.family == "hist_10d") & (t.metric == "cvar") & (t.confidence == 0.99)].value.iloc[0]  # noqa: E731
    # the family values the book 10 days ahead: the put is sized on its aged revaluation, as the re-run values it
    assert pick(arm) == pytest.approx(0.8 * pick(rm), rel=1e-6)
    assert "CVaR" in res.tables["rules_fired"].detail.iloc[0]


@pytest.mark.parametrize("entry, expected", [
    ("budget: -0.002", "field 'monitoring.rules[1].budget': -0.002 must be a premium in [0, 1]"),
    ("budget: 0.002, instrument: payer_swaption", "field 'monitoring.rules[1].instrument': a payer swaption overlay is not available yet"),
    ("budget: 0.002, instrument: swaption", "field 'monitoring.rules[1].instrument': unknown instrument 'swaption'"),
])
def test_validate_names_a_bad_overlay_on_one_line(tmp_path, entry, expected):
    _book().to_csv(tmp_path / "book.csv", index=False)
    (tmp_path / "b.yaml").write_text(_batch(BOOST + PUT % entry))
    out = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert out.exit_code == 2, out.output
    lines = [x for x in out.output.splitlines() if x.strip()]
    assert len(lines) == 1 and expected in lines[0], out.output


def test_an_underlying_the_snapshot_lacks_is_one_line_at_validate(tmp_path):
    """Checked once the market snapshot is built, before any scenario is drawn: validate names the rule."""
    from stressgrid.core import ConfigError

    _book().to_csv(tmp_path / "book.csv", index=False)
    (tmp_path / "b.yaml").write_text(_batch(PUT.replace("EQ.SPX", "EQ.NDX") % "budget: 0.002"))
    out = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert out.exit_code == 2, out.output
    lines = [x for x in out.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "monitoring.rules[0], field 'underlying': the market snapshot has no EQ.NDX" in lines[0]
    with pytest.raises(ConfigError, match=r"^monitoring.rules\[0\], field 'underlying': the market snapshot has no EQ.NDX"):
        section_inputs(tmp_path, _batch(PUT.replace("EQ.SPX", "EQ.NDX") % "budget: 0.002"), _book())
