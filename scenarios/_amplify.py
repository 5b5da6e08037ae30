"""Amplified shocks: correlation, volatility and liquidity stress on top of any base scenario set.

A base model has daily covariance ``S = D C D`` (``D`` the vols, ``C`` the correlation) on the factors
it covers.  The stress gives a target ``S' = D' C' D'``:

* correlation: ``C_b = (1 - w) C + w T`` with ``T`` = ``C`` with the targeted pairs or blocks set
  (``value``), shifted (``shift``) or scaled (``scale``), then ``C'`` = the nearest correlation matrix
  to ``C_b`` [H02]; the report gives the repair distance ``||C' - C_b||_F`` and the distance moved
  ``||C' - C||_F``;
* volatility: ``D' = M D`` with ``M`` the vol multipliers (``vol_of_vol`` on top for ``VOL`` factors).

Base moves ``x`` (each day of a path and the instantaneous shock) are mapped by

    A = D' C'^{1/2} C^{-1/2} D^{-1},   x' = A x,

(symmetric square roots) so that ``Cov(A x) = S'`` when ``Cov(x) = S``, ``x' S'^-1 x' = x' S^-1 x``
(the stress keeps a scenario's Mahalanobis distance, i.e. its plausibility under the model it is
measured against), ``A = M`` when only vols are scaled, and ``A`` does not depend on the factor order.
A Gaussian or Student-t Monte Carlo simulates from ``S'`` directly, which is the same in law.

Implied-vol surface shifts (``iv_shift``: add; ``iv_level``: move to a level) are applied to every
scenario after the map, and liquidity multipliers (bid-ask spread, ADV) are attached per scenario and
asset class.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stressgrid.core import ConfigError, ScenarioSet, factor_spec
from stressgrid.core.scenarioset import LIQUIDITY_CLASSES

from ._common import WindowSpec, parse_shock
from ._correlation import EstimatorSpec, corr_to_cov, cov_to_corr, nearest_correlation, sym_sqrt

__all__ = ["AmplifySpec", "CorrelationStress", "CorrelationTarget", "VolStress", "LiquidityStress",
           "Amplifier", "build_amplifier", "select_factors", "stressed_covariance"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Selector = Union[str, list[str]]


def _positive_map(v, what: str, allow_zero: bool = False):
    items = v.items() if isinstance(v, dict) else [("all", v)]
    for k, x in items:
        if x is None or not np.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
            # a scalar's value is shown by the batch loader ("(got -1)"); a mapping's entry is named here
            key = "" if k == "all" else f" for {k!r}"
            got = "" if k == "all" else f", got {x!r}"
            raise ValueError(f"{what}{key} must be {'non-negative' if allow_zero else 'positive'}{got}")
    return v


class CorrelationTarget(_Strict):
    """One pair or block of correlations to move: factors ``a`` against factors ``b``.

    ``a`` and ``b`` are a factor name, a glob (``EQ.*``, ``IR.USD.*``) or an asset class (``equity``,
    ``rates``, ``credit``, ``fx``, ``commodity``, ``volatility``), or a list of these.  Exactly one of
    ``value`` (target correlation in [-1, 1]), ``shift`` (added, result clipped to [-1, 1]) or ``scale``
    (multiplied, e.g. 1.3 for +30%, clipped) is given.
    """

    a: Selector
    b: Selector
    value: Optional[float] = None
    shift: Optional[float] = None
    scale: Optional[float] = None

    @field_validator("value")
    @classmethod
    def _in_range(cls, v):
        if v is not None and not -1.0 <= v <= 1.0:
            raise ValueError("correlation target must be in [-1, 1]")
        return v

    @field_validator("shift")
    @classmethod
    def _shift(cls, v):
        if v is not None and not -2.0 <= v <= 2.0:
            raise ValueError("correlation shift must be in [-2, 2]")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v):
        if v is not None and (not np.isfinite(v) or v < 0):
            raise ValueError("correlation scale must be non-negative")
        return v

    @model_validator(mode="after")
    def _one(self) -> "CorrelationTarget":
        given = [k for k in ("value", "shift", "scale") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'value', 'shift' or 'scale' (got {', '.join(given) or 'none'})")
        return self


class CorrelationStress(_Strict):
    """``correlation``: ``blend`` weight in [0, 1] toward the ``targets``."""

    blend: float = Field(default=1.0, ge=0.0, le=1.0)
    targets: list[CorrelationTarget] = Field(min_length=1)


class VolStress(_Strict):
    """``vol``: ``multiplier`` (a number, or a mapping from factor / glob / asset class / ``default`` to a
    number, all > 0), ``vol_of_vol`` (> 0, multiplies the dispersion of ``VOL`` factor moves),
    ``iv_shift`` (``{VOL factor: change}``, added to every scenario), ``iv_level`` (``{VOL factor:
    level}``, every scenario ends at this level)."""

    multiplier: Union[float, dict[str, float]] = 1.0
    vol_of_vol: float = 1.0
    iv_shift: dict[str, Union[float, str]] = {}
    iv_level: dict[str, float] = {}

    @field_validator("multiplier")
    @classmethod
    def _mult(cls, v):
        return _positive_map(v, "vol multiplier")

    @field_validator("vol_of_vol")
    @classmethod
    def _vov(cls, v):
        return _positive_map(v, "vol_of_vol")

    @field_validator("iv_shift", "iv_level")
    @classmethod
    def _vol_factors(cls, v):
        for k, x in v.items():
            if factor_spec(k).kind != "vol":
                raise ValueError(f"{k} is not an implied-vol factor (VOL.UNDERLYING.PARAM)")
            parse_shock(x, k)
        return v

    @field_validator("iv_level")
    @classmethod
    def _levels(cls, v):
        for k, x in v.items():
            if x < 0:
                raise ValueError(f"implied-vol level of {k} must be non-negative, got {x!r}")
        return v


class LiquidityStress(_Strict):
    """``liquidity``: ``spread_mult`` (bid-ask widening, e.g. 3) and ``adv_mult`` (ADV cut, e.g. 0.3), each
    a number or ``{asset class: number}`` (classes: equity, rates, credit, fx, commodity; ``default``
    for the rest)."""

    spread_mult: Union[float, dict[str, float]] = 1.0
    adv_mult: Union[float, dict[str, float]] = 1.0

    @field_validator("spread_mult", "adv_mult")
    @classmethod
    def _classes(cls, v, info):
        _positive_map(v, info.field_name)
        if isinstance(v, dict):
            for k in v:
                if k not in LIQUIDITY_CLASSES and k != "default":
                    raise ValueError(f"unknown asset class {k!r}; expected one of {', '.join(LIQUIDITY_CLASSES)} or default")
        return v

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Spread and ADV multipliers per class ``[C]`` in :data:`LIQUIDITY_CLASSES` order."""
        def row(v):
            if not isinstance(v, dict):
                return np.full(len(LIQUIDITY_CLASSES), float(v))
            d = float(v.get("default", 1.0))
            return np.array([float(v.get(c, d)) for c in LIQUIDITY_CLASSES])
        return row(self.spread_mult), row(self.adv_mult)


