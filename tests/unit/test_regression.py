"""A run judged against its recipe's stored history, through the read API (SQLite)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factorybench.analysis.config import ChecksConfig
from factorybench.regression import Subject, judge, series_report
from factorybench.results import metrics as catalog
from factorybench.results.archive import RunArchive
from factorybench.results.database import dispose_all
from factorybench.results.query import Results
from factorybench.results.store import RunRecord, annotate, record_run

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def url(tmp_path):
    yield f"sqlite:///{tmp_path}/r.db"
    dispose_all()


def samples(ttft: np.ndarray) -> bytes:
    n = len(ttft)
    table = pa.table({"step": [0] * n, "warmup": [False] * n, "error": pa.array([None] * n, pa.string()),
                      "ttft_ms": ttft, "e2e_ms": ttft + 150.0, "itl_ms": [[10.0]] * n})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def store(url, root, n: int, ttft: float, rate: float, *, workload="w1", rng=np.random.default_rng(0)):
    values = rng.normal(ttft, ttft * 0.02, 200)
    summary = {"request_rate": rate, "ttft_ms": {"p50": float(np.median(values))}, "errors": 0}
    archive = RunArchive(str(root), "smoke", f"run-{n}")
    with archive.transaction({"load/samples.parquet": samples(values)}, {}) as entries:
        record_run(url, RunRecord(recipe="smoke", recipe_hash=f"h{n}", workload_hash=workload,
                                  dag_id="factorybench_smoke", dag_run_id=f"run-{n}", cluster="dev", transport="ssh",
                                  status="success", started_at=T0 + timedelta(days=n), archive_url=archive.url,
                                  metrics=catalog.from_summary(summary), artifacts=entries))
    return values


def subject(**kw) -> Subject:
    return Subject("smoke", "hx", "w1", "dev", ChecksConfig(primary=["request_rate", "ttft_p50_ms"], **kw),
                   at=T0 + timedelta(days=100))


def test_a_slower_run_is_a_regression_with_its_evidence(url, tmp_path):
    rng = np.random.default_rng(1)
    for n in range(8):
        store(url, tmp_path, n, 50.0, 20.0 * (1 + rng.normal(0, 0.01)), rng=rng)
    slow = rng.normal(65.0, 1.3, 200)
    got = judge(Results(url), subject(), {"request_rate": 20.0, "ttft_p50_ms": float(np.median(slow))},
                {"ttft_ms": slow})
    assert got.verdict == "regression" and got.failed
    ttft = next(m for m in got.detail["metrics"] if m["metric"] == "ttft_p50_ms")
    assert ttft["verdict"] == "regression" and "mannwhitney" in ttft["decided_by"]
    assert any("ttft_p50_ms" in line and "%" in line for line in got.detail["failing"])
    rate = next(m for m in got.detail["metrics"] if m["metric"] == "request_rate")
    assert rate["verdict"] == "pass"
    assert got.line.startswith("FAILED: regression ttft_p50_ms")


def test_a_run_like_its_baseline_passes(url, tmp_path):
    rng = np.random.default_rng(2)
    for n in range(8):
        store(url, tmp_path, n, 50.0, 20.0, rng=rng)
    same = rng.normal(50.0, 1.0, 200)
    got = judge(Results(url), subject(), {"request_rate": 20.0, "ttft_p50_ms": float(np.median(same))},
                {"ttft_ms": same})
    assert got.verdict == "pass" and not got.failed, got.line


def test_too_little_history_is_insufficient_data_and_other_workloads_do_not_count(url, tmp_path):
    for n in range(3):
        store(url, tmp_path, n, 50.0, 20.0)
    for n in range(3, 10):
        store(url, tmp_path, n, 50.0, 20.0, workload="w2")  # a different load: never comparable
    got = judge(Results(url), subject(), {"request_rate": 20.0, "ttft_p50_ms": 50.0})
    assert got.verdict == "insufficient_data" and not got.failed
    got = judge(Results(url), subject(comparable_by="name"), {"request_rate": 20.0, "ttft_p50_ms": 50.0})
    assert got.verdict == "pass"


def test_an_accepted_change_restarts_the_baseline(url, tmp_path):
    for n in range(8):
        store(url, tmp_path, n, 50.0, 20.0)
    for n in range(8, 14):
        store(url, tmp_path, n, 70.0, 20.0)  # the new normal after an upgrade
    history = series_report(Results(url), "smoke", "ttft_p50_ms", ChecksConfig())
    assert [c["run"] for c in history["change_points"]] == ["run-8"]
    got = judge(Results(url), subject(), {"request_rate": 20.0, "ttft_p50_ms": 70.5})
    assert got.verdict == "regression"
    annotate(url, "smoke", "ops", "vLLM upgrade: slower TTFT accepted", dag_run_id="run-8")
    got = judge(Results(url), subject(), {"request_rate": 20.0, "ttft_p50_ms": 70.5})
    assert got.verdict == "pass", got.line
    assert series_report(Results(url), "smoke", "ttft_p50_ms", ChecksConfig())["accepted_changes"] == ["run-8"]
