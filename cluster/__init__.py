"""Where the grid runs: an embedded local Ray instance or an existing cluster."""

from ._connect import LOOPBACK, WORKER_XLA_FLAGS, connect, gpu_request, join_error, ray_available_cpus, runtime_env
from ._hints import explain_failure
from ._jobs import PROGRESS_ENV, fetch_run, follow_logs, job_failure, job_logs, job_status, submit_job, wait_for_job

__all__ = ["connect", "ray_available_cpus", "runtime_env", "gpu_request", "WORKER_XLA_FLAGS", "LOOPBACK", "join_error",
           "explain_failure", "submit_job", "job_status", "job_logs", "follow_logs", "fetch_run", "wait_for_job",
           "job_failure", "PROGRESS_ENV"]
