"""Process settings for every process that runs a kernel (importing :mod:`kernels` applies them).

* float64: ``JAX_ENABLE_X64`` and ``jax_enable_x64``.
* ``--xla_cpu_prefer_vector_width=512`` added to ``XLA_FLAGS`` unless that flag is already set:
  XLA's CPU backend otherwise vectorises loops 256 bits wide even where the CPU has 512-bit
  registers (AVX-512), which halves the throughput of the kernels' exponentials (measured: the
  option kernel 71 -> 109 million evaluations per second and core on an AVX-512 CPU).  A CPU without
  AVX-512 ignores it.  XLA reads ``XLA_FLAGS`` when it starts its CPU backend, on the first
  computation of the process, so the flag takes effect when :mod:`kernels` is imported before any
  JAX computation (as in the grid's workers); set it yourself in ``XLA_FLAGS`` to choose another.
* ``STRESSGRID_ONE_CORE=1`` (set for the grid's Ray workers by :func:`cluster.runtime_env`): JAX runs
  each computation on the calling thread (``jax_cpu_enable_async_dispatch`` off), so a process computes
  on one core.  Otherwise :func:`kernels.revalue` dispatches the book's instrument groups at once and
  XLA runs them side by side on every core, which helps a single process but makes workers that Ray
  schedules one per CPU compete for the same cores.
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
if os.environ.get("STRESSGRID_ONE_CORE") == "1":
    jax.config.update("jax_cpu_enable_async_dispatch", False)


def x64_enabled() -> bool:
    """True when JAX computes in float64 in this process."""
    import jax.numpy as jnp

    return jnp.zeros(1).dtype == jnp.float64
