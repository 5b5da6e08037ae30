"""Desk constraints for the optimisers, validated once and compiled to one linear system.

A :class:`Constraints` object holds what a desk asks of a re-allocation: net budget, leverage, position
bounds, group bounds per asset class and sleeve, turnover against the current book, caps from ADV,
frozen positions and factor-exposure bands.  :func:`compile_constraints` checks it against the number of
positions and the current book and turns it into a :class:`LinearSystem` over

``x = [w (N) | t (N, only with a gross bound) | d (N, only with a turnover limit or penalty)]``

with ``t_i >= |w_i|`` and ``d_i >= |w_i - w0_i|``.  Every row block and every column bound carries the
name of the constraint family it comes from, so an infeasible set can be diagnosed by relaxing one
family at a time (:func:`portfolios.diagnose_infeasibility`).  The cvxpy and HiGHS back ends both read
this one system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from stressgrid.core.errors import ConfigError

__all__ = ["Constraints", "FactorBand", "LinearSystem", "adv_caps", "compile_constraints", "FAMILIES"]

#: constraint families, in the order the diagnosis relaxes them
FAMILIES = (
    "budget",
    "gross",
    "bounds",
    "groups",
    "turnover",
    "position_caps",
    "trade_caps",
    "frozen",
    "factor",
)

#: what to relax, per family, in a diagnosis message
RELAX_HINT = {
    "budget": "set constraints.budget/net_bounds wider or to None",
    "gross": "raise constraints.max_gross",
    "bounds": "widen constraints.lower/upper",
    "groups": "widen constraints.group_bounds",
    "turnover": "raise constraints.max_turnover",
    "position_caps": "raise constraints.max_position (longer liquidation horizon or higher ADV participation)",
    "trade_caps": "raise constraints.max_trade (longer liquidation horizon or higher ADV participation)",
    "frozen": "unfreeze some of constraints.frozen",
    "factor": "widen constraints.factor bands",
    "cvar_budget": "raise cvar_budget",
}


@dataclass(frozen=True)
class FactorBand:
    """Factor-exposure targets or bands: ``lower <= B.T @ w <= upper``.

    Parameters
    ----------
    loadings : array ``[N, K]``
        Exposure of each position to each factor per unit of weight (e.g. from
        :class:`portfolios.FactorExposureModel`).
    lower, upper : arrays ``[K]`` (or scalars)
        Bounds on the portfolio exposures; ``lower == upper`` is a target. ``-inf``/``inf`` leave a side
        open.
    names : optional factor names ``[K]`` used in messages and reports.
    """

    loadings: np.ndarray
    lower: np.ndarray | float
    upper: np.ndarray | float
    names: Sequence[str] | None = None


@dataclass(frozen=True)
class Constraints:
    """Constraints a desk uses when it re-allocates a book (weights are signed fractions of NAV).

    Parameters
    ----------
    budget : net exposure ``sum(w) == budget`` (1.0 = fully invested); None leaves it free.
    net_bounds : ``(lo, hi)``, bounds on ``sum(w)`` instead of an equality (needs ``budget=None``).
    max_gross : leverage bound, ``sum(|w|) <= max_gross``.
    lower, upper : per-position bounds, scalars or arrays ``[N]`` (default long-only ``[0, 1]``; use
        e.g. ``lower=-1`` for long/short).
    groups : mapping level -> labels ``[N]``, e.g. ``{"asset_class": [...], "sleeve": [...]}``.
    group_bounds : mapping level -> {label: (lo, hi)} on the sum of weights in each group.
    max_turnover : ``sum(|w - w0|) <= max_turnover`` against the current book ``w0`` (two-way
        turnover: buying 10% of one asset and selling 10% of another is 0.2).
    turnover_penalty : adds ``turnover_penalty * sum(|w - w0|)`` to a minimised objective (subtracted
        from a maximised return), in the objective's units per unit of turnover.
    max_position : ``|w_i| <= max_position_i``, e.g. from :func:`adv_caps` (what can be liquidated within
        the horizon).
    max_trade : ``|w_i - w0_i| <= max_trade_i``, e.g. from :func:`adv_caps` (what can be traded within the
        horizon).
    frozen : indices (or a boolean mask ``[N]``) of positions kept at their current weight (excluded or
        illiquid names).
    factor : :class:`FactorBand` on the factor exposures ``B.T @ w``.
    """

    budget: float | None = 1.0
    net_bounds: tuple[float, float] | None = None
    max_gross: float | None = None
    lower: float | np.ndarray = 0.0
    upper: float | np.ndarray = 1.0
    groups: Mapping[str, Sequence] | None = None
    group_bounds: Mapping[str, Mapping[object, tuple[float, float]]] | None = None
    max_turnover: float | None = None
    turnover_penalty: float = 0.0
    max_position: float | np.ndarray | None = None
    max_trade: float | np.ndarray | None = None
    frozen: Sequence[int] | np.ndarray | None = None
    factor: FactorBand | None = None

    def needs_current(self) -> bool:
        """Whether the constraints refer to the current book."""
        return (
            self.max_turnover is not None
            or self.turnover_penalty != 0.0
            or self.max_trade is not None
            or (self.frozen is not None and len(np.atleast_1d(self.frozen)) > 0)
        )


def adv_caps(
    nav: float,
    price_value_per_unit: np.ndarray | float,
    adv: np.ndarray | float,
    participation: np.ndarray | float,
    horizon_days: float,
    adv_mult: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Largest ``|weight|`` per position that can be traded within a liquidation horizon.

    ``cap_i = participation_i * adv_i * adv_mult_i * horizon_days * value_per_unit_i / nav``

    Parameters
    ----------
    nav : net asset value of the book (currency).
    price_value_per_unit : value of one unit of ``adv`` (price times multiplier), currency, ``[N]``.
    adv : average daily volume in units, ``[N]``.
    participation : fraction of ADV the desk trades per day, e.g. 0.10 for equities, 0.03-0.05 for
        commodity futures (common desk limits; tighten them under a liquidity stress).
    horizon_days : liquidation horizon in trading days.
    adv_mult : ADV multiplier of a liquidity stress (e.g. 0.3 = volumes cut by 70%).

    Returns
    -------
    array ``[N]`` of caps in weight units (fractions of NAV); pass it as ``max_position`` or ``max_trade``.
    """
    if not np.isfinite(nav) or nav <= 0:
        raise ConfigError(f"adv_caps: nav must be positive (got {nav!r})")
    if not np.isfinite(horizon_days) or horizon_days <= 0:
        raise ConfigError(f"adv_caps: horizon_days must be positive (got {horizon_days!r})")
    arrays = {
        "price_value_per_unit": price_value_per_unit,
        "adv": adv,
        "participation": participation,
        "adv_mult": adv_mult,
    }
    out = {}
    for name, value in arrays.items():
        a = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            bad = a[~np.isfinite(a) | (a < 0)] if a.ndim else a
            raise ConfigError(f"adv_caps: {name} must be finite and >= 0 (got {np.atleast_1d(bad)[0]!r})")
        out[name] = a
    participation = out["participation"]
    if np.any(participation > 1):
        raise ConfigError(f"adv_caps: participation is a fraction of ADV in [0, 1] (got {participation.max()!r})")
    caps = participation * out["adv"] * out["adv_mult"] * horizon_days * np.abs(out["price_value_per_unit"]) / nav
    return np.atleast_1d(np.asarray(caps, dtype=float))


