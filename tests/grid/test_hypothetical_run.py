"""A hypothetical family through a whole run: curve shifts of a book holding one US Treasury bond, each
scenario's P&L against QuantLib's price change of the same bond under the same zero-curve shift; the
zero shock; and bad input on the command line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid.cli import main
from stressgrid.core.curves import curve_shock
from stressgrid.grid import run_batch

ql = pytest.importorskip("QuantLib")

AS_OF = pd.Timestamp("2018-12-31")
FACE = 10_000_000.0
#: US Treasury 3.125% 2028-11-15, semi-annual
COUPON, MATURITY = 0.03125, pd.Timestamp("2028-11-15")
TENORS = ("1M", "3M", "6M", "1Y", "2Y", "3Y", "5Y", "7Y", "10Y", "20Y", "30Y")
MONTHS = np.array([1, 3, 6, 12, 24, 36, 60, 84, 120, 240, 360])
YEARS = MONTHS / 12.0

BOOK = ("id,type,underlying,quantity,multiplier,currency,asset_class,sleeve,adv,bid_ask_bps,coupon,frequency,maturity,"
        "description\n"
        f"UST_10Y,bond,IR.USD.10Y,{FACE},1,USD,rates,core,5000000000.0,1.0,{COUPON},2,{MATURITY.date()},"
        "US Treasury 3.125% 2028-11-15\n")

BATCH = """\
name: bond_design
book: book.csv
seed: 3
market:
  as_of: 2018-12-31
execution:
  executor: serial
scenarios:
  - kind: hypothetical
    name: design
    stresses:
      - name: twist_2s10s
        curves: [{currency: USD, kind: twist, short: 2Y, long: 10Y, size: "+30bp"}]
      - name: flattener_2s10s
        curves: [{currency: USD, kind: twist, short: 2Y, long: 10Y, size: "-25bp"}]
      - name: parallel
        curves: [{currency: USD, kind: parallel, size: "+25bp"}]
      - name: key_10y
        curves: [{currency: USD, kind: key_rate, key_tenor: 10Y, size: "-40bp"}]
      - name: zero
        shocks: {"IR.USD.*": 0}
