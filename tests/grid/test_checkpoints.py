"""Task checkpoints hold data only: results round-trip exactly, and --resume never unpickles or executes
what it finds in a run directory; a bad checkpoint is one ConfigError naming the file (on --resume through a run: reported, its task run again)."""

import dataclasses
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from stressgrid.cli import main
from stressgrid.core import ConfigError
from stressgrid.grid import TaskStore
from stressgrid.grid._store import _read
from stressgrid.grid._summary import FamilyPartial, summarise
from stressgrid.grid._worker import ChunkResult

FINGERPRINT = {"batch_sha256": "abc", "chunk_size": 256}


def _result(task_id=3, s=256, n=7, pnl=True, sens=True, rows=False) -> ChunkResult:
    """A task result as the worker builds it: family summaries from :func:`summarise`, group sums per
    level, optionally the position P&L, the sensitivity P&L and the tails' position rows."""
    rng = np.random.default_rng(task_id)
    start = task_id * s
    P = rng.normal(size=(s, n)) * 1e3
    totals = P.sum(axis=1)
    codes = np.sort(rng.choice(np.array([0, 2, 5], dtype=np.int64), size=s))
    codes[-1] = 9  # a family with one scenario in this chunk
    weights = rng.random(s) / s
    families = summarise(P if rows else totals, start, codes, weights, 0.05)
    groups = {"asset_class": P[:, :3].copy(), "sleeve": P[:, 3:].copy(), "type": np.column_stack([totals, -totals])}
    sens_groups = {"type": rng.normal(size=(s, 2))} if sens else None
    return ChunkResult(task_id, start, start + s, totals, groups, families, P if pnl else None, sens_groups,
                       0.1234567890123, 0.0, True)


