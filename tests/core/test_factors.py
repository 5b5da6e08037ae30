import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stressgrid.core import ConfigError, apply_shocks, factor_moves, factor_spec, log_mask, tenor_years


@pytest.mark.parametrize(
    "name, kind, asset_class, is_log",
    [
        ("EQ.SPX", "price", "equity", True),
        ("CMD.WTI", "price", "commodity", True),
        ("FX.EURUSD", "price", "fx", True),
        ("IR.USD.10Y", "rate", "rates", False),
        ("CR.CDX_IG", "spread", "credit", False),
        ("VOL.SPX.ATM", "vol", "volatility", False),
        ("BASIS.WTI", "basis", "commodity", False),
    ],
)
def test_prefix_fixes_kind_and_convention(name, kind, asset_class, is_log):
    spec = factor_spec(name)
    assert (spec.kind, spec.asset_class, spec.is_log) == (kind, asset_class, is_log)
    assert spec.convention == ("log-return" if is_log else "absolute change")


def test_curve_and_fx_details():
    assert factor_spec("IR.EUR.6M").tenor_years == pytest.approx(0.5)
    assert factor_spec("IR.USD.30Y").currency == "USD"
    assert factor_spec("FX.JPYUSD").currency == "USD"
    assert tenor_years("2W") == pytest.approx(14 / 365)


@pytest.mark.parametrize("bad", ["SPX", "eq.spx", "XX.SPX", "FX.EUR", "FX.USDUSD", "IR.USD.10", "IR.US.10Y", "VOL.SPX", ""])
def test_bad_names_are_rejected_with_the_name(bad):
    with pytest.raises(ConfigError, match="factor"):
        factor_spec(bad)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.01, 1e4), min_size=4, max_size=4),
    st.lists(st.floats(-2, 2), min_size=4, max_size=4),
)
def test_moves_invert_shocks(levels, shocks):
    factors = ["EQ.A", "IR.USD.1Y", "FX.EURUSD", "CR.X"]
    is_log = log_mask(factors)
    lv, sh = np.array(levels), np.array(shocks)
    new = apply_shocks(lv, sh, is_log)
    np.testing.assert_allclose(factor_moves(lv, new, is_log), sh, rtol=1e-9, atol=1e-9)
    # convention: prices multiply by exp(shock), others add
    assert new[0] == pytest.approx(levels[0] * np.exp(shocks[0]))
    assert new[1] == pytest.approx(levels[1] + shocks[1])


def test_zero_shock_leaves_levels_unchanged():
    lv = np.array([100.0, 0.02, 1.1])
    out = apply_shocks(lv, np.zeros(3), log_mask(["EQ.A", "IR.USD.1Y", "FX.EURUSD"]))
    assert np.array_equal(out, lv)
