"""Dense retrieval evaluation on a BEIR folder: encode (through the embedding cache), search exactly, score with
``pytrec_eval``. :class:`~negmine.evaluation.evaluator.BEIREvaluator` runs the same evaluation as a
sentence-transformers evaluator for training.

A second evaluation of the same model on the same data reads the corpus embeddings from the cache
(``$NEGMINE_CACHE``) instead of re-encoding: the cache key is the encoder's weights hash, prompts and max length plus
the exact document texts (``title + " " + text``, as MTEB builds them), so the miner's SciFact embeddings are reused.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from negmine.data import RetrievalData, UnknownQrels, load_data
from negmine.encoders import EmbeddingCache, Encoder, load_encoder
from negmine.errors import DataError
from negmine.evaluation.metrics import DEFAULT_K_VALUES, check_k_values, evaluate_per_query, format_table

logger = logging.getLogger(__name__)

METRICS_FORMAT = "negmine.metrics/v1"


@dataclass
class EvaluationResult:
    """Mean metrics, per-query metrics (for significance tests), the run and how it was produced."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run: dict[str, dict[str, float]] = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def num_queries(self) -> int:
        return len(next(iter(self.per_query.values()))) if self.per_query else 0

    def table(self) -> str:
        return format_table(self.metrics, self.config.get("k_values", DEFAULT_K_VALUES))

    def to_dict(self, per_query: bool = True) -> dict[str, Any]:
        out = {"format": METRICS_FORMAT, **self.config, "num_queries": self.num_queries, "metrics": self.metrics}
        if per_query:
            out["per_query"] = self.per_query
        return out

    def save(self, out_dir: str | os.PathLike, write_run: bool = True) -> Path:
        """Write ``metrics.json`` (and ``run.trec``, the top-k run in TREC format) into ``out_dir``."""
        from negmine.io import write_json

        out_dir = Path(out_dir)
        path = out_dir / "metrics.json"
        write_json(path, self.to_dict())
        if write_run:
            write_trec_run(out_dir / "run.trec", self.run, tag=str(self.config.get("model", "negmine")))
        return path


def write_trec_run(path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], tag: str = "negmine") -> None:
    """Write a TREC run file: ``qid Q0 docid rank score tag``, ranked as trec_eval ranks."""
    from negmine.evaluation.metrics import rank
    from negmine.io import atomic_open

    tag = tag.replace(" ", "_").replace("/", "__") or "negmine"
    with atomic_open(path) as handle:
        for qid, docs in run.items():
            for position, doc in enumerate(rank(docs), start=1):
                handle.write(f"{qid} Q0 {doc} {position} {docs[doc]:.6f} {tag}\n")


def load_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``metrics.json`` written by ``negmine eval``; checks it carries per-query scores."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError("no such metrics file", path=path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"malformed JSON ({err})", path=path) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("metrics"), dict):
        raise DataError("not a negmine metrics file (no 'metrics' object)", path=path, field="metrics")
    if not isinstance(obj.get("per_query"), dict) or not obj["per_query"]:
        raise DataError("no per-query scores; re-run `negmine eval` to write them", path=path, field="per_query")
    return obj


# --------------------------------------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------------------------------------


def _resolve_cache(cache: EmbeddingCache | bool | None) -> EmbeddingCache | None:
    if cache is True:
        return EmbeddingCache()
    if cache is False or cache is None:
        return None
    return cache


def resolve_encoder(model: Any, *, model_path: str | os.PathLike | None = None, query_prompt: str | None = None,
                    corpus_prompt: str | None = None, max_seq_length: int | None = None,
                    device: str | None = None) -> Encoder:
    """``load_encoder`` (the one model resolver) plus loading the weights now, so a model that cannot be loaded fails
    before any data work, with a one-line error."""
    encoder = load_encoder(model, model_path=model_path, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
                           max_seq_length=max_seq_length, device=device, option="--model")
    from negmine.encoders.st import SentenceTransformerEncoder

    if isinstance(encoder, SentenceTransformerEncoder):
        _ = encoder.model  # load now (a failure raises ModelNotFoundError naming --model)
    return encoder


