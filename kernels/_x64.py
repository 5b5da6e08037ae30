"""Process settings for every process that runs a kernel (importing :mod:`kernels` applies them).

* float64: ``JAX_ENABLE_X64`` and ``jax_enable_x64``.
* ``--xla_cpu_prefer_vector_width=512`` added to ``XLA_FLAGS`` unless that flag is already set:
  XLA's CPU backend otherwise vectorises loops 256 bits wide even where the CPU has 512-bit
  registers (AVX-512), which halves the throughput of the kernels' exponentials (measured: the
  option kernel 71 -> 109 million evaluations per second and core on an AVX-512 CPU).  A CPU without
  AVX-512 ignores it.  XLA reads ``XLA_FLAGS`` when it starts its CPU backend, on the first
  computation of the process, so the flag takes effect when :mod:`kernels` is imported before any
  JAX computation (as in the grid's workers); set it yourself in ``XLA_FLAGS`` to choose another.
* ``STRESSGRID_ONE_CORE=1`` (set for the grid's Ray workers by :func:`cluster.runtime_env`): the process
  computes on one core at a time.  JAX dispatches synchronously (``jax_cpu_enable_async_dispatch`` off),
  and XLA's CPU backend is started while the importing thread may run on a single CPU, so that XLA
  sizes its pool of compute threads to one; every thread's CPU set is then restored, so the operating
  system still places the process on any core.  Otherwise :func:`kernels.revalue` dispatches the
  book's instrument groups at once and XLA runs them on a thread per core (measured: one process kept
  1.2 to 1.6 cores busy), which helps a single process but makes workers that Ray schedules one per
  CPU compete for the same cores.  Only on systems with ``os.sched_setaffinity`` (Linux); elsewhere
  only the synchronous dispatch applies.
"""

import os
from importlib import metadata

os.environ.setdefault("JAX_ENABLE_X64", "1")
VECTOR_WIDTH_FLAG = "--xla_cpu_prefer_vector_width=512"
#: jaxlib releases the flag was checked on: XLA aborts the process on a flag it does not know, so a
#: jaxlib outside these runs with XLA's own default rather than risk it
_CHECKED_JAXLIB = ("0.10.",)


def _jaxlib_checked() -> bool:
    try:
        return metadata.version("jaxlib").startswith(_CHECKED_JAXLIB)
    except metadata.PackageNotFoundError:
        return False


if "xla_cpu_prefer_vector_width" not in os.environ.get("XLA_FLAGS", "") and _jaxlib_checked():
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + VECTOR_WIDTH_FLAG).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def _start_backend_on_one_core() -> None:
    """Start XLA's CPU backend with this thread's CPU set narrowed to one CPU (XLA sizes its thread pool
    from the CPUs the process may use), then give every thread of the process its CPU set back."""
    if not hasattr(os, "sched_setaffinity"):
        jax.devices()
        return
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        jax.devices("cpu")
    finally:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), allowed)
            except OSError:  # a thread that has exited meanwhile
                pass


if os.environ.get("STRESSGRID_ONE_CORE") == "1":
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    _start_backend_on_one_core()


def x64_enabled() -> bool:
    """True when JAX computes in float64 in this process."""
    import jax.numpy as jnp

    return jnp.zeros(1).dtype == jnp.float64
