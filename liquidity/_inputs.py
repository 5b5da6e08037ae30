"""Per-position inputs of the cost model from the book, the market snapshot and the history.

Unit value (base currency per unit of ``quantity``; the price that ``bid_ask_bps`` refers to):

==================================  ==============================================================
type                                unit value
==================================  ==============================================================
equity, equity_future               ``multiplier x S x X`` (the linear kernel's price)
commodity_future                    ``multiplier x S exp(b T_f) x X`` (the futures price)
fx_forward                          ``multiplier x S x X_BBB``: one unit of the bought currency
option                              ``multiplier x premium x X`` (the option kernel's value)
bond                                ``multiplier x dirty price per unit face x X`` (the bond kernel)
rate_future                         ``multiplier x (100 - 100 f) x X`` (the futures price)
swap, cds                           ``multiplier x X``: notional
vix_future                          ``multiplier x F x X`` (the VIX futures price, in index points)
vix_option                          ``multiplier x premium x X`` (the VIX option kernel's value)
==================================  ==============================================================

``S`` the underlying's level, ``X`` the factor converting the position's currency into the base
currency.  Values come from the same pricing functions the kernels revalue with, at the snapshot.

Daily volatility: the root mean square of the position's one-day full-revaluation P&L over the last
``vol_window`` moves of its underlying factor up to the as-of date (between consecutive dates on which
that factor is observed; zero-mean, as in RiskMetrics, J.P. Morgan 1996), divided by its gross value.  A
position whose ``underlying`` factor has no history in the window (held flat: e.g. a CDS whose spread is
a market override) gets its asset class's ``default_daily_vol``; ``vol_source`` says which.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stressgrid import kernels
from stressgrid.core import Book, History, MarketSnapshot, factor_moves, fx_factor, log_mask

from ._model import LiquidityModel
from ._params import LiquidityParams

__all__ = ["unit_values", "daily_vols", "underlying_covered", "market_inputs", "model_from_market", "revalue_paths", "path_vol_multiplier"]


def _fx(market: MarketSnapshot, ccy: str, base: str) -> float:
    f = fx_factor(ccy, base)
    return 1.0 if f is None else market.level(f)


def unit_values(book: Book | pd.DataFrame, market: MarketSnapshot, prepared: kernels.PreparedBook, base_ccy: str) -> np.ndarray:
    """Base-currency value of one unit of each position ``[N]`` (see the module docstring)."""
    pos = getattr(book, "positions", book).reset_index(drop=True)
    n = len(pos)
    L = np.asarray(market.levels, dtype=float)
    out = np.full(n, np.nan)
    mult = pos["multiplier"].to_numpy(float)
    for i, row in pos.iterrows():
        t = row["type"]
        if t in ("equity", "equity_future"):
            out[i] = mult[i] * market.level(row["underlying"]) * _fx(market, row["currency"], base_ccy)
        elif t == "fx_forward":
            und = row["underlying"]
            out[i] = mult[i] * market.level(und) * _fx(market, und[6:9], base_ccy)
        elif t in ("swap", "cds"):
            out[i] = mult[i] * _fx(market, row["currency"], base_ccy)
    for g in prepared.groups:
        cols = np.asarray(g.columns)
        a = g.arrays
        if isinstance(a, kernels.OptionBook):
            out[cols] = mult[cols] * kernels.option_values_numpy(a._replace(units=np.ones(len(cols))), L)[0]
        elif isinstance(a, kernels.CashflowBook):
            bonds = pos.loc[cols, "type"].to_numpy() == "bond"
            vals = kernels.cashflow_values_numpy(a._replace(units=np.ones(len(cols))), L)[0]
            out[cols[bonds]] = mult[cols[bonds]] * vals[bonds]
        elif isinstance(a, kernels.RateFutureBook):
            fx = np.where(a.fx_idx >= 0, L[np.maximum(a.fx_idx, 0)], 1.0)
            out[cols] = mult[cols] * kernels.rate_future_price(a, L) * fx
        elif isinstance(a, kernels.CommodityFutureBook):
            fx = np.where(a.fx_idx >= 0, L[np.maximum(a.fx_idx, 0)], 1.0)
            out[cols] = mult[cols] * kernels.futures_price(a, L) * fx
        elif isinstance(a, kernels.VixFutureBook):
            fx = np.where(a.fx_idx >= 0, L[np.maximum(a.fx_idx, 0)], 1.0)
            out[cols] = mult[cols] * kernels.vix_future_price(a, L) * fx
        elif isinstance(a, kernels.VixOptionBook):
            out[cols] = mult[cols] * kernels.vix_option_values_numpy(a._replace(units=np.ones(len(cols))), L)[0]
    return np.abs(out)


def daily_vols(
    prepared: kernels.PreparedBook,
    market: MarketSnapshot,
    history: History,
    window: int = 60,
    underlying=None,
) -> np.ndarray:
    """Daily P&L volatility of each whole position ``[N]`` (base currency) from the history.

    For each position, the root mean square of its one-day full-revaluation P&L
    (:func:`kernels.revalue_numpy`) under each of the last ``window`` moves of the history up to
    ``market.as_of`` between consecutive dates on which its ``underlying`` factor is observed (every
    factor's level carried forward over its own gaps; a factor absent from the history is held flat).
    A position whose underlying has fewer than two observations gets 0.

    ``underlying`` ``[N]`` names each position's main factor (default: every position uses the union
    of all dates, e.g. for a book without an ``underlying`` column).
    """
    factors = list(market.factors)
    lv = history.levels.reindex(columns=factors).loc[: market.as_of]
    filled = lv.ffill()
    is_log = log_mask(factors)
    n = prepared.n
    und = np.asarray(["" for _ in range(n)] if underlying is None else list(underlying), dtype=object)
    blocks, owners = [], []
    for u in dict.fromkeys(und):
        if u == "":
            x = filled.tail(window + 1).to_numpy(float)
        elif u in history.levels.columns:
            dates = history.levels[u].loc[: market.as_of].dropna().index[-(window + 1):]
            x = filled.loc[dates].to_numpy(float)
        else:
            continue
        if len(x) < 2:
            continue
        mv = factor_moves(x[:-1], x[1:], is_log)
        blocks.append(np.where(np.isfinite(mv), mv, 0.0))
        owners.append(u)
    out = np.zeros(n)
    if not blocks:
        return out
    pnl = kernels.revalue_numpy(prepared, np.asarray(market.levels, float), np.concatenate(blocks), market.is_log)
    start = 0
    for u, b in zip(owners, blocks):
        cols = und == u
        out[cols] = np.sqrt(np.mean(pnl[start: start + len(b), cols] ** 2, axis=0))
        start += len(b)
    return out


def underlying_covered(book: Book, market: MarketSnapshot, history: History, window: int = 60) -> np.ndarray:
    """True ``[N]`` where the position's ``underlying`` factor moves on at least half of the last ``window``
    days of the history up to the as-of date (otherwise its volatility would come only from secondary
    factors, e.g. a CDS's discount curve while its spread is held flat)."""
    pos = getattr(book, "positions", book)
    und = list(dict.fromkeys(pos["underlying"]))
    lv = history.levels.reindex(columns=und).loc[: market.as_of].tail(window + 1)
    x = lv.to_numpy(float)
    good = (np.isfinite(x[1:]) & np.isfinite(x[:-1])).sum(axis=0) if len(x) > 1 else np.zeros(len(und))
    ok = dict(zip(und, good >= max(window // 2, 1)))
    return np.array([bool(ok[u]) for u in pos["underlying"]])


def market_inputs(
    book: Book,
    market: MarketSnapshot,
    prepared: kernels.PreparedBook,
    history: History,
    base_ccy: str,
    params: LiquidityParams | None = None,
) -> pd.DataFrame:
    """Unit value, daily volatility and its source per position: a DataFrame with ``id``,
    ``unit_value``, ``daily_vol`` (decimal, NaN where the history gives none) and ``vol_source``."""
    params = params or LiquidityParams.default()
    uv = unit_values(book, market, prepared, base_ccy)
    pnl_vol = daily_vols(prepared, market, history, params.vol_window, book.positions["underlying"].to_numpy())
    value = np.abs(book.positions["quantity"].to_numpy(float)) * uv
    covered = underlying_covered(book, market, history, params.vol_window)
    ok = (pnl_vol > 0) & (value > 0) & covered
    vol = np.where(ok, pnl_vol / np.where(value > 0, value, 1.0), np.nan)
    return pd.DataFrame({"id": book.positions["id"].to_numpy(), "unit_value": uv, "daily_vol": vol,
                         "vol_source": np.where(ok, "history", "default")})


def model_from_market(
    book: Book,
    market: MarketSnapshot,
    prepared: kernels.PreparedBook,
    history: History,
    base_ccy: str,
    params: LiquidityParams | None = None,
    nav: float | None = None,
    caps=None,
) -> LiquidityModel:
    """:class:`LiquidityModel` of a book at a market snapshot: :func:`market_inputs` then
    :meth:`LiquidityModel.from_book` (what the grid calls once per batch)."""
    params = params or LiquidityParams.default()
    mi = market_inputs(book, market, prepared, history, base_ccy, params)
    return LiquidityModel.from_book(book.positions, mi["unit_value"].to_numpy(), mi["daily_vol"].to_numpy(),
                                    params=params, nav=nav, caps=caps, vol_source=mi["vol_source"].to_numpy())


def revalue_paths(
    prepared: kernels.PreparedBook,
    market: MarketSnapshot,
    paths: np.ndarray,
    chunk: int | None = None,
    positions: pd.DataFrame | None = None,
    base_ccy: str | None = None,
    path_books: dict | None = None,
) -> np.ndarray:
    """Cumulative P&L paths ``[S, H, N]`` (base currency) of every position under factor paths
    ``[S, H, F]`` (cumulative shocks on ``market.factors``).

    Without ``positions`` every day revalues the book at the as-of date (:func:`kernels.revalue` over
    every path day at once, or in parts of ``chunk`` rows).  With
    the book's ``positions`` and ``base_ccy``, day ``k`` values the book ``k`` business days later, time
    passing and instruments settling on the path (:func:`kernels.revalue_path`, every day in the same
    kernel calls; it takes and fills ``path_books``, the book's days as one book per path length, to
    share between the paths of one book).
    """
    S, H, F = paths.shape
    base = np.asarray(market.levels, dtype=float)
    if positions is not None:
        if base_ccy is None:
            raise ValueError("revalue_paths: positions given without base_ccy")
        return kernels.revalue_path(prepared, positions, base_ccy, market.as_of, base, paths, market.is_log, path_books)
    flat = paths.reshape(S * H, F)
    out = np.empty((S * H, prepared.n))
    step = S * H if chunk is None else max(int(chunk), 1)
    for a in range(0, S * H, step):
        kernels.revalue(prepared, base, flat[a: a + step], market.is_log, out=out[a: a + step])
    return out.reshape(S, H, prepared.n)


def path_vol_multiplier(model: LiquidityModel, pnl_paths: np.ndarray, floor: float | None = None) -> np.ndarray:
    """Each scenario's volatility multiplier per position ``[S, N]``: the root mean square of the
    position's daily P&L along the path over its base daily P&L volatility, floored at ``floor``
    (default ``model.vol_floor``; 1 means a path never makes trading cheaper than the base).

    A position with no base volatility (zero quantity) gets the floor (or 1 if the floor is 0).
    """
    floor = model.vol_floor if floor is None else float(floor)
    dp = np.diff(pnl_paths, axis=1, prepend=0.0)
    rms = np.sqrt(np.mean(dp * dp, axis=1))
    base = model.pnl_vol
    ratio = np.where(base > 0, rms / np.where(base > 0, base, 1.0), max(floor, 1.0) if floor == 0 else floor)
    return np.maximum(ratio, floor)
