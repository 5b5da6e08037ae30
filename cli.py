"""stressgrid command line: parse, call the library, map errors to one line and an exit code."""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
from pathlib import Path

import click

from stressgrid.core import StressGridError

EXAMPLES = Path(__file__).resolve().parent / "examples"
DEMO_BATCH = EXAMPLES / "demo_batch.yaml"
TOUR_BATCH = EXAMPLES / "tour_batch.yaml"


def _where(value: str | None):
    """A run directory as given on the command line: a URI (``s3://bucket/prefix``) as text, else a ``Path``
    (a ``click.Path`` of type ``Path`` would collapse the URI's ``//``)."""
    from stressgrid.core.storage import is_uri

    return value if value is None or is_uri(value) else Path(value)


#: the files a run's report writes after the run, copied to the run's URI when it has one
AFTER_RUN = ("report.html", "breaches.parquet")
#: the help text of an --out that may be a URI
OUT_HELP = ("Directory for the Parquet tables and manifest.json, or a URI of object storage (s3://BUCKET/PREFIX, "
            "gs://..., any file system Arrow opens; credentials from the environment).")


def _fail(message: str, code: int) -> None:
    for line in str(message).splitlines() or [""]:  # several problems: one a line
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Map stressgrid errors to ``error: ...`` on stderr and the error's exit code (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StressGridError as exc:
            _fail(str(exc), exc.exit_code)
        except OSError as exc:  # a file or folder that cannot be read or written: its path and the reason
            where = f"{exc.filename}: " if exc.filename else ""
            hint = ""
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                hint = ("; finished tasks are checkpointed in --out/tasks: free some space and continue with "
                        "'stressgrid run BATCH --out DIR --resume'")
            _fail(f"{where}{exc.strerror or exc}{hint}", 2)
        except KeyboardInterrupt:
            _fail("interrupted; finished tasks are checkpointed in --out/tasks: "
                  "continue with 'stressgrid run BATCH --out DIR --resume'", 130)

    return wrapper


def allow_outside_option(fn):
    return click.option("--allow-outside-paths", is_flag=True,
                        help="Let the batch file name a book or history file outside its own folder (refused by default).")(fn)


def force_option(fn):
    return click.option("--force", is_flag=True,
                        help="Run even when the estimated memory or output size exceeds what this machine or --out has.")(fn)


def validate_force_option(fn):
    return click.option("--force", is_flag=True,
                        help="Pass the batch when the estimated memory or output size exceeds what this machine or --out "
                             "has, as 'run --force' would run it.")(fn)


def run_options(fn):
    """Options shared by the commands that run a batch."""
    fn = click.option("--history", type=click.Path(dir_okay=False), default=None,
                      help="Factor history (CSV or Parquet: a 'date' column and one column per factor name), merged over the "
                           "bundled history; it replaces the batch's history section.")(fn)
    fn = click.option("--address", default=None,
                      help="Join an existing Ray cluster: auto, HOST:PORT or ray://HOST:10001; the batch runs there whatever its "
                           "executor (--serial wins over it). Default: the batch's executor (ray: an embedded local "
                           "instance; serial: this process).")(fn)
    fn = click.option("--workers", type=click.IntRange(min=1), default=None,
                      help="Tasks running at once: the CPUs of the embedded instance, or a cap on a cluster (default: every CPU). Results do not depend on it.")(fn)
    fn = click.option("--serial", is_flag=True, help="Run every task in this process, without Ray.")(fn)
    fn = click.option("--quiet", "-q", is_flag=True, help="Print no progress or summary, only errors.")(fn)
    fn = click.option("--limits", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help="Limits file (YAML; overrides the batch's limits section): breaches are listed and written to breaches.parquet.")(fn)
    fn = click.option("--fail-on-breach", is_flag=True,
                      help="Exit with code 5 when a limit is breached (after writing every output), so a scheduler can alert.")(fn)
    fn = click.option("--no-report", is_flag=True, help="Do not write the HTML report.")(fn)
    fn = allow_outside_option(fn)
    fn = force_option(fn)
    return fn


def _console(quiet: bool):
    from stressgrid import reports

    return reports.terminal_console(quiet)


