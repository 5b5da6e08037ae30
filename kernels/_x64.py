"""float64 for every process that runs a kernel (importing :mod:`kernels` turns it on)."""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def x64_enabled() -> bool:
    """True when JAX computes in float64 in this process."""
    import jax.numpy as jnp

    return jnp.zeros(1).dtype == jnp.float64
