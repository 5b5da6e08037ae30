"""Runs written to a URI (``--out s3://...``): the tasks write the per-scenario part files to the URI, the
driver stages the rest locally and copies it there, and a run is read back from the URI.

The object store is a local S3 server (moto) that speaks the S3 protocol to Arrow's S3 file system; the
reference for every table is the same batch written to a local folder, which the rest of the suite tests
against closed forms and peer libraries.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stressgrid import reports
from stressgrid.core import ConfigError, DataError
from stressgrid.core.storage import Location, is_uri, stage_dir
from stressgrid.grid import RayExecutor, execute, load_batch, prepare_inputs, run_batch, write_outputs

moto_server = pytest.importorskip("moto.server")

ROOT = Path(__file__).resolve().parents[2]
TABLES = ["risk_metrics", "contributions", "coverage", "positions", "scenarios", "breakdown", "scenario_pnl",
          "sensitivity", "liquidity"]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 server with the bucket ``runs``: ``(uri_of, filesystem)``, where ``uri_of(key)`` is the
    URI ``s3://runs/<key>`` with the server as its endpoint."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server's line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    from pyarrow import fs

    query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    filesystem = fs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1",
                                 allow_bucket_creation=True)
    filesystem.create_dir("runs")
    yield (lambda key: f"s3://runs/{key}?{query}"), filesystem
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _stage(tmp_path, monkeypatch):
    monkeypatch.setenv("STRESSGRID_STAGE", str(tmp_path / "stage"))


def _batch(d: Path, stream: bool, chunk: int = 1500) -> Path:
    """The demo's crisis replays and a Student-t Monte Carlo family, in tasks small enough that families
    straddle them."""
    spec = yaml.safe_load((ROOT / "examples" / "demo_batch.yaml").read_text())
    spec["scenarios"] = [s for s in spec["scenarios"] if s.get("name") == "mc_t" or s["kind"] == "historical"]
    for k in ("liquidity", "factor_model", "optimise", "monitoring", "limits"):
        spec.pop(k, None)
    shutil.copy(ROOT / "examples" / "demo_book.csv", d / "book.csv")
    spec["book"] = "book.csv"  # beside the batch, as the command line wants it
    spec.setdefault("execution", {}).update({"chunk_size": chunk, "stream": stream})
    spec.setdefault("outputs", {})["scenario_pnl"] = True
    p = d / f"batch-{stream}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def _same(a, b, names=TABLES) -> None:
    for name in names:
        x, y = a.table(name), b.table(name)
        pd.testing.assert_frame_equal(x, y[x.columns], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The reference: the streamed batch written to a local folder."""
    d = tmp_path_factory.mktemp("local")
    run_batch(_batch(d, True), d / "run", serial=True)
    return d


def _keys(filesystem, prefix: str) -> list[str]:
    from pyarrow import fs

    infos = filesystem.get_file_info(fs.FileSelector(f"runs/{prefix}", recursive=True, allow_not_found=True))
    return sorted(i.path[len(f"runs/{prefix}/"):] for i in infos if i.type == fs.FileType.File)


def test_a_streamed_run_to_s3_reads_back_as_the_local_run(s3, local, tmp_path):
    uri_of, filesystem = s3
    uri = uri_of("desk/streamed")
    res = run_batch(_batch(tmp_path, True), uri, serial=True)
    assert res.uri == uri and res.run_dir == stage_dir(uri)
    assert res.manifest["storage"] == {"uri": uri, "parts": uri}
    keys = _keys(filesystem, "desk/streamed")
    assert "manifest.json" in keys and "risk_metrics.parquet" in keys
    parts = [k for k in keys if k.startswith("scenario_pnl/")]
    assert len(parts) >= 3 and all(k.split("/")[1].startswith("part-") for k in parts)
    assert not (res.run_dir / "scenario_pnl").exists()  # the tasks wrote their parts to the bucket only
    # read back from the URI through a staging folder of its own, as on another machine
    run = reports.stage_run(uri, tmp_path / "reader")
    assert run.is_partitioned("scenario_pnl") and run.parts.remote
    _same(run, reports.open_run(local / "run"))
    assert reports.check_run_dir(run.path, run.parts) == []
    worst = run.smallest("scenario_pnl", 5)
    pd.testing.assert_frame_equal(worst, reports.open_run(local / "run").smallest("scenario_pnl", 5))


