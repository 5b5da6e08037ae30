"""Importing stressgrid changes no process setting; one explicit call does, and kernels refuse float32."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PACKAGES = ("core", "kernels", "scenarios", "liquidity", "portfolios", "monitoring", "reports", "grid", "cluster")


def _fresh(code: str, env: dict | None = None, cwd=None) -> str:
    """Run ``code`` in a new interpreter (no JAX_ENABLE_X64, no XLA_FLAGS) and return its stdout."""
    e = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "XLA_FLAGS", "STRESSGRID_ONE_CORE")}
    e.update(env or {})
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=e,
                         cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_importing_every_module_changes_no_environment_affinity_or_jax_setting(tmp_path):
    out = _fresh("""
        import importlib, json, os, pkgutil
        import jax
        import sklearn  # scikit-learn sets KMP_DUPLICATE_LIB_OK and KMP_INIT_AT_FORK when imported: not ours
        names = ("jax_enable_x64", "jax_cpu_enable_async_dispatch")
        def state():
            aff = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            return {"env": dict(os.environ), "affinity": aff, "jax": {n: jax.config.read(n) for n in names}}
        before = state()
        import stressgrid
        mods = ["stressgrid", "stressgrid.cli"]
        for pkg in %r:
            m = importlib.import_module("stressgrid." + pkg)
            mods.append(m.__name__)
            for info in pkgutil.iter_modules(m.__path__, m.__name__ + "."):
                if info.name.endswith("_fetch_job"):
                    continue  # a script run on a cluster; imported below without running
                importlib.import_module(info.name)
                mods.append(info.name)
        importlib.import_module("stressgrid.cluster._fetch_job")
        after = state()
        print(json.dumps({"before": before, "after": after, "n": len(mods)}))
    """ % (PACKAGES,), cwd=tmp_path)
    res = json.loads(out)
    assert res["n"] > 60  # every private module too, not only the packages
    before, after = res["before"], res["after"]
    changed = {k: (before["env"].get(k), after["env"].get(k)) for k in set(before["env"]) | set(after["env"])
               if before["env"].get(k) != after["env"].get(k)}
    assert changed == {}
    assert after["affinity"] == before["affinity"]
    assert after["jax"] == before["jax"] == {"jax_enable_x64": False, "jax_cpu_enable_async_dispatch": True}


def test_configure_process_sets_float64_and_xla_flags_once(tmp_path):
    out = _fresh("""
        import json, os
        from stressgrid import kernels
        first = kernels.configure_process()
        second = kernels.configure_process(one_core=True)   # a second call changes nothing
        import jax, jax.numpy as jnp
        print(json.dumps({"first": first, "second": second, "x64": str(jnp.ones(2).dtype),
                          "env": os.environ.get("JAX_ENABLE_X64"), "async": jax.config.read("jax_cpu_enable_async_dispatch")}))
    """, cwd=tmp_path)
    res = json.loads(out)
    assert res["x64"] == "float64" and res["env"] == "1"
    assert res["first"] == res["second"] and res["first"]["one_core"] is False
    assert res["async"] is True


def test_one_core_from_the_workers_environment(tmp_path):
    out = _fresh("""
        import json, os
        from stressgrid import kernels
        s = kernels.configure_process()
        import jax
        print(json.dumps({"one_core": s["one_core"], "async": jax.config.read("jax_cpu_enable_async_dispatch"),
                          "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1,
                          "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1}))
    """, env={"STRESSGRID_ONE_CORE": "1"}, cwd=tmp_path)
    res = json.loads(out)
    assert res["one_core"] is True and res["async"] is False
    assert res["affinity"] == res["cpus"] == len(os.sched_getaffinity(0))


def test_kernels_refuse_to_run_in_float32(tmp_path):
    out = _fresh("""
        import numpy as np, pandas as pd
        from stressgrid import kernels
        from stressgrid.core import ConfigError
        pos = pd.DataFrame({"id": ["a"], "type": ["equity"], "underlying": ["EQ.SPX"], "quantity": [1.0],
                            "multiplier": [1.0], "currency": ["USD"]})
        try:
            kernels.prepare(pos, ("EQ.SPX",), "USD", pd.Timestamp("2020-01-02"))
        except ConfigError as exc:
            print("refused:", exc)
    """, cwd=tmp_path)
    assert "refused:" in out and "configure_process" in out


def test_the_worker_setup_hook_configures_the_process_and_preloads_only_what_it_may(tmp_path):
    """Ray runs the hook in every worker as it starts: the kernels' process set-up, then the modules of
    STRESSGRID_PRELOAD imported on a thread, and only those of the allowed list."""
    from stressgrid.cluster import runtime_env

    env = runtime_env(preload=("stressgrid.portfolios", "cvxpy"))
    hook = env["worker_process_setup_hook"]
    assert env["env_vars"]["STRESSGRID_PRELOAD"] == "stressgrid.portfolios,cvxpy"
    assert "STRESSGRID_PRELOAD" not in runtime_env()["env_vars"]
    out = _fresh(f"""
        import importlib, json, os, sys, threading
        os.environ["STRESSGRID_PRELOAD"] = "stressgrid.portfolios,antigravity,os.path"
        module, _, name = {hook!r}.rpartition(".")
        getattr(importlib.import_module(module), name)()
        for t in threading.enumerate():
            if t.name == "stressgrid-preload":
                t.join()
        from stressgrid.kernels import x64_enabled
        print(json.dumps({{"x64": x64_enabled(), "portfolios": "stressgrid.portfolios" in sys.modules,
                          "other": "antigravity" in sys.modules}}))
    """, cwd=tmp_path)
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"x64": True, "portfolios": True, "other": False}


def test_only_stressgrid_is_importable_from_another_folder(tmp_path):
    out = _fresh("""
        import importlib.util, json
        names = ["core", "grid", "scenarios", "portfolios", "kernels", "cluster", "liquidity", "monitoring",
                 "reports", "cli"]
        print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))
    """, cwd=tmp_path)
    assert json.loads(out) == dict.fromkeys(json.loads(out), False)


def test_python_dash_m_stressgrid_cli_help(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stressgrid.cli", "--help"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and "demo" in out.stdout
