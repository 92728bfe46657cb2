"""Seeded vectors, their exact nearest neighbours, and recall@k: what every vector protocol shares.

Data and queries are standard-normal float32 vectors from one seed, so every process and
every database gets the same ones. The exact neighbours are computed here by brute force in
float64 on those float32 values; recall@k of a result is the share of the k true neighbours
it found, where an id counts when its true distance is within a hair (1e-6 relative) of the
k-th exact distance, so ties and the servers' float32 rounding never cost recall.
"""

from __future__ import annotations

from functools import cached_property

import msgspec
import numpy as np

from factorybench.load.config import VectorConfig

_TIE = 1e-6
_CHUNK = 4096  # data rows per block of the brute-force search, to bound memory


class VectorSet:
    """The data set, the queries and the exact answers of one run."""

    def __init__(self, config: VectorConfig):
        self.config = config
        rng = np.random.default_rng(config.seed)
        self.data = rng.standard_normal((config.count, config.dim), dtype=np.float32)
        self.queries = rng.standard_normal((config.queries, config.dim), dtype=np.float32)

    def batch(self, i: int) -> tuple[range, np.ndarray]:
        """Insert request i: the ids and vectors of batch i."""
        size = self.config.insert_batch
        ids = range(i * size, min((i + 1) * size, self.config.count))
        return ids, self.data[ids.start:ids.stop]

    def query(self, i: int) -> tuple[int, np.ndarray]:
        """Query request i: which query (requests cycle through them) and its vector."""
        q = i % self.config.queries
        return q, self.queries[q]

    def _distances(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Float64 distances from one query to data rows (cosine: 1 - cosine similarity)."""
        x, q64 = rows.astype(np.float64), q.astype(np.float64)
        if self.config.metric == "cosine":
            norms = np.linalg.norm(x, axis=1) * np.linalg.norm(q64)
            return 1.0 - (x @ q64) / np.where(norms == 0, 1.0, norms)
        return np.sqrt(np.maximum(((x - q64) ** 2).sum(axis=1), 0.0))

    @cached_property
    def kth_distance(self) -> np.ndarray:
        """For each query, the exact distance of its k-th nearest neighbour (brute force, in blocks)."""
        k = min(self.config.k, self.config.count)
        q = self.queries.astype(np.float64)
        if self.config.metric == "cosine":
            q = q / _norms(q)[:, None]
        best: np.ndarray | None = None
        for start in range(0, len(self.data), _CHUNK):
            x = self.data[start:start + _CHUNK].astype(np.float64)
            if self.config.metric == "cosine":
                d = 1.0 - (x / _norms(x)[:, None]) @ q.T
            else:
                sq = (x * x).sum(axis=1)[:, None] + (q * q).sum(axis=1)[None, :] - 2.0 * (x @ q.T)
                d = np.sqrt(np.maximum(sq, 0.0))
            part = np.partition(d, min(k, len(d)) - 1, axis=0)[:k]
            both = part if best is None else np.vstack([best, part])
            best = np.partition(both, k - 1, axis=0)[:k]
        assert best is not None
        return np.partition(best, k - 1, axis=0)[k - 1]

    def exact_ids(self, q: int) -> list[int]:
        """The exact k nearest ids of query q, nearest first (for tests and fake servers)."""
        d = self._distances(self.queries[q], self.data)
        return [int(i) for i in np.argsort(d, kind="stable")[:min(self.config.k, self.config.count)]]

    def recall(self, q: int, ids: list[int]) -> float:
        """Share of the k exact neighbours found among the first k distinct, valid ids returned."""
        k = min(self.config.k, self.config.count)
        found = [i for i in dict.fromkeys(ids) if 0 <= i < self.config.count][:k]
        if not found:
            return 0.0
        d = self._distances(self.queries[q], self.data[found])
        limit = self.kth_distance[q]
        return float(np.count_nonzero(d <= limit + _TIE * max(limit, 1.0))) / k


def _norms(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1)
    return np.where(n == 0, 1.0, n)


def floats_json(vectors: np.ndarray) -> bytes:
    """JSON of float32 values: the shortest repr of each parses back to the same float32."""
    return msgspec.json.encode(vectors.tolist())


class Prebuilt:
    """Request payloads of a phase, built before the step when they fit in `budget_floats`."""

    def __init__(self, build, count: int, floats: int, budget_floats: int = 30_000_000):
        self._build = build
        self._cache = [build(i) for i in range(count)] if floats <= budget_floats else None

    def __getitem__(self, i: int):
        return self._cache[i] if self._cache is not None else self._build(i)
