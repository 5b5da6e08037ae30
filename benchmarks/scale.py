"""The grid at scale: `stressgrid run` on the demo book with one Student-t Monte Carlo family of 1M, 3M
and 10M scenarios, with the driver's and the workers' peak memory.

Run:  python benchmarks/scale.py [--sizes 1000000 3000000 10000000] [--stream auto|false]
                                [--store local|s3|both] [--revaluation horizon|instantaneous] [--out FILE]

Each size runs as a user runs it: the `stressgrid run` command in a fresh process, on the embedded Ray
instance (one worker per core), with ``--no-report --quiet``.  While it runs, the script reads the peak
resident memory (``VmHWM``) of the driver (the command's process) and of every Ray worker process it
started (its descendants running Ray's worker), every 0.2 s, and the driver's private memory
(``RssAnon``) and the shared pages of Ray's object store mapped into it (``RssShmem``; results pass
through the store, and its pages count in the resident memory of every process that reads them).  It prints, per size:
wall time, scenarios per second, driver and worker peak memory, the size of the run folder and the
manifest's timings; then the growth exponent of time and of driver memory between the smallest and
the largest size (``log(t2/t1) / log(n2/n1)``: 1 is linear, 0 constant).

``--stream false`` runs the same batches in memory (everything gathered in the driver), the way every
run went before streamed runs existed; it needs about 6.5 GB of driver memory at 1M scenarios, so keep
its sizes small.  ``--store s3`` writes each run to a bucket of a local S3 server (moto, from the test
extra, started in this process) through ``--out s3://...``, as a cluster would write to object storage;
``both`` runs each size to a local folder and then to the bucket, and prints the ratio of their wall
times.  The local server is not a cloud store: it shares the machine's cores with the run, and has no
network latency.  The family's moves are over 10 days; by default the book is valued ten days on, as a
batch's family with a horizon is (the aged book, and today's book again for the time/market split of
the P&L: about twice the kernel work); ``--revaluation instantaneous`` values them at the as-of date, as
every run did before horizon revaluation existed (the issue's baseline of 56 s at 1M).  Results go to
``--out`` (default ``benchmarks/results/scale.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _batch(folder: Path, n: int, stream: str, revaluation: str = "horizon") -> Path:
    import yaml

    demo = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    (folder / "book.csv").write_text((ROOT / "examples" / "demo_book.csv").read_text())
    end = str(demo["market"]["as_of"])
    body = {k: demo[k] for k in ("market", "default_proxies", "nav") if k in demo}
    body.update(name=f"scale_{n}", book="book.csv", seed=7,
                execution={"stream": stream if stream == "auto" else stream == "true"},
                scenarios=[{"kind": "montecarlo", "name": "mc_t", "model": "student_t", "estimator": "ledoit_wolf",
                            "window": {"end": end, "lookback_days": 750}, "n_scenarios": n, "horizon_days": 10,
                            "revaluation": revaluation}])
    p = folder / f"batch_{n}.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def _status(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak resident memory), ``RssAnon`` (private memory now) and ``RssShmem`` (shared memory
    pages now, e.g. Ray's object store mapped into the process) of a process, in bytes (empty when gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "RssAnon", "RssShmem"):
                out[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def _hwm(pid: int) -> int:
    """Peak resident memory of a process in bytes (0 when it is gone)."""
    return _status(pid).get("VmHWM", 0)


def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def _is_worker(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"default_worker.py" in cmd or cmd.startswith(b"ray::")


class LocalS3:
    """A local S3 server with the bucket ``bench`` (moto), and the environment a run needs to reach it."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer
        from pyarrow import fs

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server's line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(self.env)
        self.query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        self.fs = fs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1",
                                  allow_bucket_creation=True)
        self.fs.create_dir("bench")

    def uri(self, key: str) -> str:
        return f"s3://bench/{key}?{self.query}"

    def size(self, key: str) -> int:
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(f"bench/{key}", recursive=True))
        return sum(i.size for i in infos if i.type == fs.FileType.File)

    def read(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"bench/{key}") as f:
            return f.read()


