"""Grid benchmark: scheduling overhead and scaling from 1 to 2 Ray workers.

The baseline is the same worker function run serially in this process (no Ray), measured in the same
run, with the same XLA settings as a Ray worker (one intra-op thread, ``cluster.WORKER_XLA_FLAGS``).
"1 worker" and "2 workers" are local Ray instances with 1 and 2 CPUs, started in turn, each warmed up
first (worker processes started, kernels compiled), as ``stressgrid run --workers N`` would start them.
Overhead = (Ray wall time with 1 worker - serial wall time) / Ray wall time.  Scaling = wall time with 1
worker / wall time with 2 workers.  Three configurations by default: the demo-sized batch (the demo book,
10,696 scenarios like the demo) and two CPU-bound ones: 10 copies of the demo book (490 positions) under
200,000 scenarios, and 100 copies (4,900 positions) under 40,000.
Chunk sizes are the automatic ones unless ``--chunk`` is given.

    python benchmarks/grid.py
    python benchmarks/grid.py --config 20:400000     # copies:scenarios, repeatable
    python benchmarks/grid.py --demo-batch           # also the whole demo batch, every section

Wall times cover the whole ``execute`` (planning, tasks, transfers, reduction into tables); the
``tasks`` columns cover the task phase only.  ``--demo-batch`` adds a row for the demo batch file as
``stressgrid demo`` runs it (liquidity, re-optimisation and monitoring included, their tasks on the same
executor).  Writes ``benchmarks/results/grid.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

# the serial baseline computes like a Ray worker: one XLA thread and one core for JAX, and one thread
# for the BLAS and OpenMP libraries (Ray sets OMP_NUM_THREADS=1 in a worker of one CPU); set before
# numpy and JAX are imported
os.environ["XLA_FLAGS"] = " ".join(dict.fromkeys(os.environ.get("XLA_FLAGS", "").split() + ["--xla_cpu_multi_thread_eigen=false"]))
os.environ["STRESSGRID_ONE_CORE"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build_inputs(copies: int, n_scenarios: int, chunk: int | None):
    from stressgrid.core import Book, ScenarioSet
    from stressgrid.grid import load_batch, prepare_inputs
    from stressgrid import kernels

    batch, digest = load_batch(ROOT / "examples" / "demo_batch.yaml")
    # the kernel grid only: the demo's liquidity, optimise and monitoring sections run on the driver
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": chunk}),
                                     "liquidity": None, "optimise": None, "monitoring": None})
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


def _numbers(table):
    """A table without its wall-clock columns (the walk-forward's ``seconds``), which no two runs share."""
    return table.drop(columns=[c for c in ("seconds",) if c in table.columns])


def _ray(cpus: int):
    import ray

    from stressgrid.cluster import runtime_env

    ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=runtime_env(), logging_level="ERROR")


def _best(inputs, make, repeat: int):
    from stressgrid.grid import execute

    times, tasks, res = [], [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = execute(inputs, make())
        times.append(time.perf_counter() - t0)
        tasks.append(res.timings["run_tasks"])
    return min(times), min(tasks), res


def measure(inputs, repeat: int, label: str) -> dict:
    import ray

    from stressgrid.grid import RayExecutor, SerialExecutor, execute

    def ray_executor():  # every task on a worker, even a plan of one task (which a run does in the driver)
        return RayExecutor(inline_single=False)

    execute(inputs, SerialExecutor())  # compile in this process first
    serial_s, serial_t, ref = _best(inputs, SerialExecutor, repeat)
    ray_runs = {}
    for cpus in (1, 2):
        _ray(cpus)
        try:
            for _ in range(2):  # start and warm every worker process (imports, compilation)
                execute(inputs, ray_executor())
            ray_runs[cpus] = _best(inputs, ray_executor, repeat)
        finally:
            ray.shutdown()
    (one_s, one_t, r1), (two_s, two_t, r2) = ray_runs[1], ray_runs[2]
    same = all(_numbers(r1.tables[k]).equals(_numbers(ref.tables[k])) and _numbers(r2.tables[k]).equals(_numbers(ref.tables[k]))
               for k in ref.tables if k != "positions")
    n_tasks = len(ref.tasks)
    return {
        "config": label,
        "positions": inputs.prepared.n,
        "scenarios": len(inputs.scenarios),
        "tasks": n_tasks,
        "chunk_size": ref.tasks[0].size,
        "position_pnl_gathered": ref.pnl is not None,
        "serial_seconds": serial_s,
        "ray_1_worker_seconds": one_s,
        "ray_2_workers_seconds": two_s,
        "serial_task_seconds": serial_t,
        "ray_1_worker_task_seconds": one_t,
        "ray_2_workers_task_seconds": two_t,
        "overhead_fraction_1_worker": (one_s - serial_s) / one_s,
        "speedup_2_vs_1": one_s / two_s,
        "speedup_2_vs_1_tasks": one_t / two_t,
        "tasks_per_second_2_workers": n_tasks / two_t,
        "identical_results": bool(same),
    }


def demo_batch_inputs():
    from stressgrid.grid import load_batch, prepare_inputs

    batch, digest = load_batch(ROOT / "examples" / "demo_batch.yaml")
    return prepare_inputs(batch, digest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", default=None,
                    help="COPIES:SCENARIOS (positions = 49 x copies); default 1:10696, 10:200000 and 100:40000")
    ap.add_argument("--chunk", type=int, default=None, help="scenarios per task (default: automatic)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each configuration; the best is kept")
    ap.add_argument("--demo-batch", action="store_true", help="also time the whole demo batch (every section)")
    args = ap.parse_args()
    configs = [tuple(int(x) for x in c.split(":")) for c in (args.config or ["1:10696", "10:200000", "100:40000"])]
    rows = [measure(build_inputs(c, n, args.chunk), args.repeat, f"{c}:{n}") for c, n in configs]
    if args.demo_batch:
        rows.append(measure(demo_batch_inputs(), 1, "demo batch, every section"))
    print(f"{'config':>26} {'positions':>9} {'scenarios':>9} {'tasks':>5} {'chunk':>6} {'serial s':>8} {'ray 1w s':>8} "
          f"{'ray 2w s':>8} {'overhead':>8} {'2w/1w':>6} {'2w/1w tasks':>11} {'tasks/s':>8} {'identical':>9}")
    for o in rows:
        print(f"{o['config']:>26} {o['positions']:>9} {o['scenarios']:>9} {o['tasks']:>5} {o['chunk_size']:>6} "
              f"{o['serial_seconds']:>8.2f} {o['ray_1_worker_seconds']:>8.2f} {o['ray_2_workers_seconds']:>8.2f} "
              f"{o['overhead_fraction_1_worker']:>8.1%} {o['speedup_2_vs_1']:>6.2f} {o['speedup_2_vs_1_tasks']:>11.2f} "
              f"{o['tasks_per_second_2_workers']:>8.1f} {str(o['identical_results']):>9}")
    path = ROOT / "benchmarks" / "results" / "grid.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
