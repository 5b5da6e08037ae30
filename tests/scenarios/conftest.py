"""Fixtures of the scenario tests: the bundled history, a small factor set and a spec parser."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from stressgrid import scenarios

#: equities, FX, commodities, curve points and the VIX: all with history in 2014..2017
FACTORS = ["EQ.SPX", "EQ.AAPL", "EQ.JPM", "FX.EURUSD", "FX.JPYUSD", "CMD.WTI", "CMD.GOLD",
           "IR.USD.2Y", "IR.USD.10Y", "VOL.SPX.ATM"]


@pytest.fixture(scope="session")
def spec():
    ta = TypeAdapter(scenarios.ScenarioSpec)
    return ta.validate_python


@pytest.fixture(scope="session")
def market(history):
    from stressgrid.core import snapshot_from_history

    return snapshot_from_history(history, FACTORS, "2017-03-29")


@pytest.fixture(scope="session")
def factors():
    return list(FACTORS)


