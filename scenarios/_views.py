"""Views by entropy pooling: scenario probabilities that meet views on factors or on the book's P&L.

A random family's ``S`` scenarios start with prior probabilities ``p`` (usually ``1 / S``).  Views on
the means, volatilities, correlations, quantiles and CVaR of the factor moves or of the book's P&L
turn them into the posterior ``q`` that meets every view and is closest to the prior in relative
entropy (Kullback-Leibler divergence) [M08]::

    minimise    sum_s q_s log(q_s / p_s)
    subject to  sum_s q_s = 1,   A q = b,   G q <= h,   q >= 0.

The scenarios themselves do not change: every downstream figure (VaR, CVaR, drawdowns,
re-optimisation) reads them with the weights ``q``.  A view can only reweight what the scenarios
contain: a target beyond the scenarios' range (a mean below their worst move, a CVaR beyond the worst
loss) is an error, never a silently unmet view.

The problem is solved through its dual [C75; BV04, s.5.2.3]: with the constraints centred on their
targets, ``C q = 0`` (equalities) and ``D q <= 0`` (inequalities), the posterior is the exponential
tilt ``q(x) ~ p exp(-x'[C; D])`` of the multipliers ``x`` that minimise the smooth convex function
``log sum_s p_s exp(-x'[C; D]_s)`` over ``x_D >= 0`` (gradient ``-[C; D] q``, Hessian the covariance of
the constraint rows under ``q``).  It is minimised by Newton steps on the exact Hessian, the bounds
handled by an active set; where they stall, L-BFGS-B (analytic gradient, bounds on the inequality
multipliers) takes over and Newton steps polish its result to machine precision.  The returned posterior is checked against every constraint; when a check fails a linear
programme tells contradictory views (no probabilities meet them together, named as a smallest such
set) from views that only the edge of the scenarios' range meets (some scenarios would need zero
probability).

Views (batch-file syntax)
-------------------------
Each entry of a family's ``views`` list names what the view is on (``of``), sets exactly one statistic
to a target, and may give an operator ``op`` (``"=="``, the default, ``">="`` or ``"<="``, quoted in
YAML)::

    views:
      - {of: IR.USD.10Y, mean: "+100bp"}                  # E[move] = 100bp
      - {of: EQ.SPX, mean: "-5%", op: "<="}               # E[log-return] <= log(1 - 5%)
      - {of: EQ.SPX, vol: x1.5}                           # std of the move 1.5 times the prior's
      - {of: EQ.SPX, vol: "4%"}                           # std of the log-return 0.04
      - {of: [EQ.SPX, IR.USD.10Y], corr: 0.5}             # correlation of the two moves
      - {of: EQ.SPX, quantile: "-10%", prob: 0.05}        # P(move <= log(0.90)) = 5%
      - {of: EQ.SPX, cvar: "-12%", confidence: 0.95}      # mean move in the lowest 5% = log(0.88)
      - {of: IR.USD.10Y, cvar: "+60bp", confidence: 0.95, tail: upper}  # mean of the highest 5%
      - {of: pnl, mean: -1m}                              # E[P&L] = -1,000,000
      - {of: pnl, var: "2%", confidence: 0.99}            # VaR99 = 2% of NAV (a loss, positive)
      - {of: pnl, cvar: x1.5, confidence: 0.99}           # CVaR99 1.5 times the prior's

``of`` is a factor of the book, ``pnl`` (the book's P&L, supplied by the caller), or a list of two of
them for ``corr``.  The statistics:

==============  ==============================================================  ==================
statistic       meaning (``X`` the factor's move, or the P&L)                   extra keys
==============  ==============================================================  ==================
``mean``        ``E[X]``
``vol``         standard deviation of ``X`` over the scenarios' horizon (not
                annualised)
``corr``        correlation of the two subjects' ``X``
``quantile``    ``P(X <= value) = prob``: ``value`` is the ``prob``-quantile    ``prob``
``var``         P&L only: ``P(P&L <= -value) = 1 - confidence``, the VaR        ``confidence``
                ``value`` a loss, positive
``cvar``        a factor: the mean of ``X`` over its lowest ``1 - confidence``  ``confidence``,
                of probability (``tail: upper``: its highest), a signed move;   ``tail`` (factor)
                the P&L: the mean loss beyond the VaR (Rockafellar-Uryasev
                [RU02]), a loss, positive
==============  ==============================================================  ==================

Units of the targets:

* factor moves (``mean``, ``quantile``, ``cvar`` of a factor) are shocks in the
  :func:`~stressgrid.scenarios.parse_shock` units: a number is in the factor's convention (a log-return
  for ``EQ``/``FX``/``CMD`` prices, an absolute decimal change otherwise); ``"-10%"`` on a price factor
  is a simple return, converted to ``log(1 - 0.10)``, so the view is on the log-return (``mean:
  "-5%"`` sets the mean log-return to ``log 0.95``, not the mean simple return to -5%); ``"+100bp"`` is
  ``0.01`` and ``"+2%"`` is ``0.02`` on a rate, spread, vol or basis factor;
* a ``vol`` is a scale, never converted as a return: ``"4%"`` and ``0.04`` are both 0.04 (a log-return
  standard deviation for a price factor), ``"80bp"`` is 0.008;
* P&L amounts are in the base currency: a number, ``"12.5m"``, ``"800k"``, ``"1bn"``, or ``"2%"`` of the
  NAV (the caller passes ``nav``); ``var`` and ``cvar`` are losses, written positive;
* ``corr`` is a number in [-1, 1];
* ``"xm"`` (``x1.5``, ``x0.8``) is ``m`` times the statistic's value under the prior (for ``quantile``
  the prior's ``prob``-quantile, for ``var``/``cvar`` its VaR/CVaR at the same level).

Operators compare the statistic as written: ``{of: EQ.SPX, quantile: "-10%", prob: 0.05, op: "<="}``
says the 5% quantile is at most -10%, i.e. ``P(X <= log 0.9) >= 5%``; ``{of: pnl, cvar: 5m,
confidence: 0.99, op: ">="}`` says the CVaR99 loss is at least 5m.

Nonlinear views, nested stages
------------------------------
Means and quantiles are linear in ``q``; a quantile view fixes the probability below its value (an
indicator; with discrete scenarios the quantile itself is then any point between that value's
neighbouring scenarios, so the report shows the probability).  Variances and correlations are made
linear by fixing the moments they depend on, in nested stages, each one re-projecting from the
original prior with every earlier (linearised) constraint carried forward [M08, s.4; skfolio]:

1. means, quantiles, VaR and CVaR;
2. variances: ``sum_s q_s (x_s - m)^2 = vol^2`` with ``m`` the stage-1 posterior mean, and the mean held
   at ``m`` (unless a ``==`` mean view already fixes it);
3. correlations: ``sum_s q_s (x_s - m_i)(y_s - m_j) = rho sqrt(v_i v_j)`` with ``m``, ``v`` the stage-2
   posterior means and variances, both held (unless fixed already).

A CVaR view is not linear in ``q``.  For a loss ``L`` at tail probability ``alpha = 1 - confidence``
the Rockafellar-Uryasev function ``F_q(eta) = eta + E_q[(L - eta)^+] / alpha`` is at least the CVaR for
every ``eta``, with equality at the VaR [RU02].  Two cases, by the side the posterior without the view
misses it on:

* a heavier tail (``CVaR >= c``, the usual stress) is the convex set ``F_q(eta) >= c`` for every ``eta``,
  and ``F_q`` is least at a scenario's loss, so it is a finite set of linear inequalities; they are
  added as cutting planes at the VaR of each successive posterior (Kelley's method) until the
  posterior's CVaR meets the view.  The solution is the exact minimiser; it is the posterior skfolio's
  ``EntropyPooling`` finds by its root search;
* a lighter tail (``CVaR <= c``: some ``eta`` with ``F_q(eta) <= c``) is not convex; as skfolio does,
  ``F_q(eta) = c`` is imposed for a trial ``eta`` and ``eta`` is searched until it is the VaR of the
  posterior it produces, ``P_q(L > eta) = alpha`` (a one-dimensional root search, improving on Meucci,
  Ardia and Keel's search over tail sizes [MAK11]).  Here the root is first bracketed between two
  consecutive scenario losses (bisection over the sorted losses), then found by Brent's method, or it
  is the loss where the tail probability jumps across ``alpha``: either way ``eta`` is a VaR of the
  posterior and the view holds to solver precision.  Several such views are solved one after another
  (Gauss-Seidel) until their ``eta`` stop moving.

A ``==`` view takes the side its posterior misses it on (and switches, at most twice, if the other views
push it across); a ``>=`` or ``<=`` view on the CVaR is imposed only when the posterior without it
violates it (the most violated first).  CVaR views are solved again in every stage.

Figures
-------
The effective number of scenarios is ``exp(-sum_s q_s log q_s)`` [M12]: ``S`` for equal weights, 1 for
a single scenario.  The relative entropy of the posterior to the prior is ``sum_s q_s log(q_s / p_s)``.
The report of :func:`apply_views` has one row per view: the view as written, the statistic compared,
its target, the prior and posterior values and whether the view holds, i.e. ``|posterior - target| <=
1e-6 max(|target|, scale)`` (``scale`` the prior standard deviation of the subject for a mean or a CVaR,
1 for a correlation, else 0: a probability or a vol is compared relative to itself; an inequality may
be slack).

References
----------
.. [M08] A. Meucci, "Fully Flexible Views: Theory and Practice", Risk 21(10) (2008) 97-102.
.. [MAK11] A. Meucci, D. Ardia and S. Keel, "Fully Flexible Extreme Views", Journal of Risk 14(2)
   (2011) 39-49.
.. [M12] A. Meucci, "Effective Number of Scenarios in Fully Flexible Probabilities", GARP Risk
   Professional (February 2012) 32-35.
.. [C75] I. Csiszar, "I-divergence geometry of probability distributions and minimization problems",
   The Annals of Probability 3(1) (1975) 146-158.
.. [BV04] S. Boyd and L. Vandenberghe, "Convex Optimization", Cambridge (2004), s.5.2.3 (the dual of
   entropy maximisation).
.. [RU02] R. T. Rockafellar and S. Uryasev, "Conditional value-at-risk for general loss distributions",
   Journal of Banking and Finance 26 (2002) 1443-1471.
.. [skfolio] H. Delatte et al., skfolio, ``skfolio.prior.EntropyPooling`` (nested stages, CVaR views by
   a root search on the VaR level).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy import optimize, special

from stressgrid.core import ConfigError, factor_spec
from stressgrid.core.measures import running_sum

from ._common import parse_amount, parse_shock

__all__ = [
    "PNL",
    "STATISTICS",
    "VIEW_TOL",
    "View",
    "apply_views",
    "effective_scenarios",
    "entropy_pooling",
    "parse_views",
    "relative_entropy",
]

#: the subject name of the book's P&L in a view's ``of``
PNL = "pnl"
#: the statistics a view can set, one per view
STATISTICS = ("mean", "vol", "corr", "quantile", "var", "cvar")
#: a view holds when ``|posterior - target| <= VIEW_TOL * max(|target|, scale)``
VIEW_TOL = 1e-6
#: largest violation of a centred, scaled constraint (unit root-mean-square under the prior) that the
#: solver accepts
FEAS_TOL = 1e-9

_STAGE = {"mean": 1, "quantile": 1, "var": 1, "cvar": 1, "vol": 2, "corr": 3}
_NUM = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_MULT = re.compile(rf"^\s*[xX]\s*({_NUM})\s*$")
_SCALE = re.compile(rf"^\s*\+?({_NUM})\s*(%|bp)?\s*$")


# --------------------------------------------------------------------------------------------------
# batch-file models
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A parsed target: ``kind`` ``"abs"`` (``value`` in the statistic's units), ``"rel"`` (``value``
    times the prior's) or ``"nav"`` (``value`` times the NAV)."""

    kind: Literal["abs", "rel", "nav"]
    value: float


