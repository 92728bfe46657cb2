"""Where things live. Environment variables override; defaults suit a checkout of the repo."""

from __future__ import annotations

import os
from pathlib import Path

# include/factorybench/settings.py -> the repo root in an editable checkout.
_CHECKOUT = Path(__file__).resolve().parents[2]


def home() -> Path:
    return Path(os.environ.get("FB_HOME", _CHECKOUT))


def recipes_dir() -> Path:
    return Path(os.environ.get("FB_RECIPES_DIR", home() / "recipes"))


def clusters_file() -> Path:
    return Path(os.environ.get("FB_CLUSTERS_FILE", home() / "config" / "clusters.yaml"))


def results_url() -> str:
    """The results database: any SQLAlchemy URL."""
    return os.environ.get("FB_RESULTS_URL", f"sqlite:///{home() / 'results' / 'factorybench.db'}")


def archive_url() -> str:
    """The archive root: a local path or any fsspec URL (s3://bucket/prefix, ...)."""
    return os.environ.get("FB_ARCHIVE_URL", str(home() / "results" / "archive"))
