"""The persistent compilation cache is used only from a folder private to this user."""

import os
import subprocess
import sys

from stressgrid.kernels._x64 import compile_cache_dir


def test_the_cache_folder_is_private_or_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("STRESSGRID_COMPILE_CACHE", "off")
    assert compile_cache_dir() is None
    mine = tmp_path / "mine"
    monkeypatch.setenv("STRESSGRID_COMPILE_CACHE", str(mine))
    assert compile_cache_dir() == str(mine)
    assert mine.stat().st_mode & 0o777 == 0o700  # created private
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a compiled program there
    monkeypatch.setenv("STRESSGRID_COMPILE_CACHE", str(shared))
    assert compile_cache_dir() is None
    monkeypatch.delenv("STRESSGRID_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache_dir() == str(tmp_path / "xdg" / "stressgrid" / "jax")


def test_a_second_process_loads_the_kernels_from_the_cache(tmp_path):
    """A fresh process configured by configure_process writes compiled programs into the cache, and the
    next one reads them back (JAX counts the hits)."""
    code = (
        "import json, numpy as np\n"
        "from stressgrid import kernels\n"
        "s = kernels.configure_process()\n"
        "import jax, jax.numpy as jnp\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)  # whatever this machine's speed\n"
        "from jax._src import monitoring\n"
        "hits = []\n"
        "monitoring.register_event_listener(lambda name, **kw: hits.append(name))\n"
        "f = jax.jit(lambda x: jnp.linalg.eigh(jnp.sin(x) @ jnp.cos(x).T + jnp.eye(300) * jnp.sum(x))[0].sum())\n"
        "f(np.ones((300, 300))).block_until_ready()\n"
        "print(json.dumps({'cache': s['compile_cache'], 'hit': '/jax/compilation_cache/cache_hits' in hits}))\n"
    )
    env = {**os.environ, "STRESSGRID_COMPILE_CACHE": str(tmp_path / "cache")}
    import json

    runs = [json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True, timeout=300).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert runs[0]["cache"] == runs[1]["cache"] == str(tmp_path / "cache")
    assert runs[0]["hit"] is False and runs[1]["hit"] is True
    assert any((tmp_path / "cache").iterdir())
