"""CI's view: `factorybench trigger` against a live Airflow API server, judged by its exit code.

History comes from `factorybench run` (the same pipeline without Airflow) into the stack's results
database; then three triggered runs: one like its history (exit 0), one with a regression planted by a
conf override that slows the simulator's first token from 50 to 80 ms (exit 1), and one whose service
cannot start (exit 2).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]


def fb(stack, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**stack.env, "FB_AIRFLOW_URL": stack.base, "FB_AIRFLOW_USER": stack.user,
           "FB_AIRFLOW_PASSWORD": stack.password}
    return subprocess.run([sys.executable, "-m", "factorybench.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_trigger_exit_codes_pass_regression_failure(airflow_stack):
    for _ in range(5):  # the baseline: checks.min_runs comparable runs
        done = fb(airflow_stack, "run", "smoke", "--set", "max_requests=24", "--json")
        assert done.returncode == 0, done.stdout or done.stderr[-3000:]
        assert json.loads(done.stdout)["status"] == "success"
    airflow_stack.wait_for_dag("factorybench_smoke")

    ok = fb(airflow_stack, "trigger", "smoke", "--conf", "max_requests=24", "--ci-ref", "pr-17@abc123", "--json")
    out = json.loads(ok.stdout or "{}")
    assert ok.returncode == 0, ok.stdout + ok.stderr[-3000:]
    # Exit 0: nothing regressed. On a busy 2-core box a metric may come out "insufficient_data" (a shift seen,
    # not significant) rather than "pass": that never fails a run, and only a regression may.
    assert out["state"] == "success" and out["verdict"] in ("pass", "insufficient_data"), out["verdict_line"]
    assert "regression" not in out["verdict_line"] and out["report_url"].endswith("/report")

    slow = fb(airflow_stack, "trigger", "smoke", "--conf", "max_requests=24",
              "--conf", 'service_args=["--ttft-ms", "80"]', "--ci-ref", "pr-18@def456")
    assert slow.returncode == 1, slow.stdout + slow.stderr[-3000:]
    assert "regression" in slow.stdout and "ttft_p50_ms" in slow.stdout and "baseline" in slow.stdout

    broken = fb(airflow_stack, "trigger", "smoke", "--conf", 'service_args=["--no-such-option"]', "--json")
    out = json.loads(broken.stdout or "{}")
    assert broken.returncode == 2, broken.stdout + broken.stderr[-3000:]
    assert out["state"] == "failed" and "FAILED" in out["message"]

    # What CI recorded is in the results: the trigger kind, the CI reference, the verdicts.
    history = fb(airflow_stack, "results", "--recipe", "smoke", "--json")
    runs = {r["dag_run_id"]: r for r in json.loads(history.stdout)}
    ci = [r for r in runs.values() if r["trigger"] == "ci"]
    assert {r["ci_ref"] for r in ci} == {"pr-17@abc123", "pr-18@def456", None}
    assert sorted(r["verdict"] or r["status"] for r in ci) == ["failed", "pass", "regression"]
    assert sum(r["trigger"] == "cli" for r in runs.values()) == 5