"""


def _twist(size: float) -> np.ndarray:
    """A 2Y/10Y twist whose slope change is ``size``, written out: half the size times the log-distance from
    the pivot sqrt(2 x 10), scaled to -1 at 2Y and +1 at 10Y and clipped beyond."""
    p = np.sqrt(20.0)
    return size / 2.0 * np.clip(np.log(YEARS / p) / np.log(10.0 / p), -1.0, 1.0)


def _shift(name: str) -> np.ndarray:
    """The zero-yield shift ``[11]`` (decimals) of each scenario at the nodes 1M..30Y."""
    if name == "twist_2s10s":
        return _twist(0.0030)
    if name == "flattener_2s10s":
        return _twist(-0.0025)
    if name == "parallel":
        return np.full(len(YEARS), 0.0025)
    if name == "key_10y":
        return np.where(MONTHS == 120, -0.0040, 0.0)
    return np.zeros(len(YEARS))


def _ql_date(ts: pd.Timestamp):
    return ql.Date(ts.day, ts.month, ts.year)


def ql_bond_value(zeros: np.ndarray) -> float:
    """The bond's value per unit face with QuantLib: its schedule and coupons (``FixedRateBond``, backward
    from maturity, unadjusted), each flow after the as-of date discounted on a ``ZeroCurve`` of the
    continuously compounded ``zeros``, linear in the zero yield between nodes and flat outside.

    The kernels' conventions: a node's time is its tenor in years (1M = 1/12 year) and a flow's time is
    Actual/365 Fixed from the as-of date.  QuantLib places nodes by date, so the curve is built on
    Actual/360 with node ``k`` at ``30 * months`` days (exactly ``months / 12`` years on that day count),
    and each flow is discounted at its Actual/365 Fixed time through ``discount(t)``.
    """
    today = _ql_date(AS_OF)
    ql.Settings.instance().evaluationDate = today
    # nodes at the reference date and a century out reproduce the flat extrapolation at both ends
    dates = [today] + [today + int(30 * m) for m in MONTHS] + [today + 36000]
    z = [zeros[0]] + list(zeros) + [zeros[-1]]
    curve = ql.ZeroCurve(dates, z, ql.Actual360(), ql.NullCalendar(), ql.Linear(), ql.Continuous)
    mat = _ql_date(MATURITY)
    sched = ql.Schedule(mat - ql.Period(12 * 30, ql.Months), mat, ql.Period(6, ql.Months), ql.NullCalendar(),
                        ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False)
    bond = ql.FixedRateBond(0, 100.0, sched, [COUPON], ql.ActualActual(ql.ActualActual.ISMA), ql.Unadjusted)
    dc = ql.Actual365Fixed()
    pv = 0.0
    for cf in bond.cashflows():
        if cf.date() > today:
            pv += cf.amount() / 100.0 * curve.discount(dc.yearFraction(today, cf.date()))
    return pv


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hypothetical")
    (d / "book.csv").write_text(BOOK)
    (d / "batch.yaml").write_text(BATCH)
    res = run_batch(d / "batch.yaml", d / "out", serial=True)
    return res, d / "out"


def test_the_scenarios_pnl_is_quantlibs_price_change_under_the_same_shift(run):
    res, out = run
    s = pd.read_parquet(out / "scenarios.parquet").set_index("scenario")
    assert list(s.index) == ["twist_2s10s", "flattener_2s10s", "parallel", "key_10y", "zero"]
    assert set(s["kind"]) == {"hypothetical"} and set(s["revaluation"]) == {"instantaneous"}
    np.testing.assert_allclose(s["weight"], 0.2)
    # the zero curve at the as-of date as the run reports it
    cov = pd.read_parquet(out / "coverage.parquet").set_index("factor")
    base = cov.loc[[f"IR.USD.{t}" for t in TENORS], "level"].to_numpy()
    assert np.all(np.isfinite(base)) and 0.01 < base.mean() < 0.04
    v0 = ql_bond_value(base)
    assert 0.95 < v0 < 1.05  # a 3.125% bond near par
    for name in s.index:
        ref = FACE * (ql_bond_value(base + _shift(name)) - v0)
        assert s.loc[name, "pnl"] == pytest.approx(ref, rel=1e-9, abs=1e-6), name
    # the twist's zero-yield shift is core.curves' with half the slope change
    inputs = res.run.inputs
    rows = {n: i for i, n in enumerate(inputs.scenarios.names)}
    cols = [inputs.scenarios.factors.index(f"IR.USD.{t}") for t in TENORS]
    got = inputs.scenarios.shocks[rows["twist_2s10s"], cols]
    np.testing.assert_allclose(got, _twist(0.0030), rtol=0, atol=1e-17)
    np.testing.assert_array_equal(got, curve_shock(YEARS, "twist", 0.0015, pivot=np.sqrt(20.0), short=2.0, long=10.0))
    # a steepener costs the long bond, a flattener pays it; a 10y key-rate fall pays it
    assert s.loc["twist_2s10s", "pnl"] < 0 < s.loc["flattener_2s10s", "pnl"] and s.loc["key_10y", "pnl"] > 0


def test_the_zero_shock_gives_zero_pnl(run):
    _, out = run
    s = pd.read_parquet(out / "scenarios.parquet").set_index("scenario")
    assert s.loc["zero", "pnl"] == 0.0
    pnl = pd.read_parquet(out / "scenario_pnl.parquet")
    assert (pnl.loc[pnl["scenario"] == "zero", "pnl"] == 0.0).all()


def test_the_tables_say_what_each_scenario_moved(run):
    _, out = run
    s = pd.read_parquet(out / "scenarios.parquet").set_index("scenario")
    assert sorted(s.loc["parallel", "core"]) == sorted(f"IR.USD.{t}" for t in TENORS)
    assert s.loc["key_10y", "description"] == "USD key_rate at 10Y -40bp; every other factor held at 0"
    assert list(s.loc["parallel", "uncovered"]) == []
    fam = pd.read_parquet(out / "coverage_families.parquet")
    assert (fam["no_data"] == 0).all() and (fam["scenarios"] == 5).all()
    moved = fam.set_index("factor")["moved"]
    assert moved["IR.USD.10Y"] == 4 and moved["IR.USD.1M"] == 3  # the key-rate shift leaves 1M alone


def test_a_shock_written_for_a_factor_held_flat_is_applied(tmp_path):
    """An issuer spread without history, declared flat in ``market.flat``: no history moves it, but a
    hypothetical shock written for it is applied (and the coverage table still calls it flat)."""
    book = BOOK.replace(",description\n", ",spread_factor,description\n").replace(
        ",US Treasury", ",CR.ISSUER,A bond of one issuer:")
    (tmp_path / "book.csv").write_text(book)
    (tmp_path / "batch.yaml").write_text(textwrap.dedent("""\
        name: flat_spread
        book: book.csv
        market:
          as_of: 2018-12-31
          flat: {CR.ISSUER: no spread history}
          overrides: {CR.ISSUER: 0.0125}
        scenarios:
          - kind: hypothetical
            name: credit
            stresses:
              - {name: wider, spreads: [{factors: "CR.*", shift: "+40bp"}]}
              - {name: half_again, spreads: [{factors: CR.ISSUER, relative: "+50%"}]}
        """))
    run_batch(tmp_path / "batch.yaml", tmp_path / "out", serial=True)
    s = pd.read_parquet(tmp_path / "out" / "scenarios.parquet").set_index("scenario")
    cov = pd.read_parquet(tmp_path / "out" / "coverage.parquet").set_index("factor")
    assert cov.loc["CR.ISSUER", "source"] == "flat" and cov.loc["CR.ISSUER", "level"] == 0.0125
    # with a continuously compounded spread, the bond discounts at zero + spread: the shifted curve
    base = cov.loc[[f"IR.USD.{t}" for t in TENORS], "level"].to_numpy() + 0.0125
    v0 = ql_bond_value(base)
    for name, ds in (("wider", 0.0040), ("half_again", 0.00625)):
        ref = FACE * (ql_bond_value(base + ds) - v0)
        assert s.loc[name, "pnl"] == pytest.approx(ref, rel=1e-9) and ref < 0


# --- bad input on the command line --------------------------------------------------------------------


@pytest.mark.parametrize("entry, match", [
    ("curves: [{currency: XYZ, kind: parallel, size: '+10bp'}]",
     r"^error: scenario family 'bad', field 'curves\[0\]\.currency': 'XYZ' has no curve: no IR\.XYZ\.\* factor"),
    ("curves: [{currency: USD, kind: key_rate, key_tenor: 4Y, size: '+10bp'}]",
     r"^error: scenario family 'bad', field 'curves\[0\]\.key_tenor': '4Y' is not a node of the USD curve"),
    ("shocks: {'IR.EUR.*': '+10bp'}",
     r"^error: scenario family 'bad', field 'shocks': pattern 'IR\.EUR\.\*' matches no factor of the book"),
    ("curves: [{currency: USD, kind: twst, size: '+10bp'}]",
     r"^error: batch file .*batch\.yaml, field 'scenarios\[0\]\.curves\[0\]\.kind': .*\(got 'twst'\)$"),
    ("curves: [{currency: USD, kind: parallel, size: '+10bq'}]",
     r"^error: batch file .*batch\.yaml, field 'scenarios\[0\]\.curves\[0\]\.size': '\+10bq' is not a number"),
])
def test_bad_input_is_one_line_naming_the_family_and_the_value_and_exit_2(tmp_path, entry, match):
    (tmp_path / "book.csv").write_text(BOOK)
    (tmp_path / "batch.yaml").write_text(textwrap.dedent("""\
        name: bad_input
        book: book.csv
        market: {as_of: 2018-12-31}
        scenarios:
          - kind: hypothetical
            name: bad
        """) + f"    {entry}\n")
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "batch.yaml")])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    import re

    assert re.search(match, lines[0]), lines[0]
