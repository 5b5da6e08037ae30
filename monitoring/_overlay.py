"""The hedge of an ``overlay`` rule, priced and revalued by the kernels, and its sizing.

Instruments (:data:`INSTRUMENTS`), each a one-row book priced by its kernel at the market snapshot:

* ``put``: a European put on an ``EQ.*`` index (``type: option``), Black-Scholes-Merton with a continuous
  dividend yield on the parametric surface ``VOL.U.{ATM,SKEW,CURV,TERM}`` (``docs/kernels.md``);
* ``vix_call``: a VIX call (``type: vix_option`` on ``VOL.U.ATM``), Black-76 on the VIX future of its
  expiry read off the surface's ATM term structure, with the vol-of-vol ``VOL.U.VOV``.

The expiry is ``expiry_days`` calendar days after the as-of date (Actual/365, as the kernels count).

Strike
------
``strike: x`` puts the strike at ``x`` times the reference: the index's spot for a put, the VIX future of
the option's expiry for a VIX call.  ``delta: d`` finds the strike whose Black delta at the model's vol for
that strike (the market's quoting convention: a "25-delta put") is ``d``::

    put:       delta(K) = -(DF F / S) N(-d1),   sigma = the surface at k = ln(K / F)   (spot delta)
    vix_call:  delta(K) = DF N(d1),             sigma = VOL.U.VOV                      (futures delta)
    d1 = ln(F / K) / (sigma sqrt T) + sigma sqrt T / 2

(Hull, *Options, Futures and Other Derivatives*, 10th ed., sec. 19.3 and ch. 18; ``DF F / S = exp(-q T)``
for an equity index).  The forward ``F`` and the discount factor ``DF`` are read from the kernel's own
prices by put-call parity at two strikes (``C - P = X DF (F - K)``, ``X`` the premium currency's FX level),
so they are exactly the kernel's.  The root is bracketed on ``[ref / 1000, 10 ref]`` and found by Brent's
method.

Sizing to a CVaR target
-----------------------
``CVaR(q)``, the CVaR of the book's P&L plus ``q`` contracts over a scenario family, is convex in ``q`` (CVaR
is convex and the P&L is linear in ``q``; Rockafellar and Uryasev, J. Risk 2 (2000) 21-41).
:func:`size_to_cvar` doubles ``q`` from a small start until ``CVaR(q)`` meets the goal (or stops falling, or
reaches the premium cap), then bisects to the smallest ``q`` that meets it; when no ``q`` meets it, it
returns the CVaR-minimising ``q`` (golden-section search on the bracket) and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from stressgrid.core import INSTRUMENT_TYPES, ConfigError, DataError, MarketSnapshot, fx_factor, var_cvar

__all__ = ["INSTRUMENTS", "PENDING_INSTRUMENTS", "Hedge", "default_underlying", "hedge_factors", "price_hedge",
           "hedge_pnl", "hedge_carry", "size_to_cvar"]


@dataclass(frozen=True)
class _Instrument:
    type: str  # the book's instrument type
    option_type: str  # call or put
    prefix: str  # the underlying factor's prefix
    default_underlying: str
    reference: str  # what a strike fraction multiplies


#: overlay instruments the kernels price
INSTRUMENTS: dict[str, _Instrument] = {"put": _Instrument("option", "put", "EQ", "EQ.SPX", "spot")}
if "vix_option" in INSTRUMENT_TYPES:
    INSTRUMENTS["vix_call"] = _Instrument("vix_option", "call", "VOL", "VOL.SPX.ATM", "VIX future")
#: instruments named in the design but not priced here yet: name -> why
PENDING_INSTRUMENTS: dict[str, str] = {
    "payer_swaption": "a payer swaption overlay is not available yet (no swaption kernel); use 'put' or 'vix_call'",
}
if "vix_call" not in INSTRUMENTS:
    PENDING_INSTRUMENTS["vix_call"] = "a VIX call overlay is not available yet (no vix_option instrument); use 'put'"


def default_underlying(instrument: str) -> str:
    """The underlying an overlay of ``instrument`` takes when none is given (the S&P 500 and its VIX)."""
    return INSTRUMENTS[instrument].default_underlying


@dataclass(frozen=True)
class Hedge:
    """One contract of the hedge, priced at the market snapshot.

    row : the position row (``quantity`` 1, the book's columns)
    prepared : ``row`` prepared for the kernels on the snapshot's factors
    price : value of one contract, base currency (``multiplier x premium x X``)
    reference : what a strike fraction multiplies: the index's spot (put) or the VIX future (vix_call)
    forward : the forward of the option's underlying at its expiry (the index forward; the VIX future)
    strike : the absolute strike
    expiry : expiry date
    years : time to expiry, Actual/365
    vol : the model's vol at the strike (the surface's; the vol-of-vol for a VIX option)
    delta : Black delta at that vol (module docstring)
    dividend_yield : ``q`` used (a put; None for a VIX call)
    """

    row: pd.DataFrame
    prepared: kernels.PreparedBook
    price: float
    reference: float
    forward: float
    strike: float
    expiry: date
    years: float
    vol: float
    delta: float
    dividend_yield: float | None


def _where(k: int, field: str) -> str:
    return f"monitoring.rules[{k}], field '{field}'"


def _book_default(positions: pd.DataFrame | None, underlying: str, column: str, kind: str):
    """The first non-empty ``column`` of the book's positions on ``underlying`` (of type ``kind`` first), else None."""
    if positions is None or column not in positions.columns or "underlying" not in positions.columns:
        return None
    on = positions[positions["underlying"].astype(str) == underlying]
    if "type" in on.columns:
        on = pd.concat([on[on["type"] == kind], on[on["type"] != kind]])
    for v in on[column]:
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return v
    return None


