"""Where the grid runs: an embedded local Ray instance or an existing cluster."""

from ._connect import connect, ray_available_cpus, runtime_env

__all__ = ["connect", "ray_available_cpus", "runtime_env"]