def retrieve(encoder: Encoder, data: RetrievalData, top_k: int = 100, *, query_ids: Sequence[str] | None = None,
             ignore_identical_ids: bool = True, cache: EmbeddingCache | None = None, batch_size: int = 32,
             show_progress_bar: bool = False, index_backend: str = "exact") -> dict[str, dict[str, float]]:
    """Exact dense retrieval of the top ``top_k`` documents for each query: a TREC-style run.

    Args:
        encoder: any :class:`~negmine.encoders.Encoder`.
        data: corpus and queries (qrels are not read here).
        top_k: documents kept per query.
        query_ids: queries to search (default ``data.split_query_ids``: those with a positive in the split).
        ignore_identical_ids: never return a document whose id equals the query id (one extra is searched so
            ``top_k`` documents remain).
        cache: embedding cache; ``None`` encodes without caching.
        batch_size: encoding batch size.
        show_progress_bar: progress bars while encoding.
        index_backend: ``exact`` (numpy), or ``ray`` (sharded over the connected Ray cluster; same results).
    """
    from negmine.retrieve import Retriever

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    query_ids = list(data.split_query_ids if query_ids is None else query_ids)
    missing = [q for q in query_ids if q not in data.queries]
    if missing:
        raise DataError(f"{len(missing):,} query id(s) have no text in the queries file (e.g. {missing[:3]})",
                        field="query-id")
    if not query_ids:
        raise DataError(f"no queries to evaluate in {data.name or 'the data'}[{data.split}]: no qrels query has a "
                        "positive judgement and a text", field="qrels")
    retriever = Retriever(encoder, index_backend=index_backend, cache=cache, batch_size=batch_size,
                          show_progress_bar=show_progress_bar)
    retriever.build(data)
    extra = 1 if ignore_identical_ids else 0
    candidates, _ = retriever.search(query_ids, [data.queries[q] for q in query_ids], top_k + extra)
    run = candidates.to_run()
    if ignore_identical_ids:
        for qid, docs in run.items():
            docs.pop(qid, None)
            if len(docs) > top_k:  # drop the lowest-ranked extra (trec order: score desc, id desc)
                from negmine.evaluation.metrics import rank

                del docs[rank(docs)[-1]]
    return run


def _check_unknown(data: RetrievalData) -> None:
    unknown_queries = sum(n for reason, n in data.report.kept_unknown.items() if "query-id" in reason)
    if unknown_queries:
        logger.warning("%s: %d qrels row(s) name queries missing from the queries file; those queries cannot be "
                       "evaluated and are left out", data.name, unknown_queries)
    unknown_docs = sum(n for reason, n in data.report.kept_unknown.items() if "corpus-id" in reason)
    if unknown_docs:
        logger.warning("%s: %d qrels row(s) name documents missing from the corpus; they count as relevant but "
                       "cannot be retrieved (official BEIR/MTEB scoring)", data.name, unknown_docs)