def _same_value(a, b, where):
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=True), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        assert [type(k) for k in a] == [type(k) for k in b], where
        for k in a:
            _same_value(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, FamilyPartial):
        for f in dataclasses.fields(FamilyPartial):
            _same_value(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, where


def _assert_same(a: ChunkResult, b: ChunkResult):
    for f in dataclasses.fields(ChunkResult):
        _same_value(getattr(a, f.name), getattr(b, f.name), f.name)


def _store(run_dir, *results) -> TaskStore:
    store = TaskStore(run_dir, FINGERPRINT, resume=False)
    for r in results:
        store.save(r)
    return store


def _resume(run_dir) -> dict:
    return TaskStore(run_dir, FINGERPRINT, resume=True).load()


@pytest.mark.parametrize("pnl, sens, rows", [(True, True, False), (False, False, False), (True, False, True),
                                             (False, True, True)])
def test_round_trip_is_exact(tmp_path, pnl, sens, rows):
    results = [_result(0, pnl=pnl, sens=sens, rows=rows), _result(1, s=100, pnl=pnl, sens=sens, rows=rows)]
    _store(tmp_path, *results)
    files = sorted(p.name for p in (tmp_path / "tasks").iterdir())
    assert files == ["plan.json", "task-000000.npz", "task-000001.npz"]  # no temporary file is left behind
    loaded = _resume(tmp_path)
    assert sorted(loaded) == [0, 1]
    for r in results:
        _assert_same(r, loaded[r.task_id])
    assert (loaded[0].pnl is None) == (not pnl) and (loaded[0].sens_groups is None) == (not sens)
    assert all((f.tail_rows is None) == (not rows) for f in loaded[0].families.values())


def test_round_trip_of_a_worker_result(linear_batch_path, tmp_path):
    from stressgrid.grid import load_batch, prepare_inputs, run_chunk
    from stressgrid.grid._run import plan_run

    batch, digest = load_batch(linear_batch_path)
    batch = batch.model_copy(update={"execution": batch.execution.model_copy(update={"chunk_size": 256})})
    plan = plan_run(prepare_inputs(batch, digest))
    payload = dataclasses.replace(plan.payload, keep_positions=True)
    r = run_chunk(payload, plan.tasks[1])
    _store(tmp_path, r)
    _assert_same(r, _resume(tmp_path)[1])


def test_checkpoints_are_data_only(tmp_path):
    _store(tmp_path, _result(0))
    with zipfile.ZipFile(tmp_path / "tasks" / "task-000000.npz") as z:
        for name in z.namelist():
            np.lib.format.read_array(io.BytesIO(z.read(name)), allow_pickle=False)  # raises on an object array
    plan = json.loads((tmp_path / "tasks" / "plan.json").read_text())
    assert plan["format"] and plan["fingerprint"]


class _Evil:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _resume_watching(run_dir, marker):
    try:
        _resume(run_dir)
    finally:
        assert not marker.exists(), "a pickle planted in the run directory was executed"


def test_old_pickle_checkpoints_are_refused_not_loaded(tmp_path):
    _store(tmp_path, _result(0))
    marker = tmp_path / "executed"
    (tmp_path / "tasks" / "task-000000.npz").unlink()
    (tmp_path / "tasks" / "task-000001.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ConfigError, match=r"older version.*run again without --resume") as exc:
        _resume_watching(tmp_path, marker)
    assert "\n" not in str(exc.value)


def test_a_pickle_beside_data_checkpoints_is_reported_never_read(tmp_path):
    _store(tmp_path, _result(0))
    marker = tmp_path / "executed"
    (tmp_path / "tasks" / "task-000001.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    rejected: list[str] = []
    got = TaskStore(tmp_path, FINGERPRINT, resume=True).load(rejected)
    assert not marker.exists() and list(got) == [0]
    assert rejected == [f"{tmp_path / 'tasks' / 'task-000001.pkl'}: a pickle, never read"]


def test_pickle_named_like_a_checkpoint_is_not_executed(tmp_path):
    _store(tmp_path)
    marker = tmp_path / "executed"
    bad = tmp_path / "tasks" / "task-000000.npz"
    bad.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ConfigError, match=r"task-000000\.npz.*without --resume"):
        _resume_watching(tmp_path, marker)


def _arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_object_array_in_a_checkpoint_is_not_executed(tmp_path):
    _store(tmp_path, _result(0))
    path = tmp_path / "tasks" / "task-000000.npz"
    marker = tmp_path / "executed"
    arrays = _arrays(path)
    arrays["totals"] = np.array([_Evil(marker)] * len(arrays["totals"]), dtype=object)  # pickled inside the .npy
    _rewrite(path, arrays)
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"task-000000\.npz.*without --resume"):
        _resume_watching(tmp_path, marker)


def test_truncated_or_damaged_checkpoint_names_the_file(tmp_path):
    _store(tmp_path, _result(0), _result(1))
    path = tmp_path / "tasks" / "task-000001.npz"
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ConfigError, match=r"checkpoint .*task-000001\.npz is corrupt.*without --resume") as exc:
            _resume(tmp_path)
        assert "\n" not in str(exc.value)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # one damaged byte in an array: the archive's CRC
    path.write_bytes(bytes(flipped))
    with pytest.raises(ConfigError, match=r"task-000001\.npz is corrupt.*CRC"):
        _resume(tmp_path)


def _meta(arrays):
    return json.loads(arrays["meta"].tobytes())


def _with_meta(arrays, **changes):
    meta = {**_meta(arrays), **changes}
    return {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}


MALFORMED = {
    "extra array": lambda a: {**a, "payload": np.zeros(3)},
    "missing array": lambda a: {k: v for k, v in a.items() if k != "groups.1"},
    "no metadata": lambda a: {k: v for k, v in a.items() if k != "meta"},
    "metadata not JSON": lambda a: {**a, "meta": np.frombuffer(b"\xff{", dtype=np.uint8)},
    "metadata of another format": lambda a: _with_meta(a, format="other"),
    "short totals": lambda a: {**a, "totals": a["totals"][:-1]},
    "groups not 2-d": lambda a: {**a, "groups.0": a["groups.0"].ravel()},
    "tail of two lengths": lambda a: {**a, "family.0.tail_loss": a["family.0.tail_loss"][:-1]},
    "float tail index": lambda a: {**a, "family.0.tail_index": a["family.0.tail_index"].astype(float)},
    "string array": lambda a: {**a, "totals": a["totals"].astype(str)},
    "task id of another file": lambda a: _with_meta(a, task_id=7),
    "range of another length": lambda a: _with_meta(a, stop=_meta(a)["stop"] + 1),
    "string scalar": lambda a: _with_meta(a, seconds="1.0"),
    "families not a list": lambda a: _with_meta(a, families={"0": 1}),
    "family code not an int": lambda a: _with_meta(a, families=[{**f, "code": str(f["code"])} for f in _meta(a)["families"]]),
    "level names not strings": lambda a: _with_meta(a, groups=[1, 2, 3]),
}


