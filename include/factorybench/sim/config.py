"""Configuration of the serving simulator.

Every field is a CLI flag (``--ttft-ms``, ``--max-num-seqs``...) and a key of a
YAML/JSON config file, so a recipe can describe the simulated service exactly and a
benchmark can compare what it measures with what was configured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class SimConfig(BaseModel):
    """What the simulated server looks like and how fast it is.

    Truth for a request with P prompt tokens and N output tokens, no queueing, no jitter:
    TTFT = ttft_ms + prefill_ms_per_token * P, E2E = TTFT + (N - 1) * itl_ms * slowdown factor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    model: str = Field("sim-model", description="served model name (echoed in responses)")
    seed: int = Field(0, description="seed of every random draw (text, jitter, faults)")

    # Latency model.
    ttft_ms: float = Field(
        50.0, ge=0, validation_alias=AliasChoices("ttft_ms", "ttft_overhead_ms"),
        description="fixed part of the time to first token (alias ttft_overhead_ms)")
    prefill_ms_per_token: float = Field(0.0, ge=0, description="TTFT added per prompt token")
    ttft_jitter: float = Field(0.0, ge=0, description="relative std of the TTFT (gaussian, clipped at 0)")
    itl_ms: float = Field(10.0, ge=0, description="inter-token latency")
    itl_jitter: float = Field(0.0, ge=0, description="relative std of each ITL (gaussian, clipped at 0)")
    tokens_per_chunk: int = Field(
        1, ge=1, description="tokens per streamed chunk after the first (vLLM stream_interval)")
    slowdown: float = Field(
        0.0, ge=0, description="ITL is multiplied by 1 + slowdown * running / max_num_seqs")
    default_max_tokens: int = Field(16, ge=1, description="output length when the request sets none")

    # Scheduler.
    max_num_seqs: int = Field(256, ge=1, description="requests running at once (vLLM max_num_seqs)")
    max_queue: int = Field(
        512, ge=0, description="waiting requests beyond which 429 (OpenAI) / 503 (Ollama) is returned")
    kv_cache_tokens: int = Field(
        524288, ge=1, description="KV capacity in tokens; a request reserves prompt + max_tokens")

    # Embeddings.
    embed_dim: int = Field(384, ge=1, description="embedding dimension")
    embed_overhead_ms: float = Field(5.0, ge=0, description="fixed latency of an embeddings request")
    embed_ms_per_token: float = Field(0.0, ge=0, description="embedding latency per input token")

    # Faults.
    error_rate: float = Field(0.0, ge=0, le=1, description="probability of an HTTP 500")
    stall_rate: float = Field(0.0, ge=0, le=1, description="probability of one mid-stream pause")
    stall_ms: float = Field(1000.0, ge=0, description="length of that pause")
    drop_rate: float = Field(0.0, ge=0, le=1, description="probability of closing the connection mid-stream")
    startup_delay_s: float = Field(0.0, ge=0, description="/health answers 503 until this has elapsed")

    def ttft_s(self, prompt_tokens: int) -> float:
        """The configured (jitter-free) TTFT, the truth a load generator is checked against."""
        return (self.ttft_ms + self.prefill_ms_per_token * prompt_tokens) / 1000.0

    def e2e_s(self, prompt_tokens: int, output_tokens: int) -> float:
        """The configured E2E latency of one request running alone (slowdown factor 1 + slowdown/max_num_seqs)."""
        factor = 1.0 + self.slowdown / self.max_num_seqs
        return self.ttft_s(prompt_tokens) + max(0, output_tokens - 1) * self.itl_ms * factor / 1000.0


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping (JSON is YAML, but a .json file gets the stricter parser)."""
    p = Path(path)
    text = p.read_text()
    data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of SimConfig fields, got {type(data).__name__}")
    return data
