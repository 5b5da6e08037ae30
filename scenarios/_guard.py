"""Tail guards of the random kinds: factor moves beyond a plausibility bound, and GARCH fits at a boundary.

A random family's model can draw moves that its own history never came near: a GARCH(1,1)-t fitted on a
window with one +52% day has a large ``alpha`` and few degrees of freedom, and filtered historical
simulation then re-scales that day's residual by an inflated variance.  The guard measures every
scenario's move of each factor against the largest move of that factor over ``horizon_days`` days in the
family's estimation window (its *historical extreme*), flags the moves beyond ``max_multiple`` times it
and, with ``cap: true``, clips them to that bound.

The bound is computed once, in the family's fit (:func:`fit_guard`), and applied in every block to the
model's cumulative moves before the ``amplify`` stress, so that a grid task drawing any range of the
family flags and caps exactly the same moves as a generation in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GuardSpec",
    "TailGuard",
    "GuardRows",
    "fit_guard",
    "historical_extreme",
    "garch_boundary",
    "format_garch_boundary",
    "parse_garch_boundary",
    "GUARD_COLUMNS",
    "PERSISTENCE_BOUNDARY",
    "DOF_BOUNDARY",
    "ALPHA_BOUNDARY",
]

#: the per-scenario info columns a guarded family writes: the number of factors whose move is beyond the
#: bound, the scenario's largest move as a multiple of its factor's historical extreme, and that factor
GUARD_COLUMNS = ("implausible", "tail_multiple", "tail_factor")

#: a GARCH(1,1) fit with ``alpha + beta`` at least this is reported as near integrated (a shock's effect on
#: the variance has a half-life of ``log(0.5) / log(alpha + beta)``, 138 days at 0.995)
PERSISTENCE_BOUNDARY = 0.995
#: a Student-t fit with at most this many degrees of freedom is reported as near 2, where the variance of
#: the innovations is infinite (arch bounds the fit at 2.05); the kurtosis is infinite from 4 down
DOF_BOUNDARY = 3.0
#: a GARCH(1,1) ``alpha`` at least this is reported: one day's squared shock then carries 30% or more into
#: the next day's variance, typically the fit of a window with one outsized day
ALPHA_BOUNDARY = 0.3


class GuardSpec(BaseModel):
    """The ``guard`` block of a random family (``bootstrap``, ``montecarlo``).

    Batch-file keys: ``max_multiple`` (> 0, default 3): a scenario's move of a factor is implausible when
    its absolute value exceeds ``max_multiple`` times the factor's largest absolute ``horizon_days``-day
    move in the estimation window; ``cap`` (default false): false flags those moves only (no number
    changes), true clips them to the bound.
    """

    model_config = ConfigDict(extra="forbid")
    max_multiple: float = Field(default=3.0, gt=0.0)
    cap: bool = False


def historical_extreme(moves: np.ndarray, horizon_days: int) -> np.ndarray:
    """The largest absolute move over ``horizon_days`` consecutive days of each column of ``moves [T, K]``.

    The moves of every overlapping window of ``horizon_days`` daily moves are summed (log-returns and
    absolute changes both add over days); with fewer than ``horizon_days`` daily moves, the whole window
    is one move.  Returns ``[K]`` in the factors' units (a log-return for prices).
    """
    x = np.asarray(moves, dtype=float)
    T = len(x)
    H = min(int(horizon_days), T)
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    sums = c[H:] - c[:-H]
    return np.abs(sums).max(axis=0)


class GuardRows(NamedTuple):
    """Per scenario of a block: the number of factors beyond the bound, the largest ``|move| / extreme``
    and the position of its factor in ``factors``."""

    implausible: np.ndarray  # int64 [B]
    multiple: np.ndarray  # float64 [B]
    worst: np.ndarray  # int64 [B]

    def rows(self, lo: int, hi: int) -> "GuardRows":
        return GuardRows(self.implausible[lo:hi], self.multiple[lo:hi], self.worst[lo:hi])


@dataclass(frozen=True)
class TailGuard:
    """A fitted guard: the plausibility bound of every factor of a family.

    factors : ``[F]``; extreme : ``[F]`` each factor's historical ``horizon_days``-day extreme in the
    window, in its units, scaled where the model's own stress moved its volatility (see
    :func:`fit_guard`); NaN for a factor the model does not move or that did not move in the window
    (never judged); max_multiple, cap : the spec's.
    """

    factors: tuple[str, ...]
    extreme: np.ndarray
    max_multiple: float
    cap: bool

    @property
    def bound(self) -> np.ndarray:
        """``[F]``: ``max_multiple x extreme`` (``inf`` where a factor is not judged)."""
        return np.where(np.isnan(self.extreme), np.inf, self.max_multiple * self.extreme)

    def apply(self, paths: np.ndarray) -> tuple[np.ndarray, GuardRows]:
        """Judge (and with ``cap``, clip) the model's cumulative moves ``paths [B, H, F]``.

        A scenario's move is its last day, ``paths[:, -1]``.  With ``cap`` every day of a path is clipped to
        ``[-bound, bound]``, so that the scenario's move is clipped and ``paths[:, -1]`` stays its shock;
        moves within the bound keep their bits.  The multiples are those of the model's moves, before the
        clip.  Returns the (clipped) paths and the :class:`GuardRows` of the block.
        """
        last = np.abs(paths[:, -1, :])
        bound = self.bound
        judged = np.isfinite(self.extreme)
        ratio = np.zeros(last.shape)
        ratio[:, judged] = last[:, judged] / self.extreme[judged]
        count = (last > bound).sum(axis=1).astype(np.int64)  # the moves the cap clips
        worst = ratio.argmax(axis=1).astype(np.int64) if ratio.shape[1] else np.zeros(len(ratio), np.int64)
        multiple = ratio[np.arange(len(ratio)), worst] if ratio.shape[1] else np.zeros(len(ratio))
        if self.cap and count.any():
            paths = np.clip(paths, -bound, bound)
        return paths, GuardRows(count, multiple, worst)


def fit_guard(spec: GuardSpec, moves: np.ndarray, index: np.ndarray, factors: Sequence[str], horizon_days: int,
              vol_ratio: np.ndarray | None = None) -> TailGuard:
    """The guard of a family from its window's daily moves.

    Parameters
    ----------
    spec : the family's ``guard`` block
    moves : ``[T, K]`` daily moves of the modelled factors (log-returns for prices, changes otherwise)
    index : ``[K]`` their positions in ``factors [F]``
    horizon_days : the family's horizon, in trading days
    vol_ratio : ``[K]`` optional: each factor's stressed over estimated volatility, for a model whose
        ``amplify`` stress entered its covariance (Gaussian and Student-t Monte Carlo): the extreme is
        scaled by it, so that a declared volatility stress is not judged implausible
    """
    ext = historical_extreme(moves, horizon_days)
    if vol_ratio is not None:
        ext = ext * np.asarray(vol_ratio, dtype=float)
    full = np.full(len(factors), np.nan)
    full[np.asarray(index, dtype=np.int64)] = np.where(ext > 0, ext, np.nan)
    return TailGuard(tuple(factors), full, float(spec.max_multiple), bool(spec.cap))


def garch_boundary(names: Sequence[str], alpha: np.ndarray, beta: np.ndarray, nu: np.ndarray) -> list[tuple[str, float, float, float]]:
    """The factors whose GARCH(1,1)-t fit sits at a boundary: ``alpha + beta >=`` :data:`PERSISTENCE_BOUNDARY`
    (near integrated), ``nu <=`` :data:`DOF_BOUNDARY` (near 2) or ``alpha >=`` :data:`ALPHA_BOUNDARY`.

    Returns ``[(factor, alpha, beta, nu), ...]`` in the order of ``names``.
    """
    out = []
    for f, a, b, n in zip(names, alpha, beta, nu):
        if a + b >= PERSISTENCE_BOUNDARY or n <= DOF_BOUNDARY or a >= ALPHA_BOUNDARY:
            out.append((str(f), float(a), float(b), float(n)))
    return out


def format_garch_boundary(found: list[tuple[str, float, float, float]]) -> str:
    """``"EQ.AMD: alpha 0.36, beta 0.64, dof 3.6; ..."`` (the info column ``garch_boundary``; empty when none)."""
    return "; ".join(f"{f}: {_garch_text(a, b, n)}" for f, a, b, n in found)


def _garch_text(a: float, b: float, n: float) -> str:
    return f"alpha {a:.3g}, beta {b:.3g}, dof {n:.3g}"


def parse_garch_boundary(text) -> dict[str, str]:
    """``{factor: "alpha .., beta .., dof .."}`` from the text of :func:`format_garch_boundary` (empty for
    an empty text or a null)."""
    if not isinstance(text, str) or not text:
        return {}
    out = {}
    for part in text.split("; "):
        f, _, rest = part.partition(": ")
        out[f] = rest
    return out
