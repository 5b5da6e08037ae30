"""Cost-model parameters per asset class, with their sources, and how to override them.

Every number here is an *illustrative default*: of the order the literature reports, not calibrated to
any desk's fills.  ``docs/liquidity.md`` lists each one with its source; a user overrides any of them
(per asset class) through :meth:`LiquidityParams.from_dict`, e.g. from a batch file's ``liquidity:`` block.

Sources
-------
* Square-root impact law, cost per unit traded ``Y sigma sqrt(Q / V)`` with ``Y`` of order one:
  Toth, Lemperiere, Deremble, de Lataillade, Kockelkoren and Bouchaud, "Anomalous price impact and the
  critical nature of liquidity in financial markets", Phys. Rev. X 1, 021006 (2011); Bouchaud, Bonart,
  Donier and Gould, *Trades, Quotes and Prices* (Cambridge University Press, 2018), ch. 12 ("The impact
  of metaorders").  The defaults stay within the 0.5-1 range named in issue #7.  Almgren,
  Thum, Hauptmann and Li, "Direct estimation of equity market impact", Risk 18(7) (2005) estimate a
  power of 0.6 rather than 0.5 on US equities; we use 0.5.
* Paying half the quoted bid-ask spread per trade, and a spread that widens in stress: Bangia, Diebold,
  Schuermann and Stroughair, "Modeling liquidity risk, with implications for traditional market risk
  measurement and management" (1999).
* Participation caps (equities about 10% of ADV, commodities 3-5%, rates futures and FX higher) and the
  stress multipliers (spread x2-4, ADV cut) follow the ranges named in the project's issue #7; they are
  common desk conventions, not estimates.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stressgrid.core import ASSET_CLASSES, ConfigError

__all__ = ["ClassParams", "LiquidityParams", "DEFAULT_CLASS_PARAMS"]


class ClassParams(BaseModel):
    """Cost-model parameters of one asset class.

    Attributes
    ----------
    impact_k : float >= 0
        ``Y`` of the square-root law: impact cost per unit traded is ``Y sigma_daily sqrt(Q / ADV)``.
    participation_cap : float in (0, 1]
        Largest fraction of the day's volume (ADV) traded per day.
    stress_cap_mult : float in (0, 1]
        The cap is multiplied by this in stressed conditions (a stressed desk trades a smaller share of
        a thinner market).
    stress_spread_mult : float >= 1
        Bid-ask multiplier of the default stress conditions (:meth:`LiquidityParams.stress_conditions`).
    stress_adv_mult : float in (0, 1]
        ADV multiplier of the default stress conditions.
    stress_vol_mult : float >= 1
        Volatility multiplier of the default stress conditions.
    default_bid_ask_bps : float >= 0
        Quoted bid-ask spread (bps of price) used where an input spread is missing (NaN).
    default_daily_vol : float > 0
        Daily return volatility (decimal) used where a position's history gives none (every factor it
        depends on is held flat).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    impact_k: float = Field(ge=0)
    participation_cap: float = Field(gt=0, le=1)
    stress_cap_mult: float = Field(gt=0, le=1)
    stress_spread_mult: float = Field(ge=1)
    stress_adv_mult: float = Field(gt=0, le=1)
    stress_vol_mult: float = Field(ge=1)
    default_bid_ask_bps: float = Field(ge=0)
    default_daily_vol: float = Field(gt=0)

    @field_validator("*")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"{v!r} is not finite")
        return v


#: illustrative defaults (see the module docstring and docs/liquidity.md for the sources of each range)
DEFAULT_CLASS_PARAMS: dict[str, dict[str, float]] = {
    "equity": dict(impact_k=0.7, participation_cap=0.10, stress_cap_mult=0.5, stress_spread_mult=3.0,
                   stress_adv_mult=0.5, stress_vol_mult=2.0, default_bid_ask_bps=5.0, default_daily_vol=0.015),
    "rates": dict(impact_k=0.5, participation_cap=0.20, stress_cap_mult=0.5, stress_spread_mult=2.0,
                  stress_adv_mult=0.5, stress_vol_mult=2.0, default_bid_ask_bps=2.0, default_daily_vol=0.004),
    "credit": dict(impact_k=1.0, participation_cap=0.10, stress_cap_mult=0.5, stress_spread_mult=4.0,
                   stress_adv_mult=0.3, stress_vol_mult=2.0, default_bid_ask_bps=10.0, default_daily_vol=0.002),
    "fx": dict(impact_k=0.5, participation_cap=0.20, stress_cap_mult=0.5, stress_spread_mult=2.0,
               stress_adv_mult=0.5, stress_vol_mult=2.0, default_bid_ask_bps=2.0, default_daily_vol=0.006),
    "commodity": dict(impact_k=0.8, participation_cap=0.05, stress_cap_mult=0.5, stress_spread_mult=3.0,
                      stress_adv_mult=0.5, stress_vol_mult=2.0, default_bid_ask_bps=5.0, default_daily_vol=0.02),
}


