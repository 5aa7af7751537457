"""Approximate (ANN) and compressed FAISS indexes: presets, training on a sample, search-time knobs, exact re-ranking
of a short list, and recall@k against exact search.

Mining needs the true top of each list, so every approximate index here is measured, not trusted: build one, call
:func:`recall_at_k` on a sample of queries, and raise ``nprobe``/``ef_search``/``rerank`` until the recall is what
you need (``negmine index build`` does this and prints the figure).

Compressed indexes (``IVF…,PQ…``) keep only codes in memory. With ``rerank=r`` the index fetches ``r·k`` candidates
and re-scores them exactly against the full vectors given as ``refine_vectors`` (an array, a memory map, or a
:class:`~negmine.index.streamed.ShardStore` on disk, of which only the short-listed rows are read).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from negmine._optional import require
from negmine.index.base import IndexBackend, Metric, check_k, check_metric, check_vectors, pad_results
from negmine.index.exact import ExactIndex, topk_rows
from negmine.index.faiss_index import FaissIndex

logger = logging.getLogger(__name__)

#: short names accepted wherever a factory string is (``{nlist}`` and ``{m}`` are filled from the corpus size/dim)
PRESETS: dict[str, str] = {
    "exact": "Flat",
    "ivf": "IVF{nlist},Flat",
    "ivfpq": "IVF{nlist},PQ{m}x8",
    "hnsw": "HNSW32",
    "hnsw-sq8": "HNSW32,SQ8",
    "ivf-sq8": "IVF{nlist},SQ8",
}


def suggest_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: about ``4·√n`` rounded to a power of two, ≥ 39 training points per list."""
    if n < 39:
        return 1
    nlist = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    return int(max(1, min(nlist, n // 39)))


def suggest_pq_m(dim: int) -> int:
    """PQ sub-quantizers: the largest divisor of ``dim`` giving ≥ 8 dimensions each (384 → 48, 768 → 96)."""
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


def resolve_factory(factory: str, n: int, dim: int) -> str:
    """A preset name (``ivf``, ``ivfpq``, ``hnsw``…) or a factory string with ``{nlist}``/``{m}`` → a concrete one."""
    template = PRESETS.get(factory, factory)
    try:
        return template.format(nlist=suggest_nlist(n), m=suggest_pq_m(dim))
    except (KeyError, IndexError) as err:
        raise ValueError(f"factory {factory!r}: unknown placeholder {err}; use {{nlist}} or {{m}}") from None


def default_train_size(factory: str, n: int) -> int:
    """Training sample size: 64 points per IVF list (FAISS warns below 39), ≥ 10k for PQ codebooks, capped at ``n``."""
    import re

    size = 0
    match = re.search(r"IVF(\d+)", factory)
    if match:
        size = 64 * int(match.group(1))
    if "PQ" in factory or "SQ" in factory:
        size = max(size, 10_000)
    return min(n, size) if size else 0


def is_approximate(factory: str) -> bool:
    """Whether a factory string can miss true neighbours (anything but ``Flat``/``IDMap,Flat``)."""
    return factory.replace("IDMap,", "").replace("IDMap2,", "") != "Flat"


class AnnIndex(FaissIndex):
    """A FAISS index from any factory string, with the knobs that trade recall for speed and memory.

    Args:
        dim: vector dimension.
        factory: a preset (:data:`PRESETS`) or a ``faiss.index_factory`` string (``IVF4096,Flat``, ``HNSW32``,
            ``IVF4096,PQ48x8``…). ``{nlist}``/``{m}`` placeholders are filled from ``expected_size``.
        metric: ``ip`` or ``l2``.
        nprobe: IVF lists visited per query (default 32; more = better recall, slower).
        ef_search: HNSW candidate list size at search time (default 128; must be ≥ k, raised to k automatically).
        rerank: fetch ``rerank·k`` candidates and re-score them exactly against ``refine_vectors`` (for PQ/SQ).
        refine_vectors: the full vectors (array, memory map or ``ShardStore``), needed when ``rerank`` is set.
        train_size: vectors sampled to train IVF centroids / PQ codebooks (default :func:`default_train_size`).
        expected_size: corpus size used to resolve a preset (default: the size of the first ``add``/``train``).
        seed: seed of the training sample.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
        >>> index = AnnIndex(16, "IVF16,Flat", nprobe=16)   # nprobe = nlist: every list, so exact
        >>> index.add(x)
        >>> bool(recall_at_k(index, x, x[:20], k=10) == 1.0)
        True
    """

    def __init__(self, dim: int, factory: str = "ivf", metric: Metric = "ip", *, nprobe: int | None = None,
                 ef_search: int | None = None, rerank: int | None = None, refine_vectors: Any = None,
                 train_size: int | None = None, expected_size: int | None = None, seed: int = 0,
                 search_block: int = 16384) -> None:
        if rerank is not None and rerank < 1:
            raise ValueError(f"rerank must be >= 1 (candidates fetched per wanted result), got {rerank}")
        self.requested_factory = factory
        self.nprobe, self.ef_search, self.rerank = nprobe, ef_search, rerank
        self.refine_vectors, self.train_size, self.seed = refine_vectors, train_size, seed
        self._pending_dim, self._pending_metric, self._search_block = int(dim), metric, search_block
        self.index = None
        self._dim, self.metric, self.search_block, self.factory = int(dim), metric, search_block, factory
        check_metric(metric)
        if expected_size is not None or "{" not in PRESETS.get(factory, factory):
            self._create(expected_size or 0)

    def _create(self, n: int) -> None:
        concrete = resolve_factory(self.requested_factory, n, self._dim)
        super().__init__(self._dim, concrete, self.metric, self._search_block)
        self._disable_polysemous()
        self._apply_search_params()

    def _disable_polysemous(self) -> None:
        """index_factory turns on polysemous training for PQ (minutes of simulated annealing, used only by
        polysemous search, which negmine does not use); switch it off."""
        faiss = require("faiss", "AnnIndex")

        index = faiss.downcast_index(self.index)
        for candidate in (index, getattr(index, "base_index", None)):
            if candidate is not None and hasattr(candidate, "do_polysemous_training"):
                candidate.do_polysemous_training = False

    def _ensure(self, n: int) -> None:
        if self.index is None:
            self._create(n)

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        return self.index is not None and bool(self.index.is_trained)

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search-time knobs of a built index (IVF lists visited, HNSW candidate list): the same index
        measured at several settings without a rebuild. ``None`` keeps the current value."""
        if nprobe is not None:
            self.nprobe = nprobe
        if ef_search is not None:
            self.ef_search = ef_search
        if self.index is not None:
            self._apply_search_params()

    def _apply_search_params(self) -> None:
        faiss = require("faiss", "AnnIndex")

        params = faiss.ParameterSpace()
        if "IVF" in self.factory:
            nlist = faiss.extract_index_ivf(self.index).nlist
            params.set_index_parameter(self.index, "nprobe", int(min(self.nprobe or 32, nlist)))
        if "HNSW" in self.factory:
            params.set_index_parameter(self.index, "efSearch", int(self.ef_search or 128))

    def train(self, sample: np.ndarray) -> None:
        """Train on ``sample`` as given (see :meth:`train_on_sample` to draw one from a larger corpus)."""
        x = check_vectors(sample, self._dim, "training vectors")
        self._ensure(len(x))
        if not self.index.is_trained:
            self.index.train(x)
            self._apply_search_params()

    def train_on_sample(self, vectors: Any, n: int | None = None) -> int:
        """Draw a seeded sample from ``vectors`` (array, memmap or ShardStore) and train on it. Returns its size."""
        total = len(vectors)
        self._ensure(total)
        size = self.train_size or default_train_size(self.factory, total) or min(total, 10_000)
        size = min(size, total) if n is None else min(n, total)
        rows = np.sort(np.random.default_rng(self.seed).choice(total, size=size, replace=False))
        sample = vectors.rows(rows) if hasattr(vectors, "rows") else np.asarray(vectors[rows])
        logger.info("training %s on %d of %d vectors", self.factory, size, total)
        self.train(sample)
        return size

    def add(self, embeddings: np.ndarray) -> None:
        x = check_vectors(embeddings, self._dim, "embeddings")
        self._ensure(len(x))
        if not self.index.is_trained:
            self.train_on_sample(x)
        self.index.add(x)

    def add_from(self, vectors: Any, block_rows: int = 262_144) -> None:
        """Train on a sample (if needed) and add every row of a large source in blocks (ShardStore or array)."""
        if not self.is_trained:
            self.train_on_sample(vectors)
        if hasattr(vectors, "iter_blocks"):
            for _, block in vectors.iter_blocks(block_rows):
                self.index.add(np.ascontiguousarray(block))
        else:
            for start in range(0, len(vectors), block_rows):
                self.index.add(check_vectors(vectors[start:start + block_rows], self._dim, "embeddings"))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self._dim, "queries")
        k = check_k(k)
        if self.index is None or self.ntotal == 0:
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        short = k if not self.rerank else min(self.ntotal, k * self.rerank)
        if "HNSW" in self.factory:  # efSearch must cover the list length
            faiss = require("faiss", "AnnIndex")

            faiss.ParameterSpace().set_index_parameter(self.index, "efSearch", int(max(short, self.ef_search or 128)))
        scores, ids = super().search(q, short)
        if self.rerank:
            scores, ids = self.exact_rerank(q, ids, k)
        return pad_results(scores[:, :k], ids[:, :k], k)

    def exact_rerank(self, queries: np.ndarray, ids: np.ndarray, k: int, max_bytes: int = 64 * 2**20,
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Re-score each query's short list ``ids`` exactly against ``refine_vectors`` and keep the top ``k``."""
        if self.refine_vectors is None:
            raise ValueError("rerank is set but no refine_vectors were given (the full vectors: an array, a memory "
                             "map or a ShardStore)")
        source = self.refine_vectors
        gather = source.rows if hasattr(source, "rows") else (lambda r: np.asarray(source[r], dtype=np.float32))
        n, short = ids.shape
        step = max(1, int(max_bytes // max(1, short * self._dim * 4)))
        out_s, out_i = [], []
        for start in range(0, n, step):
            block_ids = ids[start:start + step]
            safe = np.where(block_ids < 0, 0, block_ids)
            uniq, inverse = np.unique(safe, return_inverse=True)
            vecs = gather(uniq)[inverse.reshape(safe.shape)]  # (b, short, dim)
            qb = queries[start:start + step]
            sims = np.einsum("bd,bsd->bs", qb, vecs)
            if self.metric == "l2":
                sims = 2 * sims - (qb * qb).sum(1, keepdims=True) - (vecs * vecs).sum(-1)
            sims = np.where(block_ids < 0, -np.inf, sims).astype(np.float32)
            s, pos = topk_rows(sims, k)
            out_s.append(s)
            out_i.append(np.where(np.isfinite(s), np.take_along_axis(block_ids, pos, 1), -1))
        return np.concatenate(out_s), np.concatenate(out_i)

    @classmethod
    def load(cls, path: str | os.PathLike, refine_vectors: Any = None) -> AnnIndex:
        import json

        obj = super().load(path)
        config = json.loads((Path(path) / "index.json").read_text())
        obj.requested_factory = config.get("requested_factory", obj.factory)
        obj.nprobe, obj.ef_search, obj.rerank = config.get("nprobe"), config.get("ef_search"), config.get("rerank")
        obj.train_size, obj.seed = config.get("train_size"), config.get("seed", 0)
        obj._search_block = obj.search_block
        obj.refine_vectors = refine_vectors
        obj._apply_search_params()
        return obj

    def get_config_dict(self) -> dict[str, Any]:
        base = super().get_config_dict() if self.index is not None else {"dim": self._dim, "factory": self.factory,
                                                                          "metric": self.metric, "ntotal": 0}
        return {**base, "requested_factory": self.requested_factory, "nprobe": self.nprobe,
                "ef_search": self.ef_search, "rerank": self.rerank, "train_size": self.train_size, "seed": self.seed}


def recall_at_k(index: IndexBackend, vectors: Any, queries: np.ndarray, k: int = 100,
                exact: tuple[np.ndarray, np.ndarray] | None = None, metric: Metric | None = None) -> float:
    """Mean fraction of the exact top-``k`` ids that ``index`` returns in its top-``k`` (recall@k vs exact search).

    Args:
        index: the index under test.
        vectors: the corpus vectors (array or memmap) used for the exact answer; a ``ShardStore`` is searched with
            :class:`~negmine.index.streamed.StreamedExactIndex`. Ignored when ``exact`` is given.
        queries: the query sample.
        k: list length.
        exact: precomputed exact ``(scores, ids)`` for ``queries`` (reuse it across indexes).
        metric: metric of the exact search (default: the index's).
    """
    k = check_k(k)
    q = check_vectors(queries, index.dim, "queries")
    if exact is None:
        exact = exact_search(vectors, q, k, metric or index.metric)
    truth = exact[1][:, :k]
    _, got = index.search(q, k)
    hits = [len(set(t[t >= 0].tolist()) & set(g[g >= 0].tolist())) / max(1, int((t >= 0).sum()))
            for t, g in zip(truth, got)]
    return float(np.mean(hits)) if hits else 1.0


def exact_search(vectors: Any, queries: np.ndarray, k: int, metric: Metric = "ip",
                 max_memory_mb: float = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The oracle answer for ``queries``: streamed for a ShardStore, ExactIndex on an in-memory array."""
    if hasattr(vectors, "iter_blocks"):
        from negmine.index.streamed import StreamedExactIndex

        return StreamedExactIndex(vectors, metric, max_memory_mb=max_memory_mb, engine="numpy").search(queries, k)
    oracle = ExactIndex(queries.shape[1], metric)
    oracle.add(np.asarray(vectors, dtype=np.float32))
    return oracle.search(queries, k)


def sample_queries(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted row ids of a seeded sample of ``min(size, n)`` queries (for recall measurement)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
