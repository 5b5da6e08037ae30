"""The batch's ``factor_model`` section and the ``optimise`` objectives that read it (``factor_target``,
``factor_risk_parity``), with ``herc`` and several cases in one section: exposures checked against
scikit-learn and least squares on factor moves computed here from the history, targets against
scipy's bounded least squares, risk shares recomputed from the run's own P&L, and bad settings as one
line, exit 2."""

import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.optimize import lsq_linear
from sklearn.linear_model import Lasso, LassoCV
from sklearn.model_selection import TimeSeriesSplit

from stressgrid import reports
from stressgrid.cli import main
from stressgrid.core import ConfigError
from stressgrid.grid import SerialExecutor, execute, write_outputs
from section_helpers import BOOT, DATA, section_batch, section_inputs

NAV = 50_000_000.0
FACTORS = ["equity", "oil", "rates"]
DAILY = """\
  - kind: rolling
    name: daily
    horizon_days: 1
    start: 2015-03-27
    end: 2017-03-29
"""
FACTOR_MODEL = """\
factor_model:
  family: daily
  factors:
    equity: EQ.SPX
    oil: CMD.WTI
    rates: {IR.USD.10Y: -7}
"""
CASES = """\
optimise:
  - name: target
    families: [hist_10d]
    objective: factor_target
    factor_target: {exposures: {equity: 0.5, oil: 0.05, rates: 0.2}}
    signs: free
    weight_bounds: [-0.3, 0.3]
    max_gross_multiple: 3
  - name: band
    families: [hist_10d]
    objective: factor_target
    factor_target: {exposures: {equity: 0.5, oil: 0.05, rates: 0.2}, tolerance: 0.05}
    signs: free
    weight_bounds: [-0.3, 0.3]
    max_gross_multiple: 3
  - name: long_only
    families: [hist_10d]
    objective: factor_target
    factor_target: {exposures: {equity: 0.5, oil: -0.05, rates: 0.2}}
    signs: free
    weight_bounds: [0, 0.3]
    max_gross_multiple: 10
  - name: frp
    families: [hist_10d]
    objective: factor_risk_parity
    signs: free
    weight_bounds: [-1, 1]
    max_gross_multiple: 10
  - name: herc
    families: [hist_10d]
    objective: herc
    herc: {n_clusters: 3}
"""


def _batch(rest: str) -> str:
    return section_batch("fac", "2014-03-29", DAILY + rest)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    inputs = section_inputs(tmp_path_factory.mktemp("fac"), _batch(FACTOR_MODEL + CASES))
    return inputs, execute(inputs, SerialExecutor())


def _observations(inputs, res):
    """Per-unit-weight returns of the daily family ``[T, N]`` and the factor moves ``[T, 3]``, computed
    here from the history at each scenario's dates (not through the section's code)."""
    scen = inputs.scenarios
    rows = np.flatnonzero(np.asarray(scen.family) == "daily")
    info = scen.info.iloc[rows]
    lv = inputs.history.levels[["EQ.SPX", "CMD.WTI", "IR.USD.10Y"]]
    # the level on each date, or the last one within a week before it (the rolling windows' convention)
    a, b = ({f: lv[f].dropna().reindex(pd.DatetimeIndex(info[k]), method="ffill", tolerance=pd.Timedelta(days=7))
             for f in lv.columns} for k in ("start", "end"))
    F = np.column_stack([np.log(b["EQ.SPX"].to_numpy() / a["EQ.SPX"].to_numpy()),
                         np.log(b["CMD.WTI"].to_numpy() / a["CMD.WTI"].to_numpy()),
                         -7.0 * (b["IR.USD.10Y"].to_numpy() - a["IR.USD.10Y"].to_numpy())])
    order = np.argsort(pd.DatetimeIndex(info["start"]).to_numpy(), kind="stable")
    F, R_rows, info = F[order], rows[order], info.iloc[order]
    w = res.tables["reoptimisation_weights"]
    cur = w[w.case_name == "target"].set_index("position_id")["weight_current"]
    ids = list(inputs.book.positions["id"])
    R = res.pnl[R_rows] / (cur.loc[ids].to_numpy() * NAV)
    ok = np.all(np.isfinite(F), axis=1)
    return R[ok], F[ok], info[ok]


def _loadings(res, method, level="position"):
    fe = res.tables["factor_exposures"]
    g = fe[(fe.level == level) & (fe.method == method)]
    return g.pivot(index="name", columns="factor", values="loading")[FACTORS]


