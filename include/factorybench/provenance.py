"""Where a run came from: factorybench's version and commit, the client's software, the trigger."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata

from factorybench import settings

_CLIENT_PACKAGES = ("factorybench", "aiohttp", "uvloop", "numpy", "pyarrow", "pydantic", "apache-airflow")


def fb_version() -> str:
    try:
        return metadata.version("factorybench")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """FB_GIT_COMMIT (set in built images), else the checkout's HEAD, else None."""
    if os.environ.get("FB_GIT_COMMIT"):
        return os.environ["FB_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(settings.home()), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def client_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _CLIENT_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def trigger_kind(run_type: str | None, run_id: str, conf: dict | None) -> str:
    """ui | rest | ci | cli | schedule | backfill | asset | operator, from what a task can see.

    A manual run is `ci` when its conf says so (`factorybench trigger` sets triggered_via=ci and
    ci_ref), `ui` when Airflow named it (manual__<time>, as the UI and dag.test do), else `rest`.
    """
    conf = conf or {}
    kind = str(run_type or "").lower().rsplit(".", 1)[-1]
    if kind and kind != "manual":
        return {"scheduled": "schedule", "asset_triggered": "asset", "operator_triggered": "operator"}.get(kind, kind)
    if conf.get("triggered_via") in ("ci", "cli", "rest", "ui"):
        return str(conf["triggered_via"])
    if conf.get("ci_ref"):
        return "ci"
    return "ui" if run_id.startswith("manual__") else "rest"
