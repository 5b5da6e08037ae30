"""The risk-factor vocabulary that scenarios, kernels and reports share.

A factor is named ``PREFIX.REST``; the prefix fixes its kind and therefore its shock convention:

========  =========================================  ==========  =========================
prefix    meaning                                    kind        shock
========  =========================================  ==========  =========================
``EQ``    equity index or single-stock price         price       log-return
``CMD``   commodity spot (front) price               price       log-return
``FX``    ``FX.AAABBB``: price of 1 AAA in BBB        price       log-return
``IR``    ``IR.CCY.TENOR``: zero yield, cont. comp.  rate        absolute (decimal)
``CR``    credit spread of an index or issuer        spread      absolute (decimal)
``VOL``   ``VOL.UND.PARAM``: implied-vol parameter   vol         absolute (decimal)
``BASIS`` ``BASIS.CMD``: annualised log basis b,     basis       absolute (decimal)
          ``F(T) = S exp(b T)``
========  =========================================  ==========  =========================

The parameters of a vol surface ``U`` are ``VOL.U.ATM``, ``VOL.U.TERM``, ``VOL.U.SKEW`` and ``VOL.U.CURV``
(the option kernels' surface) and ``VOL.U.VOV``, its vol-of-vol: the annualised vol of the VIX-style
future on the surface, which VIX options are priced with (``docs/kernels.md``).

Shocks of a price factor are log-returns, ``L' = L * exp(s)``; every other factor moves by an absolute
change, ``L' = L + s``.  Rates, spreads and vols are decimals (0.01 = 1% = 100bp).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .errors import ConfigError

__all__ = [
    "FactorSpec",
    "KINDS",
    "LOG_KINDS",
    "factor_spec",
    "is_log_factor",
    "log_mask",
    "tenor_years",
    "apply_shocks",
    "factor_moves",
    "fx_factor",
    "curve_factor",
]

#: factor kinds and their units
KINDS = {
    "price": "price level (currency units)",
    "rate": "zero yield, continuously compounded, decimal",
    "spread": "credit spread, decimal",
    "vol": "implied volatility parameter, decimal",
    "basis": "annualised log futures basis b with F(T) = S exp(b T), decimal",
}
#: kinds shocked by log-return; all others by absolute change
LOG_KINDS = frozenset({"price"})

_PREFIX = {
    "EQ": ("price", "equity"),
    "CMD": ("price", "commodity"),
    "FX": ("price", "fx"),
    "IR": ("rate", "rates"),
    "CR": ("spread", "credit"),
    "VOL": ("vol", "volatility"),
    "BASIS": ("basis", "commodity"),
}
_NAME = re.compile(r"^[A-Z][A-Z0-9]*(\.[A-Z0-9_]+)+$")
_FX = re.compile(r"^FX\.([A-Z]{3})([A-Z]{3})$")
_IR = re.compile(r"^IR\.([A-Z]{3})\.(\d+)([DWMY])$")
_VOL = re.compile(r"^VOL\.([A-Z0-9_]+)\.([A-Z0-9_]+)$")
_TENOR = re.compile(r"^(\d+)([DWMY])$")
_UNIT_YEARS = {"D": 1.0 / 365.0, "W": 7.0 / 365.0, "M": 1.0 / 12.0, "Y": 1.0}


@dataclass(frozen=True)
class FactorSpec:
    """What the system knows about one risk factor.

    Attributes
    ----------
    name : str
        Full factor name, e.g. ``"EQ.SPX"`` or ``"IR.USD.10Y"``.
    kind : str
        One of :data:`KINDS`; fixes the shock convention.
    asset_class : str
        equity, commodity, fx, rates, credit or volatility.
    currency : str or None
        Currency of the level where the name fixes it (FX quote currency, curve currency).
    tenor_years : float or None
        Curve tenor in years for ``IR`` factors.
    """

    name: str
    kind: str
    asset_class: str
    currency: str | None = None
    tenor_years: float | None = None

    @property
    def unit(self) -> str:
        return KINDS[self.kind]

    @property
    def is_log(self) -> bool:
        return self.kind in LOG_KINDS

    @property
    def convention(self) -> str:
        return "log-return" if self.is_log else "absolute change"


def tenor_years(tenor: str) -> float:
    """Years in a tenor string such as ``"3M"`` or ``"10Y"`` (months are 1/12, days 1/365)."""
    m = _TENOR.match(tenor)
    if not m:
        raise ConfigError(f"tenor {tenor!r}: expected a number followed by D, W, M or Y (e.g. 3M, 10Y)")
    return int(m.group(1)) * _UNIT_YEARS[m.group(2)]


def factor_spec(name: str) -> FactorSpec:
    """Parse a factor name into its :class:`FactorSpec`.

    Raises
    ------
    ConfigError
        If the name does not follow the ``PREFIX.REST`` grammar of the module docstring.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"factor {name!r}: expected PREFIX.NAME in upper case with PREFIX one of "
            f"{', '.join(_PREFIX)} (e.g. EQ.SPX, IR.USD.10Y, FX.EURUSD)"
        )
    prefix = name.split(".", 1)[0]
    if prefix not in _PREFIX:
        raise ConfigError(f"factor {name!r}: unknown prefix {prefix!r}; expected one of {', '.join(_PREFIX)}")
    kind, asset_class = _PREFIX[prefix]
    currency = None
    tenor = None
    if prefix == "FX":
        m = _FX.match(name)
        if not m or m.group(1) == m.group(2):
            raise ConfigError(f"factor {name!r}: FX factors are FX.AAABBB, the price of 1 AAA in BBB (e.g. FX.EURUSD)")
        currency = m.group(2)
    elif prefix == "IR":
        m = _IR.match(name)
        if not m:
            raise ConfigError(f"factor {name!r}: rate factors are IR.CCY.TENOR (e.g. IR.USD.10Y, IR.EUR.6M)")
        currency = m.group(1)
        tenor = tenor_years(m.group(2) + m.group(3))
    elif prefix == "VOL":
        if not _VOL.match(name):
            raise ConfigError(f"factor {name!r}: vol factors are VOL.UNDERLYING.PARAM (e.g. VOL.SPX.ATM)")
    return FactorSpec(name=name, kind=kind, asset_class=asset_class, currency=currency, tenor_years=tenor)


