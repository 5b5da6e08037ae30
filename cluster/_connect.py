"""Connecting to Ray: an embedded local instance by default, or an existing cluster."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import socket
import subprocess
import sys
import urllib.parse
import warnings
from pathlib import Path
from typing import Iterator

from stressgrid.core import ConfigError, StressGridError

from ._hints import explain_failure, first_line
from ._setup import PRELOAD_ENV
from ._watchdog import INSTANCE_ENV  # the variable that marks the processes of an embedded instance

__all__ = ["connect", "runtime_env", "ray_available_cpus", "gpu_request", "join_error", "WORKER_XLA_FLAGS", "LOOPBACK"]


#: XLA settings of a worker process: one intra-op thread, because Ray schedules one task per CPU and
#: a worker that also spread its kernels over every core would oversubscribe the machine
WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"
#: run by every Ray worker process at its start
WORKER_SETUP_HOOK = "stressgrid.cluster._setup.worker_setup"


def runtime_env(working_dir: str | None = None, pip: list[str] | None = None, preload: tuple[str, ...] = ()) -> dict:
    """The runtime environment every worker gets.

    Always: float64 JAX (``JAX_ENABLE_X64``), one XLA thread per worker process (Ray runs one task per
    CPU), and :func:`stressgrid.cluster._setup.worker_setup` run when each worker process starts, before
    it unpacks a task: it calls ``stressgrid.kernels.configure_process`` and imports the modules of
    ``preload`` (of :data:`stressgrid.cluster._setup.PRELOADABLE`) on a thread of its own.  ``working_dir`` ships a source tree to the workers of a cluster that does not have stressgrid
    installed (Ray uploads it and puts it on the workers' path); ``pip`` installs packages there.
    """
    flags = " ".join(dict.fromkeys(os.environ.get("XLA_FLAGS", "").split() + WORKER_XLA_FLAGS.split()))
    env: dict = {"env_vars": {"JAX_ENABLE_X64": "1", "XLA_FLAGS": flags, "STRESSGRID_ONE_CORE": "1"},
                 "worker_process_setup_hook": WORKER_SETUP_HOOK}
    if preload:
        env["env_vars"][PRELOAD_ENV] = ",".join(preload)
    if working_dir:
        env["working_dir"] = working_dir
        env["excludes"] = [".git", ".venv*", "runs", "benchmarks/results", "**/__pycache__", "*.egg-info"]
    if pip:
        env["pip"] = list(pip)
    return env


#: the address every listener of the embedded instance binds to
LOOPBACK = "127.0.0.1"
#: Ray on Linux reads a node address of 127.0.0.1 as "this machine's external address" and binds its
#: servers to all interfaces, unless this is 0 (single-machine mode, the default on macOS and Windows)
_RAY_MULTI_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: how long joining a cluster waits for its address to answer before giving up
PROBE_SECONDS = 5.0


#: JAX warns at every fork once it runs threads; the processes started here fork and exec at once
#: (subprocess), which is safe, so that warning is not shown for them
_FORK_WARNING = r"os\.fork\(\) was called"


@contextlib.contextmanager
def _fork_and_exec() -> Iterator[None]:
    """A block that starts processes with subprocess (fork, then exec at once): no fork warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_FORK_WARNING, category=RuntimeWarning)
        yield


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None, preload: tuple[str, ...] = ()) -> Iterator[bool]:
    """Make sure Ray is initialised for the duration of the block.

    Parameters
    ----------
    address : None for an embedded local instance (started here and stopped on exit), or ``auto``,
        ``HOST:PORT`` or ``ray://HOST:10001`` to join an existing cluster (left running on exit).
    num_cpus : CPUs of the embedded instance (default: all of this machine's).
    preload : modules every worker imports in the background when it starts (see :func:`runtime_env`).

    Yields True if this call started Ray.  An already initialised Ray (a test session, a notebook) is
    used as it is and left running.

    The embedded instance listens on 127.0.0.1 only (GCS, raylet and object manager, dashboard and
    runtime-env agents, workers; the dashboard is off) and none of its processes outlives this process,
    even one killed with SIGKILL: a watchdog started first (``_watchdog.py``) ends them.  Joining a
    cluster checks first that its address answers, and a failure to join is one :class:`ConfigError`
    that says what to do (unreachable address, a Jobs API address, token authentication, versions).
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]  # inside a Ray job: the cluster that runs it
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs = dict(runtime_env=runtime_env(preload=tuple(preload)), logging_level=logging.ERROR, log_to_driver=True)
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        del kwargs["runtime_env"]  # a driver started by the Jobs API: the job's runtime env (set by submit) applies
    if address:
        host = _check_address(address)
        try:
            with _loopback_node(host is not None and _is_loopback_host(host)), _fork_and_exec():
                ray.init(address=address, **kwargs)
        except Exception as exc:  # Ray raises several types for a bad address
            raise join_error(address, exc) from None
        try:
            yield True
        finally:
            ray.shutdown()
        return
    with _local_instance(num_cpus, kwargs):
        yield True


@contextlib.contextmanager
def _local_instance(num_cpus: int | None, kwargs: dict) -> Iterator[None]:
    """An embedded Ray instance on the loopback interface, watched so that it ends with this process."""
    import ray

    token = secrets.token_hex(8)
    with _fork_and_exec():
        watchdog = _start_watchdog(token)
    try:
        saved = os.environ.get(INSTANCE_ENV)
        os.environ[INSTANCE_ENV] = token  # inherited by every process Ray starts, and by theirs
        try:
            with _loopback_node(True), _fork_and_exec():
                ctx = ray.init(num_cpus=num_cpus, _node_ip_address=LOOPBACK, include_dashboard=False,
                               dashboard_host=LOOPBACK, **kwargs)
        except BaseException:
            ray.shutdown()  # what started of the instance; the watchdog ends the rest
            raise
        finally:
            _restore_env(INSTANCE_ENV, saved)
        try:
            node_ip = str(ctx.address_info.get("node_ip_address", LOOPBACK))
            if not _is_loopback_host(node_ip):
                raise StressGridError(
                    f"the embedded Ray instance came up on {node_ip}, not on {LOOPBACK}, so it would listen beyond "
                    f"this machine (this Ray version, {ray.__version__}, ignores the loopback setting): run with "
                    "--serial, or start a Ray head yourself and pass its address with --address")
            _start_workers(int(ray.cluster_resources().get("CPU", 1)))
            yield
        finally:
            ray.shutdown()
    finally:
        _stop_watchdog(watchdog)


def _start_workers(n: int) -> None:
    """Have the instance start its ``n`` worker processes now, without waiting for them.

    Ray starts a worker process when the first task needs one, and a worker takes seconds to be ready
    (the interpreter, :func:`stressgrid.cluster._setup.worker_setup`, the modules it preloads).  Started
    with the instance, they get ready while the driver prepares the run, instead of when its first
    tasks wait for them (measured on the demo: 2.4 s between the first tasks' submission and their start).
    """
    import ray

    from ._setup import ready

    task = ray.remote(num_cpus=1, max_retries=0)(ready)
    for _ in range(max(n, 1)):
        task.remote()


def _start_watchdog(token: str) -> subprocess.Popen | None:
    """Start ``_watchdog.py`` for the instance marked with ``token`` (POSIX; None elsewhere).

    Its standard input is a pipe whose write end only this process holds (pipes are not inherited by the
    processes Ray starts), so it reads end-of-file when this process ends, however it ends.  It runs in a
    session of its own: a Ctrl-C or a closed terminal reaches the driver, which shuts Ray down itself.
    """
    if os.name != "posix":
        return None
    script = Path(__file__).with_name("_watchdog.py")
    return subprocess.Popen([sys.executable, "-I", str(script), token, str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop_watchdog(watchdog: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """Close the watchdog's pipe: it ends what is left of the instance (after ``ray.shutdown()``, an agent
    or two still exiting) and exits."""
    if watchdog is None:
        return
    try:
        watchdog.stdin.close()
        watchdog.wait(timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        pass


@contextlib.contextmanager
def _loopback_node(on: bool) -> Iterator[None]:
    """While Ray starts or joins: treat 127.0.0.1 as this node's address rather than replace it by the
    machine's external address (``ray._private.services.resolve_ip_for_localhost``).

    With that address Ray binds the GCS, the raylet, the agents and the workers to the loopback interface.
    The setting is read by Ray's processes from the environment (they inherit it at start) and by this
    process from a module constant read when Ray was imported; both are restored afterwards.
    """
    if not on:
        yield
        return
    saved_env = os.environ.get(_RAY_MULTI_NODE_ENV)
    os.environ[_RAY_MULTI_NODE_ENV] = "0"
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray layout: the node address check after ray.init reports it
        ray_constants = None
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if saved is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved
        _restore_env(_RAY_MULTI_NODE_ENV, saved_env)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST[:PORT]``; None for ``auto``, ``local`` and the like."""
    if address in ("auto", "local") or "://" not in address and ":" not in address:
        return None
    scheme = address.split("://", 1)[0] if "://" in address else ""
    try:
        parsed = urllib.parse.urlsplit(address if scheme else f"//{address}")
        port = parsed.port or (10001 if scheme == "ray" else None)
    except ValueError:
        return None
    return (parsed.hostname, port) if parsed.hostname and port else None