def test_a_run_in_memory_to_s3_replaces_an_earlier_streamed_run(s3, local, tmp_path):
    """Part folders of an earlier run at the same URI are removed: a table is a file or a folder."""
    uri_of, filesystem = s3
    uri = uri_of("desk/replaced")
    run_batch(_batch(tmp_path, True), uri, serial=True)
    # what a report of the earlier run left beside it: never to be read as the new run's
    for name in ("breaches.parquet", "report.html"):
        with filesystem.open_output_stream(f"runs/desk/replaced/{name}") as f:
            f.write(b"earlier run")
    res = run_batch(_batch(tmp_path, False), uri, serial=True)
    assert res.manifest["storage"] == {"uri": uri}
    keys = _keys(filesystem, "desk/replaced")
    assert "scenario_pnl.parquet" in keys and not any(k.startswith("scenario_pnl/") for k in keys)
    assert "breaches.parquet" not in keys and "report.html" not in keys
    run = reports.open_run(uri)
    assert not run.is_partitioned("scenario_pnl") and reports.check_run_dir(run.path, run.parts) == []
    _same(run, reports.open_run(local / "run"))


@pytest.mark.parametrize("stream", [True, False])
def test_resume_from_another_machine_reads_the_checkpoints_in_the_bucket(s3, local, tmp_path, monkeypatch, stream):
    """The checkpoints are at the URI: a driver on another machine (another, empty staging folder)
    resumes the run, and runs again the tasks whose checkpoint or part is missing there."""
    uri_of, filesystem = s3
    key = f"desk/resumed-{stream}"
    uri = uri_of(key)
    batch = _batch(tmp_path, stream)
    first = run_batch(batch, uri, serial=True)
    assert not (first.run_dir / "tasks").exists()
    tasks = [k for k in _keys(filesystem, key) if k.startswith("tasks/task-")]
    assert len(tasks) >= 3 and "tasks/plan.json" in _keys(filesystem, key)
    filesystem.delete_file(f"runs/{key}/{tasks[0]}")  # an interrupted run: task 0 never finished
    monkeypatch.setenv("STRESSGRID_STAGE", str(tmp_path / "another-machine"))
    if not stream:
        res = run_batch(batch, uri, serial=True, resume=True)
        assert res.manifest["counts"]["tasks_resumed"] == len(tasks) - 1
        assert res.run_dir.parent == tmp_path / "another-machine"
        _same(reports.stage_run(uri, tmp_path / "reader"), reports.open_run(local / "run"),
              ["risk_metrics", "contributions", "scenarios"])
        return
    lost = next(k for k in _keys(filesystem, key) if k.startswith("breakdown/part-000002-"))
    filesystem.delete_file(f"runs/{key}/{lost}")  # a part lost after its task finished
    res = run_batch(batch, uri, serial=True, resume=True)
    assert res.manifest["counts"]["tasks_resumed"] == len(tasks) - 2
    rejected = res.manifest["checkpoints_rejected"]
    assert len(rejected) == 1 and "task-000002" in rejected[0] and lost in rejected[0]
    assert lost in _keys(filesystem, key)
    _same(reports.stage_run(uri, tmp_path / "reader"), reports.open_run(local / "run"))


def test_ray_workers_write_their_parts_to_a_file_uri(ray_session, local, tmp_path):
    """The tasks on Ray workers open the URI themselves (``file://``: Arrow's local file system)."""
    target = tmp_path / "bucket" / "run"
    uri = target.as_uri()
    b, h = load_batch(_batch(tmp_path, True))
    stage = tmp_path / "stage-ray"
    inputs = prepare_inputs(b, h, out=stage)
    write_outputs(execute(inputs, RayExecutor(), run_dir=stage, parts=uri), stage)
    assert sorted((target / "scenario_pnl").glob("part-*.parquet")) and not (stage / "scenario_pnl").exists()
    _same(reports.RunDir(stage, parts=uri), reports.open_run(local / "run"))