def test_lasso_exposures_match_scikit_learn_on_the_history(run):
    inputs, res = run
    R, F, _ = _observations(inputs, res)
    fe = res.tables["factor_exposures"]
    assert set(fe.method) == {"lasso", "ridge", "ols"} and set(fe.level) == {"position", "sleeve", "asset_class"}
    assert (fe.n_observations == len(F)).all()
    B = _loadings(res, "lasso").loc[list(inputs.book.positions["id"])].to_numpy()
    sd = F.std(axis=0)
    pen = fe[(fe.level == "position") & (fe.method == "lasso")].drop_duplicates("name").set_index("name")["penalty"]
    for i, pid in enumerate(inputs.book.positions["id"][:6]):
        cv = LassoCV(cv=TimeSeriesSplit(5), tol=1e-8, max_iter=100_000).fit(F / sd, R[:, i])
        assert pen[pid] == pytest.approx(cv.alpha_, rel=1e-12)
        ref = Lasso(alpha=cv.alpha_, tol=1e-12, max_iter=1_000_000).fit(F / sd, R[:, i]).coef_ / sd
        np.testing.assert_allclose(B[i], ref, atol=2e-6)


def test_least_squares_loadings_t_stats_and_group_identity(run):
    inputs, res = run
    R, F, _ = _observations(inputs, res)
    X = np.column_stack([np.ones(len(F)), F])
    coef = np.linalg.inv(X.T @ X) @ X.T @ R
    resid = R - X @ coef
    s2 = (resid ** 2).sum(axis=0) / (len(F) - 4)
    se = np.sqrt(np.outer(np.diag(np.linalg.inv(X.T @ X)), s2))
    ids = list(inputs.book.positions["id"])
    B = _loadings(res, "ols").loc[ids].to_numpy()
    np.testing.assert_allclose(B, coef[1:].T, rtol=1e-9, atol=1e-12)
    fe = res.tables["factor_exposures"]
    t = fe[(fe.level == "position") & (fe.method == "ols")].pivot(index="name", columns="factor", values="t_stat")
    np.testing.assert_allclose(t.loc[ids, FACTORS].to_numpy(), (coef[1:] / se[1:]).T, rtol=1e-9)
    # least squares is linear: a sleeve's loadings are its positions' loadings weighted by exposure / NAV
    w0 = res.tables["reoptimisation_weights"].query("case_name == 'target'").set_index("position_id")["weight_current"]
    sleeve = inputs.book.positions.set_index("id")["sleeve"]
    for name, g in _loadings(res, "ols", "sleeve").iterrows():
        members = [i for i in ids if sleeve[i] == name]
        np.testing.assert_allclose(g.to_numpy(), w0[members].to_numpy() @ B[[ids.index(m) for m in members]],
                                   rtol=1e-8, atol=1e-12)


def _exposures(res, case):
    ex = res.tables["reoptimisation_exposures"]
    return ex[ex.case_name == case].set_index("factor").loc[FACTORS]


def test_target_hit_exactly_and_the_band_is_nearer(run):
    inputs, res = run
    s = res.tables["reoptimisation"].set_index("case_name")
    assert list(res.tables["reoptimisation"].case_name) == ["target", "band", "long_only", "frp", "herc"]
    assert list(s.loc[["target", "band"], "method"]) == ["factor_target"] * 2
    assert s.loc["target", "status"] == "optimal" and s.loc["band", "status"] == "optimal"
    t = np.array([0.5, 0.05, 0.2])
    e = _exposures(res, "target")
    np.testing.assert_allclose(e.target, t, atol=0)
    np.testing.assert_allclose(e.exposure_after, t, atol=1e-7)
    band = _exposures(res, "band")
    assert np.all(np.abs(band.exposure_after - t) <= 0.05 + 1e-7)
    # "nearest" is the least tracking error against the current book on the family's scenarios (plus 1%
    # of each position's own variance), recomputed here from the run's P&L: the band is nearer
    fam = np.asarray(inputs.scenarios.family) == "hist_10d"
    w = res.tables["reoptimisation_weights"]
    ids = list(inputs.book.positions["id"])
    cur = w[w.case_name == "target"].set_index("position_id").loc[ids, "weight_current"].to_numpy()
    R = res.pnl[fam] / (cur * NAV)
    cov = np.cov(R.T, ddof=0)
    S = cov + np.diag(0.01 * np.diag(cov) + 1e-3 * np.diag(cov).mean())

    def distance(case):
        d = w[w.case_name == case].set_index("position_id").loc[ids, "weight_new"].to_numpy() - cur
        return d @ S @ d

    assert distance("band") < distance("target") - 1e-5
    for case in ("target", "band"):
        new = w[w.case_name == case].weight_new
        assert new.between(-0.3 - 1e-9, 0.3 + 1e-9).all()


