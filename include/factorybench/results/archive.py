"""Run archives and the spool, on any fsspec filesystem (a local path by default).

- The **spool** is where a run's tasks drop what they produce while the run is in flight (load
  samples, job logs). Each file is written to a temporary name and renamed.
- The **archive** is the committed record of a finished run: `<root>/<recipe>/<run>/`, with a
  `manifest.json` (every file's size and sha256) written last. `RunArchive.transaction()` is the
  only way in: it stages all files under a hidden directory, swaps it in by renames, and keeps the
  previous version aside until the caller's database transaction has committed, so a failure
  anywhere leaves the old archive (or none) and never a mix.

Readers trust a run directory only through its manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Iterator

import fsspec
from fsspec.core import url_to_fs

_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
MANIFEST = "manifest.json"

# What kind each archive file is, by name; the database's artifacts table records it.
_KINDS = ((re.compile(r"\.parquet$"), "samples"), (re.compile(r"\.(sh)$"), "script"),
          (re.compile(r"\.(out|err|log)$"), "log"), (re.compile(r"\.html$"), "report"),
          (re.compile(r"\.(csv)$"), "table"))


def safe_name(text: str) -> str:
    return _SAFE.sub("_", text).strip("._") or "_"


def kind_of(name: str) -> str:
    return next((kind for pattern, kind in _KINDS if pattern.search(name)), "json")


def to_bytes(content: Any) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode()
    return json.dumps(content, indent=2, sort_keys=True, default=str).encode()


def _check_name(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts or any(safe_name(x) != x for x in p.parts):
        raise ValueError(f"archive file name {name!r} must be a relative path of plain words")
    return str(p)


class _Store:
    """A directory on some fsspec filesystem."""

    def __init__(self, root: str):
        self.root = str(root).rstrip("/")
        self.fs, self._root_path = url_to_fs(self.root)

    def _path(self, *parts: str) -> str:
        return "/".join([self._root_path.rstrip("/"), *parts])

    def _write_atomic(self, path: str, data: bytes) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)


class Spool(_Store):
    """In-flight outputs of one DAG run's tasks, keyed by file name."""

    def __init__(self, root: str, dag_id: str, run_id: str):
        super().__init__(root)
        self.dir = self._path(".spool", safe_name(dag_id), safe_name(run_id))

    def put(self, name: str, content: Any) -> None:
        self._write_atomic(f"{self.dir}/{_check_name(name)}", to_bytes(content))

    def put_local_dir(self, local_dir: str, prefix: str) -> None:
        """Copy every file under a local directory (e.g. a load result) into the spool."""
        local = fsspec.filesystem("file")
        base = str(local_dir).rstrip("/")
        for path in sorted(local.find(base)):
            self.put(f"{prefix}/{path[len(base) + 1:]}", local.cat_file(path))

    def files(self) -> dict[str, bytes]:
        if not self.fs.exists(self.dir):
            return {}
        out = {}
        for path in sorted(self.fs.find(self.dir)):
            name = path[len(self.dir) + 1:]
            if ".tmp-" not in name:
                out[name] = self.fs.cat_file(path)
        return out

    def get(self, name: str) -> bytes | None:
        path = f"{self.dir}/{_check_name(name)}"
        return self.fs.cat_file(path) if self.fs.exists(path) else None

    def clear(self) -> None:
        if self.fs.exists(self.dir):
            self.fs.rm(self.dir, recursive=True)


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    size: int
    sha256: str


class RunArchive(_Store):
    """One run's directory in the archive: its layout and manifest."""

    def __init__(self, root: str, recipe: str, run_key: str):
        super().__init__(root)
        self.recipe, self.run_key = recipe, run_key
        self.parent = self._path(safe_name(recipe))
        self.dir = f"{self.parent}/{safe_name(run_key)}"

    @property
    def url(self) -> str:
        """Where the run lives, as a URL (or a local path) that `RunArchive.at` accepts."""
        if self.root.startswith(("/", ".")) or "://" not in self.root:
            return self.dir
        return self.fs.unstrip_protocol(self.dir)

    @classmethod
    def at(cls, url: str) -> "RunArchive":
        """The archive of a run from its stored URL."""
        parent, run = url.rstrip("/").rsplit("/", 1)
        root, recipe = parent.rsplit("/", 1)
        return cls(root, recipe, run)

    @contextlib.contextmanager
    def transaction(self, files: dict[str, Any], meta: dict[str, Any]) -> Iterator[list[Entry]]:
        """Stage `files` and swap them in as this run's archive; yield the manifest's entries.

        The block runs with the new archive in place and the previous one aside. If it raises,
        the previous archive comes back (or none, for a first run) and the exception goes on.
        """
        token = uuid.uuid4().hex[:10]
        staging = f"{self.parent}/.staging-{safe_name(self.run_key)}-{token}"
        aside = f"{self.parent}/.old-{safe_name(self.run_key)}-{token}"
        self._clear_stale()
        entries: list[Entry] = []
        try:
            for name in sorted(files):
                if files[name] is None:
                    continue
                data = to_bytes(files[name])
                path = f"{staging}/{_check_name(name)}"
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                self.fs.pipe_file(path, data)
                entries.append(Entry(name, kind_of(name), len(data), hashlib.sha256(data).hexdigest()))
            manifest = {"version": 1, **meta, "committed_at": datetime.now(timezone.utc).isoformat(),
                        "files": {e.name: {"kind": e.kind, "size": e.size, "sha256": e.sha256} for e in entries}}
            self.fs.pipe_file(f"{staging}/{MANIFEST}", to_bytes(manifest))
        except BaseException:
            self._remove(staging)
            raise
        had_old = self.fs.exists(self.dir)
        if had_old:
            self.fs.mv(self.dir, aside, recursive=True)
        try:
            self.fs.mv(staging, self.dir, recursive=True)
            yield entries
        except BaseException:
            self._remove(self.dir)
            if had_old:
                self.fs.mv(aside, self.dir, recursive=True)
            self._remove(staging)
            raise
        self._remove(aside)

    def _clear_stale(self) -> None:
        """Staging or set-aside copies a killed process left behind for this run."""
        if not self.fs.exists(self.parent):
            return
        for path in self.fs.ls(self.parent, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith((f".staging-{safe_name(self.run_key)}-", f".old-{safe_name(self.run_key)}-")):
                self._remove(path)

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)

    def manifest(self) -> dict[str, Any] | None:
        path = f"{self.dir}/{MANIFEST}"
        return json.loads(self.fs.cat_file(path)) if self.fs.exists(path) else None

    def read(self, name: str) -> bytes:
        return self.fs.cat_file(f"{self.dir}/{_check_name(name)}")

    def open(self, name: str, mode: str = "rb"):
        return self.fs.open(f"{self.dir}/{_check_name(name)}", mode)

    def exists(self, name: str) -> bool:
        return self.fs.exists(f"{self.dir}/{_check_name(name)}")
