"""The non-LLM protocols' shared parts (vectors, recall, config) and vector-qdrant against a shape-checking fake."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from conftest import start_server
from pydantic import ValidationError

from factorybench.errors import LoadError
from factorybench.load import LoadConfig, ProfileConfig, run_load
from factorybench.load.config import DatabaseTarget, VectorConfig, target_url
from factorybench.load.distributed import check_distributable
from factorybench.load.drivers.vectors import VectorSet
from factorybench.load.engine import run_coroutine
from factorybench.recipe.schema import Client


@pytest.fixture(scope="module")
def qdrant_url() -> Iterator[str]:
    proc, url = start_server([sys.executable, str(Path(__file__).with_name("fake_qdrant.py"))], "listening on")
    yield url
    proc.terminate()
    proc.wait(5)


def _log(url: str) -> list[dict]:
    async def get() -> list[dict]:
        async with aiohttp.ClientSession() as s, s.get(url + "/_log") as r:
            return await r.json()
    return run_coroutine(get())


def _qdrant(url: str, index: dict, **kw) -> LoadConfig:
    return LoadConfig.model_validate({
        "target": url, "protocol": "vector-qdrant", "profile": {"kind": "concurrent", "streams": 2, "max_requests": 30},
        "vector": {"count": 300, "dim": 8, "k": 5, "queries": 10, "insert_batch": 64, "index": index,
                   "collection": "fb_test"}, **kw})


def test_qdrant_inserts_then_queries_with_exact_recall(qdrant_url: str) -> None:
    before = len(_log(qdrant_url))
    result = run_load(_qdrant(qdrant_url, {"kind": "exact"}))
    insert, query = (r.summary for r in result.steps)
    assert [r.step.label for r in result.steps] == ["insert", "concurrent 2"]
    assert (insert.requests, insert.errors, insert.ops) == (5, 0, {"insert": 5})  # 300 vectors in batches of 64
    assert sum(s.items for s in result.samples if s.op == "insert") == 300
    assert (query.requests, query.errors, query.recall_at_k, query.recall_min) == (30, 0, 1.0, 1.0)
    s = result.summary  # the run: the queries' figures plus the insert rate
    assert s.recall_at_k == 1.0 and s.query_rate and s.insert_vectors_per_s == insert.insert_vectors_per_s > 0
    assert s.requests == 30 and s.ops == {"query": 30}
    log = _log(qdrant_url)[before:]
    calls = [(x["method"], x["path"].replace("/collections/fb_test", "C")) for x in log]
    assert calls[:2] == [("DELETE", "C"), ("PUT", "C")]
    assert log[1]["body"] == {"vectors": {"size": 8, "distance": "Euclid"}}  # exact: no HNSW settings
    gets = [i for i, c in enumerate(calls) if c == ("GET", "C")]
    assert len(gets) == 3 and gets[0] > max(i for i, c in enumerate(calls) if c == ("PUT", "C/points"))
    assert all(x["query"] == {"wait": "true"} for x in log if x["path"].endswith("/points"))
    queries = [x["body"] for x in log if x["path"].endswith("/points/query")]
    assert len(queries) == 30 and all(q["params"] == {"exact": True} and q["limit"] == 5 for q in queries)


def test_qdrant_low_ef_loses_recall_and_sends_index_parameters(qdrant_url: str) -> None:
    before = len(_log(qdrant_url))
    s = run_load(_qdrant(qdrant_url, {"kind": "hnsw", "m": 8, "ef_construction": 32, "ef_search": 4})).summary
    assert s.errors == 0 and 0 < s.recall_at_k < 1.0
    create = _log(qdrant_url)[before + 1]["body"]
    assert create["hnsw_config"] == {"m": 8, "ef_construct": 32, "full_scan_threshold": 10}
    assert create["optimizers_config"] == {"indexing_threshold": 1}
    query = next(x["body"] for x in _log(qdrant_url)[before:] if x["path"].endswith("/points/query"))
    assert query["params"] == {"hnsw_ef": 4}
    high = run_load(_qdrant(qdrant_url, {"kind": "hnsw", "ef_search": 300})).summary
    assert high.recall_at_k == 1.0  # hnsw_ef covering the collection: the fake searches everything


def test_two_workers_insert_every_vector_once(qdrant_url: str) -> None:
    before = len(_log(qdrant_url))
    result = run_load(_qdrant(qdrant_url, {"kind": "exact"}, workers=2))
    assert result.summary.errors == 0 and result.summary.recall_at_k == 1.0
    upserts = [x["body"]["batch"]["ids"] for x in _log(qdrant_url)[before:] if x["path"].endswith("/points")]
    ids = Counter(i for batch in upserts for i in batch)
    assert sorted(ids) == list(range(300)) and set(ids.values()) == {1}
    creates = [x for x in _log(qdrant_url)[before:] if x["method"] == "PUT" and x["path"] == "/collections/fb_test"]
    assert len(creates) == 1  # prepared once, by the parent process


def test_an_unreachable_qdrant_fails_before_the_run() -> None:
    with pytest.raises(LoadError, match="vector-qdrant: could not prepare http://127.0.0.1:9"):
        run_load(_qdrant("http://127.0.0.1:9", {"kind": "exact"}))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_recall_against_brute_force(metric: str) -> None:
    v = VectorSet(VectorConfig(count=500, dim=16, k=10, queries=20, metric=metric, seed=3))
    for q in range(20):
        exact = v.exact_ids(q)
        assert v.recall(q, exact) == 1.0 and v.recall(q, exact[::-1]) == 1.0
        assert v.recall(q, exact[:7]) == 0.7
        assert v.recall(q, exact[:1] * 10 + [10**9, -1]) == 0.1  # duplicates and unknown ids count once or not
    q, far = 0, int(np.argsort([-np.linalg.norm(x - v.queries[0]) for x in v.data])[0])
    assert v.recall(q, [far] + v.exact_ids(q)[:9]) == 0.9


def test_a_tie_at_the_kth_distance_is_not_a_miss() -> None:
    v = VectorSet(VectorConfig(count=4, dim=2, k=1, queries=1))
    v.data[:] = [[1, 0], [0, 1], [5, 5], [-1, 0]]
    v.queries[:] = [[0, 0]]
    assert v.recall(0, [1]) == v.recall(0, [3]) == 1.0 and v.recall(0, [2]) == 0.0


def test_target_urls_and_protocol_settings() -> None:
    assert target_url("kv-redis", "http://10.0.0.5:6379", DatabaseTarget(redis_db=2)) == "redis://10.0.0.5:6379/2"
    assert target_url("vector-pgvector", "http://[::1]:5432", DatabaseTarget(user="fb", dbname="bench")) \
        == "postgresql://fb@[::1]:5432/bench"
    assert target_url("vector-chroma", "http://h:8000") == "http://h:8000"
    with pytest.raises(ValidationError, match="needs a redis:// target"):
        LoadConfig(target="http://h:1", protocol="kv-redis")
    with pytest.raises(ValidationError, match="Chroma has no exact index"):
        Client(protocol="vector-chroma", vector={"index": {"kind": "exact"}})
    with pytest.raises(ValidationError, match="collection"):
        VectorConfig(collection="x; DROP TABLE y")
    with pytest.raises(LoadError, match="runs two steps"):
        check_distributable(LoadConfig(target="http://h:1", protocol="vector-qdrant",
                               profile=ProfileConfig(max_requests=1)))
