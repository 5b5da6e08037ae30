"""Per-task checkpoints in the run directory, so an interrupted run resumes where it stopped.

``RUN_DIR/tasks/plan.json`` holds the checkpoint format and the fingerprint of the plan (batch hash,
data, book and chunking); each finished task is written as ``task-NNNNNN.npz`` atomically (a temporary
file, flushed to disk, renamed into place; in object storage one upload), so a crash never leaves a
half-written result.  The files are internal checkpoints, not an output format.  For a run written to a
URI (:mod:`core.storage`) they are at the URI, so ``--resume`` works from any machine that reaches it.

A checkpoint holds data only: an uncompressed ``.npz`` of numeric arrays (the task's totals, group
sums, position P&L and each family's tail) and one ``meta`` entry, the UTF-8 bytes of a JSON object
with the scalars and the structure (task id, scenario range, timings, group levels, family codes and
moments, which optional arrays are present).  ``--resume`` reads it with ``allow_pickle=False`` and
checks every key, type and shape before rebuilding the :class:`ChunkResult` (or, for a streamed run, the
:class:`._stream.StreamResult`: its families' tails, coverage counts, tail guard tallies, the position rows of
its largest losses and the names of the table parts it wrote, which must still be there); nothing in the run
directory is ever unpickled or executed.  On ``--resume``, a checkpoint that does not pass (and any
``.pkl`` file) is reported in the run's manifest and terminal summary, and its task runs again.  A
run directory of an older version (its plan has no format, its checkpoints are pickles) is refused
with a :class:`ConfigError` that says to run again without ``--resume``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from stressgrid.core import ConfigError
from stressgrid.core.storage import Location, location

from ._summary import FamilyPartial
from ._worker import ChunkResult

__all__ = ["TaskStore"]

#: format of the checkpoints, recorded in ``plan.json``: a run directory of another format is not resumed
FORMAT = "stressgrid-task-npz/1"

_NAME = re.compile(r"task-(\d+)\.npz")
#: array dtypes a checkpoint may hold: bool, integers, floats (never objects, strings or records)
_KINDS = "biuf"
_RERUN = "run again without --resume (or choose another --out)"


class _Malformed(Exception):
    """What is wrong with a checkpoint (turned into a :class:`ConfigError` naming the file)."""


class TaskStore:
    """The checkpoints of a run in ``run_dir/tasks`` (``run_dir``: a folder or a URI)."""

    def __init__(self, run_dir: str | Path | Location, fingerprint: dict, resume: bool):
        self.where = location(run_dir)
        self.dir = self.where.uri("tasks")  # as messages name it
        self.fingerprint = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
        shown = self.where.uri()
        plan = self.where.uri("tasks/plan.json")
        if resume:
            if not self.where.is_file("tasks/plan.json"):
                raise ConfigError(f"--resume: {shown} holds no interrupted run (no tasks/plan.json)")
            try:
                found = json.loads(self.where.read_bytes("tasks/plan.json").decode("utf-8"))
            except (ConfigError, ValueError) as exc:
                raise ConfigError(f"--resume: {plan} is not readable ({_reason(exc)}); {_RERUN}") from None
            if not isinstance(found, dict) or found.get("format") != FORMAT:
                raise ConfigError(
                    f"--resume: the checkpoints in {self.dir} were written by an older version of stressgrid "
                    f"(or plan.json is not one of its plans); {_RERUN}"
                )
            if self._names(".pkl") and not self._names(".npz"):
                raise ConfigError(
                    f"--resume: the checkpoints in {self.dir} were written by an older version of stressgrid "
                    f"(task-*.pkl) and are not read; {_RERUN}"
                )
            if found.get("fingerprint") != self.fingerprint:
                raise ConfigError(
                    f"--resume: {shown} holds tasks of a different plan (batch, data, book or chunk size "
                    "changed); run without --resume or choose another --out"
                )
        else:
            self.where.delete_dir("tasks")
            self.where.write_bytes("tasks/plan.json", json.dumps(
                {"format": FORMAT, "fingerprint": self.fingerprint, "inputs": fingerprint}, indent=2, default=str).encode())

    def _names(self, suffix: str) -> list[str]:
        return self.where.files("tasks", "task-", suffix)

    def _name(self, task_id: int) -> str:
        return f"task-{task_id:06d}.npz"

    def _path(self, task_id: int) -> str:
        """The checkpoint of task ``task_id`` as messages name it."""
        return self.where.uri(f"tasks/{self._name(task_id)}")

    def load(self, rejected: list[str] | None = None) -> dict[int, ChunkResult]:
        """Every checkpoint of the directory by task id.  A malformed one raises :class:`ConfigError`, or,
        given a list ``rejected``, is reported there (``"FILE: reason"``) and left out, so that its task
        runs again; so are ``task-*.pkl`` files, which are never read."""
        out = {}
        if rejected is not None:
            rejected += [f"{self.where.uri(f'tasks/{n}')}: a pickle, never read" for n in self._names(".pkl")]
        for name in self._names(".npz"):
            p = self.where.uri(f"tasks/{name}")
            m = _NAME.fullmatch(name)
            try:
                if m is None or name != self._name(int(m.group(1))):
                    raise _Malformed("not a checkpoint name")
                r = _read(self.where.read_bytes(f"tasks/{name}"))
                if r.task_id != int(m.group(1)):
                    raise _Malformed(f"it holds task {r.task_id}")
            except _Malformed as exc:
                if rejected is not None:
                    rejected.append(f"{p}: {exc}")
                    continue
                raise ConfigError(f"--resume: checkpoint {p} is corrupt or not a stressgrid checkpoint ({exc}); "
                                  f"{_RERUN}") from None
            out[r.task_id] = r
        return out

    def save(self, result: ChunkResult) -> None:
        meta, arrays = _encode(result)
        rel = f"tasks/{self._name(result.task_id)}"
        if self.where.remote:
            buf = io.BytesIO()
            np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
            self.where.write_bytes(rel, buf.getbuffer())
            return
        path = Path(self.where.path(rel))
        tmp = path.with_name(path.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
                np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:  # a full disk, say: no half-written file is left behind
            tmp.unlink(missing_ok=True)
            raise


# --- encoding ---------------------------------------------------------------------------------------

def _families_out(prefix: str, families: dict[int, FamilyPartial], arrays: dict) -> list[dict]:
    out = []
    for j, (code, f) in enumerate(families.items()):
        out.append({"code": int(code), "weight": float(f.weight), "mean": float(f.mean), "m2": float(f.m2),
                    "worst_loss": float(f.worst_loss), "worst_index": int(f.worst_index),
                    "tail_rows": f.tail_rows is not None})
        for name in ("tail_index", "tail_loss", "tail_weight", "tail_rows"):
            if getattr(f, name) is not None:
                arrays[f"{prefix}.{j}.{name}"] = getattr(f, name)
    return out


def _encode_stream(r) -> tuple[dict, dict[str, np.ndarray]]:
    arrays = {"rows_index": r.rows_index, "rows": r.rows}
    families = _families_out("family", r.families, arrays)
    sens = None if r.sens_families is None else _families_out("sens", r.sens_families, arrays)
    counts = []
    for j, (code, c) in enumerate(r.counts.items()):
        counts.append(int(code))
        arrays[f"counts.{j}"] = c
    guards = []
    for j, (code, (n, top)) in enumerate(r.guards.items()):
        guards.append(int(code))
        arrays[f"guards.{j}.implausible"] = n
        arrays[f"guards.{j}.max_multiple"] = top
    meta = {
        "format": FORMAT, "kind": "stream", "task_id": int(r.task_id), "start": int(r.start), "stop": int(r.stop),
        "seconds": float(r.seconds), "compile_seconds": float(r.compile_seconds),
        "draw_seconds": float(r.draw_seconds), "write_seconds": float(r.write_seconds), "float64": bool(r.float64),
        "families": families, "sens_families": sens, "counts": counts, "guards": guards, "parts": [str(x) for x in r.parts],
    }
    return meta, arrays


def _encode(r) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON metadata and the named arrays of a result.  Array names are positional (``groups.0``,
    ``family.2.tail_loss``), so no level name or family code ever becomes a key of the archive."""
    meta, arrays = _encode_chunk(r) if isinstance(r, ChunkResult) else _encode_stream(r)
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype.kind not in _KINDS:
            raise TypeError(f"task {r.task_id}: {name} is not a numeric array, it cannot be checkpointed")
    return meta, arrays


