"""Several history sources merged (precedence, chained moves, units, DuckDB) and curves completed from the
tenors given, against references outside the merge code: the bundled history's own moves, QuantLib."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stressgrid import kernels, scenarios
from stressgrid.core import ConfigError, DataError, load_history, snapshot_from_history
from stressgrid.core.sources import SourceSpec, complete_curves, load_source, merge_histories

BUNDLED = SourceSpec(bundled=True)


def _write(tmp_path, name: str, df: pd.DataFrame):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _user_frame(bundled, start: str, end: str, scale: float = 1.1, shift: float = 0.005) -> pd.DataFrame:
    """A user's file over [start, end]: SPX at 1.1x the bundled level, 2y and 10y yields 50bp above it, in
    percent, under the user's own column names."""
    lv = bundled.levels.loc[start:end, ["EQ.SPX", "IR.USD.2Y", "IR.USD.10Y"]].dropna()
    return pd.DataFrame({"date": lv.index.strftime("%Y-%m-%d"), "SPX": lv["EQ.SPX"].to_numpy() * scale,
                         "UST2Y": (lv["IR.USD.2Y"].to_numpy() + shift) * 100,
                         "UST10Y": (lv["IR.USD.10Y"].to_numpy() + shift) * 100})


@pytest.fixture(scope="module")
def bundled():
    return load_history()


