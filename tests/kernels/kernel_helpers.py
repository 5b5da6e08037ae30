"""Small builders shared by the kernel tests: one-instrument books on hand-made factor vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kernels._common import CurvePoints

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
