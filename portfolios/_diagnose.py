"""Why an optimisation is infeasible: relax one constraint family at a time and see what restores it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ._constraints import RELAX_HINT, Constraints, compile_constraints
from ._highs import is_feasible

__all__ = ["Diagnosis", "diagnose_infeasibility"]


@dataclass(frozen=True)
class Diagnosis:
    """Outcome of :func:`diagnose_infeasibility`.

    Attributes
    ----------
    feasible : whether the constraints admit a portfolio at all.
    binding : families each of which, relaxed alone, restores feasibility (or, if none does, the
        smallest pairs found, joined with ``+``).
    message : one line for the user: what binds and what to relax.
    """

    feasible: bool
    binding: tuple[str, ...]
    message: str


def diagnose_infeasibility(
    constraints: Constraints | None, n: int, current_weights: np.ndarray | None = None
) -> Diagnosis:
    """Find the constraint families that make ``constraints`` infeasible for ``n`` positions.

    Each family present (budget, gross, bounds, groups, turnover, position_caps, trade_caps, frozen,
    factor) is dropped in turn and the remaining system is checked for a feasible point (HiGHS, zero
    objective); if no single family restores feasibility, pairs are tried.

    Returns
    -------
    Diagnosis
    """
    system = compile_constraints(constraints, n, current_weights)
    if is_feasible(system):
        return Diagnosis(True, (), "the constraints are feasible")
    fams = list(system.families)
    single = [f for f in fams if is_feasible(compile_constraints(constraints, n, current_weights, drop={f}))]
    if single:
        hints = "; ".join(f"{f} ({RELAX_HINT.get(f, 'relax it')})" for f in single)
        msg = (
            f"infeasible constraints: relaxing any one of [{', '.join(single)}] restores feasibility: {hints}"
            if len(single) > 1
            else f"infeasible constraints: the {single[0]} constraints bind; {RELAX_HINT.get(single[0], 'relax them')}"
        )
        return Diagnosis(False, tuple(single), msg)
    pairs = [
        f"{a}+{b}"
        for a, b in combinations(fams, 2)
        if is_feasible(compile_constraints(constraints, n, current_weights, drop={a, b}))
    ]
    if pairs:
        msg = (
            "infeasible constraints: no single family relaxed restores feasibility; relaxing both of "
            + " or ".join(f"[{p.replace('+', ' and ')}]" for p in pairs)
            + " does"
        )
        return Diagnosis(False, tuple(pairs), msg)
    return Diagnosis(
        False,
        tuple(fams),
        f"infeasible constraints: the conflict involves three or more of [{', '.join(fams)}]; relax them",
    )
