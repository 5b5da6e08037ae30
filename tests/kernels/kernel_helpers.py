"""Small builders shared by the kernel tests: one-instrument books on hand-made factor vectors, bond
books on a test curve grid, and their QuantLib counterparts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stressgrid.core.curves import interp_weights
from stressgrid.kernels._common import CurvePoints
from stressgrid.kernels._rates import CashflowBook, bond_cashflows

AS_OF = pd.Timestamp("2017-03-29")


def flat_points(col: int, shape=()) -> CurvePoints:
    """Interpolation that reads one factor column (a flat curve)."""
    return CurvePoints(
        np.full(shape, col, dtype=np.int64), np.full(shape, col, dtype=np.int64), np.ones(shape), np.zeros(shape)
    )


def no_points(shape=()) -> CurvePoints:
    return CurvePoints(np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape))


def ql_date(ts) -> "object":
    import QuantLib as ql

    ts = pd.Timestamp(ts)
    return ql.Date(ts.day, ts.month, ts.year)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


#: test tenor grid in whole days, so that QuantLib's dates give the same times (Actual/365F)
GRID_DAYS = np.array([30, 91, 182, 365, 730, 1095, 1825, 2555, 3650, 7300, 10950])
GRID = GRID_DAYS / 365.0


def zero_curve(rng) -> np.ndarray:
    """Zero yields on :data:`GRID`: an upward-sloping curve with noise."""
    return 0.01 + 0.02 * (1 - np.exp(-GRID / 5)) + rng.normal(0, 0.002, len(GRID))


def bond_book(maturity, coupon, freq, spread_col=None, const=0.0, grid=GRID, col0=0) -> CashflowBook:
    """One bond (or, with ``const=-1``, a receiver swap) on a curve whose tenors ``grid`` sit in
    factor columns ``col0, col0 + 1, ...``; fields unpadded (``[J]``, scalars)."""
    t, a = bond_cashflows(AS_OF, maturity, coupon, freq)
    lo, hi, wl, wh = interp_weights(grid, t)
    return CashflowBook(
        times=t, amounts=a, pts=CurvePoints(lo + col0, hi + col0, wl, wh),
        spread_idx=np.int64(spread_col if spread_col is not None else 0),
        spread_w=np.float64(1.0 if spread_col is not None else 0.0),
        const=np.float64(const), units=np.float64(1.0), fx_idx=np.int64(-1),
    )


def stack_books(books, units, fx_idx=None) -> CashflowBook:
    """Pad one-instrument books to a common number of flows and stack them (the layout of
    :func:`kernels._rates.cashflow_build`)."""
    n = len(books)
    J = max(len(b.times) for b in books)
    pad = lambda a: np.concatenate([a, np.zeros(J - len(a), a.dtype)])  # noqa: E731
    return CashflowBook(
        times=np.stack([pad(b.times) for b in books]),
        amounts=np.stack([pad(b.amounts) for b in books]),
        pts=CurvePoints(*(np.stack([pad(getattr(b.pts, f)) for b in books]) for f in CurvePoints._fields)),
        spread_idx=np.array([b.spread_idx for b in books]),
        spread_w=np.array([b.spread_w for b in books]),
        const=np.array([b.const for b in books]),
        units=np.asarray(units, dtype=float),
        fx_idx=np.full(n, -1) if fx_idx is None else np.asarray(fx_idx, dtype=np.int64),
    )


def random_day_bonds(rng, n) -> CashflowBook:
    """``n`` bonds maturing on random days up to 30 years, half of them with one issuer spread (the
    column after the curve)."""
    books = []
    for i in range(n):
        mat = AS_OF + pd.Timedelta(days=int(rng.integers(40, 30 * 365)))
        books.append(bond_book(mat, float(rng.uniform(0, 0.08)), int(rng.choice([1, 2, 4])), spread_col=len(GRID) if i % 2 else None))
    return stack_books(books, rng.uniform(1e5, 1e6, n))


def random_cf_book(rng, n) -> CashflowBook:
    """``n`` bonds and swaps with random maturities (40 days to 30 years), coupons and frequencies, all
    with the issuer spread in the column after the curve."""
    books = []
    for _ in range(n):
        mat = AS_OF + pd.Timedelta(days=int(rng.integers(40, 30 * 365)))
        books.append(bond_book(mat, float(rng.uniform(0, 0.08)), int(rng.choice([1, 2, 4, 12])), spread_col=len(GRID),
                               const=float(rng.choice([0.0, -1.0]))))
    return stack_books(books, rng.uniform(-1e6, 1e6, n))


def ql_curve(zeros, grid_days=GRID_DAYS):
    """QuantLib zero curve, linear in the zero yield, flat outside the grid."""
    import QuantLib as ql

    today = ql_date(AS_OF)
    ql.Settings.instance().evaluationDate = today
    # nodes at the reference date and far out reproduce flat extrapolation at both ends
    dates = [today] + [today + int(d) for d in grid_days] + [today + 365 * 100]
    z = [zeros[0]] + list(zeros) + [zeros[-1]]
    return ql.YieldTermStructureHandle(ql.ZeroCurve(dates, z, ql.Actual365Fixed(), ql.NullCalendar(), ql.Linear(), ql.Continuous))


def ql_bond(maturity, coupon, freq):
    """QuantLib fixed-rate bond with face 100 on the unadjusted schedule stepped back from ``maturity``."""
    import QuantLib as ql

    mat = ql_date(maturity)
    period = ql.Period(12 // freq, ql.Months)
    issue = mat - ql.Period(12 // freq * 100, ql.Months)
    sched = ql.Schedule(issue, mat, period, ql.NullCalendar(), ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False)
    return ql.FixedRateBond(0, 100.0, sched, [coupon], ql.ActualActual(ql.ActualActual.ISMA), ql.Unadjusted)


def ql_bond_value(maturity, coupon, freq, zeros, spread=0.0, grid_days=GRID_DAYS) -> float:
    """QuantLib's dirty value per unit face off ``zeros`` plus a continuous ``spread``."""
    import QuantLib as ql

    bond = ql_bond(maturity, coupon, freq)
    disc = ql.YieldTermStructureHandle(ql.ZeroSpreadedTermStructure(ql_curve(zeros, grid_days), ql.QuoteHandle(ql.SimpleQuote(spread)),
                                                                   ql.Continuous))
    bond.setPricingEngine(ql.DiscountingBondEngine(disc))
    return bond.NPV() / 100.0
