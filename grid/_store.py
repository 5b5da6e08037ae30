"""Per-task checkpoints in the run directory, so an interrupted run resumes where it stopped.

``RUN_DIR/tasks/plan.json`` holds the fingerprint of the plan (batch hash, data, book and chunking);
each finished task is written as ``task-NNNNNN.pkl`` atomically (a temporary file renamed into place),
so a crash never leaves a half-written result.  The files are internal checkpoints, not an output format.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

from stressgrid.core import ConfigError

from ._worker import ChunkResult

__all__ = ["TaskStore"]


class TaskStore:
    def __init__(self, run_dir: str | Path, fingerprint: dict, resume: bool):
        self.dir = Path(run_dir) / "tasks"
        self.fingerprint = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
        plan = self.dir / "plan.json"
        if resume:
            if not plan.exists():
                raise ConfigError(f"--resume: {Path(run_dir)} holds no interrupted run (no tasks/plan.json)")
            found = json.loads(plan.read_text()).get("fingerprint")
            if found != self.fingerprint:
                raise ConfigError(
                    f"--resume: {Path(run_dir)} holds tasks of a different plan (batch, data, book or chunk size "
                    "changed); run without --resume or choose another --out"
                )
        else:
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True)
            plan.write_text(json.dumps({"fingerprint": self.fingerprint, "inputs": fingerprint}, indent=2, default=str))

    def _path(self, task_id: int) -> Path:
        return self.dir / f"task-{task_id:06d}.pkl"

    def load(self) -> dict[int, ChunkResult]:
        out = {}
        for p in sorted(self.dir.glob("task-*.pkl")):
            with open(p, "rb") as fh:
                r = pickle.load(fh)
            out[r.task_id] = r
        return out

    def save(self, result: ChunkResult) -> None:
        path = self._path(result.task_id)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
