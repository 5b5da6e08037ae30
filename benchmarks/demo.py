"""Where `stressgrid demo` spends its time: cold and warm, on the embedded Ray instance and in process.

Run:  python benchmarks/demo.py [--modes ray serial] [--out FILE]

Each mode runs the demo as a user runs it, ``stressgrid demo --quiet`` in a fresh process, twice: first
with an empty compilation cache (``STRESSGRID_COMPILE_CACHE`` set to a new folder: every kernel, the
sensitivities' derivatives and the forecasters' programs compile), then again with the cache the
first run filled.  The script prints the wall time of the command and the manifest's timings of each
run (``timings_seconds``: the steps overlap where the run overlaps them; ``start_ray`` runs while the
sensitivities and the scenarios are computed, and the sensitivities while the scenarios are drawn; on Ray
``monitoring_walk_forward`` runs beside liquidity, factor model and optimise, and ``monitoring`` is the
rest of that section; in process the walk-forward is inside ``monitoring``),
and writes them to ``--out`` (default ``benchmarks/results/demo.json``).  No assertion on timings: the
numbers are for people to read, next to the machine's load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the manifest's timings, in the order of a run
STEPS = ("load_inputs", "sensitivities", "generate_scenarios", "start_ray", "run_tasks", "liquidity", "factor_model",
         "optimise", "monitoring_walk_forward", "monitoring", "rerun_adapted_book", "write", "total")


def run_once(mode: str, cache: Path, folder: Path) -> dict:
    exe = Path(sys.executable).with_name("stressgrid")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "stressgrid.cli"]
    out = folder / "demo"
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["STRESSGRID_COMPILE_CACHE"] = str(cache)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd + ["demo", "--out", str(out), "--quiet"] + (["--serial"] if mode == "serial" else []),
                          capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stressgrid demo ({mode}) failed:\n{proc.stderr[-3000:]}")
    timings = json.loads((out / "manifest.json").read_text())["timings_seconds"]
    return dict(mode=mode, wall_seconds=round(wall, 2), timings=timings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", choices=("ray", "serial"), default=["ray", "serial"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json")
    a = ap.parse_args()
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.modes:
            cache = Path(tmp) / f"cache-{mode}"
            for state in ("cold", "warm"):
                r = run_once(mode, cache, Path(tmp))
                r["cache"] = state
                rows.append(r)
    load_end = os.getloadavg()
    short = {"monitoring_walk_forward": "walk-fwd", "generate_scenarios": "scenarios", "rerun_adapted_book": "rerun"}
    head = f"{'run':14} {'wall':>6} " + " ".join(f"{short.get(s, s.replace('_', ' '))[:10]:>10}" for s in STEPS)
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = " ".join(f"{r['timings'][s]:>10.1f}" if s in r["timings"] else f"{'-':>10}" for s in STEPS)
        print(f"{r['mode'] + ' ' + r['cache']:14} {r['wall_seconds']:>6.1f} {cells}")
    print(f"seconds; wall: the command from start to exit (imports, report and shutdown included); the others from "
          f"manifest.json. Load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_start)} at the start, "
          f"{' '.join(f'{x:.2f}' for x in load_end)} at the end; {os.cpu_count()} CPUs")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(rows=rows, load_start=load_start, load_end=load_end, cpus=os.cpu_count()), indent=2))
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
