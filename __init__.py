"""stressgrid: distributed scenario and stress testing for multi-asset portfolios.

Installed, the whole project lives under this one import name: ``stressgrid.core`` (factors, history,
market, book, measures, errors), ``stressgrid.kernels`` (JAX revaluation), ``stressgrid.scenarios``,
``stressgrid.liquidity``, ``stressgrid.portfolios``, ``stressgrid.monitoring``, ``stressgrid.reports``,
``stressgrid.grid`` (plan, run, reduce), ``stressgrid.cluster`` and ``stressgrid.cli``.  The layers
are described in ``docs/architecture.md``.

Importing this package, or any of its modules, changes no process setting; see
:func:`stressgrid.kernels.configure_process`.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("stressgrid")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "run_batch", "Results"]


def __getattr__(name: str):
    # run_batch lives in the grid, the top layer below the command line: imported on first use, so that
    # ``import stressgrid.core`` does not load Ray, JAX and every other package
    if name in ("run_batch", "Results"):
        from stressgrid import grid

        return getattr(grid, name)
    raise AttributeError(f"module 'stressgrid' has no attribute {name!r}")