def _multiplier(value) -> _Target | None:
    m = _MULT.match(value) if isinstance(value, str) else None
    return _Target("rel", float(m.group(1))) if m else None


def _finite(value, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number")
    x = float(value)
    if not np.isfinite(x):
        raise ValueError(f"{what}: {value!r} is not finite")
    return x


def _parse_move(value, factor: str, what: str) -> _Target:
    """A factor move (``parse_shock`` units) or ``"xm"``."""
    rel = _multiplier(value)
    if rel is not None:
        return rel
    if isinstance(value, bool):
        raise ValueError(f"{what}: {value!r} is not a number")
    try:
        return _Target("abs", parse_shock(value, factor))
    except ValueError as e:
        raise ValueError(f"{what}: {e}; or 'xm', m times the prior's value (e.g. 'x1.5')") from None


def _parse_scale(value, what: str) -> _Target:
    """A standard deviation: a number, ``"N%"`` (N / 100), ``"Nbp"`` (N / 10,000) or ``"xm"``."""
    rel = _multiplier(value)
    if rel is not None:
        return rel
    if isinstance(value, str):
        m = _SCALE.match(value)
        if not m:
            raise ValueError(f"{what}: {value!r} is not a positive number, 'N%', 'Nbp' or 'xm' (e.g. '4%', "
                             "'80bp', 'x1.5')")
        x = float(m.group(1)) * {None: 1.0, "%": 0.01, "bp": 1e-4}[m.group(2)]
    else:
        x = _finite(value, what)
    if x <= 0:
        raise ValueError(f"{what}: {value!r} must be positive")
    return _Target("abs", x)


def _parse_amount(value, what: str, positive: bool) -> _Target:
    """A P&L amount: a number, ``"12.5m"``, ``"800k"``, ``"1bn"``, ``"2%"`` of NAV, or ``"xm"``."""
    rel = _multiplier(value)
    if rel is not None:
        return rel
    try:
        parsed = parse_amount(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if parsed is None:
        raise ValueError(f"{what}: {value!r} is not an amount (-1000000, '-1m', '800k', '1bn'), a share of NAV "
                         "('2%') or 'xm'")
    x, kind = parsed[0], ("nav" if parsed[1] else "abs")
    if positive and x <= 0:
        raise ValueError(f"{what}: {value!r} must be positive (a loss is written as a positive number)")
    return _Target(kind, x)


def _parse_corr(value, what: str) -> _Target:
    rel = _multiplier(value)
    if rel is not None:
        return rel
    try:
        x = _finite(value, what)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a number in [-1, 1] or 'xm'") from None
    if not -1.0 <= x <= 1.0:
        raise ValueError(f"{what}: {value!r} is not in [-1, 1]")
    return _Target("abs", x)


def _fmt(value) -> str:
    return value if isinstance(value, str) else format(float(value), ".10g")


class View(BaseModel):
    """One view of a family's ``views`` list (the module docstring gives the syntax and units).

    Batch-file keys: ``of`` (a factor, ``pnl``, or a list of two for ``corr``), exactly one statistic
    (``mean``, ``vol``, ``corr``, ``quantile``, ``var``, ``cvar``) holding the target, ``prob``
    (``quantile``), ``confidence`` (``var``, ``cvar``), ``tail`` (``lower``, the default, or ``upper``;
    a factor's ``cvar`` only) and ``op`` (``"=="``, ``">="``, ``"<="``; default ``"=="``).
    """

    model_config = ConfigDict(extra="forbid")
    of: Union[str, list[str]]
    mean: Optional[Union[float, str]] = None
    vol: Optional[Union[float, str]] = None
    corr: Optional[Union[float, str]] = None
    quantile: Optional[Union[float, str]] = None
    var: Optional[Union[float, str]] = None
    cvar: Optional[Union[float, str]] = None
    prob: Optional[float] = Field(default=None, gt=0.0, lt=1.0)
    confidence: Optional[float] = Field(default=None, gt=0.0, lt=1.0)
    tail: Optional[Literal["lower", "upper"]] = None
    op: Literal["==", ">=", "<="] = "=="

    @field_validator(*STATISTICS, "prob", "confidence", mode="before")
    @classmethod
    def _not_bool(cls, v):
        if isinstance(v, bool):
            raise ValueError(f"{v!r} is not a number")
        return v

    @model_validator(mode="after")
    def _check(self) -> "View":
        given = [s for s in STATISTICS if getattr(self, s) is not None]
        if len(given) != 1:
            raise ValueError(f"a view sets exactly one of {', '.join(STATISTICS)}; this one sets "
                             f"{', '.join(given) if given else 'none'}")
        stat = given[0]
        if isinstance(self.of, list):
            if stat != "corr":
                raise ValueError(f"'of' is a list only for a 'corr' view; a {stat} view is on one factor or "
                                 f"'{PNL}', got {self.of!r}")
            if len(self.of) != 2 or self.of[0] == self.of[1]:
                raise ValueError(f"'of' of a corr view names two different factors (or '{PNL}'), got {self.of!r}")
        elif stat == "corr":
            raise ValueError(f"'of' of a corr view is a list of two factors, e.g. [EQ.SPX, IR.USD.10Y]; "
                             f"got {self.of!r}")
        for name in self.subjects:
            if name != PNL:
                try:
                    factor_spec(name)
                except ConfigError as e:
                    raise ValueError(f"'of': {e}; or '{PNL}' for the book's P&L") from None
        on_pnl = self.subjects == (PNL,)
        if stat == "var" and not on_pnl:
            raise ValueError(f"'var' is a view on the book's P&L (of: {PNL}); on a factor write "
                             "{of: ..., quantile: VALUE, prob: P}")
        if (stat == "quantile") != (self.prob is not None):
            raise ValueError("'prob' is required by a quantile view and only by it" if stat == "quantile"
                             else f"'prob' = {self.prob!r} is only for a quantile view; this is a {stat} view")
        if (stat in ("var", "cvar")) != (self.confidence is not None):
            raise ValueError(f"'confidence' is required by a {stat} view (e.g. 0.99)" if stat in ("var", "cvar")
                             else f"'confidence' = {self.confidence!r} is only for var and cvar views")
        if self.tail is not None and (stat != "cvar" or on_pnl):
            raise ValueError(f"'tail' is only for the cvar of a factor (the P&L's var and cvar are losses, its "
                             f"lower tail); this is a {stat} view of {self.of!r}")
        self.parsed_target()
        return self

    @property
    def statistic(self) -> str:
        """The statistic the view sets (one of :data:`STATISTICS`)."""
        return next(s for s in STATISTICS if getattr(self, s) is not None)

    @property
    def subjects(self) -> tuple[str, ...]:
        """What the view is on: ``(factor,)``, ``("pnl",)`` or two names for ``corr``."""
        return tuple(self.of) if isinstance(self.of, list) else (self.of,)

    @property
    def raw(self):
        """The target as written."""
        return getattr(self, self.statistic)

    def parsed_target(self) -> _Target:
        """The target in the statistic's units (factor moves in the factor's convention, P&L in the base
        currency), as a multiple of the prior's value, or as a share of the NAV.  Raises ``ValueError``."""
        stat, raw = self.statistic, self.raw
        what = f"'{stat}' of {self.of!r}"
        if stat == "corr":
            return _parse_corr(raw, what)
        if stat == "vol":
            if self.subjects == (PNL,):
                return _parse_amount(raw, what, positive=True)
            return _parse_scale(raw, what)
        if self.subjects == (PNL,):
            return _parse_amount(raw, what, positive=stat in ("var", "cvar"))
        return _parse_move(raw, self.of, what)

    def text(self) -> str:
        """The view in one line, with its target as written: ``mean(EQ.SPX) <= -5%``."""
        args = list(self.subjects)
        if self.prob is not None:
            args.append(f"prob={_fmt(self.prob)}")
        if self.confidence is not None:
            args.append(f"confidence={_fmt(self.confidence)}")
        if self.tail is not None:
            args.append(f"tail={self.tail}")
        return f"{self.statistic}({', '.join(args)}) {self.op} {_fmt(self.raw)}"


def parse_views(raw: Sequence[View | Mapping], where: str = "") -> list[View]:
    """Validate a ``views`` list (entries already :class:`View` pass through).

    Raises
    ------
    ConfigError
        Naming the entry (``views[i]``), its field and the bad value.
    """
    out = []
    for i, v in enumerate(raw):
        if isinstance(v, View):
            out.append(v)
            continue
        try:
            out.append(View.model_validate(v))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{_prefix(where)}field 'views[{i}]{'.' + loc if loc else ''}': {msg} "
                              f"(given {err.get('input')!r})") from None
    return out


def _prefix(where: str) -> str:
    return f"{where}, " if where else ""


# --------------------------------------------------------------------------------------------------
# the entropy-pooling solver
# --------------------------------------------------------------------------------------------------


class _Infeasible(Exception):
    """No posterior meets the constraints tagged ``tags`` together (``edge``: only one that gives zero
    probability to some scenarios)."""

    def __init__(self, tags: Sequence[object], edge: bool):
        super().__init__(f"{'edge' if edge else 'infeasible'}: {list(tags)}")
        self.tags = list(tags)
        self.edge = edge


class _Diverged(Exception):
    pass


@dataclass
class _Row:
    """One constraint ``sum_s q_s a_s (== or <=) b`` on the prior's support; ``tag`` says where it comes
    from (a view's index, or a held moment)."""

    a: np.ndarray
    b: float
    kind: Literal["eq", "le"]
    tag: object = None


def _dual(p: np.ndarray, C: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(f, grad, q)`` of the dual ``f(x) = log sum_s p_s exp(-x'C_s)``: ``grad = -C q``, ``q`` the tilted
    prior (computed around the largest exponent, so that ``f`` is accurate to a few ulps of O(1))."""
    a = -(x @ C)
    amax = a.max()
    w = p * np.exp(a - amax)
    total = w.sum()
    q = w / total
    return float(amax + np.log(total)), -(C @ q), q


def _kkt(g: np.ndarray, x: np.ndarray, is_le: np.ndarray) -> float:
    """Largest violation of the dual's optimality conditions (``x_le >= 0``)."""
    r = np.where(is_le & (x <= 0.0), np.minimum(g, 0.0), g)
    return float(np.abs(r).max()) if len(r) else 0.0


def _newton(p, C, is_le, x, floor: float = -np.inf, iters: int = 100) -> np.ndarray:
    """Newton steps on the dual from ``x`` over the multipliers free of their bound ``x_le >= 0`` (those of
    the equalities, the positive ones, and those whose gradient pushes them up), with the exact Hessian
    ``Cov_q(C)``, each step stopped at the first bound it meets and backtracked to sufficient decrease
    (a feasible-direction active-set method; J. Nocedal and S. J. Wright, "Numerical Optimization", 2nd
    ed., Springer (2006), s.16.5).  Raises :class:`_Diverged` when the dual falls below ``floor``."""
    f, g, q = _dual(p, C, x)
    r = _kkt(g, x, is_le)
    for _ in range(iters):
        if r <= 1e-15:
            break
        free = ~is_le | (x > 0.0) | (g < 0.0)
        while free.any():
            Cf = C[free]
            cq = Cf @ q
            H = (Cf * q) @ Cf.T - np.outer(cq, cq)
            d = np.linalg.lstsq(H, -g[free], rcond=1e-14)[0]
            stuck = np.zeros(len(x), bool)
            stuck[free] = is_le[free] & (x[free] <= 0.0) & (d < 0.0)
            if not stuck.any():
                break
            free &= ~stuck
        if not free.any():
            break
        slope = float(g[free] @ d)
        if slope >= 0.0:
            break
        down = is_le[free] & (d < 0.0)
        t_max = min(1.0, float(np.min(x[free][down] / -d[down]))) if down.any() else 1.0
        # near the optimum the decrease of f is below its rounding: a step is then taken when it reduces
        # the optimality residual, and the search gives up after a few halvings
        t, accepted = t_max, False
        t_min = 1e-12 * t_max if r > 1e-8 else t_max / 8
        while t > t_min:
            xn = x.copy()
            xn[free] += t * d
            xn[is_le] = np.maximum(xn[is_le], 0.0)
            fn, gn, qn = _dual(p, C, xn)
            if fn < floor:
                raise _Diverged
            rn = _kkt(gn, xn, is_le)
            if fn <= f + 1e-4 * t * slope or (fn <= f + 1e-14 * max(1.0, abs(f)) and rn < r):
                x, f, g, q, r, accepted = xn, fn, gn, qn, rn, True
                break
            t *= 0.5
        if not accepted:
            break
    return x


def _scaled(rows: Sequence[_Row], p: np.ndarray):
    """The rows centred on their targets and scaled to unit root-mean-square under ``p``:
    ``(C, is_le, keep)`` with ``keep`` the indices of the rows kept (a row that is 0 on every scenario
    always holds and is dropped).  Raises :class:`_Infeasible` for a row no probabilities can meet alone,
    or meet only at the edge of the support (``_Infeasible.tags`` holds the rows' tags)."""
    C, is_le, keep = [], [], []
    for i, r in enumerate(rows):
        c = np.asarray(r.a, float) - r.b
        s = float(np.sqrt(p @ (c * c)))
        if not np.isfinite(s):
            raise ValueError(f"constraint {r.tag!r}: its values are not finite")
        if s == 0.0:
            continue
        c = c / s
        lo, hi = float(c.min()), float(c.max())
        if r.kind == "le":
            if hi <= 0.0:
                continue
            if lo > 0.0:
                raise _Infeasible([r.tag], edge=False)
            if lo == 0.0:
                raise _Infeasible([r.tag], edge=True)
        else:
            if lo > 0.0 or hi < 0.0:
                raise _Infeasible([r.tag], edge=False)
            if lo == 0.0 or hi == 0.0:
                raise _Infeasible([r.tag], edge=True)
        C.append(c)
        is_le.append(r.kind == "le")
        keep.append(i)
    if not C:
        return np.zeros((0, len(p))), np.zeros(0, bool), keep
    order = np.argsort(is_le, kind="stable")
    return np.asarray(C)[order], np.asarray(is_le)[order], [keep[j] for j in order]


def _lp_feasible(C: np.ndarray, is_le: np.ndarray, S: int) -> bool:
    """Whether some probabilities meet ``C q (== or <=) 0`` (a linear programme, HiGHS)."""
    eq = C[~is_le]
    res = optimize.linprog(
        np.zeros(S),
        A_ub=C[is_le] if is_le.any() else None,
        b_ub=np.zeros(int(is_le.sum())) if is_le.any() else None,
        A_eq=np.vstack([eq, np.ones((1, S))]),
        b_eq=np.r_[np.zeros(len(eq)), 1.0],
        bounds=(0, None),
        method="highs",
    )
    return res.status != 2


def _smallest_infeasible(C: np.ndarray, is_le: np.ndarray, S: int) -> list[int]:
    """Indices of rows that no probabilities meet together, a minimal such set: without any one of them
    the others are feasible (the deletion filter of J. W. Chinneck and E. W. Dravnieks, "Locating minimal
    infeasible constraint sets in linear programs", ORSA Journal on Computing 3 (1991) 157-168)."""
    keep = np.ones(len(C), bool)
    for i in range(len(C)):
        keep[i] = False
        if _lp_feasible(C[keep], is_le[keep], S):
            keep[i] = True
    return list(np.flatnonzero(keep))


def _solve(p: np.ndarray, rows: Sequence[_Row], x0: np.ndarray | None = None):
    """Posterior ``q`` on the prior's support ``p > 0`` (all of ``p``'s entries positive here) that meets
    ``rows`` with the least relative entropy to ``p``: ``(q, x)`` with ``x`` the dual multipliers of the
    rows kept (a warm start for the next call with the same rows).

    Raises :class:`_Infeasible` with the tags of the rows involved.
    """
    C, is_le, keep = _scaled(rows, p)
    S = len(p)
    if not keep:
        return p.copy(), np.zeros(0)
    # weak duality: f(x) >= -KL(q || p) >= log(min p) for every x when a posterior exists, so a value
    # below it proves that none does
    floor = float(np.log(p.min())) - 1.0

    def fun(x):
        f, g, _ = _dual(p, C, x)
        if f < floor:
            raise _Diverged
        return f, g

    if x0 is None or len(x0) != len(C):
        x = np.zeros(len(C))
    else:
        x = np.where(is_le, np.maximum(x0, 0.0), x0)
    diverged = False
    try:
        # Newton steps converge in a few iterations from a good start; L-BFGS-B (analytic gradient, bounds
        # x_le >= 0) takes over when they stall, then Newton polishes
        x = _newton(p, C, is_le, x, floor)
        _, g, _ = _dual(p, C, x)
        if _kkt(g, x, is_le) > 1e-12:
            res = optimize.minimize(fun, x, jac=True, method="L-BFGS-B",
                                    bounds=[(0.0, None) if le else (None, None) for le in is_le],
                                    options={"maxiter": 5000, "maxfun": 10000, "ftol": 1e-15, "gtol": 1e-13,
                                             "maxcor": 20})
            x = _newton(p, C, is_le, np.where(is_le, np.maximum(res.x, 0.0), res.x), floor)
    except _Diverged:
        diverged = True
    if not diverged:
        _, _, q = _dual(p, C, x)
        viol = C @ q
        bad = np.where(is_le, viol > FEAS_TOL, np.abs(viol) > FEAS_TOL)
        if not bad.any():
            return q, x
    if not _lp_feasible(C, is_le, S):
        raise _Infeasible([rows[keep[j]].tag for j in _smallest_infeasible(C, is_le, S)], edge=False)
    # feasible, but only with zero probability on some scenarios: name the rows left unmet
    unmet = keep if diverged else [keep[j] for j in np.flatnonzero(bad)]
    raise _Infeasible([rows[i].tag for i in unmet], edge=True)


def entropy_pooling(
    prior: np.ndarray,
    A: np.ndarray | None = None,
    b: np.ndarray | None = None,
    G: np.ndarray | None = None,
    h: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    where: str = "",
) -> np.ndarray:
    """Posterior probabilities closest to ``prior`` in relative entropy under linear constraints [M08].

    Parameters
    ----------
    prior : ``[S]`` prior probabilities (non-negative, summing to 1)
    A, b : ``[k, S]``, ``[k]`` equality constraints ``A q = b`` (None for none)
    G, h : ``[m, S]``, ``[m]`` inequality constraints ``G q <= h`` (None for none)
    labels : ``[k + m]`` names of the constraints for error messages (equalities first; default
        ``"equality i"``, ``"inequality j"``)
    where : what the constraints belong to, the start of error messages

    Returns
    -------
    q : ``[S]``
        The minimiser of ``sum_s q_s log(q_s / p_s)`` over ``q >= 0``, ``sum_s q_s = 1``, ``A q = b``,
        ``G q <= h``: ``q = p`` when there are no constraints or the prior meets them; 0 where ``p`` is 0.
        Every constraint holds to ``FEAS_TOL`` times its root-mean-square under the prior (centred on
        its target).

    Raises
    ------
    ConfigError
        When no posterior meets the constraints (naming a smallest contradictory set, or the one
        constraint whose target lies outside what the scenarios reach), or when only the edge of the
        scenarios' range meets them (some scenarios would need probability 0).

    Notes
    -----
    The dual (module docstring; [C75], [BV04, s.5.2.3]) is minimised by Newton steps with an active set
    for the bounds ``x >= 0`` on the inequality multipliers, L-BFGS-B (analytic gradient, the same
    bounds) taking over where they stall.
    """
    p = _check_prior(prior)
    S = len(p)
    A = np.zeros((0, S)) if A is None else np.atleast_2d(np.asarray(A, float))
    G = np.zeros((0, S)) if G is None else np.atleast_2d(np.asarray(G, float))
    b = np.zeros(0) if b is None else np.atleast_1d(np.asarray(b, float))
    h = np.zeros(0) if h is None else np.atleast_1d(np.asarray(h, float))
    if A.shape[1:] != (S,) or len(b) != len(A) or G.shape[1:] != (S,) or len(h) != len(G):
        raise ValueError(f"entropy_pooling: A {A.shape}, b {b.shape}, G {G.shape}, h {h.shape} do not fit a "
                         f"prior of {S} scenarios")
    names = list(labels) if labels is not None else (
        [f"equality {i}" for i in range(len(A))] + [f"inequality {j}" for j in range(len(G))])
    if len(names) != len(A) + len(G):
        raise ValueError(f"entropy_pooling: {len(names)} labels for {len(A) + len(G)} constraints")
    sup = p > 0
    rows = [_Row(a[sup], float(v), "eq", i) for i, (a, v) in enumerate(zip(A, b))]
    rows += [_Row(g[sup], float(v), "le", len(A) + j) for j, (g, v) in enumerate(zip(G, h))]
    try:
        qs, _ = _solve(p[sup], rows)
    except _Infeasible as e:
        involved = [names[t] for t in e.tags]
        raise ConfigError(f"{_prefix(where)}{_infeasible_text(involved, e.edge)}") from None
    q = np.zeros(S)
    q[sup] = qs
    return q


def _infeasible_text(involved: Sequence[str], edge: bool) -> str:
    if edge:
        return (f"{' and '.join(involved)}: met only by giving zero probability to some scenarios (a target at "
                "the edge of what the scenarios reach); soften the view or add more extreme scenarios")
    if len(involved) == 1:
        return (f"{involved[0]}: no probabilities on the scenarios meet it (its target lies beyond what the "
                "scenarios reach); soften the view or add more extreme scenarios")
    return (f"contradictory views {' and '.join(involved)}: no probabilities on the scenarios meet them "
            "together; relax or drop one")


def _check_prior(prior) -> np.ndarray:
    p = np.asarray(prior, float)
    if p.ndim != 1 or len(p) == 0 or not np.isfinite(p).all() or (p < 0).any() or abs(p.sum() - 1.0) > 1e-9:
        raise ValueError("prior: expected [S] non-negative probabilities summing to 1")
    return p


def effective_scenarios(q: np.ndarray) -> float:
    """Effective number of scenarios ``exp(-sum_s q_s log q_s)`` [M12] (``0 log 0 = 0``): ``S`` for equal
    weights on ``S`` scenarios, 1 for a single one."""
    return float(np.exp(special.entr(np.asarray(q, float)).sum()))


def relative_entropy(q: np.ndarray, p: np.ndarray) -> float:
    """Relative entropy (Kullback-Leibler divergence) ``sum_s q_s log(q_s / p_s)`` of ``q`` to ``p``, in
    nats (``inf`` when ``q`` puts weight where ``p`` has none)."""
    return float(special.rel_entr(np.asarray(q, float), np.asarray(p, float)).sum())


# --------------------------------------------------------------------------------------------------
# statistics under probabilities
# --------------------------------------------------------------------------------------------------


def _mean(x, q) -> float:
    return float(q @ x)


def _std(x, q) -> float:
    m = q @ x
    return float(np.sqrt(max(q @ ((x - m) ** 2), 0.0)))


def _corr(x, y, q) -> float:
    dx, dy = x - q @ x, y - q @ y
    vx, vy = q @ (dx * dx), q @ (dy * dy)
    return float((q @ (dx * dy)) / np.sqrt(vx * vy)) if vx > 0 and vy > 0 else float("nan")


def _quantile(x, q, prob) -> float:
    """Lower ``prob``-quantile: the smallest scenario value ``v`` with ``P(X <= v) >= prob``."""
    order = np.argsort(x, kind="stable")
    cum = running_sum(q[order])
    i = int(np.searchsorted(cum, prob * (1 - 1e-12), side="left"))
    return float(x[order][min(i, len(x) - 1)])


def _cvar(loss, q, alpha) -> float:
    """CVaR of ``loss`` at tail probability ``alpha``: the mean of its highest ``alpha`` of probability,
    the boundary scenario counted in part (Rockafellar-Uryasev [RU02])."""
    order = np.argsort(-loss, kind="stable")
    w = q[order]
    before = np.cumsum(w) - w
    take = np.clip(alpha - before, 0.0, w)
    return float(take @ loss[order] / alpha)


# --------------------------------------------------------------------------------------------------
# views -> constraints
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Spec:
    """A view resolved on the scenarios: the target in the statistic's units."""

    index: int
    view: View
    stat: str
    cols: tuple[str, ...]
    op: str
    target: float
    level: float | None = None  # prob (quantile), confidence (var, cvar)
    upper: bool = False  # a factor's cvar on its upper tail
    prior: float = float("nan")
    scale: float = 0.0
    label: str = ""
    # CVaR views: the loss, its tail probability and the target CVaR of the loss, with ``op`` on it
    loss: np.ndarray | None = None
    alpha: float = 0.0
    c: float = 0.0
    c_op: str = "=="

    @property
    def name(self) -> str:
        return f"views[{self.index}]"


@dataclass(eq=False)
class _CVaRView:
    spec: _Spec
    eta: float = float("nan")


def _flip(op: str) -> str:
    return {"==": "==", ">=": "<=", "<=": ">="}[op]


def _holds(value: float, op: str, target: float, tol: float) -> bool:
    if not np.isfinite(value):
        return False
    if op == "==":
        return abs(value - target) <= tol
    return value >= target - tol if op == ">=" else value <= target + tol


def _threshold(spec: _Spec) -> tuple[float, float, str]:
    """``(v, prob, op)`` of the probability statement ``P(X <= v) op prob`` a quantile or var view makes."""
    if spec.stat == "quantile":
        # quantile <= v  <=>  P(X <= v) >= prob
        return spec.target, spec.level, _flip(spec.op)
    # var: VaR >= L  <=>  the (1 - c)-quantile of the P&L is <= -L  <=>  P(P&L <= -L) >= 1 - c
    return -spec.target, 1.0 - spec.level, spec.op


def _statistic(spec: _Spec, X: Mapping[str, np.ndarray], q: np.ndarray) -> float:
    """The value under ``q`` of what the view compares (a probability for quantile and var views)."""
    x = X[spec.cols[0]]
    if spec.stat == "mean":
        return _mean(x, q)
    if spec.stat == "vol":
        return _std(x, q)
    if spec.stat == "corr":
        return _corr(x, X[spec.cols[1]], q)
    if spec.stat in ("quantile", "var"):
        v, _, _ = _threshold(spec)
        return float(q[x <= v].sum())
    c = _cvar(spec.loss, q, spec.alpha)
    return c if spec.cols[0] == PNL or spec.upper else -c


def _describe(spec: _Spec) -> str:
    col = spec.cols[0]
    if spec.stat in ("quantile", "var"):
        v, _, _ = _threshold(spec)
        return f"P({col} <= {v:.10g})"
    if spec.stat == "corr":
        return f"corr({', '.join(spec.cols)})"
    if spec.stat == "cvar":
        if col == PNL:
            return f"CVaR{spec.level * 100:g}({col}), a loss"
        share = f"{(1 - spec.level) * 100:.6g}%"
        return f"mean({col}) over its {'highest' if spec.upper else 'lowest'} {share}"
    return f"{spec.stat}({col})"


def _resolve(views: Sequence[View], X: Mapping[str, np.ndarray], p: np.ndarray, nav: float | None,
             where: str) -> list[_Spec]:
    """The views' targets in the statistic's units, their prior values and their tolerance scales."""
    specs = []
    for i, v in enumerate(views):
        stat = v.statistic
        label = f"views[{i}] ({v.text()})"
        t = v.parsed_target()
        spec = _Spec(i, v, stat, v.subjects, v.op, float("nan"), level=v.prob if stat == "quantile" else v.confidence,
                     upper=v.tail == "upper", label=label)
        x = X[spec.cols[0]]
        if stat == "cvar":
            spec.alpha = 1.0 - v.confidence
            # the loss whose CVaR the view sets: the fall of a factor (its rise with tail: upper), the
            # P&L's loss
            spec.loss = x if spec.upper else -x
        # prior value of the statistic as written (the quantile itself for quantile and var views)
        if stat == "quantile":
            prior = _quantile(x, p, v.prob)
        elif stat == "var":
            prior = -_quantile(x, p, 1.0 - v.confidence)
        elif stat == "cvar":
            c = _cvar(spec.loss, p, spec.alpha)
            prior = c if spec.cols[0] == PNL or spec.upper else -c
        elif stat == "corr":
            prior = _corr(x, X[spec.cols[1]], p)
        elif stat == "vol":
            prior = _std(x, p)
        else:
            prior = _mean(x, p)
        if t.kind == "rel":
            target = t.value * prior
        elif t.kind == "nav":
            if nav is None or not np.isfinite(nav) or nav <= 0:
                raise ConfigError(f"{_prefix(where)}field 'views[{i}]' ({v.text()}): {_fmt(v.raw)} is a share of NAV, "
                                  "but the batch gives no 'nav'")
            target = t.value * nav
        else:
            target = t.value
        if not np.isfinite(target):
            raise ConfigError(f"{_prefix(where)}field 'views[{i}]' ({v.text()}): the prior's {stat} is not defined "
                              f"(got {prior!r}), so {_fmt(v.raw)} has no value")
        if stat == "corr" and not -1.0 <= target <= 1.0:
            raise ConfigError(f"{_prefix(where)}field 'views[{i}]' ({v.text()}): {_fmt(v.raw)} times the prior's "
                              f"correlation {prior:.6g} is {target:.6g}, outside [-1, 1]")
        spec.target = float(target)
        if stat == "cvar":
            # a factor's lower tail: the mean move over the tail <= t  <=>  the CVaR of the loss -X >= -t
            lower_factor = spec.cols[0] != PNL and not spec.upper
            spec.c = -spec.target if lower_factor else spec.target
            spec.c_op = _flip(v.op) if lower_factor else v.op
        spec.prior = float(prior)
        spec.scale = 1.0 if stat == "corr" else 0.0 if stat in ("quantile", "var", "vol") else _std(x, p)
        specs.append(spec)
    return specs


def _check_pairs(specs: Sequence[_Spec], where: str) -> None:
    """Views on one statistic of one subject whose targets exclude each other (``mean >= 2`` with ``mean
    <= 1``, or two different ``==``)."""
    groups: dict[tuple, list[_Spec]] = {}
    for s in specs:
        key = (s.stat, tuple(sorted(s.cols)) if s.stat == "corr" else s.cols, s.level, s.upper)
        groups.setdefault(key, []).append(s)
    for group in groups.values():
        if len(group) < 2:
            continue
        lows = [s for s in group if s.op in (">=", "==")]
        highs = [s for s in group if s.op in ("<=", "==")]
        if not lows or not highs:
            continue
        lo = max(lows, key=lambda s: s.target)
        hi = min(highs, key=lambda s: s.target)
        tol = 1e-12 * max(abs(lo.target), abs(hi.target), 1e-300)
        if lo.target > hi.target + tol:
            raise ConfigError(
                f"{_prefix(where)}field 'views': contradictory views {lo.label} and {hi.label}: the {lo.stat} of "
                f"{', '.join(lo.cols)} cannot be {lo.op} {lo.target:.10g} and {hi.op} {hi.target:.10g}; drop one")


def _check_support(spec: _Spec, X: Mapping[str, np.ndarray], where: str) -> None:
    """A view no reweighting of the scenarios can meet alone, with the range the scenarios allow."""
    x = X[spec.cols[0]]
    lo, hi = float(x.min()), float(x.max())
    head = f"{_prefix(where)}field '{spec.name}' ({spec.view.text()})"
    tail = ("; entropy pooling only reweights the scenarios, so a view must lie within them (soften it or add "
            "more extreme scenarios)")
    bad = None
    if spec.stat == "mean":
        if (spec.op == "==" and not lo < spec.target < hi) or (spec.op == ">=" and not spec.target < hi) or (
                spec.op == "<=" and not spec.target > lo):
            bad = (f"the target {spec.target:.10g} needs a mean that the scenarios of {spec.cols[0]}, in "
                   f"[{lo:.6g}, {hi:.6g}], cannot reach")
    elif spec.stat in ("quantile", "var"):
        v, _, op = _threshold(spec)
        below = int((x <= v).sum())
        if (below == 0 and op != "<=") or (below == len(x) and op != ">="):
            bad = (f"{'no' if below == 0 else 'every'} scenario of {spec.cols[0]} lies at or below {v:.10g} "
                   f"(the scenarios span [{lo:.6g}, {hi:.6g}])")
    elif spec.stat == "cvar":
        lmin, lmax = float(spec.loss.min()), float(spec.loss.max())
        c, op = spec.c, spec.c_op
        if (op == "==" and not lmin < c < lmax) or (op == ">=" and not c < lmax) or (op == "<=" and not c > lmin):
            bad = (f"the tail's mean {spec.target:.10g} is beyond the scenarios of {spec.cols[0]}, which span "
                   f"[{lo:.6g}, {hi:.6g}]")
    elif spec.stat == "vol" and lo == hi and spec.target > 0 and spec.op != "<=":
        bad = f"the scenarios of {spec.cols[0]} do not move (all {lo:.6g})"
    elif spec.stat == "corr":
        flat = [c for c in spec.cols if X[c].min() == X[c].max()]
        if flat:
            bad = f"the scenarios of {flat[0]} do not move, so its correlation is not defined"
    if bad:
        raise ConfigError(f"{head}: {bad}{tail}")


# --------------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------------


class _CVaRFailed(Exception):
    def __init__(self, specs: Sequence[_Spec], detail: str):
        super().__init__(detail)
        self.specs = list(specs)
        self.detail = detail


def _cvar_var(loss: np.ndarray, q: np.ndarray, alpha: float) -> float:
    """VaR of ``loss`` at tail probability ``alpha`` (its upper ``alpha``-quantile, where
    ``eta + E[(loss - eta)^+] / alpha`` is least)."""
    return -_quantile(-loss, q, alpha)


def _ru(cv: _CVaRView, eta: float) -> np.ndarray:
    """``eta + (L - eta)^+ / alpha`` per scenario: its mean under ``q`` is at least the CVaR, with equality
    at the VaR [RU02]."""
    s = cv.spec
    return np.maximum(s.loss - eta, 0.0) / s.alpha + eta


class _Stage:
    """One nested stage: linear rows and CVaR views, solved from the original prior.

    A CVaR view that asks for a heavier tail than the posterior without it has (``CVaR >= c``) is the
    convex set ``eta + E_q[(L - eta)^+] / alpha >= c`` for every ``eta``; the least ``eta`` is at a
    scenario's loss, so it is a finite set of linear inequalities, added as cutting planes at the VaR of
    each successive posterior (Kelley's method) until the posterior's CVaR meets the view.  A view that
    asks for a lighter tail (``CVaR <= c``: some ``eta`` with ``eta + E_q[(L - eta)^+] / alpha <= c``) is
    solved by the search for the ``eta`` that is the VaR of the posterior it produces (:meth:`_light`).
    """

    def __init__(self, p: np.ndarray, rows: list[_Row], cvars: list[_CVaRView]):
        self.p = p
        self.rows = rows
        self.cvars = cvars
        self.x: np.ndarray | None = None

    def _ep(self, extra: Sequence[_Row]) -> np.ndarray:
        q, self.x = _solve(self.p, self.rows + list(extra), self.x)
        return q

    def _miss(self, cv: _CVaRView, q: np.ndarray) -> float:
        """How far the loss CVaR under ``q`` is above (> 0) or below (< 0) the view's target, beyond the
        solver's tolerance (0 within it)."""
        s = cv.spec
        gap = _cvar(s.loss, q, s.alpha) - s.c
        tol = 1e-9 * max(abs(s.c), s.scale)
        return 0.0 if abs(gap) <= tol else gap

    def solve(self) -> np.ndarray:
        """The stage's posterior: each CVaR view that the posterior without it misses is made heavy
        (cutting planes) or light (VaR search) by the side it misses on, until all hold."""
        mode: dict[int, str] = {}
        switches: dict[int, int] = {}
        cuts: dict[int, list[float]] = {}
        q = self._ep([])
        for _ in range(4 * len(self.cvars) + 1):
            changed = False
            for k, cv in enumerate(self.cvars):
                miss = self._miss(cv, q)
                op = cv.spec.c_op
                want = None
                if miss < 0 and op in ("==", ">="):
                    want = "heavy"
                elif miss > 0 and op in ("==", "<="):
                    want = "light"
                if want is not None and mode.get(k) != want:
                    if switches.get(k, 0) >= 2:
                        raise _CVaRFailed([cv.spec], "the posterior's CVaR keeps overshooting the target")
                    switches[k] = switches.get(k, 0) + 1
                    mode[k] = want
                    cuts[k] = []
                    changed = True
            if not changed:
                return q
            q = self._solve_modes(mode, cuts)
        raise _CVaRFailed([cv.spec for cv in self.cvars], "the CVaR views did not settle")

    def _solve_modes(self, mode: Mapping[int, str], cuts: dict[int, list[float]]) -> np.ndarray:
        heavy = [k for k, m in mode.items() if m == "heavy"]
        light = [self.cvars[k] for k, m in mode.items() if m == "light"]
        for _ in range(10_000):
            rows = [_Row(-_ru(self.cvars[k], eta), -self.cvars[k].spec.c, "le", ("cvar", self.cvars[k].spec.index))
                    for k in heavy for eta in cuts[k]]
            q = self._solve_light(light, rows)
            added = False
            for k in heavy:
                cv = self.cvars[k]
                if self._miss(cv, q) < 0:
                    eta = _cvar_var(cv.spec.loss, q, cv.spec.alpha)
                    if eta not in cuts[k]:
                        cuts[k].append(eta)
                        added = True
            if not added:
                return q
        raise _CVaRFailed([self.cvars[k].spec for k in heavy], "the cutting planes did not converge")

    def _solve_light(self, light: list[_CVaRView], extra: list[_Row]) -> np.ndarray:
        if not light:
            return self._ep(extra)
        for cv in light:
            if not np.isfinite(cv.eta):
                cv.eta = _cvar_var(cv.spec.loss, self.p, cv.spec.alpha)
        if len(light) == 1:
            return self._light(light[0], extra)
        for _ in range(100):
            before = np.array([cv.eta for cv in light])
            for cv in light:
                others = [_Row(_ru(o, o.eta), o.spec.c, "eq", ("cvar", o.spec.index)) for o in light if o is not cv]
                q = self._light(cv, extra + others)
            after = np.array([cv.eta for cv in light])
            scale = np.array([max(abs(cv.spec.c), cv.spec.scale, 1e-300) for cv in light])
            if np.all(np.abs(after - before) <= 1e-13 * scale):
                return q
        raise _CVaRFailed([cv.spec for cv in light], "the search for their VaR levels did not settle")

    def _light(self, cv: _CVaRView, extra: list[_Row]) -> np.ndarray:
        """Posterior with ``eta + E_q[(L - eta)^+] / alpha = c`` at the ``eta`` that is its own VaR, i.e.
        a root of ``g(eta) = P_q(L > eta) - alpha`` (sets ``cv.eta``).

        ``g`` is continuous between consecutive scenario losses and jumps at each; the root is bracketed
        between two consecutive losses by a search over the sorted losses from the last VaR level, then
        found by Brent's method inside, or it is the loss where ``g`` jumps across 0.  An ``eta`` where no
        posterior meets the other views with this one lies beyond the root (the levels that work form an
        interval around it)."""
        s = cv.spec
        L = s.loss
        u = np.unique(L)
        u = u[u < s.c]
        n = len(u)
        if not n:
            raise _CVaRFailed([s], "every scenario's loss is at or beyond the target")

        def at(eta: float, tail_from: float | None = None):
            """(q, g) at ``eta`` with the tail ``L > eta`` (or ``L >= tail_from``), None where infeasible."""
            try:
                q = self._ep(extra + [_Row(_ru(cv, eta), s.c, "eq", ("cvar", s.index))])
            except _Infeasible:
                return None
            tail = L > eta if tail_from is None else L >= tail_from
            return q, float(q[tail].sum()) - s.alpha

        seen: dict[int, tuple | None] = {}

        def node(j: int):
            if j not in seen:
                seen[j] = at(float(u[j]))
            return seen[j]

        # a feasible start near the last VaR level
        j0 = int(np.clip(np.searchsorted(u, cv.eta), 0, n - 1))
        start = None
        for d in [0] + [sgn * 2**k for k in range(int(np.log2(n)) + 2) for sgn in (1, -1)]:
            j = j0 + d
            if 0 <= j < n and node(j) is not None:
                start = j
                break
        if start is None:
            raise _CVaRFailed([s], "no VaR level lets the other views hold with it")
        # lo: g > 0 (-1: below every loss, where the tail is everything); hi: g <= 0 (n: the levels in
        # [u[-1], c), whose tail empties as eta nears c); a bound marked infeasible lies beyond the root
        if node(start)[1] > 0:
            lo, hi, hi_ok, step = start, n, True, 1
            while lo + step < n:
                r = node(lo + step)
                if r is None or r[1] <= 0:
                    hi, hi_ok = lo + step, r is not None
                    break
                lo, step = lo + step, 2 * step
            lo_ok = True
        else:
            lo, hi, lo_ok, step = -1, start, True, 1
            while hi - step >= 0:
                r = node(hi - step)
                if r is None or r[1] > 0:
                    lo, lo_ok = hi - step, r is not None
                    break
                hi, step = hi - step, 2 * step
            hi_ok = True
        while hi - lo > 1:
            mid = (lo + hi) // 2
            r = node(mid)
            if r is None:
                # the levels that work form an interval: the infeasible bound's side is beyond it
                if not hi_ok:
                    hi = mid
                else:
                    lo, lo_ok = mid, False
            elif r[1] > 0:
                lo, lo_ok = mid, True
            else:
                hi, hi_ok = mid, True
        # the root is in the piece [u[lo], u[hi]), whose tail is L >= u[hi], or at the jump at u[hi]
        if hi < n and hi_ok:
            q_hi = seen[hi][0]
            if lo < 0 or float(q_hi[L >= u[hi]].sum()) - s.alpha > 0:
                cv.eta = float(u[hi])
                return q_hi
        tail_from = float(u[hi]) if hi < n else float(L[L >= s.c].min())

        def g(eta: float):
            return at(eta, tail_from)

        fail = _CVaRFailed([s], "no VaR level lets the other views hold with it")
        # a continuous bracket [a, b] with g(a) > 0 >= g(b), from a bound that may be infeasible (or, for
        # hi = n, the target itself)
        a = float(u[lo]) if lo >= 0 and lo_ok else None
        b = float(u[hi]) if hi < n and hi_ok else None
        left = float(u[lo]) if lo >= 0 else None
        right = float(u[hi]) if hi < n else s.c
        for _ in range(200):
            if a is not None and b is not None:
                break
            lo_end = a if a is not None else left
            hi_end = b if b is not None else right
            if lo_end is None:
                raise fail
            mid = lo_end + (hi_end - lo_end) / 2
            if not lo_end < mid < hi_end:
                raise fail
            r = g(mid)
            if r is None:
                if b is None:
                    right = mid
                else:
                    left = mid
            elif r[1] > 0:
                a = mid
            else:
                b = mid
        if a is None or b is None:
            raise fail
        xtol = 1e-15 * max(abs(a), abs(b), s.scale, 1e-300)

        def gv(eta: float) -> float:
            r = g(eta)
            if r is None:
                raise fail
            return r[1]

        eta = optimize.brentq(gv, a, b, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=200)
        r = g(eta)
        if r is None:
            raise fail
        cv.eta = float(eta)
        return r[0]


def apply_views(
    views: Sequence[View | Mapping],
    shocks: np.ndarray,
    factors: Sequence[str],
    prior: np.ndarray | None = None,
    pnl: np.ndarray | None = None,
    where: str = "",
    nav: float | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Scenario probabilities that meet ``views`` with the least relative entropy to ``prior``.

    Parameters
    ----------
    views : the family's ``views`` (:class:`View` or mappings in the batch-file syntax)
    shocks : ``[S, F]`` factor moves of the scenarios, in the factors' conventions (log-returns for
        prices, absolute decimal changes otherwise)
    factors : ``[F]`` factor names of the columns of ``shocks``
    prior : ``[S]`` prior probabilities (default ``1 / S`` each)
    pnl : ``[S]`` the book's P&L in each scenario, base currency (needed by views ``of: pnl``)
    where : what the views belong to (``"scenario family 'mc'"``), the start of error messages
    nav : the batch's NAV, base currency (needed by P&L targets written in % of NAV)

    Returns
    -------
    posterior : ``[S]``
        The posterior probabilities (the prior itself when there are no views).
    report : DataFrame
        One row per view, indexed ``views[i]``: ``view`` (as written), ``statistic`` (what is compared:
        the probability below the value for quantile and var views), ``op``, ``target``, ``prior``,
        ``posterior``, ``holds`` (to :data:`VIEW_TOL` relative), ``stage`` (1 means, quantiles, VaR and
        CVaR; 2 vols; 3 correlations).  Units: factor moves in the factor's convention, P&L in the base
        currency.  ``attrs`` holds ``effective_scenarios`` (of the posterior, and ``_prior``) and
        ``relative_entropy`` (nats).

    Raises
    ------
    ConfigError
        A view on an unknown factor or on the P&L without one, a target outside the scenarios' range,
        contradictory views (named, with their values), or a view the posterior misses.

    Notes
    -----
    The nested stages, the CVaR search and the units are described in the module docstring.
    """
    views = parse_views(views, where)
    shocks = np.asarray(shocks)
    factors = list(factors)
    if shocks.ndim != 2 or shocks.shape[1] != len(factors):
        raise ValueError(f"apply_views: shocks {shocks.shape} do not fit {len(factors)} factors")
    S = shocks.shape[0]
    p = np.full(S, 1.0 / S) if prior is None else _check_prior(prior)
    if len(p) != S:
        raise ValueError(f"apply_views: a prior of {len(p)} scenarios for {S} scenarios")
    if pnl is not None and np.shape(pnl) != (S,):
        raise ValueError(f"apply_views: pnl {np.shape(pnl)} does not fit {S} scenarios")
    report_cols = ["view", "statistic", "op", "target", "prior", "posterior", "holds", "stage"]
    if not views:
        report = pd.DataFrame(columns=report_cols)
        _figures(report, p, p)
        return p.copy(), report

    # the subjects' values on the prior's support
    sup = p > 0
    ps = p[sup]
    index = {f: j for j, f in enumerate(factors)}
    X: dict[str, np.ndarray] = {}
    for i, v in enumerate(views):
        for name in v.subjects:
            if name in X:
                continue
            if name == PNL:
                if pnl is None:
                    raise ConfigError(f"{_prefix(where)}field 'views[{i}]' ({v.text()}): a view on the book's P&L, "
                                      "but no P&L is given for these scenarios")
                col = np.asarray(pnl, float)
            elif name not in index:
                raise ConfigError(
                    f"{_prefix(where)}field 'views[{i}]' ({v.text()}): unknown factor {name!r}; the book's factors "
                    f"are {', '.join(factors[:12])}{' ...' if len(factors) > 12 else ''}")
            else:
                col = np.asarray(shocks[:, index[name]], float)
            if not np.isfinite(col[sup]).all():
                raise ConfigError(f"{_prefix(where)}field 'views[{i}]' ({v.text()}): the scenarios of {name} are not "
                                  "all finite")
            X[name] = col[sup]

    specs = _resolve(views, X, ps, nav, where)
    _check_pairs(specs, where)
    for s in specs:
        _check_support(s, X, where)

    rows: list[_Row] = []
    cvars: list[_CVaRView] = []
    for s in specs:
        if s.stat == "mean":
            rows.append(_signed(X[s.cols[0]], s.target, s.op, s.index))
        elif s.stat in ("quantile", "var"):
            v, prob, op = _threshold(s)
            rows.append(_signed((X[s.cols[0]] <= v).astype(float), prob, op, s.index))
        elif s.stat == "cvar":
            cvars.append(_CVaRView(s))
    labels = {s.index: s.label for s in specs}

    try:
        q = _Stage(ps, list(rows), cvars).solve()
        mean_fixed = {s.cols[0] for s in specs if s.stat == "mean" and s.op == "=="}
        var_fixed = {s.cols[0] for s in specs if s.stat == "vol" and s.op == "=="}
        vols = [s for s in specs if s.stat == "vol"]
        if vols:
            for s in vols:
                col = s.cols[0]
                x = X[col]
                m = _mean(x, q)
                rows.append(_signed((x - m) ** 2, s.target**2, s.op, s.index))
                if col not in mean_fixed:
                    rows.append(_Row(x, m, "eq", ("mean", col, m, s.index)))
                    mean_fixed.add(col)
            q = _Stage(ps, list(rows), cvars).solve()
        corrs = [s for s in specs if s.stat == "corr"]
        if corrs:
            m = {c: _mean(X[c], q) for s in corrs for c in s.cols}
            var = {c: float(q @ (X[c] - m[c]) ** 2) for c in m}
            for s in corrs:
                i, j = s.cols
                rows.append(_signed((X[i] - m[i]) * (X[j] - m[j]), s.target * np.sqrt(var[i] * var[j]), s.op,
                                    s.index))
                for col in s.cols:
                    if col not in mean_fixed:
                        rows.append(_Row(X[col], m[col], "eq", ("mean", col, m[col], s.index)))
                        mean_fixed.add(col)
                    if col not in var_fixed:
                        rows.append(_Row((X[col] - m[col]) ** 2, var[col], "eq", ("var", col, var[col], s.index)))
                        var_fixed.add(col)
            q = _Stage(ps, list(rows), cvars).solve()
    except _Infeasible as e:
        raise ConfigError(f"{_prefix(where)}field 'views': "
                          f"{_infeasible_text(_tag_names(e.tags, labels), e.edge)}") from None
    except _CVaRFailed as e:
        others = [s.label for s in specs if s not in e.specs]
        raise ConfigError(
            f"{_prefix(where)}field 'views': {' and '.join(s.label for s in e.specs)} cannot be met"
            f"{' together with ' + ', '.join(others) if others else ''}: {e.detail}; soften the view or add more "
            "extreme scenarios") from None

    posterior = np.zeros(S)
    posterior[sup] = q
    records = []
    missed = []
    for s in specs:
        prior_stat = _statistic(s, X, ps)
        post_stat = _statistic(s, X, q)
        if s.stat in ("quantile", "var"):
            _, target, op = _threshold(s)
        else:
            target, op = s.target, s.op
        ok = _holds(post_stat, op, target, VIEW_TOL * max(abs(target), s.scale))
        if not ok:
            missed.append(f"{s.label}: {post_stat:.10g} against {op} {target:.10g}")
        records.append({"view": s.view.text(), "statistic": _describe(s), "op": op, "target": target,
                        "prior": prior_stat, "posterior": post_stat, "holds": ok, "stage": _STAGE[s.stat]})
    if missed:
        raise ConfigError(f"{_prefix(where)}field 'views': the posterior misses {'; '.join(missed)}; soften the "
                          "views or add more extreme scenarios")
    report = pd.DataFrame.from_records(records, index=[s.name for s in specs], columns=report_cols)
    _figures(report, posterior, p)
    return posterior, report


def _signed(a: np.ndarray, b: float, op: str, index: int) -> _Row:
    """The row ``a q op b`` in the solver's ``==`` / ``<=`` form."""
    if op == ">=":
        return _Row(-a, -b, "le", index)
    return _Row(a, b, "le" if op == "<=" else "eq", index)


def _tag_names(tags: Sequence[object], labels: Mapping[int, str]) -> list[str]:
    """The views behind the tagged rows of an infeasibility, each once, with the moments an earlier stage
    holds for it (``views[3] (corr(...) == 0.9), holding the variance of EQ.SPX at 0.00013``)."""
    held: dict[int, list[str]] = {}
    for tag in tags:
        if isinstance(tag, tuple) and tag[0] in ("mean", "var"):
            view, what = tag[3], f"the {'mean' if tag[0] == 'mean' else 'variance'} of {tag[1]} at {tag[2]:.6g}"
        elif isinstance(tag, tuple) and tag[0] == "cvar":
            view, what = tag[1], None
        elif isinstance(tag, int) and tag in labels:
            view, what = tag, None
        else:
            continue
        held.setdefault(view, [])
        if what is not None and what not in held[view]:
            held[view].append(what)
    names = [labels[v] + (f", holding {' and '.join(h)}" if h else "") for v, h in held.items()]
    return names or list(labels.values())


def _figures(report: pd.DataFrame, q: np.ndarray, p: np.ndarray) -> None:
    report.attrs["effective_scenarios"] = effective_scenarios(q)
    report.attrs["effective_scenarios_prior"] = effective_scenarios(p)
    report.attrs["relative_entropy"] = relative_entropy(q, p)
