import numpy as np
import pandas as pd
import pytest

from stressgrid.core import ConfigError, DataError, load_history


def test_bundled_history_loads_and_is_valid(history):
    lv = history.levels
    assert lv.index.is_monotonic_increasing and lv.index.is_unique
    assert lv.dtypes.eq("float64").all()
    assert {"EQ.SPX", "FX.EURUSD", "IR.USD.10Y", "CMD.WTI", "CMD.GOLD", "VOL.SPX.ATM"} <= set(lv.columns)
    prices = [c for c in lv.columns if c.split(".")[0] in ("EQ", "CMD", "FX")]
    assert (lv[prices].min() > 0).all()


def test_bundled_sp500_matches_public_closes(history):
    # S&P 500 closes from the crisis-facts reference (^GSPC): an outside check on the bundled data
    spx = history.levels["EQ.SPX"]
    assert spx.loc["2007-10-09"] == pytest.approx(1565.15)
    assert spx.loc["2009-03-09"] == pytest.approx(676.53)
    assert spx.loc["2020-02-19"] == pytest.approx(3386.15)
    assert spx.loc["2020-03-23"] == pytest.approx(2237.40)


def _write(tmp_path, text, name="h.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, match",
    [
        ("date,EQ.SPX\n2020-01-02,100\nnot-a-date,101\n", r"column 'date', row 2: 'not-a-date' is not a date"),
        ("date,EQ.SPX\n2020-01-03,100\n2020-01-02,101\n", r"row 2: date 2020-01-02 is earlier than row 1's 2020-01-03; dates must be sorted ascending"),
        ("date,EQ.SPX\n2020-01-02,100\n2020-01-02,101\n", r"row 2: duplicate date 2020-01-02"),
        ("date,EQ.SPX\n2020-01-02,100\n2020-01-03,abc\n", r"column 'EQ.SPX', row 2: 'abc' is not a number"),
        ("date,EQ.SPX\n2020-01-02,100\n2020-01-03,-5\n", r"column 'EQ.SPX', row 2 \(2020-01-03\): price -5.0 is not positive"),
        ("day,EQ.SPX\n2020-01-02,100\n", r"no 'date' column"),
    ],
)
def test_bad_history_names_file_column_row(tmp_path, text, match):
    p = _write(tmp_path, text)
    with pytest.raises(DataError, match=match) as exc:
        load_history(p)
    assert str(p) in str(exc.value)


def test_unknown_column_needs_a_mapping(tmp_path):
    p = _write(tmp_path, "date,SP500,US10Y\n2020-01-02,3250,0.018\n2020-01-03,3230,0.017\n")
    with pytest.raises(ConfigError, match="column 'SP500'"):
        load_history(p)
    h = load_history(p, mapping={"SP500": "EQ.SPX", "US10Y": "IR.USD.10Y"})
    assert h.factors == ["EQ.SPX", "IR.USD.10Y"]
    # a rate may be negative; it is not a price
    p2 = _write(tmp_path, "date,IR.EUR.2Y\n2020-01-02,-0.006\n", "r.csv")
    assert load_history(p2).levels.iloc[0, 0] == -0.006


def test_parquet_and_missing_file(tmp_path):
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=3), "EQ.SPX": [1.0, 2.0, 3.0]})
    df.to_parquet(tmp_path / "h.parquet")
    assert load_history(tmp_path / "h.parquet").levels["EQ.SPX"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(DataError, match="not found"):
        load_history(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unsupported extension"):
        load_history(_write(tmp_path, "x", "h.xlsx"))


def test_a_header_without_rows_is_an_error(tmp_path):
    # it used to load as a history with no dates, and every factor came from the bundled history
    p = _write(tmp_path, "date,EQ.SPX,IR.USD.10Y\n")
    with pytest.raises(DataError, match=r"h.csv: no rows of data below its header \(columns: date, EQ.SPX, IR.USD.10Y\)"):
        load_history(p)


def test_parquet_with_its_dates_as_the_index(tmp_path):
    # pandas writes a DataFrame's index into the file and reads it back as the index
    df = pd.DataFrame({"EQ.SPX": [1.0, 2.0, 3.0]}, index=pd.date_range("2020-01-01", periods=3, name="Date"))
    df.to_parquet(tmp_path / "named.parquet")
    h = load_history(tmp_path / "named.parquet", date_column="Date")
    assert h.levels["EQ.SPX"].tolist() == [1.0, 2.0, 3.0]
    assert list(h.levels.index) == list(df.index)
    df.rename_axis(None).to_parquet(tmp_path / "unnamed.parquet")
    assert load_history(tmp_path / "unnamed.parquet").levels["EQ.SPX"].tolist() == [1.0, 2.0, 3.0]


def test_a_long_column_list_says_how_many_more(tmp_path):
    cols = [f"EQ.S{i}" for i in range(11)]
    p = _write(tmp_path, "day," + ",".join(cols) + "\n2020-01-02," + ",".join(["1"] * 11) + "\n")
    with pytest.raises(DataError, match=r"\(columns: day, EQ.S0, .*, EQ.S6 and 4 more\)"):
        load_history(p)


@pytest.mark.parametrize("column, factor, values, units, match", [
    # a 10-year yield in percent, read as a decimal: 237% (the user's GFC P&L on a bond was 1,000 times too small)
    ("ust10y", "IR.USD.10Y", [2.41, 2.37, 2.33], None, r"column 'ust10y' \(IR.USD.10Y\): its median level, read as a "
     r"decimal, is 2.37 \(237%\), not a plausible rate; if the column is in percent or basis points, say so under "
     r"history.units, e.g. units: \{ust10y: percent\}"),
    ("vix", "VOL.SPX.ATM", [16.2, 17.5, 25.4], None, r"column 'vix' \(VOL.SPX.ATM\): .* is 17.5 \(1750%\), not a plausible "
     r"implied volatility"),
    ("cdx", "CR.CDX_IG", [88.0, 90.0, 95.0], None, r"not a plausible credit spread"),
    # basis points declared as percent
    ("ust10y", "IR.USD.10Y", [241.0, 237.0, 233.0], {"ust10y": "percent"}, r"read in percent, is 2.37 \(237%\), not a "
     r"plausible rate; check the column's unit under history.units \(got 'percent'\)"),
])
def test_a_level_no_rate_spread_or_vol_can_have_names_the_unit(tmp_path, column, factor, values, units, match):
    rows = "".join(f"2020-01-0{i + 2},{v}\n" for i, v in enumerate(values))
    p = _write(tmp_path, f"date,{column}\n{rows}")
    with pytest.raises(ConfigError, match=match):
        load_history(p, mapping={column: factor}, units=units)


def test_plausible_levels_load(tmp_path):
    # a negative rate, a high-yield spread, a vol of 80%, an emerging-market rate of 45%: all as decimals
    p = _write(tmp_path, "date,IR.EUR.2Y,CR.HY,VOL.SPX.ATM,IR.TRY.1Y\n2020-01-02,-0.006,0.09,0.8,0.45\n")
    assert load_history(p).levels.iloc[0].tolist() == [-0.006, 0.09, 0.8, 0.45]


def test_spaces_around_a_date_are_dropped(tmp_path):
    p = _write(tmp_path, "date,EQ.SPX\n 2020-01-02,100\n2020-01-03 ,101\n")
    assert list(load_history(p).levels.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
