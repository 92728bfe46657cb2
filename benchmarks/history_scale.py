"""History at scale: 2 years of nightly runs of 50 recipes with 20 metrics each, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/history_scale.py [--recipes 50] [--days 730] [--repeat 5] [--db sqlite postgresql]

Fills a fresh results database through the schema's own migrations (bulk inserts, not the per-run
writer, so filling takes seconds), then times what users and the pipeline ask of it, through the read
API: one metric's series, `factorybench history` (the change points of the six primary metrics), the
Benchmarks page (every recipe's last verdict), the latest runs, and judging one new run against its
history. Prints the median of `--repeat` calls, the database size, and one run's samples Parquet size.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import insert, text

from factorybench.analysis.config import ChecksConfig
from factorybench.regression import Subject, judge, series_report
from factorybench.results import metrics as catalog
from factorybench.results.database import dispose_all, engine_for
from factorybench.results.query import Results
from factorybench.results.schema import Metric, Run

T0 = datetime(2024, 11, 23, 2, 0, tzinfo=timezone.utc)
METRICS = ["request_rate", "output_tokens_per_s", "total_tokens_per_s", "goodput_rate", "error_rate", "errors",
           "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
           "e2e_p50_ms", "e2e_p90_ms", "e2e_p99_ms", "queue_p99_ms", "requests", "duration_s", "tokens_per_chunk"]


def fill(url: str, recipes: int, days: int) -> None:
    engine = engine_for(url)
    rng = np.random.default_rng(0)
    defs = [catalog.define(m) for m in METRICS]
    run_id = 0
    with engine.begin() as conn:
        for r in range(recipes):
            base = rng.uniform(10, 500, len(METRICS))
            walk = 1 + np.cumsum(rng.normal(0, 0.002, days))
            runs, metrics = [], []
            for d in range(days):
                run_id += 1
                at = T0 + timedelta(days=d)
                runs.append({"id": run_id, "recipe": f"recipe-{r:02d}", "recipe_hash": f"h{r}-{d // 90}",
                             "workload_hash": f"w{r}", "dag_id": f"factorybench_recipe_{r:02d}",
                             "dag_run_id": f"scheduled__{at.isoformat()}", "trigger": "schedule", "cluster": "dev",
                             "transport": "ssh", "job_ids": [str(run_id)], "nodes": ["node1"], "client_versions": {},
                             "started_at": at, "finished_at": at + timedelta(minutes=20),
                             "status": "success" if rng.random() > 0.02 else "invalid", "message": "",
                             "verdict": "pass", "verdict_line": "passed: 6/6 primary pass"})
                noise = rng.normal(1, 0.03, len(METRICS)) * walk[d]
                metrics += [{"run_id": run_id, "step_index": None, "name": m.name, "value": float(v),
                             "unit": m.unit, "direction": m.direction, "source": m.source}
                            for m, v in zip(defs, base * noise)]
            conn.execute(insert(Run), runs)
            conn.execute(insert(Metric), metrics)


def size_of(url: str) -> int:
    if url.startswith("sqlite"):
        return os.path.getsize(url.removeprefix("sqlite:///"))
    with engine_for(url).connect() as conn:
        return conn.execute(text("SELECT pg_database_size(current_database())")).scalar()


def timed(fn, repeat: int) -> float:
    fn()  # warm: the first call also pays imports and connection setup
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def parquet_bytes(requests: int = 1000, output_tokens: int = 128) -> int:
    """One run's samples as the load engine writes them (one ITL per output token)."""
    from factorybench.load.samples import _schema

    rng = np.random.default_rng(1)
    rows = [{"index": i, "step": 0, "worker": 0, "warmup": i < 10, "planned_s": i * 0.1, "queue_s": 0.0,
             "sent_s": i * 0.1, "done_s": i * 0.1 + 2.0, "ttft_ms": float(rng.normal(50, 3)),
             "e2e_ms": float(rng.normal(2000, 50)), "itl_ms": rng.normal(15, 1, output_tokens - 1).tolist(),
             "chunks": output_tokens, "prompt_tokens": 512, "prompt_tokens_source": "usage",
             "output_tokens": output_tokens, "output_tokens_source": "usage", "status": 200, "error": None,
             "error_detail": None} for i in range(requests)]
    schema = _schema()
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getbuffer().nbytes


def database(kind: str, tmp: str) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/history.db", lambda: None
    import psycopg2

    name = f"fb_history_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")

    def drop():
        dispose_all()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", type=int, default=50, help="recipes (default 50)")
    ap.add_argument("--days", type=int, default=730, help="nightly runs per recipe (default 730: two years)")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per query (median reported)")
    ap.add_argument("--db", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    checks = ChecksConfig()
    primary = list(checks.primary)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.db:
            url, drop = database(kind, tmp)
            try:
                t0 = time.perf_counter()
                fill(url, args.recipes, args.days)
                fill_s = time.perf_counter() - t0
                res, pick = Results(url), args.recipes // 2
                recipe = f"recipe-{pick:02d}"
                last = res.runs(recipe, limit=1)[0]
                current = {m: v * 1.02 for m, v in last.metrics.items()}
                subject = Subject(recipe, "new", f"w{pick}", "dev", checks, at=T0 + timedelta(days=args.days + 1))
                rows.append((kind, fill_s, size_of(url), {
                    f"series (1 metric, {args.days} runs)": timed(lambda: res.series(recipe, "ttft_p50_ms"), args.repeat),
                    "history (6 primary metrics + change points)": timed(
                        lambda: [series_report(res, recipe, m, checks) for m in primary], args.repeat),
                    "Benchmarks page: every recipe's last verdict": timed(res.recipes, args.repeat),
                    "latest 20 runs": timed(lambda: res.runs(limit=20), args.repeat),
                    "judge one run (18 judged metrics)": timed(lambda: judge(res, subject, current), args.repeat),
                }))
            finally:
                dispose_all()
                drop()
    runs = args.recipes * args.days
    print(f"{args.recipes} recipes x {args.days} nightly runs = {runs} runs, {runs * len(METRICS)} metric rows; "
          f"median of {args.repeat} calls, ms\n")
    names = list(rows[0][3])
    print("| query | " + " | ".join(r[0] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for n in names:
        print(f"| {n} | " + " | ".join(f"{r[3][n]:.1f}" for r in rows) + " |")
    print("| fill (bulk insert), s | " + " | ".join(f"{r[1]:.1f}" for r in rows) + " |")
    print("| database size, MiB | " + " | ".join(f"{r[2] / 2**20:.0f}" for r in rows) + " |")
    per_run = parquet_bytes()
    print(f"\nSamples: one run of 1000 requests x 128 output tokens is {per_run / 1024:.0f} KiB of Parquet; "
          f"{runs} such runs would be {per_run * runs / 2**30:.1f} GiB (that size times the run count).")


if __name__ == "__main__":
    main()
