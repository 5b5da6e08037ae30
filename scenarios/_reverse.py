"""Reverse stress tests: the most plausible scenario that costs the book a given loss, and the worst
loss within a given plausibility.

Plausibility is the Mahalanobis distance of the factor move under a covariance estimated from the
history (Gaussian or Student-t model of the ``horizon_days`` move).  With the move written in whitened
coordinates, ``x = A z`` where ``A A' = S`` (``S`` the covariance of the moved factors), the distance is
``|z|`` and the two questions are

* **least distance for a loss** ``L``: minimise ``|z|^2 / 2`` subject to ``loss(A z) = L``;
* **worst loss within a distance** ``D``: maximise ``loss(A z)`` subject to ``|z| <= D``,

where ``loss`` is the book's full-revaluation loss (every instrument repriced, not a Taylor expansion),
differentiated exactly through the pricing kernels.  Both are solved by sequential quadratic
programming (SLSQP, [K88]) on the kernels' gradients, from several starting points, then polished by
the Hasofer-Lind-Rackwitz-Fiessler step [RF78], which is exact for a linear book.  A solution counts as
converged only when it meets the first-order optimality conditions checked here (the loss equals the
target and the move is parallel to the loss gradient), whatever the optimiser reports.

For a linear book ``loss(x) = -w'x`` the answer is closed-form [BJRS09]: ``x* = L S w / (w' S w)`` at
distance ``L / sqrt(w' S w)``.  The tail probability reported is that of the half-space beyond the
solution's tangent plane (first order; exact for a linear book): ``Phi(-d)`` under the Gaussian model,
and ``P(t_nu > d sqrt(nu / (nu - 2)))`` under a Student-t whose covariance is ``S``.

With ``factors`` given, only those factors move freely; every other factor of the model moves by its
conditional expectation given them (``x_o = S_oc S_cc^-1 x_c``, as ``predictive`` does), and the
distance is that of the free factors under ``S_cc``.

References
----------
.. [BJRS09] T. Breuer, M. Jandacka, K. Rheinberger and M. Summer, "How to find plausible, severe and
   useful stress scenarios", International Journal of Central Banking 5(3) (2009) 205-224.
.. [BC13] T. Breuer and I. Csiszar, "Systematic stress tests with entropic plausibility constraints",
   Journal of Banking and Finance 37 (2013) 1552-1559.
.. [RF78] R. Rackwitz and B. Fiessler, "Structural reliability under combined random load sequences",
   Computers and Structures 9 (1978) 489-494 (the HL-RF iteration).
.. [K88] D. Kraft, "A software package for sequential quadratic programming", DFVLR-FB 88-28 (1988).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import optimize, stats

from stressgrid.core import ConfigError, History, ScenarioSet

from ._common import WindowSpec, as_seed_sequence, daily_moves, parse_amount
from ._correlation import EstimatorSpec, estimate_covariance
from ._tdist import check_dof, fit_t_dof

__all__ = ["ReverseSpec", "WithinSpec", "ReverseModel", "Solution", "fit_reverse", "least_distance", "worst_within",
           "reverse_scenarios", "reverse_shocks", "tail_probability", "distance_for_probability"]

#: |loss - target| / target below which a solution meets its target
LOSS_TOL = 1e-9
#: 1 - cos(angle between the move and the loss gradient) below which a solution is a stationary point
ANGLE_TOL = 1e-8
#: two solutions closer than this (relative to the larger distance) are the same solution
SAME_TOL = 1e-4

_LIMIT = re.compile(r"^\s*limit:\s*(\S.*?)\s*$")


def limit_name(value: float | str) -> str | None:
    """The limit a loss names (``"limit:NAME"``), else None."""
    m = _LIMIT.match(value) if isinstance(value, str) else None
    return m.group(1) if m else None


def parse_loss(value: float | str) -> tuple[float, bool]:
    """``(amount, of_nav)`` from a batch file's loss (:func:`._common.parse_amount`: a number in the base
    currency, ``"12.5m"``, ``"800k"``, ``"1bn"`` or ``"5%"`` of NAV).  Raises ``ValueError`` for anything
    else or a loss that is not positive (``"limit:NAME"`` is resolved by :func:`reverse_scenarios`)."""
    try:
        parsed = parse_amount(value)
    except ValueError as exc:
        raise ValueError(f"loss {exc}") from None
    if parsed is None:
        raise ValueError(f"loss {value!r} is not an amount ('25000000', '25m', '800k'), a share of NAV ('5%') or "
                         "a limit of the batch ('limit:NAME')")
    if parsed[0] <= 0:
        raise ValueError(f"loss {value!r} must be a positive amount (a loss is written as a positive number)")
    return parsed


class WithinSpec(BaseModel):
    """A plausibility bound: a Mahalanobis ``distance`` or a tail ``probability`` (exactly one)."""

    model_config = ConfigDict(extra="forbid")
    distance: Optional[float] = Field(default=None, gt=0.0, le=50.0)
    probability: Optional[float] = Field(default=None, gt=0.0, lt=0.5)

    @model_validator(mode="after")
    def _one(self) -> "WithinSpec":
        if (self.distance is None) == (self.probability is None):
            raise ValueError("give exactly one of 'distance' and 'probability'")
        return self

    def label(self) -> str:
        return f"distance={self.distance:g}" if self.distance is not None else f"probability={self.probability:g}"


class ReverseSpec(BaseModel):
    """Reverse stress test.

    Batch-file keys: ``kind: reverse``, ``name``, ``loss`` (a loss or a list of losses: an amount in the
    base currency such as ``25000000`` or ``"25m"``, or ``"5%"`` of the batch's ``nav``), ``within`` (a
    plausibility bound or a list of them, ``{distance: 3}`` or ``{probability: 0.01}``: the worst loss
    within it), ``factors`` (names or wildcards of the factors that move freely; default all), ``covariance``
    (an estimator, as ``estimator`` in ``montecarlo``; default Ledoit-Wolf), ``window``, ``distribution``
    (``gaussian`` or ``student_t``), ``dof``, ``horizon_days`` (the move's horizon, default 10),
    ``revaluation``, ``starts`` (starting points of the search, default 8) and ``max_distance`` (the
    search bound: a loss not reached within it is an error, default 10).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["reverse"]
    name: str = "reverse"
    loss: Optional[Union[float, str, list[Union[float, str]]]] = None
    within: Optional[Union[WithinSpec, list[WithinSpec]]] = None
    factors: Optional[list[str]] = Field(default=None, min_length=1)
    covariance: EstimatorSpec = EstimatorSpec(method="ledoit_wolf")
    window: WindowSpec = WindowSpec()
    distribution: Literal["gaussian", "student_t"] = "gaussian"
    dof: Optional[float] = None
    horizon_days: int = Field(default=10, ge=1, le=260)
    #: value the book at the horizon (time passes: kernels.age) or at the as-of date
    revaluation: Literal["horizon", "instantaneous"] = "horizon"
    starts: int = Field(default=8, ge=1, le=64)
    max_distance: float = Field(default=10.0, gt=0.0, le=50.0)

    @field_validator("dof")
    @classmethod
    def _dof(cls, v):
        return check_dof(v)

    @field_validator("loss")
    @classmethod
    def _loss(cls, v):
        for x in (v if isinstance(v, list) else [v] if v is not None else []):
            if limit_name(x) is None:
                parse_loss(x)
        if isinstance(v, list) and not v:
            raise ValueError("give at least one loss")
        return v

    @model_validator(mode="after")
    def _something(self) -> "ReverseSpec":
        if self.loss is None and self.within is None:
            raise ValueError("give 'loss' (the most plausible scenario that loses it) or 'within' "
                             "(the worst loss within a plausibility bound), or both")
        return self

    def losses(self) -> list:
        return [] if self.loss is None else self.loss if isinstance(self.loss, list) else [self.loss]

    def bounds(self) -> list[WithinSpec]:
        return [] if self.within is None else self.within if isinstance(self.within, list) else [self.within]

    @property
    def n_targets(self) -> int:
        return len(self.losses()) + len(self.bounds())


def tail_probability(d: float, dof: float | None) -> float:
    """Probability of the half-space at Mahalanobis distance ``d`` (under the covariance): ``Phi(-d)``,
    or ``P(t_nu > d sqrt(nu / (nu - 2)))`` for a Student-t of ``dof`` degrees of freedom."""
    if dof is None:
        return float(stats.norm.sf(d))
    return float(stats.t.sf(d * np.sqrt(dof / (dof - 2.0)), dof))


def distance_for_probability(p: float, dof: float | None) -> float:
    """The inverse of :func:`tail_probability`."""
    if dof is None:
        return float(stats.norm.isf(p))
    return float(stats.t.isf(p, dof) / np.sqrt(dof / (dof - 2.0)))


@dataclass(frozen=True)
class Solution:
    """One search's result in whitened coordinates.

    z : ``[k]`` the move, ``x = A z``; loss : its loss; distance : ``|z|``; converged : meets the
    optimality conditions; violation : ``|loss - target| / target`` (least distance) or the relative
    distance to the bound (worst within); start : index of the starting point.
    """

    z: np.ndarray
    loss: float
    distance: float
    converged: bool
    violation: float
    start: int


LossFn = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _parallel(z: np.ndarray, g: np.ndarray) -> float:
    """``1 - cos`` of the angle between ``z`` and ``g`` (0: same direction; 2: opposite)."""
    nz, ng = np.linalg.norm(z), np.linalg.norm(g)
    if nz == 0.0 or ng == 0.0:
        return 1.0
    return float(1.0 - z @ g / (nz * ng))


def least_distance(loss: LossFn, target: float, starts: Sequence[np.ndarray], max_iter: int = 200) -> list[Solution]:
    """The least-``|z|`` point with ``loss(z) = target`` from each starting point.

    ``loss(z) -> (value, gradient)``.  SLSQP on ``|z|^2 / 2`` with the equality constraint scaled by
    ``target``, then up to 20 HL-RF steps ``z <- (g'z - c) g / |g|^2`` (``c = loss/target - 1``,
    ``g`` its gradient), each kept only if it does not worsen the constraint.
    """
    def con(z):
        return loss(z)[0] / target - 1.0

    def con_jac(z):
        return loss(z)[1] / target

    out = []
    for i, z0 in enumerate(starts):
        try:
            res = optimize.minimize(lambda z: 0.5 * z @ z, z0, jac=lambda z: z, method="SLSQP",
                                    constraints=[{"type": "eq", "fun": con, "jac": con_jac}],
                                    options={"maxiter": max_iter, "ftol": 1e-14})
            z = np.asarray(res.x, float)
        except (ValueError, np.linalg.LinAlgError):
            z = np.asarray(z0, float)
        v, g = loss(z)
        c, gc = v / target - 1.0, g / target
        for _ in range(20):
            if abs(c) <= LOSS_TOL and _parallel(z, gc) <= ANGLE_TOL:
                break
            gg = gc @ gc
            if gg == 0.0 or not np.isfinite(gg):
                break
            zn = (gc @ z - c) / gg * gc
            vn, gn = loss(zn)
            cn = vn / target - 1.0
            if not np.isfinite(cn) or abs(cn) > max(abs(c), LOSS_TOL):
                break
            z, v, c, gc = zn, vn, cn, gn / target
        ok = bool(np.isfinite(v) and abs(c) <= 1e-7 and _parallel(z, gc) <= 1e-6)
        out.append(Solution(z, float(v), float(np.linalg.norm(z)), ok, float(abs(c)), i))
    return out


def worst_within(loss: LossFn, radius: float, starts: Sequence[np.ndarray], max_iter: int = 200) -> list[Solution]:
    """The largest ``loss(z)`` with ``|z| <= radius`` from each starting point (SLSQP, then fixed-point
    steps ``z <- radius g / |g|`` kept while they raise the loss).  Converged: on the sphere with ``z``
    parallel to the gradient, or inside it at a zero gradient."""
    g0 = loss(np.zeros_like(np.asarray(starts[0], float)))[1]
    scale = max(float(np.linalg.norm(g0)) * radius, 1.0)
    out = []
    for i, z0 in enumerate(starts):
        try:
            res = optimize.minimize(lambda z: -loss(z)[0] / scale, z0, jac=lambda z: -loss(z)[1] / scale,
                                    method="SLSQP",
                                    constraints=[{"type": "ineq", "fun": lambda z: 1.0 - z @ z / radius ** 2,
                                                  "jac": lambda z: -2.0 * z / radius ** 2}],
                                    options={"maxiter": max_iter, "ftol": 1e-15})
            z = np.asarray(res.x, float)
        except (ValueError, np.linalg.LinAlgError):
            z = np.asarray(z0, float)
        v, g = loss(z)
        for _ in range(20):
            ng = np.linalg.norm(g)
            if ng == 0.0 or _parallel(z, g) <= ANGLE_TOL and abs(np.linalg.norm(z) / radius - 1.0) <= LOSS_TOL:
                break
            zn = radius * g / ng
            vn, gn = loss(zn)
            if not np.isfinite(vn) or vn < v:
                break
            z, v, g = zn, vn, gn
        r = float(np.linalg.norm(z))
        on_sphere = abs(r / radius - 1.0) <= 1e-7 and _parallel(z, g) <= 1e-6
        inside = r < radius * (1.0 - 1e-7) and np.linalg.norm(g) <= 1e-8 * scale
        out.append(Solution(z, float(v), r, bool(np.isfinite(v) and (on_sphere or inside)),
                            float(abs(r / radius - 1.0)), i))
    return out


def _distinct(solutions: list[Solution], key) -> tuple[list[Solution], bool]:
    """The converged solutions, best first (by ``key``), one per distinct point; and whether every start
    converged to the best one."""
    conv = sorted((s for s in solutions if s.converged), key=key)
    kept: list[Solution] = []
    for s in conv:
        if all(np.linalg.norm(s.z - k.z) > SAME_TOL * max(1.0, k.distance, s.distance) for k in kept):
            kept.append(s)
    agree = len(conv) == len(solutions) and len(kept) == 1
    return kept, agree


def _starting_points(grad0: np.ndarray, radius: float, n: int, seed) -> list[np.ndarray]:
    """The linearised solution (the gradient's direction at ``radius``), its opposite, then random
    directions at ``radius``; seeded."""
    k = len(grad0)
    pts = []
    ng = np.linalg.norm(grad0)
    if ng > 0:
        pts += [radius * grad0 / ng, -radius * grad0 / ng]
    rng = np.random.default_rng(as_seed_sequence(seed))
    while len(pts) < n:
        d = rng.standard_normal(k)
        pts.append(radius * d / np.linalg.norm(d))
    return pts[:n]


def _sqrt_psd(s: np.ndarray, names: Sequence[str], family: str) -> np.ndarray:
    """``A`` with ``A A' = s`` (Cholesky); a singular ``s`` is a :class:`ConfigError`."""
    w = np.linalg.eigvalsh(s)
    if w[0] <= 1e-12 * max(w[-1], 1e-300):
        rank = int((w > 1e-12 * max(w[-1], 1e-300)).sum())
        raise ConfigError(f"scenario family {family!r}, field 'covariance': the covariance of the {len(names)} moved "
                          f"factors is singular (rank {rank}): use a shrinkage estimator (ledoit_wolf), a longer "
                          "window or fewer factors")
    return np.linalg.cholesky(s)


def _resolve_free(patterns: Sequence[str], book: Sequence[str], model: Sequence[str], family: str) -> list[str]:
    out: list[str] = []
    for p in patterns:
        hit = [f for f in book if fnmatch.fnmatchcase(f, p)]
        if not hit:
            raise ConfigError(f"scenario family {family!r}, field 'factors': {p!r} matches none of the book's factors")
        missing = [f for f in hit if f not in model]
        if missing:
            raise ConfigError(f"scenario family {family!r}, field 'factors': {missing[0]} has no history in the "
                              "estimation window, so it cannot be moved by the search")
        out += [f for f in hit if f not in out]
    return out


def _money(x: float) -> str:
    return f"{x / 1e6:,.2f}m" if abs(x) >= 1e5 else f"{x:,.0f}"


@dataclass(frozen=True)
class ReverseModel:
    """A reverse family's model of the horizon move, on the book's ``factors``.

    free : the factors that move freely; cov : ``[F_m, F_m]`` covariance of the model factors'
    ``horizon_days`` move; model : the model's factors (those with history in the window); covered :
    ``[F]`` has history; A : ``[k, k]`` with ``A A' = S_cc``; T : ``[F, k]`` the shocks of whitened
    coordinates ``z`` (free factors ``A z``, the other model factors their conditional expectation, the
    rest 0); dof : Student-t degrees of freedom or None; source : what the covariance was estimated on.
    """

    factors: tuple[str, ...]
    free: tuple[str, ...]
    model: tuple[str, ...]
    cov: np.ndarray
    covered: np.ndarray
    A: np.ndarray
    T: np.ndarray
    dof: float | None
    source: str

    def whiten(self, shock: np.ndarray) -> np.ndarray:
        """``z`` of a shock ``[F]`` that this model produced (``shock = T z``)."""
        pos = {f: j for j, f in enumerate(self.factors)}
        return np.linalg.solve(self.A, np.asarray(shock, float)[[pos[f] for f in self.free]])

    def distance_shares(self, shock: np.ndarray) -> np.ndarray:
        """``[k]`` each free factor's share of the squared distance, ``u_i (S_cc^-1 u)_i / |z|^2`` with
        ``u = A z`` (they add up to 1; a factor that moves against its correlated peers can be negative)."""
        z = self.whiten(shock)
        u = self.A @ z
        return u * np.linalg.solve(self.A.T, z) / max(float(z @ z), 1e-300)

    def sd(self) -> pd.Series:
        """Standard deviation of each model factor's horizon move."""
        return pd.Series(np.sqrt(np.diag(self.cov)), index=list(self.model))


def fit_reverse(spec: ReverseSpec, history: History, factors: Sequence[str], as_of: pd.Timestamp | None = None) -> ReverseModel:
    """The :class:`ReverseModel` of ``spec`` on ``factors`` (deterministic: the same inputs give the same model)."""
    family = spec.name
    factors = list(factors)
    F = len(factors)
    moves, ok = daily_moves(history, factors, spec.window, as_of, family)
    model_f = list(moves.columns)
    cov, details = estimate_covariance(moves.to_numpy(), spec.covariance)
    cov = cov * spec.horizon_days  # square-root-of-time: covariance of the h-day move
    dof = None
    if spec.distribution == "student_t":
        dof = spec.dof if spec.dof is not None else fit_t_dof(moves.to_numpy() - moves.to_numpy().mean(0), cov / spec.horizon_days)
    free = model_f if spec.factors is None else _resolve_free(spec.factors, factors, model_f, family)
    ci = np.array([model_f.index(f) for f in free])
    oi = np.array([j for j in range(len(model_f)) if model_f[j] not in set(free)], dtype=int)
    s_cc = cov[np.ix_(ci, ci)]
    A = _sqrt_psd(s_cc, free, family)
    # x_model = M x_c with M = [I; S_oc S_cc^-1]; on the book's factor order: T z = P M A z
    pos = {f: j for j, f in enumerate(factors)}
    T = np.zeros((F, len(ci)))
    T[[pos[model_f[j]] for j in ci]] = A
    if len(oi):
        T[[pos[model_f[j]] for j in oi]] = cov[np.ix_(oi, ci)] @ np.linalg.solve(s_cc, A)
    source = f"{details['method']} covariance x {spec.horizon_days} days, {moves.index[0].date()}..{moves.index[-1].date()}"
    return ReverseModel(tuple(factors), tuple(free), tuple(model_f), cov, ok, A, T, dof, source)


def reverse_scenarios(
    spec: ReverseSpec,
    history: History,
    factors: Sequence[str],
    revaluer: LossFn | None,
    seed: np.random.SeedSequence | int | None = None,
    as_of: pd.Timestamp | None = None,
    nav: float | None = None,
    limits: dict[str, float] | None = None,
) -> ScenarioSet:
    """Scenarios of a :class:`ReverseSpec` on ``factors``.

    Parameters
    ----------
    revaluer : ``f(shock[F]) -> (pnl, gradient[F])``, the book's full-revaluation P&L (base currency)
        on ``factors`` as the family values it (at its horizon or today): :func:`stressgrid.kernels.total_pnl`
    nav : the batch's NAV (base currency), for losses given in % of NAV
    limits : limit name -> loss (base currency) of the batch's book-level loss limits, for ``"limit:NAME"``

    One scenario per target and distinct solution: ``NAME:loss=X`` for each loss, ``NAME:within
    distance=D`` or ``NAME:within probability=P`` for each bound; a second (third) local solution found
    from another start is ``...:alt1`` (``:alt2``).  A target whose searches all fail keeps its best
    attempt with ``converged`` false.
    """
    family = spec.name
    if revaluer is None:
        raise ConfigError(f"scenario family {family!r}: a reverse stress test needs the book (run it through the grid)")
    factors = list(factors)
    F = len(factors)
    model = fit_reverse(spec, history, factors, as_of)
    T, dof, free, ok = model.T, model.dof, list(model.free), model.covered
    pos = {f: j for j, f in enumerate(factors)}

    def loss(z):
        v, g = revaluer(T @ z)
        return -v, -(T.T @ g)

    base_loss, g0 = loss(np.zeros(len(free)))
    radius = spec.max_distance
    seed = as_seed_sequence(seed)
    rows: list[tuple[str, np.ndarray, dict]] = []
    bound_cache: dict[float, list[Solution]] = {}

    def child(*key: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *key))

    def worst(r: float) -> list[Solution]:
        if r not in bound_cache:
            bound_cache[r] = worst_within(loss, r, _starting_points(g0, r, spec.starts, child(1, len(bound_cache))))
        return bound_cache[r]

    common = dict(family=family, kind="reverse", days=spec.horizon_days, source=model.source,
                  distribution=spec.distribution, dof=dof,
                  core=",".join(free) if spec.factors is not None else "",
                  uncovered=",".join(f for f, c in zip(factors, ok) if not c))

    for t, raw in enumerate(spec.losses()):
        named = limit_name(raw)
        if named is not None:
            if named not in (limits or {}):
                known = ", ".join(repr(k) for k in (limits or {})) or "none"
                raise ConfigError(f"scenario family {family!r}, field 'loss': {raw!r} names no book-level loss limit of the "
                                  f"batch (stressed_loss, worst_loss, var or cvar with scope book; the batch has: {known})")
            amount, of_nav = float(limits[named]), False
        else:
            amount, of_nav = parse_loss(raw)
        if of_nav:
            if nav is None:
                raise ConfigError(f"scenario family {family!r}, field 'loss': {raw!r} is a share of NAV, but the batch "
                                  "gives no 'nav'")
            amount *= nav
        label = f"loss={raw}" if isinstance(raw, str) else f"loss={raw / 1e6:g}m" if raw >= 1e5 else f"loss={raw:g}"
        if base_loss >= amount:
            raise ConfigError(f"scenario family {family!r}, field 'loss': {raw!r} ({_money(amount)}) is already lost with "
                              f"no factor move ({_money(base_loss)} over the horizon): give a larger loss")
        reach = max(s.loss for s in worst(radius) if np.isfinite(s.loss))
        if reach < amount:
            raise ConfigError(f"scenario family {family!r}, field 'loss': {raw!r} ({_money(amount)}) is beyond the worst "
                              f"loss within distance {radius:g} ({_money(reach)}): give a smaller loss or a larger "
                              "max_distance")
        r0 = amount / max(np.linalg.norm(g0), 1e-300) if np.linalg.norm(g0) > 0 else min(3.0, radius)
        sols = least_distance(loss, amount, _starting_points(g0, min(r0, radius), spec.starts, child(0, t)))
        kept, agree = _distinct(sols, key=lambda s: s.distance)
        if not kept:
            kept = [min(sols, key=lambda s: s.violation)]
        extra = dict(target_loss=amount, starts=len(sols), starts_converged=sum(s.converged for s in sols),
                     starts_agree=agree)
        for j, s in enumerate(kept[:3]):
            rows.append((f"{family}:{label}" + (f":alt{j}" if j else ""), s, extra))

    for b, w in enumerate(spec.bounds()):
        r = w.distance if w.distance is not None else distance_for_probability(w.probability, dof)
        sols = worst(r)
        kept, agree = _distinct(sols, key=lambda s: -s.loss)
        if not kept:
            kept = [max(sols, key=lambda s: s.loss if np.isfinite(s.loss) else -np.inf)]
        extra = dict(target_loss=None, starts=len(sols), starts_converged=sum(s.converged for s in sols),
                     starts_agree=agree)
        for j, s in enumerate(kept[:3]):
            rows.append((f"{family}:within {w.label()}" + (f":alt{j}" if j else ""), s, extra))

    names, shocks, info = [], [], []
    for name, s, extra in rows:
        x = T @ s.z
        share = model.distance_shares(x)
        drivers = ", ".join(f"{free[i]} {share[i]:.0%}" for i in np.argsort(-share)[:5] if share[i] > 0)
        what = (f"most plausible move that loses {_money(extra['target_loss'])}" if extra["target_loss"] is not None
                else f"worst loss within distance {s.distance:.2f}")
        names.append(name)
        shocks.append(x)
        info.append(dict(common, scenario=name, converged=s.converged, distance=s.distance,
                         tail_probability=tail_probability(s.distance, dof), distance_drivers=drivers,
                         description=what if s.converged else f"{what}: the search did not converge "
                                                              f"(best attempt, off by {s.violation:.1e})", **extra))
    S = len(names)
    info = pd.DataFrame(info)
    for c in ("starts", "starts_converged"):  # integers that stay integers next to families without them
        info[c] = pd.array(info[c], dtype="Int64")
    sh = np.array(shocks).reshape(S, F)
    covered = np.tile(ok, (S, 1))
    filled = np.zeros((S, F), bool)
    filled[:, [pos[f] for f in model.model if f not in set(free)]] = True
    ramp = np.arange(1, spec.horizon_days + 1, dtype=float) / spec.horizon_days
    paths = sh[:, None, :] * ramp[None, :, None]
    return ScenarioSet(tuple(names), tuple(factors), sh, np.full(S, 1.0 / max(S, 1)), (family,) * S, covered, paths,
                       info, filled)