@dataclass
class LinearSystem:
    """The compiled constraints: ``row_lo <= A @ x <= row_hi`` and ``col_lo <= x <= col_hi``.

    Attributes
    ----------
    n : number of positions (the first ``n`` columns of ``x`` are the weights).
    n_x : number of columns of ``x`` (weights and auxiliary variables).
    A : sparse ``[m, n_x]``.
    row_lo, row_hi : ``[m]`` (``-inf``/``inf`` for an open side).
    col_lo, col_hi : ``[n_x]``.
    cost : ``[n_x]`` linear cost added to a minimised objective (the turnover penalty).
    row_families : family name per row ``[m]``.
    col_families : for each column bound of a weight, the families that set it (for the diagnosis).
    t_slice, d_slice : columns of the gross and turnover auxiliaries (empty slices if absent).
    factor_rows : rows of the factor-exposure band (empty if absent).
    """

    n: int
    n_x: int
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    cost: np.ndarray
    row_families: np.ndarray
    families: tuple[str, ...]
    t_slice: slice
    d_slice: slice
    current: np.ndarray | None = None
    factor_names: tuple[str, ...] = ()
    group_rows: dict = field(default_factory=dict)

    def check(self, w: np.ndarray, tol: float = 1e-7) -> dict[str, float]:
        """Largest violation per family of a weight vector (auxiliaries set to their tightest values).

        Returns a mapping family -> violation (0 where it holds); used by tests and reports.
        """
        x = self.complete(w)
        out: dict[str, float] = {}
        ax = self.A @ x
        viol = np.maximum(self.row_lo - ax, ax - self.row_hi)
        viol = np.maximum(viol, 0.0)
        for fam in np.unique(self.row_families):
            out[str(fam)] = float(viol[self.row_families == fam].max(initial=0.0))
        cv = np.maximum(np.maximum(self.col_lo[: self.n] - w, w - self.col_hi[: self.n]), 0.0)
        out["bounds/caps"] = float(cv.max(initial=0.0))
        return out

    def complete(self, w: np.ndarray) -> np.ndarray:
        """``x`` for weights ``w``: ``t = |w|`` and ``d = |w - w0|``."""
        x = np.zeros(self.n_x)
        x[: self.n] = w
        if self.t_slice.stop > self.t_slice.start:
            x[self.t_slice] = np.abs(w)
        if self.d_slice.stop > self.d_slice.start:
            x[self.d_slice] = np.abs(w - self.current)
        return x


