"""Zero curves: bootstrapping from par yields and interpolation on a tenor grid.

Conventions
-----------
Zero yields are continuously compounded decimals, ``DF(t) = exp(-z(t) * t)``.  Between grid tenors the
zero yield is interpolated linearly in time; beyond the first and last tenors it is held flat.  The
same rule is used by the kernels, so a curve built here reprices what it was built from.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_par_semiannual", "interp_zero", "discount_factors"]


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
