"""A Ray run starts the cluster while the sensitivities and scenarios are computed, but only once the
inputs are loaded and checked: a mistyped input fails before any Ray process starts."""

import contextlib
import threading
from pathlib import Path

import pytest
import yaml

import stressgrid.cluster as cluster
from stressgrid.core import ConfigError, DataError
from stressgrid.grid import run_batch

ROOT = Path(__file__).resolve().parents[2]


def _batch(tmp_path: Path, book: str) -> Path:
    spec = yaml.safe_load((ROOT / "tests" / "data" / "linear_batch.yaml").read_text())
    spec["book"] = book
    p = tmp_path / "batch.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture
def spy(monkeypatch):
    """Replaces the cluster connection with a count of the times it was asked for; the run's tasks then
    go to the serial executor."""
    seen = {"connect": 0}

    @contextlib.contextmanager
    def fake_connect(address=None, num_cpus=None, preload=()):
        seen["connect"] += 1
        yield False

    monkeypatch.setattr(cluster, "connect", fake_connect)
    monkeypatch.setattr(cluster, "gpu_request", lambda *a: 0.0)
    import stressgrid.grid._api as api

    monkeypatch.setattr(api, "RayExecutor", lambda **kw: api.SerialExecutor())
    return seen


def test_a_bad_book_fails_before_the_cluster_starts(tmp_path, spy):
    bad = tmp_path / "book.csv"
    bad.write_text("id,type\nX,not_a_type\n")
    with pytest.raises((ConfigError, DataError)):
        run_batch(_batch(tmp_path, str(bad)), tmp_path / "out", serial=False)
    assert spy["connect"] == 0


def test_the_cluster_starts_while_the_inputs_are_prepared(tmp_path, spy, monkeypatch):
    """The sensitivities wait until the cluster is asked for: they are released by the connection (not
    by the 60 s timeout) only if the connection comes while the inputs are still being prepared."""
    import stressgrid.grid._run as run
    from stressgrid import kernels

    asked = threading.Event()
    released = []
    real = kernels.sensitivities

    def slow_sensitivities(*a, **kw):
        released.append(asked.wait(timeout=60))
        return real(*a, **kw)

    @contextlib.contextmanager
    def connect(address=None, num_cpus=None, preload=()):
        spy["connect"] += 1
        asked.set()
        yield False

    monkeypatch.setattr(cluster, "connect", connect)
    monkeypatch.setattr(run.kernels, "sensitivities", slow_sensitivities)
    book = str(ROOT / "tests" / "data" / "linear_book.csv")
    res = run_batch(_batch(tmp_path, book), tmp_path / "out", serial=False)
    monkeypatch.setattr(run.kernels, "sensitivities", real)
    ref = run_batch(_batch(tmp_path, book), tmp_path / "ref", serial=True)
    assert spy["connect"] == 1 and released == [True]
    for name in ("risk_metrics", "contributions", "scenarios"):
        assert res[name].equals(ref[name])


def test_the_workers_preload_what_the_batch_sections_import(demo_batch_path, tmp_path):
    from stressgrid.cluster._setup import PRELOADABLE
    from stressgrid.grid import load_batch
    from stressgrid.grid._api import worker_preload

    demo = worker_preload(load_batch(demo_batch_path)[0])
    assert set(demo) == {"stressgrid.grid", "stressgrid.portfolios", "cvxpy", "stressgrid.monitoring",
                         "sklearn.ensemble", "optax", "stressgrid.liquidity"} and set(demo) <= set(PRELOADABLE)
    assert worker_preload(load_batch(_batch(tmp_path, str(ROOT / "tests" / "data" / "linear_book.csv")))[0]) == ("stressgrid.grid",)
