"""Exact search by blocked matrix products: always available, and the oracle every other index is tested against."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from negmine.index.base import CountedVectors, Metric, check_k, check_metric, check_vectors, pad_results


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-``k`` (score descending) where ties at the cut go to the lower column, like a full stable sort."""
    n, m = scores.shape
    k = min(k, m)
    if k == m:
        part = np.broadcast_to(np.arange(m), (n, m))
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k].copy()
        kth = np.take_along_axis(scores, part, 1).min(1)
        at_or_above = scores >= kth[:, None]
        for row in np.flatnonzero(at_or_above.sum(1) > k):  # ties straddle the cut: settle them by column
            cols = np.flatnonzero(at_or_above[row])
            part[row] = cols[np.lexsort((cols, -scores[row, cols]))[:k]]
    part_scores = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, 1)
    return np.take_along_axis(scores, idx, 1).astype(np.float32), idx.astype(np.int64)


def _similarity(queries: np.ndarray, block: np.ndarray, metric: Metric) -> np.ndarray:
    sims = queries @ block.T
    if metric == "l2":  # negated squared L2 distance, so higher = more similar
        sims = 2 * sims - (queries * queries).sum(1, keepdims=True) - (block * block).sum(1)[None, :]
    return sims


def merge_topk(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Merge two short per-row lists (scores, global ids) into the top ``k``: score descending, then lower id;
    ``-1`` ids never win. A full sort of the ``k + width`` entries, so ties are settled exactly."""
    scores = np.concatenate([a[0], b[0]], axis=1)
    ids = np.concatenate([a[1], b[1]], axis=1)
    scores = np.where(ids < 0, -np.inf, scores)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1).astype(np.float32), np.take_along_axis(ids, order, 1)


def merged_search(queries: np.ndarray, k: int, query_block: int,
                  parts: Callable[[np.ndarray], Iterable[tuple[np.ndarray, np.ndarray]]],
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Search in blocks of ``query_block`` queries: ``parts(block)`` yields per-row (scores, global ids) lists (one
    per corpus block, shard or device), merged into the top ``k`` (:func:`merge_topk`) and padded with ``-1``."""
    parts_s, parts_i = [], []
    for qs in range(0, len(queries), query_block):
        qb = queries[qs : qs + query_block]
        best = (np.zeros((len(qb), 0), dtype=np.float32), np.zeros((len(qb), 0), dtype=np.int64))
        for part in parts(qb):
            best = merge_topk(best, part, k)
        s, i = pad_results(*best, k)
        parts_s.append(s)
        parts_i.append(i)
    if not parts_s:
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    return np.concatenate(parts_s), np.concatenate(parts_i)


def exact_scores(queries: np.ndarray, docs: Any, indices: np.ndarray, metric: Metric = "ip",
                 block: int = 256) -> np.ndarray:
    """Scores of the pairs (query row ``i``, document row ``indices[i, j]``), each summed in float64 in a fixed order
    and rounded to float32; ``-inf`` where ``indices`` is ``-1``.

    A float32 matrix product's last bit depends on how it is blocked and on the BLAS thread count, so two searches of
    the same vectors (FAISS vs numpy, one machine vs shards on a cluster) can disagree in the last bit and swap
    near-ties. These scores depend on the two vectors alone: every backend and cluster layout agrees bit for bit.
    ``docs`` is an array or anything with ``rows(ids)`` (a memory-mapped ``ShardStore``)."""
    queries = np.asarray(queries, dtype=np.float32)
    out = np.full(indices.shape, -np.inf, dtype=np.float32)
    # at most ~4M gathered float64 values (32 MB) at a time, however deep the search (a query with 5,000 positives)
    block = max(1, min(block, (1 << 22) // max(1, indices.shape[1] * queries.shape[1])))
    for start in range(0, len(indices), block):
        ids = indices[start : start + block]
        valid = ids >= 0
        flat = np.where(valid, ids, 0).ravel()
        rows = docs.rows(flat) if hasattr(docs, "rows") else np.asarray(docs)[flat]
        d = np.asarray(rows, dtype=np.float64).reshape(*ids.shape, -1)
        q = queries[start : start + block].astype(np.float64)[:, None, :]
        sims = (q * d).sum(-1) if metric == "ip" else -((q - d) ** 2).sum(-1)
        out[start : start + block] = np.where(valid, sims, -np.inf).astype(np.float32)
    return out


class ExactIndex(CountedVectors):
    """Brute-force inner-product (or negated-L2) search in blocks of queries and corpus rows.

    Memory stays bounded: a similarity block is at most ``query_block × corpus_block`` floats.

    Args:
        dim: vector dimension.
        metric: ``ip`` (inner product; cosine for normalised vectors) or ``l2`` (scores are ``-||q - d||²``).
        query_block / corpus_block: block sizes for the blocked product.

    Example:
        >>> import numpy as np
        >>> index = ExactIndex(dim=2)
        >>> index.add(np.array([[1, 0], [0, 1]], dtype=np.float32))
        >>> scores, ids = index.search(np.array([[0.9, 0.1]], dtype=np.float32), k=1)
        >>> ids.tolist()
        [[0]]
    """

    def __init__(self, dim: int, metric: Metric = "ip", query_block: int = 1024, corpus_block: int = 65536) -> None:
        check_metric(metric)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self._dim, self.metric = int(dim), metric
        self.query_block, self.corpus_block = query_block, corpus_block
        self._blocks: list[np.ndarray] = []
        self._ntotal = 0

    @property
    def vectors(self) -> np.ndarray:
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0] if self._blocks else np.zeros((0, self._dim), dtype=np.float32)

    def add(self, embeddings: np.ndarray) -> None:
        x = check_vectors(embeddings, self._dim, "embeddings")
        self._blocks.append(x)
        self._ntotal += x.shape[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self._dim, "queries")
        k = check_k(k)
        corpus = self.vectors

        def blocks(qb: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray]]:
            for cs in range(0, corpus.shape[0], self.corpus_block):
                s, i = topk_rows(_similarity(qb, corpus[cs : cs + self.corpus_block], self.metric), k)
                yield s, i + cs

        return merged_search(q, k, self.query_block, blocks)

    def save(self, path: str | os.PathLike) -> None:
        from negmine.io import atomic_open, write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_open(path / "vectors.npy", "wb") as handle:
            np.save(handle, self.vectors)
        write_json(path / "index.json", {"type": "exact", **self.get_config_dict()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExactIndex:
        import json

        path = Path(path)
        config = json.loads((path / "index.json").read_text())
        index = cls(config["dim"], config["metric"])
        index.add(np.load(path / "vectors.npy"))
        return index

    def get_config_dict(self) -> dict[str, Any]:
        return {"dim": self._dim, "metric": self.metric, "ntotal": self._ntotal}