def _row(rule, k: int, market: MarketSnapshot, positions: pd.DataFrame | None, strike: float,
         dividend_yield: float | None, currency: str) -> pd.DataFrame:
    inst = INSTRUMENTS[rule.instrument]
    as_of = pd.Timestamp(market.as_of).normalize()
    rec = {
        "id": rule.id or f"OVERLAY_{k}",
        "type": inst.type,
        "underlying": rule.underlying,
        "quantity": 1.0,
        "multiplier": float(rule.multiplier),
        "currency": currency,
        "asset_class": "equity",
        "sleeve": rule.sleeve,
        "adv": float(rule.adv),
        "bid_ask_bps": float(rule.bid_ask_bps),
        "description": f"overlay of monitoring.rules[{k}]: {rule.underlying} {inst.option_type} {strike:.6g}, "
                       f"{rule.expiry_days} days",
        "strike": float(strike),
        "expiry": (as_of + pd.Timedelta(days=int(rule.expiry_days))).date(),
        "option_type": inst.option_type,
        "dividend_yield": dividend_yield,
    }
    cols = list(positions.columns) if positions is not None else []
    cols += [c for c in rec if c not in cols]
    return pd.DataFrame([{c: rec.get(c) for c in cols}], columns=cols)


def hedge_factors(rule, base_ccy: str, currency: str | None = None) -> list[str]:
    """Every factor of the market snapshot that pricing the rule's hedge needs."""
    from stressgrid import kernels

    inst = INSTRUMENTS[rule.instrument]
    row = pd.DataFrame([{"id": "x", "type": inst.type, "underlying": rule.underlying, "quantity": 1.0, "multiplier": 1.0,
                         "currency": currency or base_ccy, "option_type": inst.option_type, "strike": 1.0,
                         "expiry": date(2100, 1, 1)}])
    return kernels.required_factors(row, base_ccy)


def _prepare(row: pd.DataFrame, market: MarketSnapshot, base_ccy: str, k: int) -> kernels.PreparedBook:
    from stressgrid import kernels

    try:
        return kernels.prepare(row, market.factors, base_ccy, market.as_of, levels=market.levels)
    except DataError as exc:
        raise ConfigError(f"{_where(k, 'strike')}: the hedge cannot be priced at the snapshot: {exc}") from None


def _marks(book: kernels.PreparedBook, market: MarketSnapshot) -> np.ndarray:
    v = np.zeros(book.n)
    L = np.asarray(market.levels, float)[None, :]
    for g in book.groups:
        v[g.columns] = g.pricer.mark(g.arrays, L)[0]
    return v


def _forward(probe: pd.DataFrame, ref: float, market: MarketSnapshot, base_ccy: str, fx: float, k: int) -> tuple[float, float]:
    """``(F, DF)`` of the option of the one-row book ``probe`` at the snapshot, by put-call parity at two strikes
    (near ``ref``) of the kernel's own prices: ``C - P = X DF (F - K)``."""
    K = np.array([ref, 0.8 * ref])
    rows = pd.concat([probe] * 4, ignore_index=True).assign(
        id=[f"p{i}" for i in range(4)], quantity=1.0, multiplier=1.0, strike=np.r_[K, K],
        option_type=["call", "call", "put", "put"])
    v = _marks(_prepare(rows, market, base_ccy, k), market)
    c, p = v[:2], v[2:]
    xdf = -((c[0] - p[0]) - (c[1] - p[1])) / (K[0] - K[1])
    F = K[0] + (c[0] - p[0]) / xdf
    return float(F), float(xdf / fx)