def _encode_chunk(r: ChunkResult) -> tuple[dict, dict[str, np.ndarray]]:
    arrays = {"totals": r.totals}
    if r.pnl is not None:
        arrays["pnl"] = r.pnl
    for i, a in enumerate(r.groups.values()):
        arrays[f"groups.{i}"] = a
    if r.sens_groups is not None:
        for i, a in enumerate(r.sens_groups.values()):
            arrays[f"sens_groups.{i}"] = a
    if r.market is not None:
        arrays["market"] = r.market
    families = _families_out("family", r.families, arrays)
    meta = {
        "format": FORMAT, "task_id": int(r.task_id), "start": int(r.start), "stop": int(r.stop),
        "seconds": float(r.seconds), "compile_seconds": float(r.compile_seconds), "float64": bool(r.float64),
        "pnl": r.pnl is not None, "groups": [str(k) for k in r.groups],
        "sens_groups": None if r.sens_groups is None else [str(k) for k in r.sens_groups],
        "families": families, "market": r.market is not None,
    }
    return meta, arrays


# --- decoding: every field is checked; anything unexpected is _Malformed ------------------------------

def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")
    return text if len(text) <= 160 else text[:157] + "..."


def _read(data: bytes) -> ChunkResult:
    try:
        if data[:4] != b"PK\x03\x04":  # what np.load would otherwise read as .npy or refuse as a pickle
            raise _Malformed("not an .npz archive")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        if not all(isinstance(a, np.ndarray) for a in arrays.values()):
            raise _Malformed("an entry is not a .npy array")
    except _Malformed:
        raise
    except Exception as exc:  # a damaged archive fails in many ways (zip, npy header, short read, pickled data)
        raise _Malformed(_reason(exc)) from None
    try:
        return _decode(arrays)
    except _Malformed:
        raise
    except Exception as exc:  # a check missed below must still not end in a traceback
        raise _Malformed(_reason(exc)) from None


