"""VaR/CVaR against skfolio (a peer library) and against identities."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stressgrid.core import cvar_contributions, var_cvar
from stressgrid.core.measures import level_label


@pytest.mark.parametrize("alpha", [0.9, 0.95, 0.975, 0.99])
@pytest.mark.parametrize("n", [100, 250, 1001])
def test_cvar_matches_skfolio(alpha, n):
    from skfolio.measures import cvar as sk_cvar

    rng = np.random.default_rng(n)
    pnl = rng.standard_t(4, size=n)
    _, cvar = var_cvar(pnl, alpha)
    # skfolio's cvar takes returns and beta (the confidence level) and returns the loss
    assert cvar == pytest.approx(sk_cvar(pnl, beta=alpha), rel=1e-12)


def test_var_is_the_order_statistic():
    # 100 equally weighted scenarios with losses 1..100: the 95% VaR is the 95th smallest loss
    pnl = -np.arange(1.0, 101.0)
    var, cvar = var_cvar(pnl, 0.95)
    assert var == 95.0
    # mean of the 5 worst losses 96..100
    assert cvar == pytest.approx(98.0)


@pytest.mark.parametrize("n", [100_000, 300_000, 2_000_000])
@pytest.mark.parametrize("alpha", ["0.9", "0.95", "0.975", "0.99", "0.999"])
def test_var_is_the_order_statistic_of_a_large_family(n, alpha):
    # the smallest k with k / n >= alpha, in exact rational arithmetic: a sum of n equal probabilities
    # added one by one falls short of alpha by more than the tolerance, and read the (k+1)-th loss
    from fractions import Fraction

    k = -(-Fraction(alpha) * n // 1)
    rng = np.random.default_rng(n)
    pnl = rng.standard_normal(n)
    loss = np.sort(-pnl)
    var, cvar = var_cvar(pnl, float(alpha))
    assert var == loss[int(k) - 1]
    # CVaR: the mean of the n - k worst losses (n * (1 - alpha) is a whole number here)
    assert cvar == pytest.approx(loss[int(k):].mean(), rel=1e-12)
    # the liquidity module's column-wise estimator agrees (two columns: the book and its double)
    from stressgrid.liquidity._capacity import _cvar_of_losses

    both = _cvar_of_losses(np.column_stack([-pnl, -2 * pnl]), float(alpha), None)
    assert both == pytest.approx([cvar, 2 * cvar], rel=1e-12)


def test_running_sums_stay_exact_over_many_rows():
    import math

    from stressgrid.core.measures import running_sum

    rng = np.random.default_rng(3)
    x = rng.dirichlet(np.ones(1_000_003))
    got = running_sum(x)
    for i in (0, 1023, 1024, 500_000, 999_999, 1_000_002):
        assert abs(got[i] - math.fsum(x[:i + 1])) <= 1e-15
    two = running_sum(np.column_stack([x, 3 * x]))
    np.testing.assert_array_equal(two[:, 0], got)
    assert abs(two[-1, 1] - 3 * math.fsum(x)) <= 1e-14
    np.testing.assert_array_equal(running_sum(x[:100]), np.cumsum(x[:100]))


def test_weights_equal_duplicated_scenarios():
    rng = np.random.default_rng(1)
    pnl = rng.normal(size=40)
    w = rng.integers(1, 4, size=40).astype(float)
    dup = np.repeat(pnl, w.astype(int))
    for a in (0.9, 0.95):
        got = var_cvar(pnl, a, w / w.sum())
        ref = var_cvar(dup, a)
        assert got[0] == pytest.approx(ref[0], abs=1e-12)
        assert got[1] == pytest.approx(ref[1], rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300), st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_cvar_at_least_var(values, alpha):
    var, cvar = var_cvar(np.array(values), alpha)
    assert cvar >= var - 1e-9 * max(1.0, abs(var))
    assert var <= -min(values) + 1e-9


def test_euler_contributions_add_up():
    rng = np.random.default_rng(7)
    m = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    for a in (0.95, 0.99):
        c = cvar_contributions(m, a)
        assert c.sum() == pytest.approx(var_cvar(m.sum(axis=1), a)[1], rel=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        var_cvar(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="weights"):
        var_cvar(np.ones(3), 0.9, np.array([0.5, 0.5, 0.5]))


def test_contributions_do_not_follow_the_last_bit_of_a_tie_at_the_var():
    """Two scenarios at the VaR, as a minimum-CVaR book leaves them, one a rounding error above the other
    in either direction: the boundary mass is shared, so the contributions are the same both ways."""
    from stressgrid.core import cvar_contributions, var_cvar

    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 3))
    base[0] = [-1.0, -2.0, -3.0]  # loss 6
    base[1] = [-3.0, -2.5, -0.5]  # loss 6, from other positions
    base[2] = [-4.0, -4.0, -4.0]  # loss 12, the worst
    out = []
    for eps in (1e-15, -1e-15):
        m = base.copy()
        m[1, 2] *= 1 + eps
        out.append(cvar_contributions(m, 0.95))  # tail mass 2 scenarios: the worst and half of each tie
        var, cvar = var_cvar(m.sum(axis=1), 0.95)
        assert out[-1].sum() == pytest.approx(cvar, rel=1e-12) and cvar >= var
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
    np.testing.assert_allclose(out[0], (np.array([4.0, 4.0, 4.0]) + 0.5 * np.array([1.0, 2.0, 3.0])
                                        + 0.5 * np.array([3.0, 2.5, 0.5])) / 2, rtol=1e-12)


@pytest.mark.parametrize("alpha, label", [(0.95, "95%"), (0.99, "99%"), (0.975, "97.5%"), (0.995, "99.5%"),
                                          (0.999, "99.9%"), (0.9995, "99.95%"), (0.5, "50%")])
def test_a_confidence_level_keeps_the_digits_it_needs(alpha, label):
    assert level_label(alpha) == label
