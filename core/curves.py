"""Zero curves: bootstrapping from par yields and interpolation on a tenor grid.

Conventions
-----------
Zero yields are continuously compounded decimals, ``DF(t) = exp(-z(t) * t)``.  Between grid tenors the
zero yield is interpolated linearly in time; beyond the first and last tenors it is held flat.  The
same rule is used by the kernels, so a curve built here reprices what it was built from.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bootstrap_par_semiannual",
    "interp_zero",
    "interp_weights",
    "discount_factors",
    "curve_shock",
    "curve_shock_vector",
    "DEFAULT_PIVOT_YEARS",
]


def interp_zero(tenors: np.ndarray, zeros: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Zero yield at times ``t`` (years), linear in time between ``tenors``, flat outside.

    Parameters
    ----------
    tenors : array ``[K]``, increasing, years
    zeros : array ``[..., K]``, continuously compounded
    t : array ``[M]``, years
    """
    zeros = np.asarray(zeros, dtype=float)
    flat = zeros.reshape(-1, zeros.shape[-1])
    out = np.stack([np.interp(t, tenors, row) for row in flat])
    return out.reshape(zeros.shape[:-1] + (len(np.atleast_1d(t)),))


def discount_factors(tenors: np.ndarray, zeros: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``exp(-z(t) t)`` with :func:`interp_zero`."""
    return np.exp(-interp_zero(tenors, zeros, t) * np.asarray(t, dtype=float))


def bootstrap_par_semiannual(par_tenors: np.ndarray, par_yields: np.ndarray, out_tenors: np.ndarray) -> np.ndarray:
    """Continuously compounded zero yields from US-Treasury-style par yields.

    Par yields are bond-equivalent (semi-annual) yields of bonds priced at par.  Up to six months a
    par bond has one cash flow, so its yield is a zero yield with semi-annual compounding.  Beyond,
    par yields are interpolated linearly in maturity onto a semi-annual grid and discount factors are
    bootstrapped one coupon date at a time, ``D_k = (1 - c_k * sum_{j<k} D_j) / (1 + c_k)`` with
    ``c_k = y(t_k) / 2`` (the textbook bootstrap, e.g. Hull, *Options, Futures and Other Derivatives*,
    ch. 4).  Between semi-annual dates the continuously compounded zero yield is interpolated linearly.

    Parameters
    ----------
    par_tenors : array ``[K]`` of years, increasing, observed tenors (NaN yields are skipped)
    par_yields : array ``[K]``, decimals
    out_tenors : array ``[M]`` of years

    Returns
    -------
    array ``[M]`` of continuously compounded zero yields; NaN for tenors outside the observed span.
    """
    par_tenors = np.asarray(par_tenors, dtype=float)
    par_yields = np.asarray(par_yields, dtype=float)
    ok = np.isfinite(par_yields)
    pt, py = par_tenors[ok], par_yields[ok]
    out_tenors = np.asarray(out_tenors, dtype=float)
    result = np.full(out_tenors.shape, np.nan)
    if len(pt) == 0:
        return result
    # short end: single cash flow instruments
    short = out_tenors <= 0.5 + 1e-12
    if short.any():
        y_short = np.interp(out_tenors[short], pt, py)
        result[short] = 2.0 * np.log1p(y_short / 2.0)
    n = int(round(max(pt.max(), 0.5) * 2))
    grid = 0.5 * np.arange(1, n + 1)
    par_on_grid = np.interp(grid, pt, py)
    dfs = np.empty(n)
    acc = 0.0
    for k in range(n):
        c = par_on_grid[k] / 2.0
        dfs[k] = (1.0 - c * acc) / (1.0 + c)
        acc += dfs[k]
    z_grid = -np.log(dfs) / grid
    long = ~short
    if long.any():
        result[long] = np.interp(out_tenors[long], grid, z_grid)
    # no extrapolation beyond what was observed
    outside = (out_tenors < pt.min() - 1e-9) | (out_tenors > pt.max() + 1e-9)
    result[outside] = np.nan
    return result


def interp_weights(tenors: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rule of :func:`interp_zero` as fixed weights: ``z(t) = w_lo * z[lo] + w_hi * z[hi]``.

    Linear interpolation in time between the bracketing tenors, flat extrapolation outside
    (``w_lo = 1`` on the first or last tenor).  Because the weights depend only on the times, a
    kernel computes them once per instrument when the book is prepared and then interpolates any
    shocked curve with two gathers and two multiplications.

    Parameters
    ----------
    tenors : array ``[K]``, strictly increasing, years
    t : array ``[...]``, years

    Returns
    -------
    lo, hi : int arrays ``[...]``, indices into ``tenors``
    w_lo, w_hi : float arrays ``[...]``, non-negative, summing to 1
    """
    tenors = np.asarray(tenors, dtype=float)
    t = np.asarray(t, dtype=float)
    if tenors.ndim != 1 or len(tenors) == 0 or np.any(np.diff(tenors) <= 0):
        raise ValueError(f"tenors must be a non-empty strictly increasing 1-d array, got {tenors!r}")
    K = len(tenors)
    if K == 1:
        z = np.zeros(t.shape, dtype=np.int64)
        return z, z, np.ones(t.shape), np.zeros(t.shape)
    tc = np.clip(t, tenors[0], tenors[-1])
    hi = np.clip(np.searchsorted(tenors, tc, side="right"), 1, K - 1)
    lo = hi - 1
    w_hi = (tc - tenors[lo]) / (tenors[hi] - tenors[lo])
    return lo.astype(np.int64), hi.astype(np.int64), 1.0 - w_hi, w_hi


# --------------------------------------------------------------------------------------------------
# Curve shocks: shock vectors on a currency's zero-yield factors (absolute changes, decimals)
# --------------------------------------------------------------------------------------------------

#: pivot tenor (years) of twists and the belly of butterflies unless given
DEFAULT_PIVOT_YEARS = 5.0


def curve_shock(
    tenors: np.ndarray,
    kind: str,
    size: float,
    pivot: float = DEFAULT_PIVOT_YEARS,
    short: float | None = None,
    long: float | None = None,
    key_tenor: float | None = None,
) -> np.ndarray:
    """Absolute shock to each zero yield of a curve, ``[K]`` decimals (0.01 = 100bp).

    Shapes, with ``x = ln(t / pivot)`` scaled to ``[-1, 1]`` over the curve's tenors (log time
    spreads the short end, where most tenors sit):

    ``parallel``  every tenor moves by ``size``.
    ``twist``     a steepener: ``size * x`` (short end down, long end up for ``size > 0``), zero at
                  the pivot; a negative ``size`` flattens.
    ``butterfly`` wings against the belly: ``size * (2 x**2 - 1)`` (wings up, belly down for
                  ``size > 0``).
    ``key_rate``  a triangle of height ``size`` at ``key_tenor`` falling linearly (in time) to zero at
                  the neighbouring tenors, the key-rate shift of Ho (1992), "Key rate durations:
                  measures of interest rate risks", *Journal of Fixed Income* 2(2); the key-rate shocks
                  of all tenors add up to a parallel shock.

    Parameters
    ----------
    tenors : array ``[K]``, increasing, years
    kind : ``parallel``, ``twist``, ``butterfly`` or ``key_rate``
    size : float, decimal
    pivot : float, years (twist and butterfly)
    short, long : float, optional; the span that maps to ``x = -1`` and ``x = +1`` (default: the
        first and last tenor)
    key_tenor : float, years, one of ``tenors`` (key_rate)
    """
    tenors = np.asarray(tenors, dtype=float)
    if kind == "parallel":
        return np.full(tenors.shape, float(size))
    if kind in ("twist", "butterfly"):
        lo = np.log((short if short is not None else tenors[0]) / pivot)
        hi = np.log((long if long is not None else tenors[-1]) / pivot)
        x = np.log(tenors / pivot)
        x = np.where(x < 0, -x / lo if lo < 0 else 0.0, x / hi if hi > 0 else 0.0)
        x = np.clip(x, -1.0, 1.0)
        return size * x if kind == "twist" else size * (2.0 * x * x - 1.0)
    if kind == "key_rate":
        if key_tenor is None:
            raise ValueError("key_rate shock needs key_tenor")
        hit = np.flatnonzero(np.isclose(tenors, key_tenor))
        if len(hit) != 1:
            raise ValueError(f"key_tenor {key_tenor} is not one of the curve tenors {tenors.tolist()}")
        e = np.zeros(len(tenors))
        e[hit[0]] = 1.0
        return size * e  # the triangle between nodes follows from linear interpolation
    raise ValueError(f"curve shock kind {kind!r}: expected parallel, twist, butterfly or key_rate")


def curve_shock_vector(
    factors: "list[str] | tuple[str, ...]",
    currency: str,
    kind: str,
    size: float,
    **kwargs: float,
) -> np.ndarray:
    """:func:`curve_shock` placed on the ``IR.<currency>.*`` entries of a factor order, ``[F]``.

    Every other factor gets 0.  ``kwargs`` go to :func:`curve_shock` (``pivot``, ``key_tenor`` ...).
    """
    from .factors import factor_spec

    pos, ten = [], []
    for j, f in enumerate(factors):
        if f.startswith(f"IR.{currency}."):
            pos.append(j)
            ten.append(factor_spec(f).tenor_years)
    out = np.zeros(len(factors))
    if not pos:
        raise ValueError(f"no IR.{currency}.* factor among the {len(factors)} factors")
    order = np.argsort(ten)
    shock = curve_shock(np.asarray(ten)[order], kind, size, **kwargs)
    out[np.asarray(pos)[order]] = shock
    return out
