"""Request builders and stream parsers, one adapter per wire protocol.

The engine hands each received chunk with its arrival time (taken before any
parsing) to a `Reader`; framing (SSE, NDJSON, whole JSON, raw) is split from the
meaning of events, and lines may be any length and split anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jinja2

from factorybench.load.config import LoadConfig, Protocol
from factorybench.load.dataset import Dataset, PromptItem
from factorybench.load.samples import TokenSource


class LineSplitter:
    """Splits a byte stream into lines; a partial line waits as a list of parts, so long lines cost O(n)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        if b"\n" not in data:
            self._parts.append(data)
            return []
        if self._parts:
            self._parts.append(data)
            data = b"".join(self._parts)
            self._parts = []
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._parts.append(rest)
        return lines

    def flush(self) -> bytes:
        rest, self._parts = b"".join(self._parts), []
        return rest


class StreamState:
    """What a response told us so far; `times` are arrival times of content-carrying chunks."""

    __slots__ = ("times", "chars", "prompt_tokens", "output_tokens", "error", "model")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.chars = 0
        self.prompt_tokens: int | None = None
        self.output_tokens: int | None = None
        self.error: str | None = None
        self.model: str | None = None  # the model the server names in its response


Handler = Callable[[Any, float, StreamState], None]
_decode = json.JSONDecoder().decode  # on str: skips json.loads' encoding detection per event


class Reader:
    """Feeds framed events of one response to a handler. Framing: sse, ndjson, json or raw."""

    __slots__ = ("state", "_handle", "_framing", "_lines", "_data", "_body")

    def __init__(self, handle: Handler, framing: str):
        self.state = StreamState()
        self._handle, self._framing = handle, framing
        self._lines = LineSplitter()
        self._data: list[bytes] = []  # SSE data lines of the event being assembled
        self._body: list[bytes] = []  # whole-body framing

    def feed(self, data: bytes, t: float) -> None:
        framing = self._framing
        if framing == "sse":
            pending = self._data
            for line in self._lines.feed(data):
                if line[:6] == b"data: " and line[-1:] != b"\r":  # the common case, kept inline
                    pending.append(line[6:])
                else:
                    self._sse_line(line, t)
                    pending = self._data
        elif framing == "ndjson":
            for line in self._lines.feed(data):
                if line.strip():
                    self._event(line, t)
        elif framing == "json":
            self._body.append(data)

    def close(self, t: float) -> None:
        rest = self._lines.flush()
        if self._framing == "sse":
            self._sse_line(rest, t)
            self._sse_line(b"", t)
        elif self._framing == "ndjson":
            if rest.strip():
                self._event(rest, t)
        elif self._framing == "json":
            self._event(b"".join(self._body), t)
        else:  # raw: the response's end is its only "content", so TTFT = E2E
            self.state.times.append(t)

    def _sse_line(self, line: bytes, t: float) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                payload = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                self._data = []
                self._event(payload, t)
        elif line.startswith(b"data:"):
            self._data.append(line[6:] if line[5:6] == b" " else line[5:])

    def _event(self, payload: bytes, t: float) -> None:
        if payload == b"[DONE]":
            return
        try:
            obj = _decode(payload.decode())
        except ValueError:  # UnicodeDecodeError is a ValueError too
            self.state.error = f"invalid JSON ({len(payload)} bytes)"
            return
        if isinstance(obj, dict):
            if obj.get("error"):
                self.state.error = str(obj["error"])[:200]
            self._handle(obj, t, self.state)


def _content(st: StreamState, text: Any, t: float) -> None:
    if text:
        st.times.append(t)
        st.chars += len(text)


def _openai(obj: dict, t: float, st: StreamState) -> None:
    if st.model is None:
        st.model = obj.get("model")
    choices = obj.get("choices")
    if choices:
        c = choices[0]
        delta = c.get("delta")
        if delta is not None:  # a role-only or empty delta carries no content and is skipped
            _content(st, delta.get("content") or delta.get("reasoning_content"), t)
        elif "text" in c:
            _content(st, c["text"], t)
        else:
            _content(st, (c.get("message") or {}).get("content"), t)
    elif "data" in obj:  # embeddings
        _content(st, obj["data"], t)
    usage = obj.get("usage")
    if usage:
        st.prompt_tokens = usage.get("prompt_tokens", st.prompt_tokens)
        st.output_tokens = usage.get("completion_tokens", st.output_tokens)


def _ollama(obj: dict, t: float, st: StreamState) -> None:
    if st.model is None:
        st.model = obj.get("model")
    _content(st, obj.get("response") or (obj.get("message") or {}).get("content"), t)
    if obj.get("done"):
        st.prompt_tokens = obj.get("prompt_eval_count", st.prompt_tokens)
        st.output_tokens = obj.get("eval_count", st.output_tokens)


def _ignore(obj: Any, t: float, st: StreamState) -> None:
    """Generic services: only the status and timing matter."""


