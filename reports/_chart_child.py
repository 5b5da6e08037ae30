"""``python -m stressgrid.reports._chart_child RUN_DIR NAME ...``: charts of a run drawn in a process of
their own, printed as one JSON object ``{name: svg or null}`` on standard output.

:func:`reports.render_report` starts it to draw some charts while it draws the others and writes the
tables (matplotlib holds the interpreter lock: threads would not run side by side).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> None:
    from . import _charts
    from ._rundir import open_run

    run_dir, names = argv[0], argv[1:]
    unknown = [n for n in names if n not in _charts.IN_CHILD]
    if unknown:
        raise SystemExit(f"not a chart drawn in a second process: {unknown[0]!r}")
    run = open_run(run_dir)
    json.dump({n: getattr(_charts, n)(run) for n in names}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
