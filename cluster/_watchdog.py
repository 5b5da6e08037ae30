"""Ends the processes of an embedded Ray instance once the process that started it has ended.

    python _watchdog.py TOKEN DRIVER_PID

:func:`stressgrid.cluster.connect` starts this script (by its path: it imports nothing from stressgrid or
Ray, only the standard library) before it starts Ray, with a pipe on its standard input whose other end
only the driver holds.  Every process Ray starts (GCS, raylet, log monitor, ...) inherits
``STRESSGRID_INSTANCE=TOKEN`` in its environment.  While the driver lives, the watchdog notes, twice a
second and with their start times, the processes below the driver that carry the token and every process
below one of them: Ray's agents and workers, started by the raylet, overwrite their environment with their
process titles, and a child of the driver that is not the instance's is left out.

The pipe reaches end-of-file when the driver closes it after ``ray.shutdown()``, or when the kernel closes
it because the driver exited, crashed or was killed with SIGKILL.  The watchdog then sends SIGTERM to
every noted process that still runs with the same start time (so a reused pid is left alone) and to every
process whose environment holds the token (one started since the last look), gives them
``GRACE_SECONDS`` to exit, sends SIGKILL to the rest, and exits.  Ray's own fate sharing (``PR_SET_PDEATHSIG`` on the processes the driver starts) ends
the GCS and the raylet, but not the agents and workers the raylet started: re-parented to init, they
lingered for minutes.

Linux reads ``/proc``; elsewhere psutil is used when it is importable, else nothing is done.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

#: the environment variable that marks the processes of one embedded instance
INSTANCE_ENV = "STRESSGRID_INSTANCE"
#: how long the processes get to exit after SIGTERM
GRACE_SECONDS = 3.0
#: seconds between two looks at the driver's process tree
POLL_SECONDS = 0.5
_PROC = os.path.isdir("/proc/self")


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, start time)`` of a live process (a zombie counts as gone), or None."""
    if _PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return None if fields[0] in (b"Z", b"X") else (int(fields[1]), int(fields[19]))
    try:
        import psutil

        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else (p.ppid(), int(p.create_time() * 1000))
    except Exception:
        return None


def _pids() -> list[int]:
    if _PROC:
        return [int(e) for e in os.listdir("/proc") if e.isdigit()]
    try:
        import psutil

        return psutil.pids()
    except ImportError:
        return []


def _has_token(pid: int, token: str) -> bool:
    if _PROC:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return f"{INSTANCE_ENV}={token}".encode() in f.read().split(b"\0")
        except OSError:  # gone, or another user's
            return False
    try:
        import psutil

        return psutil.Process(pid).environ().get(INSTANCE_ENV) == token
    except Exception:
        return False


def instance_tree(root: int, token: str) -> dict[int, int]:
    """``{pid: start time}`` of the processes of the instance below ``root`` (the driver): those whose
    environment holds the token, and every process below one of them (an agent or worker whose title
    overwrote its environment; what it started).  Other children of the driver are not the instance's."""
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in _pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[0], []).append((pid, st[1]))
    out: dict[int, int] = {}
    todo = [(root, False)]
    while todo:
        parent, inside = todo.pop()
        for pid, start in children.get(parent, ()):
            mine = inside or _has_token(pid, token)
            if mine:
                out[pid] = start
            todo.append((pid, mine))
    return out


def marked(token: str, exclude: set[int]) -> list[int]:
    """Pids of the live processes whose environment holds ``INSTANCE_ENV=token`` (a zombie's is empty)."""
    return [pid for pid in _pids() if pid not in exclude and _has_token(pid, token)]


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _targets(token: str, noted: dict[int, int], exclude: set[int]) -> list[int]:
    pids = {pid for pid, start in noted.items() if pid not in exclude and (_stat(pid) or (0, None))[1] == start}
    return sorted(pids.union(marked(token, exclude)))


def reap(token: str, noted: dict[int, int], exclude: set[int], grace: float = GRACE_SECONDS) -> int:
    """SIGTERM, then after ``grace`` seconds SIGKILL, every noted process still running (same pid and start
    time) and every process marked with ``token``; returns how many there were."""
    pids = _targets(token, noted, exclude)
    found = set(pids)
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = _targets(token, noted, exclude)
    for _ in range(5):  # a process may start another while it is being killed
        pids = _targets(token, noted, exclude)
        if not pids:
            break
        found.update(pids)
        _signal(pids, signal.SIGKILL)
        time.sleep(0.2)
    return len(found)


def watch(fd: int, driver: int, token: str, noted: dict[int, int]) -> None:
    """Note the instance's processes below the driver every ``POLL_SECONDS`` until ``fd`` reaches end-of-file."""
    while True:
        try:
            ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
            if ready and not os.read(fd, 4096):
                return
        except InterruptedError:
            continue
        except OSError:
            return
        for pid in [pid for pid, start in noted.items() if (_stat(pid) or (0, None))[1] != start]:
            del noted[pid]  # ended: forget it, so that a long run does not pile up pids
        noted.update(instance_tree(driver, token))


def main(argv: list[str]) -> int:
    token, driver = argv[0], int(argv[1])
    for sig in (signal.SIGINT, signal.SIGHUP):  # a Ctrl-C or a closed terminal is for the driver to handle
        signal.signal(sig, signal.SIG_IGN)
    noted: dict[int, int] = {}
    watch(sys.stdin.fileno(), driver, token, noted)
    reap(token, noted, exclude={os.getpid(), driver})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
