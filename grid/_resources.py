"""Memory and disk a batch needs, estimated from its sizes before any work, and checked against what
the machine and the output folder have.

The estimate counts the scenarios of each family without generating them (events, windows, draws),
then applies per-scenario costs measured on this code (``benchmarks/resources.py`` prints the
measured peak memory and output size next to the estimate).  A batch whose estimate exceeds the
memory available or the free space of the output folder is refused, naming the largest family, the
estimate and the limit; ``--force`` runs it anyway.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, History

__all__ = ["Estimate", "count_scenarios", "estimate_resources", "check_resources", "available_memory"]

#: driver memory per scenario and factor (shocks, coverage flags and the copies made while generating
#: and concatenating them), per scenario (names, info, totals, group sums, summaries), per scenario and
#: position when the position-level P&L is gathered, and per path day and factor of families with paths
DRIVER_PER_CELL = 40.0
DRIVER_PER_SCENARIO = 1500.0
DRIVER_PER_POSITION_CELL = 24.0
DRIVER_PER_PATH_CELL = 16.0
#: the process, the libraries and the history, whatever the batch's size
DRIVER_BASE = 850e6
#: a streamed run: the summaries of the tasks in flight and the merge's copies (measured up to 10M
#: scenarios of the demo book by ``benchmarks/scale.py``)
STREAM_PER_TASK_BYTES = 200e6
#: output bytes per scenario (the scenarios, breakdown and sensitivity tables and the task checkpoints)
#: and per scenario x position row
DISK_PER_SCENARIO = 700.0
DISK_PER_POSITION_ROW = 17.0
#: share of the available memory a batch may plan to use
MEMORY_HEADROOM = 0.8


@dataclass(frozen=True)
class Estimate:
    scenarios: dict[str, int]  # family -> scenarios
    driver_bytes: float
    disk_bytes: float

    @property
    def total(self) -> int:
        return int(sum(self.scenarios.values()))

    def largest(self) -> tuple[str, int]:
        return max(self.scenarios.items(), key=lambda kv: kv[1])


def count_scenarios(spec, history: History, factors=None) -> int:
    """The number of scenarios a family yields, counted without generating them.  A rolling family's
    windows run over the dates on which the ``factors`` observed on half the period's dates or more are
    all observed (as :func:`scenarios.rolling_windows` takes them; every date of the history without
    ``factors``)."""
    kind = spec.kind
    if kind == "historical":
        return len(spec.events) + len(spec.custom)
    if kind == "rolling":
        lv = history.levels
        lv = lv.loc[pd.Timestamp(spec.start) if spec.start else None: pd.Timestamp(spec.end) if spec.end else None]
        if factors is not None:
            lv = lv.reindex(columns=list(factors))
            lv = lv.loc[:, (lv.notna().mean() >= 0.5).to_numpy()].dropna(how="any")
        return max(0, -(-(len(lv) - spec.horizon_days) // spec.step))
    if kind in ("montecarlo", "bootstrap"):
        return int(spec.n_scenarios)
    if kind == "predictive":
        return len(spec.stresses) * (1 + int(spec.n_draws))
    if kind == "hypothetical":
        return spec.n_scenarios
    if kind == "reverse":  # one per target (a second local solution adds a row; three at most)
        return spec.n_targets
    raise ValueError(f"unknown scenario kind {kind!r}")


def _paths_days(spec) -> int:
    if spec.kind == "bootstrap" and spec.paths:
        return spec.horizon_days
    if spec.kind == "montecarlo" and getattr(spec, "paths", False):
        return spec.horizon_days
    return 0


def estimate_resources(batch, history: History, n_positions: int, factors, streamed: bool = False) -> Estimate:
    """Driver memory and output size of ``batch`` (counts from :func:`count_scenarios`), run in memory or
    ``streamed`` (:mod:`._stream`: the driver holds the families generated there and the tail rows)."""
    from ._run import AUTO_POSITION_CELLS, MAX_POSITION_CELLS

    n_factors = len(factors)
    counts = {s.name: count_scenarios(s, history, factors) for s in batch.scenarios}
    S = sum(counts.values())
    cells = S * n_positions
    want = batch.outputs.scenario_pnl
    table = want is True or (want == "auto" and cells <= AUTO_POSITION_CELLS)
    if streamed:
        # families generated in the driver (not random kinds) as before; drawn ones cost their tail rows
        # (the tail of 1 - min(confidence), twice over while merging) and their totals' tail
        here = sum(n for s, n in zip(batch.scenarios, counts.values()) if s.kind not in ("montecarlo", "bootstrap"))
        tail = (1.0 - min(batch.risk.confidence)) * S
        driver = (DRIVER_BASE + here * (DRIVER_PER_SCENARIO + DRIVER_PER_CELL * n_factors)
                  + tail * (2 * 8.0 * n_positions + 64.0) + STREAM_PER_TASK_BYTES)
        disk = S * DISK_PER_SCENARIO + (cells * DISK_PER_POSITION_ROW if table else 0.0)
        return Estimate(counts, float(driver), float(disk))
    gather = table or ((batch.liquidity is not None or batch.optimise is not None or batch.factor_model is not None) and cells <= MAX_POSITION_CELLS)
    path_cells = sum(counts[s.name] * _paths_days(s) for s in batch.scenarios) * n_factors
    driver = (DRIVER_BASE + S * (DRIVER_PER_SCENARIO + DRIVER_PER_CELL * n_factors)
              + (cells * DRIVER_PER_POSITION_CELL if gather else 0.0) + path_cells * DRIVER_PER_PATH_CELL)
    disk = S * DISK_PER_SCENARIO + (cells * DISK_PER_POSITION_ROW if table else 0.0)
    return Estimate(counts, float(driver), float(disk))


def available_memory() -> float:
    """Bytes of memory available to a new process (``MemAvailable``; the cgroup's limit if lower)."""
    avail = np.inf
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = float(line.split()[1]) * 1024
    except OSError:
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            v = Path(f).read_text().strip()
            if v.isdigit() and float(v) < avail:
                avail = float(v)
        except OSError:
            continue
    if not np.isfinite(avail):
        avail = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    return avail


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def _free_disk(out: Path) -> float:
    p = Path(out).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return float(shutil.disk_usage(p).free)


def check_resources(est: Estimate, source: str, out: Path | None = None, force: bool = False,
                    memory: float | None = None) -> None:
    """Refuse a batch whose estimate does not fit the memory available (or ``memory``) or the free space of
    the output folder ``out``, unless ``force``."""
    if force:
        return
    name, n = est.largest()
    limit = MEMORY_HEADROOM * (available_memory() if memory is None else memory)
    if est.driver_bytes > limit:
        raise ConfigError(
            f"{source}, field 'scenarios' (largest family {name!r}: {n:,} scenarios): the run needs about "
            f"{_gb(est.driver_bytes)} of memory for {est.total:,} scenarios, over the {_gb(limit)} this machine has "
            "available; use fewer scenarios, or --force to run it anyway")
    if out is not None:
        free = _free_disk(out)
        if est.disk_bytes > free:
            raise ConfigError(
                f"{source}, field 'scenarios' (largest family {name!r}: {n:,} scenarios): the tables need about "
                f"{_gb(est.disk_bytes)} in {out}, which has {_gb(free)} free; choose another --out, set "
                "outputs.scenario_pnl: false, or --force to run it anyway")