class AmplifySpec(_Strict):
    """``amplify``: stress on top of the base scenarios of a family.

    ``correlation``, ``vol`` and ``liquidity`` blocks (each optional); ``estimator`` and ``window`` of
    the base covariance for bases that have no model of their own (historical, rolling, bootstrap,
    GARCH-type Monte Carlo).
    """

    estimator: EstimatorSpec = EstimatorSpec()
    window: WindowSpec = WindowSpec()
    correlation: Optional[CorrelationStress] = None
    vol: Optional[VolStress] = None
    liquidity: Optional[LiquidityStress] = None

    @model_validator(mode="after")
    def _some(self) -> "AmplifySpec":
        if self.correlation is None and self.vol is None and self.liquidity is None:
            raise ValueError("give at least one of 'correlation', 'vol' or 'liquidity'")
        return self

    @property
    def moves_factors(self) -> bool:
        """True if the stress changes factor moves through the covariance map."""
        return self.correlation is not None or (self.vol is not None and (
            self.vol.multiplier != 1.0 or self.vol.vol_of_vol != 1.0))


def _match(s: str, factors: Sequence[str]) -> list[int]:
    return [i for i, f in enumerate(factors)
            if f == s or (any(ch in s for ch in "*?[") and fnmatch.fnmatchcase(f, s))
            or factor_spec(f).asset_class == s]