@contextlib.contextmanager
def progress_bar(console):
    """A progress bar of scenarios done (tasks done, elapsed, ETA); yields the callback of
    :func:`stressgrid.run_batch` (it takes a :class:`stressgrid.grid.Progress`).  With
    ``STRESSGRID_PROGRESS=lines`` in the environment (a job that 'stressgrid submit' sent, whose log
    'stressgrid logs' shows), plain lines instead: see :func:`progress_lines`."""
    import os

    from stressgrid.cluster import PROGRESS_ENV

    if os.environ.get(PROGRESS_ENV, "").lower() == "lines":
        yield progress_lines(quiet=console.quiet)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks {task.fields[tasks]}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
    with bar:
        # until the first task ends, the inputs are loaded, the scenarios drawn and the workers started
        tid = bar.add_task("run", total=None, tasks="0", phase="starting: inputs, scenarios, workers")

        def advance(p) -> None:
            bar.update(tid, completed=p.scenarios_done, total=p.scenarios_total, tasks=f"{p.tasks_done}/{p.tasks_total}",
                       phase="scenarios")

        yield advance


def progress_lines(quiet: bool = False, step: float = 0.1, write=None):
    """The progress callback of a run whose output is a log, not a terminal: one line on stderr each time another
    ``step`` of the tasks has finished (every 10% by default, and the last task), e.g.
    ``progress: 3/30 tasks (10%), 3,000/30,000 scenarios, 12 s``; nothing when ``quiet``."""
    import time

    write = write or (lambda line: click.echo(line, err=True))
    t0 = time.monotonic()
    shown = {"next": step, "last": -1}

    def advance(p) -> None:
        if quiet or not p.tasks_total or p.tasks_done == shown["last"]:
            return
        frac = p.tasks_done / p.tasks_total
        if frac + 1e-9 < shown["next"] and p.tasks_done < p.tasks_total:
            return
        shown["last"] = p.tasks_done
        while shown["next"] <= frac + 1e-9:
            shown["next"] += step
        write(f"progress: {p.tasks_done}/{p.tasks_total} tasks ({frac:.0%}), "
              f"{p.scenarios_done:,}/{p.scenarios_total:,} scenarios, {time.monotonic() - t0:.0f} s")

    return advance


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stressgrid")
def main() -> None:
    """stressgrid: scenario and stress testing for multi-asset portfolios, on a laptop or a Ray cluster."""


def _history_note(batch, history) -> str | None:
    """The note that ``--history`` replaces the batch's own history section, when it has one."""
    if history is None or batch.history is None:
        return None
    named = ", ".join("bundled" if h == "bundled" else str(h.spec().label) for h in batch.history)
    return f"note: --history {history} replaces the batch's history section ({named}); the bundled history follows it"


def _run(batch_path: Path, out: Path, history, address, workers, serial, quiet, resume: bool = False,
         limits: Path | None = None, fail_on_breach: bool = False, no_report: bool = False,
         allow_outside_paths: bool = False, force: bool = False) -> None:
    from stressgrid import reports
    from stressgrid.grid import load_batch, run_batch

    console = _console(quiet)
    batch, digest = load_batch(batch_path, allow_outside_paths=allow_outside_paths)
    lim = reports.load_limits(limits) if limits is not None else (
        reports.parse_limits(batch.limits, f"batch file {batch_path}, limits") if batch.limits is not None else None)
    if lim is not None:  # a mistyped family fails now, not after the run
        reports.check_limit_families(lim, [s.name for s in batch.scenarios])
    if (note := _history_note(batch, history)) is not None:
        console.print(note, markup=False, highlight=False)
    with progress_bar(console) as advance:
        # --address names the cluster to run on, whatever the batch's executor
        use_serial = True if serial else (False if address else None)
        res = run_batch(batch, _where(out), history=history, serial=use_serial, address=address,
                        workers=workers, resume=resume, progress=advance, batch_hash=digest, force=force)
    try:
        code = reports.finish_run(res.run_dir, console, limits=lim, fail_on_breach=fail_on_breach, html=not no_report)
    except KeyboardInterrupt:  # the run is whole: only what follows it is missing
        where = res.uri or res.run_dir
        how = (f"'stressgrid report {where} --limits {limits}' writes the report and checks the limits" if limits is not None
               else f"'stressgrid report {where}' writes the report" + (
                   "; the batch's limits were not checked: continue with --resume to check them" if lim is not None else ""))
        _fail(f"interrupted after the run: its tables and manifest are written in {where}; {how}", 130)
    if res.uri is not None:
        reports.publish_run(res.run_dir, res.uri, AFTER_RUN)
        console.print(f"run written to {res.uri} (local copy: {res.run_dir})")
    if code:
        sys.exit(code)


