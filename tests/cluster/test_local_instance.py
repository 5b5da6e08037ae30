"""The embedded local Ray instance of ``stressgrid run``: every listener on the loopback interface, and no
process of the instance left behind when the driver dies, even by SIGKILL.

The run tests start ``stressgrid run`` in a subprocess and look only at the processes that subprocess
started (its descendants, recorded while it runs); they stop only those.
"""

import ipaddress
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray  # noqa: F401  (puts the psutil that Ray ships on the path)

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1, a dual-stack socket bound to the IPv4 loopback
    return addr.is_loopback


def test_loopback_addresses():
    assert all(_is_loopback(a) for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1"))
    assert not any(_is_loopback(a) for a in ("0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2"))


def _alive(procs) -> list:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _listeners(procs) -> list[tuple[int, str, str, int]]:
    """``(pid, name, ip, port)`` of every listening TCP socket and every unconnected UDP socket."""
    out = []
    for p in procs:
        try:
            name = p.name()
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
                    out.append((p.pid, name, c.laddr.ip, c.laddr.port))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return out


def _kill_leftovers(procs) -> None:
    for p in _alive(procs):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.slow
def test_a_run_listens_on_loopback_only_and_leaves_nothing_after_sigkill(linear_batch_path, tmp_path):
    """While ``stressgrid run`` works, every socket its processes listen on is on 127.0.0.1 / ::1; after
    SIGKILL of the driver, every process it started is gone within 30 s."""
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "stressgrid.cli", "run", str(linear_batch_path), "--out",
                             str(tmp_path / "out"), "--workers", "2"], cwd=tmp_path, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    driver = psutil.Process(proc.pid)
    seen: dict[tuple[int, float], object] = {}

    def record():
        for p in driver.children(recursive=True):
            try:
                seen.setdefault((p.pid, p.create_time()), p)
            except psutil.NoSuchProcess:
                pass

    try:
        # wait for a worker process to start (the instance is up and tasks run), then freeze the driver
        # so that the run cannot finish while the sockets are read
        t0 = time.monotonic()
        while time.monotonic() - t0 < 240:
            assert proc.poll() is None, "the run ended before its first worker was seen: " + \
                (tmp_path / "run.log").read_text()[-2000:]
            record()
            names = [p.name() for p in _alive(seen.values())]
            if "raylet" in names and any(n.startswith("ray::") and not n.endswith("Agent") for n in names):
                break
            time.sleep(0.1)
        else:
            pytest.fail("no Ray worker started within 240 s")
        driver.suspend()
        # the agents start their servers on their own; give them time to listen
        t1 = time.monotonic()
        while time.monotonic() - t1 < 20:
            record()
            agents = [p for p in _alive(seen.values()) if p.name().endswith("Agent")]
            if len(agents) >= 2 and all(_listeners([a]) for a in agents):
                break
            time.sleep(0.25)
        record()
        processes = [driver] + _alive(seen.values())
        listeners = _listeners(processes)
        names = {p.name() for p in processes}
        assert {"gcs_server", "raylet"} <= names, names
        assert len(listeners) >= 4, listeners  # GCS, raylet (node and object manager), agents, workers
        exposed = [lst for lst in listeners if not _is_loopback(lst[2])]
        assert not exposed, f"listening beyond the loopback interface: {exposed}"

        driver.kill()
        proc.wait(timeout=30)
        t2 = time.monotonic()
        while _alive(seen.values()) and time.monotonic() - t2 < 30:
            time.sleep(0.25)
        left = [(p.pid, p.name()) for p in _alive(seen.values())]
        assert not left, f"still running 30 s after the driver was killed: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(seen.values())
        log.close()


_FAKE_DRIVER = textwrap.dedent("""
    import os, subprocess, sys, time
    from stressgrid.cluster import _connect

    token = sys.argv[1]
    dog = _connect._start_watchdog(token)
    env = {**os.environ, _connect.INSTANCE_ENV: token}
    # a process of the instance; another that starts a process without the token in its environment (as the
    # raylet starts agents that overwrite theirs) and exits after 2 s, leaving it re-parented to init
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    parent = subprocess.Popen(["sh", "-c", "env -u STRESSGRID_INSTANCE sleep 600 & sleep 2"], env=env)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # not the instance's
    print(dog.pid, child.pid, parent.pid, other.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(os.name != "posix", reason="the watchdog is POSIX only")
def test_the_watchdog_ends_the_instance_when_its_driver_is_killed(tmp_path):
    """The mechanism alone, without Ray: when the driver is SIGKILLed, the processes of the instance end,
    also one that lost the token from its environment and was re-parented away from the driver; the
    watchdog exits; a child of the driver that is not the instance's is left alone."""
    script = tmp_path / "driver.py"
    script.write_text(_FAKE_DRIVER)
    token = secrets.token_hex(8)
    proc = subprocess.Popen([sys.executable, str(script), token], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=_env())
    started = []
    try:
        dog, child, parent, other = (psutil.Process(int(x)) for x in proc.stdout.readline().split())
        started = [dog, child, parent, other]
        time.sleep(1.0)
        orphan = [p for p in parent.children() if p.cmdline() == ["sleep", "600"]]
        assert len(orphan) == 1
        started += orphan
        t0 = time.monotonic()
        while _alive([parent]) and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert orphan[0].ppid() != proc.pid and orphan[0].environ().get("STRESSGRID_INSTANCE") is None
        psutil.Process(proc.pid).kill()
        proc.wait(timeout=10)
        t0 = time.monotonic()
        while _alive([dog, child] + orphan) and time.monotonic() - t0 < 15:
            time.sleep(0.1)
        assert not _alive([child] + orphan), _alive([child] + orphan)
        assert not _alive([dog])  # the watchdog itself is gone
        assert _alive([other]), "a process that is not the instance's was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_leftovers(started)


def test_the_workers_start_with_the_instance_and_preload_the_sections_modules(tmp_path):
    """The embedded instance starts its workers at once, before any task of the run: a task submitted
    after they are up starts at once, and finds the preloaded modules imported."""
    code = textwrap.dedent("""
        import json, os, sys, threading, time
        import psutil
        from stressgrid.cluster import connect
        with connect(None, num_cpus=2, preload=("stressgrid.portfolios",)):
            import ray
            t0 = time.monotonic()
            def workers():
                return [p for p in psutil.Process().children(recursive=True)
                        if p.name().startswith("ray::") and not p.name().endswith("Agent")]
            while len(workers()) < 2 and time.monotonic() - t0 < 120:
                time.sleep(0.2)
            up = len(workers())

            @ray.remote(num_cpus=1)
            def probe():
                for t in threading.enumerate():
                    if t.name == "stressgrid-preload":
                        t.join()
                return os.getpid(), "stressgrid.portfolios" in sys.modules, "optax" in sys.modules
            got = ray.get([probe.remote() for _ in range(2)])
            pids = {p.pid for p in workers()}
        print(json.dumps({"up": up, "preloaded": [g[1] for g in got], "optax": [g[2] for g in got],
                          "in_started_workers": all(g[0] in pids for g in got)}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env(),
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["up"] >= 2 and got["in_started_workers"]
    assert got["preloaded"] == [True, True] and got["optax"] == [False, False]  # only what was asked for