class LiquidityParams(BaseModel):
    """The cost model's parameters: one :class:`ClassParams` per asset class, and book-wide limits.

    Attributes
    ----------
    classes : dict asset class -> :class:`ClassParams` (every class of :data:`core.ASSET_CLASSES`)
    turnover_cap : float > 0 or None
        Largest value traded per day, as a fraction of NAV (None: no book-wide cap, only the
        participation caps).
    vol_floor : float >= 0
        Floor of a scenario's volatility multiplier (1: a scenario never makes trading cheaper than the
        base; 0: no floor).
    vol_window : int >= 2
        Trading days of history for each position's daily volatility.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: dict[str, ClassParams]
    turnover_cap: Optional[float] = Field(default=None, gt=0)
    vol_floor: float = Field(default=1.0, ge=0)
    vol_window: int = Field(default=60, ge=2)

    @field_validator("classes")
    @classmethod
    def _all_classes(cls, v: dict[str, ClassParams]) -> dict[str, ClassParams]:
        unknown = sorted(set(v) - set(ASSET_CLASSES))
        if unknown:
            raise ValueError(f"unknown asset class {unknown[0]!r}; expected one of {', '.join(ASSET_CLASSES)}")
        missing = [c for c in ASSET_CLASSES if c not in v]
        if missing:
            raise ValueError(f"missing asset class {missing[0]!r}")
        return v

    @classmethod
    def default(cls) -> "LiquidityParams":
        """The illustrative defaults of :data:`DEFAULT_CLASS_PARAMS`."""
        return cls(classes={c: ClassParams(**p) for c, p in DEFAULT_CLASS_PARAMS.items()})

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None = None, source: str = "liquidity") -> "LiquidityParams":
        """Defaults with ``overrides`` applied.

        ``overrides`` may set ``turnover_cap``, ``vol_floor``, ``vol_window`` and, per asset class, any
        :class:`ClassParams` field; ``default`` applies to every class (a class's own entry wins)::

            {"turnover_cap": 0.2, "default": {"impact_k": 0.8}, "equity": {"participation_cap": 0.05}}

        Raises
        ------
        ConfigError
            Naming the field (``<source>, field 'equity.participation_cap'``) and the bad value.
        """
        overrides = dict(overrides or {})
        base = {c: dict(p) for c, p in DEFAULT_CLASS_PARAMS.items()}
        top = {}
        common = overrides.pop("default", None) or {}
        if not isinstance(common, Mapping):
            raise ConfigError(f"{source}, field 'default': expected a mapping of class parameters (got {common!r})")
        for key, val in overrides.items():
            if key in ASSET_CLASSES:
                if not isinstance(val, Mapping):
                    raise ConfigError(f"{source}, field {key!r}: expected a mapping of class parameters (got {val!r})")
            elif key in ("turnover_cap", "vol_floor", "vol_window"):
                top[key] = val
            else:
                raise ConfigError(
                    f"{source}: unknown field {key!r} (expected turnover_cap, vol_floor, vol_window, default "
                    f"or an asset class: {', '.join(ASSET_CLASSES)})"
                )
        for c in ASSET_CLASSES:
            for name, val in {**common, **dict(overrides.get(c, {}))}.items():
                if name not in ClassParams.model_fields:
                    raise ConfigError(
                        f"{source}, field '{c}.{name}': unknown parameter (expected one of "
                        f"{', '.join(ClassParams.model_fields)})"
                    )
                base[c][name] = val
        classes = {}
        for c in ASSET_CLASSES:
            try:
                classes[c] = ClassParams(**base[c])
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise ConfigError(f"{source}, field '{c}.{field}': {msg} (got {err.get('input')!r})") from None
        try:
            return cls(classes=classes, **top)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{source}, field '{field}': {msg} (got {err.get('input')!r})") from None

    def column(self, name: str, classes) -> list[float]:
        """Parameter ``name`` of each entry of ``classes`` (an asset class per position)."""
        return [getattr(self.classes[c], name) for c in classes]
