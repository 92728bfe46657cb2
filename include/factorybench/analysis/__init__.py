"""Regression analysis of benchmark results: pure functions on numbers, no Airflow, no database, no I/O.

Recipes import `factorybench.analysis.config` at DAG-parse time, so this
package imports numpy and scipy only when one of the names below is used.

    from factorybench.analysis import ChecksConfig, History, Point, judge_run, change_points
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from factorybench.analysis.config import ChecksConfig, ReferenceBand, Verdict

_LAZY = {
    "ChangePoint": "changepoint", "change_points": "changepoint", "best_split": "changepoint",
    "History": "judge", "Point": "judge", "judge_metric": "judge", "judge_run": "judge",
    "MetricVerdict": "verdict", "RunVerdict": "verdict", "Evidence": "evidence",
}

__all__ = ["ChecksConfig", "ReferenceBand", "Verdict", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"factorybench.analysis.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
