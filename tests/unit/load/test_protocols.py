"""Stream framing and event meaning: split lines, long lines, role-only chunks, usage, NDJSON."""

from __future__ import annotations

import json

import pytest

from factorybench.load.config import DatasetConfig, LoadConfig, Protocol
from factorybench.load.dataset import load_dataset
from factorybench.load.protocols import Adapter, LineSplitter
from factorybench.load.samples import TokenSource


def _sse(obj: dict | str) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def _adapter(protocol: Protocol, stream: bool = True) -> Adapter:
    config = LoadConfig(target="http://x", protocol=protocol, model="m", stream=stream,
                        dataset=DatasetConfig(pool_size=4))
    return Adapter(config, load_dataset(config.dataset))


ROLE = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
EMPTY = {"choices": [{"delta": {}}]}
TOKEN = {"choices": [{"delta": {"content": "hi"}}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}}


def test_line_splitter_every_split_point() -> None:
    data = b"first line\nsecond\r\n\nthird-without-end"
    for cut in range(len(data) + 1):
        s = LineSplitter()
        lines = s.feed(data[:cut]) + s.feed(data[cut:])
        assert lines == [b"first line", b"second\r", b""]
        assert s.flush() == b"third-without-end"


def test_line_splitter_very_long_line_in_small_chunks() -> None:
    line = b"x" * 3_000_000
    s = LineSplitter()
    out = []
    for i in range(0, len(line), 4096):
        out += s.feed(line[i:i + 4096])
    out += s.feed(b"\nnext\n")
    assert out == [line, b"next"]


def test_ttft_skips_role_only_and_empty_chunks_and_usage_chunk() -> None:
    reader = _adapter(Protocol.OPENAI_CHAT).reader()
    reader.feed(_sse(ROLE), 1.0)
    reader.feed(_sse(EMPTY), 1.5)
    reader.feed(_sse(TOKEN), 2.0)
    reader.feed(_sse(TOKEN), 3.0)
    reader.feed(_sse(USAGE) + _sse("[DONE]"), 9.0)
    reader.close(9.5)
    st = reader.state
    assert st.times == [2.0, 3.0]  # first content at 2.0; the usage chunk at 9.0 is not content
    assert (st.prompt_tokens, st.output_tokens, st.error) == (11, 2, None)


def test_events_split_byte_by_byte_keep_arrival_times() -> None:
    reader = _adapter(Protocol.OPENAI_CHAT).reader()
    payload = _sse(ROLE) + _sse(TOKEN) + _sse(TOKEN)
    for n, byte in enumerate(payload):
        reader.feed(bytes([byte]), float(n))
    reader.close(1e9)
    ends = [i for i in range(len(payload)) if payload[:i + 1].endswith(b"\n\n")]
    assert reader.state.times == [float(ends[1]), float(ends[2])]  # time of the byte completing each event


def test_sse_multiline_data_crlf_and_comments() -> None:
    reader = _adapter(Protocol.OPENAI_COMPLETIONS).reader()
    reader.feed(b': keep-alive\r\ndata: {"choices": [{"text":\r\ndata: "abc"}]}\r\n\r\n', 1.0)
    reader.close(2.0)
    assert reader.state.times == [1.0] and reader.state.chars == 3


def test_one_megabyte_content_line() -> None:
    reader = _adapter(Protocol.OPENAI_CHAT).reader()
    data = _sse({"choices": [{"delta": {"content": "y" * 1_000_000}}]})
    for i in range(0, len(data), 65536):
        reader.feed(data[i:i + 65536], float(i))
    reader.close(0)
    assert reader.state.chars == 1_000_000 and reader.state.error is None


def test_error_event_and_bad_json_are_protocol_errors() -> None:
    reader = _adapter(Protocol.OPENAI_CHAT).reader()
    reader.feed(_sse({"error": {"message": "boom"}}), 1.0)
    assert "boom" in (reader.state.error or "")
    reader = _adapter(Protocol.OPENAI_CHAT).reader()
    reader.feed(b"data: {not json\n\n", 1.0)
    assert reader.state.error and reader.state.error.startswith("invalid JSON")


@pytest.mark.parametrize("protocol,key", [(Protocol.OLLAMA_GENERATE, "response"), (Protocol.OLLAMA_CHAT, "message")])
def test_ollama_ndjson_done_stats(protocol: Protocol, key: str) -> None:
    adapter = _adapter(protocol)
    reader = adapter.reader()
    token = {"response": "a"} if key == "response" else {"message": {"role": "assistant", "content": "a"}}
    lines = b"".join(json.dumps({**token, "done": False}).encode() + b"\n" for _ in range(3))
    lines += json.dumps({"done": True, "eval_count": 3, "prompt_eval_count": 9, "eval_duration": 5}).encode()
    reader.feed(lines[:10], 1.0)
    reader.feed(lines[10:], 2.0)
    reader.close(3.0)  # the done line has no trailing newline: flushed at close
    assert reader.state.times == [2.0, 2.0, 2.0]  # no line was complete in the first 10 bytes
    assert adapter.token_counts(reader.state, 0) == (9, TokenSource.USAGE, 3, TokenSource.USAGE)


def test_token_sources_fall_back_without_usage() -> None:
    adapter = _adapter(Protocol.OPENAI_CHAT)
    reader = adapter.reader()
    reader.feed(_sse(TOKEN) * 5, 1.0)
    reader.close(2.0)
    prompt, psrc, out, osrc = adapter.token_counts(reader.state, 0)
    assert (psrc, out, osrc) == (TokenSource.ESTIMATE, 5, TokenSource.COUNTED_CHUNKS)
    adapter = _adapter(Protocol.OPENAI_CHAT, stream=False)
    reader = adapter.reader()
    reader.feed(json.dumps({"choices": [{"message": {"content": "abcdefgh" * 4}}]}).encode(), 1.0)
    reader.close(1.5)
    assert reader.state.times == [1.5]
    assert adapter.token_counts(reader.state, 0)[2:] == (8, TokenSource.ESTIMATE)


def test_request_bodies() -> None:
    chat = json.loads(_adapter(Protocol.OPENAI_CHAT).request(0)[1] or b"")
    assert chat["stream_options"] == {"include_usage": True} and chat["messages"][0]["role"] == "user"
    assert chat["max_tokens"] == 32
    gen = json.loads(_adapter(Protocol.OLLAMA_GENERATE).request(1)[1] or b"")
    assert gen["options"]["num_predict"] == 32 and "prompt" in gen
    emb = json.loads(_adapter(Protocol.OPENAI_EMBEDDINGS).request(2)[1] or b"")
    assert set(emb) == {"model", "input"}


@pytest.mark.parametrize("engine,body", [("format", '{{"q": {prompt_json}, "n": {i}}}'),
                                         ("jinja2", '{"q": {{ prompt | tojson }}, "n": {{ i }}}')])
def test_http_json_templates(engine: str, body: str) -> None:
    config = LoadConfig(target="http://x", protocol=Protocol.HTTP_JSON, dataset=DatasetConfig(pool_size=3),
                        http={"path": "/search/{i}" if engine == "format" else "/search/{{ i }}", "body": body,
                              "engine": engine})
    adapter = Adapter(config, load_dataset(config.dataset))
    path, data = adapter.request(5)
    assert path == "/search/5"
    assert json.loads(data or b"") == {"q": adapter.dataset.items[2].text(), "n": 5}
