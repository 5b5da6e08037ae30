"""Connecting to Ray: an embedded local instance by default, or an existing cluster."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from stressgrid.core import ConfigError

__all__ = ["connect", "runtime_env", "ray_available_cpus", "gpu_request", "WORKER_XLA_FLAGS"]


#: XLA settings of a worker process: one intra-op thread, because Ray schedules one task per CPU and
#: a worker that also spread its kernels over every core would oversubscribe the machine
WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"
#: run by every Ray worker process at its start
WORKER_SETUP_HOOK = "stressgrid.kernels.configure_process"


def runtime_env(working_dir: str | None = None, pip: list[str] | None = None) -> dict:
    """The runtime environment every worker gets.

    Always: float64 JAX (``JAX_ENABLE_X64``), one XLA thread per worker process (Ray runs one task per
    CPU), and ``stressgrid.kernels.configure_process`` run when each worker process starts, before it
    unpacks a task (named as a string: this layer imports no kernel).  ``working_dir`` ships a source tree to the workers of a cluster that does not have stressgrid
    installed (Ray uploads it and puts it on the workers' path); ``pip`` installs packages there.
    """
    flags = " ".join(dict.fromkeys(os.environ.get("XLA_FLAGS", "").split() + WORKER_XLA_FLAGS.split()))
    env: dict = {"env_vars": {"JAX_ENABLE_X64": "1", "XLA_FLAGS": flags, "STRESSGRID_ONE_CORE": "1"},
                 "worker_process_setup_hook": WORKER_SETUP_HOOK}
    if working_dir:
        env["working_dir"] = working_dir
        env["excludes"] = [".git", ".venv*", "runs", "benchmarks/results", "**/__pycache__", "*.egg-info"]
    if pip:
        env["pip"] = list(pip)
    return env


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None) -> Iterator[bool]:
    """Make sure Ray is initialised for the duration of the block.

    Parameters
    ----------
    address : None for an embedded local instance (started here and stopped on exit, dashboard off
        and bound to localhost only), or ``auto``, ``HOST:PORT`` or ``ray://HOST:10001`` to join an
        existing cluster (left running on exit).
    num_cpus : CPUs of the embedded instance (default: all of this machine's).

    Yields True if this call started Ray.  An already initialised Ray (a test session, a notebook) is
    used as it is and left running.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    if address is None and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]  # inside a Ray job: the cluster that runs it
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs = dict(runtime_env=runtime_env(), logging_level=logging.ERROR, log_to_driver=True)
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        del kwargs["runtime_env"]  # a driver started by the Jobs API: the job's runtime env (set by submit) applies
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, dashboard_host="127.0.0.1", **kwargs)
    except ConnectionError as exc:
        raise ConfigError(f"--address {address!r}: cannot connect to a Ray cluster ({exc})") from None
    except Exception as exc:  # Ray raises several types for a bad address
        if address:
            raise ConfigError(f"--address {address!r}: cannot connect to a Ray cluster ({type(exc).__name__}: {exc})") from None
        raise
    try:
        yield True
    finally:
        ray.shutdown()


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
