"""Retriever = encoder + index + embedding cache. Produces :class:`Candidates`, the input of every miner."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from negmine.data import RetrievalData
from negmine.encoders import EmbeddingCache, Encoder, encode_with_cache
from negmine.index import IndexBackend, make_index
from negmine.index.exact import exact_scores

logger = logging.getLogger(__name__)

#: extra candidates searched per query before the exact rescoring cuts back to ``top_k`` (see :meth:`Retriever.search`)
RESCORE_MARGIN = 16


@dataclass(frozen=True)
class Candidates:
    """Top-k search output for a batch of queries. Scores: higher = more similar.

    ``indices`` are rows into ``doc_ids`` (``-1`` = padding, the FAISS convention); ranks are column positions.
    """

    query_ids: list[str]
    doc_ids: list[str]
    indices: np.ndarray  # (n_queries, k) int64
    scores: np.ndarray  # (n_queries, k) float32

    def to_run(self) -> dict[str, dict[str, float]]:
        run: dict[str, dict[str, float]] = {}
        for row, qid in enumerate(self.query_ids):
            run[qid] = {self.doc_ids[i]: float(s) for i, s in zip(self.indices[row], self.scores[row]) if i >= 0}
        return run


def unique_encode(
    encoder: Encoder,
    texts: Sequence[str],
    kind: str,
    cache: EmbeddingCache | None,
    batch_size: int,
    show_progress_bar: bool,
    desc: str,
) -> np.ndarray:
    """Encode each distinct text once (through the cache) and expand back to one row per input text."""
    unique = list(dict.fromkeys(texts))
    emb = encode_with_cache(
        encoder, unique, kind, cache=cache, batch_size=batch_size, show_progress_bar=show_progress_bar, desc=desc
    )
    if len(unique) == len(texts):
        return np.asarray(emb)
    position = {t: i for i, t in enumerate(unique)}
    return np.asarray(emb)[[position[t] for t in texts]]


def canonical_order(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, ties by corpus row ascending (padding last), so every backend agrees."""
    safe = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    order = np.lexsort((safe, -scores), axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(indices, order, 1)


class Retriever:
    """Encodes a corpus into an index and searches it.

    Args:
        encoder: any :class:`~negmine.encoders.Encoder` (see :func:`negmine.encoders.load_encoder`).
        index_backend: ``"faiss"`` (default) or ``"exact"``; or pass a ready ``index`` (e.g. a loaded ANN index).
        factory: FAISS factory string for a new index (default exact ``Flat``).
        cache: embedding cache (``None`` disables caching).
        batch_size: encoding batch size.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        index_backend: str = "faiss",
        factory: str = "Flat",
        index: IndexBackend | None = None,
        cache: EmbeddingCache | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = True,
    ) -> None:
        self.encoder, self.index_backend, self.factory = encoder, index_backend, factory
        self.index, self.cache, self.batch_size = index, cache, batch_size
        self.show_progress_bar = show_progress_bar
        self.doc_ids: list[str] = []
        self.doc_embeddings: np.ndarray | None = None

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return unique_encode(
            self.encoder, texts, "query", self.cache, self.batch_size, self.show_progress_bar, "Encoding queries"
        )

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return unique_encode(
            self.encoder, texts, "document", self.cache, self.batch_size, self.show_progress_bar, "Encoding corpus"
        )

    def build(self, data: RetrievalData) -> None:
        """Encode every document of ``data.corpus`` and add it to the index (unless a filled index was given)."""
        self.doc_ids = list(data.corpus)
        self.doc_embeddings = self.encode_documents([data.doc_text(d) for d in self.doc_ids])
        if self.index is None:
            self.index = make_index(self.doc_embeddings.shape[1], self.index_backend, self.factory)
        if self.index.ntotal == 0:
            self.index.add(self.doc_embeddings)
        elif self.index.ntotal != len(self.doc_ids):
            raise ValueError(
                f"the given index holds {self.index.ntotal} vectors but the corpus has "
                f"{len(self.doc_ids)} documents; it was built for another corpus"
            )

    def search(
        self, query_ids: Sequence[str], query_texts: Sequence[str], top_k: int
    ) -> tuple[Candidates, np.ndarray]:
        """Search ``top_k`` documents per query. Returns the candidates and the query embeddings.

        The index returns ``top_k + RESCORE_MARGIN`` candidates; their scores are recomputed by
        :func:`~negmine.index.exact.exact_scores` (float64 sums, independent of blocking and threads), put in canonical
        order and cut to ``top_k``. So the candidates do not depend on the backend's float32 rounding: a search on one
        machine and one sharded over a Ray cluster give the same bytes (exact backends; ANN ones return what they
        found, rescored)."""
        if self.index is None:
            raise RuntimeError("call build() before search()")
        q_emb = self.encode_queries(query_texts)
        k = min(top_k, self.index.ntotal)
        scores, indices = self.index.search(q_emb, min(k + RESCORE_MARGIN, self.index.ntotal))
        if self.doc_embeddings is not None:
            scores = exact_scores(q_emb, self.doc_embeddings, indices, getattr(self.index, "metric", "ip"))
        scores, indices = canonical_order(scores, indices)
        return Candidates(list(query_ids), self.doc_ids, indices[:, :k], scores[:, :k]), q_emb

    def get_config_dict(self) -> dict[str, Any]:
        index = (
            self.index.get_config_dict()
            if self.index is not None
            else {"backend": self.index_backend, "factory": self.factory}
        )
        return {"encoder": self.encoder.fingerprint(), "index": index, "batch_size": self.batch_size}
