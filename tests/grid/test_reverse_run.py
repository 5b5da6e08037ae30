"""Reverse stress tests through a whole run, on the demo's short strangle (two short SPX options):
the solution's loss after full revaluation is the target, no point of a dense grid on the same loss is
closer, both tails are found, and the worst loss within a bound sits on the bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import optimize, stats

from stressgrid import kernels, scenarios
from stressgrid.grid import run_batch

from section_helpers import read_run_table

ROOT = Path(__file__).resolve().parents[2]
FREE = ["EQ.SPX", "VOL.SPX.ATM"]
NAV = 250e6


def _batch(tmp_path: Path, stream: bool = False) -> Path:
    spec = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    for section in ("liquidity", "factor_model", "optimise", "monitoring", "limits"):
        spec.pop(section, None)
    book = pd.read_csv(ROOT / "examples" / "demo_book.csv")
    book[book["sleeve"] == "short_vol"].to_csv(tmp_path / "strangle.csv", index=False)
    spec["book"] = "strangle.csv"
    spec["nav"] = NAV
    spec["market"]["flat"] = {}
    spec["market"]["max_unmodelled_share"] = 1.0
    window = {"end": "2018-12-31", "lookback_days": 750}
    spec["scenarios"] = [
        dict(kind="reverse", name="rev", loss=["0.4%", 2500000], within={"probability": 0.01}, factors=FREE,
             window=window, horizon_days=10),
        dict(kind="reverse", name="rev_all", loss="1m", window=window, horizon_days=10, revaluation="instantaneous"),
    ]
    spec["execution"] = {"stream": stream}
    p = tmp_path / f"batch_{stream}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reverse")
    res = run_batch(_batch(tmp), tmp / "out", serial=True)
    return res, read_run_table(tmp / "out", "scenarios"), tmp


def _model(inputs, free):
    """The family's model rebuilt here: the 10-day covariance of the factors with history, A with
    A A' = S_cc and T, the map from whitened coordinates to shocks on the market's factors."""
    moves, _ = scenarios.daily_moves(inputs.history, inputs.market.factors,
                                     scenarios.WindowSpec(end="2018-12-31", lookback_days=750), inputs.market.as_of)
    cov = scenarios.estimate_covariance(moves.to_numpy(), scenarios.EstimatorSpec(method="ledoit_wolf"))[0] * 10
    names = list(moves.columns)
    c = [names.index(f) for f in free]
    o = [j for j in range(len(names)) if j not in c]
    A = np.linalg.cholesky(cov[np.ix_(c, c)])
    T = np.zeros((len(inputs.market.factors), len(c)))
    pos = {f: j for j, f in enumerate(inputs.market.factors)}
    T[[pos[names[j]] for j in c]] = A
    T[[pos[names[j]] for j in o]] = cov[np.ix_(o, c)] @ np.linalg.inv(cov[np.ix_(c, c)]) @ A
    return T, A


def test_the_solution_loses_the_target_after_full_revaluation(run):
    res, s, _ = run
    r = s.set_index("scenario")
    assert r.loc["rev:loss=0.4%", "pnl"] == pytest.approx(-0.004 * NAV, rel=1e-6)
    assert r.loc["rev:loss=2.5m", "pnl"] == pytest.approx(-2.5e6, rel=1e-6)
    assert r.loc["rev_all:loss=1m", "pnl"] == pytest.approx(-1e6, rel=1e-6)
    rev = s[s["family"] == "rev"]
    assert rev["converged"].all() and (rev["kind"] == "reverse").all()
    np.testing.assert_allclose(rev["tail_probability"], stats.norm.sf(rev["distance"]), rtol=1e-12)
    assert r.loc["rev:within probability=0.01", "distance"] == pytest.approx(stats.norm.isf(0.01), rel=1e-7)
    # the family revalued at its horizon: the short options' decay is in the P&L
    assert (rev["revaluation"] == "horizon").all() and (rev["pnl_time"] > 0).all()


def test_no_point_of_a_dense_grid_on_the_same_loss_is_closer(run):
    """Polar grid of 20,000 directions in the plane of the two free factors: along each, the first radius
    whose full-revaluation loss reaches the target is no smaller than the solution's distance."""
    res, s, _ = run
    inputs = res.run.inputs
    T, A = _model(inputs, FREE)
    book = inputs.books[inputs.family_books["rev"]]
    levels, is_log = inputs.market.levels, inputs.market.is_log
    row = s.set_index("scenario").loc["rev:loss=2.5m"]
    theta = np.linspace(-np.pi, np.pi, 20_000, endpoint=False)
    dirs = np.stack([np.cos(theta), np.sin(theta)], axis=1)

    def loss(r):  # [n] radii along every direction
        return -kernels.revalue(book, levels, (r[:, None] * dirs) @ T.T, is_log).sum(axis=1)

    radii = np.linspace(0.0, 1.0, 201) * float(row["distance"])
    first_below = np.array([loss(np.full(len(dirs), r)) for r in radii])  # [radii, directions]
    assert first_below[:-1].max() < 2.5e6 * (1 + 1e-9)  # nothing strictly inside reaches the target
    # and the solution's own point is the one on the circle that does
    z = np.linalg.solve(A, np.asarray(pd.Series(res.run.inputs.scenarios.shocks[
        list(res.run.inputs.scenarios.names).index("rev:loss=2.5m")], index=inputs.market.factors)[FREE]))
    assert np.linalg.norm(z) == pytest.approx(row["distance"], rel=1e-9)


