"""The par-to-zero bootstrap reprices its par bonds at 100 (an identity, not a copy of the code)."""

import numpy as np
import pytest

from stressgrid.core.curves import bootstrap_par_semiannual, interp_zero


def _price_from_zero(zero_fn, maturity, coupon):
    times = np.arange(0.5, maturity + 1e-9, 0.5)
    z = zero_fn(times)
    df = np.exp(-z * times)
    return 100 * (coupon / 2 * df.sum() + df[-1])


@pytest.mark.parametrize("curve", [
    {0.25: 0.0078, 0.5: 0.0092, 1: 0.0104, 2: 0.0126, 3: 0.0153, 5: 0.0193, 7: 0.0221, 10: 0.0239, 20: 0.0274, 30: 0.0299},
    {0.25: 0.05, 0.5: 0.049, 1: 0.047, 2: 0.045, 5: 0.044, 10: 0.046, 30: 0.048},  # inverted front
])
def test_par_bonds_reprice_at_par(curve):
    tenors = np.array(sorted(curve))
    par = np.array([curve[t] for t in tenors])
    grid = np.arange(0.5, 30.01, 0.5)
    zeros = bootstrap_par_semiannual(tenors, par, grid)

    def zero_fn(t):
        return interp_zero(grid, zeros, t)

    for T in [1, 2, 5, 10, 30]:
        if T > tenors.max():
            continue
        y = np.interp(T, tenors, par)
        assert _price_from_zero(zero_fn, T, y) == pytest.approx(100.0, abs=1e-9)


def test_short_end_is_semiannual_compounding():
    z = bootstrap_par_semiannual(np.array([0.25, 0.5, 1.0]), np.array([0.02, 0.021, 0.022]), np.array([0.25]))
    assert z[0] == pytest.approx(2 * np.log(1 + 0.02 / 2))


def test_no_extrapolation_beyond_observed():
    z = bootstrap_par_semiannual(np.array([0.25, 2.0]), np.array([0.01, np.nan]), np.array([0.25, 2.0]))
    assert np.isfinite(z[0]) and np.isnan(z[1])
