"""The results database through its one writer and its one read API, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, inspect, text

from factorybench.errors import FactorybenchError
from factorybench.results import metrics as catalog
from factorybench.results.archive import RunArchive
from factorybench.results.database import dispose_all, engine_for
from factorybench.results.query import Results
from factorybench.results.store import HistoryRow, RunRecord, StepRecord, annotate, import_history, record_run

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)


def summary(rate: float, ttft: float) -> dict:
    return {"requests": 20, "errors": 0, "error_rate": 0.0, "request_rate": rate, "output_tokens_per_s": rate * 16,
            "ttft_ms": {"p50": ttft, "p99": ttft * 1.2, "mean": ttft}, "itl_ms": {"p50": 10.0},
            "client": {"cpu_fraction": 0.1, "loop_lag_ms": {"p99": 1.0}}, "valid": True}


def record(n: int, rate: float = 20.0, ttft: float = 50.0, *, status: str = "success", archive_url=None,
           recipe_hash: str = "h1", workload_hash: str | None = "w1", steps=()) -> RunRecord:
    return RunRecord(recipe="smoke", recipe_hash=recipe_hash, workload_hash=workload_hash, dag_id="factorybench_smoke", dag_run_id=f"run-{n}",
                     cluster="dev", transport="ssh", status=status, trigger="schedule", started_at=T0 + timedelta(days=n),
                     finished_at=T0 + timedelta(days=n, minutes=2), job_ids=[str(100 + n)], nodes=["node1"],
                     recipe_text="name: smoke\n", fb_version="0.1.0", git_commit="abc", model="m",
                     client_versions={"aiohttp": "3.14.5"}, archive_url=archive_url,
                     metrics=catalog.from_summary(summary(rate, ttft)), steps=list(steps))


def test_round_trip(results_url):
    ids = [record_run(results_url, record(n, rate=20 + n)) for n in range(3)]
    res = Results(results_url)
    runs = res.runs("smoke")
    assert [r.dag_run_id for r in runs] == ["run-2", "run-1", "run-0"]  # newest first
    assert runs[0].metrics["request_rate"] == 22.0 and runs[0].metrics["ttft_p99_ms"] == pytest.approx(60.0)
    detail = res.run(ids[1])
    assert detail.provenance["recipe_text"] == "name: smoke\n" and detail.provenance["client_versions"] == {
        "aiohttp": "3.14.5"}
    by_name = {m.name: m for m in detail.metrics}
    assert (by_name["ttft_p50_ms"].unit, by_name["ttft_p50_ms"].direction, by_name["ttft_p50_ms"].source) == (
        "ms", "lower", "client")
    assert by_name["request_rate"].direction == "higher"
    assert res.run("run-1").run.id == ids[1] and res.run("latest:smoke").run.dag_run_id == "run-2"
    series = res.series("smoke", "request_rate")
    assert [p.value for p in series] == [20.0, 21.0, 22.0] and all(p.valid for p in series)
    assert res.recipes()[0].runs == 3 and res.recipes()[0].last_dag_run_id == "run-2"
    with pytest.raises(FactorybenchError, match="no run 'nope'"):
        res.run("nope")


def test_rerecording_a_dag_run_replaces_it(results_url):
    record_run(results_url, record(1, rate=10))
    record_run(results_url, record(1, rate=30, steps=[StepRecord(0, "rate 1/s", "open", None, 1.0, True, {},
                                                                 catalog.from_summary(summary(1, 50)))]))
    res = Results(results_url)
    assert len(res.runs()) == 1
    detail = res.run("run-1")
    assert detail.run.metrics["request_rate"] == 30
    assert [s.label for s in detail.steps] == ["rate 1/s"]
    assert {m.step_index for m in detail.metrics} == {None, 0}
    with engine_for(results_url).connect() as conn:  # no orphans left by the replaced run
        assert conn.execute(text("SELECT count(*) FROM fb_metrics WHERE run_id NOT IN "
                                 "(SELECT id FROM fb_runs)")).scalar() == 0


def test_series_comparable_by_hash_workload_and_validity(results_url):
    record_run(results_url, record(1, recipe_hash="h1", workload_hash="w1"))
    record_run(results_url, record(2, recipe_hash="h2", workload_hash="w1"))  # the service changed
    record_run(results_url, record(3, recipe_hash="h1", workload_hash="w1", status="invalid"))
    record_run(results_url, record(4, recipe_hash="h3", workload_hash="w2"))  # another load
    record_run(results_url, record(5, recipe_hash="imported", workload_hash=None))
    res = Results(results_url)
    runs = lambda **kw: [p.dag_run_id for p in res.series("smoke", "request_rate", **kw)]  # noqa: E731
    assert runs(recipe_hash="h1") == ["run-1", "run-3"]
    assert runs(workload_hash="w1") == ["run-1", "run-2", "run-3", "run-5"]  # imported history counts
    assert runs() == ["run-1", "run-2", "run-3", "run-4", "run-5"]
    assert [p.valid for p in res.series("smoke", "request_rate")] == [True, True, False, True, True]


def test_annotations_and_import(results_url):
    record_run(results_url, record(1))
    annotate(results_url, "smoke", "alice", "vLLM 0.12 upgrade accepted", dag_run_id="run-1")
    notes = Results(results_url).annotations("smoke")
    assert [(a.author, a.dag_run_id, a.at) for a in notes] == [("alice", "run-1", T0 + timedelta(days=1))]
    with pytest.raises(FactorybenchError, match="no run"):
        annotate(results_url, "smoke", "bob", "why", dag_run_id="run-9")
    rows = [HistoryRow("old-bench", T0 + timedelta(days=d), "qps", 100.0 + d, "req/s", "higher") for d in range(5)]
    assert import_history(results_url, rows, "history.csv") == 5
    assert import_history(results_url, rows, "history.csv") == 5  # idempotent
    series = Results(results_url).series("old-bench", "qps")
    assert [p.value for p in series] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert Results(results_url).metric_names("old-bench") == [
        {"name": "qps", "unit": "req/s", "direction": "higher", "source": "derived"}]


def test_samples_come_back_from_the_archive(results_url, tmp_path):
    table = pa.table({"step": [0, 0, 0, 0], "warmup": [True, False, False, False],
                      "error": [None, None, "http_5xx", None], "ttft_ms": [99.0, 50.0, None, 52.0],
                      "itl_ms": [[1.0], [10.0, 11.0], [], [12.0]]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    archive = RunArchive(str(tmp_path / "archive"), "smoke", "run-1")
    with archive.transaction({"load/samples.parquet": buf.getvalue()}, {}) as entries:
        rec = record(1, archive_url=archive.url)
        rec.artifacts = entries
        record_run(results_url, rec)
    res = Results(results_url)
    assert res.sample_values("run-1", "ttft_ms").tolist() == [50.0, 52.0]  # warm-up and errors left out
    assert res.sample_values("run-1", "itl_ms").tolist() == [10.0, 11.0, 12.0]
    assert res.run("run-1").artifacts[0]["kind"] == "samples"
    with pytest.raises(FactorybenchError, match="no file"):
        res.artifact("run-1", "report.html")


# The foundation's tables exactly as its create_all made them (before Alembic).
_FOUNDATION_DDL = [
    """CREATE TABLE fb_runs (id INTEGER NOT NULL, recipe VARCHAR(120) NOT NULL, recipe_hash VARCHAR(32) NOT NULL,
       dag_id VARCHAR(250) NOT NULL, dag_run_id VARCHAR(250) NOT NULL, cluster VARCHAR(120) NOT NULL,
       transport VARCHAR(16) NOT NULL, job_ids JSON NOT NULL, nodes JSON NOT NULL, service_state VARCHAR(32),
       started_at TIMESTAMP WITH TIME ZONE, finished_at TIMESTAMP WITH TIME ZONE, status VARCHAR(16) NOT NULL,
       message TEXT NOT NULL, archive_path TEXT, PRIMARY KEY (id), UNIQUE (dag_id, dag_run_id))""",
    """CREATE TABLE fb_run_metrics (id INTEGER NOT NULL, run_id INTEGER NOT NULL, name VARCHAR(120) NOT NULL,
       value FLOAT, unit VARCHAR(32) NOT NULL, PRIMARY KEY (id), FOREIGN KEY(run_id) REFERENCES fb_runs (id)
       ON DELETE CASCADE)""",
    """INSERT INTO fb_runs (recipe, recipe_hash, dag_id, dag_run_id, cluster, transport, job_ids, nodes,
       service_state, started_at, finished_at, status, message, archive_path) VALUES ('smoke', 'abc',
       'factorybench_smoke', 'manual__1', 'dev', 'ssh', '["7"]', '["vm"]', 'CANCELLED', '2026-01-02 03:04:05',
       '2026-01-02 03:05:05', 'success', '', '/data/archive/smoke/manual__1')""",
    "INSERT INTO fb_run_metrics (run_id, name, value, unit) SELECT id, 'request_rate', 19.5, 'req/s' FROM fb_runs",
    "INSERT INTO fb_run_metrics (run_id, name, value, unit) SELECT id, 'ttft_p50_ms', 50.9, 'ms' FROM fb_runs",
]


def test_migration_from_the_foundation_schema(results_url):
    raw = create_engine(results_url)
    with raw.begin() as conn:
        for statement in _FOUNDATION_DDL:
            if raw.dialect.name == "sqlite":
                statement = statement.replace("TIMESTAMP WITH TIME ZONE", "DATETIME")
            else:
                statement = statement.replace("id INTEGER NOT NULL,", "id SERIAL NOT NULL,")
            conn.execute(text(statement))
    raw.dispose()
    res = Results(results_url)  # migrates on first use
    tables = set(inspect(res.engine).get_table_names())
    assert {"fb_runs", "fb_steps", "fb_metrics", "fb_artifacts", "fb_annotations", "alembic_version"} <= tables
    assert "fb_run_metrics" not in tables
    run = res.run("manual__1")
    assert run.run.archive_url == "/data/archive/smoke/manual__1" and run.run.job_ids == ["7"]
    assert {(m.name, m.value, m.direction) for m in run.metrics} == {("request_rate", 19.5, "higher"),
                                                                    ("ttft_p50_ms", 50.9, "lower")}
    dispose_all()
    Results(results_url)  # a second start finds the schema current and changes nothing
    record_run(results_url, record(5))
    assert len(Results(results_url).runs()) == 2
