"""Fixtures of the report tests: a real run directory of the linear test batch (serial executor), and a
copy of it with synthetic tables for every optional section (liquidity, capacity, re-optimisation,
monitoring), built from the run's own positions and risk figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import LIMITS, add_synthetic_tables, copy_run, run_batch

from stressgrid import reports


@pytest.fixture(scope="session")
def linear_run_src(tmp_path_factory, linear_batch_path) -> Path:
    """The linear test batch's run directory, written once per session (do not write into it)."""
    return run_batch(linear_batch_path, tmp_path_factory.mktemp("linear") / "run")


@pytest.fixture
def linear_run(linear_run_src, tmp_path) -> Path:
    """A private copy of the linear run directory, which a test may write into."""
    return copy_run(linear_run_src, tmp_path / "linear")


@pytest.fixture(scope="session")
def full_run_src(linear_run_src, tmp_path_factory) -> Path:
    """The linear run with every optional table added (do not write into it)."""
    out = copy_run(linear_run_src, tmp_path_factory.mktemp("full") / "run")
    add_synthetic_tables(out)
    return out


@pytest.fixture
def full_run(full_run_src, tmp_path) -> Path:
    """A private copy of the run with every optional table."""
    return copy_run(full_run_src, tmp_path / "full")


@pytest.fixture(scope="session")
def full_report_src(full_run_src, tmp_path_factory) -> Path:
    """The HTML report of the run with every optional table, with :data:`LIMITS` (written once; read only)."""
    run = copy_run(full_run_src, tmp_path_factory.mktemp("report") / "full")
    return reports.write_report(run, limits=reports.parse_limits(LIMITS))
