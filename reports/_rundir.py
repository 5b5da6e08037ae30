"""Reading a run directory: the manifest and its Parquet tables, loaded lazily and only once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stressgrid.core import DataError

from ._schema import SCHEMA_VERSION, upgrade_table

__all__ = ["RunDir", "open_run"]


class RunDir:
    """A run directory as written by ``stressgrid run``: ``manifest.json`` and ``<table>.parquet`` files.

    Tables are read on first use and cached.  A table the run did not write is absent, not empty:
    :meth:`get` returns None for it and :meth:`table` raises :class:`core.DataError`.  A run directory
    of an older schema version (``manifest.json`` ``schema_version``) is read under the current names
    (:func:`reports.upgrade_table`), so reports and limits work on the runs of a results store.

    Parameters
    ----------
    path : the run directory
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"run directory {self.path}: not found (give the --out directory of 'stressgrid run')")
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise DataError(f"run directory {self.path}: has no manifest.json (give the --out directory of 'stressgrid run')")
        try:
            self.manifest: dict = json.loads(mpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{mpath}: not valid JSON ({exc})") from None
        if not isinstance(self.manifest, dict):
            raise DataError(f"{mpath}: expected a JSON object (got {type(self.manifest).__name__})")
        self._cache: dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def has(self, name: str) -> bool:
        """Whether the run wrote table ``name`` (``<name>.parquet``)."""
        return name in self._cache or (self.path / f"{name}.parquet").is_file()

    def table(self, name: str) -> pd.DataFrame:
        """Table ``name`` as a DataFrame (cached; do not modify it in place)."""
        if name not in self._cache:
            p = self.path / f"{name}.parquet"
            if not p.is_file():
                raise DataError(f"run directory {self.path}: has no {name}.parquet")
            try:
                df = pd.read_parquet(p)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise DataError(f"{p}: cannot be read as Parquet ({exc})") from None
            self._cache[name] = upgrade_table(name, df, self.schema_version)
        return self._cache[name]

    def get(self, name: str) -> pd.DataFrame | None:
        """Table ``name``, or None when the run did not write it."""
        return self.table(name) if self.has(name) else None

    @property
    def schema_version(self) -> int:
        """The results schema version the run directory follows (the current one when the manifest does
        not say)."""
        v = self.manifest.get("schema_version", SCHEMA_VERSION)
        return v if isinstance(v, int) and not isinstance(v, bool) else SCHEMA_VERSION

    @property
    def base_currency(self) -> str:
        return str(self.manifest.get("base_currency", ""))

    @property
    def batch_name(self) -> str:
        return str(self.manifest.get("batch", {}).get("name", self.path.name))

    @property
    def families(self) -> list[str]:
        """Scenario families in the order the batch lists them (the order of ``risk_metrics``)."""
        return list(dict.fromkeys(self.table("risk_metrics")["family"]))

    @property
    def confidences(self) -> list[float]:
        """Confidence levels of VaR and CVaR in the run, ascending."""
        rm = self.table("risk_metrics")
        return sorted(float(a) for a in rm.loc[rm["metric"] == "cvar", "confidence"].dropna().unique())


def open_run(run_dir: str | Path | RunDir) -> RunDir:
    """A :class:`RunDir` for ``run_dir`` (returned as is when it already is one)."""
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
