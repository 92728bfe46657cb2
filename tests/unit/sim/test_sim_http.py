"""The HTTP surface: OpenAI SSE and JSON, Ollama NDJSON, embeddings, queue, faults, metrics."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import sse_events

CHAT = {"model": "m", "messages": [{"role": "user", "content": "one two three"}]}


async def test_chat_stream_format_and_usage(sim, session):
    async with sim(model="sim-model") as s:
        body = {**CHAT, "stream": True, "max_tokens": 5, "stream_options": {"include_usage": True}}
        async with session.post(s.url + "/v1/chat/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            events = sse_events(await r.read())
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"]
               and c["model"] == "m" and isinstance(c["created"], int) for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = chunks[1:6]
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    assert len(text.split()) == 5
    assert chunks[6]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": "length"}
    assert chunks[7]["choices"] == []
    assert chunks[7]["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


async def test_completions_stream_without_usage_and_tokens_per_chunk(sim, session):
    async with sim(tokens_per_chunk=3) as s:
        body = {"prompt": "hi", "stream": True, "max_tokens": 7}
        async with session.post(s.url + "/v1/completions", json=body) as r:
            events = sse_events(await r.read())
    chunks = [json.loads(e) for e in events[:-1]]
    assert [len(c["choices"][0]["text"].split()) for c in chunks] == [1, 3, 3, 0]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c and c["object"] == "text_completion" for c in chunks)


async def test_non_streaming_objects(sim, session):
    async with sim() as s:
        async with session.post(s.url + "/v1/chat/completions",
                                json={**CHAT, "max_completion_tokens": 4}) as r:
            chat = await r.json()
        async with session.post(s.url + "/v1/completions", json={"prompt": [1, 2, 3]}) as r:
            comp = await r.json()
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert len(chat["choices"][0]["message"]["content"].split()) == 4
    assert chat["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert comp["usage"]["prompt_tokens"] == 3 and comp["usage"]["completion_tokens"] == 16


@pytest.mark.parametrize("body", [{"messages": []}, {**CHAT, "max_tokens": 0}, {**CHAT, "n": 2}])
async def test_bad_requests_get_400(sim, session, body):
    async with sim() as s:
        async with session.post(s.url + "/v1/chat/completions", json=body) as r:
            assert r.status == 400
            assert "message" in (await r.json())["error"]


async def test_ttft_measured_by_client_within_generous_bounds(sim, session):
    async with sim(ttft_ms=60, prefill_ms_per_token=10, itl_ms=1) as s:
        body = {**CHAT, "stream": True, "max_tokens": 2}  # 3 prompt tokens: truth 90 ms
        t0 = time.perf_counter()
        async with session.post(s.url + "/v1/chat/completions", json=body) as r:
            async for data in r.content.iter_any():
                if b'"content":"' in data.replace(b'"content":""', b""):
                    ttft = time.perf_counter() - t0
                    break
    assert 0.090 <= ttft < 0.290


async def test_ollama_generate_ndjson_and_final_stats(sim, session):
    async with sim() as s:
        body = {"model": "m", "prompt": "a b c d", "options": {"num_predict": 4}}
        async with session.post(s.url + "/api/generate", json=body) as r:
            assert r.headers["Content-Type"].startswith("application/x-ndjson")
            lines = [json.loads(x) for x in (await r.read()).splitlines()]
    assert [x["done"] for x in lines] == [False] * 4 + [True]
    assert len("".join(x["response"] for x in lines).split()) == 4
    final = lines[-1]
    assert final["eval_count"] == 4 and final["prompt_eval_count"] == 4
    assert final["done_reason"] == "length"
    for key in ("eval_duration", "prompt_eval_duration", "load_duration", "total_duration"):
        assert isinstance(final[key], int) and final[key] >= 0
    assert final["prompt_eval_duration"] >= 5_000_000  # ttft 5 ms, in ns
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]


async def test_ollama_chat_stream_and_non_stream(sim, session):
    async with sim() as s:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "options": {"num_predict": 3}}
        async with session.post(s.url + "/api/chat", json=body) as r:
            lines = [json.loads(x) for x in (await r.read()).splitlines()]
        async with session.post(s.url + "/api/chat", json={**body, "stream": False}) as r:
            whole = await r.json()
        async with session.get(s.url + "/api/tags") as r:
            tags = await r.json()
        async with session.get(s.url + "/api/version") as r:
            assert "version" in await r.json()
    assert lines[0]["message"]["role"] == "assistant" and not lines[0]["done"]
    assert lines[-1]["done"] and lines[-1]["eval_count"] == 3
    assert whole["done"] and len(whole["message"]["content"].split()) == 3
    assert whole["eval_count"] == 3
    assert tags["models"][0]["name"] == "sim-model"


async def test_embeddings_shape_and_determinism(sim, session):
    async with sim(embed_dim=16, embed_overhead_ms=1) as s:
        url = s.url + "/v1/embeddings"
        async with session.post(url, json={"input": ["a b", "c"]}) as r:
            first = await r.json()
        async with session.post(url, json={"input": "a b"}) as r:
            single = await r.json()
        async with session.post(url, json={"input": "a b", "encoding_format": "base64"}) as r:
            assert isinstance((await r.json())["data"][0]["embedding"], str)
    vecs = [d["embedding"] for d in first["data"]]
    assert [d["index"] for d in first["data"]] == [0, 1]
    assert all(len(v) == 16 for v in vecs)
    assert sum(x * x for x in vecs[0]) == pytest.approx(1.0)
    assert vecs[0] != vecs[1]
    assert single["data"][0]["embedding"] == vecs[0]
    assert first["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


async def test_models_and_health(sim, session):
    async with sim(model="mx") as s:
        async with session.get(s.url + "/v1/models") as r:
            assert (await r.json())["data"][0]["id"] == "mx"
        async with session.get(s.url + "/health") as r:
            assert r.status == 200


async def test_startup_delay_gates_health_and_inference(sim, session):
    async with sim(startup_delay_s=0.3) as s:
        async with session.get(s.url + "/health") as r:
            assert r.status == 503
        async with session.post(s.url + "/v1/chat/completions", json=CHAT) as r:
            assert r.status == 503
        await asyncio.sleep(0.35)
        async with session.get(s.url + "/health") as r:
            assert r.status == 200


@pytest.mark.parametrize("path,body,status", [
    ("/v1/chat/completions", CHAT, 429),
    ("/api/generate", {"prompt": "x", "stream": False}, 503),
])
async def test_full_queue_rejects(sim, session, path, body, status):
    async with sim(max_num_seqs=1, max_queue=1, ttft_ms=300) as s:
        url = s.url + path
        running = asyncio.create_task(session.post(url, json=body))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(session.post(url, json=body))
        await asyncio.sleep(0.05)
        assert s.engine.scheduler.running == 1 and s.engine.scheduler.waiting == 1
        async with session.post(url, json=body) as r:
            assert r.status == status
        for t in (running, waiting):
            resp = await t
            assert resp.status == 200
            resp.release()


async def test_error_rate_one_gives_500(sim, session):
    async with sim(error_rate=1.0) as s:
        async with session.post(s.url + "/v1/chat/completions", json=CHAT) as r:
            assert r.status == 500
            assert (await r.json())["error"]["code"] == 500
        async with session.post(s.url + "/api/generate", json={"prompt": "x"}) as r:
            assert r.status == 500 and "error" in await r.json()


async def test_drop_rate_one_breaks_the_stream(sim, session):
    async with sim(drop_rate=1.0) as s:
        body = {**CHAT, "stream": True, "max_tokens": 8}
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(s.url + "/v1/chat/completions", json=body) as r:
                await r.read()
        with pytest.raises(aiohttp.ClientError):
            async with session.post(s.url + "/v1/completions", json={"prompt": "x"}) as r:
                await r.read()


async def test_stall_rate_one_pauses_mid_stream(sim, session):
    async with sim(stall_rate=1.0, stall_ms=150, ttft_ms=1, itl_ms=1) as s:
        body = {**CHAT, "stream": True, "max_tokens": 4}
        t0 = time.perf_counter()
        async with session.post(s.url + "/v1/chat/completions", json=body) as r:
            events = sse_events(await r.read())
        assert time.perf_counter() - t0 >= 0.150
    assert events[-1] == b"[DONE]"


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_parse_and_move(sim, session):
    async with sim(model="mm") as s:
        async with session.get(s.url + "/metrics") as r:
            before = _samples(await r.text())
        body = {**CHAT, "max_tokens": 6}
        async with session.post(s.url + "/v1/chat/completions", json=body) as r:
            await r.read()
        async with session.get(s.url + "/metrics") as r:
            after = _samples(await r.text())
    m = (("model_name", "mm"),)
    for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                  "vllm:kv_cache_usage_perc", "vllm:num_preemptions_total"):
        assert after[(gauge, m)] == 0
    assert before[("vllm:prompt_tokens_total", m)] == 0
    assert after[("vllm:prompt_tokens_total", m)] == 3
    assert after[("vllm:generation_tokens_total", m)] == 6
    ok = ("vllm:request_success_total", (("finished_reason", "length"), ("model_name", "mm")))
    assert before[ok] == 0 and after[ok] == 1
    assert after[("vllm:time_to_first_token_seconds_count", m)] == 1
    assert after[("vllm:time_to_first_token_seconds_sum", m)] >= 0.005
    assert after[("vllm:inter_token_latency_seconds_count", m)] == 5
    assert after[("vllm:e2e_request_latency_seconds_count", m)] == 1
    assert after[("vllm:request_queue_time_seconds_count", m)] == 1


async def test_running_gauge_and_kv_usage_during_a_request(sim, session):
    async with sim(ttft_ms=200, kv_cache_tokens=100) as s:
        task = asyncio.create_task(session.post(s.url + "/v1/chat/completions",
                                                json={**CHAT, "max_tokens": 7}))
        await asyncio.sleep(0.08)
        async with session.get(s.url + "/metrics") as r:
            during = _samples(await r.text())
        (await task).release()
    m = (("model_name", "sim-model"),)
    assert during[("vllm:num_requests_running", m)] == 1
    assert during[("vllm:kv_cache_usage_perc", m)] == pytest.approx(0.10)
