"""A user's own 2021-2022 history (S&P 500, two Treasury yields and VIX in percent) and a small book
(an index future, an index put, two Treasuries), run through the command line as docs/data.md shows it:
the crisis library replays on the user's levels, the bonds move on the completed curve, the put's vol
moves, and the coverage table says where every factor comes from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from stressgrid.cli import main
from stressgrid.core import load_history

BOOK = """id,type,underlying,quantity,multiplier,currency,asset_class,sleeve,adv,bid_ask_bps,strike,expiry,option_type,coupon,frequency,maturity
ES,equity_future,EQ.SPX,-20,50,USD,equity,trend,1500000,0.5,,,,,,
SPX_P,option,EQ.SPX,100,100,USD,equity,defensive,20000,20,3600,2023-06-16,put,,,
UST_2Y,bond,IR.USD.10Y,10000000,1,USD,rates,carry,5000000000,1,,,,0.01,2,2024-12-31
UST_5Y,bond,IR.USD.10Y,10000000,1,USD,rates,carry,5000000000,1,,,,0.015,2,2027-12-31
"""
SPX_SCALE = 1.05  # the user's index level differs from the bundled one: moves must not


def _marks(bundled) -> pd.DataFrame:
    """The user's file: the bundled S&P 500 scaled by 1.05, and synthetic yields and VIX in percent (a
    seeded random walk from 0.11% and 0.93% to about 4.4% and 3.9%, VIX around 20-35)."""
    spx = bundled.levels["EQ.SPX"].loc["2021-01-04":"2022-12-28"].dropna()
    n = len(spx)
    rng = np.random.default_rng(2021)
    drift2, drift10 = (4.4 - 0.11) / n, (3.9 - 0.93) / n
    y2 = np.maximum(0.11 + np.cumsum(drift2 + 0.03 * rng.standard_normal(n)), 0.02)
    y10 = np.maximum(0.93 + np.cumsum(drift10 + 0.04 * rng.standard_normal(n)), 0.3)
    vix = 22 * np.exp(np.cumsum(0.06 * rng.standard_normal(n)) * 0.3)
    return pd.DataFrame({"date": spx.index.strftime("%Y-%m-%d"), "SPX": spx.to_numpy() * SPX_SCALE,
                         "UST2Y": y2.round(4), "UST10Y": y10.round(4), "VIX": vix.round(3)})


def _batch(tmp_path, flat: bool = True):
    body = {
        "name": "own_data", "book": "book.csv", "seed": 5,
        "history": {"path": "my_marks.csv", "columns": {"SPX": "EQ.SPX", "UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y",
                                                         "VIX": "VOL.SPX.ATM"},
                    "units": {"UST2Y": "percent", "UST10Y": "percent", "VIX": "percent"}},
        "market": {"overrides": {"VOL.SPX.TERM": 0.01, "VOL.SPX.SKEW": -0.10, "VOL.SPX.CURV": 0.02}},
        "scenarios": [
            {"kind": "historical", "name": "crisis", "events": ["gfc_2008", "covid_2020", "inflation_2022"]},
            {"kind": "rolling", "name": "hist_10d", "horizon_days": 10, "start": "2021-01-04", "end": "2022-12-28"},
            {"kind": "montecarlo", "name": "mc", "model": "student_t", "n_scenarios": 500, "horizon_days": 10,
             "window": {"start": "2021-01-04"}},
        ],
    }
    if flat:
        body["market"]["flat"] = {"VOL.SPX.[STC]*": "the surface's term, skew and curvature are not in our marks"}
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp_path / "batch.yaml"


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own")
    bundled = load_history()
    _marks(bundled).to_csv(tmp / "my_marks.csv", index=False)
    (tmp / "book.csv").write_text(BOOK)
    res = CliRunner().invoke(main, ["run", str(_batch(tmp)), "--out", str(tmp / "out"), "--serial", "--quiet",
                                    "--no-report"])
    assert res.exit_code == 0, res.output
    return tmp / "out", bundled


def test_the_crisis_library_replays_the_bundled_moves_on_the_users_levels(own_run):
    out, bundled = own_run
    pnl = pd.read_parquet(out / "scenario_pnl.parquet")
    cov = pd.read_parquet(out / "coverage.parquet").set_index("factor")
    s0 = cov.loc["EQ.SPX", "level"]
    assert s0 == pytest.approx(bundled.levels.loc["2022-12-28", "EQ.SPX"] * SPX_SCALE, rel=1e-15)
    spx = bundled.levels["EQ.SPX"].dropna()
    for event, start, end in (("gfc_2008", "2007-10-09", "2009-03-09"), ("covid_2020", "2020-02-19", "2020-03-23")):
        r = np.log(spx.loc[:end].iloc[-1] / spx.loc[:start].iloc[-1])
        got = pnl[(pnl.scenario == event) & (pnl.position_id == "ES")]["pnl"].item()
        assert got == pytest.approx(-20 * 50 * s0 * np.expm1(r), rel=1e-9), event
    fam = pd.read_parquet(out / "coverage_families.parquet").set_index(["family", "factor"])
    assert fam.loc[("crisis", "EQ.SPX"), "from_data"] == 3  # 2008 and 2020 bundled, 2022 the user's


def test_the_bonds_move_on_the_curve_completed_from_two_yields(own_run):
    out, _ = own_run
    cov = pd.read_parquet(out / "coverage.parquet").set_index("factor")
    assert cov.loc["IR.USD.2Y", "source"] == cov.loc["IR.USD.10Y", "source"] == "history"
    for f in ("IR.USD.3Y", "IR.USD.5Y", "IR.USD.7Y"):
        assert cov.loc[f, "source"] == "interpolated", f
    # the 5-year level lies on the line between the 2-year and the 10-year (linear in the zero yield)
    y2, y10 = cov.loc["IR.USD.2Y", "level"], cov.loc["IR.USD.10Y", "level"]
    assert cov.loc["IR.USD.5Y", "level"] == pytest.approx(y2 + (y10 - y2) * 3 / 8, rel=1e-12)
    pnl = pd.read_parquet(out / "scenario_pnl.parquet")
    mc = pnl[(pnl.family == "mc") & (pnl.position_id == "UST_5Y")]["pnl"]
    assert len(mc) == 500 and (mc != 0).all() and mc.std() > 1000


def test_the_puts_vol_moves_and_every_flat_factor_has_a_reason(own_run):
    out, _ = own_run
    fam = pd.read_parquet(out / "coverage_families.parquet").set_index(["family", "factor"])
    assert fam.loc[("hist_10d", "VOL.SPX.ATM"), "moved"] == fam.loc[("hist_10d", "VOL.SPX.ATM"), "scenarios"] > 400
    for f in ("VOL.SPX.TERM", "VOL.SPX.SKEW", "VOL.SPX.CURV"):
        assert fam.loc[("mc", f), "moved"] == 0
    cov = pd.read_parquet(out / "coverage.parquet")
    flat = cov[cov.source == "flat"]
    assert sorted(flat.factor) == ["VOL.SPX.CURV", "VOL.SPX.SKEW", "VOL.SPX.TERM"]
    assert flat.detail.str.contains("not in our marks").all()


def test_a_factor_without_history_must_be_declared_flat(tmp_path):
    bundled = load_history()
    _marks(bundled).to_csv(tmp_path / "my_marks.csv", index=False)
    (tmp_path / "book.csv").write_text(BOOK)
    res = CliRunner().invoke(main, ["validate", str(_batch(tmp_path, flat=False))])
    assert res.exit_code == 2
    err = res.output.strip().splitlines()[-1]
    # named by its file, as the errors found while reading the file are
    assert err.startswith(f"error: batch file {_batch(tmp_path, flat=False)}, field 'market': 3 factor(s)"), err
    assert "VOL.SPX.SKEW" in err and "VOL.SPX.TERM" in err and "VOL.SPX.CURV" in err and "market.flat" in err


def test_a_declared_proxy_moves_the_skew_with_the_atm_vol(tmp_path):
    """VOL.SPX.SKEW has no history; declared as -0.5 times the ATM vol's moves, it moves in every window
    the ATM vol moves in, by exactly that, and the coverage table says so."""
    from stressgrid import run_batch

    bundled = load_history()
    _marks(bundled).to_csv(tmp_path / "my_marks.csv", index=False)
    (tmp_path / "book.csv").write_text(BOOK)
    path = _batch(tmp_path)
    body = yaml.safe_load(path.read_text())
    body["market"]["flat"] = {"VOL.SPX.TERM": "not in our marks", "VOL.SPX.CURV": "not in our marks"}
    body["proxies"] = {"VOL.SPX.SKEW": {"factor": "VOL.SPX.ATM", "beta": -0.5}}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    res = run_batch(path, serial=True)
    scen = res.run.inputs.scenarios
    atm, skew = scen.factors.index("VOL.SPX.ATM"), scen.factors.index("VOL.SPX.SKEW")
    rows = np.asarray(scen.family) == "hist_10d"
    np.testing.assert_allclose(scen.shocks[rows, skew], -0.5 * scen.shocks[rows, atm], rtol=1e-12, atol=1e-15)
    assert (scen.shocks[rows, skew] != 0).mean() > 0.99
    cov = res["coverage"].set_index("factor")
    assert cov.loc["VOL.SPX.SKEW", "source"] == "proxy"
    assert "VOL.SPX.ATM x beta -0.5 declared" in cov.loc["VOL.SPX.SKEW", "detail"]
    assert cov.loc["VOL.SPX.SKEW", "level"] == -0.10  # the level is the override's; the proxy gives moves only
    # without a level of its own, a proxied factor is refused
    del body["market"]["overrides"]["VOL.SPX.SKEW"]
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    from stressgrid.core import ConfigError

    with pytest.raises(ConfigError, match=r"field 'proxies.VOL.SPX.SKEW': VOL.SPX.SKEW has no history of its own"):
        run_batch(path, serial=True)


def test_the_users_batch_streamed_gives_the_same_tables(own_run):
    """The same batch streamed (the tasks draw the Monte Carlo family and write the per-scenario tables
    in parts, four tasks against the in-memory run's one), through the command line with its summary and
    report: the in-memory run's numbers, to 1e-12 (the split changes only the order of the sums)."""
    out, _ = own_run
    tmp = out.parent
    body = yaml.safe_load((tmp / "batch.yaml").read_text())
    body["execution"] = {"stream": True, "chunk_size": 300}
    (tmp / "streamed.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    res = CliRunner().invoke(main, ["run", str(tmp / "streamed.yaml"), "--out", str(tmp / "streamed"), "--serial"])
    assert res.exit_code == 0, res.output
    assert "VaR 99%" in res.output and (tmp / "streamed" / "report.html").is_file()
    assert (tmp / "streamed" / "scenarios").is_dir()
    for name in ("risk_metrics", "contributions", "scenarios", "coverage_families"):
        a = pd.read_parquet(out / f"{name}.parquet")
        b = pd.read_parquet(tmp / "streamed" / (name if name == "scenarios" else f"{name}.parquet"))
        for df in (a, b):
            for c in df.columns:
                if isinstance(df[c].dtype, pd.CategoricalDtype):
                    df[c] = df[c].astype(str)
        pd.testing.assert_frame_equal(a, b[a.columns], check_dtype=False, check_exact=False, rtol=1e-12, atol=1e-6,
                                      obj=name)