def test_long_only_target_matches_bounded_least_squares(run):
    inputs, res = run
    ids = list(inputs.book.positions["id"])
    B = _loadings(res, "lasso").loc[ids].to_numpy()
    t = np.array([0.5, -0.05, 0.2])   # long-only stocks cannot be short oil
    ref = lsq_linear(B.T, t, bounds=(0.0, 0.3), tol=1e-12, lsmr_tol="auto", max_iter=10_000)
    e = _exposures(res, "long_only")
    np.testing.assert_allclose(e.exposure_after, B.T @ ref.x, atol=1e-6)
    row = res.tables["reoptimisation"].set_index("case_name").loc["long_only"]
    assert row.status == "target_missed"
    assert re.search(r"closest equity .* \(target 0\.5\), oil .* \(target -0\.05\).*bounds binds \(widen optimise\.weight_bounds", row.message)
    w = res.tables["reoptimisation_weights"].query("case_name == 'long_only'")
    assert (w.weight_new >= -1e-9).all()


def test_factor_risk_parity_shares_equal_on_the_runs_pnl(run):
    inputs, res = run
    ids = list(inputs.book.positions["id"])
    B = _loadings(res, "lasso").loc[ids].to_numpy()
    fam = np.asarray(inputs.scenarios.family) == "hist_10d"
    w = res.tables["reoptimisation_weights"].query("case_name == 'frp'").set_index("position_id").loc[ids]
    R = res.pnl[fam] / (w.weight_current.to_numpy() * NAV)
    p = inputs.scenarios.weights[fam] / inputs.scenarios.weights[fam].sum()
    Fm = R @ B @ np.linalg.inv(B.T @ B)                     # factor returns implied in each scenario
    X = Fm - p @ Fm
    omega = X.T @ (X * p[:, None])
    y = B.T @ w.weight_new.to_numpy()
    shares = y * (omega @ y) / (y @ omega @ y)
    np.testing.assert_allclose(shares, 1 / 3, atol=1e-6)
    e = _exposures(res, "frp")
    np.testing.assert_allclose(e.risk_share_after, shares, atol=1e-9)
    np.testing.assert_allclose(e.risk_budget, 1 / 3, atol=1e-15)
    y0 = B.T @ w.weight_current.to_numpy()
    assert y @ omega @ y == pytest.approx(y0 @ omega @ y0, rel=1e-6)   # the current systematic variance
    assert res.tables["reoptimisation"].set_index("case_name").loc["frp", "status"] == "optimal"


def test_herc_keeps_signs_and_gross(run):
    _, res = run
    w = res.tables["reoptimisation_weights"].query("case_name == 'herc'")
    assert set(res.tables["reoptimisation"].query("case_name == 'herc'").method) == {"herc"}
    assert np.array_equal(np.sign(w.weight_new), np.sign(w.weight_current))
    assert np.abs(w.weight_new).sum() == pytest.approx(np.abs(w.weight_current).sum(), rel=1e-12)


def test_ray_gives_the_same_cases(ray_session, run):
    """Every (case, family) is one task of one map: on Ray, results come back by task and are the same."""
    from stressgrid.grid import RayExecutor

    inputs, res = run
    again = execute(inputs, RayExecutor(workers=2))
    for t in ("reoptimisation", "reoptimisation_weights", "reoptimisation_exposures", "factor_exposures"):
        pd.testing.assert_frame_equal(again.tables[t], res.tables[t], check_exact=False, rtol=1e-7, atol=1e-9)


def test_tables_follow_the_schema_and_the_report_shows_them(run, tmp_path):
    _, res = run
    write_outputs(res, tmp_path)
    assert reports.check_run_dir(tmp_path) == []
    html = reports.render_report(tmp_path)
    assert "Factor exposures: target and achieved" in html and 'id="factors"' in html


@pytest.mark.parametrize("rest, match", [
    (FACTOR_MODEL + "optimise:\n  objective: factor_target\n  factor_target: {exposures: {credit: 0.1}}\n",
     r"field 'optimise': no factor 'credit' in factor_model.factors \(equity, oil, rates\)"),
    (FACTOR_MODEL.replace("family: daily", "family: crisis_x"), r"field 'factor_model.family': no scenario family 'crisis_x'"),
    (FACTOR_MODEL + "optimise:\n  - {objective: hrp, families: [crisis]}\n  - {objective: hrp}\n",
     r"field 'optimise': case name 'hrp' is used twice"),
    (FACTOR_MODEL.replace("rates: {IR.USD.10Y: -7}", "rates: {IR.USD.10Y: 0}"),
     r"coefficient of IR.USD.10Y must be a non-zero number"),
])
def test_bad_settings_are_one_line_exit_2_at_validate(tmp_path, rest, match):
    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(_batch(rest))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(match, lines[0]), res.output


