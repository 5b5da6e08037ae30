"""The resource estimate against what a run uses: driver peak memory and output size.

Run:  python benchmarks/resources.py [--sizes 20000 100000] [--out FILE]

For each size, the demo book under one Student-t Monte Carlo family is run serially in a fresh
process (`stressgrid.run_batch`, with and without the scenario x position table), and its peak
resident memory (``ru_maxrss``) and the size of its run folder are printed next to the estimate of
``stressgrid.grid._resources`` for the same batch.  The estimate is meant to be at or a little above
the measurement; `validate` and `run` refuse a batch whose estimate exceeds the machine's memory or
the output folder's free space.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    import stressgrid
    from stressgrid.grid import load_batch
    batch, digest = load_batch(sys.argv[1])
    t = time.perf_counter()
    stressgrid.run_batch(batch, sys.argv[2], serial=True, batch_hash=digest)
    wall = time.perf_counter() - t
    out = Path(sys.argv[2])
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "disk": disk, "wall": wall}))
""")


def _batch(folder: Path, n: int, table: bool) -> Path:
    import yaml

    demo = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    (folder / "book.csv").write_text((ROOT / "examples" / "demo_book.csv").read_text())
    end = str(demo["market"]["as_of"])
    body = {k: demo[k] for k in ("market", "default_proxies") if k in demo}
    body.update(name="resources", book="book.csv", seed=1, outputs={"scenario_pnl": table},
                scenarios=[{"kind": "montecarlo", "name": "mc", "model": "student_t", "estimator": "ledoit_wolf",
                            "window": {"end": end, "lookback_days": 750}, "n_scenarios": n, "horizon_days": 10}])
    p = folder / f"batch_{n}_{table}.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    from stressgrid.core import load_book
    from stressgrid.grid import load_batch, prepare_inputs  # noqa: F401
    from stressgrid.grid._resources import estimate_resources
    from stressgrid import kernels
    from stressgrid.core.sources import load_source, merge_histories

    rows = []
    print(f"{'scenarios':>10} {'table':>6} {'est. memory':>12} {'peak RSS':>10} {'ratio':>6} "
          f"{'est. disk':>10} {'disk':>10} {'ratio':>6} {'wall s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in args.sizes:
            for table in (False, True):
                path = _batch(d, n, table)
                batch, _ = load_batch(path)
                book = load_book(batch.book)
                factors = kernels.required_factors(book.positions, batch.base_currency)
                history = merge_histories([load_source(s) for s in batch.history_sources()])
                est = estimate_resources(batch, history, len(book.positions), factors)
                res = subprocess.run([sys.executable, "-c", CHILD, str(path), str(d / f"run_{n}_{table}")],
                                     capture_output=True, text=True, check=True)
                m = json.loads(res.stdout.strip().splitlines()[-1])
                row = dict(scenarios=n, table=table, est_memory=est.driver_bytes, peak_rss=m["peak_rss"],
                           est_disk=est.disk_bytes, disk=m["disk"], wall=m["wall"])
                rows.append(row)
                print(f"{n:>10,} {str(table):>6} {est.driver_bytes / 1e9:>10.2f}GB {m['peak_rss'] / 1e9:>8.2f}GB "
                      f"{est.driver_bytes / m['peak_rss']:>6.2f} {est.disk_bytes / 1e6:>8.1f}MB {m['disk'] / 1e6:>8.1f}MB "
                      f"{est.disk_bytes / max(m['disk'], 1):>6.2f} {m['wall']:>7.1f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
