"""The run archive: atomic commits through fsspec, the manifest, and nothing half-written."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factorybench.results.archive import RunArchive, Spool

META = {"recipe": "r", "dag_id": "d", "dag_run_id": "run 1"}


def commit(archive: RunArchive, files: dict) -> list:
    with archive.transaction(files, META) as entries:
        return entries


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_commit_writes_files_and_a_manifest_last(tmp_path):
    archive = RunArchive(str(tmp_path), "smoke", "manual__2026-01-01T00:00:00+00:00")
    entries = commit(archive, {"job.sh": "#!/bin/bash\n", "load/samples.parquet": b"\x00PAR1",
                               "summary.json": {"requests": 3}, "skipped.txt": None})
    assert archive.dir == f"{tmp_path}/smoke/manual__2026-01-01T00_00_00_00_00"
    manifest = archive.manifest()
    assert set(manifest["files"]) == {"job.sh", "load/samples.parquet", "summary.json"}
    assert manifest["files"]["load/samples.parquet"] == {"kind": "samples", "size": 5,
                                                         "sha256": hashlib.sha256(b"\x00PAR1").hexdigest()}
    assert {e.name: e.kind for e in entries} == {"job.sh": "script", "load/samples.parquet": "samples",
                                                 "summary.json": "json"}
    assert json.loads(archive.read("summary.json")) == {"requests": 3}
    assert manifest["dag_run_id"] == "run 1"


def test_recommit_replaces_the_whole_run(tmp_path):
    archive = RunArchive(str(tmp_path), "smoke", "run-1")
    commit(archive, {"a.txt": "old", "old-only.txt": "x"})
    commit(archive, {"a.txt": "new"})
    assert archive.read("a.txt") == b"new" and not archive.exists("old-only.txt")
    assert listing(tmp_path) == ["smoke", "smoke/run-1", "smoke/run-1/a.txt", "smoke/run-1/manifest.json"]


def test_failure_inside_the_transaction_restores_the_previous_archive(tmp_path):
    archive = RunArchive(str(tmp_path), "smoke", "run-1")
    commit(archive, {"a.txt": "old"})
    before = listing(tmp_path)
    with pytest.raises(RuntimeError, match="database down"):
        with archive.transaction({"a.txt": "new", "b.txt": "new"}, META):
            raise RuntimeError("database down")
    assert listing(tmp_path) == before and archive.read("a.txt") == b"old"


def test_failure_while_staging_a_first_commit_leaves_no_run(tmp_path, monkeypatch):
    archive = RunArchive(str(tmp_path), "smoke", "run-1")
    real, calls = archive.fs.pipe_file, []

    def failing(path, data, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data, **kw)

    monkeypatch.setattr(archive.fs, "pipe_file", failing)
    with pytest.raises(OSError, match="No space"):
        commit(archive, {"a.txt": "fine", "b.txt": "never written"})
    assert listing(tmp_path) == ["smoke"] and archive.manifest() is None


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from factorybench.results.archive import RunArchive
archive = RunArchive(sys.argv[1], "smoke", "run-1")
real, written = archive.fs.pipe_file, []
def slow(path, data, **kw):
    real(path, data, **kw)
    written.append(path)
    if len(written) == 2:
        Path(sys.argv[2]).touch()
        time.sleep(60)
archive.fs.pipe_file = slow
with archive.transaction({f"f{i}.txt": "new" for i in range(5)}, {}):
    pass
"""


@pytest.mark.parametrize("first", [True, False])
def test_a_writer_killed_mid_archive_leaves_the_old_state(tmp_path, first):
    archive = RunArchive(str(tmp_path), "smoke", "run-1")
    if not first:
        commit(archive, {"f0.txt": "old"})
    marker = tmp_path.parent / f"marker-{first}"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), str(marker)])
    deadline = time.time() + 30
    while not marker.exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if first:
        assert archive.manifest() is None and not Path(archive.dir).exists()
    else:
        assert archive.read("f0.txt") == b"old" and set(archive.manifest()["files"]) == {"f0.txt"}
    # The next commit of the same run sweeps what the killed writer staged.
    commit(archive, {"f0.txt": "again"})
    assert listing(tmp_path) == ["smoke", "smoke/run-1", "smoke/run-1/f0.txt", "smoke/run-1/manifest.json"]


def test_any_fsspec_filesystem_works():
    archive = RunArchive("memory://fb-test-archive", "smoke", "run-1")
    commit(archive, {"job.sh": "x", "load/summary.json": {"a": 1}})
    again = RunArchive.at(archive.url)
    assert archive.url.startswith("memory://") and archive.url.endswith("/fb-test-archive/smoke/run-1")
    assert json.loads(again.read("load/summary.json")) == {"a": 1}
    assert set(again.manifest()["files"]) == {"job.sh", "load/summary.json"}


def test_names_that_escape_the_run_directory_are_refused(tmp_path):
    archive = RunArchive(str(tmp_path), "smoke", "run-1")
    for bad in ("../x", "/etc/passwd", "a/../../b", "sp ace.txt"):
        with pytest.raises(ValueError, match="relative path"):
            commit(archive, {bad: "x"})
    assert listing(tmp_path) == []


def test_spool_collects_task_outputs_atomically(tmp_path):
    spool = Spool(str(tmp_path), "factorybench_smoke", "manual__1")
    spool.put("service.out", "hello")
    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "summary.json").write_text("{}")
    (local / "sub" / "x.bin").write_bytes(b"\x01")
    spool.put_local_dir(str(local), "load")
    assert spool.files() == {"service.out": b"hello", "load/summary.json": b"{}", "load/sub/x.bin": b"\x01"}
    assert spool.get("missing") is None
    spool.clear()
    assert spool.files() == {}
