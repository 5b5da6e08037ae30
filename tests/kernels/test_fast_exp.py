"""The cash-flow kernel's exponential (``kernels._common.exp_in_range``): within one unit in the last
place of 30-digit values over its range, exact at 0, differentiable, and used only where every
exponent of a chunk lies in that range; a chunk with a level beyond it is priced again with the
exponents clipped, and its other scenarios keep their bits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stressgrid.kernels._common import EXP_RANGE, exp_in_range
from stressgrid.kernels._flows import flow_layout, layout_pnl, levels_in_exp_range
from stressgrid.kernels._rates import cashflow_pnl_numpy

from kernel_helpers import GRID, random_day_bonds, zero_curve


def test_within_one_unit_in_the_last_place_of_30_digit_values():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-EXP_RANGE, EXP_RANGE, 3000), rng.uniform(-40.0, 10.0, 3000), rng.uniform(-1e-6, 1e-6, 500),
                        [-EXP_RANGE, EXP_RANGE, -1.0, 1.0, np.log(2.0) / 2, -np.log(2.0) / 2]])
    ref = np.array([float(mp.exp(mp.mpf(float(v)))) for v in x])
    got = np.asarray(jax.jit(exp_in_range)(jnp.asarray(x)))
    assert np.max(np.abs(got - ref) / np.spacing(ref)) <= 1.0
    assert np.mean(got == ref) > 0.9  # mostly the correctly rounded value itself


def test_exact_at_zero_nan_stays_nan_and_its_derivative_is_itself():
    assert float(exp_in_range(jnp.float64(0.0))) == 1.0
    assert np.isnan(float(exp_in_range(jnp.float64(np.nan))))
    x = jnp.asarray([-3.0, -0.5, 0.0, 0.7, 12.0])
    d = jax.vmap(jax.grad(exp_in_range))(x)
    np.testing.assert_array_equal(np.asarray(d), np.asarray(exp_in_range(x)))


@pytest.mark.parametrize("interpolate", [True, False])
def test_a_level_beyond_the_range_runs_the_clipped_program(interpolate, monkeypatch):
    """A spread of 5,000% (exponents near -1,500) is beyond the range: the chunk is priced again by
    the checked program, whose discount factors there are 0 to within 1e-300 (numpy's underflow to
    0), the other scenarios keep the bits of a chunk of their own, and a zero shock gives 0."""
    import stressgrid.kernels._flows as flows

    rng = np.random.default_rng(8)
    book = random_day_bonds(rng, 24)
    layout = flow_layout(book, interpolate=interpolate)
    longest = float(book.times.max())
    # |exponent| <= (max(p + q) + max(t)) * |level| with p + q = t: the cap is EXP_RANGE / (2 T)
    assert float(layout.exp_cap) == pytest.approx(EXP_RANGE / (2 * longest), rel=1e-9)
    base = np.concatenate([zero_curve(rng), [0.015]])
    new = base + rng.normal(0, 0.003, (20, len(base)))
    wild = base.copy()
    wild[len(GRID)] = 50.0
    at_cap, past_cap = base.copy(), base.copy()
    at_cap[len(GRID)] = float(layout.exp_cap)
    past_cap[len(GRID)] = float(layout.exp_cap) * (1 + 1e-12)
    assert np.asarray(levels_in_exp_range(layout, jnp.asarray(np.stack([base, at_cap, past_cap, wild]).T))).tolist() == [True, True, False,
                                                                                                                        False]
    checked = []
    original = flows._states
    monkeypatch.setattr(flows, "_states", lambda *a, **k: checked.append(1) or original(*a, **k))
    alone = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, new))
    assert checked == []
    levels = np.concatenate([new[:5], wild[None], new[5:], base[None]])
    pnl = np.asarray(layout_pnl(layout, book.const, book.units, book.fx_idx, base, levels))
    assert checked == [1]
    np.testing.assert_array_equal(np.concatenate([pnl[:5], pnl[6:-1]]), alone)
    assert np.all(pnl[-1] == 0.0)
    ref = cashflow_pnl_numpy(book, base, levels)
    gross = np.abs(book.units) * book.amounts.sum(axis=1)
    assert np.max(np.abs(pnl - ref) / gross) < 1e-12
    spread = book.spread_w != 0.0
    # the issuer bonds lose their whole value in the wild scenario, the government bonds nothing
    # (on curve nodes, up to the rounding between the nodes and the flows: the scenario is also
    # outside the nodes' range, so it is priced flow by flow)
    np.testing.assert_allclose(pnl[5, spread], ref[5, spread], rtol=1e-12)
    assert np.all(np.abs(pnl[5, ~spread]) <= 1e-14 * gross[~spread])
