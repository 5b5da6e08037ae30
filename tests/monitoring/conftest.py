"""Fixtures of the monitoring tests."""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring_helpers import synthetic_returns


@pytest.fixture
def returns() -> pd.DataFrame:
    """400 days of four correlated synthetic returns."""
    return synthetic_returns()