def is_log_factor(name: str) -> bool:
    """True if shocks to ``name`` are log-returns."""
    return factor_spec(name).is_log


def log_mask(factors: Iterable[str]) -> np.ndarray:
    """Boolean array, True where the factor is shocked by log-return. Shape ``[F]``."""
    return np.array([is_log_factor(f) for f in factors], dtype=bool)


def apply_shocks(levels: np.ndarray, shocks: np.ndarray, is_log: np.ndarray) -> np.ndarray:
    """Shocked factor levels.

    Parameters
    ----------
    levels : array ``[F]``
        Base levels.
    shocks : array ``[..., F]``
        Log-returns for log factors, absolute changes otherwise.
    is_log : bool array ``[F]``

    Returns
    -------
    array ``[..., F]``: ``levels * exp(shocks)`` where ``is_log`` else ``levels + shocks``.
    """
    return np.where(is_log, levels * np.exp(shocks), levels + shocks)


def factor_moves(start: np.ndarray, end: np.ndarray, is_log: np.ndarray) -> np.ndarray:
    """The shock that takes ``start`` to ``end``: the inverse of :func:`apply_shocks`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(is_log, np.log(end / start), end - start)


def fx_factor(currency: str, base: str) -> str | None:
    """Name of the factor that converts ``currency`` into ``base`` (None when they are equal)."""
    return None if currency == base else f"FX.{currency}{base}"


def curve_factor(currency: str, tenor: str) -> str:
    """Name of the zero-yield factor of ``currency`` at ``tenor``."""
    return f"IR.{currency}.{tenor}"
