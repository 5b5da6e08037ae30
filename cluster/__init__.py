"""Where the grid runs: an embedded local Ray instance or an existing cluster."""

from ._connect import WORKER_XLA_FLAGS, connect, gpu_request, ray_available_cpus, runtime_env
from ._jobs import fetch_run, follow_logs, job_logs, job_status, submit_job, wait_for_job

__all__ = ["connect", "ray_available_cpus", "runtime_env", "gpu_request", "WORKER_XLA_FLAGS",
           "submit_job", "job_status", "job_logs", "follow_logs", "fetch_run", "wait_for_job"]
