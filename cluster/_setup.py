"""What every Ray worker process runs when it starts (Ray's ``worker_process_setup_hook``)."""

from __future__ import annotations

import importlib
import os
import threading

__all__ = ["worker_setup", "ready", "PRELOAD_ENV", "PRELOADABLE"]

#: the variable that lists, comma-separated, the modules a worker imports in the background at its start
PRELOAD_ENV = "STRESSGRID_PRELOAD"
#: the modules a worker may be asked to preload: the grid's task functions and what the sections' tasks
#: import (nothing else is imported, whatever the variable says)
PRELOADABLE = ("stressgrid.grid", "stressgrid.portfolios", "cvxpy", "stressgrid.monitoring", "sklearn.ensemble",
               "optax", "stressgrid.liquidity")


def worker_setup() -> None:
    """Set the process up for the kernels (:func:`stressgrid.kernels.configure_process`), then import the
    modules of :data:`PRELOAD_ENV` on a thread of its own.

    A worker starts while the driver prepares the run (loads the inputs, computes the sensitivities,
    generates the scenarios), and the modules its first tasks need (the optimisers' cvxpy, the
    forecasters' scikit-learn) take seconds to import: imported meanwhile, they are ready when the
    tasks come.  The thread runs at the lowest scheduling priority, so that on a small machine it takes
    only the time the driver leaves idle.  A module that fails to import here is left for the task that
    needs it to report.
    """
    from stressgrid import kernels

    kernels.configure_process()
    names = [n for n in os.environ.get(PRELOAD_ENV, "").split(",") if n in PRELOADABLE]
    if names:
        threading.Thread(target=_preload, args=(names,), name="stressgrid-preload", daemon=True).start()


def _preload(names: list[str]) -> None:
    try:  # at the lowest priority (Linux sets it per thread): the imports take only CPU time no one else wants
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (the task that imports it raises the error where it is reported)
            pass


def ready() -> int:
    """A task that does nothing: its worker's process id (submitted to start the workers early)."""
    return os.getpid()
