"""Sanity checks: a server that ignores the prompt, stops early or serves another model is flagged."""

from __future__ import annotations

import json

import pytest

from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.cli import report
from factorybench.load.config import DatasetConfig, Lengths, Protocol
from factorybench.load.dataset import load_dataset
from factorybench.load.protocols import Adapter


def _config(url: str, model: str, **kw) -> LoadConfig:
    base = dict(target=url, model=model, profile=ProfileConfig(kind="concurrent", streams=2, max_requests=8),
                dataset=DatasetConfig(pool_size=8, prompt_tokens=Lengths(mean=64), output_tokens=Lengths(mean=6)))
    return LoadConfig.model_validate({**base, **kw})


def _checks(summary) -> dict[str, bool]:
    return {c.name: c.passed for c in summary.sanity}


def test_a_healthy_server_passes_every_check(server_url: str) -> None:
    s = run_load(_config(server_url, "m", ignore_eos=True)).summary
    assert _checks(s) == {"prompt_tokens": True, "output_tokens": True, "model": True}
    assert not [r for r in s.invalid_reasons if "sanity" in r]


def test_a_server_that_ignores_the_prompt_makes_the_run_invalid(server_url: str) -> None:
    """Like llama.cpp with --chat-template gemma: 3 prompt tokens for a 64-token prompt."""
    result = run_load(_config(server_url, "ignore-prompt"))
    s = result.summary
    check = next(c for c in s.sanity if c.name == "prompt_tokens")
    assert not check.passed and "3.0 prompt tokens per request" in check.observed and "64.0" in check.expected
    assert not s.valid and any(r.startswith("sanity check prompt_tokens failed") for r in s.invalid_reasons)
    assert "INVALID: sanity check prompt_tokens failed" in report(result)


def test_warn_only_reports_the_failure_but_keeps_the_run_valid(server_url: str) -> None:
    s = run_load(_config(server_url, "ignore-prompt", sanity={"warn_only": ["prompt_tokens"]})).summary
    assert _checks(s)["prompt_tokens"] is False and next(c for c in s.sanity if not c.passed).warn_only
    assert not [r for r in s.invalid_reasons if "sanity" in r]


def test_early_stops_are_flagged_only_when_fixed_lengths_were_asked(server_url: str) -> None:
    s = run_load(_config(server_url, "early-stop", ignore_eos=True)).summary
    check = next(c for c in s.sanity if c.name == "output_tokens")
    assert not check.passed and check.observed.startswith("8 of 8 requests stopped before max_tokens")
    assert "output_tokens" not in _checks(run_load(_config(server_url, "early-stop")).summary)


def test_another_model_in_the_responses_is_flagged(server_url: str) -> None:
    s = run_load(_config(server_url, "other-model")).summary
    check = next(c for c in s.sanity if c.name == "model")
    assert not check.passed and "'someone-else'" in check.observed and check.expected == "'other-model'"


def test_ignore_eos_goes_into_openai_bodies_only() -> None:
    for protocol, expected in ((Protocol.OPENAI_CHAT, True), (Protocol.OPENAI_COMPLETIONS, True),
                               (Protocol.OLLAMA_CHAT, None)):
        config = LoadConfig(target="http://x", protocol=protocol, ignore_eos=True, dataset=DatasetConfig(pool_size=2))
        body = json.loads(Adapter(config, load_dataset(config.dataset)).request(0)[1] or b"")
        assert body.get("ignore_eos") is expected


@pytest.mark.parametrize("batch", [1, 4])
def test_embeddings_batches_count_texts(server_url: str, batch: int) -> None:
    config = _config(server_url, "m", protocol="openai-embeddings", embeddings={"batch_size": batch})
    result = run_load(config)
    s = result.summary
    assert (s.requests, s.errors) == (8, 0) and s.ops == {"embed": 8}
    assert s.embeddings_per_s == pytest.approx(batch * s.request_rate, rel=0.01)
    assert _checks(s) == {"prompt_tokens": True, "model": True}
    assert {x.items for x in result.samples} == {batch}
    texts = json.loads(Adapter(config, load_dataset(config.dataset)).request(1)[1] or b"")["input"]
    assert [t.split()[0] for t in (texts if batch > 1 else [texts])] == [f"p{k}" for k in range(batch, 2 * batch)]