def _vector(name: str, value, n: int, *, allow_inf: bool = False) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"constraints.{name}: expected a number or an array of {n} numbers (got {value!r})") from None
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ConfigError(f"constraints.{name}: expected {n} values, one per position (got shape {a.shape})")
    bad = np.isnan(a) if allow_inf else ~np.isfinite(a)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(f"constraints.{name}[{i}]: must be a finite number (got {a[i]!r})")
    return a


def _scalar(name: str, value, *, minimum: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"constraints.{name}: expected a number (got {value!r})") from None
    if not np.isfinite(v):
        raise ConfigError(f"constraints.{name}: must be finite (got {value!r})")
    if minimum is not None and v < minimum:
        raise ConfigError(f"constraints.{name}: must be >= {minimum} (got {value!r})")
    return v


def validate_current(current_weights, n: int) -> np.ndarray | None:
    """Check a current book ``[N]`` (None passes through)."""
    if current_weights is None:
        return None
    try:
        w0 = np.asarray(current_weights, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"current_weights: expected {n} numbers (got {current_weights!r})") from None
    if w0.shape != (n,):
        raise ConfigError(f"current_weights: expected {n} values, one per position (got shape {w0.shape})")
    if not np.all(np.isfinite(w0)):
        i = int(np.flatnonzero(~np.isfinite(w0))[0])
        raise ConfigError(f"current_weights[{i}]: must be finite (got {w0[i]!r})")
    return w0


def frozen_mask(frozen, n: int) -> np.ndarray:
    """Boolean mask ``[N]`` of frozen positions from indices or a mask."""
    mask = np.zeros(n, dtype=bool)
    if frozen is None:
        return mask
    f = np.asarray(frozen)
    if f.dtype == bool:
        if f.shape != (n,):
            raise ConfigError(f"constraints.frozen: a boolean mask needs {n} values (got shape {f.shape})")
        return f.copy()
    f = np.atleast_1d(f)
    if f.size == 0:
        return mask
    if not np.issubdtype(f.dtype, np.integer):
        raise ConfigError(f"constraints.frozen: expected position indices or a boolean mask (got {frozen!r})")
    bad = (f < 0) | (f >= n)
    if np.any(bad):
        raise ConfigError(f"constraints.frozen: index out of range 0..{n - 1} (got {int(f[bad][0])})")
    mask[f] = True
    return mask


