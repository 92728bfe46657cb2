"""The server kinds' names against real expositions: llama.cpp build 11669 as recorded from Debian forky's
llama-server (fixtures/llamacpp-b11669.prom), and the simulator, which exposes vLLM's names."""

from __future__ import annotations

from pathlib import Path

from factorybench.monitoring import series
from factorybench.monitoring.names import LLAMACPP, VLLM, for_kind, watched
from factorybench.sim.metrics import SimMetrics

RECORDED = Path(__file__).with_name("fixtures") / "llamacpp-b11669.prom"


def exposed(text: str) -> set[str]:
    return {name for name, _ in series.parse(text, 0.0).samples}


def test_llamacpp_b11669_exposes_every_role_but_the_kv_cache_ratio():
    names = exposed(RECORDED.read_text())
    assert set(watched(LLAMACPP)) - names == {"llamacpp:kv_cache_usage_ratio"}  # gone since older builds
    kept = series.parse(series.keep_lines(RECORDED.read_text(), watched(LLAMACPP)), 1.0)
    assert kept.total("llamacpp:tokens_predicted_total") == 128 and kept.total("llamacpp:requests_processing") == 0


def test_the_simulator_exposes_vllms_names():
    class Idle:
        running, waiting, kv_usage = 2, 1, 0.25

    names = exposed(SimMetrics("m", Idle()).render().decode())
    aliases = {"vllm:gpu_cache_usage_perc", *(f"vllm:time_per_output_token_seconds{s}"
                                              for s in ("_bucket", "_sum", "_count"))}  # older vLLM names
    assert set(watched(VLLM)) - names == aliases


def test_kinds():
    assert for_kind("sim") is for_kind("vllm") is VLLM and for_kind("llamacpp") is LLAMACPP
    assert for_kind("ollama") is None  # no Prometheus endpoint