def test_a_factor_without_history_and_an_undated_family_are_one_line(tmp_path):
    (tmp_path / "book.csv").write_text((DATA / "linear_book.csv").read_text())
    (tmp_path / "b.yaml").write_text(_batch(FACTOR_MODEL.replace("CMD.WTI", "EQ.NOPE")))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "b.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "field 'factor_model.factors.oil': no history for EQ.NOPE" in lines[0], res.output
    with pytest.raises(ConfigError, match=r"family 'boot' is bootstrap; the factor model needs dated observations"):
        section_inputs(tmp_path, section_batch("fac", "2014-03-29", BOOT + FACTOR_MODEL.replace("family: daily", "family: boot")))


@pytest.mark.slow
def test_the_factor_allocation_example_runs_as_a_user_runs_it(tmp_path):
    """``stressgrid run examples/factor_allocation.yaml`` from another folder: the four cases, each target
    reached where the bounds allow it, the report written."""
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    res = CliRunner().invoke(main, ["run", str(examples / "factor_allocation.yaml"), "--out", str(tmp_path / "run"),
                                    "--serial", "--quiet"])
    assert res.exit_code == 0, res.output
    ro = pd.read_parquet(tmp_path / "run" / "reoptimisation.parquet")
    assert list(dict.fromkeys(ro.case_name)) == ["case1_target", "case2_long_only", "case3_liquid_long_only",
                                                 "case4_factor_risk_parity"]
    ex = pd.read_parquet(tmp_path / "run" / "reoptimisation_exposures.parquet")
    hit = ex[ex.case_name.str.startswith(("case1", "case2", "case3"))]
    np.testing.assert_allclose(hit.exposure_after, hit.target, atol=1e-6)
    w = pd.read_parquet(tmp_path / "run" / "reoptimisation_weights.parquet")
    assert (w[w.case_name == "case2_long_only"].weight_new >= -1e-9).all()
    excluded = w[(w.case_name == "case3_liquid_long_only") & w.position_id.isin(["BRLUSD_FWD", "MXNUSD_FWD"])]
    assert len(excluded) and (excluded.weight_new.abs() <= 1e-9).all()
    assert w[w.case_name == "case4_factor_risk_parity"].weight_new.abs().max() <= 0.5 + 1e-9
    assert (tmp_path / "run" / "report.html").is_file()


def test_a_factor_no_position_loads_on_is_named_in_the_message(tmp_path):
    """A factor of pure noise (a seeded random walk in the user's history, held by no position): its
    least-squares t-statistics stay below 2, and the factor objectives say their exposure to it rests on
    noise rather than report it silently."""
    book = pd.read_csv(DATA / "linear_book.csv")
    from stressgrid.core import BUNDLED_HISTORY

    dates = pd.read_parquet(BUNDLED_HISTORY)["date"]
    dates = dates[(dates >= "2014-01-01") & (dates <= "2017-03-29")]
    rng = np.random.default_rng(11)
    pd.DataFrame({"date": pd.to_datetime(dates).dt.strftime("%Y-%m-%d"),
                  "NOISE": 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(len(dates))))}).to_csv(
        tmp_path / "noise.csv", index=False)
    text = _batch(FACTOR_MODEL.replace("    rates: {IR.USD.10Y: -7}\n", "    rates: {IR.USD.10Y: -7}\n    noise: EQ.NOISE\n")
                  + "optimise:\n  - {objective: factor_risk_parity, families: [hist_10d], signs: free, "
                    "weight_bounds: [-1, 1], max_gross_multiple: 10}\n")
    text = text.replace("market:\n", "history:\n  - {path: noise.csv, columns: {NOISE: EQ.NOISE}}\n  - bundled\nmarket:\n")
    res = execute(section_inputs(tmp_path, text, book), SerialExecutor())
    fe = res.tables["factor_exposures"]
    t = fe[(fe.level == "position") & (fe.method == "ols") & (fe.factor == "noise")].t_stat.abs()
    assert len(t) and t.max() < 2
    msg = res.tables["reoptimisation"].message.iloc[0]
    assert "weak factor noise" in msg and "equity" not in msg.split("weak factor")[1], msg