class Adapter:
    """Builds request `i` (path, body bytes) and the reader for its response."""

    def __init__(self, config: LoadConfig, dataset: Dataset):
        self.config, self.dataset = config, dataset
        self.method = "POST"
        p, stream = config.protocol, config.stream
        openai_framing = "sse" if stream else "json"
        self.path, self.framing, self._handle = {
            Protocol.OPENAI_CHAT: ("/v1/chat/completions", openai_framing, _openai),
            Protocol.OPENAI_COMPLETIONS: ("/v1/completions", openai_framing, _openai),
            Protocol.OPENAI_EMBEDDINGS: ("/v1/embeddings", "json", _openai),
            Protocol.OLLAMA_GENERATE: ("/api/generate", "ndjson" if stream else "json", _ollama),
            Protocol.OLLAMA_CHAT: ("/api/chat", "ndjson" if stream else "json", _ollama),
            Protocol.HTTP_JSON: (config.http.path, "raw", _ignore),
        }[p]
        self.streaming = self.framing in ("sse", "ndjson")
        self.op = "embed" if p == Protocol.OPENAI_EMBEDDINGS else None
        self.items = config.embeddings.batch_size if p == Protocol.OPENAI_EMBEDDINGS else 1
        self._llm = p.is_llm
        self._cache: dict[int, bytes] = {}
        self._templates: tuple[Callable[..., str], Callable[..., str] | None] | None = None
        if p == Protocol.HTTP_JSON:
            self.method = config.http.method.upper()
            self._templates = (_template(config.http.path, config.http.engine),
                               _template(config.http.body, config.http.engine) if config.http.body else None)

    def request(self, i: int) -> tuple[str, bytes | None]:
        item_index = i % len(self.dataset.items)
        item = self.dataset.items[item_index]
        if self._templates:
            text = item.text()
            values = {"prompt": text, "prompt_json": json.dumps(text), "i": i,
                      "output_tokens": item.output_tokens, "model": self.config.model}
            path_t, body_t = self._templates
            return path_t(**values), body_t(**values).encode() if body_t else None
        if self.items > 1:
            item_index = i * self.items % len(self.dataset.items)
        body = self._cache.get(item_index)
        if body is None:
            body = self._cache[item_index] = json.dumps(self._body(item, item_index)).encode()
        return self.path, body

    def _batch(self, start: int) -> list[PromptItem]:
        """An embeddings batch: consecutive pool items from `start`, wrapping around."""
        items = self.dataset.items
        return [items[(start + j) % len(items)] for j in range(self.items)]

    def intended_prompt_tokens(self, i: int) -> int | None:
        """The prompt length the client means to send: checked against the server's usage."""
        if self.items > 1:
            return sum(item.prompt_tokens for item in self._batch(i * self.items % len(self.dataset.items)))
        if self._llm or self.op:
            return self.dataset.items[i % len(self.dataset.items)].prompt_tokens
        return None

    def max_tokens(self, i: int) -> int | None:
        return self.dataset.items[i % len(self.dataset.items)].output_tokens if self._llm else None

    def _body(self, item: PromptItem, item_index: int) -> dict:
        c, p = self.config, self.config.protocol
        if p == Protocol.OPENAI_EMBEDDINGS:
            if self.items > 1:
                return {"model": c.model, "input": [x.text() for x in self._batch(item_index)], **c.extra_body}
            return {"model": c.model, "input": item.text(), **c.extra_body}
        body: dict[str, Any] = {"model": c.model, "stream": c.stream}
        if p in (Protocol.OPENAI_CHAT, Protocol.OLLAMA_CHAT):
            body["messages"] = item.chat()
        else:
            body["prompt"] = item.text()
        if p in (Protocol.OLLAMA_GENERATE, Protocol.OLLAMA_CHAT):
            body["options"] = {"num_predict": item.output_tokens}
        else:
            body["max_tokens"] = item.output_tokens
            if c.stream:
                body["stream_options"] = {"include_usage": True}
            if c.ignore_eos:
                body["ignore_eos"] = True
        return {**body, **c.extra_body}

    def reader(self) -> Reader:
        return Reader(self._handle, self.framing)

    def token_counts(self, st: StreamState, i: int) -> tuple[int | None, TokenSource | None, int | None,
                                                              TokenSource | None]:
        """(prompt, source, output, source): the server's usage first, then counted chunks, then estimates."""
        item = self.dataset.items[i % len(self.dataset.items)]
        if st.prompt_tokens is not None:
            prompt, psrc = st.prompt_tokens, TokenSource.USAGE
        else:
            prompt, psrc = self.intended_prompt_tokens(i) or item.prompt_tokens, TokenSource.ESTIMATE
        if self.config.protocol in (Protocol.OPENAI_EMBEDDINGS, Protocol.HTTP_JSON):
            return prompt, psrc, None, None
        if st.output_tokens is not None:
            return prompt, psrc, st.output_tokens, TokenSource.USAGE
        if self.streaming:
            return prompt, psrc, len(st.times), TokenSource.COUNTED_CHUNKS
        return prompt, psrc, max(1, round(st.chars / 4)), TokenSource.ESTIMATE


def _template(text: str, engine: str) -> Callable[..., str]:
    if engine == "jinja2":
        return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render
    return text.format