def _int(meta: dict, key: str) -> int:
    v = meta.get(key)
    if type(v) is not int:
        raise _Malformed(f"'{key}' is not an integer")
    return v


def _float(meta: dict, key: str) -> float:
    v = meta.get(key)
    if type(v) not in (int, float):
        raise _Malformed(f"'{key}' is not a number")
    return float(v)


def _bool(meta: dict, key: str) -> bool:
    v = meta.get(key)
    if type(v) is not bool:
        raise _Malformed(f"'{key}' is not true or false")
    return v


def _names(meta: dict, key: str, optional: bool = False) -> list[str] | None:
    v = meta.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v) or len(set(v)) != len(v):
        raise _Malformed(f"'{key}' is not a list of distinct names")
    return v


def _check_arrays(arrays: dict[str, np.ndarray], expected: set[str]) -> None:
    """The archive holds exactly the ``expected`` arrays, all numeric."""
    if set(arrays) != expected:
        extra, missing = sorted(set(arrays) - expected), sorted(expected - set(arrays))
        raise _Malformed("unexpected arrays " + ", ".join(extra) if extra else "missing arrays " + ", ".join(missing))
    for name, a in arrays.items():
        if a.dtype.kind not in _KINDS:
            raise _Malformed(f"{name} has dtype {a.dtype}")


