"""`stressgrid run` as users run it on batches of every size: quiet, plain (output to a pipe) and in a
pseudo-terminal (the progress bar), with the scenario x position table kept and not kept.

A batch above the scenario table's cap returns summaries only from its tasks (``ChunkResult.pnl`` is
None); the progress callback once read the P&L's length and every such run crashed at its first task.
"""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from stressgrid.grid import AUTO_POSITION_CELLS

ROOT = Path(__file__).resolve().parents[1]
DEMO_BOOK = ROOT / "examples" / "demo_book.csv"


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("stressgrid")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stressgrid.cli"]


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}


def _batch(d: Path, n: int, table: str) -> Path:
    """The demo book under one Student-t Monte Carlo family of ``n`` 10-day scenarios."""
    shutil.copy(DEMO_BOOK, d / "book.csv")
    demo = (ROOT / "examples" / "demo_batch.yaml").read_text()
    market = demo[demo.index("market:"):demo.index("scenarios:")]  # the demo's flat factors and levels
    p = d / "batch.yaml"
    p.write_text(textwrap.dedent(f"""\
        name: large
        book: book.csv
        seed: 7
        nav: 250000000
        """) + market + textwrap.dedent(f"""\
        scenarios:
          - kind: montecarlo
            name: mc_t
            model: student_t
            estimator: ledoit_wolf
            window: {{end: 2018-12-31, lookback_days: 750}}
            n_scenarios: {n}
            horizon_days: 10
        outputs:
          scenario_pnl: {table}
        """))
    return p


def _run_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_cli() + args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _run_pty(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run in a pseudo-terminal, as from an interactive shell: the CLI sees a terminal and shows its bar."""
    leader, follower = pty.openpty()
    env = _env() | {"TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(_cli() + args, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower,
                            close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 600)
        if not ready:
            proc.kill()
            raise AssertionError("no output for 600 s")
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def _outputs(out: Path, n: int, table: bool) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["scenarios"] == n
    rm = pd.read_parquet(out / "risk_metrics.parquet")
    assert rm["value"].notna().all() and len(rm) > 0
    assert (out / "scenario_pnl.parquet").exists() == table


@pytest.mark.slow
def test_a_batch_above_the_tables_cap_runs_in_every_terminal_mode(tmp_path):
    """The demo book with enough scenarios that ``auto`` drops the scenario x position table: in a pipe,
    with --quiet, and in a pseudo-terminal; the numbers are the same in all three."""
    n_pos = len(pd.read_csv(DEMO_BOOK))
    n = AUTO_POSITION_CELLS // n_pos + 2_000
    batch = _batch(tmp_path, n, "auto")

    plain = _run_pipe(["run", str(batch), "--out", "plain", "--serial", "--no-report"], tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "Traceback" not in plain.stderr and "VaR 99%" in plain.stdout
    _outputs(tmp_path / "plain", n, table=False)

    quiet = _run_pipe(["run", str(batch), "--out", "quiet", "--serial", "--no-report", "--quiet"], tmp_path)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stdout.strip() == "" and "Traceback" not in quiet.stderr

    code, text = _run_pty(["run", str(batch), "--out", "tty", "--serial", "--no-report"], tmp_path)
    assert code == 0, text
    assert "Traceback" not in text and "VaR 99%" in text
    assert f"{n}/{n}" in text  # the bar reached the end (rich's completed/total column)
    assert "starting: inputs, scenarios, workers" in text  # what it does before the first task ends
    _outputs(tmp_path / "tty", n, table=False)

    a = pd.read_parquet(tmp_path / "plain" / "risk_metrics.parquet")
    for other in ("quiet", "tty"):
        b = pd.read_parquet(tmp_path / other / "risk_metrics.parquet")
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("table", ["true", "false"])
def test_the_progress_bar_with_and_without_the_scenario_table(tmp_path, table):
    """In a pseudo-terminal, through Ray as by default: tasks that return their P&L and tasks that
    return summaries only both advance the bar to the end."""
    batch = _batch(tmp_path, 3000, table)
    code, text = _run_pty(["run", str(batch), "--out", "out", "--no-report", "--workers", "2"], tmp_path)
    assert code == 0, text
    assert "Traceback" not in text and "VaR 99%" in text and "3000/3000" in text
    _outputs(tmp_path / "out", 3000, table=table == "true")
