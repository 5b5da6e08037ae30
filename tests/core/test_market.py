import numpy as np
import pandas as pd
import pytest

from stressgrid.core import DataError, latest_common_date, snapshot_from_history


def test_snapshot_takes_last_observation(history):
    snap = snapshot_from_history(history, ["EQ.SPX", "FX.EURUSD", "IR.USD.10Y"], "2017-03-29")
    assert snap.level("EQ.SPX") == pytest.approx(history.levels.loc["2017-03-29", "EQ.SPX"])
    names, tenors, zeros = snapshot_from_history(history, ["IR.USD.2Y", "IR.USD.10Y", "IR.USD.3M"], "2017-03-29").curve("USD")
    assert names == ["IR.USD.3M", "IR.USD.2Y", "IR.USD.10Y"] and np.all(np.diff(tenors) > 0)


def test_latest_common_date_of_the_bundled_book_factors(history):
    d = latest_common_date(history, ["EQ.SPX", "IR.USD.10Y", "CMD.WTI"])
    assert d == pd.Timestamp("2019-01-03")  # WTI ends there (the Treasury curve in 2024, the S&P 500 in 2022)


def test_stale_factor_is_an_error_naming_it(history):
    with pytest.raises(DataError, match=r"factor IR.USD.10Y last observed 2024-06-28 .* stale"):
        snapshot_from_history(history, ["FX.EURUSD", "IR.USD.10Y"], "2024-09-02")


def test_overrides_win_and_are_checked(history):
    snap = snapshot_from_history(history, ["EQ.SPX", "CR.CDX_IG"], "2017-03-29", overrides={"CR.CDX_IG": 0.0065})
    assert snap.level("CR.CDX_IG") == 0.0065
    with pytest.raises(DataError, match="market override EQ.SPX"):
        snapshot_from_history(history, ["EQ.SPX"], "2017-03-29", overrides={"EQ.SPX": -1.0})
    with pytest.raises(DataError, match="CR.CDX_IG"):
        snapshot_from_history(history, ["CR.CDX_IG"], "2017-03-29")
