"""``stressgrid submit / status / logs / fetch`` against a real Ray Jobs API: a local Ray head with its
dashboard on a free localhost port, started (and stopped) by the test's own subprocess."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stressgrid.core import ConfigError

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent("""
    import json, socket, subprocess, sys
    from pathlib import Path
    import pandas as pd
    import ray
    from stressgrid.cluster import runtime_env

    batch, work = sys.argv[1], Path(sys.argv[2])
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
             runtime_env=runtime_env(), logging_level="ERROR")
    url = f"http://127.0.0.1:{port}"

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "cli", *args, "--address", url], capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    out = {}
    rc, job, err = cli("submit", batch, "--wait")
    job = job.strip()
    out["submit"] = [rc, job, err[-2000:]]
    out["status"] = cli("status", job)[:2]
    out["logs"] = cli("logs", job)[:2]
    out["fetch"] = cli("fetch", job, "--out", str(work / "fetched"))[:3]
    out["fetch_unknown"] = cli("fetch", "no-such-job", "--out", str(work / "x"))
    # the same batch run here, serially, for comparison
    subprocess.run([sys.executable, "-m", "cli", "run", batch, "--out", str(work / "local"), "--serial", "-q"], check=True)
    same = {}
    for f in sorted((work / "local").glob("*.parquet")):
        g = work / "fetched" / f.name
        same[f.name] = g.exists() and bool(pd.read_parquet(f).equals(pd.read_parquet(g)))
    out["same"] = same
    fetched = work / "fetched"
    out["fetched_files"] = sorted(p.name for p in fetched.iterdir()) if fetched.exists() else []
    print(json.dumps(out))
    ray.shutdown()
""")


@pytest.mark.slow
@pytest.mark.own_ray_head
def test_submit_status_logs_fetch(linear_batch_path, tmp_path):
    script = tmp_path / "jobs.py"
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # the job's entrypoint runs 'python -m stressgrid.cli' on the head node: this environment's python first on PATH
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run([sys.executable, str(script), str(linear_batch_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=480, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rc, job, err = out["submit"]
    assert rc == 0 and job.startswith("stressgrid-linear-"), err
    rc, text = out["status"]
    assert rc == 0 and f"{job}: SUCCEEDED" in text and f"out: /tmp/stressgrid/runs/{job}" in text
    rc, text = out["logs"]
    assert rc == 0
    rc, text, err = out["fetch"]
    assert rc == 0 and "fetched" in text, err
    assert "manifest.json" in out["fetched_files"] and "tasks" not in out["fetched_files"]
    assert out["same"] and all(out["same"].values()), out["same"]
    rc, _, err = out["fetch_unknown"]
    assert rc == 2 and "job 'no-such-job': not found" in err


def test_bad_jobs_address_is_one_clear_error(linear_batch_path):
    from stressgrid.grid import submit_batch

    with pytest.raises(ConfigError, match=r"--address 'http://127.0.0.1:9': no Ray Jobs API there"):
        submit_batch(linear_batch_path, "http://127.0.0.1:9")


def test_submit_validates_the_batch_before_contacting_the_cluster(tmp_path):
    from stressgrid.grid import submit_batch

    bad = tmp_path / "b.yaml"
    bad.write_text("name: x\nbook: missing.csv\nscenarios: []\n")
    with pytest.raises(ConfigError, match=r"field 'scenarios'"):
        submit_batch(bad, "http://127.0.0.1:9")


def test_submission_waits_for_a_head_without_a_job_agent_yet(monkeypatch):
    from stressgrid.cluster import _jobs

    class Head:
        def __init__(self, refusals, message):
            self.calls, self.refusals, self.message = 0, refusals, message

        def submit_job(self, **kw):
            self.calls += 1
            if self.calls <= self.refusals:
                raise RuntimeError(self.message)
            return kw["submission_id"]

    monkeypatch.setattr(_jobs.time, "sleep", lambda s: None)
    starting = Head(2, "Request failed with status code 500: No available agent to submit job, please try again later..")
    assert _jobs._submit(starting, submission_id="job-1") == "job-1" and starting.calls == 3
    broken = Head(1, "Request failed with status code 500: something else")
    with pytest.raises(RuntimeError, match="something else"):
        _jobs._submit(broken, submission_id="job-2")
    assert broken.calls == 1  # other refusals are not retried
    monkeypatch.setattr(_jobs, "AGENT_WAIT_SECONDS", -1.0)
    never = Head(10, "No available agent to submit job")
    with pytest.raises(RuntimeError, match="No available agent"):
        _jobs._submit(never, submission_id="job-3")
