"""Joining a cluster for the first time: each common failure is one line that says what to do (exit 2),
and a submitted batch's log shows its progress and summary."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from stressgrid.cli import main, progress_lines
from stressgrid.cluster import _connect, _jobs, explain_failure, job_failure
from stressgrid.core import ConfigError, TaskError



def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    return env | extra


def _one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in text, text[-3000:]
    return errors[0]


# -- what Ray says, and what stressgrid makes of it ------------------------------------------------------

#: the message Ray gives for a job whose entrypoint cannot import stressgrid
NO_STRESSGRID = ("Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
                 "/usr/bin/python3: Error while finding module specification for 'stressgrid.cli' "
                 "(ModuleNotFoundError: No module named 'stressgrid')\n")
#: ray._private.utils.check_version_info's message
VERSION_MISMATCH = ("Version mismatch: The cluster was started with:\n    Ray: 2.0.0\n    Python: 3.10.4\n"
                    "This process on node 127.0.0.1 was started with:\n    Ray: 2.60.0\n    Python: 3.11.7\n")
#: the Jobs API's answers to a client without the cluster's token, and with another token
NO_TOKEN = ("Authentication required: Unauthorized: Missing authentication token\n\nToken authentication is enabled "
            "but no authentication token was found. Note: RAY_AUTH_MODE is currently 'disabled' (not 'token').")
BAD_TOKEN = ("Authentication failed: Forbidden: Invalid authentication token\n\nToken authentication is enabled but "
             "the authentication token is invalid or incorrect..")


@pytest.mark.parametrize("text, expected", [
    (NO_STRESSGRID, "submit again with --ship-code"),
    ("Traceback (most recent call last):\nModuleNotFoundError: No module named 'sklearn.covariance'",
     "--pip scikit-learn"),
    ("ModuleNotFoundError: No module named 'duckdb'", "--pip duckdb"),
    (VERSION_MISMATCH, "the cluster runs Ray 2.0.0 on Python 3.10.4, this environment Ray 2.60.0 on Python 3.11.7"),
    (NO_TOKEN, "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token"),
    (BAD_TOKEN, "refused this client's authentication token"),
])
def test_known_failures_map_to_what_to_do(text, expected):
    hint = explain_failure(text)
    assert hint is not None and expected in hint and "\n" not in hint


def test_other_failures_are_not_guessed_at():
    assert explain_failure("ValueError: something else went wrong") is None
    assert explain_failure("") is None


def test_a_failed_job_is_one_line():
    err = job_failure("job-1", "FAILED", NO_STRESSGRID)
    assert isinstance(err, ConfigError) and err.exit_code == 2
    assert str(err).startswith("job job-1: FAILED: the cluster does not have stressgrid installed: submit again "
                               "with --ship-code") and "\n" not in str(err)
    other = job_failure("job-2", "FAILED", "Job entrypoint command failed with exit code 4, last logs:\n"
                                           "error: task 3 failed: boom\n")
    assert isinstance(other, TaskError) and "\n" not in str(other)
    assert str(other) == "job job-2: FAILED: error: task 3 failed: boom (the whole log: 'stressgrid logs job-2')"


class _FailedJobHead:
    """A Jobs API client whose one job failed because the cluster lacks stressgrid."""

    def get_job_info(self, job_id):
        if job_id != "job-1":
            raise RuntimeError("not found")
        return SimpleNamespace(status=SimpleNamespace(value="FAILED"), message=NO_STRESSGRID, start_time=None,
                               end_time=None, metadata={"stressgrid_out": "/tmp/x"}, entrypoint="python -m stressgrid.cli run")

    def get_job_logs(self, job_id):
        return "/usr/bin/python3: Error while finding module specification for 'stressgrid.cli' " \
               "(ModuleNotFoundError: No module named 'stressgrid')\n"


def test_status_and_logs_of_a_job_that_could_not_import_stressgrid(monkeypatch):
    monkeypatch.setattr(_jobs, "_client", lambda address: _FailedJobHead())
    res = CliRunner().invoke(main, ["status", "job-1"])
    assert res.exit_code == 0, res.output
    assert "  message: Job entrypoint command failed with exit code 1, last available logs" in res.output
    assert "(the whole log: 'stressgrid logs job-1')" in res.output
    assert "  hint: the cluster does not have stressgrid installed: submit again with --ship-code" in res.output
    assert "ModuleNotFoundError" not in res.output  # the log's lines stay in the log
    res = CliRunner().invoke(main, ["logs", "job-1"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1].startswith("hint: the cluster does not have stressgrid installed")


# -- addresses that cannot be reached ----------------------------------------------------------------------

def test_an_address_nothing_answers_at_fails_at_once():
    port = _closed_port()
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=rf"--address '127.0.0.1:{port}': nothing answers at 127.0.0.1:{port} "
                                          r"\(Connection refused\): check the host and port"):
        _connect._check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 5


def test_a_jobs_api_address_given_to_run_says_to_submit():
    with pytest.raises(ConfigError, match=r"is a Jobs API \(dashboard\) address: send the batch with "
                                          r"'stressgrid submit BATCH --address http://head:8265'"):
        _connect._check_address("http://head:8265")


def test_run_against_an_unreachable_cluster_is_one_line(linear_batch_path, tmp_path):
    """Through the command line in a process of its own (the test session's Ray would be used otherwise).
    Before, Ray retried the address for more than ten minutes."""
    port = _closed_port()
    proc = subprocess.run([sys.executable, "-m", "stressgrid.cli", "run", str(linear_batch_path), "--out",
                           str(tmp_path / "out"), "--address", f"127.0.0.1:{port}"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _one_error_line(proc.stderr)
    assert f"nothing answers at 127.0.0.1:{port}" in line and "leave --address out" in line


def test_a_jobs_api_that_cannot_be_reached_says_what_to_do():
    port = _closed_port()
    res = CliRunner().invoke(main, ["status", "job-1", "--address", f"http://127.0.0.1:{port}"])
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.output)
    assert f"--address 'http://127.0.0.1:{port}': no Ray Jobs API there" in line
    assert "dashboard port (8265 on the head) is reachable from here" in line


# -- a submitted batch's log -------------------------------------------------------------------------------

def test_the_job_entrypoint_is_not_quiet():
    """A submitted batch prints its progress and summary, so that 'stressgrid logs' shows them."""
    from stressgrid.grid import RUN_ENTRYPOINT

    assert "--quiet" not in RUN_ENTRYPOINT.split() and "-q" not in RUN_ENTRYPOINT.split()


def _progress(done, total):
    return SimpleNamespace(tasks_done=done, tasks_total=total, scenarios_done=100 * done, scenarios_total=100 * total)


def test_plain_progress_is_a_line_every_tenth_of_the_tasks():
    lines: list[str] = []
    advance = progress_lines(write=lines.append)
    for done in range(1, 31):
        advance(_progress(done, 30))
    assert [line.split(" tasks")[0] for line in lines] == [f"progress: {k}/30" for k in range(3, 31, 3)]
    assert lines[-1].startswith("progress: 30/30 tasks (100%), 3,000/3,000 scenarios, ")
    few: list[str] = []
    advance = progress_lines(write=few.append)
    for done in (1, 2, 3, 3):
        advance(_progress(done, 3))
    assert [line.split(" tasks")[0] for line in few] == ["progress: 1/3", "progress: 2/3", "progress: 3/3"]
    quiet: list[str] = []
    advance = progress_lines(quiet=True, write=quiet.append)
    advance(_progress(1, 1))
    assert quiet == []


def test_a_run_with_progress_lines_prints_them_and_its_summary(linear_batch_path, tmp_path):
    """As a submitted job runs (its output is a log file, not a terminal)."""
    res = CliRunner().invoke(main, ["run", str(linear_batch_path), "--out", str(tmp_path / "out"), "--serial",
                                    "--no-report"], env={"STRESSGRID_PROGRESS": "lines"})
    assert res.exit_code == 0, res.output
    assert "progress: 1/1 tasks (100%)" in res.output and "VaR 99%" in res.output
    plain = CliRunner().invoke(main, ["run", str(linear_batch_path), "--out", str(tmp_path / "plain"), "--serial",
                                      "--no-report"], env={"STRESSGRID_PROGRESS": None})
    assert plain.exit_code == 0 and "progress:" not in plain.output  # a pipe without it: as before


def test_a_submitted_job_asks_for_progress_lines(tmp_path, monkeypatch):
    """What submit sends: the job's environment asks its run for plain progress lines."""
    sent = {}

    class Head:
        def submit_job(self, **kwargs):
            sent.update(kwargs)
            return kwargs["submission_id"]

    monkeypatch.setattr(_jobs, "_client", lambda address: Head())
    (tmp_path / "batch.yaml").write_text("name: x\n")
    job = _jobs.submit_job(tmp_path, "http://head:8265", "python -m stressgrid.cli run batch.yaml --out {out}", "x")
    assert job == sent["submission_id"]
    assert sent["runtime_env"]["env_vars"]["STRESSGRID_PROGRESS"] == "lines"
    assert sent["runtime_env"]["env_vars"]["JAX_ENABLE_X64"] == "1"  # the workers' settings are kept


# -- a head with token authentication, and another Ray version -----------------------------------------------

_HEAD = textwrap.dedent("""
    import json, socket, sys
    import ray

    ray.__version__ = "2.0.0"  # what the head records as its version: a client of another version joins it
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    ctx = ray.init(address="local", num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1",
                   dashboard_port=port, logging_level="ERROR")
    print(json.dumps({"gcs": ctx.address_info["gcs_address"], "jobs": f"http://127.0.0.1:{port}"}), flush=True)
    sys.stdin.read()
    ray.shutdown()
""")


@pytest.mark.slow
@pytest.mark.own_ray_head
def test_a_head_with_token_authentication_and_another_ray_version(linear_batch_path, tmp_path):
    """A Ray head on the loopback interface with ``RAY_AUTH_MODE=token`` that says it runs Ray 2.0.0: a
    client without the token, with another token, and with the token but this environment's Ray."""
    import ray  # noqa: F401  (puts the psutil that Ray ships on the path)

    psutil = pytest.importorskip("psutil")
    token = "0123456789abcdef" * 2
    script = tmp_path / "head.py"
    script.write_text(_HEAD)
    head = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
                            env=_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0"))
    started = []
    try:
        addresses = json.loads(head.stdout.readline())
        started = psutil.Process(head.pid).children(recursive=True)
        home = tmp_path / "home"  # no ~/.ray/auth_token there
        home.mkdir()

        def cli(*args, **env):
            return subprocess.run([sys.executable, "-m", "stressgrid.cli", *args], capture_output=True, text=True,
                                  timeout=180, cwd=tmp_path, env=_env(HOME=str(home), RAY_NUM_REDIS_GET_RETRIES="3", **env))

        p = cli("status", "job-1", "--address", addresses["jobs"])
        assert p.returncode == 2 and "sent none: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN" in _one_error_line(p.stderr)
        p = cli("status", "job-1", "--address", addresses["jobs"], RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="f" * 32)
        assert p.returncode == 2 and "refused this client's authentication token" in _one_error_line(p.stderr)

        run = ("run", str(linear_batch_path), "--out", str(tmp_path / "out"), "--address", addresses["gcs"])
        p = cli(*run)
        line = _one_error_line(p.stderr)
        assert p.returncode == 2 and "Ray could not join a cluster there" in line and "RAY_AUTH_TOKEN" in line
        p = cli(*run, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        line = _one_error_line(p.stderr)
        assert p.returncode == 2 and f"the cluster runs Ray 2.0.0 on Python {sys.version.split()[0]}" in line
        assert "pip install 'ray[default]==2.0.0'" in line
    finally:
        try:
            started += [c for c in psutil.Process(head.pid).children(recursive=True) if c not in started]
        except psutil.NoSuchProcess:
            pass
        try:
            head.stdin.close()
            head.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            head.kill()
            head.wait()
        for p in started:  # what the head started and left behind (its agents outlive it)
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def test_a_job_writing_to_object_storage_gets_its_uri_whole_and_is_not_fetched(tmp_path, monkeypatch):
    """The run directory goes into the job's shell command quoted: a URI's ``&`` and ``?`` stay in the
    argument.  Such a run is read at its URI, so fetch says so instead of packing a folder."""
    import shlex

    sent = {}
    uri = "s3://bucket/desk/run?endpoint_override=10.0.0.5:9000&scheme=http"

    class Head:
        def submit_job(self, **kwargs):
            sent.update(kwargs)
            return kwargs["submission_id"]

        def get_job_info(self, job_id):
            return SimpleNamespace(status=SimpleNamespace(value="SUCCEEDED"), message="", start_time=None,
                                   end_time=None, metadata=sent["metadata"], entrypoint=sent["entrypoint"])

    monkeypatch.setattr(_jobs, "_client", lambda address: Head())
    (tmp_path / "batch.yaml").write_text("name: x\n")
    job = _jobs.submit_job(tmp_path, "http://head:8265", "python -m stressgrid.cli run batch.yaml --out {out}", "x",
                           out=uri)
    assert shlex.split(sent["entrypoint"])[-2:] == ["--out", uri]
    with pytest.raises(ConfigError, match=r"wrote its run to s3://bucket/desk/run\?.*stressgrid report s3://"):
        _jobs.fetch_run("http://head:8265", job, tmp_path / "fetched")
    assert not (tmp_path / "fetched").exists()
