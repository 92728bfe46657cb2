"""What goes to the Pushgateway: names, labels, verdict codes, and HELP texts that stay the same across
runs and groups (the Pushgateway refuses a push whose HELP differs from what it holds)."""

from __future__ import annotations

import math

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from factorybench.load.samples import ErrorClass, Sample
from factorybench.monitoring import push
from factorybench.monitoring.live import LiveWatcher
from factorybench.results.metrics import CATALOG, value_of


def samples_of(registry) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def helps(registry) -> dict[str, str]:
    return {f.name: f.documentation for f in text_string_to_metric_families(generate_latest(registry).decode())}


def test_a_runs_summary_with_steps_status_and_verdicts():
    judged = {"verdict": "improvement", "verdicts": {"metrics": [
        {"metric": "output_tokens_per_s", "verdict": "improvement"}, {"metric": "ttft_p99_ms", "verdict": "pass"},
        {"metric": "e2e_p50_ms", "verdict": "insufficient_data"}]}}
    registry = push.run_registry("r1", "success", [value_of("output_tokens_per_s", 50.5), value_of("errors", None)],
                                 [(0, [value_of("output_tokens_per_s", 40.0)])], judged, 1700000000.0, "slurm_sacct")
    got = samples_of(registry)
    assert got[("fb_output_tokens_per_s", (("run_id", "r1"), ("step", "all")))] == 50.5
    assert got[("fb_output_tokens_per_s", (("run_id", "r1"), ("step", "0")))] == 40.0
    assert not any(name == "fb_errors" for name, _ in got)  # no value, no series
    assert got[("fb_run_valid", (("run_id", "r1"),))] == 1.0 and got[("fb_run_verdict", (("run_id", "r1"),))] == 1.0
    assert got[("fb_verdict", (("metric", "ttft_p99_ms"), ("run_id", "r1")))] == 0.0
    assert math.isnan(got[("fb_verdict", (("metric", "e2e_p50_ms"), ("run_id", "r1")))])
    assert got[("fb_energy_source_info", (("run_id", "r1"), ("source", "slurm_sacct")))] == 1.0
    assert got[("fb_run_finished_timestamp_seconds", (("run_id", "r1"),))] == 1700000000.0


def test_help_texts_do_not_depend_on_the_run():
    a = helps(push.run_registry("a", "success", [value_of("ttft_p99_ms", 1.0)], [], {}, 1.0))
    b = helps(push.run_registry("b", "invalid", [value_of("ttft_p99_ms", 9.0)], [], {"verdict": "regression"}, 2.0))
    assert a == b and "[ms; client; better: lower]" in a["fb_ttft_p99_ms"]


def test_produced_names_cover_the_catalog_and_live_progress():
    names = push.produced_names()
    assert {push.name_of(m) for m in CATALOG} <= names and set(push.LIVE) <= names
    assert "fb_server_generation_tokens" in names and "push_time_seconds" in names


def sample(i: int, ttft: float, error: ErrorClass | None = None) -> Sample:
    return Sample(index=i, planned_s=0, sent_s=0, done_s=1, ttft_ms=ttft, e2e_ms=ttft * 2, output_tokens=10,
                  error=error, step=1)


def test_live_snapshot_of_the_last_interval():
    live = LiveWatcher("http://127.0.0.1:9", "smoke", "r1", 1.0)
    for i, ttft in enumerate([10.0, 20.0, 30.0]):
        live.on_sample(None, sample(i, ttft))
    live.on_sample(None, sample(3, 0.0, ErrorClass.TIMEOUT))
    live._last -= 2.0  # two seconds since the previous snapshot
    snap = live.snapshot()
    assert snap["requests_done"] == 4 and snap["errors"] == 1 and snap["step"] == 1
    assert 1.9 < snap["request_rate"] < 2.1 and 14.5 < snap["output_tokens_per_s"] < 15.1
    assert snap["ttft_p50_ms"] == 20.0 and snap["e2e_p50_ms"] == 40.0
    assert set(samples_of(push.live_registry(snap, 1))) and {f"fb_live_{k}" for k in snap} <= set(push.LIVE)
    later = live.snapshot(active=False)
    assert later["active"] == 0.0 and later["request_rate"] == 0.0 and "ttft_p50_ms" not in later


def test_a_gateway_that_is_down_never_fails_the_run():
    live = LiveWatcher("http://127.0.0.1:9", "smoke", "r1", 1.0, timeout_s=1.0)
    live._push(live.snapshot())
    live._end()
    seen = live.observed().files["pushes.json"]
    assert seen["pushes"] == 0 and len(seen["failures"]) == 2
