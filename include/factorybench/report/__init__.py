"""Reports: a self-contained HTML page per run, and a comparison of two runs (or a run and its baseline).

    from factorybench.report import RunReportData, render_run_report, render_comparison
    html = render_run_report(RunReportData.from_results(Results(), "latest:smoke"))

Names are imported on first use, so importing this package costs nothing until a report is drawn
(matplotlib, numpy and pyarrow load then).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "RunReportData": "data", "fetch_history": "data", "primary_metrics": "data",
    "render_run_report": "run", "render_run_report_from": "run", "render_comparison": "compare",
    "render_comparison_from": "compare",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"factorybench.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
