"""Assembling seeded random families block by block.

A random family of ``n`` scenarios is ``ceil(n / BLOCK_SIZE)`` blocks; block ``b`` draws only from
``block_seed(seed, b)`` and always draws the random numbers of a full block; the last block computes
scenarios from them only for the family's rows in it (a number that depends on ``n`` alone), so the
scenarios of any range ``[start, stop)`` do not depend on how a run splits the family.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from stressgrid.core import ScenarioSet

from ._common import BLOCK_SIZE

__all__ = ["assemble_range"]

BlockFn = Callable[[int, int], tuple[np.ndarray, np.ndarray | None]]


def assemble_range(
    family: str,
    n_scenarios: int,
    factors: tuple[str, ...],
    covered: np.ndarray,
    block: BlockFn,
    info: dict,
    start: int = 0,
    stop: int | None = None,
    amplifier=None,
    keep_paths: bool = True,
) -> ScenarioSet:
    """Scenarios ``[start, stop)`` of a random family.

    Parameters
    ----------
    block : ``(b, rows) -> (shocks [rows, F], paths [rows, H, F] or None)``, the first ``rows`` scenarios of
        block ``b`` (``BLOCK_SIZE`` but in the family's last block), already amplified, or
        ``(shocks, paths, guard rows)`` for a family with a tail guard (``scenarios._guard.GuardRows``, or None):
        the info columns ``implausible``, ``tail_multiple`` and ``tail_factor`` are then added per scenario
    covered : bool ``[F]``
    info : constant info columns of the family
    amplifier : adds liquidity multipliers (and its report) when given
    keep_paths : False leaves the daily paths out of the set (a task that revalues the scenarios once
        needs only their shocks)
    """
    stop = n_scenarios if stop is None else min(stop, n_scenarios)
    if not 0 <= start < stop:
        raise ValueError(f"scenario range [{start}, {stop}) of family {family!r} (size {n_scenarios}) is empty")
    b0, b1 = start // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE
    shocks, paths, guards = [], [], []
    for b in range(b0, b1 + 1):
        out = block(b, min(BLOCK_SIZE, n_scenarios - b * BLOCK_SIZE))
        s, p = out[0], out[1]
        g = out[2] if len(out) > 2 else None
        lo = max(start - b * BLOCK_SIZE, 0)
        hi = min(stop - b * BLOCK_SIZE, BLOCK_SIZE)
        shocks.append(s[lo:hi])
        if p is not None and keep_paths:
            paths.append(p[lo:hi])
        if g is not None:
            guards.append(g.rows(lo, hi))
    S = stop - start
    F = len(factors)
    names = tuple(f"{family}:{i}" for i in range(start, stop))
    row = dict(info)
    if amplifier is not None:
        row.update(amplifier.report)
    df = pd.DataFrame({"scenario": names})
    for k, v in {"family": family, **row}.items():
        df[k] = v
    if guards:
        multiple = np.concatenate([g.multiple for g in guards])
        worst = np.asarray(factors, dtype=object)[np.concatenate([g.worst for g in guards])]
        df["implausible"] = np.concatenate([g.implausible for g in guards])
        df["tail_multiple"] = multiple
        df["tail_factor"] = np.where(multiple > 0, worst, None)
    spread = adv = None
    if amplifier is not None and amplifier.spread_mult is not None:
        spread = np.repeat(amplifier.spread_mult[None, :], S, axis=0)
        adv = np.repeat(amplifier.adv_mult[None, :], S, axis=0)
    cov = np.repeat(np.asarray(covered, bool)[None, :], S, axis=0)
    if amplifier is not None:
        cov |= ((amplifier.shift != 0) | np.isfinite(amplifier.level_shock))[None, :]
    return ScenarioSet(
        names=names,
        factors=factors,
        shocks=np.concatenate(shocks).reshape(S, F),
        weights=np.full(S, 1.0 / n_scenarios),
        family=(family,) * S,
        covered=cov,
        paths=np.concatenate(paths) if paths else None,
        info=df,
        filled=None,
        spread_mult=spread,
        adv_mult=adv,
    )
