"""Helpers the pricers share: curve grids, interpolation weights, FX translation, the normal CDF.

Curve grids
-----------
A currency's zero curve is the set of its ``IR.<CCY>.<TENOR>`` factors on a fixed tenor grid,
:func:`curve_tenors`: the eleven bundled US Treasury tenors for USD and a three-point grid (3M, 2Y,
10Y) for every other currency unless :data:`CURVE_TENORS` names another (the bundled history has no
foreign curves, so their levels come from the batch file's ``market.overrides``).  Zero yields are
interpolated linearly in time between tenors and held flat outside them
(:func:`core.curves.interp_zero`); a kernel receives the interpolation as fixed weights per time
point (:func:`core.curves.interp_weights`), so a shocked curve costs two gathers per cash flow.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import erfc
from scipy.special import ndtr

from stressgrid.core import ConfigError, curve_factor, fx_factor, tenor_years
from stressgrid.core.curves import interp_weights

__all__ = [
    "CURVE_TENORS",
    "DEFAULT_TENORS",
    "CurvePoints",
    "curve_tenors",
    "curve_factors",
    "curve_points",
    "year_fraction",
    "fx_index",
    "fx_level",
    "norm_cdf",
    "norm_cdf_numpy",
    "normal_tail_ratio",
]

#: the bundled USD curve
_USD = ("1M", "3M", "6M", "1Y", "2Y", "3Y", "5Y", "7Y", "10Y", "20Y", "30Y")
#: tenor grid of a currency without an entry in :data:`CURVE_TENORS`
DEFAULT_TENORS: tuple[str, ...] = ("3M", "2Y", "10Y")
#: currency -> tenor grid of its zero curve (edit before preparing a book to use another grid)
CURVE_TENORS: dict[str, tuple[str, ...]] = {"USD": _USD}

#: days in the year of the Actual/365 Fixed convention used for every time on a curve
DAYS_PER_YEAR = 365.0


def curve_tenors(currency: str) -> tuple[str, ...]:
    """Tenor strings of ``currency``'s curve grid, increasing."""
    return _grid(tuple(CURVE_TENORS.get(currency, DEFAULT_TENORS)))[0]


@functools.lru_cache(maxsize=256)
def _grid(tenors: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """A tenor grid sorted, and its tenors in years (read-only); keyed by the grid as given, so that an
    edit of :data:`CURVE_TENORS` is seen."""
    ordered = tuple(sorted(tenors, key=tenor_years))
    years = np.array([tenor_years(t) for t in ordered], dtype=float)
    years.setflags(write=False)
    return ordered, years


def curve_factors(currency: str) -> list[str]:
    """Factor names of ``currency``'s curve grid, ``IR.<CCY>.<TENOR>``."""
    return [curve_factor(currency, t) for t in curve_tenors(currency)]


class CurvePoints(NamedTuple):
    """Interpolation of a curve at fixed times, as factor columns and weights (all ``[...]``)."""

    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray


def curve_points(currency: str, t: np.ndarray, idx: dict[str, int]) -> CurvePoints:
    """Factor columns and weights that interpolate ``currency``'s zero yield at times ``t`` (years)."""
    names = curve_factors(currency)
    years = _grid(tuple(CURVE_TENORS.get(currency, DEFAULT_TENORS)))[1]
    lo, hi, w_lo, w_hi = interp_weights(years, t)
    cols = np.array([idx[n] for n in names], dtype=np.int64)
    return CurvePoints(cols[lo], cols[hi], w_lo, w_hi)


def stack_points(points: list[CurvePoints]) -> CurvePoints:
    return CurvePoints(*(np.stack([getattr(p, f) for p in points]) for f in CurvePoints._fields))


def zero_at(levels, pts: CurvePoints):
    """Interpolated zero yield: ``w_lo * L[lo] + w_hi * L[hi]`` (works for jax and numpy arrays)."""
    return pts.w_lo * levels[..., pts.lo] + pts.w_hi * levels[..., pts.hi]


def year_fraction(as_of: pd.Timestamp, when) -> np.ndarray:
    """Actual/365 Fixed year fraction from ``as_of`` to ``when`` (a date or array of dates)."""
    d = np.asarray(pd.to_datetime(np.atleast_1d(when)))
    return ((d - np.datetime64(pd.Timestamp(as_of).normalize())) / np.timedelta64(1, "D")).astype(float) / DAYS_PER_YEAR


def fx_index(currency: str, base_ccy: str, idx: dict[str, int]) -> int:
    """Column of the factor converting ``currency`` into ``base_ccy``; -1 when they are equal."""
    f = fx_factor(currency, base_ccy)
    return -1 if f is None else idx[f]


def fx_level(levels, i):
    """FX translation factor (1 where ``i < 0``); jax or numpy ``levels[..., F]``."""
    xp = jnp if not isinstance(levels, np.ndarray) else np
    return xp.where(i >= 0, levels[..., xp.maximum(i, 0)], 1.0)


_SQRT1_2 = 1.0 / math.sqrt(2.0)


def norm_cdf(x):
    """Standard normal CDF in JAX, ``N(x) = erfc(-x / sqrt 2) / 2`` (Abramowitz & Stegun 26.2.29).

    Written with ``erfc`` rather than ``jax.scipy.stats.norm.cdf``: accurate in both tails and cheaper
    to compile and run on CPU.
    """
    return 0.5 * erfc(-x * _SQRT1_2)


#: coefficients (increasing powers) of :func:`normal_tail_ratio`, fitted by ``tools/fit_normal_tail.py``
TAIL_P = (0.5, 0.774654396591481, 0.5937290743268432, 0.2891066421014721, 0.09759817602596779, 0.023591598552347673,
          0.0040827851752311675, 0.000489476368603456, 3.716902158293718e-05, 1.3819285071038291e-06)
TAIL_Q = (1.0, 2.3471933539858174, 2.5602474870183833, 1.713360069199989, 0.781399267667718, 0.25469002260843127,
          0.0603553757512521, 0.010327193668490917, 0.0012303992865789727, 9.316892043796028e-05, 3.463981069435746e-06)


def normal_tail_ratio(a):
    """``m(a) = N(-a) exp(a^2 / 2)`` for ``a >= 0`` (a JAX array), so that ``N(-a) = exp(-a^2/2) m(a)``.

    A rational function ``P(a) / Q(a)`` of degrees 9 and 10, fitted to 50-digit reference values
    on ``[0, 38.6]`` for this project (``tools/fit_normal_tail.py``: relative error of the fit 5e-17;
    evaluated in float64 it is within 1.2e-15 of the reference, and the tests hold it to scipy's
    ``erfcx``).  One function of ``|x|`` for the whole line, with no branches, and the exponential is
    left to the caller: the Black formula's two CDFs then share one (``K e^{-d2^2/2} = F e^{-d1^2/2}``).
    ``Q`` has the higher degree, so ``m(a) ~ 1 / (a sqrt(2 pi))`` for large ``a``, as it should.
    """
    return jnp.polyval(jnp.asarray(TAIL_P[::-1]), a) / jnp.polyval(jnp.asarray(TAIL_Q[::-1]), a)


def norm_cdf_numpy(x):
    """Standard normal CDF in numpy (``scipy.special.ndtr``)."""
    return ndtr(x)


def require_ccy_curve(kind: str, pid: str, field: str, ccy: str) -> None:
    if not ccy or len(ccy) != 3:
        raise ConfigError(f"position {pid!r}, field '{field}': {kind} needs a currency, got {ccy!r}")
