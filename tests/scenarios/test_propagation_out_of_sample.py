"""Propagation recovers realised crisis moves it was not shown (an out-of-sample check on real data)."""

import numpy as np
import pytest

from stressgrid.core import factor_moves, log_mask
from stressgrid.scenarios._historical import _propagate, propagation_model

# Factors replayed in the GFC window (2007-10-09 .. 2009-03-09) that the test hides and propagates.
HIDDEN = ["FX.AUDUSD", "FX.CADUSD", "EQ.JPM", "EQ.XOM", "CMD.WTI", "IR.USD.2Y"]
UNIVERSE = ["EQ.SPX", "EQ.NASDAQ", "EQ.JPM", "EQ.BAC", "EQ.XOM", "EQ.CVX", "EQ.MSFT", "EQ.PG", "CMD.WTI",
            "CMD.GOLD", "FX.AUDUSD", "FX.CADUSD", "FX.NZDUSD", "FX.NOKUSD", "FX.SEKUSD", "FX.EURUSD",
            "FX.JPYUSD", "IR.USD.3M", "IR.USD.2Y", "IR.USD.10Y", "IR.USD.30Y"]


def test_hidden_gfc_moves_are_recovered_in_sign_and_size(history):
    lv = history.levels[UNIVERSE]
    start, end = lv.loc[:"2007-10-09"].iloc[-1], lv.loc[:"2009-03-09"].iloc[-1]
    actual = factor_moves(start.to_numpy(), end.to_numpy(), log_mask(UNIVERSE))
    assert np.isfinite(actual).all()
    cov, has, _ = propagation_model(history, UNIVERSE)
    target = np.array([UNIVERSE.index(f) for f in HIDDEN])
    known = np.array([j for j in range(len(UNIVERSE)) if j not in target])
    est = _propagate(cov, known, target, actual[known][None, :])[0]
    for f, e, a in zip(HIDDEN, est, actual[target]):
        assert np.sign(e) == np.sign(a), (f, e, a)
        assert 0.33 <= e / a <= 3.0, (f, e, a)
