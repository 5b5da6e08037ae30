"""Process settings for every process that runs a kernel, applied by one explicit call.

Importing :mod:`stressgrid` or any of its modules changes no environment variable, CPU affinity or JAX
setting.  :func:`configure_process` does, once per process; the command line and the grid's workers
call it before their first JAX computation, and so should a notebook or script that calls the kernels
directly (:func:`stressgrid.kernels.revalue` refuses to run in float32):

* float64: ``JAX_ENABLE_X64`` and ``jax_enable_x64``.
* ``--xla_cpu_prefer_vector_width=512`` added to ``XLA_FLAGS`` unless that flag is already set:
  XLA's CPU backend otherwise vectorises loops 256 bits wide even where the CPU has 512-bit
  registers (AVX-512), which halves the throughput of the kernels' exponentials.  A CPU without
  AVX-512 ignores it.  XLA reads ``XLA_FLAGS`` when it starts its CPU backend, on the first
  computation of the process, so the flag takes effect only when this call comes first.
* ``one_core=True`` (the grid's Ray workers, through ``STRESSGRID_ONE_CORE=1`` in their runtime
  environment): the process computes on one core at a time.  JAX dispatches synchronously
  (``jax_cpu_enable_async_dispatch`` off), and XLA's CPU backend is started while the calling thread
  runs on a single CPU, so that XLA sizes its pool of compute threads to one; every thread's CPU set is
  then restored, so the operating system still places the process on any core.  Workers that Ray
  schedules one per CPU then do not compete for the same cores.  Only on systems with
  ``os.sched_setaffinity`` (Linux); elsewhere only the synchronous dispatch applies.
* The persistent cache of compiled programs (JAX's compilation cache), so that a new process loads the
  kernels and the sensitivities compiled by an earlier run instead of compiling them again: the folder
  ``STRESSGRID_COMPILE_CACHE`` names, else ``$XDG_CACHE_HOME/stressgrid/jax`` (``~/.cache/...``);
  ``STRESSGRID_COMPILE_CACHE=off`` turns it off.  The cache holds code that JAX runs, so it is used only
  when the folder belongs to this user and no one else may write to it (it is created with mode 0700);
  a run directory is never used for it.
"""

from __future__ import annotations

import os
from importlib import metadata

__all__ = ["configure_process", "x64_enabled", "compile_cache_dir", "VECTOR_WIDTH_FLAG"]

VECTOR_WIDTH_FLAG = "--xla_cpu_prefer_vector_width=512"
#: jaxlib releases the flag was checked on: XLA aborts the process on a flag it does not know, so a
#: jaxlib outside these runs with XLA's own default rather than risk it
_CHECKED_JAXLIB = ("0.10.",)
_configured: dict = {}


def _jaxlib_checked() -> bool:
    try:
        return metadata.version("jaxlib").startswith(_CHECKED_JAXLIB)
    except metadata.PackageNotFoundError:
        return False


#: compilations shorter than this are not worth a file in the cache
CACHE_MIN_COMPILE_SECONDS = 0.1


def compile_cache_dir() -> str | None:
    """The folder of the persistent compilation cache, or None (turned off, or not private to this user)."""
    value = os.environ.get("STRESSGRID_COMPILE_CACHE", "").strip()
    if value.lower() in ("off", "0", "false", "no", "none"):
        return None
    if value:
        path = os.path.abspath(os.path.expanduser(value))
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "stressgrid", "jax")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o022:
        return None  # others could write code into it that this process would run
    return path


def _start_backend_on_one_core() -> None:
    """Start XLA's CPU backend with this thread's CPU set narrowed to one CPU (XLA sizes its thread pool
    from the CPUs the process may use), then give every thread of the process its CPU set back."""
    import jax

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


def configure_process(one_core: bool | None = None, vector_width: bool = True) -> dict:
    """Set up this process for the kernels: float64, XLA's flags and, optionally, one core.

    Parameters
    ----------
    one_core
        Compute on one core at a time (see the module's description).  ``None`` (default): when the
        environment variable ``STRESSGRID_ONE_CORE`` is ``"1"``, as the grid's Ray workers have it.
    vector_width
        Add ``--xla_cpu_prefer_vector_width=512`` to ``XLA_FLAGS`` unless the flag is set already.

    Returns
    -------
    dict
        The settings in force after the call (``x64``, ``one_core``, ``xla_flags``, ``compile_cache``).  A second call
        changes nothing and returns the same.
    """
    if _configured:
        return dict(_configured)
    if one_core is None:
        one_core = os.environ.get("STRESSGRID_ONE_CORE") == "1"
    os.environ["JAX_ENABLE_X64"] = "1"
    if vector_width and "xla_cpu_prefer_vector_width" not in os.environ.get("XLA_FLAGS", "") and _jaxlib_checked():
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + VECTOR_WIDTH_FLAG).strip()
    import jax

    jax.config.update("jax_enable_x64", True)
    cache = compile_cache_dir()
    if cache is not None:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    if one_core:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
        _start_backend_on_one_core()
    _configured.update(x64=True, one_core=bool(one_core), xla_flags=os.environ.get("XLA_FLAGS", ""), compile_cache=cache)
    return dict(_configured)


def x64_enabled() -> bool:
    """True when JAX computes in float64 in this process."""
    import jax.numpy as jnp

    return jnp.zeros(1).dtype == jnp.float64


def require_x64(caller: str) -> None:
    """Raise :class:`~stressgrid.core.ConfigError` unless :func:`configure_process` (or the user) has
    turned on float64: a risk number is never computed in float32."""
    import jax

    if not jax.config.read("jax_enable_x64"):
        from stressgrid.core import ConfigError

        raise ConfigError(f"{caller}: JAX computes in float32 in this process; call "
                          "stressgrid.kernels.configure_process() before the first kernel")