def reverse_shocks(spec: ReverseSpec, scen: ScenarioSet, history: History, levels: dict[str, float] | None = None,
                   as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """The factor moves of a reverse family's scenarios, one row per scenario and factor that moves:
    ``shock`` (the factor's convention), ``move`` (a simple return for prices, the shock otherwise),
    ``level`` and ``shocked_level`` (with ``levels``), ``sd`` (the model's standard deviation of the
    factor's horizon move), ``z`` (``shock / sd``), ``role`` (``free`` or ``conditional``: moved by its
    conditional expectation given the free ones) and ``distance_share`` (free factors)."""
    from stressgrid.core import factor_spec

    model = fit_reverse(spec, history, scen.factors, as_of)
    sd = model.sd()
    free = set(model.free)
    rows = []
    for i, name in enumerate(scen.names):
        x = scen.shocks[i]
        share = dict(zip(model.free, model.distance_shares(x)))
        for j, f in enumerate(scen.factors):
            if f not in sd.index or x[j] == 0.0:
                continue
            is_log = factor_spec(f).is_log
            lv = None if levels is None or f not in levels else float(levels[f])
            rows.append(dict(scenario=name, family=spec.name, factor=f, shock=float(x[j]),
                             move=float(np.expm1(x[j])) if is_log else float(x[j]),
                             level=lv, shocked_level=None if lv is None else lv * float(np.exp(x[j])) if is_log else lv + float(x[j]),
                             sd=float(sd[f]), z=float(x[j] / sd[f]) if sd[f] > 0 else None,
                             role="free" if f in free else "conditional", distance_share=share.get(f)))
    return pd.DataFrame(rows)
