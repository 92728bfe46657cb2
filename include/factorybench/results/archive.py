"""The run archive: one directory per run with everything needed to understand it later.

Files are written to a temporary name and renamed, so a crash never leaves a
half-written file that looks complete. Secrets never reach here: callers pass the
recipe, the rendered script, job logs and results, never connections.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def run_dir(root: str | Path, recipe: str, dag_run_id: str) -> Path:
    return Path(root) / _SAFE.sub("_", recipe) / _SAFE.sub("_", dag_run_id)


def write_files(directory: Path, files: dict[str, Any]) -> Path:
    """Write text, bytes or JSON-able values under `directory`; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if content is None:
            continue
        target = directory / _SAFE.sub("_", name)
        tmp = target.with_name(target.name + ".tmp")
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content)
        else:
            tmp.write_text(json.dumps(content, indent=2, sort_keys=True, default=str))
        os.replace(tmp, target)
    return directory
