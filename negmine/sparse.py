"""Retrievers without document vectors: BM25 (through ``bm25s``) and reciprocal-rank fusion of any retrievers.

Both produce the same :class:`~negmine.retrieve.Candidates` as the dense :class:`~negmine.retrieve.Retriever`, so
the miner sees one interface. What they lack is a vector per document, so instead of embeddings they expose
:meth:`pair_scorer`: the teacher score of any (query, document) pair, which the miner needs for the positives' scores
(the margin filters) and for padded negatives. Scores mean "higher is more similar" everywhere:

- **BM25** scores are unbounded, non-negative sums of per-term weights (Lucene's variant by default). The margin
  filters apply to them as written: ``perc-pos 0.95`` keeps ``s(q, n) < 0.95 · s(q, p)`` (scale-free, meaningful);
  ``margin-pos`` and ``abs`` compare against absolute BM25 points, so their numbers must be chosen for BM25.
- **Reciprocal-rank fusion** (Cormack et al., 2009): ``s(q, d) = Σ_r 1 / (k + rank_r(d))`` over the component
  retrievers, ``rank`` 1-based within each component's top ``depth`` (a document outside a component's list gets
  nothing from it); ``k = 60`` as in the paper. A fused score is a function of ranks only, so a margin against the
  positive's fused score means nothing: :func:`check_score_filters` refuses ``abs``, ``margin-pos`` and ``perc-pos``
  on fused scores unless a cross-encoder rescores the candidates first.

Retriever specs: ``bm25`` and ``hybrid:A+B[+C…]`` where each part is ``bm25`` or any dense retriever (a preset,
folder or hub id), e.g. ``hybrid:bm25+minilm``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from negmine.data import RetrievalData
from negmine.errors import ConfigError
from negmine.retrieve import Candidates, canonical_order

logger = logging.getLogger(__name__)

RRF_CITATION = """@inproceedings{cormack2009rrf,
  title={Reciprocal rank fusion outperforms condorcet and individual rank learning methods},
  author={Cormack, Gordon V. and Clarke, Charles L. A. and Buettcher, Stefan},
  booktitle={SIGIR},
  year={2009}
}"""

HYBRID_PREFIX = "hybrid:"
PairScorer = Callable[[int, Sequence[int]], np.ndarray]  # (query row, doc rows) -> teacher scores


def retriever_kind(spec: str) -> str:
    """``"bm25"``, ``"hybrid"`` or ``"dense"`` for a ``--retriever`` value."""
    if spec == "bm25":
        return "bm25"
    if spec.startswith(HYBRID_PREFIX):
        return "hybrid"
    return "dense"


def hybrid_parts(spec: str) -> list[str]:
    """``"hybrid:bm25+minilm"`` -> ``["bm25", "minilm"]`` (at least two parts, none empty)."""
    parts = [p.strip() for p in spec[len(HYBRID_PREFIX) :].split("+")]
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"retriever {spec!r}: a hybrid names two or more retrievers, e.g. 'hybrid:bm25+minilm'")
    if any(p.startswith(HYBRID_PREFIX) for p in parts):
        raise ConfigError(f"retriever {spec!r}: hybrids do not nest")
    return parts


def check_score_filters(
    spec: str, strategies: Sequence[str], *, rescored: bool, near_duplicate: float | None, index_dir: str | None
) -> None:
    """Refuse the combinations that have no meaning for a retriever without document vectors."""
    kind = retriever_kind(spec)
    if kind == "dense":
        return
    if kind == "hybrid":
        hybrid_parts(spec)
    if near_duplicate is not None:
        raise ConfigError(
            f"--near-duplicate compares document vectors; retriever {spec!r} has none "
            "(mine with a dense retriever, or drop --near-duplicate)"
        )
    if index_dir:
        raise ConfigError(f"--index-dir holds a dense index; retriever {spec!r} builds its own")
    scored = [s for s in strategies if s in ("abs", "margin-pos", "perc-pos")]
    if kind == "hybrid" and scored and not rescored:
        raise ConfigError(
            f"strategy {', '.join(scored)} compares scores with the positive's, but {spec!r} fuses ranks "
            "(reciprocal-rank fusion: a score is a sum of 1/(k+rank)), so a margin has no meaning. Use "
            "--strategy range (top-k / --range MIN:MAX), or rescore with --cross-encoder"
        )


def tokenize(texts: Sequence[str], stopwords: str | None = "en") -> list[list[str]]:
    """Lower-cased word tokens (``\\w\\w+``), English stopwords removed, no stemming (bm25s' tokenizer)."""
    from negmine._optional import require

    bm25s = require("bm25s", "the BM25 retriever")
    return bm25s.tokenize(list(texts), lower=True, stopwords=stopwords, return_ids=False, show_progress=False)


class BM25Retriever:
    """BM25 over the corpus, with ``bm25s``'s sparse index (exact: every document is scored).

    Args:
        k1, b: the BM25 parameters (Lucene's defaults 1.2/0.75 are also common; bm25s uses 1.5/0.75).
        method: bm25s' variant: ``lucene`` (default), ``robertson``, ``atire``, ``bm25l``, ``bm25+``.
        stopwords: ``"en"`` or ``None``.
    """

    doc_embeddings = None  # no document vectors: the miner asks pair_scorer() instead

    def __init__(
        self,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | None = "en",
        show_progress_bar: bool = False,
    ) -> None:
        self.k1, self.b, self.method, self.stopwords = k1, b, method, stopwords
        self.show_progress_bar = show_progress_bar
        self.doc_ids: list[str] = []
        self._model: Any = None
        self._query_tokens: list[list[str]] = []

    def build(self, data: RetrievalData) -> None:
        from negmine._optional import require

        bm25s = require("bm25s", "the BM25 retriever")
        self.doc_ids = list(data.corpus)
        tokens = tokenize([data.doc_text(d) for d in self.doc_ids], self.stopwords)
        self._model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        self._model.index(tokens, show_progress=self.show_progress_bar)

    def score_all(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for one tokenised query (zeros for an empty query)."""
        if self._model is None:
            raise RuntimeError("call build() before searching")
        if not query_tokens:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return np.asarray(self._model.get_scores(list(query_tokens)), dtype=np.float32)

    def search(self, query_ids: Sequence[str], query_texts: Sequence[str], top_k: int) -> tuple[Candidates, None]:
        """The ``top_k`` documents of each query by BM25 (ties by corpus row). No query vectors: returns ``None``."""
        self._query_tokens = tokenize(query_texts, self.stopwords)
        k = min(top_k, len(self.doc_ids))
        scores = np.zeros((len(query_ids), k), dtype=np.float32)
        indices = np.zeros((len(query_ids), k), dtype=np.int64)
        for row, tokens in enumerate(self._query_tokens):
            all_scores = self.score_all(tokens)
            # the k best, ties broken by row: sort by (-score, row) over the documents at or above the k-th score
            kth = np.partition(all_scores, len(all_scores) - k)[len(all_scores) - k] if k else np.inf
            pool = np.flatnonzero(all_scores >= kth)
            order = np.lexsort((pool, -all_scores[pool]))[:k]
            indices[row], scores[row] = pool[order], all_scores[pool[order]]
        scores, indices = canonical_order(scores, indices)
        return Candidates(list(query_ids), self.doc_ids, indices, scores), None

    def pair_scorer(self) -> PairScorer:
        """Scores of (query row of the last search, doc rows)."""
        tokens = list(self._query_tokens)
        return lambda row, doc_rows: self.score_all(tokens[row])[np.asarray(doc_rows, dtype=np.int64)]

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "type": "bm25",
            "library": "bm25s",
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "stopwords": self.stopwords,
            "stemmer": None,
        }


def rrf_fuse(rankings: Sequence[np.ndarray], k: int = 60) -> dict[int, float]:
    """Reciprocal-rank fusion of ranked doc-row lists (best first; negative rows = padding, skipped)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking.tolist(), start=1):
            if doc >= 0:
                fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


class FusionRetriever:
    """Reciprocal-rank fusion of two or more retrievers over the same corpus (e.g. BM25 + a dense model).

    Args:
        retrievers: built or unbuilt retrievers with ``build``/``search`` (dense :class:`~negmine.retrieve.Retriever`,
            :class:`BM25Retriever`).
        names: one label per retriever (for the config).
        k: the RRF constant (60, Cormack et al.).
        depth: how many documents each component contributes (at least ``top_k`` of the search).
    """

    doc_embeddings = None
    citation = RRF_CITATION

    def __init__(self, retrievers: Sequence[Any], names: Sequence[str], *, k: int = 60, depth: int = 100) -> None:
        if len(retrievers) < 2 or len(names) != len(retrievers):
            raise ConfigError("reciprocal-rank fusion needs two or more retrievers, one name each")
        if k < 0 or depth < 1:
            raise ConfigError(f"RRF needs k >= 0 and depth >= 1, got k={k}, depth={depth}")
        self.retrievers, self.names, self.k, self.depth = list(retrievers), list(names), k, depth
        self.doc_ids: list[str] = []
        self._fused: list[dict[int, float]] = []

    def build(self, data: RetrievalData) -> None:
        for retriever in self.retrievers:
            if not retriever.doc_ids:  # parts may come built
                retriever.build(data)
        self.doc_ids = list(self.retrievers[0].doc_ids)
        for name, retriever in zip(self.names, self.retrievers):
            if list(retriever.doc_ids) != self.doc_ids:
                raise ConfigError(f"hybrid part {name!r} indexed another corpus order than {self.names[0]!r}")

    def search(self, query_ids: Sequence[str], query_texts: Sequence[str], top_k: int) -> tuple[Candidates, None]:
        depth = min(max(self.depth, top_k), len(self.doc_ids))
        lists = [r.search(query_ids, query_texts, depth)[0].indices for r in self.retrievers]
        k_out = min(top_k, len(self.doc_ids))
        self._fused = []
        scores = np.zeros((len(query_ids), k_out), dtype=np.float32)
        indices = np.full((len(query_ids), k_out), -1, dtype=np.int64)
        for row in range(len(query_ids)):
            fused = rrf_fuse([ranking[row] for ranking in lists], self.k)
            self._fused.append(fused)
            best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k_out]
            indices[row, : len(best)] = [d for d, _ in best]
            scores[row, : len(best)] = [s for _, s in best]
        scores, indices = canonical_order(scores, indices)
        return Candidates(list(query_ids), self.doc_ids, indices, scores), None

    def pair_scorer(self) -> PairScorer:
        """Fused scores of (query row of the last search, doc rows); 0 for documents in no component's list."""
        fused = list(self._fused)
        return lambda row, doc_rows: np.array([fused[row].get(int(d), 0.0) for d in doc_rows], dtype=np.float32)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "type": "rrf",
            "k": self.k,
            "depth": self.depth,
            "parts": {name: r.get_config_dict() for name, r in zip(self.names, self.retrievers)},
        }
