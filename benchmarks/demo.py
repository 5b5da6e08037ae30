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

A second table gives the CPU time of each kind of process the command ran (sampled every 0.2 s over
the command and every process it started: the driver, the Ray workers, Ray's own daemons, the
report's chart process) and the floor it sets: the CPU seconds divided by the machine's CPUs, the
shortest wall time the same work could take if every core were busy all along.
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


#: the process kinds of the CPU table
KINDS = ("driver", "ray worker", "ray daemons", "chart process", "other")


def _kind(cmdline: list[str], driver: bool) -> str:
    """A process's kind from its command line (a Ray worker starts as ``default_worker.py`` and renames
    itself ``ray::IDLE`` or ``ray::<task>``; Ray's agents are ``ray::...Agent``)."""
    text = " ".join(cmdline)
    if driver:
        return "driver"
    if "stressgrid.reports._chart_child" in text:
        return "chart process"
    if "default_worker.py" in text or (text.startswith("ray::") and "Agent" not in text):
        return "ray worker"
    return "ray daemons" if "ray" in text else "other"


def _watch(proc: subprocess.Popen, every: float = 0.2) -> dict:
    """CPU seconds (user + system) of ``proc`` and every process it started, by kind, polled until it exits."""
    import psutil

    root = psutil.Process(proc.pid)
    seen: dict[int, tuple[str, float]] = {}
    while proc.poll() is None:
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                t = p.cpu_times()
                kind = _kind(p.cmdline(), p.pid == proc.pid)
                seen[p.pid] = (kind, t.user + t.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        time.sleep(every)
    out: dict[str, float] = {}
    for kind, cpu in seen.values():
        out[kind] = out.get(kind, 0.0) + cpu
    return {k: round(v, 1) for k, v in sorted(out.items())}


def run_once(mode: str, cache: Path, folder: Path) -> dict:
    exe = Path(sys.executable).with_name("stressgrid")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "stressgrid.cli"]
    out = folder / "demo"
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["STRESSGRID_COMPILE_CACHE"] = str(cache)
    t0 = time.perf_counter()
    err = folder / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(cmd + ["demo", "--out", str(out), "--quiet"] + (["--serial"] if mode == "serial" else []),
                                stdout=subprocess.DEVNULL, stderr=fh, env=env, cwd=folder)
        cpu = _watch(proc)
        proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stressgrid demo ({mode}) failed:\n{err.read_text()[-3000:]}")
    timings = json.loads((out / "manifest.json").read_text())["timings_seconds"]
    return dict(mode=mode, wall_seconds=round(wall, 2), timings=timings, cpu_seconds=cpu)


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
    kinds = list(KINDS)
    head = f"{'run':14} {'wall':>6} " + " ".join(f"{k:>13}" for k in kinds) + f" {'CPU total':>10} {'floor':>6}"
    print()
    print(head)
    print("-" * len(head))
    cpus = os.cpu_count() or 1
    for r in rows:
        c = r["cpu_seconds"]
        total = sum(c.values())
        r["cpu_floor_seconds"] = round(total / cpus, 1)
        print(f"{r['mode'] + ' ' + r['cache']:14} {r['wall_seconds']:>6.1f} "
              + " ".join(f"{c.get(k, 0.0):>13.1f}" for k in kinds) + f" {total:>10.1f} {total / cpus:>6.1f}")
    print(f"CPU seconds (user + system) of each kind of process; floor: CPU total / {cpus} CPUs, the wall time "
          "of the same work with every core busy all along")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(rows=rows, load_start=load_start, load_end=load_end, cpus=os.cpu_count()), indent=2))
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
