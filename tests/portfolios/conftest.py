"""Fixtures of the portfolio tests: return matrices from the bundled history and seeded synthetic ones."""

from __future__ import annotations

import numpy as np
import pytest
from portfolio_data import ASSETS, FACTORS, synthetic_returns


@pytest.fixture(scope="session")
def history_returns(history):
    """Daily log returns 2012-01..2017-03 of :data:`ASSETS` ``[T, 24]`` (a real scenario matrix)."""
    levels = history.levels[ASSETS].loc["2012-01-01":"2017-03-29"].dropna()
    return np.diff(np.log(levels.to_numpy()), axis=0)


@pytest.fixture(scope="session")
def history_factors(history):
    """Aligned asset returns ``[T, 24]`` and factor moves ``[T, 4]`` (log returns; the 10y yield in changes)."""
    cols = ASSETS + [f for f in FACTORS if f not in ASSETS]
    levels = history.levels[cols].loc["2012-01-01":"2017-03-29"].dropna()
    assets = np.diff(np.log(levels[ASSETS].to_numpy()), axis=0)
    fac = []
    for f in FACTORS:
        x = levels[f].to_numpy()
        fac.append(np.diff(x) if f.startswith("IR.") else np.diff(np.log(x)))
    return assets, np.column_stack(fac)


@pytest.fixture(scope="session")
def synthetic():
    return synthetic_returns
