"""Grid benchmark: scheduling overhead and scaling from 1 to 2 Ray workers.

The baseline is the same worker function run serially in this process (no Ray), measured in the same
run.  Overhead = (Ray wall time with 1 worker - serial wall time) / Ray wall time.  Scaling = wall time
with 1 worker / wall time with 2 workers.

    python benchmarks/grid.py                      # demo book, 20,000 scenarios
    python benchmarks/grid.py --copies 20 --scenarios 40000

Writes ``benchmarks/results/grid.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# this file is named like the package it measures: import the package, not this script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def build_inputs(copies: int, n_scenarios: int, chunk: int | None):
    from core import Book, ScenarioSet
    from grid import load_batch, prepare_inputs
    import kernels

    batch, digest = load_batch(ROOT / "examples" / "demo_batch.yaml")
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": chunk})})
    inputs = prepare_inputs(batch, digest)
    pos = inputs.book.positions
    book = pd.concat([pos.assign(id=pos["id"] + f"_{k}") for k in range(copies)], ignore_index=True)
    prepared = kernels.prepare(book, inputs.market.factors, batch.base_currency, inputs.market.as_of, levels=inputs.market.levels)
    base = inputs.scenarios
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(base), size=n_scenarios)
    scen = ScenarioSet(tuple(f"s{i}" for i in range(n_scenarios)), base.factors, base.shocks[rows],
                       np.full(n_scenarios, 1.0 / n_scenarios), ("bench",) * n_scenarios, base.covered[rows])
    sens = kernels.sensitivities(prepared, inputs.market.levels)
    return replace(inputs, book=Book(book, "bench"), prepared=prepared, scenarios=scen, sens=sens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=10, help="copies of the demo book (positions = 44 x copies)")
    ap.add_argument("--scenarios", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=None, help="scenarios per task (default: automatic)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each configuration; the best is kept")
    args = ap.parse_args()

    import ray

    from cluster import runtime_env
    from grid import RayExecutor, SerialExecutor, execute

    inputs = build_inputs(args.copies, args.scenarios, args.chunk)
    execute(inputs, SerialExecutor())  # compile in this process first

    def best(executor):
        times, res = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = execute(inputs, executor)
            times.append(time.perf_counter() - t0)
        return min(times), res

    serial_s, ref = best(SerialExecutor())
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env(), logging_level="ERROR")
    try:
        execute(inputs, RayExecutor(workers=2))  # warm both worker processes (imports, compilation)
        one_s, r1 = best(RayExecutor(workers=1))
        two_s, r2 = best(RayExecutor(workers=2))
    finally:
        ray.shutdown()
    same = all(r1.tables[k].equals(ref.tables[k]) and r2.tables[k].equals(ref.tables[k]) for k in ref.tables if k != "positions")
    n_tasks = len(ref.tasks)
    out = {
        "positions": inputs.prepared.n,
        "scenarios": len(inputs.scenarios),
        "tasks": n_tasks,
        "chunk_size": ref.tasks[0].size,
        "serial_seconds": serial_s,
        "ray_1_worker_seconds": one_s,
        "ray_2_workers_seconds": two_s,
        "overhead_fraction_1_worker": (one_s - serial_s) / one_s,
        "speedup_2_vs_1": one_s / two_s,
        "tasks_per_second_2_workers": n_tasks / two_s,
        "identical_results": bool(same),
    }
    print(f"{'positions':>10} {'scenarios':>10} {'tasks':>6} {'chunk':>6} {'serial s':>9} {'ray 1w s':>9} {'ray 2w s':>9} {'overhead':>9} {'2w/1w':>6} {'tasks/s':>8}")
    print(f"{out['positions']:>10} {out['scenarios']:>10} {n_tasks:>6} {out['chunk_size']:>6} {serial_s:>9.2f} {one_s:>9.2f} {two_s:>9.2f} "
          f"{out['overhead_fraction_1_worker']:>8.1%} {out['speedup_2_vs_1']:>6.2f} {out['tasks_per_second_2_workers']:>8.1f}")
    print(f"identical results serial / 1 worker / 2 workers: {same}")
    path = ROOT / "benchmarks" / "results" / "grid.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