def evaluate_beir(model: Any, data: str | os.PathLike | RetrievalData, split: str = "test", *,
                  k_values: Sequence[int] = DEFAULT_K_VALUES, ignore_identical_ids: bool = True,
                  unknown_qrels: UnknownQrels = "error", batch_size: int = 32,
                  cache: EmbeddingCache | bool | None = True, model_path: str | os.PathLike | None = None,
                  query_prompt: str | None = None, corpus_prompt: str | None = None,
                  max_seq_length: int | None = None, device: str | None = None,
                  show_progress_bar: bool = False, ray_address: str | None = None,
                  corpus_storage: str = "memory") -> EvaluationResult:
    """Evaluate a dense retriever on a BEIR dataset: nDCG@k, Recall@k, Precision@k, MRR@k, MAP@k and MAP.

    Args:
        model: a preset name (``minilm``…), a model folder, a hub id, a ``SentenceTransformer`` or an ``Encoder``.
        data: a BEIR folder (or a dataset name under ``$NEGMINE_DATA``), or loaded :class:`RetrievalData`.
        split: the qrels split (``qrels/<split>.tsv``).
        k_values: cut-offs; the run keeps ``max(k_values)`` documents per query.
        ignore_identical_ids: drop retrieved documents whose id equals the query id (BEIR's default; ArguAna needs
            it, and it changes nothing where query and document ids never collide, as on SciFact).
        unknown_qrels: qrels rows naming unknown ids: ``"error"`` (default), ``"keep"`` (an unknown document counts
            as relevant but unretrievable, the official scoring of ArguAna's 5 missing documents) or ``"skip"``.
        batch_size: encoding batch size.
        cache: ``True`` (default) uses the embedding cache in ``$NEGMINE_CACHE``; ``False`` disables it; or pass an
            :class:`EmbeddingCache`.
        model_path: local weights folder for a preset (offline use).
        query_prompt / corpus_prompt / max_seq_length / device: encoder overrides (default: the preset's/model's).
        show_progress_bar: progress bars while encoding.
        ray_address: encode and search on this Ray cluster (``host:port`` or ``auto``; :mod:`negmine.distributed`);
            the same run as a local evaluation.
        corpus_storage: ``memory``, ``disk`` or ``auto`` (:func:`negmine.data.load_data`): a corpus read through an
            index on disk instead of dicts; its index is kept beside the embedding cache. The same metrics.

    Returns:
        An :class:`EvaluationResult`; ``.save(folder)`` writes ``metrics.json`` and ``run.trec``.

    Raises:
        ModelNotFoundError: the model folder does not exist or cannot be loaded.
        DataError: missing split, unknown qrels ids (with ``unknown_qrels="error"``), or an empty run.

    Example:
        >>> from negmine.testing import toy_data
        >>> result = evaluate_beir("hashing", toy_data(), k_values=(1, 10), cache=False)
        >>> result.num_queries, 0 < result.metrics["ndcg@10"] <= 1
        (6, True)
    """
    ks = check_k_values(k_values)
    started = time.perf_counter()
    if isinstance(data, RetrievalData):
        loaded = data
    else:
        loaded = load_data(data, split, unknown_qrels=unknown_qrels, corpus_storage=corpus_storage,
                           cache_dir=getattr(cache, "root", None))
    _check_unknown(loaded)
    encoder = resolve_encoder(model, model_path=model_path, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
                              max_seq_length=max_seq_length, device=device)
    store = _resolve_cache(cache)
    if ray_address:
        from negmine.distributed.encode import ray_cache

        store = ray_cache(encoder, ray_address, store, no_cache=store is None, batch_size=batch_size)
    hits_before = store.hits if store is not None else 0
    run = retrieve(encoder, loaded, max(ks), ignore_identical_ids=ignore_identical_ids, cache=store,
                   batch_size=batch_size, show_progress_bar=show_progress_bar,
                   index_backend="ray" if ray_address else "exact")
    qrels = {q: loaded.qrels[q] for q in loaded.split_query_ids}  # qrels queries without a text are left out
    means, per_query = evaluate_per_query(qrels, run, ks, ignore_identical_ids=ignore_identical_ids)
    fingerprint = encoder.fingerprint()
    config = {
        "model": (str(model) if isinstance(model, (str, os.PathLike))
                  else getattr(encoder, "name", type(model).__name__)),
        "data": loaded.sources[0].rsplit("/", 1)[0] if loaded.sources else loaded.name,
        "dataset": loaded.name,
        "split": loaded.split or split,
        "k_values": list(ks),
        "ignore_identical_ids": ignore_identical_ids,
        "unknown_qrels": loaded.report.to_dict()["kept_unknown"],
        "encoder": fingerprint,
        "num_documents": len(loaded.corpus),
        "cache_hits": (store.hits - hits_before) if store is not None else 0,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return EvaluationResult(metrics=means, per_query=per_query, run=run, config=config)


# --------------------------------------------------------------------------------------------------------------------
# smaller evaluation sets (for BEIREvaluator during training)
# --------------------------------------------------------------------------------------------------------------------


def subsample(data: RetrievalData, max_queries: int | None = None, max_corpus: int | None = None,
              seed: int = 0) -> RetrievalData:
    """A smaller evaluation set for use during training: ``max_queries`` queries, all their positives, and random
    distractors up to ``max_corpus`` documents (seeded). Scores on it are not comparable with the full set's."""
    rng = np.random.default_rng(seed)
    query_ids = data.split_query_ids
    if max_queries is not None and len(query_ids) > max_queries:
        query_ids = [query_ids[i] for i in sorted(rng.choice(len(query_ids), max_queries, replace=False))]
    keep = {d for q in query_ids for d in data.positives(q) if d in data.corpus}
    others = [d for d in data.corpus if d not in keep]
    budget = len(others) if max_corpus is None else max(0, max_corpus - len(keep))
    if budget < len(others):
        others = [others[i] for i in sorted(rng.choice(len(others), budget, replace=False))]
    keep.update(others)
    corpus = {d: doc for d, doc in data.corpus.items() if d in keep}
    qrels = {q: dict(data.qrels[q]) for q in query_ids}
    return RetrievalData(corpus, {q: data.queries[q] for q in query_ids}, qrels, name=data.name, split=data.split,
                         sources=list(data.sources), report=data.report)
