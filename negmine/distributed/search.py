"""Exact search sharded over a Ray cluster: per-shard top-k by Ray tasks, merged in canonical order."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from negmine.index.base import CountedVectors, Metric, check_k, check_metric, check_vectors, pad_results
from negmine.index.exact import merged_search

logger = logging.getLogger(__name__)


def search_shard(shard: np.ndarray, queries: np.ndarray, k: int, metric: str, device: str | None) -> tuple:
    """One shard's exact top-``k`` (canonical order, shard-local ids): numpy on CPU, torch on a GPU."""
    if device == "cuda":
        from negmine.index.torch_exact import TorchExactIndex

        index = TorchExactIndex(shard.shape[1], metric, device="cuda", dtype="fp32")
    else:
        from negmine.index.exact import ExactIndex

        index = ExactIndex(shard.shape[1], metric)
    index.add(shard)
    return index.search(queries, k)


class RayShardedIndex(CountedVectors):
    """Exact search with the corpus split in shards over a Ray cluster (an :class:`~negmine.index.IndexBackend`).

    Args:
        dim / metric: as :class:`~negmine.index.exact.ExactIndex`.
        address: the Ray cluster, joined on first use (default: the one this process joined, else ``auto``).
        num_shards: shards (default: one per GPU of the cluster, else one per CPU).
        max_retries: retries of a shard's task whose worker died.
    """

    def __init__(self, dim: int, metric: Metric = "ip", *, address: str | None = None, num_shards: int | None = None,
                 max_retries: int = 3) -> None:
        check_metric(metric)
        self._dim, self.metric, self.address = int(dim), metric, address
        self.num_shards, self.max_retries = num_shards, max_retries
        self._blocks: list[np.ndarray] = []
        self._ntotal = 0
        self._refs: list[tuple[int, Any]] | None = None

    def add(self, embeddings: np.ndarray) -> None:
        x = check_vectors(embeddings, self._dim, "embeddings")
        self._blocks.append(x)
        self._ntotal += len(x)
        self._refs = None

    def _shards(self, ray: Any) -> list[tuple[int, Any]]:
        """(offset, object ref) of each shard, put in the object store once per content."""
        if self._refs is None:
            resources = ray.cluster_resources()
            n = self.num_shards or int(resources.get("GPU", 0)) or int(resources.get("CPU", 1))
            x = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
            self._blocks = [x]
            rows = max(1, math.ceil(len(x) / max(1, n)))
            self._refs = [(start, ray.put(x[start : start + rows])) for start in range(0, len(x), rows)]
        return self._refs

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from negmine.distributed import connect

        q = check_vectors(queries, self._dim, "queries")
        k = check_k(k)
        if self._ntotal == 0 or len(q) == 0:
            return pad_results(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        ray = connect(self.address or "auto")
        gpu = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(search_shard).options(num_gpus=1 if gpu else 0, num_cpus=1, max_retries=self.max_retries,
                                                retry_exceptions=False)
        q_ref = ray.put(q)
        shards = self._shards(ray)
        futures = [task.remote(ref, q_ref, k, self.metric, "cuda" if gpu else None) for _, ref in shards]
        results = [(s, np.where(i >= 0, i + offset, -1)) for (offset, _), (s, i) in zip(shards, ray.get(futures))]
        return merged_search(q, k, len(q), lambda _queries: results)  # one block: the shards answered all queries

    def save(self, path: Any) -> None:
        raise NotImplementedError("RayShardedIndex is built per run; persist with negmine index build")

    def get_config_dict(self) -> dict[str, Any]:
        return {"type": "ray-sharded-exact", "dim": self._dim, "metric": self.metric, "ntotal": self._ntotal,
                "num_shards": len(self._refs) if self._refs is not None else self.num_shards}