def test_uris_and_paths_are_told_apart_and_stages_do_not_collide(tmp_path):
    assert is_uri("s3://bucket/x") and is_uri("gs://b/x") and is_uri("file:///tmp/x")
    assert not is_uri("runs/demo") and not is_uri("/tmp/s3:/x") and not is_uri(tmp_path)
    assert stage_dir("s3://b/desk/run") != stage_dir("s3://c/desk/run")
    assert stage_dir("s3://b/desk/run") == stage_dir("s3://b/desk/run")
    assert stage_dir("s3://b/desk/run").parent == tmp_path / "stage"


def test_bad_uris_are_refused_before_any_work(s3, tmp_path):
    uri_of, _ = s3
    batch = _batch(tmp_path, True)
    with pytest.raises(ConfigError, match="password"):
        run_batch(batch, "s3://key:secret@runs/x", serial=True)
    with pytest.raises(ConfigError, match=r"--out nosuch://x/y: cannot be opened as a file system"):
        run_batch(batch, "nosuch://x/y", serial=True)
    missing = uri_of("x").replace("s3://runs/", "s3://no-such-bucket/")
    with pytest.raises(ConfigError, match=r"--out s3://no-such-bucket/x\?.*cannot be written"):
        run_batch(batch, missing, serial=True)
    assert not (tmp_path / "stage").exists()  # nothing was staged
    with pytest.raises(DataError, match="has no manifest.json"):
        reports.open_run(uri_of("nothing/here"))


def test_a_store_that_cannot_be_opened_is_named_as_given(local, tmp_path):
    with pytest.raises(ConfigError, match=r"^results store nosuch://bucket/store: cannot be opened as a file system") as exc:
        reports.store_run(local / "run", "nosuch://bucket/store", run_id="r1")
    assert "run_date=" not in str(exc.value)  # not the run's folder inside the store


def test_a_password_never_reaches_an_error_message():
    with pytest.raises(ConfigError) as err:
        Location("s3://key:hunter2@bucket/x")
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("stressgrid")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stressgrid.cli"]