@pytest.mark.parametrize("damage", list(MALFORMED))
def test_malformed_checkpoint_is_a_config_error(tmp_path, damage):
    _store(tmp_path, _result(0))
    path = tmp_path / "tasks" / "task-000000.npz"
    _rewrite(path, MALFORMED[damage](_arrays(path)))
    with pytest.raises(ConfigError, match=r"checkpoint .*task-000000\.npz is corrupt.*without --resume") as exc:
        _resume(tmp_path)
    assert "\n" not in str(exc.value)


def test_file_not_named_as_a_checkpoint_is_refused(tmp_path):
    _store(tmp_path, _result(1))
    shutil.copy(tmp_path / "tasks" / "task-000001.npz", tmp_path / "tasks" / "task-1.npz")
    with pytest.raises(ConfigError, match=r"task-1\.npz is corrupt.*not a checkpoint name"):
        _resume(tmp_path)


def test_plan_of_an_older_version_is_not_resumed(tmp_path):
    _store(tmp_path, _result(0))
    plan = tmp_path / "tasks" / "plan.json"
    old = json.loads(plan.read_text())
    del old["format"]
    plan.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="older version"):
        _resume(tmp_path)
    plan.write_text("{not json")
    with pytest.raises(ConfigError, match=r"plan\.json is not readable.*without --resume"):
        _resume(tmp_path)


# --- through the command line -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(linear_batch_path, tmp_path_factory):
    """A complete serial run of the linear batch in several tasks: its batch file and run directory."""
    d = tmp_path_factory.mktemp("cli")
    shutil.copy(linear_batch_path.parent / "linear_book.csv", d / "linear_book.csv")
    batch = d / "batch.yaml"
    batch.write_text(linear_batch_path.read_text() + "execution:\n  chunk_size: 512\n")
    res = CliRunner().invoke(main, ["run", str(batch), "--out", str(d / "out"), "--serial", "--quiet", "--no-report"])
    assert res.exit_code == 0, res.output
    assert len(list((d / "out" / "tasks").glob("task-*"))) >= 3
    return batch, d / "out"


def _resume_cli(batch, out):
    res = CliRunner().invoke(main, ["run", str(batch), "--out", str(out), "--serial", "--quiet", "--no-report", "--resume"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert "Traceback" not in res.output
    return res.exit_code, lines


def test_cli_resume_of_a_finished_run_reads_its_checkpoints(finished_run, tmp_path):
    batch, out = finished_run
    shutil.copytree(out, tmp_path / "out")
    code, lines = _resume_cli(batch, tmp_path / "out")
    assert code == 0, lines
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["tasks_resumed"] == len(list((out / "tasks").glob("task-*")))


def test_cli_corrupt_checkpoint_is_reported_and_its_task_runs_again(finished_run, tmp_path):
    batch, out = finished_run
    shutil.copytree(out, tmp_path / "out")
    path = sorted((tmp_path / "out" / "tasks").glob("task-*"))[1]
    path.write_bytes(path.read_bytes()[:200])
    res = CliRunner().invoke(main, ["run", str(batch), "--out", str(tmp_path / "out"), "--serial", "--no-report", "--resume"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "1 checkpoint(s) in the run directory did not verify on --resume" in text and path.name in text
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["checkpoints_rejected"]) == 1 and str(path) in manifest["checkpoints_rejected"][0]
    assert manifest["counts"]["tasks_resumed"] == len(list((out / "tasks").glob("task-*"))) - 1
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "risk_metrics.parquet"),
                                  pd.read_parquet(out / "risk_metrics.parquet"))
    _read(path.read_bytes())  # rewritten whole by the task that ran again


def test_cli_planted_pickle_is_not_executed(finished_run, tmp_path):
    batch, out = finished_run
    shutil.copytree(out, tmp_path / "out")
    marker = tmp_path / "executed"
    (tmp_path / "out" / "tasks" / "task-999999.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    try:
        code, lines = _resume_cli(batch, tmp_path / "out")
    finally:
        assert not marker.exists(), "a pickle planted in the run directory was executed"
    assert code == 0, lines
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["checkpoints_rejected"] == [f"{tmp_path / 'out' / 'tasks' / 'task-999999.pkl'}: a pickle, never read"]
