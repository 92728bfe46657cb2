"""Render time and file size of the HTML reports, for a typical run (10k requests) and a sweep.

    .venv/bin/python benchmarks/report_render.py [--requests 10000] [--repeat 3] [--plotly-wheel W.whl]

A recipe history of 14 nightly runs goes into a temporary SQLite database and archive
(factorybench.report.synthetic); the current run is then rendered as the archive task does
(`RunReportData.from_parts`, history from the database), and against its baseline. Wall and CPU
time are the median of --repeat renders in this process (matplotlib already imported, as in a
long-lived worker); the first render, which imports matplotlib, is shown apart. With
--plotly-wheel, the size of the Plotly JavaScript that a Plotly report would have to inline is
printed beside ours (pip download --no-deps plotly==7.1.0).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import table


def timed(fn, repeat: int) -> tuple[float, float, str]:
    walls, cpus, out = [], [], ""
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000, help="requests of the rendered run")
    ap.add_argument("--repeat", type=int, default=3, help="renders per case (median)")
    ap.add_argument("--plotly-wheel", help="a plotly wheel, to print the size of its inlined JavaScript")
    args = ap.parse_args()

    w = time.perf_counter()
    from factorybench.report import RunReportData, fetch_history, primary_metrics, render_comparison, render_run_report
    from factorybench.report.synthetic import record_history
    from factorybench.results.query import Results
    import_s = time.perf_counter() - w

    rows = []
    with tempfile.TemporaryDirectory(prefix="fb-report-bench-") as tmp:
        for sweep in (False, True):
            url = f"sqlite:///{tmp}/{'sweep' if sweep else 'single'}.db"
            cur = record_history(url, f"{tmp}/archive-{sweep}", sweep=sweep, current_n=args.requests)
            results = Results(url)
            run = cur["run"]
            names = primary_metrics(cur["verdicts"])
            history, notes = fetch_history(results, run.recipe, names, until=run.started_at)
            data = RunReportData.from_parts(run, cur["load"], cur["samples"], cur["verdicts"], history=history,
                                            annotations=notes)
            first = time.perf_counter()
            render_run_report(data)
            first_s = time.perf_counter() - first
            wall, cpu, html = timed(lambda: render_run_report(data), args.repeat)
            kind = f"sweep, {len(cur['load']['steps'])} steps" if sweep else "one step"
            size = len(html.encode())
            rows.append([f"run report ({kind})", cur["samples"].num_rows, f"{wall:.2f}", f"{cpu:.2f}",
                         f"{first_s:.2f}", f"{size / 1024:.0f}", f"{len(gzip.compress(html.encode())) / 1024:.0f}"])
            base = RunReportData.baseline(results, run.dag_run_id)
            wall, cpu, html = timed(lambda: render_comparison(base, data), args.repeat)
            rows.append([f"comparison vs baseline ({kind})", f"{cur['samples'].num_rows} vs {base.samples.num_rows}",
                         f"{wall:.2f}", f"{cpu:.2f}", "", f"{len(html.encode()) / 1024:.0f}",
                         f"{len(gzip.compress(html.encode())) / 1024:.0f}"])
    if args.plotly_wheel:
        with zipfile.ZipFile(args.plotly_wheel) as z:
            js = z.read("plotly/package_data/plotly.min.js")
        rows.append([f"Plotly: plotly.min.js alone ({Path(args.plotly_wheel).name})", "", "", "", "",
                     f"{len(js) / 1024:.0f}", f"{len(gzip.compress(js)) / 1024:.0f}"])
    print(f"import of factorybench.report: {import_s:.2f} s (matplotlib loads on the first render)\n")
    print(table(["case", "samples", "wall s (median)", "CPU s (median)", "first render s", "KiB", "gzip KiB"],
                rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
