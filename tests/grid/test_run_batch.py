"""stressgrid.run_batch, the Python entry point the command line calls; the executor protocol; sections."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import stressgrid
from stressgrid.core.executor import Executor
from stressgrid.grid import SECTIONS, RayExecutor, SerialExecutor, load_batch, run_batch


def test_run_batch_returns_the_tables_it_writes(linear_batch_path, tmp_path):
    res = stressgrid.run_batch(linear_batch_path, tmp_path / "run", serial=True)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert sorted(f"{n}.parquet" for n in res.tables) == manifest["files"] == res.manifest["files"]
    assert res.run_dir == tmp_path / "run"
    def lists(df: pd.DataFrame) -> pd.DataFrame:  # Parquet reads a list column back as numpy arrays
        return df.apply(lambda c: c.map(lambda v: list(v) if isinstance(v, np.ndarray) else v) if c.dtype == object else c)

    for name, df in res.tables.items():
        # the same values; Parquet reads text columns back as strings where the table held Python objects
        pd.testing.assert_frame_equal(lists(pd.read_parquet(tmp_path / "run" / f"{name}.parquet")), df.reset_index(drop=True),
                                      check_exact=True, check_dtype=False)
    rm = res["risk_metrics"]
    var = rm[(rm.metric == "var")].set_index(["family", "confidence"])["value"]
    cvar = rm[(rm.metric == "cvar")].set_index(["family", "confidence"])["value"]
    assert (cvar >= var - 1e-9).all() and len(var) == 4  # two families x two default confidence levels


def test_run_batch_in_memory_from_a_batch_object_gives_the_same_numbers(linear_batch_path, tmp_path):
    on_disk = run_batch(linear_batch_path, tmp_path / "a", serial=True)
    batch, digest = load_batch(linear_batch_path)
    in_memory = run_batch(batch, serial=True, batch_hash=digest)
    assert in_memory.run_dir is None and not (tmp_path / "b").exists()
    for name in ("risk_metrics", "contributions", "breakdown"):
        pd.testing.assert_frame_equal(in_memory[name], on_disk[name], check_exact=True)
    assert in_memory.manifest["batch"]["sha256"] == digest


def test_progress_reaches_every_scenario_and_task_on_the_summaries_only_path(linear_batch_path, tmp_path):
    """Many tasks and no position-level P&L returned (scenario_pnl: false): the progress counts come from
    the tasks' ranges, not from a P&L matrix."""
    batch, digest = load_batch(linear_batch_path)
    batch = batch.model_copy(update={
        "execution": batch.execution.model_copy(update={"chunk_size": 300}),
        "outputs": batch.outputs.model_copy(update={"scenario_pnl": False})})
    seen = []
    res = run_batch(batch, serial=True, progress=seen.append, batch_hash=digest)
    assert res.run.pnl is None and "scenario_pnl" not in res.tables
    n = res.manifest["counts"]["scenarios"]
    assert [p.tasks_done for p in seen] == list(range(1, len(seen) + 1))
    assert seen[-1].scenarios_done == seen[-1].scenarios_total == n
    assert seen[-1].tasks_done == seen[-1].tasks_total == len(res.run.tasks) > 1
    assert np.all(np.diff([p.scenarios_done for p in seen]) > 0)


def test_run_batch_refuses_resume_without_a_run_directory(linear_batch_path):
    from stressgrid.core import ConfigError

    with pytest.raises(ConfigError, match="resume=True needs the run directory"):
        run_batch(linear_batch_path, serial=True, resume=True)
    with pytest.raises(ConfigError, match="got int"):
        run_batch(3, serial=True)


def test_executors_follow_the_protocol():
    assert isinstance(SerialExecutor(), Executor)
    assert isinstance(RayExecutor(workers=2), Executor)
    assert not isinstance(object(), Executor)


def test_each_section_is_enabled_by_its_key_only(linear_batch_path):
    batch, _ = load_batch(linear_batch_path)
    assert [s.name for s in SECTIONS] == ["liquidity", "factor_model", "optimise", "monitoring"]
    assert not any(s.enabled(batch) for s in SECTIONS)
    for s in SECTIONS:
        other = [t for t in SECTIONS if t is not s]
        on = type("B", (), {"liquidity": None, "factor_model": None, "optimise": None, "monitoring": None})()
        setattr(on, s.name, object())
        assert s.enabled(on) and not any(t.enabled(on) for t in other)