@main.command()
@click.argument("batch", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(), required=True, help=OUT_HELP)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out: only the tasks without a checkpoint run.")
@run_options
@handle_errors
def run(batch: Path, out: str, history, address, workers, serial, quiet, resume, limits, fail_on_breach, no_report,
        allow_outside_paths, force) -> None:
    """Run the stress batch in BATCH (a YAML file) and write the results to --out.

    Each finished task is checkpointed in --out/tasks as it completes, so an interrupted run can be
    continued with --resume and gives the same numbers as an uninterrupted one.  With a URI as --out the
    tasks write the per-scenario tables there, the rest is kept in a local staging folder
    ($STRESSGRID_STAGE, else ~/.cache/stressgrid/runs) and copied to the URI when the run ends.
    """
    _run(batch, out, history, address, workers, serial, quiet, resume, limits, fail_on_breach, no_report,
         allow_outside_paths, force)


@main.command()
@click.option("--out", "-o", type=click.Path(), default="runs/demo", show_default=True, help=OUT_HELP)
@click.option("--full", is_flag=True,
              help="Run the whole demo batch (examples/demo_batch.yaml, about a minute on two cores) instead of the tour.")
@run_options
@handle_errors
def demo(out: str, full, history, address, workers, serial, quiet, limits, fail_on_breach, no_report, allow_outside_paths,
         force) -> None:
    """Run the bundled demo on the bundled market history: the tour (examples/tour_batch.yaml: crisis
    replays, an amplified sell-off, Monte Carlo, liquidity, a re-optimisation, limits and the report, in
    this process unless --address is given), or with --full the whole demo batch on Ray."""
    from stressgrid.core import ConfigError

    path = DEMO_BATCH if full else TOUR_BATCH
    if not path.exists():
        raise ConfigError(f"demo batch {path} not found: install stressgrid from a clone with 'pip install -e .'")
    _run(path, out, history, address, workers, serial, quiet, False, limits, fail_on_breach, no_report,
         allow_outside_paths, force)
    if not full and not quiet:
        _console(False).print("This was the tour. 'stressgrid demo --full' runs the whole demo batch on Ray (about a minute on "
                   "two cores): ten years of 10-day windows, a bootstrap, GARCH-DCC Monte Carlo, a sweep, predictive "
                   "stresses, a factor model, two more re-optimisations, covariance forecasters validated walk-forward, "
                   "regime rules and the delta-gamma-vega comparison.", markup=False, highlight=False)