def test_percent_and_bp_give_the_numbers_of_decimal_input(tmp_path, bundled):
    lv = bundled.levels.loc["2016-01-01":"2016-12-31", ["IR.USD.10Y", "EQ.SPX"]].dropna()
    dates = lv.index.strftime("%Y-%m-%d")
    dec = _write(tmp_path, "dec.csv", pd.DataFrame({"date": dates, "y": lv["IR.USD.10Y"], "s": lv["EQ.SPX"]}))
    pct = _write(tmp_path, "pct.csv", pd.DataFrame({"date": dates, "y": lv["IR.USD.10Y"] * 100, "s": lv["EQ.SPX"]}))
    bp = _write(tmp_path, "bp.csv", pd.DataFrame({"date": dates, "y": lv["IR.USD.10Y"] * 1e4, "s": lv["EQ.SPX"]}))
    cols = {"y": "IR.USD.10Y", "s": "EQ.SPX"}
    a = load_source(SourceSpec(path=dec, columns=cols))
    b = load_source(SourceSpec(path=pct, columns=cols, units={"y": "percent"}))
    c = load_source(SourceSpec(path=bp, columns=cols, units={"y": "bp"}))
    np.testing.assert_allclose(b.levels.to_numpy(), a.levels.to_numpy(), rtol=1e-14, atol=0)
    np.testing.assert_allclose(c.levels.to_numpy(), a.levels.to_numpy(), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(a.levels["EQ.SPX"].to_numpy(), lv["EQ.SPX"].to_numpy())


def test_a_user_history_that_stops_in_2019_replays_covid_from_the_bundled_moves_on_the_users_levels(tmp_path, bundled):
    """covid_2020 lies outside the user's file: its moves come from the bundled history, and they equal
    the bundled replay's moves; the snapshot is the user's."""
    path = _write(tmp_path, "mine.csv", _user_frame(bundled, "2015-01-01", "2016-12-30"))
    user = load_source(SourceSpec(path=path, columns={"SPX": "EQ.SPX", "UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y"},
                                  units={"UST2Y": "percent", "UST10Y": "percent"}))
    merged = merge_histories([user, load_source(BUNDLED)])
    factors = ("EQ.SPX", "IR.USD.2Y", "IR.USD.10Y")
    spec = scenarios.HistoricalSpec(kind="historical", name="crisis", events=["gfc_2008", "covid_2020"])
    ours = scenarios.generate(spec, merged, factors, seed=1)
    ref = scenarios.generate(spec, bundled, factors, seed=1)
    assert list(ours.names) == list(ref.names)
    # every move replayed from data (not calibrated or propagated: the bundled yields end in 2017, so the
    # covid_2020 yields are filled, from facts and levels) equals the bundled replay's
    replayed = ref.covered & ~ref.filled_mask
    assert replayed.sum() >= 4 and replayed[:, 0].all()  # SPX in both events
    np.testing.assert_array_equal(ours.covered & ~ours.filled_mask, replayed)
    np.testing.assert_allclose(ours.shocks[replayed], ref.shocks[replayed], rtol=1e-12, atol=1e-15)
    snap = snapshot_from_history(merged, factors, "2016-12-30")
    mine = user.levels.loc["2016-12-30"]
    np.testing.assert_array_equal(snap.levels, mine[list(factors)].to_numpy())
    # after the user's last date the snapshot reads the bundled level itself, not a rebased one
    later = snapshot_from_history(merged, ["EQ.SPX"], "2019-06-28")
    assert later.levels[0] == bundled.levels.loc["2019-06-28", "EQ.SPX"]


def test_a_rolling_window_inside_either_source_moves_as_that_source(tmp_path, bundled):
    path = _write(tmp_path, "mine.csv", _user_frame(bundled, "2012-01-03", "2013-12-31"))
    user = load_source(SourceSpec(path=path, columns={"SPX": "EQ.SPX", "UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y"},
                                  units={"UST2Y": "percent", "UST10Y": "percent"}))
    merged = merge_histories([user, load_source(BUNDLED)])
    for start, end in (("2008-09-12", "2008-10-10"), ("2012-06-01", "2012-06-15"), ("2015-08-14", "2015-08-28")):
        for f in ("EQ.SPX", "IR.USD.10Y"):
            src = user if start.startswith("2012") else bundled
            a, b = merged.levels.loc[[start, end], f].to_numpy()
            x, y = src.levels.loc[[start, end], f].to_numpy()
            if f == "EQ.SPX":
                assert np.log(b / a) == pytest.approx(np.log(y / x), rel=1e-12, abs=1e-15)
            else:
                assert b - a == pytest.approx(y - x, rel=1e-12, abs=1e-15)
    # precedence on the shared dates, and the difference reported
    assert merged.snapshot.loc["2013-06-03", "EQ.SPX"] == user.levels.loc["2013-06-03", "EQ.SPX"]
    detail = merged.provenance["EQ.SPX"].detail
    assert "bundled differs on" in detail and "up to 0.0909" in detail  # 1 - 1/1.1 relative
    assert merged.provenance["EQ.SPX"].source == "history"
    assert merged.provenance["EQ.AAPL"].source == "bundled"


def test_a_single_source_is_unchanged(bundled):
    merged = merge_histories([bundled])
    assert merged.levels is bundled.levels and merged.snapshot is bundled.levels
    assert {p.source for p in merged.provenance.values()} == {"bundled"}


def _ql_bond_dirty(as_of, maturity, coupon, freq, z2, z10):
    """QuantLib: a fixed-rate bond (face 100) off a zero curve with nodes at 2 and 10 years (Act/365F,
    continuous), linear in the zero yield and flat outside."""
    ql = pytest.importorskip("QuantLib")

    def d(ts):
        ts = pd.Timestamp(ts)
        return ql.Date(ts.day, ts.month, ts.year)

    today = d(as_of)
    ql.Settings.instance().evaluationDate = today
    curve = ql.ZeroCurve([today, today + 730, today + 3650, today + 36500], [z2, z2, z10, z10],
                         ql.Actual365Fixed(), ql.NullCalendar(), ql.Linear(), ql.Continuous)
    mat = d(maturity)
    sched = ql.Schedule(mat - ql.Period(12 // freq * 100, ql.Months), mat, ql.Period(12 // freq, ql.Months),
                        ql.NullCalendar(), ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False)
    bond = ql.FixedRateBond(0, 100.0, sched, [coupon], ql.ActualActual(ql.ActualActual.ISMA), ql.Unadjusted)
    bond.setPricingEngine(ql.DiscountingBondEngine(ql.YieldTermStructureHandle(curve)))
    return bond.NPV()


def test_a_curve_given_at_2y_and_10y_moves_a_5y_bond_like_quantlib(tmp_path):
    """Levels and moves of the missing tenors are interpolated: the 5-year bond's P&L between two days
    equals QuantLib's repricing on the two-node curves, to 1e-10 of the price."""
    pytest.importorskip("QuantLib")
    df = pd.DataFrame({"date": ["2016-06-01", "2016-06-02"], "UST2Y": [0.80, 1.30], "UST10Y": [1.85, 2.85]})
    user = load_source(SourceSpec(path=_write(tmp_path, "c.csv", df), columns={"UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y"},
                                  units={"UST2Y": "percent", "UST10Y": "percent"}))
    factors = kernels.curve_factors("USD")
    hist = complete_curves(merge_histories([user]), factors)
    assert all(hist.provenance[f].source == "interpolated" for f in factors if f not in ("IR.USD.2Y", "IR.USD.10Y"))
    face = 1e6
    pos = pd.DataFrame([{"id": "B5", "type": "bond", "underlying": "IR.USD.10Y", "quantity": face, "multiplier": 1.0,
                         "currency": "USD", "asset_class": "rates", "sleeve": "carry", "adv": 1e9, "bid_ask_bps": 1.0,
                         "coupon": 0.02, "frequency": 2, "maturity": pd.Timestamp("2021-05-31")}])
    snap = snapshot_from_history(hist, factors, "2016-06-01")
    prepared = kernels.prepare(pos, snap.factors, "USD", snap.as_of, levels=snap.levels)
    nxt = hist.levels.loc["2016-06-02", list(snap.factors)].to_numpy()
    shocks = (nxt - snap.levels)[None, :]
    pnl = kernels.revalue(prepared, snap.levels, shocks, snap.is_log)[0, 0]
    p0 = _ql_bond_dirty("2016-06-01", "2021-05-31", 0.02, 2, 0.008, 0.0185)
    p1 = _ql_bond_dirty("2016-06-01", "2021-05-31", 0.02, 2, 0.013, 0.0285)
    assert pnl == pytest.approx(face * (p1 - p0) / 100, abs=1e-10 * face)
    assert pnl < -0.02 * face  # the bond moved: about 4.7 years of duration times about +90bp at 5 years


def test_duckdb_table_and_query_read_in_place_equal_the_file(tmp_path, bundled):
    duckdb = pytest.importorskip("duckdb")
    df = _user_frame(bundled, "2016-01-01", "2016-03-31")
    csv = _write(tmp_path, "u.csv", df)
    db = tmp_path / "risk.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE marks AS SELECT CAST(date AS DATE) AS date, SPX, UST2Y, UST10Y FROM df")
    con.close()
    cols = {"SPX": "EQ.SPX", "UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y"}
    units = {"UST2Y": "percent", "UST10Y": "percent"}
    ref = load_source(SourceSpec(path=csv, columns=cols, units=units)).levels
    a = load_source(SourceSpec(path=db, table="marks", columns=cols, units=units)).levels
    b = load_source(SourceSpec(path=db, query="SELECT date, SPX, UST2Y, UST10Y FROM marks WHERE SPX > 0 ORDER BY date",
                               columns=cols, units=units)).levels
    pd.testing.assert_frame_equal(a, ref, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(b, ref, check_exact=True, check_freq=False)
    with pytest.raises(DataError, match=r"risk.duckdb, field 'query': .*(got 'SELECT nope FROM marks')"):
        load_source(SourceSpec(path=db, query="SELECT nope FROM marks"))
    with pytest.raises(DataError, match=r"field 'table'.*got 'missing'"):
        load_source(SourceSpec(path=db, table="missing"))


def test_bad_units_and_mappings_are_one_clear_error(tmp_path, bundled):
    path = _write(tmp_path, "u.csv", _user_frame(bundled, "2016-01-01", "2016-01-31"))
    cols = {"SPX": "EQ.SPX", "UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y"}
    with pytest.raises(ConfigError, match=r"u.csv, field 'units.UST2Y': unknown unit 'percents'"):
        load_source(SourceSpec(path=path, columns=cols, units={"UST2Y": "percents"}))
    with pytest.raises(ConfigError, match=r"field 'units.SPX': EQ.SPX is a price"):
        load_source(SourceSpec(path=path, columns=cols, units={"SPX": "percent"}))
    with pytest.raises(ConfigError, match=r"field 'columns': no column 'VIX'"):
        load_source(SourceSpec(path=path, columns={**cols, "VIX": "VOL.SPX.ATM"}))
    with pytest.raises(ConfigError, match=r"column 'UST2Y'.*factor 'IR.USD.2'"):
        load_source(SourceSpec(path=path, columns={**cols, "UST2Y": "IR.USD.2"}))


def test_par_yields_are_bootstrapped_so_that_each_par_bond_prices_at_par(tmp_path):
    """``kind: par``: semi-annual par yields every six months to 5 years, bootstrapped to zero yields.
    QuantLib prices each tenor's par bond (semi-annual coupon at its par yield) off a zero curve through
    those zero yields at 100, to 1e-10; the same file read as zero yields does not."""
    ql = pytest.importorskip("QuantLib")
    months = list(range(6, 61, 6))
    par = {m: 0.010 + 0.0035 * np.log1p(m / 12) for m in months}  # an upward-sloping par curve, decimals
    df = pd.DataFrame({"date": ["2016-06-01"], **{f"IR.USD.{m}M": [par[m] * 100] for m in months}})
    path = _write(tmp_path, "par.csv", df)
    units = {f"IR.USD.{m}M": "percent" for m in months}
    h = load_source(SourceSpec(path=path, units=units, kind="par"))
    zeros = {m: float(h.levels[f"IR.USD.{m}M"].iloc[0]) for m in months}
    assert "bootstrapped from semi-annual par yields" in merge_histories([h, load_source(BUNDLED)]).provenance["IR.USD.60M"].detail
    today = ql.Date(1, 6, 2016)
    ql.Settings.instance().evaluationDate = today
    # tenors on a 360-day year of 30-day months so that QuantLib's times are exactly m/12 (Thirty360)
    dc = ql.Thirty360(ql.Thirty360.BondBasis)
    dates = [today] + [today + ql.Period(m, ql.Months) for m in months]
    curve = ql.ZeroCurve(dates, [zeros[6]] + [zeros[m] for m in months], dc, ql.NullCalendar(), ql.Linear(),
                         ql.Continuous)
    handle = ql.YieldTermStructureHandle(curve)
    for m in months:
        sched = ql.Schedule(today, today + ql.Period(m, ql.Months), ql.Period(6, ql.Months), ql.NullCalendar(),
                            ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Forward, False)
        bond = ql.FixedRateBond(0, 100.0, sched, [par[m]], dc, ql.Unadjusted)
        bond.setPricingEngine(ql.DiscountingBondEngine(handle))
        assert bond.NPV() == pytest.approx(100.0, abs=1e-10), m
    as_zero = load_source(SourceSpec(path=path, units=units))
    assert abs(float(as_zero.levels["IR.USD.60M"].iloc[0]) - zeros[60]) > 1e-5


def test_an_unknown_rate_quote_is_one_clear_error(tmp_path):
    path = _write(tmp_path, "x.csv", pd.DataFrame({"date": ["2016-06-01"], "IR.USD.2Y": [0.01]}))
    with pytest.raises(ConfigError, match="field 'kind': unknown rate quote 'swap'"):
        load_source(SourceSpec(path=path, kind="swap"))
    eq = _write(tmp_path, "e.csv", pd.DataFrame({"date": ["2016-06-01"], "EQ.SPX": [2000.0]}))
    with pytest.raises(ConfigError, match="field 'kind': par, but the source has no IR"):
        load_source(SourceSpec(path=eq, kind="par"))


def test_a_unit_that_puts_a_source_far_from_the_next_is_one_clear_error(tmp_path, bundled):
    # the 10-year yield in percent declared as basis points: 0.024% against the bundled 2.4%, which a
    # range check cannot tell from a yield near zero; the bundled history on the shared dates can
    frame = _user_frame(bundled, "2016-01-01", "2016-12-31", shift=0.0)
    path = _write(tmp_path, "u.csv", frame)
    cols = {"SPX": "EQ.SPX", "UST2Y": "IR.USD.2Y", "UST10Y": "IR.USD.10Y"}
    wrong = load_source(SourceSpec(path=path, columns=cols, units={"UST2Y": "percent", "UST10Y": "bp"}))
    with pytest.raises(DataError, match=r"u.csv, column 'UST10Y' \(IR.USD.10Y\): its levels are 0.01 times those of "
                                        r"bundled on \d+ shared dates \(median\); check the column's unit"):
        merge_histories([wrong, bundled])
    # a price 100 times the bundled one (cents, or another instrument) stops the batch too
    cents = frame.assign(SPX=frame["SPX"] * 100)
    path2 = _write(tmp_path, "c.csv", cents)
    with pytest.raises(DataError, match=r"column 'SPX' \(EQ.SPX\): its levels are 110 times .* another instrument"):
        merge_histories([load_source(SourceSpec(path=path2, columns=cols, units={"UST2Y": "percent", "UST10Y": "percent"})),
                         bundled])
    # the right units: 1.1 times the bundled SPX and 50bp above its yields merge
    right = load_source(SourceSpec(path=path, columns=cols, units={"UST2Y": "percent", "UST10Y": "percent"}))
    assert merge_histories([right, bundled]).levels["IR.USD.10Y"].notna().any()


def test_a_mapping_one_letter_off_a_factor_the_book_needs_is_an_error(tmp_path):
    from stressgrid.core.sources import check_near_misses

    path = tmp_path / "u.csv"
    path.write_text("date,aapl_px,spx\n2018-12-27,156.15,2488.83\n2018-12-28,156.23,2485.74\n")
    typo = load_source(SourceSpec(path=path, columns={"aapl_px": "EQ.APPL", "spx": "EQ.SPX"}))
    bundled = SourceSpec(bundled=True)
    needed = ["EQ.AAPL", "EQ.SPX", "IR.USD.10Y"]
    # the user's Apple marks would be ignored and the bundled history's taken instead
    with pytest.raises(ConfigError, match=r"u.csv, field 'columns.aapl_px': no position needs EQ.APPL, and the book's "
                                          r"EQ.AAPL is in none of your sources; did you mean EQ.AAPL\? \(got 'EQ.APPL'\)"):
        check_near_misses([typo, load_source(bundled)], needed)
    # used as a proxy, or with EQ.AAPL given too, or far from any needed factor: no error
    check_near_misses([typo], needed, used={"EQ.APPL"})
    path.write_text("date,aapl_px,appl,spx\n2018-12-27,156.15,1.0,2488.83\n")
    check_near_misses([load_source(SourceSpec(path=path, columns={"aapl_px": "EQ.AAPL", "appl": "EQ.APPL", "spx": "EQ.SPX"}))],
                      needed)
    path.write_text("date,x\n2018-12-27,1.0\n")
    check_near_misses([load_source(SourceSpec(path=path, columns={"x": "EQ.TSLA"}))], needed)
    # a tenor the book does not price on, one letter from one it does, completes the curve: no error
    path.write_text("date,y5\n2018-12-27,0.025\n")
    check_near_misses([load_source(SourceSpec(path=path, columns={"y5": "IR.USD.5Y"}))], needed + ["IR.USD.2Y"])
    # a currency typo is caught
    path.write_text("date,y10\n2018-12-27,0.025\n")
    with pytest.raises(ConfigError, match=r"did you mean IR.USD.10Y\?"):
        check_near_misses([load_source(SourceSpec(path=path, columns={"y10": "IR.UDS.10Y"}))], needed)