def _check_address(address: str) -> str | None:
    """Fail at once, in one line, for an address that is a Jobs API's or that nothing answers at (Ray
    itself retries an unreachable address for minutes).  Returns the address's host."""
    if address.startswith(("http://", "https://")):
        raise ConfigError(f"--address {address!r} is a Jobs API (dashboard) address: send the batch with "
                          f"'stressgrid submit BATCH --address {address}', or give 'run' the cluster's GCS address "
                          "(HEAD:6379) or Ray Client address (ray://HEAD:10001)")
    hp = _host_port(address)
    if hp is None:
        return None
    host, port = hp
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(
            f"--address {address!r}: nothing answers at {host}:{port} ({reason}): check the host and port (the head's "
            "GCS port, 6379 unless 'ray start --head --port' chose another; ray://HEAD:10001 for Ray Client), that "
            "the cluster is up and that this machine can reach it; or leave --address out to run as the batch says "
            "(executor: ray, an embedded local instance; serial, in this process)") from None
    return host


def join_error(address: str, exc: BaseException) -> ConfigError:
    """The one-line :class:`ConfigError` for a failure of ``ray.init(address=...)``."""
    text = str(exc)
    hint = explain_failure(text)
    if hint:
        return ConfigError(f"--address {address!r}: {hint}")
    if "Could not find any running Ray instance" in text:
        return ConfigError(f"--address {address!r}: no Ray cluster runs on this machine: start one with "
                           "'ray start --head', give a cluster's address (HEAD:6379), or leave --address out to run "
                           "as the batch says (executor: ray, an embedded local instance; serial, in this process)")
    if isinstance(exc, ConnectionError):
        return ConfigError(
            f"--address {address!r}: Ray could not join a cluster there ({first_line(text)}): check that it is "
            "the head's GCS port (6379 unless chosen otherwise), and, if "
            "the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to its token")
    return ConfigError(f"--address {address!r}: cannot connect to a Ray cluster ({type(exc).__name__}: "
                       f"{first_line(text)})")


def ray_available_cpus() -> int:
    import ray

    return int(ray.available_resources().get("CPU", ray.cluster_resources().get("CPU", 1)))


def gpu_request(setting: bool | str = "auto", per_task: float = 1.0) -> float:
    """GPUs each kernel task asks Ray for, from the batch's ``execution.gpu`` and ``gpu_per_task``.

    ``auto``: ``per_task`` when the cluster has GPUs, else 0 (CPU workers); ``True``: ``per_task``, and a
    :class:`ConfigError` when the cluster has none; ``False``: 0.
    """
    import ray

    if setting is False:
        return 0.0
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    if gpus <= 0:
        if setting is True:
            raise ConfigError("execution.gpu: true, but the Ray cluster has no GPU (set it to auto or false, "
                              "or start workers with GPUs)")
        return 0.0
    return float(per_task)