def _vol(rule, market: MarketSnapshot, F: float, K: float, T: float) -> float:
    """The model's vol at strike ``K``: the surface's (put), the vol-of-vol (VIX call)."""
    from stressgrid import kernels

    name = rule.underlying.split(".")[1]
    if rule.instrument == "vix_call":
        return max(market.level(f"VOL.{name}.{kernels.VOV_PARAM}"), kernels.VOL_FLOOR)
    atm, skew, curv, term = (market.level(f"VOL.{name}.{p}") for p in kernels.VOL_PARAMS)
    return float(np.asarray(kernels.surface_vol(atm, skew, curv, term, math.log(K / F), T)))


def _delta(rule, F: float, DF: float, ref: float, K: float, sigma: float, T: float) -> float:
    from scipy.special import ndtr

    sd = sigma * math.sqrt(T)
    d1 = math.log(F / K) / sd + 0.5 * sd
    if rule.instrument == "vix_call":
        return float(DF * ndtr(d1))
    return float(-(DF * F / ref) * ndtr(-d1))


def price_hedge(rule, k: int, market: MarketSnapshot, base_ccy: str, positions: pd.DataFrame | None = None) -> Hedge:
    """Price one contract of the rule's hedge at the snapshot (module docstring: strike by a fraction of the
    reference or by delta).  Raises :class:`ConfigError` naming ``monitoring.rules[k]`` and the field for a
    hedge that cannot be priced (a factor missing from the snapshot, a delta no strike reaches)."""
    if rule.instrument in PENDING_INSTRUMENTS:
        raise ConfigError(f"{_where(k, 'instrument')}: {PENDING_INSTRUMENTS[rule.instrument]}")
    inst = INSTRUMENTS[rule.instrument]
    currency = rule.currency or _book_default(positions, rule.underlying, "currency", inst.type) or base_ccy
    q = None
    if inst.type == "option":
        q = rule.dividend_yield if rule.dividend_yield is not None else _book_default(positions, rule.underlying,
                                                                                       "dividend_yield", "option")
        q = 0.0 if q is None else float(q)
    missing = [f for f in hedge_factors(rule, base_ccy, currency) if f not in market.factors]
    if missing:
        field = "underlying" if rule.underlying in missing or any(m.startswith("VOL.") for m in missing) else "currency"
        raise ConfigError(
            f"{_where(k, field)}: the market snapshot has no {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}, "
            f"needed to price a {rule.instrument} on {rule.underlying} (the snapshot holds the factors the book's "
            "positions need: the book must hold an instrument on that underlying and its vol surface)")
    fx_name = fx_factor(currency, base_ccy)
    fx = 1.0 if fx_name is None else market.level(fx_name)
    T = int(rule.expiry_days) / 365.0  # Actual/365 from the as-of date, as the kernels count
    level = market.level(rule.underlying)
    guess = 100.0 * level if inst.type == "vix_option" else level  # the VIX in points; the index
    probe = _row(rule, k, market, positions, guess, q, currency)
    F, DF = _forward(probe, guess, market, base_ccy, fx, k)
    ref = F if inst.type == "vix_option" else level
    if rule.strike is not None:
        K = rule.strike * ref
    else:
        from scipy.optimize import brentq

        def gap(logm: float) -> float:
            K = ref * math.exp(logm)
            return _delta(rule, F, DF, ref, K, _vol(rule, market, F, K, T), T) - rule.delta

        lo, hi = math.log(1e-3), math.log(10.0)
        if not gap(lo) > 0 > gap(hi):
            raise ConfigError(
                f"{_where(k, 'delta')}: no strike of a {rule.expiry_days}-day {rule.instrument} on {rule.underlying} has "
                f"delta {rule.delta:g} (from {gap(hi) + rule.delta:.4f} to {gap(lo) + rule.delta:.4f} over strikes "
                f"1/1000 to 10 times the {inst.reference})")
        K = ref * math.exp(brentq(gap, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500))
    row = _row(rule, k, market, positions, K, q, currency)
    prepared = _prepare(row, market, base_ccy, k)
    price = float(_marks(prepared, market)[0])
    if not (np.isfinite(price) and price > 0):
        raise ConfigError(f"{_where(k, 'strike')}: the hedge's premium at strike {K:.6g} is {price!r}; "
                          "choose a strike (or delta) nearer the money")
    vol = _vol(rule, market, F, K, T)
    return Hedge(row, prepared, price, ref, F, K, row["expiry"].iloc[0], T, vol, _delta(rule, F, DF, ref, K, vol, T), q)


