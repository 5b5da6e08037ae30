"""Failures of the output folder as a user meets them: one line, exit code 2, nothing half-written, and
after a full disk the finished tasks kept for --resume."""

import errno
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def batch(tmp_path):
    shutil.copy(ROOT / "tests" / "data" / "linear_book.csv", tmp_path / "linear_book.csv")
    text = (ROOT / "tests" / "data" / "linear_batch.yaml").read_text() + "execution: {chunk_size: 512}\n"
    (tmp_path / "batch.yaml").write_text(text)
    return tmp_path / "batch.yaml"


def _one_line(res) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [l for l in res.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def _run(batch, out, *extra):
    return CliRunner().invoke(main, ["run", str(batch), "--out", str(out), "--serial", "--no-report", *extra])


def test_out_under_a_file(batch, tmp_path):
    (tmp_path / "a_file").write_text("x")
    res = _run(batch, tmp_path / "a_file" / "run")
    assert res.exit_code == 2
    line = _one_line(res)
    assert "--out " in line and "cannot be used as the run directory" in line and "is a file, not a folder" in line


def test_out_where_nothing_can_be_created(batch):
    res = _run(batch, Path("/proc/no-such-folder/run"))
    assert res.exit_code == 2
    assert "cannot be used as the run directory" in _one_line(res)


def test_a_full_disk_mid_run_keeps_the_finished_tasks_and_resume_completes(batch, tmp_path, monkeypatch):
    import stressgrid.grid._store as store

    real = np.savez
    calls = {"n": 0}

    def full_after_two(fh, **arrays):
        calls["n"] += 1
        if calls["n"] > 2:
            fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(getattr(fh, "name", "")))
        return real(fh, **arrays)

    out = tmp_path / "out"
    monkeypatch.setattr(store.np, "savez", full_after_two)
    res = _run(batch, out)
    assert res.exit_code == 2
    line = _one_line(res)
    assert "No space left on device" in line and "--resume" in line
    tasks = out / "tasks"
    assert len(list(tasks.glob("task-*.npz"))) == 2
    assert not list(out.rglob("*.tmp"))  # no half-written checkpoint
    monkeypatch.setattr(store.np, "savez", real)
    res = _run(batch, out, "--resume")
    assert res.exit_code == 0, res.output
    clean = _run(batch, tmp_path / "clean")
    assert clean.exit_code == 0, clean.output
    a = pd.read_parquet(out / "risk_metrics.parquet")
    b = pd.read_parquet(tmp_path / "clean" / "risk_metrics.parquet")
    pd.testing.assert_frame_equal(a, b)
