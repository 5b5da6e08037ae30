"""The reverse stress tests of a run: one row per solution, its largest factor moves, and a bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stressgrid.core import factor_spec

from ._rundir import RunDir, open_run

__all__ = ["reverse_stress", "format_move", "probability"]

#: columns of :func:`reverse_stress`
COLUMNS = ["family", "scenario", "target_loss", "loss", "distance", "tail_probability", "converged", "starts_agree",
           "main_moves"]


def format_move(factor: str, move: float) -> str:
    """A factor's move as a reader writes it: ``-8.1%`` for a price, ``+23bp`` for a rate, spread or
    basis, ``+5.2 vol pts`` for an implied-vol parameter."""
    kind = factor_spec(factor).kind
    if kind == "price":
        return f"{move:+.1%}"
    if kind == "vol":
        return f"{move * 100:+.1f} vol pts"
    return f"{move * 1e4:+.0f}bp"


def probability(p: float) -> str:
    """A tail probability as a percentage: two decimals, or two significant digits below 0.01% (``0.00071%``),
    never a bare fraction beside percentages."""
    return f"{p:.2%}" if p >= 1e-4 else f"{p * 100:.2g}%"


def reverse_stress(run_dir: str | Path | RunDir, moves: int = 4) -> pd.DataFrame | None:
    """Every scenario of the run's reverse families (``kind: reverse``), with ``loss`` (= -pnl) and
    ``main_moves``: the ``moves`` free factors with the largest shares of the distance and their moves
    (``reverse_shocks``).  None when the run has none."""
    run = open_run(run_dir)
    if not run.has("reverse_shocks"):
        return None
    shocks = run.table("reverse_shocks")
    fams = list(dict.fromkeys(shocks["family"]))
    sc = run.table("scenarios", columns=["scenario", "family", "pnl", "target_loss", "distance", "tail_probability",
                                         "converged", "starts_agree"], families=fams)
    main = {}
    for name, g in shocks.groupby("scenario", sort=False):
        free = g[g["role"] == "free"].sort_values("distance_share", ascending=False).head(moves)
        main[name] = ", ".join(f"{r.factor} {format_move(r.factor, r.move)} ({r.distance_share:.0%})"
                               for r in free.itertuples())
    out = sc.assign(loss=-sc["pnl"], main_moves=sc["scenario"].map(main).fillna(""))
    return out[COLUMNS].reset_index(drop=True)


def chart_data(run: RunDir, scenario: str, n: int = 12) -> pd.DataFrame:
    """The ``n`` factors of ``scenario`` that move most in standard deviations (``z``), largest first."""
    s = run.table("reverse_shocks", where={"scenario": [scenario]})
    s = s[np.isfinite(s["z"].astype(float))]
    return s.reindex(s["z"].abs().sort_values(ascending=False).index).head(n)