@pytest.mark.slow
def test_the_command_line_runs_on_ray_to_s3_and_reports_from_it(s3, local, tmp_path):
    """``stressgrid run --out s3://...`` as a user runs it (an embedded Ray instance whose workers write the
    parts), then ``stressgrid report s3://...`` from another folder with another staging folder."""
    uri_of, filesystem = s3
    uri = uri_of("desk/cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    batch = _batch(tmp_path, True)
    run = subprocess.run(_cli() + ["run", str(batch), "--out", uri, "--workers", "2", "--quiet", "--no-report"],
                         cwd=tmp_path, env=env | {"STRESSGRID_STAGE": str(tmp_path / "driver")},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "" and "Traceback" not in run.stderr
    other = tmp_path / "elsewhere"
    other.mkdir()
    rep = subprocess.run(_cli() + ["report", uri], cwd=other, env=env | {"STRESSGRID_STAGE": str(other / "stage")},
                         capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "VaR 99%" in rep.stdout and "part files in" in rep.stdout and "s3://runs/desk/cli" in rep.stdout
    keys = _keys(filesystem, "desk/cli")
    assert "report.html" in keys and any(k.startswith("scenarios/part-") for k in keys)
    manifest = json.loads(filesystem.open_input_stream("runs/desk/cli/manifest.json").read())
    assert manifest["counts"]["workers"] >= 1 and manifest["storage"]["parts"] == uri
    _same(reports.stage_run(uri, tmp_path / "reader"), reports.open_run(local / "run"))
    bad = subprocess.run(_cli() + ["run", str(batch), "--out", "s3://k:secret@runs/x"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --out") and "Traceback" not in bad.stderr
    assert "secret" not in bad.stderr


def test_a_manifest_read_from_a_uri_is_data(s3, tmp_path):
    """The names a manifest at a URI lists are copied into the staging folder only when they are plain table
    file names that are there; anything else is one error naming the manifest."""
    uri_of, filesystem = s3

    def put(key: str, manifest) -> str:
        with filesystem.open_output_stream(f"runs/{key}/manifest.json") as out:
            out.write(json.dumps(manifest).encode() if not isinstance(manifest, bytes) else manifest)
        return uri_of(key)

    with pytest.raises(DataError, match=r"files lists '\.\./escape\.parquet', not the name of a table file"):
        reports.stage_run(put("bad/escape", {"files": ["risk_metrics.parquet", "../escape.parquet"]}), tmp_path / "a")
    with pytest.raises(DataError, match="lists risk_metrics.parquet, which is not there"):
        reports.stage_run(put("bad/lost", {"files": ["risk_metrics.parquet"]}), tmp_path / "b")
    with pytest.raises(DataError, match="not valid JSON"):
        reports.stage_run(put("bad/json", b"{nope"), tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c"))


def test_a_run_folder_whose_manifest_sends_its_parts_elsewhere(local, tmp_path):
    """``storage.parts`` must be a URI; a local run whose parts were moved to one reads them there."""
    run = tmp_path / "run"
    shutil.copytree(local / "run", run)
    moved = tmp_path / "bucket"
    moved.mkdir()
    for name in ("scenarios", "breakdown", "scenario_pnl", "sensitivity", "liquidity"):
        shutil.move(run / name, moved / name)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["storage"] = {"uri": moved.as_uri(), "parts": "/etc"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"storage.parts must be a URI \(got '/etc'\)"):
        reports.RunDir(run)
    manifest["storage"]["parts"] = moved.as_uri()
    (run / "manifest.json").write_text(json.dumps(manifest))
    _same(reports.RunDir(run), reports.open_run(local / "run"))
    assert reports.check_run_dir(run, reports.RunDir(run).parts) == []


def test_validate_checks_that_the_uri_can_be_written(s3, tmp_path):
    from click.testing import CliRunner

    from stressgrid.cli import main

    uri_of, filesystem = s3
    batch = str(_batch(tmp_path, True))
    ok = CliRunner().invoke(main, ["validate", batch, "--out", uri_of("desk/validated")])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: batch") and _keys(filesystem, "desk/validated") == []  # no probe left behind
    missing = uri_of("x").replace("s3://runs/", "s3://no-such-bucket/")
    bad = CliRunner().invoke(main, ["validate", batch, "--out", missing])
    assert bad.exit_code == 2 and "error: --out s3://no-such-bucket/x" in bad.output and "cannot be written" in bad.output


# --------------------------------------------------------------------------------------------------
# the results store in object storage (stressgrid store / runs with a URI)
# --------------------------------------------------------------------------------------------------


def test_a_store_in_s3_holds_and_lists_runs_as_a_local_store_does(s3, local, tmp_path):
    """The same streamed run stored in a folder and in a bucket: the same listing (but the path), the same
    files with the part files, and the stored run reads back as the run itself."""
    uri_of, filesystem = s3
    store_uri = uri_of("store-a")
    folder = reports.store_run(local / "run", tmp_path / "store", run_id="r1")
    stored = reports.store_run(local / "run", store_uri, run_id="r1")
    rel = Path(folder).relative_to(tmp_path / "store").as_posix()
    assert stored == Location(store_uri).uri(rel) and rel.endswith("/run=r1")
    here = sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())
    assert _keys(filesystem, f"store-a/{rel}") == here and any(k.startswith("scenario_pnl/part-") for k in here)
    a, b = reports.list_runs(tmp_path / "store"), reports.list_runs(store_uri)
    pd.testing.assert_frame_equal(a.drop(columns="path"), b.drop(columns="path"))
    assert b["path"].tolist() == [stored] and len(b) == 1 and b["stressed_var"].notna().all()
    assert reports.list_runs(store_uri, batch="nothing").empty
    run = reports.open_run(stored)
    assert run.is_partitioned("scenario_pnl") and run.parts.remote
    _same(run, reports.open_run(local / "run"))
    with pytest.raises(ConfigError, match="already stored"):
        reports.store_run(local / "run", store_uri, run_id="r1")
    with pytest.raises(ConfigError, match="results store .*: not found"):
        reports.list_runs(uri_of("no-store-here"))


def test_a_run_written_to_s3_is_stored_with_its_part_files(s3, local, tmp_path):
    """A run written to a URI keeps its part files there; stored (in a folder or a bucket), it gets a copy of
    them and its manifest no longer sends a reader to the URI, so a later run at that URI, which removes
    the part folders, leaves the stored run whole."""
    uri_of, filesystem = s3
    uri = uri_of("desk/to-store")
    run_batch(_batch(tmp_path, True), uri, serial=True)
    folder = Path(reports.store_run(uri, tmp_path / "store", run_id="from-s3"))
    in_bucket = reports.store_run(uri, uri_of("store-b"), run_id="from-s3")
    for where in (folder, in_bucket):
        run = reports.open_run(where)
        assert run.is_partitioned("scenario_pnl") and "parts" not in run.manifest["storage"]
        assert run.manifest["storage"]["uri"] == uri  # where the run was written is kept
    run_batch(_batch(tmp_path, False), uri, serial=True)  # the part folders at the URI are removed
    assert not any(k.startswith("scenario_pnl/") for k in _keys(filesystem, "desk/to-store"))
    for where in (folder, in_bucket):
        run = reports.open_run(where)
        assert run.parts.uri() == (str(folder) if where == folder else in_bucket)
        assert reports.check_run_dir(run.path, run.parts) == []
        _same(run, reports.open_run(local / "run"))


def test_an_interrupted_copy_is_not_listed_and_is_replaced(s3, local, tmp_path):
    """A copy cut short leaves tables and no manifest: no listing sees it, and storing the run again
    replaces it.  A damaged manifest in the store is named."""
    uri_of, filesystem = s3
    store_uri = uri_of("store-c")
    date = reports.list_runs(reports.store_run(local / "run", tmp_path / "s", run_id="x").parent.parent.parent)["run_date"][0]
    rel = f"run_date={date}/batch=demo/run=half"
    filesystem.create_dir(f"runs/store-c/{rel}/scenario_pnl")
    for name in ("risk_metrics.parquet", "scenario_pnl/part-99999.parquet"):
        with filesystem.open_output_stream(f"runs/store-c/{rel}/{name}") as out:
            out.write(b"not parquet")
    assert reports.list_runs(store_uri).empty
    dest = reports.store_run(local / "run", store_uri, run_id="half")
    assert dest == Location(store_uri).uri(rel)
    assert not any("part-99999" in k for k in _keys(filesystem, f"store-c/{rel}"))  # nothing of the cut copy is left
    assert reports.check_run_dir(reports.open_run(dest).path, reports.open_run(dest).parts) == []
    listed = reports.list_runs(store_uri)  # reads the new risk_metrics, not the bytes left before
    assert listed["path"].tolist() == [dest] and listed["stressed_var"].notna().all()
    broken = f"runs/store-c/run_date={date}/batch=demo/run=broken"
    filesystem.create_dir(broken)
    with filesystem.open_output_stream(f"{broken}/manifest.json") as out:
        out.write(b"{not json")
    with pytest.raises(DataError, match=r"run=broken/manifest.json\S*: not valid JSON"):
        reports.list_runs(store_uri)


def test_the_command_line_stores_in_and_lists_a_bucket(s3, local, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from stressgrid.cli import main

    uri_of, _ = s3
    store_uri = uri_of("store-d")
    res = CliRunner().invoke(main, ["store", str(local / "run"), store_uri, "--run-id", "cli"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"stored: {reports.list_runs(store_uri)['path'].iloc[0]}"
    monkeypatch.setenv("STRESSGRID_STORE", store_uri)  # the default store may be a URI too
    listed = CliRunner().invoke(main, ["runs"], terminal_width=200)
    assert listed.exit_code == 0 and "cli" in listed.output and "Runs in s3://runs/store-d" in listed.output
    again = CliRunner().invoke(main, ["store", str(local / "run"), "--run-id", "cli"])
    assert again.exit_code == 2 and "already stored" in again.output
