"""What follows a run, and what the ``report``, ``runs`` and ``compare`` commands print.

The click commands themselves live in ``cli.py``; these are the library calls they make.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, StressGridError
from stressgrid.core.measures import level_label
from stressgrid.core.storage import is_uri

from ._html import write_report
from ._limits import Limits, evaluate_limits, load_limits, write_breaches
from ._rundir import open_run
from ._schema import check_run_dir
from ._store import compare_runs, list_runs, store_run
from ._terminal import money, terminal_console, plural, print_breaches, print_summary, _esc

__all__ = ["BREACH_EXIT_CODE", "DEFAULT_STORE", "default_store", "finish_run", "print_runs", "print_comparison"]

#: exit code when a limit is breached and --fail-on-breach is given (2: input, 3: infeasible, 4: task failure)
BREACH_EXIT_CODE = 5
#: the results store used when none is given: $STRESSGRID_STORE, else runs/store
DEFAULT_STORE = "runs/store"


def default_store() -> Path | str:
    """The results store used when none is given: ``$STRESSGRID_STORE`` (a folder or a URI), else
    ``runs/store``."""
    value = os.environ.get("STRESSGRID_STORE") or DEFAULT_STORE
    return value if is_uri(value) else Path(value)


def finish_run(run_dir: str | Path, console=None, limits: str | Path | Limits | None = None,
               fail_on_breach: bool = False, html: bool = True, out: str | Path | None = None,
               summary: bool = True) -> int:
    """What follows a run (or ``stressgrid report``): the terminal summary, the limits evaluated and
    written as ``breaches.parquet``, the HTML report written and its path printed.

    Parameters
    ----------
    run_dir : the run directory
    console : a ``rich.console.Console`` (default: standard output)
    limits : a limits file, or :class:`reports.Limits`; without it, an existing ``breaches.parquet`` is
        reported
    fail_on_breach : return :data:`BREACH_EXIT_CODE` when a limit is breached (after writing everything)
    html : write the HTML report (to ``out``, default ``run_dir/report.html``)
    summary : print the terminal summary

    Returns
    -------
    The exit code: 0, or :data:`BREACH_EXIT_CODE` with ``fail_on_breach`` and a breach.
    """
    console = console if console is not None else terminal_console()
    run = open_run(run_dir)
    problems = check_run_dir(run.path, run.parts)
    lim = load_limits(limits) if isinstance(limits, (str, Path)) else limits
    breaches = None
    nav_note = None
    if lim is not None:
        breaches = evaluate_limits(run, lim)
        write_breaches(breaches, run.path)
        run_nav = run.manifest.get("nav")
        if lim.nav is not None and isinstance(run_nav, (int, float)) and not np.isclose(lim.nav, run_nav, rtol=1e-9):
            nav_note = (f"the limits file's nav ({money(lim.nav)}) is not the run's ({money(run_nav)}); limits in % of "
                        f"NAV are checked against the limits file's")
    elif run.has("breaches"):
        breaches = run.table("breaches")
    elif fail_on_breach:
        raise ConfigError("--fail-on-breach: no limits to check: give --limits FILE")
    if summary:
        print_summary(run, console)
    if problems:
        shown = "; ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
        console.print(f"[yellow]note:[/] the run directory does not follow the results schema: {_esc(shown)}")
    if breaches is not None:
        print_breaches(breaches, console)
    if nav_note is not None:
        console.print(f"[yellow]note:[/] {_esc(nav_note)}")
    if html:
        with console.status("writing the HTML report"):
            path = write_report(run, out, limits=lim, breaches=breaches)
        console.print(f"report: {_esc(path)}")
    n = 0 if breaches is None else int(breaches["breached"].sum())
    if fail_on_breach and n:
        print(f"breach: {n} of {plural(len(breaches), 'limit check')} breached (breaches.parquet in {run.path})", file=sys.stderr)
        return BREACH_EXIT_CODE
    return 0


def print_runs(store: str | Path | None = None, batch: str | None = None, console=None) -> None:
    """Print the runs in the results ``store`` (default :func:`default_store`), oldest first."""
    from rich.table import Table

    root = store or default_store()
    df = list_runs(root, batch)
    console = console if console is not None else terminal_console()
    if df.empty:
        console.print(f"no runs in {root}" + (f" for batch {batch!r}" if batch else ""))
        return
    t = Table(title=f"Runs in {root}", title_justify="left")
    for c in ("run date", "batch", "run id", "as of", "scenarios", "positions", "stressed VaR", "level", "family", "breaches"):
        t.add_column(c, justify="right" if c in ("scenarios", "positions", "stressed VaR", "level", "breaches") else "left")
    for _, r in df.iterrows():
        t.add_row(r["run_date"], r["batch"], r["run_id"], str(r["as_of"]), str(r["scenarios"]), str(r["positions"]),
                  "" if pd.isna(r["stressed_var"]) else money(r["stressed_var"]),
                  "" if pd.isna(r["stressed_var_confidence"]) else level_label(r["stressed_var_confidence"]),
                  str(r["stressed_var_family"] or ""), "" if pd.isna(r["breaches"]) else str(r["breaches"]))
    console.print(t)


def _row_money(r) -> Callable[[float], str]:
    """The format of a row of ``compare``: millions, or thousands when both runs' values are under a million,
    so that the change reads as the difference of the two figures shown (0.21m and 0.19m: a change of -0.01m)."""
    small = max(abs(r["value_a"]) if pd.notna(r["value_a"]) else 0.0, abs(r["value_b"]) if pd.notna(r["value_b"]) else 0.0) < 1e6
    if small:
        return lambda v: "" if pd.isna(v) else f"{v / 1e3:,.1f}k"
    return lambda v: "" if pd.isna(v) else money(v)


def print_comparison(run_a: str | Path, run_b: str | Path, show_all: bool = False, console=None) -> None:
    """Print what changed from ``run_a`` to ``run_b`` (run directories or stored runs), and by how much."""
    from rich.table import Table

    cmp = compare_runs(run_a, run_b)
    console = console if console is not None else terminal_console()
    diff = cmp.info[~cmp.info["same"]]
    if len(diff):
        t = Table(title="Inputs that differ", title_justify="left")
        for c in ("", "A", "B"):
            t.add_column(c)
        for _, r in diff.iterrows():
            t.add_row(r["key"], str(r["value_a"]), str(r["value_b"]))
        console.print(t)
    m = cmp.metrics
    book = m[m["level"] == "book"]
    changed = book if show_all else book[~np.isclose(book["value_a"].fillna(np.inf), book["value_b"].fillna(np.inf),
                                                      rtol=1e-12, atol=0) | book["value_a"].isna() | book["value_b"].isna()]
    if changed.empty:
        console.print("risk metrics: no change")
    else:
        t = Table(title="Risk metrics, A -> B (losses positive, but mean: gains positive)", title_justify="left")
        for c in ("family", "metric", "confidence", "A", "B", "change", "change %"):
            t.add_column(c, justify="left" if c in ("family", "metric") else "right")
        for _, r in changed.iterrows():
            fmt = (lambda v: "" if pd.isna(v) else f"{v:,.0f}") if r["metric"] == "scenarios" else _row_money(r)
            t.add_row(_esc(r["family"]), _esc(r["metric"]), "" if pd.isna(r["confidence"]) else level_label(r['confidence']),
                      fmt(r["value_a"]), fmt(r["value_b"]), fmt(r["change"]),
                      "" if pd.isna(r["change_pct"]) else f"{r['change_pct']:+.1%}")
        console.print(t)
    contrib = m[m["level"] != "book"]
    changed = contrib if show_all else contrib[~np.isclose(contrib["value_a"].fillna(np.inf), contrib["value_b"].fillna(np.inf),
                                                           rtol=1e-12, atol=0) | contrib["value_a"].isna() | contrib["value_b"].isna()]
    if len(contrib) and changed.empty:
        console.print("CVaR contributions: no change")
    elif len(changed):
        t = Table(title="CVaR contributions by asset class and sleeve, A -> B (losses positive)", title_justify="left")
        for c in ("family", "confidence", "level", "group", "A", "B", "change", "change %"):
            t.add_column(c, justify="right" if c in ("confidence", "A", "B", "change", "change %") else "left", overflow="fold")
        for _, r in changed.iterrows():
            fmt = _row_money(r)
            t.add_row(_esc(r["family"]), "" if pd.isna(r["confidence"]) else level_label(r["confidence"]), _esc(r["level"]),
                      _esc(r["group_name"]), fmt(r["value_a"]), fmt(r["value_b"]), fmt(r["change"]),
                      "" if pd.isna(r["change_pct"]) else f"{r['change_pct']:+.1%}")
        console.print(t)
    pos = cmp.positions[cmp.positions["status"] != "unchanged"]
    if pos.empty:
        console.print("positions: no change")
    else:
        t = Table(title="Positions that differ", title_justify="left")
        for c in ("id", "status", "quantity A", "quantity B"):
            t.add_column(c, justify="right" if c.startswith("quantity") else "left")
        for _, r in pos.iterrows():
            t.add_row(str(r["position_id"]), r["status"], "" if pd.isna(r["quantity_a"]) else f"{r['quantity_a']:,.2f}",
                      "" if pd.isna(r["quantity_b"]) else f"{r['quantity_b']:,.2f}")
        console.print(t)
