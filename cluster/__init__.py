"""Where the grid runs: an embedded local Ray instance or an existing cluster."""

from ._connect import WORKER_XLA_FLAGS, connect, gpu_request, ray_available_cpus, runtime_env

__all__ = ["connect", "ray_available_cpus", "runtime_env", "gpu_request", "WORKER_XLA_FLAGS"]
