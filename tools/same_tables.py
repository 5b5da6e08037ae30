"""Check that two run directories hold the same tables, value for value.

    python tools/same_tables.py RUN_A RUN_B [--rtol 1e-12]

Every table of either directory, a Parquet file or a folder of part files (``scenarios/``, ...; read as one
table, as reports read it), must exist in both with the same columns, types and values (exact equality
unless ``--rtol`` is given; NaN equals NaN). The manifest is compared without its timings, package versions and
paths. Used to show that a change of code leaves every number of a run unchanged. Exit code 1 on any
difference, listing each one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

#: manifest keys that differ between two runs of the same batch by design
VOLATILE = {"timings_seconds", "versions", "started", "finished", "out", "run_dir", "created", "host", "python",
            "path", "book"}
#: manifest counts that say how the work was spread (serial or on Ray, how many workers), not what it gave
VOLATILE_COUNTS = {"workers", "tasks_in_driver", "tasks_resumed", "gpus_per_task"}


def _timing(column: str) -> bool:
    """Columns of wall-clock times (``seconds``, ``garch_fit_seconds``): different in every run."""
    return column == "seconds" or column.endswith("_seconds")


def _strip(obj, parent: str = ""):
    if isinstance(obj, dict):
        drop = VOLATILE | (VOLATILE_COUNTS if parent == "counts" else set())
        return {k: _strip(v, k) for k, v in obj.items() if k not in drop}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def tables(run: Path) -> set[str]:
    """The tables of a run directory: its Parquet files and its folders of part files."""
    from stressgrid.reports import PARTITIONED_TABLES

    return {p.stem for p in run.glob("*.parquet")} | {n for n in PARTITIONED_TABLES if (run / n).is_dir()}


def compare(a: Path, b: Path, rtol: float = 0.0) -> list[str]:
    from stressgrid.reports import RunDir

    problems = []
    ra, rb = RunDir(a), RunDir(b)
    ta, tb = tables(a), tables(b)
    for name in sorted(ta | tb):
        if name not in ta or name not in tb:
            problems.append(f"{name}: only in {'the second' if name not in ta else 'the first'} run")
            continue
        x, y = ra.table(name), rb.table(name)
        x, y = (t.drop(columns=[c for c in t.columns if _timing(c)]) for t in (x, y))
        try:
            if rtol:
                pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=rtol, atol=0.0)
            else:
                pd.testing.assert_frame_equal(x, y, check_exact=True)
        except AssertionError as exc:
            problems.append(f"{name}: {str(exc).splitlines()[0]}")
    ma, mb = (_strip(json.loads((d / "manifest.json").read_text())) for d in (a, b))
    for key in sorted(set(ma) | set(mb)):
        if ma.get(key) != mb.get(key):
            problems.append(f"manifest.json, {key}: {str(ma.get(key))[:80]} != {str(mb.get(key))[:80]}")
    return problems


def main(argv: list[str]) -> int:
    rtol = 0.0
    if "--rtol" in argv:
        i = argv.index("--rtol")
        rtol = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = Path(argv[0]), Path(argv[1])
    problems = compare(a, b, rtol)
    n = len(tables(a) | tables(b))
    for p in problems:
        print(p)
    print(f"{n} tables compared: {'identical' if not problems else f'{len(problems)} differences'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
