"""Record a batch's numbers, for a test that later code must reproduce.

Run:  python tools/record_batch.py BATCH OUT_FOLDER

Runs the batch serially in memory with whatever ``stressgrid`` is importable, with one BLAS thread (as
the driver prepares a batch: the last bits of the covariance and propagation steps depend on the
number of BLAS threads), and writes ``risk_metrics.parquet``, ``contributions.parquet`` and
``scenarios.parquet`` (scenario, family, pnl) into OUT_FOLDER.  ``tests/data/recorded/`` was written
this way from the code before streamed runs (commit 95613fa, imported from a worktree of that commit in
a folder named ``stressgrid`` whose parent is first on ``PYTHONPATH``), so that
``tests/grid/test_stream.py`` compares today's streamed run with it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    import stressgrid

    batch, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, so that the limit below covers it too)
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory() as run, threadpool_limits(limits=1, user_api="blas"):
        res = stressgrid.run_batch(batch, Path(run) / "out", serial=True)
        res["risk_metrics"].to_parquet(out / "risk_metrics.parquet", index=False)
        res["contributions"].to_parquet(out / "contributions.parquet", index=False)
        res["scenarios"][["scenario", "family", "pnl"]].to_parquet(out / "scenarios.parquet", index=False)
    print(f"recorded {batch} with stressgrid from {Path(stressgrid.__file__).parent} into {out}")


if __name__ == "__main__":
    main()