def _decode(arrays: dict[str, np.ndarray]) -> ChunkResult:
    raw = arrays.pop("meta", None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise _Malformed("no metadata")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError:
        raise _Malformed("the metadata is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Malformed("unknown format")
    if meta.get("kind") == "stream":
        return _decode_stream(meta, arrays)
    task_id, start, stop = _int(meta, "task_id"), _int(meta, "start"), _int(meta, "stop")
    if task_id < 0 or not 0 <= start <= stop:
        raise _Malformed("bad task id or scenario range")
    s = stop - start
    has_pnl = _bool(meta, "pnl")
    levels, sens_levels = _names(meta, "groups"), _names(meta, "sens_groups", optional=True)
    fams = meta.get("families")
    if not isinstance(fams, list) or not all(isinstance(f, dict) for f in fams):
        raise _Malformed("'families' is not a list")

    has_market = _bool(meta, "market")
    expected = {"totals"} | ({"pnl"} if has_pnl else set()) | ({"market"} if has_market else set())
    expected |= {f"groups.{i}" for i in range(len(levels))}
    expected |= {f"sens_groups.{i}" for i in range(len(sens_levels or ()))}
    for j, f in enumerate(fams):
        expected |= {f"family.{j}.{n}" for n in ("tail_index", "tail_loss", "tail_weight")}
        if _bool(f, "tail_rows"):
            expected.add(f"family.{j}.tail_rows")
    _check_arrays(arrays, expected)

    def rows(name: str, ndim: int, n: int) -> np.ndarray:
        a = arrays[name]
        if a.ndim != ndim or a.shape[0] != n:
            raise _Malformed(f"{name} has shape {a.shape}")
        return a

    totals = rows("totals", 1, s)
    pnl = rows("pnl", 2, s) if has_pnl else None
    groups = {lv: rows(f"groups.{i}", 2, s) for i, lv in enumerate(levels)}
    sens = None if sens_levels is None else {lv: rows(f"sens_groups.{i}", 2, s) for i, lv in enumerate(sens_levels)}
    families: dict[int, FamilyPartial] = {}
    for j, f in enumerate(fams):
        code = _int(f, "code")
        if code in families:
            raise _Malformed(f"family {code} twice")
        tail_index = arrays[f"family.{j}.tail_index"]
        if tail_index.ndim != 1 or tail_index.dtype.kind not in "iu":
            raise _Malformed(f"family.{j}.tail_index has shape {tail_index.shape} and dtype {tail_index.dtype}")
        k = tail_index.shape[0]
        families[code] = FamilyPartial(
            **{n: _float(f, n) for n in ("weight", "mean", "m2", "worst_loss")},
            worst_index=_int(f, "worst_index"), tail_index=tail_index,
            tail_loss=rows(f"family.{j}.tail_loss", 1, k), tail_weight=rows(f"family.{j}.tail_weight", 1, k),
            tail_rows=rows(f"family.{j}.tail_rows", 2, k) if f["tail_rows"] else None,
        )
    return ChunkResult(task_id, start, stop, totals, groups, families, pnl, sens,
                       _float(meta, "seconds"), _float(meta, "compile_seconds"), _bool(meta, "float64"),
                       rows("market", 1, s) if has_market else None)


_PART = re.compile(r"(scenarios|breakdown|scenario_pnl|sensitivity|liquidity)/part-\d{6}-\d{4}\.parquet")


def _families_in(prefix: str, fams, arrays: dict, with_rows: bool) -> dict[int, FamilyPartial]:
    if not isinstance(fams, list) or not all(isinstance(f, dict) for f in fams):
        raise _Malformed(f"'{prefix}' is not a list")
    out: dict[int, FamilyPartial] = {}
    for j, f in enumerate(fams):
        code = _int(f, "code")
        if code in out:
            raise _Malformed(f"family {code} twice")
        if _bool(f, "tail_rows") != with_rows:
            raise _Malformed(f"{prefix}.{j}: unexpected tail rows")
        tail_index = arrays[f"{prefix}.{j}.tail_index"]
        if tail_index.ndim != 1 or tail_index.dtype.kind not in "iu":
            raise _Malformed(f"{prefix}.{j}.tail_index has shape {tail_index.shape} and dtype {tail_index.dtype}")
        k = tail_index.shape[0]
        for n in ("tail_loss", "tail_weight"):
            if arrays[f"{prefix}.{j}.{n}"].shape != (k,):
                raise _Malformed(f"{prefix}.{j}.{n} has shape {arrays[f'{prefix}.{j}.{n}'].shape}")
        out[code] = FamilyPartial(
            **{n: _float(f, n) for n in ("weight", "mean", "m2", "worst_loss")},
            worst_index=_int(f, "worst_index"), tail_index=tail_index,
            tail_loss=arrays[f"{prefix}.{j}.tail_loss"], tail_weight=arrays[f"{prefix}.{j}.tail_weight"], tail_rows=None)
    return out


def _decode_stream(meta: dict, arrays: dict[str, np.ndarray]):
    from ._stream import StreamResult

    task_id, start, stop = _int(meta, "task_id"), _int(meta, "start"), _int(meta, "stop")
    if task_id < 0 or not 0 <= start < stop:
        raise _Malformed("bad task id or scenario range")
    fams, sens, counts = meta.get("families"), meta.get("sens_families"), meta.get("counts")
    parts = meta.get("parts")
    if not isinstance(parts, list) or not all(isinstance(x, str) and _PART.fullmatch(x) for x in parts):
        raise _Malformed("'parts' is not a list of table parts")
    if not isinstance(counts, list) or not all(type(c) is int for c in counts):
        raise _Malformed("'counts' is not a list of family codes")
    guards = meta.get("guards")
    if not isinstance(guards, list) or not all(type(c) is int and c in counts for c in guards):
        raise _Malformed("'guards' is not a list of the task's family codes")
    if not isinstance(fams, list) or (sens is not None and not isinstance(sens, list)):
        raise _Malformed("'families' is not a list")
    expected = {"rows_index", "rows"} | {f"counts.{j}" for j in range(len(counts))}
    expected |= {f"guards.{j}.{n}" for j in range(len(guards)) for n in ("implausible", "max_multiple")}
    for prefix, lst in (("family", fams), ("sens", sens or [])):
        for j in range(len(lst)):
            expected |= {f"{prefix}.{j}.{n}" for n in ("tail_index", "tail_loss", "tail_weight")}
    _check_arrays(arrays, expected)
    rows_index, rows = arrays["rows_index"], arrays["rows"]
    if rows_index.ndim != 1 or rows_index.dtype.kind not in "iu" or rows.ndim != 2 or rows.shape[0] != len(rows_index):
        raise _Malformed(f"rows has shape {rows.shape} for {rows_index.shape} indices")
    if len(rows_index) and (rows_index.min() < start or rows_index.max() >= stop):
        raise _Malformed("a kept row lies outside the task's scenarios")
    count_arrays = {}
    for j, code in enumerate(counts):
        c = arrays[f"counts.{j}"]
        if c.ndim != 2 or c.shape[0] != 4 or c.dtype.kind not in "iu":
            raise _Malformed(f"counts.{j} has shape {c.shape}")
        count_arrays[code] = c
    guard_arrays = {}
    for j, code in enumerate(guards):
        n, top = arrays[f"guards.{j}.implausible"], arrays[f"guards.{j}.max_multiple"]
        F = count_arrays[code].shape[1]
        if n.shape != (F,) or top.shape != (F,) or n.dtype.kind not in "iu" or top.dtype.kind != "f":
            raise _Malformed(f"guards.{j} has shapes {n.shape}, {top.shape} for {F} factors")
        guard_arrays[code] = (n, top)
    families = _families_in("family", fams, arrays, False)
    if set(families) != set(count_arrays):
        raise _Malformed("the families of the summaries and of the counts differ")
    return StreamResult(task_id, start, stop, families, None if sens is None else _families_in("sens", sens, arrays, False),
                        rows_index, rows, count_arrays, parts, _float(meta, "seconds"), _float(meta, "compile_seconds"),
                        _float(meta, "draw_seconds"), _float(meta, "write_seconds"), _bool(meta, "float64"), guard_arrays)