def test_both_tails_of_the_strangle_are_found(run):
    """A short strangle loses on a fall and on a rise: a second local solution is reported as such."""
    res, s, _ = run
    rows = s[s["scenario"].str.startswith("rev:loss=2.5m")].set_index("scenario")
    assert list(rows.index) == ["rev:loss=2.5m", "rev:loss=2.5m:alt1"]
    assert not rows["starts_agree"].any() and rows["converged"].all()
    assert rows["distance"].iloc[0] <= rows["distance"].iloc[1]
    np.testing.assert_allclose(rows["pnl"], -2.5e6, rtol=1e-6)
    scen = res.run.inputs.scenarios
    spx = list(scen.factors).index("EQ.SPX")
    moves = [scen.shocks[list(scen.names).index(n), spx] for n in rows.index]
    assert moves[0] * moves[1] < 0  # one falls, the other rises


def test_the_search_matches_scipy_on_the_unrestricted_family(run):
    """The family that moves every factor: the same optimum as an independent constrained solve
    (trust-constr) on the full revaluation."""
    res, s, _ = run
    inputs = res.run.inputs
    row = s.set_index("scenario").loc["rev_all:loss=1m"]
    moves, _ = scenarios.daily_moves(inputs.history, inputs.market.factors,
                                     scenarios.WindowSpec(end="2018-12-31", lookback_days=750), inputs.market.as_of)
    cov = scenarios.estimate_covariance(moves.to_numpy(), scenarios.EstimatorSpec(method="ledoit_wolf"))[0] * 10
    A = np.linalg.cholesky(cov)
    pos = [list(inputs.market.factors).index(f) for f in moves.columns]
    f = kernels.total_pnl(inputs.books[0], inputs.market.levels)

    def shock(z):
        x = np.zeros(len(inputs.market.factors))
        x[pos] = A @ z
        return x

    best = np.inf
    rng = np.random.default_rng(5)
    for _ in range(3):
        z0 = rng.standard_normal(len(pos))
        sol = optimize.minimize(lambda z: z @ z, z0, jac=lambda z: 2 * z, method="trust-constr",
                                constraints=[optimize.NonlinearConstraint(lambda z: -f(shock(z))[0], 1e6, 1e6,
                                                                          jac=lambda z: -(A.T @ f(shock(z))[1][pos])[None, :])],
                                options={"gtol": 1e-10, "xtol": 1e-12, "maxiter": 3000})
        if sol.constr_violation < 1e-3:
            best = min(best, float(np.linalg.norm(sol.x)))
    assert row["distance"] <= best * (1 + 1e-6)
    assert row["distance"] == pytest.approx(best, rel=1e-4)


