"""End to end against the local fake server: every protocol, errors, workers, open loop, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factorybench.load import LoadConfig, ProfileConfig, Protocol, run_load
from factorybench.load.cli import main
from factorybench.load.config import DatasetConfig, Lengths


def _config(url: str, **kw) -> LoadConfig:
    base = dict(target=url, model="m", profile=ProfileConfig(kind="concurrent", streams=4, max_requests=12),
                dataset=DatasetConfig(pool_size=8, output_tokens=Lengths(mean=6)))
    return LoadConfig.model_validate({**base, **kw})


@pytest.mark.parametrize("protocol,stream", [
    (Protocol.OPENAI_CHAT, True), (Protocol.OPENAI_CHAT, False), (Protocol.OPENAI_COMPLETIONS, True),
    (Protocol.OLLAMA_GENERATE, True), (Protocol.OLLAMA_CHAT, True)])
def test_llm_protocols(server_url: str, protocol: Protocol, stream: bool) -> None:
    s = run_load(_config(server_url, protocol=protocol, stream=stream)).summary
    assert (s.requests, s.errors) == (12, 0)
    assert s.output_tokens_source == {"usage": 12}
    assert s.output_tokens_per_s == pytest.approx(6 * s.request_rate)
    if stream:  # fake server: TTFT 20 ms, ITL 5 ms; the role-only chunk at t=0 must not count
        assert 19 < s.ttft_p50_ms < 35 and 4 < s.itl_p50_ms < 10 and s.tokens_per_chunk == 1
    else:
        assert s.itl_ms.count == 0 and s.ttft_p50_ms == s.e2e_p50_ms


def test_embeddings_and_generic_http(server_url: str) -> None:
    s = run_load(_config(server_url, protocol=Protocol.OPENAI_EMBEDDINGS)).summary
    assert (s.requests, s.errors) == (12, 0) and s.ttft_p50_ms > 19
    http = {"path": "/echo", "body": '{{"q": {prompt_json}, "i": {i}}}'}
    s = run_load(_config(server_url, protocol=Protocol.HTTP_JSON, http=http)).summary
    assert (s.requests, s.errors) == (12, 0) and s.e2e_p50_ms > 19


@pytest.mark.parametrize("model,error", [("err-429", "http_429"), ("err-500", "http_5xx"), ("err-404", "http_4xx")])
def test_http_errors_are_classified(server_url: str, model: str, error: str) -> None:
    result = run_load(_config(server_url, model=model))
    assert result.summary.errors_by_class == {error: 12} and result.summary.requests == 0
    assert result.samples[0].error_detail


def test_connect_dropped_and_timeout_errors(server_url: str) -> None:
    assert run_load(_config("http://127.0.0.1:9")).summary.errors_by_class == {"connect": 12}
    assert run_load(_config(server_url, model="drop")).summary.errors_by_class == {"dropped": 12}
    s = run_load(_config(server_url, model="stall", timeout_s=0.2)).summary
    assert s.errors_by_class == {"timeout": 12}


def test_long_lines_split_writes_and_missing_usage(server_url: str) -> None:
    s = run_load(_config(server_url, model="long-line")).summary
    assert (s.requests, s.errors) == (12, 0)
    s = run_load(_config(server_url, model="split")).summary
    assert (s.requests, s.errors, s.tokens_per_chunk) == (12, 0, 1)
    s = run_load(_config(server_url, model="no-usage")).summary
    assert s.output_tokens_source == {"counted_chunks": 12}


def test_open_loop_with_cap_reports_queue_time_and_warmup(server_url: str) -> None:
    profile = ProfileConfig(kind="poisson", rate=400, max_requests=40, max_concurrency=2, warmup_requests=4)
    result = run_load(_config(server_url, profile=profile))
    s = result.summary
    assert s.requests == 36 and s.warmup_requests == 4
    assert s.queue_ms.p90 > 50  # 2 slots, ~60 ms per request, offered 400/s: most requests wait
    assert s.lateness_ms.p50 < 5  # waiting for the cap is not client lateness
    planned = sorted(x.planned_s for x in result.samples)
    assert planned == sorted(planned) and len(set(planned)) == 40


def test_two_worker_processes_split_the_schedule(server_url: str) -> None:
    result = run_load(_config(server_url, workers=2, profile=ProfileConfig(kind="constant", rate=100,
                                                                            max_requests=30)))
    assert sorted(s.index for s in result.samples) == list(range(30))
    assert {s.worker for s in result.samples} == {0, 1}
    assert result.summary.requests == 30 and result.summary.client.processes == 2
    assert result.summary.lateness_ms.p50 < 5  # both processes agreed on one start instant


def test_sweep_runs_every_step(server_url: str) -> None:
    profile = ProfileConfig(kind="sweep", streams=4, sweep_points=2, max_requests=8)
    result = run_load(_config(server_url, profile=profile))
    assert len(result.steps) == 4 and {s.step for s in result.samples} == {0, 1, 2, 3}
    assert result.summary.requests == 32


def test_cli_run_writes_results(server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--target", server_url, "--model", "m", "--profile", "concurrent", "--streams", "2",
                 "--max-requests", "6", "--output-tokens", "4", "--dataset", "bundled", "--out", str(tmp_path),
                 "--format", "jsonl"])
    assert code == 0 and "concurrent 2: 6 ok" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["summary"]["requests"] == 6 and summary["config"]["dataset"]["kind"] == "bundled"
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 6


def test_progress_lines_on_stderr(server_url: str, capsys: pytest.CaptureFixture) -> None:
    profile = ProfileConfig(kind="concurrent", streams=2, max_requests=12)
    run_load(_config(server_url, profile=profile, progress_s=0.05))
    err = capsys.readouterr().err
    assert "[load concurrent 2 #0]" in err and "completed" in err and "ttft p50" in err
