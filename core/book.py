"""The book: positions read from a portfolio file and validated once, at load.

A portfolio file is a CSV (or Parquet) with one row per position.  Columns common to every type:

``id`` (unique), ``type``, ``underlying`` (a factor name), ``quantity``, ``multiplier`` (default 1),
``currency``, ``asset_class``, ``sleeve``, ``adv`` (average daily volume, in units of ``quantity``),
``bid_ask_bps`` (quoted bid-ask spread in basis points of price), ``description`` (optional).

Type-specific columns (empty where they do not apply): ``strike``, ``expiry``, ``option_type``
(call/put), ``coupon`` (decimal), ``frequency`` (coupons a year), ``maturity``, ``recovery``
(decimal), ``spread_factor`` (a ``CR.*`` factor for a bond's issuer spread), ``curve`` (currency of
the discount curve when not ``currency``), ``forward_rate`` (the contracted rate of an FX forward),
``dividend_yield`` (continuous dividend yield of an equity option's underlying, decimal, default 0),
``constituents`` (names in a credit index, for its jump-to-default; default 1, a single name).

What ``underlying`` means per type (``docs/kernels.md`` has the models):

* equity, equity_future: the ``EQ.*`` price; option: the ``EQ.*``, ``FX.AAABBB`` or ``CMD.*`` spot,
  with vol surface ``VOL.<name>.{ATM,SKEW,CURV,TERM}``; an FX option's ``currency`` is BBB;
* fx_forward: ``FX.AAABBB`` with ``currency`` AAA (the currency bought for ``quantity > 0``);
* commodity_future: the ``CMD.X`` spot, with basis factor ``BASIS.X``;
* bond, swap, rate_future: any ``IR.CCY.*`` factor; it names the discount curve (CCY must be the
  position's ``currency``), and the instrument is priced off that currency's whole tenor grid;
* cds: the ``CR.*`` spread of the reference name or index;
* vix_future, vix_option: ``VOL.U.ATM``, the ATM factor of the implied-vol surface ``U`` whose 30-day
  forward variance the index measures (``VOL.SPX.ATM`` for the VIX), with the surface's term slope
  ``VOL.U.TERM`` and, for options, its vol-of-vol ``VOL.U.VOV``; ``expiry`` is the final settlement
  (future) or expiry (option) date, ``strike`` is in index points (20 = a vol of 20%), and ``currency``
  (USD for the VIX) names the discount curve.  ``asset_class`` is the desk's choice (``equity`` for
  equity volatility).

Currencies must be ISO 4217 codes (:data:`CURRENCIES`).

Signs: ``quantity`` > 0 is long the instrument's risk: shares or contracts bought, face value of bonds
held, foreign currency bought forward, protection *sold* on a CDS (long credit), options bought.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .factors import factor_spec

__all__ = ["INSTRUMENT_TYPES", "ASSET_CLASSES", "CURRENCIES", "Position", "Book", "load_book", "book_from_records"]

#: instrument types and the fields each needs beyond the common ones
INSTRUMENT_TYPES: dict[str, tuple[str, ...]] = {
    "equity": (),
    "equity_future": (),
    "commodity_future": ("maturity",),
    "fx_forward": ("maturity", "forward_rate"),
    "bond": ("coupon", "frequency", "maturity"),
    "rate_future": ("maturity",),
    "swap": ("coupon", "frequency", "maturity"),
    "cds": ("coupon", "maturity", "recovery"),
    "option": ("strike", "expiry", "option_type"),
    "vix_future": ("expiry",),
    "vix_option": ("strike", "expiry", "option_type"),
}
#: the prefix the underlying factor of each type must have
_UNDERLYING_PREFIX: dict[str, tuple[str, ...]] = {
    "equity": ("EQ",),
    "equity_future": ("EQ",),
    "commodity_future": ("CMD",),
    "fx_forward": ("FX",),
    "bond": ("IR",),
    "rate_future": ("IR",),
    "swap": ("IR",),
    "cds": ("CR",),
    "option": ("EQ", "FX", "CMD"),
    "vix_future": ("VOL",),
    "vix_option": ("VOL",),
}
#: types written on a vol index, whose ``underlying`` is the ATM factor ``VOL.U.ATM`` of a surface
VOL_INDEX_TYPES = ("vix_future", "vix_option")
ASSET_CLASSES = ("equity", "rates", "credit", "fx", "commodity")
#: first characters a text cell (id, sleeve, description) may not have: a spreadsheet reads them as a formula
FORMULA_STARTS = ("=", "+", "-", "@")
_CCY = re.compile(r"^[A-Z]{3}$")
#: ISO 4217 currency codes in use (plus XAU/XAG, precious metals quoted as currencies)
CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD
    SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD
    XOF XPF YER ZAR ZMW ZWL XAU XAG""".split()
)


