"""Click commands of the reports: ``report``, ``store``, ``runs`` and ``compare``.

They are registered on the ``stressgrid`` group in ``cli.py`` (``main.add_command(...)``); each maps
stressgrid errors to one line ``error: ...`` on stderr and the error's exit code, and a breached limit
under ``--fail-on-breach`` to :data:`BREACH_EXIT_CODE`.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd

from stressgrid.core import ConfigError, StressGridError

from ._html import write_report
from ._limits import Limits, evaluate_limits, load_limits, write_breaches
from ._rundir import open_run
from ._schema import check_run_dir
from ._store import compare_runs, list_runs, store_run
from ._terminal import money, print_breaches, print_summary, _esc

__all__ = ["BREACH_EXIT_CODE", "DEFAULT_STORE", "report_command", "store_command", "runs_command", "compare_command",
           "COMMANDS", "finish_run"]

#: exit code when a limit is breached and --fail-on-breach is given (2: input, 3: infeasible, 4: task failure)
BREACH_EXIT_CODE = 5
#: the results store used when none is given: $STRESSGRID_STORE, else runs/store
DEFAULT_STORE = "runs/store"


def _default_store() -> Path:
    return Path(os.environ.get("STRESSGRID_STORE") or DEFAULT_STORE)


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StressGridError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def _console(quiet: bool = False):
    from rich.console import Console

    console = Console(quiet=quiet, highlight=False)
    if not console.is_terminal:
        console = Console(quiet=quiet, highlight=False, width=140)
    return console


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
    console = console if console is not None else _console()
    run = open_run(run_dir)
    problems = check_run_dir(run.path)
    lim = load_limits(limits) if isinstance(limits, (str, Path)) else limits
    breaches = None
    if lim is not None:
        breaches = evaluate_limits(run, lim)
        write_breaches(breaches, run.path)
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
    if html:
        with console.status("writing the HTML report"):
            path = write_report(run, out, limits=lim, breaches=breaches)
        console.print(f"report: {_esc(path)}")
    n = 0 if breaches is None else int(breaches["breached"].sum())
    if fail_on_breach and n:
        click.echo(f"breach: {n} of {len(breaches)} limit checks breached (breaches.parquet in {run.path})", err=True)
        return BREACH_EXIT_CODE
    return 0


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: RUN_DIR/report.html).")
@click.option("--limits", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Limits file (YAML): checked against the run, written to RUN_DIR/breaches.parquet and listed in the report.")
@click.option("--fail-on-breach", is_flag=True,
              help=f"Exit with code {BREACH_EXIT_CODE} when a limit is breached (after writing the report).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and breaches.")
@_handle_errors
def report_command(run_dir: Path, out, limits, fail_on_breach: bool, quiet: bool) -> None:
    """Write the HTML report of RUN_DIR (a directory written by 'stressgrid run') and print its summary.

    The report is one file that opens offline: headline figures, VaR and CVaR per family, P&L per
    scenario and its distribution, contributions by asset class and sleeve, liquidity, capacity,
    re-optimisation and monitoring when the run has them, and the limits checked.
    """
    code = finish_run(run_dir, _console(quiet), limits, fail_on_breach, html=True, out=out)
    sys.exit(code)


@click.command("store")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("store", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--run-id", default=None, help="Id of the run in the store (default: start time and batch hash).")
@_handle_errors
def store_command(run_dir: Path, store, run_id) -> None:
    """Append RUN_DIR to the results STORE (default $STRESSGRID_STORE, else runs/store).

    The run is copied to STORE/run_date=YYYY-MM-DD/batch=NAME/run=RUN_ID/ (tables, manifest, report).
    """
    dest = store_run(run_dir, store or _default_store(), run_id)
    click.echo(f"stored: {dest}")


@click.command("runs")
@click.argument("store", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--batch", default=None, help="Only the runs of this batch.")
@_handle_errors
def runs_command(store, batch) -> None:
    """List the runs in the results STORE (default $STRESSGRID_STORE, else runs/store), oldest first."""
    from rich.table import Table

    root = store or _default_store()
    df = list_runs(root, batch)
    console = _console()
    if df.empty:
        console.print(f"no runs in {root}" + (f" for batch {batch!r}" if batch else ""))
        return
    t = Table(title=f"Runs in {root}", title_justify="left")
    for c in ("run date", "batch", "run id", "as of", "scenarios", "positions", "stressed VaR", "family", "breaches"):
        t.add_column(c, justify="right" if c in ("scenarios", "positions", "stressed VaR", "breaches") else "left")
    for _, r in df.iterrows():
        t.add_row(r["run_date"], r["batch"], r["run_id"], str(r["as_of"]), str(r["scenarios"]), str(r["positions"]),
                  "" if pd.isna(r["stressed_var"]) else money(r["stressed_var"]), str(r["stressed_var_family"] or ""),
                  "" if pd.isna(r["breaches"]) else str(r["breaches"]))
    console.print(t)


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--all", "show_all", is_flag=True, help="Show every metric, also those that did not change.")
@_handle_errors
def compare_command(run_a: Path, run_b: Path, show_all: bool) -> None:
    """Compare two runs (run directories or stored runs): what changed from RUN_A to RUN_B, and by how much."""
    from rich.table import Table

    cmp = compare_runs(run_a, run_b)
    console = _console()
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
        t = Table(title="Risk metrics, A -> B (losses positive)", title_justify="left")
        for c in ("family", "metric", "confidence", "A", "B", "change", "change %"):
            t.add_column(c, justify="left" if c in ("family", "metric") else "right")
        for _, r in changed.iterrows():
            fmt = (lambda v: "" if pd.isna(v) else f"{v:,.0f}") if r["metric"] == "scenarios" else (lambda v: "" if pd.isna(v) else money(v))
            t.add_row(_esc(r["family"]), _esc(r["metric"]), "" if pd.isna(r["confidence"]) else f"{r['confidence']:.0%}",
                      fmt(r["value_a"]), fmt(r["value_b"]), fmt(r["change"]),
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
            t.add_row(str(r["id"]), r["status"], "" if pd.isna(r["quantity_a"]) else f"{r['quantity_a']:,.2f}",
                      "" if pd.isna(r["quantity_b"]) else f"{r['quantity_b']:,.2f}")
        console.print(t)


#: the commands to register on the stressgrid group
COMMANDS = (report_command, store_command, runs_command, compare_command)
