"""Volatility targeting: the EWMA recursion, the scale and the leverage cap."""

from __future__ import annotations

import numpy as np
import pytest

from stressgrid.core import ConfigError
from stressgrid.portfolios import VolTarget
from stressgrid.portfolios._voltarget import ewma_variance


def test_ewma_of_a_constant_magnitude_series_is_that_magnitude_squared():
    r = np.array([0.01, -0.01] * 100)
    assert ewma_variance(r, 0.94) == pytest.approx(1e-4, rel=1e-12)


def test_ewma_recursion_by_hand():
    r = np.array([0.02, -0.01, 0.03, 0.0])
    s2 = np.mean(r ** 2)           # seeded with the mean square of the first (here all) returns
    for x in r:
        s2 = 0.9 * s2 + 0.1 * x * x
    assert ewma_variance(r, 0.9) == pytest.approx(s2, rel=1e-15)


def test_scale_hits_the_target_vol():
    rng = np.random.default_rng(0)
    R = rng.normal(0, 0.01, (2000, 3))
    w = np.array([0.5, 0.3, 0.2])
    m = VolTarget(target_vol=0.10, max_leverage=10.0, estimator="sample").fit(R, current_weights=w)
    book_vol = np.std(R @ w, ddof=1) * np.sqrt(252)
    assert m.forecast_vol_ == pytest.approx(book_vol, rel=1e-12)
    assert m.scale_ == pytest.approx(0.10 / book_vol, rel=1e-12)
    assert np.std(R @ m.weights_, ddof=1) * np.sqrt(252) == pytest.approx(0.10, rel=1e-12)
    assert not m.capped_


def test_leverage_cap_binds():
    R = np.full((100, 2), 0.0001) * np.array([1, -1]) * np.where(np.arange(100) % 2, 1, -1)[:, None]
    w = np.array([0.6, 0.4])
    m = VolTarget(target_vol=0.20, max_leverage=2.0).fit(R, current_weights=w)
    assert m.capped_
    assert m.leverage_ == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(m.weights_, w * 2.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(target_vol=-0.1), "target_vol"), (dict(max_leverage=0), "max_leverage"),
    (dict(estimator="garch"), "estimator"), (dict(lam=1.0), "lam"),
])
def test_bad_settings(kwargs, match):
    args = dict(target_vol=0.1, max_leverage=2.0)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        VolTarget(**args).fit(np.ones((10, 2)) * 0.01, current_weights=[0.5, 0.5])


def test_needs_a_book():
    with pytest.raises(ConfigError, match="current_weights"):
        VolTarget(0.1, 2.0).fit(np.ones((10, 2)))
    with pytest.raises(ConfigError, match="empty"):
        VolTarget(0.1, 2.0).fit(np.ones((10, 2)), current_weights=[0.0, 0.0])
