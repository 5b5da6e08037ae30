"""Where `stressgrid demo` spends its time: the tour, and the full demo on the embedded Ray instance and in
process, cold and warm.

Run:  python benchmarks/demo.py [--modes tour ray serial] [--cold-only] [--repeat N] [--drop PART ...] [--out FILE]

Mode ``tour`` runs the tour as a user runs it, ``stressgrid demo --quiet`` (in process, as its batch
says); modes ``ray`` and ``serial`` run the full demo, ``stressgrid demo --full --quiet`` on the embedded
instance and with ``--serial``.  Each runs in a fresh process, twice: first
with an empty compilation cache (``STRESSGRID_COMPILE_CACHE`` set to a new folder: every kernel, the
sensitivities' derivatives and the forecasters' programs compile), then again with the cache the
first run filled (``--repeat N``: N such pairs).  The script prints the wall time of the command and the manifest's timings of each
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

``--drop`` measures what parts of the demo cost: each PART is a section of the demo batch
(``monitoring``, ``optimise``, ``liquidity``, ``factor_model``), a scenario family by name
(``mc_garch_dcc``), ``forecaster:NAME`` (one of the monitoring section's forecasters, ``ml_lstm``) or
``report`` (``--no-report``); a PART may join several with ``+`` (``factor_model+optimise``: the
``factor_target`` case reads the factor model).  ``everything-but:FAMILY`` keeps one family and no
section (``everything-but:crisis``, the crisis replays alone): what any run of the demo book costs.  The script then runs the whole demo and, for each
PART, the demo batch without it (``stressgrid run`` on a copy of the batch, its ``limits`` left out
whenever anything is dropped, since they name sections and families), and prints each run's row.
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


#: the demo batch's sections (``--drop everything-but:FAMILY`` leaves them all out)
SECTIONS = ("liquidity", "factor_model", "optimise", "monitoring")

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
                if kind == "other" and p.pid in seen:  # an exiting process's command line reads empty
                    kind = seen[p.pid][0]
                seen[p.pid] = (kind, t.user + t.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        time.sleep(every)
    out: dict[str, float] = {}
    for kind, cpu in seen.values():
        out[kind] = out.get(kind, 0.0) + cpu
    return {k: round(v, 1) for k, v in sorted(out.items())}


def batch_without(drop: str, folder: Path) -> tuple[list[str], bool]:
    """The command-line arguments that run the demo batch without the parts in ``drop`` (``a+b``), and
    whether the report is drawn."""
    import yaml

    parts = [p for p in drop.split("+") if p]
    doc = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    doc["book"] = str(ROOT / "examples" / "demo_book.csv")
    doc.pop("limits", None)
    report = True
    for part in parts:
        if part == "report":
            report = False
        elif part.startswith("everything-but:"):  # one family and no section: what any run costs
            name = part.split(":", 1)[1]
            doc["scenarios"] = [sp for sp in doc["scenarios"] if sp["name"] == name]
            if not doc["scenarios"]:
                raise SystemExit(f"--drop {part}: no scenario family {name!r} in the demo batch")
            for section in SECTIONS:
                doc.pop(section, None)
        elif part.startswith("forecaster:"):
            name = part.split(":", 1)[1]
            doc["monitoring"]["forecasters"] = [f for f in doc["monitoring"]["forecasters"]
                                                if (f if isinstance(f, str) else f.get("name")) != name]
        elif part in doc:
            del doc[part]
        elif any(sp["name"] == part for sp in doc["scenarios"]):
            doc["scenarios"] = [sp for sp in doc["scenarios"] if sp["name"] != part]
            for case in doc.get("optimise", []):
                case["families"] = [f for f in case["families"] if f != part]
        else:
            raise SystemExit(f"--drop {part}: not a section, scenario family or forecaster of the demo batch")
    path = folder / f"demo-without-{drop.replace(':', '-').replace('+', '-')}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return ["run", str(path), "--allow-outside-paths"], report


def run_once(mode: str, cache: Path, folder: Path, drop: str | None = None) -> dict:
    exe = Path(sys.executable).with_name("stressgrid")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "stressgrid.cli"]
    out = folder / "demo"
    shutil.rmtree(out, ignore_errors=True)
    if mode == "tour":
        args, report = ["demo"], True
    else:
        args, report = (["demo", "--full"], True) if drop is None else batch_without(drop, folder)
    args += [] if report else ["--no-report"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["STRESSGRID_COMPILE_CACHE"] = str(cache)
    t0 = time.perf_counter()
    err = folder / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(cmd + args + ["--out", str(out), "--quiet"] + (["--serial"] if mode == "serial" else []),
                                stdout=subprocess.DEVNULL, stderr=fh, env=env, cwd=folder)
        cpu = _watch(proc)
        proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stressgrid demo ({mode}) failed:\n{err.read_text()[-3000:]}")
    timings = json.loads((out / "manifest.json").read_text())["timings_seconds"]
    return dict(mode=mode, wall_seconds=round(wall, 2), timings=timings, cpu_seconds=cpu, without=drop)


def _label(r: dict) -> str:
    return f"{r['mode']} {r['cache']}" + (f" -{r['without']}" if r.get("without") else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", choices=("tour", "ray", "serial"), default=["tour", "ray", "serial"])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each mode and cache state")
    ap.add_argument("--cold-only", action="store_true", help="only the runs with an empty compilation cache")
    ap.add_argument("--drop", nargs="+", default=[], metavar="PART",
                    help="also run the demo without each PART (see the module's description)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json")
    a = ap.parse_args()
    if a.drop and set(a.modes) == {"tour"}:
        ap.error("--drop takes parts of the full demo batch: add --modes ray or serial")
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.modes:
            for drop in [None] + (a.drop if mode != "tour" else []):
                for _ in range(a.repeat):
                    cache = Path(tmp) / f"cache-{mode}-{len(rows)}"
                    for state in ("cold",) if a.cold_only else ("cold", "warm"):
                        r = run_once(mode, cache, Path(tmp), drop)
                        r["cache"] = state
                        rows.append(r)
    load_end = os.getloadavg()
    short = {"monitoring_walk_forward": "walk-fwd", "generate_scenarios": "scenarios", "rerun_adapted_book": "rerun"}
    w = max([14] + [len(_label(r)) for r in rows])
    head = f"{'run':{w}} {'wall':>6} " + " ".join(f"{short.get(s, s.replace('_', ' '))[:10]:>10}" for s in STEPS)
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = " ".join(f"{r['timings'][s]:>10.1f}" if s in r["timings"] else f"{'-':>10}" for s in STEPS)
        print(f"{_label(r):{w}} {r['wall_seconds']:>6.1f} {cells}")
    print(f"seconds; wall: the command from start to exit (imports, report and shutdown included); the others from "
          f"manifest.json. Load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_start)} at the start, "
          f"{' '.join(f'{x:.2f}' for x in load_end)} at the end; {os.cpu_count()} CPUs")
    kinds = list(KINDS)
    head = f"{'run':{w}} {'wall':>6} " + " ".join(f"{k:>13}" for k in kinds) + f" {'CPU total':>10} {'floor':>6}"
    print()
    print(head)
    print("-" * len(head))
    cpus = os.cpu_count() or 1
    for r in rows:
        c = r["cpu_seconds"]
        total = sum(c.values())
        r["cpu_floor_seconds"] = round(total / cpus, 1)
        print(f"{_label(r):{w}} {r['wall_seconds']:>6.1f} "
              + " ".join(f"{c.get(k, 0.0):>13.1f}" for k in kinds) + f" {total:>10.1f} {total / cpus:>6.1f}")
    print(f"CPU seconds (user + system) of each kind of process; floor: CPU total / {cpus} CPUs, the wall time "
          "of the same work with every core busy all along")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(rows=rows, load_start=load_start, load_end=load_end, cpus=os.cpu_count()), indent=2))
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
