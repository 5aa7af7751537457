"""Retriever = encoder + index + embedding cache. Produces :class:`Candidates`, the input of every miner.

Also the layer that builds persisted index folders from data (:func:`build_index`, ``negmine index build``) and opens
them for search (:meth:`Retriever.from_index_dir`): :mod:`negmine.index` stores and loads vectors and indexes but
knows nothing of data or encoders.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from negmine.data import RetrievalData, load_data
from negmine.encoders import EmbeddingCache, Encoder, encode_with_cache, load_encoder
from negmine.encoders.cache import is_lazy
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
    doc_ids: Sequence[str]  # a list, or the lazy id sequence of a disk-backed corpus
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
    """Encode each distinct text once (through the cache) and expand back to one row per input text.

    The texts of a disk-backed corpus (:meth:`negmine.data.disk.DocTexts.unique`) come with their distinct texts and
    the position of each among them already known from the corpus index: no set of every text is built."""
    if callable(getattr(texts, "unique", None)) and is_lazy(texts):
        distinct, inverse = texts.unique()  # type: ignore[attr-defined]
        emb = encode_with_cache(encoder, distinct, kind, cache=cache, batch_size=batch_size,
                                show_progress_bar=show_progress_bar, desc=desc)
        return np.asarray(emb) if len(distinct) == len(texts) else np.asarray(emb)[inverse]
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
        self.doc_ids: Sequence[str] = []
        self.doc_embeddings: np.ndarray | None = None
        self.build_seconds: dict[str, float] = {}  # encode_corpus / index seconds of the last build()

    @classmethod
    def from_index_dir(
        cls,
        path: str | os.PathLike,
        data: RetrievalData,
        encoder: Encoder,
        *,
        verify: str = "auto",
        cache: EmbeddingCache | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = True,
    ) -> Retriever:
        """A retriever over a persisted index folder (``negmine index build``), instead of :meth:`build`: no corpus
        encoding; the document vectors (for positive scores) come memory-mapped from the folder. Checks first that
        ``encoder`` is the one the index was built with and that ``data``'s corpus (ids and texts) is the one
        indexed."""
        from negmine.index.store import load_index_dir

        doc_ids = data.corpus_ids()
        loaded = load_index_dir(path, encoder_fingerprint=encoder.fingerprint(), doc_ids=doc_ids, verify=verify,
                                doc_texts=data.doc_texts(doc_ids))
        retriever = cls(encoder, index=loaded.index, cache=cache, batch_size=batch_size,
                        show_progress_bar=show_progress_bar)
        retriever.doc_ids = doc_ids
        store = loaded.embeddings
        retriever.doc_embeddings = store.shard(0) if store.num_shards == 1 else store
        logger.info("using the index in %s (%s, %s vectors)", path, loaded.manifest["factory"],
                    loaded.manifest["ntotal"])
        return retriever

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
        t = time.perf_counter()
        self.doc_ids = data.corpus_ids()  # a lazy sequence for a disk-backed corpus
        self.doc_embeddings = self.encode_documents(data.doc_texts(self.doc_ids))
        self.build_seconds = {"encode_corpus": time.perf_counter() - t}
        t = time.perf_counter()
        if self.index is None:
            if self.index_backend == "ray":  # exact search sharded over the connected Ray cluster (negmine[ray])
                from negmine.distributed.search import RayShardedIndex

                address = getattr(self.cache, "address", None)  # the RayEmbeddingCache's cluster
                self.index = RayShardedIndex(self.doc_embeddings.shape[1], address=address)
            else:
                self.index = make_index(self.doc_embeddings.shape[1], self.index_backend, self.factory)
        if self.index.ntotal == 0:
            self.index.add(self.doc_embeddings)
        elif self.index.ntotal != len(self.doc_ids):
            raise ValueError(
                f"the given index holds {self.index.ntotal} vectors but the corpus has "
                f"{len(self.doc_ids)} documents; it was built for another corpus"
            )
        self.build_seconds["index"] = time.perf_counter() - t

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


def build_index(retriever: Any = "minilm", data: Any = "scifact", out: str | os.PathLike = "runs/index", *,
                split: str = "train", unknown_qrels: str = "error", factory: str = "Flat", metric: str = "ip",
                model_path: str | None = None, precision: str = "fp32", batch_size: int = 32,
                cache_dir: str | None = None, no_cache: bool = False,
                nprobe: int | None = None, ef_search: int | None = None, rerank: int | None = None,
                train_size: int | None = None, seed: int = 0, recall_queries: int = 200, recall_k: int = 100,
                max_memory_mb: float = 1024, shard_rows: int = 1_000_000, overwrite: bool = False,
                show_progress_bar: bool = True, ray_address: str | None = None) -> dict[str, Any]:
    """Encode a corpus (through the embedding cache) and persist an index over it: ``negmine index build``.

    The recall of an approximate index is measured against exact search on up to ``recall_queries`` queries of
    ``split`` (embedded with the same encoder), or on a sample of documents when the data has no queries.

    Args:
        retriever: preset name, model folder, hub id or ``hashing`` (as ``negmine mine --retriever``).
        data: a BEIR folder or dataset name (the corpus to index; ``split`` picks the queries for the recall).
        unknown_qrels: qrels rows naming ids the corpus or queries lack: ``error``, ``skip`` or ``keep`` (as
            :func:`negmine.data.load_data`; ArguAna's test qrels need ``keep`` or ``skip``).
        out: the index folder.
        factory, metric, nprobe, ef_search, rerank, train_size, seed, recall_queries, recall_k, max_memory_mb,
            shard_rows, overwrite: see :func:`negmine.index.store.build_index_dir`.
        model_path / precision / batch_size / cache_dir / no_cache: encoder options, as for ``negmine mine``.
        ray_address: encode on this Ray cluster (``host:port`` or ``auto``; :mod:`negmine.distributed`): the same
            cache entries and vectors as a local build.

    Returns:
        The manifest (also written to ``out/negmine_index.json``).
    """
    from negmine.index.store import MANIFEST, build_index_dir
    from negmine.io import write_json

    loaded = load_data(data, split, unknown_qrels=unknown_qrels)
    encoder = load_encoder(retriever, model_path=model_path, precision=precision)
    cache = None if no_cache else EmbeddingCache(cache_dir)
    if ray_address:
        from negmine.distributed.encode import ray_cache

        cache = ray_cache(encoder, ray_address, cache, cache_dir=cache_dir, no_cache=no_cache, batch_size=batch_size)
    doc_ids = loaded.corpus_ids()
    t = time.perf_counter()
    doc_texts = loaded.doc_texts(doc_ids)
    doc_emb = unique_encode(encoder, doc_texts, "document", cache, batch_size,
                            show_progress_bar, "Encoding corpus")
    encode_s = time.perf_counter() - t
    qids = loaded.split_query_ids
    queries = None
    if recall_queries and qids:
        from negmine.index.ann import sample_queries

        picked = [qids[i] for i in sample_queries(len(qids), recall_queries, seed)]
        queries = unique_encode(encoder, [loaded.queries[q] for q in picked], "query", cache, batch_size,
                                show_progress_bar, "Encoding queries")
    similarity = getattr(encoder, "similarity", "cosine")
    manifest = build_index_dir(out, np.asarray(doc_emb, dtype=np.float32), doc_ids, factory=factory, metric=metric,
                               encoder_fingerprint=encoder.fingerprint(), nprobe=nprobe, ef_search=ef_search,
                               rerank=rerank, train_size=train_size, seed=seed, queries=queries,
                               recall_queries=recall_queries, recall_k=recall_k, max_memory_mb=max_memory_mb,
                               shard_rows=shard_rows, source=f"{loaded.name or data} ({similarity})",
                               overwrite=overwrite, doc_texts=doc_texts)
    manifest["timings"]["encode_corpus_s"] = encode_s
    write_json(Path(out) / MANIFEST, manifest)
    return manifest