def _size(n: float) -> str:
    """A number of bytes as a reader takes it in: 1.4 GB, 120 MB, 85 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.{1 if n < 10 * scale else 0}f} {unit}"
    return f"{n:,.0f} bytes"


@main.command()
@click.argument("batch", type=click.Path(path_type=Path))
@click.option("--history", type=click.Path(dir_okay=False), default=None, help="Factor history to validate against, merged over the bundled history, in place of the batch's history section.")
@click.option("--out", "-o", type=click.Path(), default=None,
              help="The run directory the batch would write to: its free space is checked against the output size "
                   "(for a URI: that a file can be written there; object storage has no free space to check).")
@allow_outside_option
@validate_force_option
@handle_errors
def validate(batch: Path, history, out, allow_outside_paths, force) -> None:
    """Check BATCH, its book, market data and scenarios without running it, and print the memory and
    output size it needs."""
    from stressgrid.grid import load_batch, prepare_inputs

    b, digest = load_batch(batch, allow_outside_paths=allow_outside_paths)
    if b.limits is not None:
        from stressgrid import reports

        reports.check_limit_families(reports.parse_limits(b.limits, f"batch file {batch}, limits"),
                                     [s.name for s in b.scenarios])
    if (note := _history_note(b, history)) is not None:
        click.echo(note)
    where = _where(out)
    if isinstance(where, str):
        from stressgrid.core.storage import Location

        Location(where).check()
    inputs = prepare_inputs(b, digest, history_path=history, out=None if isinstance(where, str) else where, force=force)
    p = inputs.prepared
    click.echo(
        f"ok: batch {b.name!r}: {p.n} positions ({int(p.priced.sum())} priced), "
        f"{inputs.n_scenarios} scenarios in {len(b.scenarios)} famil{'y' if len(b.scenarios) == 1 else 'ies'}, {len(inputs.market.factors)} factors, "
        f"as of {inputs.market.as_of.date()}"
    )
    est = inputs.estimate
    click.echo(f"needs: about {_size(est.driver_bytes)} of memory in the driver and {_size(est.disk_bytes)} "
               f"of tables for {est.total:,} scenarios")
    from stressgrid import reports
    from stressgrid.grid import not_streamed_because, position_table_note, windows_after

    why = not_streamed_because(b, inputs.n_scenarios, p.n, len(inputs.market.factors))
    if why:
        click.echo(f"note: {why}")
    unwritten = position_table_note(b, inputs.n_scenarios, p.n, inputs.streamed)
    if unwritten:
        click.echo(f"note: {unwritten}")
    late = windows_after(b, inputs.market.as_of)
    if late:
        click.echo(f"note: {reports.look_ahead_note(late, str(inputs.market.as_of.date()))}")
    if inputs.streamed:
        click.echo("streamed: the tasks draw the random families' scenarios and write the per-scenario tables "
                   "as folders of part files (scenarios/, breakdown/, ...); the driver keeps summaries and the tail")
    aged = {}
    for name, code in inputs.family_books.items():
        if code:
            aged.setdefault(inputs.books[code].at.date(), []).append(name)
    for at, names in aged.items():
        click.echo(f"horizon: {', '.join(names)} revalue the book at {at} (time passes: decay, carry, expiries; "
                   f"'revaluation: instantaneous' values it at the as-of date)")
    bases = list(dict.fromkeys(pt.base for pt in b.sweep_points))
    for base in bases:
        n = sum(pt.base == base for pt in b.sweep_points)
        click.echo(f"sweep: {base!r} expands into {n} families")
    if p.unpriced_types:
        click.echo(f"note: instrument types not priced yet: {', '.join(p.unpriced_types)}")
    from stressgrid.grid import guard_notes

    for line in guard_notes(inputs):
        click.echo(f"warning: {line}")


def jobs_address(fn):
    return click.option("--address", envvar="STRESSGRID_JOBS_ADDRESS", default="http://127.0.0.1:8265", show_default=True,
                        help="The cluster's Ray Jobs API (its dashboard address); or set STRESSGRID_JOBS_ADDRESS.")(fn)


@main.command()
@click.argument("batch", type=click.Path(path_type=Path))
@jobs_address
@click.option("--out", "remote_out", default=None,
              help="Run directory on the cluster (a path on the head node or shared storage). Default: /tmp/stressgrid/runs/JOB.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Tasks in flight at once (default: the cluster's CPUs).")
@click.option("--ship-code", is_flag=True, help="Send this checkout's source with the job (for a cluster that has the dependencies but not stressgrid).")
@click.option("--pip", "pip", multiple=True, help="A package the cluster installs for this job (repeatable).")
@click.option("--wait", is_flag=True, help="Stream the job's log and wait until it ends; exit non-zero if it fails.")
@allow_outside_option
@handle_errors
def submit(batch: Path, address: str, remote_out, workers, ship_code: bool, pip, wait: bool, allow_outside_paths) -> None:
    """Submit BATCH to a Ray cluster through its Jobs API and print the job id.

    The batch is validated here first; its book and history file travel with it.  Follow it with
    'stressgrid status JOB', 'stressgrid logs JOB' and bring the results back with 'stressgrid fetch JOB'.
    """
    from stressgrid.cluster import follow_logs, job_status, wait_for_job
    from stressgrid.grid import submit_batch

    job = submit_batch(batch, address, out=remote_out, ship_code=ship_code, workers=workers, pip=list(pip) or None,
                       allow_outside_paths=allow_outside_paths)
    click.echo(job)
    if wait:
        from stressgrid.cluster import job_failure

        follow_logs(address, job, lambda text: click.echo(text, nl=False, err=True))
        wait_for_job(address, job)  # the log stream can close a moment before the status is final
        st = job_status(address, job)
        if st["status"] != "SUCCEEDED":
            raise job_failure(job, st["status"], st["message"])  # one line; what to do when the cause is known


@main.command()
@click.argument("job")
@jobs_address
@handle_errors
def status(job: str, address: str) -> None:
    """Status of JOB: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED, with its run directory."""
    from stressgrid.cluster import job_status

    st = job_status(address, job)
    click.echo(f"{st['job']}: {st['status']}")
    for key in ("batch", "out", "start", "end"):
        if st.get(key):
            click.echo(f"  {key}: {st[key]}")
    message = (st.get("message") or "").strip()
    if message:  # a failed job's message carries the end of its log: its first line here, the log with 'logs'
        more = f" (the whole log: 'stressgrid logs {job}')" if "\n" in message else ""
        click.echo(f"  message: {message.splitlines()[0].strip()}{more}")
    if st.get("hint"):
        click.echo(f"  hint: {st['hint']}")


@main.command()
@click.argument("job")
@jobs_address
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the job ends.")
@handle_errors
def logs(job: str, address: str, follow: bool) -> None:
    """Print the log of JOB: a submitted batch's progress (a line every 10% of its tasks) and its summary.

    When the job failed of a known cause (stressgrid or a package missing on the cluster, ...), a last line
    on stderr says what to do.
    """
    from stressgrid.cluster import explain_failure, follow_logs, job_logs, job_status

    if follow:
        seen: list[str] = []

        def write(text: str) -> None:
            seen.append(text)
            click.echo(text, nl=False)

        follow_logs(address, job, write)
        text = "".join(seen)
    else:
        text = job_logs(address, job)
        click.echo(text, nl=False)
    if job_status(address, job)["status"] in ("FAILED", "STOPPED"):
        hint = explain_failure(text)
        if hint:
            click.echo(f"hint: {hint}", err=True)


@main.command()
@click.argument("job")
@jobs_address
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Local directory for the run's tables and manifest.")
@handle_errors
def fetch(job: str, address: str, out: Path) -> None:
    """Copy the run directory of a finished JOB from the cluster into --out."""
    from stressgrid.cluster import fetch_run

    path = fetch_run(address, job, out)
    click.echo(f"fetched {job} into {path}")


@main.command("report")
@click.argument("run_dir", type=click.Path())
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: RUN_DIR/report.html).")
@click.option("--limits", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Limits file (YAML): checked against the run, written to RUN_DIR/breaches.parquet and listed in the report.")
@click.option("--fail-on-breach", is_flag=True,
              help="Exit with code 5 when a limit is breached (after writing the report).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and breaches.")
@handle_errors
def report(run_dir: str, out, limits, fail_on_breach: bool, quiet: bool) -> None:
    """Write the HTML report of RUN_DIR (a directory written by 'stressgrid run', or the URI of a run written
    to object storage) and print its summary.

    The report is one file that opens offline: headline figures, VaR and CVaR per family, P&L per
    scenario and its distribution, contributions by asset class and sleeve, liquidity, capacity,
    re-optimisation and monitoring when the run has them, and the limits checked.  For a URI the run's
    small files are copied into a local staging folder, its part files are read where they are, and the
    report (and breaches.parquet) are copied back to the URI unless --out names the HTML file.
    """
    from stressgrid import reports

    target = _where(run_dir)
    run = reports.open_run(target)
    code = reports.finish_run(run, _console(quiet), limits, fail_on_breach, html=True, out=out)
    if isinstance(target, str) and (out is None or limits is not None):
        reports.publish_run(run.path, target, AFTER_RUN)
    sys.exit(code)


@main.command("store")
@click.argument("run_dir", type=click.Path())
@click.argument("store", type=click.Path(file_okay=False), required=False)
@click.option("--run-id", default=None, help="Id of the run in the store (default: start time and batch hash).")
@handle_errors
def store(run_dir: str, store, run_id) -> None:
    """Append RUN_DIR to the results STORE (default $STRESSGRID_STORE, else runs/store).

    The run is copied to STORE/run_date=YYYY-MM-DD/batch=NAME/run=RUN_ID/ (tables with their part files,
    manifest, report). STORE is a folder or a URI of object storage (s3://BUCKET/PREFIX, gs://...;
    credentials from the environment).
    """
    from stressgrid import reports

    click.echo(f"stored: {reports.store_run(_where(run_dir), _where(store) or reports.default_store(), run_id)}")


@main.command("runs")
@click.argument("store", type=click.Path(file_okay=False), required=False)
@click.option("--batch", default=None, help="Only the runs of this batch.")
@handle_errors
def runs(store, batch) -> None:
    """List the runs in the results STORE (default $STRESSGRID_STORE, else runs/store), oldest first.

    STORE is a folder or a URI of object storage."""
    from stressgrid import reports

    reports.print_runs(_where(store), batch, _console(False))


@main.command("compare")
@click.argument("run_a", type=click.Path())
@click.argument("run_b", type=click.Path())
@click.option("--all", "show_all", is_flag=True, help="Show every metric, also those that did not change.")
@handle_errors
def compare(run_a: Path, run_b: Path, show_all: bool) -> None:
    """Compare two runs (run directories or stored runs): what changed from RUN_A to RUN_B, and by how much."""
    from stressgrid import reports

    reports.print_comparison(_where(run_a), _where(run_b), show_all, _console(False))


if __name__ == "__main__":
    main()