def _aged(hedge: Hedge, market: MarketSnapshot, base_ccy: str, days: int) -> kernels.PreparedBook:
    from stressgrid import kernels

    if int(days) == 0:
        return hedge.prepared
    return kernels.age(hedge.prepared, hedge.row, base_ccy, market.as_of, int(days), np.asarray(market.levels, float))


def hedge_pnl(hedge: Hedge, market: MarketSnapshot, base_ccy: str, shocks: np.ndarray, horizon_days: int = 0) -> np.ndarray:
    """P&L ``[S]`` of one contract (base currency) under factor shocks ``[S, F]`` on the snapshot's factors,
    valued ``horizon_days`` business days later (the kernels' horizon convention; 0: instantaneous)."""
    from stressgrid import kernels

    book = _aged(hedge, market, base_ccy, horizon_days)
    shocks = np.asarray(shocks, dtype=float)
    if len(shocks) == 0:
        return np.zeros(0)
    return kernels.revalue(book, np.asarray(market.levels, float), shocks, market.is_log)[:, 0]


def hedge_carry(hedge: Hedge, market: MarketSnapshot, base_ccy: str, days: int) -> float:
    """Value lost by one contract over ``days`` business days at unchanged factor levels (base currency; positive
    is a loss): the contract revalued at the later date, with the shorter expiry, on the same levels
    (:func:`kernels.age`: the surface is read at the shorter expiry, an expired option settles at its payoff)."""
    if int(days) == 0:
        return 0.0
    return -float(_aged(hedge, market, base_ccy, days).offset[0])


def size_to_cvar(book_pnl: np.ndarray, hedge_pnl: np.ndarray, weights: np.ndarray | None, confidence: float, cut: float,
                 q_start: float, q_max: float = math.inf) -> dict:
    """Smallest number of contracts ``q`` with ``CVaR(book + q hedge) <= (1 - cut) CVaR(book)`` (module docstring).

    Parameters
    ----------
    book_pnl, hedge_pnl : ``[S]`` P&L of the book and of one contract over the family's scenarios
    weights : ``[S]`` scenario probabilities (None: equal)
    confidence, cut : CVaR level and the fraction of the book's CVaR to cut, in (0, 1)
    q_start : first size tried (> 0), e.g. the contracts a premium of 0.1% of NAV buys
    q_max : most contracts allowed (a premium cap)

    Returns
    -------
    dict: ``quantity``, ``cvar_before``, ``cvar_after`` (losses positive, currency of the P&L), ``reached``
    (the goal was met), ``capped`` (``q_max`` bound), ``note`` (one line for the log).
    """
    x = np.asarray(book_pnl, dtype=float)
    y = np.asarray(hedge_pnl, dtype=float)

    def cv(q: float) -> float:
        return var_cvar(x + q * y, confidence, weights)[1]

    c0 = cv(0.0)
    goal = (1.0 - cut) * c0
    out = {"quantity": 0.0, "cvar_before": c0, "cvar_after": c0, "reached": False, "capped": False}
    if not c0 > 0:
        return {**out, "note": f"the family's CVaR is {c0:.6g}, not a loss: nothing to cut"}
    lo, hi = 0.0, min(q_start, q_max)
    c_lo, c_hi = c0, cv(hi)
    for _ in range(200):
        if c_hi <= goal or hi >= q_max or c_hi >= c_lo:
            break
        lo, c_lo = hi, c_hi
        hi = min(2.0 * hi, q_max)
        c_hi = cv(hi)
    if c_hi <= goal:
        for _ in range(200):  # smallest q meeting the goal: the bracket [lo, hi] shrinks to it
            mid = 0.5 * (lo + hi)
            if cv(mid) <= goal:
                hi = mid
            else:
                lo = mid
            if hi - lo <= 1e-12 * hi:
                break
        return {**out, "quantity": hi, "cvar_after": cv(hi), "reached": True,
                "note": f"CVaR {c0:,.0f} -> {cv(hi):,.0f} (goal {goal:,.0f}, a cut of {cut:.0%})"}
    # not reachable: the CVaR-minimising size on [0, hi] (convex: golden section)
    a, b = 0.0, hi
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = cv(c), cv(d)
    for _ in range(200):
        if b - a <= 1e-12 * max(b, 1.0):
            break
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = cv(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = cv(d)
    q = min((0.0, c0), (c, fc), (d, fd), (hi, c_hi), key=lambda t: t[1])[0]
    after = cv(q)
    capped = hi >= q_max and c_hi < c_lo
    why = "the premium cap (target.max_budget) bound" if capped else "no size reaches it"
    return {**out, "quantity": q, "cvar_after": after, "capped": capped,
            "note": f"target not met ({why}): CVaR {c0:,.0f} -> {after:,.0f}, a cut of {1 - after / c0:.1%} "
                    f"against {cut:.0%}"}
