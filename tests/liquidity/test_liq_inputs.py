"""Model inputs from the demo book, its market snapshot and the history: unit values, daily vols, P&L paths."""

from __future__ import annotations

import numpy as np
import pytest

from stressgrid import kernels
from stressgrid.core import load_book, log_mask, snapshot_from_history
from stressgrid.grid._batch import load_batch
from stressgrid.kernels._common import year_fraction
from stressgrid.liquidity import (
    market_inputs,
    model_from_market,
    path_vol_multiplier,
    revalue_paths,
    unit_values,
)


@pytest.fixture(scope="module")
def demo(history, demo_batch_path):
    batch, _ = load_batch(demo_batch_path)
    book = load_book(batch.book)
    factors = kernels.required_factors(book.positions, "USD")
    market = snapshot_from_history(history, factors, batch.market.as_of, batch.market.max_stale_days, batch.market.overrides)
    prepared = kernels.prepare(book.positions, market.factors, "USD", market.as_of, levels=market.levels)
    return book, market, prepared


def _row(book, pid):
    pos = book.positions
    return pos.index[pos["id"] == pid][0], pos[pos["id"] == pid].iloc[0]


def test_unit_values_of_linear_instruments_are_price_times_multiplier(demo):
    book, market, prepared = demo
    uv = unit_values(book, market, prepared, "USD")
    i, row = _row(book, "ES_H9")
    assert uv[i] == pytest.approx(50 * market.level("EQ.SPX"), rel=1e-15)
    i, row = _row(book, "AAPL_US")
    assert uv[i] == pytest.approx(market.level("EQ.AAPL"), rel=1e-15)
    i, row = _row(book, "AUDUSD_FWD")  # one AUD in USD
    assert uv[i] == pytest.approx(market.level("FX.AUDUSD"), rel=1e-15)
    i, row = _row(book, "JPYUSD_FWD")
    assert uv[i] == pytest.approx(market.level("FX.JPYUSD"), rel=1e-15)
    i, row = _row(book, "CL_J9")  # futures price S exp(b T), Act/365F from the as-of date
    T = float(year_fraction(market.as_of, row["maturity"])[0])
    assert uv[i] == pytest.approx(1000 * market.level("CMD.WTI") * np.exp(market.level("BASIS.WTI") * T), rel=1e-14)
    for pid in ("USD_SWAP_5Y", "CDX_IG31"):  # notional
        i, _ = _row(book, pid)
        assert uv[i] == 1.0


def test_option_unit_value_is_its_premium(demo):
    # a call's value goes to nothing when its underlying does: minus the P&L of that move is the premium
    book, market, prepared = demo
    uv = unit_values(book, market, prepared, "USD")
    shocks = np.zeros((1, len(market.factors)))
    for pid, und in (("SPX_C2600_SV", "EQ.SPX"), ("EURUSD_C117_JUN", "FX.EURUSD"), ("WTI_C50_U9", "CMD.WTI")):
        i, row = _row(book, pid)
        s = shocks.copy()
        s[0, market.factors.index(und)] = -30.0
        pnl = kernels.revalue_numpy(prepared, market.levels, s, market.is_log)[0, i]
        assert uv[i] * abs(row["quantity"]) == pytest.approx(abs(pnl), rel=1e-9)


def test_bond_and_rate_future_unit_values_are_prices_near_par(demo):
    book, market, prepared = demo
    uv = unit_values(book, market, prepared, "USD")
    for pid in ("UST_2Y", "UST_5Y", "UST_10Y", "UST_30Y", "IBM_28"):
        i, _ = _row(book, pid)
        assert 0.85 < uv[i] < 1.15
    i, _ = _row(book, "ED_Z9")  # 2,500 USD per point of a price near 100 - 100 x (a ~2.5% forward)
    assert 2500 * 97 < uv[i] < 2500 * 100


def test_daily_vol_of_a_stock_is_the_rms_of_its_daily_pnl(demo, history):
    book, market, prepared = demo
    mi = market_inputs(book, market, prepared, history, "USD")
    i, row = _row(book, "MSFT_US")
    lv = history.levels["EQ.MSFT"].loc[: market.as_of].dropna().tail(61).to_numpy()  # its last 60 moves
    r = np.log(lv[1:] / lv[:-1])
    pnl = row["quantity"] * market.level("EQ.MSFT") * np.expm1(r)
    value = abs(row["quantity"]) * market.level("EQ.MSFT")
    assert mi.loc[i, "daily_vol"] == pytest.approx(np.sqrt(np.mean(pnl ** 2)) / value, rel=1e-12)
    assert mi.loc[i, "vol_source"] == "history"


def test_a_position_whose_underlying_has_no_history_gets_the_class_default(demo, history):
    book, market, prepared = demo
    m = model_from_market(book, market, prepared, history, "USD")
    i, _ = _row(book, "CDX_IG31")  # CR.CDX_IG is a market override: held flat in the history window
    assert m.vol_source[i] == "default"
    assert m.daily_vol[i] == 0.002
    assert (m.vol_source == "history").sum() == m.n - 1
    assert m.nav == pytest.approx(m.value.sum(), rel=1e-15)


@pytest.mark.slow  # compiles the JAX kernels of the demo book
def test_revalued_paths_match_the_numpy_twin_day_by_day(demo):
    book, market, prepared = demo
    rng = np.random.default_rng(0)
    F = len(market.factors)
    sd = np.where(log_mask(market.factors), 0.01, 0.0005)
    paths = np.cumsum(rng.normal(size=(4, 3, F)) * sd, axis=1)
    pp = revalue_paths(prepared, market, paths, chunk=5)
    for h in range(3):
        ref = kernels.revalue_numpy(prepared, market.levels, paths[:, h], market.is_log)
        np.testing.assert_allclose(pp[:, h], ref, rtol=1e-9, atol=1e-6)


def test_path_vol_multiplier_by_hand():
    from liquidity_helpers import small_book

    m = small_book()
    d = np.array([2.0, 0.5])  # daily P&L of 2 and 0.5 x each position's base daily P&L vol, every day
    paths = np.cumsum(np.ones((2, 7, m.n)) * d[:, None, None] * m.pnl_vol, axis=1)
    v = path_vol_multiplier(m, paths)
    np.testing.assert_allclose(v[0], 2.0, rtol=1e-12)
    np.testing.assert_allclose(v[1], 1.0, rtol=0)  # floored at 1
    np.testing.assert_allclose(path_vol_multiplier(m, paths, floor=0.0)[1], 0.5, rtol=1e-12)
