"""Every protocol against the project's serving simulator (several tokens per chunk, usage everywhere)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator

import pytest
from conftest import start_server

from factorybench.load import LoadConfig, ProfileConfig, Protocol, run_load

pytestmark = pytest.mark.skipif(importlib.util.find_spec("factorybench.sim") is None,
                                reason="factorybench.sim is not installed")


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    proc, url = start_server([sys.executable, "-m", "factorybench.sim", "--port", "0", "--ttft-ms", "20",
                              "--itl-ms", "5", "--tokens-per-chunk", "2"], "listening on")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize("protocol", [Protocol.OPENAI_CHAT, Protocol.OPENAI_COMPLETIONS, Protocol.OLLAMA_GENERATE,
                                      Protocol.OLLAMA_CHAT])
def test_streaming_protocols_count_tokens_per_chunk(sim_url: str, protocol: Protocol) -> None:
    config = LoadConfig(target=sim_url, model="sim-model", protocol=protocol,
                        profile=ProfileConfig(kind="concurrent", streams=4, max_requests=8),
                        dataset={"output_tokens": {"mean": 9}, "pool_size": 8})
    s = run_load(config).summary
    assert (s.requests, s.errors) == (8, 0) and s.output_tokens_source == {"usage": 8}
    assert s.tokens_per_chunk == pytest.approx(9 / 5)  # 1 token, then 2 per chunk
    assert 19 < s.ttft_p50_ms < 40 and 8 < s.itl_p50_ms < 15  # a chunk every 2 x 5 ms


def test_embeddings_use_server_prompt_count(sim_url: str) -> None:
    config = LoadConfig(target=sim_url, model="sim-model", protocol=Protocol.OPENAI_EMBEDDINGS,
                        profile=ProfileConfig(kind="concurrent", streams=2, max_requests=4))
    result = run_load(config)
    assert result.summary.requests == 4
    assert {s.prompt_tokens_source.value for s in result.samples if s.prompt_tokens_source} == {"usage"}
