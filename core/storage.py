"""Where a run's files live: a local folder, or a URI of any file system Arrow reads (``s3://``, ``gs://``,
``abfs://``, ``hdfs://``, ``file://``).

A run written to a URI keeps its small files (the manifest, the tables that do not grow with the
scenarios, the report) in a *staging folder* on the machine that runs the driver; the per-scenario part
files that the tasks write go straight to the URI, so that tasks on any node of a cluster can write them,
and so do the task checkpoints, so that any machine can resume the run.  When the run ends, the small files
are copied to the URI beside the parts (the manifest last, so a reader never sees a manifest without its
tables).  Reading a run from a URI copies the small files into a staging folder and reads the part files
where they are.

Credentials come from the environment the file system reads (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``GOOGLE_APPLICATION_CREDENTIALS``, ...), never from the URI: a URI holding a password is refused, as it
would be written into the manifest.  Arrow's own query options (``?endpoint_override=...&region=...``)
are kept.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["Location", "is_uri", "location", "stage_dir"]

#: Arrow file systems whose uploads readers see whole or not at all (no temporary file needed)
_OBJECT_STORES = ("s3", "gcs", "abfs")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(target) -> bool:
    """Whether ``target`` is a URI with a scheme (``s3://bucket/prefix``), not a local path."""
    return isinstance(target, str) and bool(_SCHEME.match(target))


def stage_dir(uri: str) -> Path:
    """The local staging folder of the run at ``uri``: ``$STRESSGRID_STAGE/<name>`` where that variable is
    set, else ``$XDG_CACHE_HOME/stressgrid/runs/<name>`` (``~/.cache/...``); ``<name>`` is the URI's last
    folder and a digest of the whole URI, so two URIs never share a folder and the same URI always finds
    its folder again (``--resume``)."""
    base = os.environ.get("STRESSGRID_STAGE")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(cache, "stressgrid", "runs")
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1])[:40] or "run"
    return Path(base) / f"{tail}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


