"""Connecting to Ray: an embedded local instance by default, or an existing cluster."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from core import ConfigError

__all__ = ["connect", "runtime_env", "ray_available_cpus"]


def runtime_env() -> dict:
    """The runtime environment every worker gets: float64 JAX on every worker process."""
    return {"env_vars": {"JAX_ENABLE_X64": "1"}}


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
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)
    kwargs = dict(runtime_env=runtime_env(), logging_level=logging.ERROR, log_to_driver=True)
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