def compile_constraints(
    cs: Constraints | None,
    n: int,
    current_weights: np.ndarray | None = None,
    *,
    drop: frozenset[str] | set[str] = frozenset(),
) -> LinearSystem:
    """Validate ``cs`` for ``n`` positions and compile it to a :class:`LinearSystem`.

    Parameters
    ----------
    cs : the constraints (None: the defaults, fully invested long-only).
    n : number of positions.
    current_weights : the current book ``[N]``; required by turnover, trade caps and frozen positions.
    drop : families to leave out (used by the infeasibility diagnosis).

    Raises
    ------
    ConfigError
        For a bad field; the message names it and the value.
    """
    cs = Constraints() if cs is None else cs
    if not isinstance(cs, Constraints):
        raise ConfigError(f"constraints: expected a portfolios.Constraints (got {type(cs).__name__})")
    w0 = validate_current(current_weights, n)
    if cs.needs_current() and w0 is None:
        which = [k for k in ("max_turnover", "turnover_penalty", "max_trade", "frozen")
                 if getattr(cs, k) not in (None, 0.0) and not (k == "frozen" and len(np.atleast_1d(cs.frozen)) == 0)]
        raise ConfigError(f"current_weights: required by constraints.{which[0]} (got None)")

    lower = _vector("lower", cs.lower, n, allow_inf=True)
    upper = _vector("upper", cs.upper, n, allow_inf=True)
    if np.any(lower > upper):
        i = int(np.flatnonzero(lower > upper)[0])
        raise ConfigError(f"constraints.lower[{i}]: above upper ({lower[i]!r} > {upper[i]!r})")

    # column bounds of the weights, with the families that set them
    families: list[str] = []
    col_lo = np.full(n, -np.inf)
    col_hi = np.full(n, np.inf)

    def tighten(lo, hi, fam):
        nonlocal col_lo, col_hi
        if fam in drop:
            return
        col_lo = np.maximum(col_lo, lo)
        col_hi = np.minimum(col_hi, hi)

    tighten(lower, upper, "bounds")
    if not (np.all(lower == -np.inf) and np.all(upper == np.inf)):
        families.append("bounds")
    for field_name, family, centre in (("max_position", "position_caps", 0.0), ("max_trade", "trade_caps", w0)):
        value = getattr(cs, field_name)
        if value is None:
            continue
        cap = _vector(field_name, value, n, allow_inf=True)
        if np.any(cap < 0):
            i = int(np.flatnonzero(cap < 0)[0])
            raise ConfigError(f"constraints.{field_name}[{i}]: must be >= 0 (got {cap[i]!r})")
        tighten(centre - cap, centre + cap, family)
        families.append(family)
    fmask = frozen_mask(cs.frozen, n)
    if fmask.any():
        # frozen positions keep their weight: they override the other bounds (a frozen book may sit
        # outside today's limits; it is not traded either way)
        if "frozen" not in drop:
            col_lo = np.where(fmask, w0, col_lo)
            col_hi = np.where(fmask, w0, col_hi)
        families.append("frozen")

    rows: list[sp.csr_matrix] = []
    lo_parts: list[np.ndarray] = []
    hi_parts: list[np.ndarray] = []
    fam_parts: list[np.ndarray] = []

    use_t = cs.max_gross is not None and "gross" not in drop
    use_d = (cs.max_turnover is not None and "turnover" not in drop) or cs.turnover_penalty != 0.0
    n_x = n + (n if use_t else 0) + (n if use_d else 0)
    t_slice = slice(n, 2 * n) if use_t else slice(n, n)
    d0 = n + (n if use_t else 0)
    d_slice = slice(d0, d0 + n) if use_d else slice(d0, d0)

    def add(block: sp.spmatrix, lo, hi, fam: str):
        block = sp.csr_matrix(block)
        if block.shape[1] < n_x:
            block = sp.hstack([block, sp.csr_matrix((block.shape[0], n_x - block.shape[1]))], format="csr")
        rows.append(block)
        lo_parts.append(np.broadcast_to(np.asarray(lo, float), (block.shape[0],)).copy())
        hi_parts.append(np.broadcast_to(np.asarray(hi, float), (block.shape[0],)).copy())
        fam_parts.append(np.full(block.shape[0], fam, dtype=object))

    eye = sp.identity(n, format="csr")
    ones = sp.csr_matrix(np.ones((1, n)))

    # budget / net exposure
    if cs.budget is not None and cs.net_bounds is not None:
        raise ConfigError(f"constraints.net_bounds: set budget=None to use net bounds (got budget={cs.budget!r})")
    if cs.budget is not None:
        b = _scalar("budget", cs.budget)
        families.append("budget")
        if "budget" not in drop:
            add(ones, b, b, "budget")
    elif cs.net_bounds is not None:
        try:
            nlo, nhi = (float(v) for v in cs.net_bounds)
        except (TypeError, ValueError):
            raise ConfigError(f"constraints.net_bounds: expected (lo, hi) (got {cs.net_bounds!r})") from None
        if not nlo <= nhi:
            raise ConfigError(f"constraints.net_bounds: lo must not exceed hi (got {cs.net_bounds!r})")
        families.append("budget")
        if "budget" not in drop:
            add(ones, nlo, nhi, "budget")

    # gross / leverage: t >= |w|, sum t <= max_gross
    if cs.max_gross is not None:
        g = _scalar("max_gross", cs.max_gross, minimum=0.0)
        families.append("gross")
        if use_t:
            tw = sp.hstack([eye, eye], format="csr")          # t + w >= 0 (cols: w | t)
            tm = sp.hstack([-eye, eye], format="csr")         # t - w >= 0
            add(tw, 0.0, np.inf, "gross")
            add(tm, 0.0, np.inf, "gross")
            add(sp.hstack([sp.csr_matrix((1, n)), ones], format="csr"), -np.inf, g, "gross")

    # groups
    group_rows: dict = {}
    if cs.group_bounds:
        if not cs.groups:
            raise ConfigError("constraints.group_bounds: needs constraints.groups (labels per position) (got None)")
        families.append("groups")
    if cs.groups:
        for level, labels in cs.groups.items():
            lab = np.asarray(labels, dtype=object)
            if lab.shape != (n,):
                raise ConfigError(f"constraints.groups[{level!r}]: expected {n} labels (got shape {lab.shape})")
        for level, bounds in (cs.group_bounds or {}).items():
            if level not in cs.groups:
                raise ConfigError(f"constraints.group_bounds: unknown level {level!r} (levels: {sorted(cs.groups)})")
            lab = np.asarray(cs.groups[level], dtype=object)
            for label, lohi in bounds.items():
                members = lab == label
                if not members.any():
                    raise ConfigError(
                        f"constraints.group_bounds[{level!r}]: no position has label {label!r} "
                        f"(labels: {sorted(set(map(str, lab)))})"
                    )
                try:
                    glo, ghi = (float(v) for v in lohi)
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"constraints.group_bounds[{level!r}][{label!r}]: expected (lo, hi) (got {lohi!r})"
                    ) from None
                if np.isnan(glo) or np.isnan(ghi) or glo > ghi:
                    raise ConfigError(
                        f"constraints.group_bounds[{level!r}][{label!r}]: lo must not exceed hi (got {lohi!r})"
                    )
                if "groups" not in drop:
                    group_rows[(level, label)] = sum(r.shape[0] for r in rows)
                    add(sp.csr_matrix(members.astype(float)[None, :]), glo, ghi, "groups")

    # turnover: d >= |w - w0|, sum d <= max_turnover
    if cs.max_turnover is not None:
        _scalar("max_turnover", cs.max_turnover, minimum=0.0)
        families.append("turnover")
    if cs.turnover_penalty != 0.0:
        _scalar("turnover_penalty", cs.turnover_penalty, minimum=0.0)
    if use_d:
        zt = sp.csr_matrix((n, n)) if use_t else None
        left_p = [eye] + ([zt] if use_t else []) + [eye]      # d + w >= w0
        left_m = [-eye] + ([zt] if use_t else []) + [eye]     # d - w >= -w0
        add(sp.hstack(left_p, format="csr"), w0, np.inf, "turnover_def")
        add(sp.hstack(left_m, format="csr"), -w0, np.inf, "turnover_def")
        if cs.max_turnover is not None and "turnover" not in drop:
            row = np.zeros((1, n_x))
            row[0, d_slice] = 1.0
            add(sp.csr_matrix(row), -np.inf, float(cs.max_turnover), "turnover")

    # factor exposures
    factor_names: tuple[str, ...] = ()
    if cs.factor is not None:
        fb = cs.factor
        B = np.asarray(fb.loadings, dtype=float)
        if B.ndim != 2 or B.shape[0] != n:
            raise ConfigError(f"constraints.factor.loadings: expected shape ({n}, K) (got {B.shape})")
        if not np.all(np.isfinite(B)):
            raise ConfigError("constraints.factor.loadings: must be finite (got a NaN or inf)")
        k = B.shape[1]
        flo = np.asarray(fb.lower, dtype=float)
        fhi = np.asarray(fb.upper, dtype=float)
        flo = np.full(k, float(flo)) if flo.ndim == 0 else flo
        fhi = np.full(k, float(fhi)) if fhi.ndim == 0 else fhi
        for nm, a in (("lower", flo), ("upper", fhi)):
            if a.shape != (k,) or np.any(np.isnan(a)):
                raise ConfigError(f"constraints.factor.{nm}: expected {k} numbers, one per factor (got {a!r})")
        if np.any(flo > fhi):
            i = int(np.flatnonzero(flo > fhi)[0])
            raise ConfigError(f"constraints.factor.lower[{i}]: above upper ({flo[i]!r} > {fhi[i]!r})")
        factor_names = tuple(fb.names) if fb.names is not None else tuple(f"factor_{j}" for j in range(k))
        if len(factor_names) != k:
            raise ConfigError(f"constraints.factor.names: expected {k} names (got {len(factor_names)})")
        families.append("factor")
        if "factor" not in drop:
            add(sp.csr_matrix(B.T), flo, fhi, "factor")

    if rows:
        A = sp.vstack(rows, format="csr")
        row_lo = np.concatenate(lo_parts)
        row_hi = np.concatenate(hi_parts)
        row_fam = np.concatenate(fam_parts)
    else:
        A = sp.csr_matrix((0, n_x))
        row_lo = row_hi = np.zeros(0)
        row_fam = np.zeros(0, dtype=object)

    full_lo = np.full(n_x, -np.inf)
    full_hi = np.full(n_x, np.inf)
    full_lo[:n] = col_lo
    full_hi[:n] = col_hi
    full_lo[n:] = 0.0  # t and d are non-negative
    cost = np.zeros(n_x)
    if use_d and cs.turnover_penalty:
        cost[d_slice] = float(cs.turnover_penalty)
    return LinearSystem(
        n=n,
        n_x=n_x,
        A=A,
        row_lo=row_lo,
        row_hi=row_hi,
        col_lo=full_lo,
        col_hi=full_hi,
        cost=cost,
        row_families=row_fam,
        families=tuple(dict.fromkeys(families)),
        t_slice=t_slice,
        d_slice=d_slice,
        current=w0,
        factor_names=factor_names,
        group_rows=group_rows,
    )
