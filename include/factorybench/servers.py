"""What factorybench knows about each kind of server a recipe's `service.kind` names.

One entry per kind: where the server reports its version. The monitoring layer adds each
kind's Prometheus names here too, so a recipe's kind is the one switch for all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def _field(*path: str) -> Callable[[Any], str | None]:
    def read(doc: Any) -> str | None:
        for key in path:
            doc = doc.get(key) if isinstance(doc, dict) else None
        return None if doc is None else str(doc)
    return read


@dataclass(frozen=True)
class ServerKind:
    name: str
    version_path: str | None = None  # GET it for the service's version
    version_of: Callable[[Any], str | None] = _field("version")


KINDS: dict[str, ServerKind] = {k.name: k for k in (
    ServerKind("sim", "/version"),
    ServerKind("vllm", "/version"),
    ServerKind("ollama", "/api/version"),
    ServerKind("llamacpp", "/props", _field("build_info")),
    ServerKind("openai"),
    ServerKind("chroma", "/api/v2/version", lambda doc: doc if isinstance(doc, str) else None),
    ServerKind("qdrant", "/", _field("version")),
    ServerKind("pgvector"),
    ServerKind("http"),
    # infinity-emb serves its OpenAPI document under the recipe's --url-prefix (/v1 in ours).
    ServerKind("infinity", "/v1/openapi.json", _field("info", "version")),
    ServerKind("redis"),      # no HTTP: readiness.kind tcp
    ServerKind("postgres"),   # no HTTP: readiness.kind tcp
)}


def kind(name: str) -> ServerKind:
    return KINDS[name]