def test_terminal_and_report_show_each_solution(run):
    import io

    from rich.console import Console

    from stressgrid import reports

    _, sc, tmp = run
    # the manifest lists the families that are lists of stresses, as their scenarios' kind says
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    assert manifest["designed_families"] == ["rev", "rev_all"] == sorted(sc.loc[sc["kind"] == "reverse", "family"].unique())
    assert "stressed_var" not in {h["key"] for h in reports.headline(tmp / "out")}
    buf = io.StringIO()
    reports.print_summary(tmp / "out", console=Console(file=buf, width=220))
    text = buf.getvalue()
    assert "Reverse stress tests" in text
    for name in ("rev:loss=0.4%", "rev:loss=2.5m:alt1", "rev:within probability=0.01", "rev_all:loss=1m"):
        assert name in text
    assert "EQ.SPX" in text and "did not converge" not in text
    html = reports.render_report(tmp / "out")
    assert 'id="reverse"' in html and 'id="chart-reverse"' in html
    # the bar chart's labels are the factors' moves as a reader writes them
    shocks = read_run_table(tmp / "out", "reverse_shocks")
    row = shocks[(shocks["scenario"] == "rev:loss=2.5m") & (shocks["factor"] == "EQ.SPX")].iloc[0]
    assert row["role"] == "free" and row["shocked_level"] == pytest.approx(row["level"] * np.exp(row["shock"]), rel=1e-12)
    assert f"EQ.SPX  {row['move']:+.1%}".replace("-", "\u2212") in html or f"EQ.SPX  {row['move']:+.1%}" in html
    free = shocks[(shocks["scenario"] == "rev:loss=2.5m") & (shocks["role"] == "free")]
    assert set(free["factor"]) == set(FREE) and free["distance_share"].sum() == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("entry, match", [
    ("loss: 900bn", r"^error: scenario family 'r', field 'loss': '900bn' \(900,000\.00m\) is beyond the worst loss "
                    r"within distance 10 \([\d.,]+m\): give a smaller loss or a larger max_distance$"),
    ("loss: '5%'", r"^error: scenario family 'r', field 'loss': '5%' is a share of NAV, but the batch gives no 'nav'$"),
    ("{loss: 1m, factors: ['EQ.NOPE*']}", r"^error: scenario family 'r', field 'factors': 'EQ\.NOPE\*' matches none"),
    ("loss: -3m", r"^error: batch file .*batch\.yaml, field 'scenarios\[0\]\.loss.*'-3m' must be a positive amount"),
    ("loss: 'limit:nope'", r"^error: scenario family 'r', field 'loss': 'limit:nope' names no book-level loss limit of "
                           r"the batch .*the batch has: none\)$"),
    # a field of two forms (one bound or a list of them): the form given is the one whose problem is told
    ("within: {probability: 0.7}", r"^error: batch file .*, field 'scenarios\[0\]\.within\.probability': Input should be "
                                   r"less than 0\.5 \(got 0\.7\)$"),
    ("within: [{distance: 3}, {distance: -1}]", r"^error: batch file .*, field 'scenarios\[0\]\.within\[1\]\.distance': "
                                                r"Input should be greater than 0 \(got -1\)$"),
    ("within: 5", r"^error: batch file .*, field 'scenarios\[0\]\.within': Input should be a valid dictionary .*, or a "
                  r"valid list \(got 5\)$"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, entry, match):
    import re
    import textwrap

    from click.testing import CliRunner

    from stressgrid.cli import main

    book = pd.read_csv(ROOT / "examples" / "demo_book.csv")
    book[book["id"] == "ES_H9"].to_csv(tmp_path / "book.csv", index=False)
    fields = yaml.safe_load(entry)
    spec = {"name": "bad", "book": "book.csv", "market": {"as_of": "2018-12-31"},
            "scenarios": [{"kind": "reverse", "name": "r", **fields}]}
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(spec))
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "batch.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert re.search(match, lines[0]), lines[0]


def test_a_streamed_run_writes_the_same_solutions(run, tmp_path):
    _, s, tmp = run
    run_batch(_batch(tmp, stream=True), tmp_path / "streamed", serial=True)
    b = read_run_table(tmp_path / "streamed", "scenarios")
    for c in ("scenario", "converged"):
        assert list(s[c].astype(str)) == list(b[c].astype(str))
    for c in ("pnl", "distance", "tail_probability"):
        np.testing.assert_array_equal(s[c].to_numpy(), b[c].to_numpy())
    pd.testing.assert_frame_equal(read_run_table(tmp / "out", "reverse_shocks"),
                                  read_run_table(tmp_path / "streamed", "reverse_shocks"))


def test_a_loss_limit_of_the_batch_is_a_target(tmp_path):
    """loss: "limit:NAME" takes the book-level loss limit of that name, in NAV or currency."""
    book = pd.read_csv(ROOT / "examples" / "demo_book.csv")
    book[book["id"] == "ES_H9"].to_csv(tmp_path / "book.csv", index=False)
    spec = {"name": "lim", "book": "book.csv", "nav": 50e6, "market": {"as_of": "2018-12-31"},
            "limits": {"limits": [{"metric": "cvar", "confidence": 0.99, "scope": "book", "max": "2%", "name": "cvar99"},
                                  {"metric": "worst_loss", "scope": "book", "max": 1.5e6, "units": "currency"},
                                  {"metric": "cvar", "confidence": 0.99, "scope": "sleeve:*", "max": "1%"}]},
            "scenarios": [{"kind": "reverse", "name": "r", "loss": ["limit:cvar99", "limit:worst_loss book <= 1.5m"],
                           "window": {"end": "2018-12-31"}, "revaluation": "instantaneous"}]}
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(spec))
    from stressgrid.grid import load_batch
    from stressgrid.grid._run import limit_losses

    b, _ = load_batch(tmp_path / "batch.yaml")
    losses = limit_losses(b)
    assert losses["cvar99"] == pytest.approx(1e6) and len(losses) == 2  # the sleeve limit is not the book's
    other = [k for k in losses if k != "cvar99"][0]
    assert losses[other] == pytest.approx(1.5e6)
    spec["scenarios"][0]["loss"] = ["limit:cvar99", f"limit:{other}"]
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(spec))
    res = run_batch(tmp_path / "batch.yaml", tmp_path / "out", serial=True)
    sc = res.tables["scenarios"].set_index("scenario")
    assert sc.loc["r:loss=limit:cvar99", "pnl"] == pytest.approx(-1e6, rel=1e-6)
    assert sc.loc[f"r:loss=limit:{other}", "target_loss"] == pytest.approx(1.5e6)