def select_factors(sel: Selector, factors: Sequence[str], family: str, field: str,
                   known: Sequence[str] = ()) -> list[int]:
    """Indices of ``factors`` matched by a selector (name, glob or asset class, or a list of these).

    A selector that matches none of ``factors`` (the modelled ones) is an error unless it matches one of
    ``known`` (the book's factors without history, which the stress cannot move)."""
    out: list[int] = []
    for s in [sel] if isinstance(sel, str) else sel:
        hit = _match(s, factors)
        if not hit and _match(s, known):
            continue
        if not hit:
            raise ConfigError(
                f"scenario family {family!r}, field '{field}': {s!r} matches no factor of the model "
                f"(unknown factor; the model has {', '.join(list(factors)[:10])}{' ...' if len(factors) > 10 else ''})"
            )
        out += hit
    return sorted(set(out))


def _multipliers(vol: VolStress | None, factors: Sequence[str], family: str, known: Sequence[str] = ()) -> np.ndarray:
    m = np.ones(len(factors))
    if vol is None:
        return m
    v = vol.multiplier
    if isinstance(v, dict):
        m[:] = float(v.get("default", 1.0))
        # broad selectors first, exact names last, so a name wins over its class
        for key in sorted((k for k in v if k != "default"), key=lambda k: (k in factors, k)):
            for i in select_factors(key, factors, family, f"amplify.vol.multiplier.{key}", known):
                m[i] = float(v[key])
    else:
        m[:] = float(v)
    is_vol = np.array([factor_spec(f).kind == "vol" for f in factors])
    return np.where(is_vol, m * vol.vol_of_vol, m)


def stressed_covariance(cov: np.ndarray, factors: Sequence[str], spec: AmplifySpec, family: str,
                        known: Sequence[str] = ()) -> tuple[np.ndarray, dict]:
    """The target covariance ``S' = D' C' D'`` of the module docstring.

    Parameters
    ----------
    cov : ``[F, F]`` base daily covariance on ``factors``
    known : other factors of the book (no history): selectors that match only these are ignored

    Returns
    -------
    cov' : ``[F, F]``
    report : dict with ``corr_blend``, ``corr_repair_distance`` (``||C' - C_b||_F``) and
        ``corr_moved`` (``||C' - C||_F``), or empty when the correlation is not stressed.
    """
    corr, sd = cov_to_corr(cov)
    report: dict = {}
    if spec.correlation is not None:
        target = corr.copy()
        for k, t in enumerate(spec.correlation.targets):
            ia = select_factors(t.a, factors, family, f"amplify.correlation.targets[{k}].a", known)
            ib = select_factors(t.b, factors, family, f"amplify.correlation.targets[{k}].b", known)
            for i in ia:
                for j in ib:
                    if i == j:
                        continue
                    if t.value is not None:
                        r = t.value
                    elif t.shift is not None:
                        r = corr[i, j] + t.shift
                    else:
                        r = corr[i, j] * t.scale
                    target[i, j] = target[j, i] = float(np.clip(r, -1.0, 1.0))
        w = spec.correlation.blend
        blended = (1.0 - w) * corr + w * target
        new, dist, _ = nearest_correlation(blended)
        report = dict(corr_blend=w, corr_repair_distance=dist, corr_moved=float(np.linalg.norm(new - corr)))
        corr_new = new
    else:
        corr_new = corr
    m = _multipliers(spec.vol, factors, family, known)
    return corr_to_cov(corr_new, sd * m), report


