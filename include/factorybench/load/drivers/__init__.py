"""Drivers of the non-LLM protocols; each imports its client library only when its protocol runs."""

from __future__ import annotations

from importlib import import_module

from factorybench.load.config import LoadConfig, Protocol
from factorybench.load.drivers.base import Driver, OpError, Outcome

_DRIVERS = {
    Protocol.VECTOR_CHROMA: ("chroma", "ChromaDriver"),
    Protocol.VECTOR_QDRANT: ("qdrant", "QdrantDriver"),
    Protocol.VECTOR_PGVECTOR: ("postgres", "PgvectorDriver"),
    Protocol.SQL_POSTGRES: ("postgres", "SQLDriver"),
    Protocol.KV_REDIS: ("redis_kv", "RedisDriver"),
}

__all__ = ["Driver", "OpError", "Outcome", "make_driver"]


def make_driver(config: LoadConfig) -> Driver | None:
    """The protocol's driver, or None for the HTTP protocols the engine speaks itself."""
    entry = _DRIVERS.get(config.protocol)
    if entry is None:
        return None
    module, name = entry
    return getattr(import_module(f"factorybench.load.drivers.{module}"), name)(config)
