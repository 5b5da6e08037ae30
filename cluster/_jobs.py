"""Batches on a remote Ray cluster through the Ray Jobs API: submit, status, logs, fetch.

``submit_job`` sends a staged folder (for a batch: :func:`stressgrid.grid.stage_batch` makes it) as the
job's working directory with an entrypoint (``python -m stressgrid.cli run ...``); the run directory is
written on the head node (or on storage the head node mounts).  This layer knows no batch.  ``fetch``
brings a finished run directory back over the same HTTP endpoint: a short job packs it, streams it through
its log as base64 between markers with its SHA-256, and the client checks and unpacks it.  That needs no
port beyond the dashboard's (8265) and suits run directories up to a few hundred MiB; for larger runs
write ``--out`` to shared storage and read it from there.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import shlex
import shutil
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from stressgrid.core import ConfigError, StressGridError, TaskError

from ._hints import explain_failure, first_line

__all__ = ["submit_job", "job_status", "job_logs", "follow_logs", "fetch_run", "wait_for_job", "job_failure",
           "jobs_api_error", "PROGRESS_ENV", "DEFAULT_REMOTE_ROOT", "FETCH_BEGIN", "FETCH_END"]

#: where a submitted run writes on the head node unless ``--out`` says otherwise
DEFAULT_REMOTE_ROOT = "/tmp/stressgrid/runs"
FETCH_BEGIN = "STRESSGRID-FETCH-BEGIN"
FETCH_END = "STRESSGRID-FETCH-END"
#: largest run directory ``fetch`` moves through a job log
MAX_FETCH_BYTES = 512 * 2**20
#: set in a submitted job's environment: its run prints a plain line of progress every 10% of its tasks
#: (``stressgrid logs`` shows them; a progress bar needs a terminal)
PROGRESS_ENV = "STRESSGRID_PROGRESS"
#: the project's source, shipped with ``--ship-code`` to a cluster that has the dependencies but not stressgrid
_CODE = ("__init__.py", "cli.py", "core", "grid", "scenarios", "portfolios", "kernels", "cluster", "liquidity", "monitoring",
         "reports", "examples")
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _client(address: str):
    import logging

    from ray.job_submission import JobSubmissionClient

    logging.getLogger("ray").setLevel(logging.WARNING)  # not Ray's upload and socket notices

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, ValueError for a malformed address, AuthenticationError, ...
        raise jobs_api_error(address, exc) from None


def jobs_api_error(address: str, exc: BaseException) -> ConfigError:
    """The one-line :class:`ConfigError` for a Jobs API at ``address`` that could not be used."""
    hint = explain_failure(str(exc))
    if hint:
        return ConfigError(f"--address {address!r}: {hint}")
    return ConfigError(
        f"--address {address!r}: no Ray Jobs API there ({type(exc).__name__}: {first_line(exc)}): check that the "
        "cluster is up and that its dashboard port (8265 on the head) is reachable from here, e.g. through "
        "'ray dashboard CLUSTER.yaml' or 'kubectl port-forward'; set the address with --address or "
        "STRESSGRID_JOBS_ADDRESS")


def job_failure(job_id: str, status: str, text: str | None) -> StressGridError:
    """The one-line error for a job that ended ``status`` (not SUCCEEDED) with ``text`` (its message or log):
    a :class:`ConfigError` saying what to do when the cause is a known onboarding failure (stressgrid or a
    package missing on the cluster, ...), else a :class:`TaskError` with the message's last line."""
    hint = explain_failure(text or "")
    if hint:
        return ConfigError(f"job {job_id}: {status}: {hint}")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    return TaskError(f"job {job_id}: {status}: {last} (the whole log: 'stressgrid logs {job_id}')")


def _source_root() -> Path:
    """The folder of the ``stressgrid`` package (the repository root in an editable install)."""
    return Path(__file__).resolve().parents[1]


def _ship(root: Path, stage: Path, names) -> None:
    """Copy the named parts of the package into ``stage/stressgrid`` (so the job can run ``-m stressgrid.cli``)."""
    dest = stage / "stressgrid"
    dest.mkdir()
    for name in names:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy(src, dest / name)


def _fetch_stage(ship_code: bool) -> Path:
    stage = Path(tempfile.mkdtemp(prefix="stressgrid-fetch-"))
    if ship_code:
        _ship(_source_root(), stage, ("__init__.py", "core", "cluster"))
    return stage


#: how long a submission waits for a head whose job agent has not started yet (a freshly started cluster)
AGENT_WAIT_SECONDS = 90.0


def _submit(client, **kwargs) -> str:
    """``client.submit_job(**kwargs)``, retried while the head answers that it has no job agent yet
    (Ray starts the agent a little after the dashboard, and says to try again later)."""
    t0 = time.monotonic()
    while True:
        try:
            return client.submit_job(**kwargs)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() - t0 > AGENT_WAIT_SECONDS:
                raise
            time.sleep(1.0)