class Location:
    """A folder in a file system: a local path or a URI (see the module).  It pickles as its text, and
    each process opens the file system once, when it first needs it.

    Parameters
    ----------
    target : a local folder or a URI
    what : how an error names it (e.g. ``--out``)
    """

    def __init__(self, target: str | Path, what: str = "--out"):
        self.target = str(target)
        self.what = what
        self.remote = is_uri(self.target)
        self._fs = None
        self._root = None
        if self.remote:
            parts = urlsplit(self.target)
            if parts.password is not None:
                raise ConfigError(f"{what} {self._shown()}: holds a password; give credentials through the environment "
                                  "(e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or GOOGLE_APPLICATION_CREDENTIALS), "
                                  "as the URI is written into the run's manifest")

    def __reduce__(self):
        return (Location, (self.target, self.what))

    def __repr__(self) -> str:
        return f"Location({self.target!r})"

    def __str__(self) -> str:
        return self.target

    def _shown(self) -> str:
        parts = urlsplit(self.target)
        return self.target if parts.password is None else self.target.replace(parts.password, "***")

    def _open(self):
        if self._fs is None:
            from pyarrow import fs

            if not self.remote:
                self._fs, self._root = fs.LocalFileSystem(), os.path.abspath(self.target)
            else:
                try:
                    self._fs, self._root = fs.FileSystem.from_uri(self.target)
                except (ValueError, OSError) as exc:  # ArrowInvalid is a ValueError
                    raise ConfigError(f"{self.what} {self._shown()}: cannot be opened as a file system ({exc})") from None
                self._root = self._root.rstrip("/")
        return self._fs, self._root

    @property
    def filesystem(self):
        """The ``pyarrow.fs.FileSystem``."""
        return self._open()[0]

    def path(self, rel: str = "") -> str:
        """The path within :attr:`filesystem` of ``rel`` (``/``-separated, relative to the folder)."""
        root = self._open()[1]
        return f"{root}/{rel}" if rel else root

    def uri(self, rel: str = "") -> str:
        """``rel`` as the user would name it: the local path, or the URI with ``/rel`` appended to its path."""
        if not rel:
            return self.target
        if not self.remote:
            return str(Path(self.target) / rel)
        parts = urlsplit(self.target)
        return parts._replace(path=parts.path.rstrip("/") + "/" + rel).geturl()

    def _error(self, doing: str, rel: str, exc: Exception) -> ConfigError:
        return ConfigError(f"{self.what} {self.uri(rel)}: cannot {doing} ({exc})")

    def check(self) -> None:
        """Create the folder (and its parents) and check that it is a folder in which a file can be written
        and deleted; otherwise one :class:`ConfigError` naming it and the reason."""
        from pyarrow import fs

        f = self.filesystem
        info = self._info("")
        if info.type == fs.FileType.File:
            raise ConfigError(f"{self.what} {self._shown()}: is a file, not a folder")
        probe = f".stressgrid-write-check-{os.getpid()}"
        try:
            f.create_dir(self.path(), recursive=True)
            with f.open_output_stream(self.path(probe)) as out:
                out.write(b"")
            f.delete_file(self.path(probe))
        except (OSError, ValueError) as exc:
            raise self._error("be written", "", exc) from None

    def _info(self, rel: str):
        try:
            return self.filesystem.get_file_info(self.path(rel))
        except (OSError, ValueError) as exc:
            raise self._error("be read", rel, exc) from None

    def is_file(self, rel: str) -> bool:
        from pyarrow import fs

        return self._info(rel).type == fs.FileType.File

    def is_dir(self, rel: str) -> bool:
        from pyarrow import fs

        return self._info(rel).type == fs.FileType.Directory

    def files(self, rel: str, prefix: str = "", suffix: str = "") -> list[str]:
        """The names of the files directly in folder ``rel`` whose names start with ``prefix`` and end with
        ``suffix``, sorted (none when the folder is absent)."""
        from pyarrow import fs

        try:
            infos = self.filesystem.get_file_info(fs.FileSelector(self.path(rel), allow_not_found=True))
        except (OSError, ValueError) as exc:
            raise self._error("be listed", rel, exc) from None
        names = (i.base_name for i in infos if i.type == fs.FileType.File)
        return sorted(n for n in names if n.startswith(prefix) and n.endswith(suffix))

    def dirs(self, rel: str, prefix: str = "") -> list[str]:
        """The names of the folders directly in folder ``rel`` whose names start with ``prefix``, sorted (none
        when the folder is absent)."""
        from pyarrow import fs

        try:
            infos = self.filesystem.get_file_info(fs.FileSelector(self.path(rel), allow_not_found=True))
        except (OSError, ValueError) as exc:
            raise self._error("be listed", rel, exc) from None
        return sorted(i.base_name for i in infos if i.type == fs.FileType.Directory and i.base_name.startswith(prefix))

    def copy_from(self, source: "Location", src_rel: str, rel: str) -> None:
        """Copy file ``src_rel`` of ``source`` (any file system) to file ``rel`` here, streamed in blocks
        (``pyarrow.fs.copy_files``) rather than read whole into memory."""
        from pyarrow import fs

        try:
            parent = self.path(rel).rsplit("/", 1)[0]
            self.filesystem.create_dir(parent, recursive=True)
            fs.copy_files(source.path(src_rel), self.path(rel), source_filesystem=source.filesystem,
                          destination_filesystem=self.filesystem)
        except (OSError, ValueError) as exc:
            raise self._error(f"receive {source.uri(src_rel)}", rel, exc) from None

    def write_bytes(self, rel: str, data) -> None:
        """Write file ``rel`` whole (``data``: bytes or an Arrow buffer): locally through a temporary file
        renamed into place; on an object store as one upload, which readers see whole or not at all."""
        if not self.remote:
            target = Path(self.path(rel))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            try:
                tmp.write_bytes(memoryview(data))
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return
        try:
            f = self.filesystem
            target = self.path(rel)
            parent, name = target.rsplit("/", 1)
            f.create_dir(parent, recursive=True)
            # a file system of files (file://, hdfs://) gets a temporary file moved into place
            tmp = target if f.type_name in _OBJECT_STORES else f"{parent}/.{name}.tmp"
            with f.open_output_stream(tmp) as out:
                out.write(data)
            if tmp != target:
                f.move(tmp, target)
        except (OSError, ValueError) as exc:
            raise self._error("be written", rel, exc) from None

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(self.path(rel)) as src:
                return src.read()
        except (OSError, ValueError) as exc:
            raise self._error("be read", rel, exc) from None

    def delete_dir(self, rel: str) -> None:
        """Delete folder ``rel`` and everything in it (nothing when it is absent)."""
        self._delete(rel, self.is_dir, "delete_dir")

    def delete_file(self, rel: str) -> None:
        """Delete file ``rel`` (nothing when it is absent)."""
        self._delete(rel, self.is_file, "delete_file")

    def _delete(self, rel: str, present, method: str) -> None:
        if present(rel):
            try:
                getattr(self.filesystem, method)(self.path(rel))
            except (OSError, ValueError) as exc:
                raise self._error("be deleted", rel, exc) from None


def location(target: str | Path | Location, what: str = "--out") -> Location:
    """``target`` as a :class:`Location` (returned as is when it already is one)."""
    return target if isinstance(target, Location) else Location(target, what)
