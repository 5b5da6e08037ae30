"""A batch sent to a Ray cluster: staged (validated here, copied with its book and history) and submitted
through :func:`stressgrid.cluster.submit_job`."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from ._batch import load_batch

__all__ = ["StagedBatch", "stage_batch", "submit_batch", "RUN_ENTRYPOINT"]

#: the command a submitted batch runs on the cluster; ``{out}`` is the run directory there
RUN_ENTRYPOINT = "python -m stressgrid.cli run batch.yaml --out {out}"


@dataclass(frozen=True)
class StagedBatch:
    """A folder holding ``batch.yaml``, its book and its history file (paths rewritten to these names)."""

    folder: Path
    name: str
    sha256: str


def stage_batch(batch_path: str | Path, allow_outside_paths: bool = True) -> StagedBatch:
    """Validate the batch (failing here, not on the cluster) and copy it with its inputs into a new folder."""
    batch, digest = load_batch(batch_path, allow_outside_paths=allow_outside_paths)
    raw = yaml.safe_load(Path(batch_path).read_bytes())
    stage = Path(tempfile.mkdtemp(prefix="stressgrid-job-"))
    shutil.copy(batch.book, stage / Path(batch.book).name)
    raw["book"] = Path(batch.book).name
    if isinstance(raw.get("history"), dict):
        shutil.copy(batch.history[0].path, stage / Path(batch.history[0].path).name)
        raw["history"]["path"] = Path(batch.history[0].path).name
    elif isinstance(raw.get("history"), list):
        for k, (entry, checked) in enumerate(zip(raw["history"], batch.history)):
            if isinstance(entry, dict):
                name = f"history-{k}-{Path(checked.path).name}"  # two sources may share a file name
                shutil.copy(checked.path, stage / name)
                entry["path"] = name
    (stage / "batch.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return StagedBatch(stage, batch.name, digest)


def submit_batch(batch_path: str | Path, address: str, out: str | None = None, ship_code: bool = False,
                 workers: int | None = None, pip: list[str] | None = None, allow_outside_paths: bool = True) -> str:
    """Submit a batch as a Ray job; returns its submission id.

    ``out``: the run directory on the cluster (default under ``cluster.DEFAULT_REMOTE_ROOT``);
    ``ship_code``: send this installation's ``stressgrid`` package with the job; ``workers``: a cap on the
    tasks in flight; ``pip``: packages the cluster installs for the job.
    """
    from stressgrid.cluster import submit_job

    staged = stage_batch(batch_path, allow_outside_paths)
    entrypoint = RUN_ENTRYPOINT + (f" --workers {int(workers)}" if workers else "")
    try:
        return submit_job(staged.folder, address, entrypoint, staged.name, out=out, ship_code=ship_code, pip=pip,
                          metadata={"stressgrid_batch": staged.name, "stressgrid_batch_sha256": staged.sha256})
    finally:
        shutil.rmtree(staged.folder, ignore_errors=True)