def submit_job(folder: str | Path, address: str, entrypoint: str, name: str, out: str | None = None,
               ship_code: bool = False, pip: list[str] | None = None, metadata: dict | None = None) -> str:
    """Submit a staged folder as a Ray job; returns its submission id.

    Parameters
    ----------
    folder : the job's working directory (the staged input files); with ``ship_code`` this
        checkout's ``stressgrid`` package is copied into it first
    entrypoint : the job's command; ``{out}`` in it is replaced by the run directory on the cluster
    name : a label for the job id (e.g. the batch's name)
    out : the run directory on the cluster (default ``DEFAULT_REMOTE_ROOT/<id>``)
    pip : packages the cluster installs for the job
    metadata : extra string metadata kept with the job
    """
    from ._connect import runtime_env

    folder = Path(folder)
    if ship_code:
        _ship(_source_root(), folder, _CODE)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]
    job_id = f"stressgrid-{safe}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    remote_out = out or f"{DEFAULT_REMOTE_ROOT}/{job_id}"
    client = _client(address)
    env = runtime_env(working_dir=str(folder), pip=pip)
    env["env_vars"][PROGRESS_ENV] = "lines"
    try:
        return _submit(
            client, entrypoint=entrypoint.replace("{out}", shlex.quote(remote_out)), submission_id=job_id, runtime_env=env,
            metadata={**(metadata or {}), "stressgrid_out": remote_out, "stressgrid_ship_code": "1" if ship_code else "0"},
        )
    except Exception as exc:
        hint = explain_failure(str(exc))
        raise ConfigError(f"--address {address!r}: the cluster refused the job: "
                          + (hint or f"{type(exc).__name__}: {first_line(exc)}")) from None


def _info(client, job_id: str):
    try:
        return client.get_job_info(job_id)
    except Exception as exc:
        raise ConfigError(f"job {job_id!r}: not found on this cluster ({type(exc).__name__}: {exc})") from None


def job_status(address: str, job_id: str) -> dict:
    """Status of a job: ``status``, ``message``, ``start``, ``end``, ``out`` (its run directory), ``batch``,
    and ``hint``: what to do about a failed job, when its message shows a known cause (else None)."""
    info = _info(_client(address), job_id)
    meta = info.metadata or {}

    def ts(ms):
        return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds") if ms else None

    status = str(info.status.value if hasattr(info.status, "value") else info.status)
    hint = explain_failure(info.message or "") if status in ("FAILED", "STOPPED") else None
    return {"job": job_id, "status": status, "message": info.message, "start": ts(info.start_time),
            "end": ts(info.end_time), "batch": meta.get("stressgrid_batch"), "out": meta.get("stressgrid_out"),
            "entrypoint": info.entrypoint, "hint": hint}


def job_logs(address: str, job_id: str) -> str:
    """The job's whole log so far."""
    client = _client(address)
    _info(client, job_id)
    return client.get_job_logs(job_id)


def follow_logs(address: str, job_id: str, write) -> None:
    """Stream the job's log to ``write`` until the job ends."""
    import asyncio

    client = _client(address)
    _info(client, job_id)

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    asyncio.run(tail())


def wait_for_job(address: str, job_id: str, timeout: float = 3600.0, poll: float = 1.0) -> str:
    """Block until the job ends; returns its final status."""
    client = _client(address)
    t0 = time.monotonic()
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in _TERMINAL:
            return status
        if time.monotonic() - t0 > timeout:
            raise TaskError(f"job {job_id}: still {status} after {timeout:.0f} s")
        time.sleep(poll)


def fetch_run(address: str, job_id: str, out_dir: str | Path, timeout: float = 600.0) -> Path:
    """Copy a finished job's run directory from the cluster into ``out_dir``; returns ``out_dir``."""
    from ._connect import runtime_env

    client = _client(address)
    info = _info(client, job_id)
    status = str(info.status.value)
    meta = info.metadata or {}
    if "stressgrid_out" not in meta:
        raise ConfigError(f"job {job_id!r} was not submitted by 'stressgrid submit' (no run directory recorded)")
    if status != "SUCCEEDED":
        raise TaskError(f"job {job_id}: {status}, nothing to fetch (see 'stressgrid logs {job_id}')")
    from stressgrid.core.storage import is_uri

    if is_uri(meta["stressgrid_out"]):
        raise ConfigError(f"job {job_id} wrote its run to {meta['stressgrid_out']}: nothing to fetch, read it there "
                          f"(e.g. 'stressgrid report {meta['stressgrid_out']}')")
    stage = _fetch_stage(meta.get("stressgrid_ship_code") == "1")
    fetch_id = f"{job_id}-fetch-{secrets.token_hex(2)}"
    try:
        _submit(client, entrypoint=f"python -m stressgrid.cluster._fetch_job {shlex.quote(meta['stressgrid_out'])} {MAX_FETCH_BYTES}",
                submission_id=fetch_id, runtime_env=runtime_env(working_dir=str(stage)))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    final = wait_for_job(address, fetch_id, timeout=timeout, poll=0.5)
    log = client.get_job_logs(fetch_id)
    try:
        client.delete_job(fetch_id)
    except Exception:
        pass
    if final != "SUCCEEDED" or FETCH_BEGIN not in log:
        hint = explain_failure(log)
        if hint:
            raise ConfigError(f"job {job_id}: could not read its run directory on the cluster: {hint}")
        tail = " | ".join(line.strip() for line in log.strip().splitlines()[-3:] if line.strip())
        raise TaskError(f"job {job_id}: could not read its run directory {meta['stressgrid_out']} on the cluster: {tail}")
    data = _unpack_log(log, job_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(out, filter="data")  # refuses absolute paths, '..' and links out of the folder
    return out


def _unpack_log(log: str, job_id: str) -> bytes:
    head, _, rest = log.partition(FETCH_BEGIN)
    header, _, rest = rest.partition("\n")
    body, _, _ = rest.partition(FETCH_END)
    digest, _, size = header.strip().partition(" ")
    data = base64.b64decode("".join(body.split()))
    if len(data) != int(size or -1) or hashlib.sha256(data).hexdigest() != digest:
        raise StressGridError(f"job {job_id}: the fetched run directory is incomplete (size or SHA-256 mismatch); fetch again")
    return data