def run_one(n: int, stream: str, folder: Path, s3: LocalS3 | None = None, revaluation: str = "horizon") -> dict:
    batch = _batch(folder, n, stream, revaluation)
    out = folder / f"out_{n}"
    key = f"out_{n}"
    exe = Path(sys.executable).with_name("stressgrid")
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "stressgrid.cli"]) + [
        "run", str(batch), "--out", str(out) if s3 is None else s3.uri(key), "--no-report", "--quiet"]
    env = dict(os.environ, STRESSGRID_STAGE=str(folder / "stage"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    driver = worker = 0
    seen: dict[int, int] = {}
    private = shared = 0
    while proc.poll() is None:
        st = _status(proc.pid)
        driver = max(driver, st.get("VmHWM", 0))
        private = max(private, st.get("RssAnon", 0))
        shared = max(shared, st.get("RssShmem", 0))
        for pid in _descendants(proc.pid):
            if pid in seen or _is_worker(pid):
                seen[pid] = max(seen.get(pid, 0), _hwm(pid))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"n={n}: stressgrid run failed ({proc.returncode}):\n{stderr[-2000:]}")
    worker = max(seen.values(), default=0)
    if s3 is None:
        manifest = json.loads((out / "manifest.json").read_text())
        disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    else:
        manifest = json.loads(s3.read(f"{key}/manifest.json"))
        disk = s3.size(key)
    return {"scenarios": n, "stream": stream, "revaluation": revaluation, "store": "local" if s3 is None else "s3", "wall_s": round(wall, 2), "scenarios_per_s": round(n / wall),
            "driver_peak_gb": round(driver / 1e9, 3), "driver_private_peak_gb": round(private / 1e9, 3),
            "driver_shared_peak_gb": round(shared / 1e9, 3), "worker_peak_gb": round(worker / 1e9, 3),
            "workers_seen": len(seen), "output_gb": round(disk / 1e9, 3), "tasks": manifest["counts"]["tasks"],
            "streamed": any(f.endswith("/") for f in manifest["files"]), "timings": manifest["timings_seconds"]}


def _print(r: dict) -> None:
    t = r["timings"]
    print(f"{r['scenarios']:>11,} scenarios, {r['store']:>5}: {r['wall_s']:7.1f} s ({r['scenarios_per_s']:,}/s), driver peak "
          f"{r['driver_peak_gb']:.2f} GB (private {r['driver_private_peak_gb']:.2f}, object store pages "
          f"{r['driver_shared_peak_gb']:.2f}), worker peak {r['worker_peak_gb']:.2f} GB ({r['workers_seen']} workers), "
          f"output {r['output_gb']:.2f} GB, {r['tasks']} tasks; tasks {t.get('run_tasks', 0):.1f} s "
          f"(kernels {t.get('kernel_seconds_total', 0):.1f}, draws {t.get('draw_seconds_total', 0):.1f}, "
          f"writes {t.get('write_seconds_total', 0):.1f} s summed over tasks)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    ap.add_argument("--stream", choices=["auto", "true", "false"], default="auto")
    ap.add_argument("--store", choices=["local", "s3", "both"], default="local")
    ap.add_argument("--revaluation", choices=["horizon", "instantaneous"], default="horizon")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = ap.parse_args()
    rows = []
    s3 = LocalS3() if args.store != "local" else None
    stores = {"local": [None], "s3": [s3], "both": [None, s3]}[args.store]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            for store in stores:
                r = run_one(n, args.stream, Path(tmp), store, args.revaluation)
                rows.append(r)
                _print(r)
            if len(stores) == 2:
                local, remote = rows[-2], rows[-1]
                print(f"{n:>11,} scenarios: s3 / local wall time x{remote['wall_s'] / local['wall_s']:.2f}, driver peak "
                      f"{remote['driver_peak_gb']:.2f} GB against {local['driver_peak_gb']:.2f} GB", flush=True)
    growth = {}
    for store in dict.fromkeys(r["store"] for r in rows):
        mine = [r for r in rows if r["store"] == store]
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            k = math.log(b["scenarios"] / a["scenarios"])
            growth[store] = {"time": round(math.log(b["wall_s"] / a["wall_s"]) / k, 3),
                             "driver_memory": round(math.log(b["driver_peak_gb"] / a["driver_peak_gb"]) / k, 3)}
            print(f"growth exponent ({store}) from {a['scenarios']:,} to {b['scenarios']:,}: time "
                  f"{growth[store]['time']}, driver memory {growth[store]['driver_memory']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    import platform

    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                    "rows": rows, "growth_exponent": growth}, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
