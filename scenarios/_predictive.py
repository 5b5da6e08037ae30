"""Predictive (conditional) stress: shock a few core factors, move the others by their conditional
expectation under a Gaussian or Student-t model, and report how plausible the core shock is.

References
----------
.. [MFE15] A. J. McNeil, R. Frey and P. Embrechts, "Quantitative Risk Management", revised ed.,
   Princeton (2015): conditional normal distribution (Prop. 6.2 / eq. 6.7), multivariate t (s.6.2.3).
.. [D16] P. Ding, "On the conditional distribution of the multivariate t distribution", The American
   Statistician 70 (2016) 293-295.
.. [K01] R. Kupiec, "Stress tests and risk capital", Journal of Risk 2 (1999); and A. Meucci,
   "Risk and Asset Allocation" (2005) s.2.6: the Mahalanobis distance as a plausibility measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import stats

from stressgrid.core import ConfigError, History, ScenarioSet

from ._amplify import AmplifySpec, stressed_covariance
from ._common import BLOCK_SIZE, WindowSpec, block_seed, daily_moves, n_blocks, parse_shock
from ._correlation import EstimatorSpec, estimate_covariance
from ._tdist import fit_t_dof, check_dof

__all__ = ["PredictiveSpec", "StressDef", "ConditionalResult", "conditional_stress", "predictive_scenarios"]


class StressDef(BaseModel):
    """One stress: a name and the core shocks ``{factor: shock}`` (``"-30%"``, ``"+100bp"`` or a number
    in the factor's convention)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    shocks: dict[str, Union[float, str]] = Field(min_length=1)

    @field_validator("shocks")
    @classmethod
    def _parse(cls, v):
        for k, x in v.items():
            parse_shock(x, k)
        return v

    def parsed(self) -> dict[str, float]:
        return {k: parse_shock(x, k) for k, x in self.shocks.items()}


class PredictiveSpec(BaseModel):
    """Predictive stress.

    Batch-file keys: ``kind: predictive``, ``name``, ``stresses`` (list of ``{name, shocks}``),
    ``distribution`` (``gaussian`` or ``student_t``), ``dof`` (Student-t degrees of freedom > 2; default:
    estimated from the window), ``estimator``, ``window``, ``horizon_days`` (the horizon over which the
    core shock is judged, default 10), ``n_draws`` (conditional scenarios drawn around each
    conditional mean, default 0), ``amplify`` (correlation / vol stress of the model before conditioning).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["predictive"]
    name: str = "predictive"
    stresses: list[StressDef] = Field(min_length=1)
    distribution: Literal["gaussian", "student_t"] = "gaussian"
    dof: Optional[float] = None
    estimator: EstimatorSpec = EstimatorSpec(method="ledoit_wolf")
    window: WindowSpec = WindowSpec()
    horizon_days: int = Field(default=10, ge=1, le=260)
    #: value the book at the horizon (time passes: kernels.age) or at the as-of date
    revaluation: Literal["horizon", "instantaneous"] = "horizon"
    n_draws: int = Field(default=0, ge=0, le=1_000_000)
    amplify: Optional[AmplifySpec] = None

    @field_validator("dof")
    @classmethod
    def _dof(cls, v):
        return check_dof(v)

    @model_validator(mode="after")
    def _names(self) -> "PredictiveSpec":
        names = [s.name for s in self.stresses]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"stress name {sorted(dup)[0]!r} is used twice")
        return self


@dataclass(frozen=True)
class ConditionalResult:
    """Conditional distribution of the other factors given the core shock.

    Attributes
    ----------
    mean : ``[F_o]`` conditional expectation of the other factors
    cov : ``[F_o, F_o]`` conditional covariance
    scale : ``[F_o, F_o]`` conditional scale matrix (= ``cov`` for Gaussian)
    dof : conditional degrees of freedom (None for Gaussian)
    mahalanobis : ``sqrt(c' S_cc^-1 c)``, distance of the core shock under the model's covariance
    tail_prob : probability of a core move at least this far: ``P(chi2_k > d^2)`` (Gaussian) or
        ``P(F(k, nu) > d_psi^2 / k)`` (Student-t, ``d_psi`` the distance under the scale matrix)
    """

    mean: np.ndarray
    cov: np.ndarray
    scale: np.ndarray
    dof: float | None
    mahalanobis: float
    tail_prob: float


def conditional_stress(cov: np.ndarray, core: np.ndarray, shock: np.ndarray, dof: float | None = None,
                       mean: np.ndarray | None = None) -> ConditionalResult:
    """Condition a Gaussian or Student-t model on ``x[core] = shock``.

    Parameters
    ----------
    cov : ``[F, F]`` covariance of the factor moves over the horizon
    core : ``[k]`` int indices of the shocked factors
    shock : ``[k]`` their shocks
    dof : Student-t degrees of freedom (> 2), None for Gaussian
    mean : ``[F]`` unconditional mean (default 0)

    Notes
    -----
    With ``o`` the other factors, the Gaussian conditional law is [MFE15, Prop. 6.2]::

        E[x_o | x_c = c]   = m_o + S_oc S_cc^-1 (c - m_c)
        Cov[x_o | x_c = c] = S_oo - S_oc S_cc^-1 S_co

    A multivariate t with ``nu`` degrees of freedom and covariance ``S`` has scale ``P = S (nu-2)/nu``;
    given the core it is t with ``nu + k`` degrees of freedom, the same mean, and scale [D16]
    ``(nu + d_P^2) / (nu + k) * (P_oo - P_oc P_cc^-1 P_co)``, ``d_P^2 = (c - m_c)' P_cc^-1 (c - m_c)``.
    The Mahalanobis distance ``d^2 = (c - m_c)' S_cc^-1 (c - m_c)`` is chi-squared with ``k`` degrees of
    freedom under the Gaussian, and ``d_P^2 / k`` is ``F(k, nu)`` under the t [MFE15, s.6.2.3].
    """
    cov = np.asarray(cov, float)
    F = len(cov)
    core = np.asarray(core, int)
    other = np.setdiff1d(np.arange(F), core)
    m = np.zeros(F) if mean is None else np.asarray(mean, float)
    dc = np.asarray(shock, float) - m[core]
    s_cc = cov[np.ix_(core, core)]
    s_oc = cov[np.ix_(other, core)]
    s_oo = cov[np.ix_(other, other)]
    # pseudo-inverse: a core factor that is an exact combination of others would make S_cc singular
    s_cc_inv = np.linalg.pinv(s_cc, rcond=1e-12, hermitian=True)
    beta = s_oc @ s_cc_inv
    cmean = m[other] + beta @ dc
    ccov = s_oo - beta @ s_oc.T
    ccov = (ccov + ccov.T) / 2.0
    d2 = float(dc @ s_cc_inv @ dc)
    k = len(core)
    if dof is None:
        return ConditionalResult(cmean, ccov, ccov, None, float(np.sqrt(max(d2, 0.0))), float(stats.chi2.sf(d2, k)))
    nu = float(dof)
    d2p = d2 * nu / (nu - 2.0)
    scale = (nu + d2p) / (nu + k) * ccov * (nu - 2.0) / nu
    nu_c = nu + k
    return ConditionalResult(cmean, scale * nu_c / (nu_c - 2.0), scale, nu_c, float(np.sqrt(max(d2, 0.0))),
                             float(stats.f.sf(d2p / k, k, nu)))


def predictive_scenarios(
    spec: PredictiveSpec,
    history: History,
    factors: Sequence[str],
    seed: np.random.SeedSequence | int | None = None,
    as_of: pd.Timestamp | None = None,
) -> ScenarioSet:
    """Scenarios of a :class:`PredictiveSpec` on ``factors``.

    For each stress: one scenario at the conditional mean (``name``), then ``n_draws`` conditional draws
    (``name:i``), all of equal weight within the family.  Paths ``[S, horizon_days, F]`` ramp linearly
    to the shock (the conditional model says where the move ends, not how it gets there).  Core shocks are set exactly; other factors
    with history in the window are propagated (``filled``); factors without history are not covered.
    A core factor without history in the window is shocked but cannot inform the others (info column
    ``not_in_model``).  Draws of stress ``j`` come in :data:`BLOCK_SIZE` blocks with seeds
    ``block_seed(block_seed(seed, j), b)``.
    """
    family = spec.name
    factors = list(factors)
    cores = {s.name: s.parsed() for s in spec.stresses}
    core_names = list(dict.fromkeys(f for c in cores.values() for f in c))
    hist_cols = set(history.factors)
    for f in core_names:
        if f not in factors and f not in hist_cols:
            raise ConfigError(
                f"scenario family {family!r}, field 'stresses': unknown factor {f!r}; it is neither a factor "
                f"of the book nor in the history"
            )
    # the model spans the book's factors and the core factors (a core factor the book does not hold
    # still informs the others)
    universe = factors + [f for f in core_names if f not in factors]
    moves, ok = daily_moves(history, universe, spec.window, as_of, family)
    model_f = list(moves.columns)
    cov, details = estimate_covariance(moves.to_numpy(), spec.estimator)
    report: dict = {}
    if spec.amplify is not None and spec.amplify.moves_factors:
        cov, report = stressed_covariance(cov, model_f, spec.amplify, family, [f for f in universe if f not in model_f])
    dof = None
    if spec.distribution == "student_t":
        dof = spec.dof if spec.dof is not None else fit_t_dof(moves.to_numpy() - moves.to_numpy().mean(0), cov)
    cov_h = cov * spec.horizon_days  # square-root-of-time: covariance of the h-day move
    pos = {f: i for i, f in enumerate(model_f)}
    F = len(factors)
    names, shocks, covered, filled, info = [], [], [], [], []
    draws_all = []
    for j, st in enumerate(spec.stresses):
        core = cores[st.name]
        in_model = [f for f in core if f in pos]
        out_model = [f for f in core if f not in pos]
        x = np.zeros(len(universe))
        cov_mask = np.zeros(len(universe), bool)
        fill_mask = np.zeros(len(universe), bool)
        ui = {f: i for i, f in enumerate(universe)}
        res = None
        if in_model:
            ci = np.array([pos[f] for f in in_model])
            res = conditional_stress(cov_h, ci, np.array([core[f] for f in in_model]), dof)
            other = [f for f in model_f if f not in core]
            for f, v in zip(other, res.mean):
                x[ui[f]] = v
                cov_mask[ui[f]] = True
                fill_mask[ui[f]] = True
        for f, v in core.items():
            x[ui[f]] = v
            cov_mask[ui[f]] = True
        row = dict(scenario=st.name, family=family, kind="predictive", days=spec.horizon_days,
                   description="conditional mean given " + ", ".join(f"{f} {st.shocks[f]}" for f in core),
                   source=f"{details['method']} covariance, {moves.index[0].date()}..{moves.index[-1].date()}",
                   distribution=spec.distribution, dof=dof, core=",".join(core),
                   mahalanobis=None if res is None else res.mahalanobis,
                   tail_prob=None if res is None else res.tail_prob,
                   not_in_model=",".join(out_model),
                   uncovered=",".join(f for f in factors if not cov_mask[ui[f]]),
                   **report)
        names.append(st.name)
        shocks.append(x[:F])
        covered.append(cov_mask[:F])
        filled.append(fill_mask[:F])
        info.append(row)
        if spec.n_draws and res is not None and len(res.mean):
            other_idx = np.array([ui[f] for f in model_f if f not in core])
            L = _chol_psd(res.scale)
            parts = []
            for b in range(n_blocks(spec.n_draws)):
                rng = np.random.default_rng(block_seed(block_seed(seed, j), b))
                z = rng.standard_normal((BLOCK_SIZE, len(res.mean)))
                w = np.ones(BLOCK_SIZE) if res.dof is None else np.sqrt(res.dof / rng.chisquare(res.dof, BLOCK_SIZE))
                parts.append(res.mean + (z @ L.T) * w[:, None])
            d = np.concatenate(parts)[: spec.n_draws]
            full = np.repeat(x[None, :], spec.n_draws, axis=0)
            full[:, other_idx] = d
            draws_all.append((st.name, full[:, :F], cov_mask[:F], fill_mask[:F], row))
    for name, d, cm, fm, row in draws_all:
        n = len(d)
        dn = [f"{name}:{i}" for i in range(n)]
        names += dn
        shocks += list(d)
        covered += [cm] * n
        filled += [fm] * n
        info += [dict(row, scenario=s, description=f"conditional draw around {name}") for s in dn]
    S = len(names)
    sh = np.array(shocks).reshape(S, F)
    # the stress unfolds linearly over the horizon: day t of the path is t / H of the shock
    ramp = np.arange(1, spec.horizon_days + 1, dtype=float) / spec.horizon_days
    paths = sh[:, None, :] * ramp[None, :, None]
    return ScenarioSet(tuple(names), tuple(factors), sh, np.full(S, 1.0 / S),
                       (family,) * S, np.array(covered).reshape(S, F), paths, pd.DataFrame(info),
                       np.array(filled).reshape(S, F))


def _chol_psd(a: np.ndarray) -> np.ndarray:
    """A factor ``L`` with ``L L' = a`` for a PSD ``a`` (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return v * np.sqrt(np.clip(w, 0.0, None))