@dataclass
class Amplifier:
    """A built stress: the linear map on the covered factors, the surface shifts and the liquidity.

    Attributes
    ----------
    factors : ``[F]`` factor order of the family
    index : ``[K]`` positions in ``factors`` of the factors the map acts on
    matrix : ``[K, K]`` the map ``A`` (None when moves are not changed)
    shift : ``[F]`` added to every scenario's shock and path day (``iv_shift``)
    level_shock : ``[F]`` with NaN where unset: the shock that takes the factor to its ``iv_level``
    spread_mult, adv_mult : ``[C]`` or None
    report : dict of info columns
    """

    factors: tuple[str, ...]
    index: np.ndarray
    matrix: np.ndarray | None
    shift: np.ndarray
    level_shock: np.ndarray
    spread_mult: np.ndarray | None
    adv_mult: np.ndarray | None
    report: dict = field(default_factory=dict)

    def apply_moves(self, x: np.ndarray) -> np.ndarray:
        """Map moves ``[..., F]`` (shocks or cumulative paths) through ``A`` and add the surface shifts."""
        out = np.array(x, dtype=float, copy=True)
        if self.matrix is not None and len(self.index):
            out[..., self.index] = x[..., self.index] @ self.matrix.T
        out = out + self.shift
        lvl = np.isfinite(self.level_shock)
        if lvl.any():
            out[..., lvl] = self.level_shock[lvl]
        return out

    def apply(self, scen: ScenarioSet) -> ScenarioSet:
        """The stressed scenario set (shocks, paths, liquidity multipliers and info columns)."""
        S = len(scen)
        shocks = self.apply_moves(scen.shocks)
        paths = None if scen.paths is None else self.apply_moves(scen.paths)
        touched = (self.shift != 0) | np.isfinite(self.level_shock)
        covered = scen.covered | touched[None, :]
        info = scen.info.copy()
        for k, v in self.report.items():
            info[k] = v
        spread = None if self.spread_mult is None else np.repeat(self.spread_mult[None, :], S, axis=0)
        adv = None if self.adv_mult is None else np.repeat(self.adv_mult[None, :], S, axis=0)
        return ScenarioSet(scen.names, scen.factors, shocks, scen.weights, scen.family, covered, paths, info,
                           scen.filled, spread, adv)


def build_amplifier(
    spec: AmplifySpec,
    factors: Sequence[str],
    cov: np.ndarray | None,
    cov_index: np.ndarray,
    family: str,
    levels: Mapping[str, float] | None = None,
) -> Amplifier:
    """Build the stress of ``spec`` for a family on ``factors``.

    Parameters
    ----------
    cov : ``[K, K]`` base daily covariance of ``factors[cov_index]`` (None when only surfaces or
        liquidity are stressed)
    cov_index : ``[K]`` int
    levels : current factor levels (the market snapshot), needed by ``iv_level``

    Raises
    ------
    ConfigError
        For a selector or factor that matches nothing, or an ``iv_level`` without a current level.
    """
    factors = tuple(factors)
    F = len(factors)
    report: dict = {}
    matrix = None
    if spec.moves_factors:
        if cov is None or not len(cov_index):
            raise ConfigError(f"scenario family {family!r}, field 'amplify': no factor has history to stress")
        sub = [factors[i] for i in cov_index]
        new_cov, report = stressed_covariance(cov, sub, spec, family, [f for f in factors if f not in sub])
        corr, sd = cov_to_corr(cov)
        corr_new, sd_new = cov_to_corr(new_cov)
        dinv = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 0.0)
        matrix = (sd_new[:, None] * (sym_sqrt(corr_new) @ sym_sqrt(corr, inverse=True))) * dinv[None, :]
        if spec.vol is not None:
            report["vol_multiplier_max"] = float(np.max(np.where(sd > 0, sd_new / np.where(sd > 0, sd, 1), 1)))
    shift = np.zeros(F)
    level_shock = np.full(F, np.nan)
    if spec.vol is not None:
        for k, v in spec.vol.iv_shift.items():
            if k not in factors:
                raise ConfigError(f"scenario family {family!r}, field 'amplify.vol.iv_shift': unknown factor {k!r} (not a factor of the book)")
            shift[factors.index(k)] += parse_shock(v, k)
        for k, v in spec.vol.iv_level.items():
            if k not in factors:
                raise ConfigError(f"scenario family {family!r}, field 'amplify.vol.iv_level': unknown factor {k!r} (not a factor of the book)")
            if levels is None or k not in levels:
                raise ConfigError(f"scenario family {family!r}, field 'amplify.vol.iv_level.{k}': no current level of {k} to move from")
            level_shock[factors.index(k)] = float(v) - float(levels[k])
    spread = adv = None
    if spec.liquidity is not None:
        spread, adv = spec.liquidity.arrays()
        report.update({f"spread_mult.{c}": float(x) for c, x in zip(LIQUIDITY_CLASSES, spread)})
        report.update({f"adv_mult.{c}": float(x) for c, x in zip(LIQUIDITY_CLASSES, adv)})
    return Amplifier(factors, np.asarray(cov_index, int), matrix, shift, level_shock, spread, adv, report)
