"""Each server kind's Prometheus names, keyed by the recipe's `service.kind`.

The derivations (token rate, queue depth, KV cache, latency percentiles) are written once
against these roles; a server kind only says which of its sample names plays which role.
Names are sample names as exposed (counters with their `_total`), histograms by base name.

- vLLM (and factorybench.sim, which exposes vLLM's names): docs.vllm.ai "Production Metrics".
- llama.cpp `llama-server --metrics`, checked against build 11669 (Debian forky's llama.cpp-tools):
  its library's strings, the upstream tools/server/server-context.cpp, and the real server's
  exposition (tests/unit/monitoring/fixtures/llamacpp-b11669.prom). Counters prompt_tokens_total,
  prompt_tokens_cached_total, prompt_seconds_total, tokens_predicted_total,
  tokens_predicted_seconds_total, n_decode_total, n_tokens_max, spec_decode_*; gauges
  prompt_tokens_seconds, predicted_tokens_seconds, requests_processing, requests_deferred,
  n_busy_slots_per_decode. No latency histograms; kv_cache_usage_ratio (older builds) is gone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerNames:
    prefix: str  # every sample of this server starts with it: what the archive keeps
    generation_tokens: str  # counter: output tokens generated
    prompt_tokens: str  # counter: prompt tokens processed
    running: str  # gauge: requests being served now
    waiting: str  # gauge: requests queued
    kv_usage: tuple[str, ...] = ()  # gauge 0..1, first name present wins (renamed across versions)
    requests: str | None = None  # counter: finished requests
    preemptions: str | None = None  # counter
    ttft: str | None = None  # histogram base names (seconds)
    e2e: str | None = None
    itl: tuple[str, ...] = ()


VLLM = ServerNames(
    prefix="vllm:", generation_tokens="vllm:generation_tokens_total", prompt_tokens="vllm:prompt_tokens_total",
    running="vllm:num_requests_running", waiting="vllm:num_requests_waiting",
    kv_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), requests="vllm:request_success_total",
    preemptions="vllm:num_preemptions_total", ttft="vllm:time_to_first_token_seconds",
    e2e="vllm:e2e_request_latency_seconds",
    itl=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"))

LLAMACPP = ServerNames(
    prefix="llamacpp:", generation_tokens="llamacpp:tokens_predicted_total",
    prompt_tokens="llamacpp:prompt_tokens_total", running="llamacpp:requests_processing",
    waiting="llamacpp:requests_deferred", kv_usage=("llamacpp:kv_cache_usage_ratio",))

KINDS: dict[str, ServerNames] = {"sim": VLLM, "vllm": VLLM, "llamacpp": LLAMACPP}


def for_kind(kind: str) -> ServerNames | None:
    """The kind's names, or None for servers without a Prometheus endpoint we know (Ollama...)."""
    return KINDS.get(kind)


def watched(names: ServerNames) -> tuple[str, ...]:
    """The sample names kept from every scrape (histograms with their _bucket/_sum/_count)."""
    hists = [h for h in (names.ttft, names.e2e, *names.itl) if h]
    return (names.generation_tokens, names.prompt_tokens, names.running, names.waiting, *names.kv_usage,
            *(x for x in (names.requests, names.preemptions) if x),
            *(f"{h}{suffix}" for h in hists for suffix in ("_bucket", "_sum", "_count")))


def all_names() -> set[str]:
    """Every server metric name the platform reads or shows (the dashboards may use these)."""
    return {name for n in KINDS.values() for name in watched(n)}