class Position(BaseModel):
    """One row of a portfolio file."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str
    type: Literal[tuple(INSTRUMENT_TYPES)]  # type: ignore[valid-type]
    underlying: str
    quantity: float
    multiplier: float = 1.0
    currency: str
    asset_class: Literal[ASSET_CLASSES]  # type: ignore[valid-type]
    sleeve: str
    adv: float
    bid_ask_bps: float
    description: Optional[str] = None
    strike: Optional[float] = None
    expiry: Optional[date] = None
    option_type: Optional[Literal["call", "put"]] = None
    coupon: Optional[float] = None
    frequency: Optional[int] = None
    maturity: Optional[date] = None
    recovery: Optional[float] = None
    spread_factor: Optional[str] = None
    curve: Optional[str] = None
    forward_rate: Optional[float] = None
    dividend_yield: Optional[float] = None
    constituents: Optional[int] = None

    @field_validator("id", "sleeve")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("id", "sleeve", "description")
    @classmethod
    def _not_a_formula(cls, v: Optional[str]) -> Optional[str]:
        # a spreadsheet opening an output table would evaluate a cell that starts like a formula
        if v and v[0] in FORMULA_STARTS:
            raise ValueError(f"must not start with {v[0]!r} (a spreadsheet would read it as a formula)")
        return v

    @field_validator("quantity", "multiplier")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"{v!r} is not finite")
        return v

    @field_validator("multiplier")
    @classmethod
    def _positive_mult(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"{v!r} must be > 0")
        return v

    @field_validator("adv")
    @classmethod
    def _adv(cls, v: float) -> float:
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{v!r} must be a positive number (average daily volume in units of quantity)")
        return v

    @field_validator("bid_ask_bps")
    @classmethod
    def _spread(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{v!r} must be >= 0 (quoted bid-ask spread in basis points)")
        return v

    @field_validator("currency", "curve")
    @classmethod
    def _ccy(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not _CCY.match(v):
            raise ValueError(f"{v!r} is not a three-letter upper-case currency code")
        if v is not None and v not in CURRENCIES:
            raise ValueError(f"{v!r} is not a known ISO 4217 currency code")
        return v

    @field_validator("forward_rate")
    @classmethod
    def _fwd(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise ValueError(f"{v!r} must be > 0 (units of the quote currency per unit of the base currency)")
        return v

    @field_validator("dividend_yield")
    @classmethod
    def _div(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and (not math.isfinite(v) or not -0.5 <= v <= 0.5):
            raise ValueError(f"{v!r} must be a decimal yield in [-0.5, 0.5] (0.02 = 2%)")
        return v

    @field_validator("constituents")
    @classmethod
    def _names(cls, v: Optional[int]) -> Optional[int]:
        if v is not None and v < 1:
            raise ValueError(f"{v!r} must be >= 1 (names in the credit index)")
        return v

    @field_validator("underlying", "spread_factor")
    @classmethod
    def _factor(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            try:
                factor_spec(v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("strike")
    @classmethod
    def _strike(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and (not math.isfinite(v) or v <= 0):
            raise ValueError(f"{v!r} must be > 0")
        return v

    @field_validator("recovery")
    @classmethod
    def _recovery(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not (0.0 <= v < 1.0):
            raise ValueError(f"{v!r} must be in [0, 1)")
        return v

    @field_validator("frequency")
    @classmethod
    def _freq(cls, v: Optional[int]) -> Optional[int]:
        if v is not None and v not in (1, 2, 4, 12):
            raise ValueError(f"{v!r} must be one of 1, 2, 4, 12 coupons a year")
        return v

    @field_validator("coupon")
    @classmethod
    def _coupon(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and (not math.isfinite(v) or v < 0 or v > 1):
            raise ValueError(f"{v!r} must be a decimal rate in [0, 1] (0.05 = 5%)")
        return v

    @model_validator(mode="after")
    def _by_type(self) -> "Position":
        for name in INSTRUMENT_TYPES[self.type]:
            if getattr(self, name) is None:
                raise ValueError(f"field '{name}' is required for type {self.type}")
        prefix = self.underlying.split(".", 1)[0]
        allowed = _UNDERLYING_PREFIX[self.type]
        if prefix not in allowed:
            expected = ("the ATM factor of a vol surface, VOL.<U>.ATM (VOL.SPX.ATM for the VIX)" if self.type in VOL_INDEX_TYPES
                        else f"a {' or '.join(p + '.*' for p in allowed)} factor")
            raise ValueError(f"field 'underlying': {self.underlying!r} cannot underlie a {self.type}; expected {expected}")
        if self.spread_factor is not None and not self.spread_factor.startswith("CR."):
            raise ValueError(f"field 'spread_factor': {self.spread_factor!r} must be a CR.* factor")
        spec = factor_spec(self.underlying)
        if prefix == "FX":
            for ccy in (self.underlying[3:6], self.underlying[6:9]):
                if ccy not in CURRENCIES:
                    raise ValueError(f"field 'underlying': {ccy!r} in {self.underlying!r} is not a known ISO 4217 currency code")
        if prefix == "IR" and spec.currency not in CURRENCIES:
            raise ValueError(f"field 'underlying': {spec.currency!r} in {self.underlying!r} is not a known ISO 4217 currency code")
        if self.type == "fx_forward" and self.currency != self.underlying[3:6]:
            raise ValueError(
                f"field 'currency': an fx_forward on {self.underlying} buys {self.underlying[3:6]} for quantity > 0; "
                f"currency must be {self.underlying[3:6]}, got {self.currency!r}"
            )
        if self.type == "option" and prefix == "FX" and self.currency != self.underlying[6:9]:
            raise ValueError(
                f"field 'currency': an option on {self.underlying} is priced in {self.underlying[6:9]}; "
                f"currency must be {self.underlying[6:9]}, got {self.currency!r}"
            )
        if self.type in ("bond", "swap", "rate_future") and spec.currency != self.currency:
            raise ValueError(
                f"field 'underlying': {self.underlying} names the {spec.currency} curve but the position's "
                f"currency is {self.currency}; use an IR.{self.currency}.* factor"
            )
        if self.type in VOL_INDEX_TYPES:
            parts = self.underlying.split(".")
            if parts[-1] != "ATM":
                raise ValueError(
                    f"field 'underlying': {self.underlying!r} cannot underlie a {self.type}; expected the ATM factor of "
                    f"the surface, VOL.{parts[1]}.ATM (the index is priced off the surface's ATM term structure)"
                )
            if self.maturity is not None:
                raise ValueError(
                    f"field 'maturity': a {self.type} settles on the index at its expiry; leave maturity empty "
                    f"(got {self.maturity})"
                )
            if self.type == "vix_option" and self.strike is not None and self.strike < 1.0:
                raise ValueError(
                    f"field 'strike': {self.strike!r} looks like a decimal vol; a vix_option's strike is in index "
                    f"points (20 = a vol of 20%)"
                )
        if self.dividend_yield is not None and not (self.type == "option" and prefix == "EQ"):
            raise ValueError("field 'dividend_yield': only options on EQ.* underlyings take a dividend yield")
        if self.constituents is not None and self.type != "cds":
            raise ValueError("field 'constituents': only cds positions (credit indices) take constituents")
        if self.type == "option" and self.maturity is not None and self.expiry is not None and self.maturity < self.expiry:
            raise ValueError(
                f"field 'maturity': the underlying future matures {self.maturity} before the option expires {self.expiry}"
            )
        if self.type == "rate_future" and self.frequency is not None and self.frequency not in (4, 12):
            raise ValueError(f"field 'frequency': a rate future's period is 3M (4) or 1M (12), got {self.frequency}")
        return self


_COLUMNS = list(Position.model_fields)


@dataclass(frozen=True)
class Book:
    """Validated positions.

    Attributes
    ----------
    positions : DataFrame
        One row per position, columns as in the module docstring, in file order; ``N`` rows.
    source : str
    """

    positions: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def ids(self) -> np.ndarray:
        return self.positions["id"].to_numpy()

    def check_dates(self, as_of: pd.Timestamp) -> None:
        """Reject options that have expired and instruments that have matured by ``as_of``."""
        for col in ("expiry", "maturity"):
            vals = pd.to_datetime(self.positions[col])
            past = self.positions.index[vals.notna() & (vals <= as_of)]
            if len(past):
                row = self.positions.loc[past[0]]
                raise ConfigError(
                    f"portfolio file {self.source}, position {row['id']!r}, field '{col}': "
                    f"{pd.Timestamp(row[col]).date()} is not after the as-of date {as_of.date()}"
                )

    def scaled(self, factor: float) -> "Book":
        """The same book with every quantity multiplied by ``factor`` (e.g. AUM scaling)."""
        df = self.positions.copy()
        df["quantity"] = df["quantity"] * factor
        return Book(df, self.source)


def _format_errors(source: str, row: int, pid: object, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        where = f"portfolio file {source}, position {pid!r} (row {row})"
        msg = err["msg"].removeprefix("Value error, ")
        if loc:
            value = err.get("input")
            if err["type"] == "missing":
                out.append(f"{where}, field '{loc}': missing")
            elif err["type"] == "extra_forbidden":
                out.append(f"{where}: unknown column '{loc}' (known: {', '.join(_COLUMNS)})")
            else:
                out.append(f"{where}, field '{loc}': {msg} (got {value!r})")
        else:
            out.append(f"{where}: {msg}")
    return out


#: at most this many problems of a portfolio file are listed, one a line
MAX_BOOK_ERRORS = 20


def _check_header(columns: list[str], source: str) -> None:
    """Unknown and missing columns, one line each for the whole file (a misspelled header made two
    problems on every row)."""
    import difflib

    required = [n for n, f in Position.model_fields.items() if f.is_required()]
    problems = []
    for c in columns:
        if c not in _COLUMNS:
            close = difflib.get_close_matches(c, [k for k in _COLUMNS if k not in columns], n=1, cutoff=0.75)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(f"portfolio file {source}, header: unknown column {c!r}; {hint}"
                            f"known: {', '.join(_COLUMNS)} (got {c!r})")
    missing = [c for c in required if c not in columns]
    if missing:
        problems.append(f"portfolio file {source}, header: no column {', '.join(repr(c) for c in missing)}, which every "
                        f"position needs (columns: {', '.join(columns)})")
    if problems:
        raise ConfigError("\n".join(problems))


def book_from_records(records: list[dict], source: str = "<records>") -> Book:
    """Validate position records (dicts of column -> value) into a :class:`Book`."""
    if not records:
        raise ConfigError(f"portfolio file {source}: no positions")
    # column names as written, less surrounding spaces ("quantity " in a hand-edited header)
    records = [{str(k).strip(): v for k, v in rec.items()} for rec in records]
    _check_header(list(dict.fromkeys(k for rec in records for k in rec)), source)
    rows = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(records, start=1):
        clean = {k: v for k, v in rec.items() if not (v is None or (isinstance(v, float) and math.isnan(v)) or v == "")}
        try:
            pos = Position.model_validate(clean)
        except ValidationError as exc:
            problems += _format_errors(source, i, rec.get("id"), exc)
            continue
        if pos.id in seen:
            problems.append(f"portfolio file {source}, position {pos.id!r} (row {i}), field 'id': duplicate of row {seen[pos.id]}")
        seen.setdefault(pos.id, i)
        rows.append(pos.model_dump())
    if problems:  # every bad row at once, one a line
        if len(problems) > MAX_BOOK_ERRORS:
            problems = problems[:MAX_BOOK_ERRORS] + [f"... and {len(problems) - MAX_BOOK_ERRORS} more problem(s)"]
        raise ConfigError("\n".join(problems))
    df = pd.DataFrame(rows, columns=_COLUMNS)
    return Book(positions=df, source=source)


def load_book(path: str | Path) -> Book:
    """Read and validate a portfolio file (CSV or Parquet)."""
    p = Path(path)
    try:
        found = p.is_file()
    except OSError as exc:  # a name too long for the file system, say
        raise ConfigError(f"portfolio file {str(p)[:200]}: cannot be read ({exc.strerror})") from None
    if not found:
        raise ConfigError(f"portfolio file {p}: not found" if not p.is_dir() else f"portfolio file {p}: is a folder, not a file")
    try:
        if p.suffix.lower() == ".parquet":
            raw = pd.read_parquet(p)
        else:
            raw = pd.read_csv(p, dtype=str, keep_default_na=False, comment="#")
    except Exception as exc:
        raise ConfigError(f"portfolio file {p}: cannot be read ({type(exc).__name__}: {exc})") from None
    return book_from_records(raw.to_dict(orient="records"), source=str(p))
