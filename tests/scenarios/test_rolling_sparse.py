"""A factor observed on a short part of a rolling period moves where it has data, and only there."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stressgrid.core import History
from stressgrid.scenarios import RollingSpec, rolling_windows


def _history(with_vol: bool) -> History:
    dates = pd.bdate_range("2010-01-04", "2019-12-31")
    rng = np.random.default_rng(11)
    cols = {"EQ.SPX": 1000 * np.exp(np.cumsum(0.01 * rng.standard_normal(len(dates))))}
    if with_vol:
        vol = 0.2 + np.cumsum(0.005 * rng.standard_normal(len(dates)))
        vol[dates < "2017-01-02"] = np.nan  # observed on the last 30% of the period only
        cols["VOL.SPX.ATM"] = vol
    return History(pd.DataFrame(cols, index=pd.DatetimeIndex(dates, name="date")), "synthetic")


def test_a_sparse_factor_moves_in_the_windows_it_covers():
    spec = RollingSpec(kind="rolling", name="r", horizon_days=10, start="2010-01-04", end="2019-12-31")
    full = rolling_windows(spec, _history(True), ["EQ.SPX", "VOL.SPX.ATM"])
    alone = rolling_windows(spec, _history(False), ["EQ.SPX"])
    # the sparse factor does not shrink the windows, and the dense one moves as without it
    assert len(full) == len(alone) == len(pd.bdate_range("2010-01-04", "2019-12-31")) - 10
    np.testing.assert_array_equal(full.shocks[:, 0], alone.shocks[:, 0])
    h = _history(True).levels["VOL.SPX.ATM"]
    starts = pd.to_datetime(full.info["start"]).to_numpy()
    ends = pd.to_datetime(full.info["end"]).to_numpy()
    inside = starts >= np.datetime64("2017-01-02")
    np.testing.assert_array_equal(full.covered[:, 1], inside)
    assert full.covered[:, 0].all()
    expect = h.reindex(ends).to_numpy()[inside] - h.reindex(starts).to_numpy()[inside]
    np.testing.assert_allclose(full.shocks[inside, 1], expect, rtol=0, atol=1e-15)
    assert (full.shocks[~inside, 1] == 0).all() and (full.paths[~inside][:, :, 1] == 0).all()
    # each window's path ends at its shock
    np.testing.assert_array_equal(full.paths[:, -1, :], full.shocks)
    assert inside.sum() > 700 and (~inside).sum() > 1700
