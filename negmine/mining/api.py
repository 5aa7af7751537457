"""The mining stage end to end: load → encode (cached) → index → search → [rescore] → mine → write."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from negmine.data import RetrievalData, in_memory_label, load_data
from negmine.data.mined import MinedRecord, iter_rows, write_mined
from negmine.encoders import EmbeddingCache, Encoder, load_encoder
from negmine.index.exact import exact_scores
from negmine.io import write_json, write_jsonl, write_manifest
from negmine.mining.config import MineConfig
from negmine.mining.filters import Compose
from negmine.mining.miner import CorpusView, HardNegativeMiner, RescoreFn, SearchFn
from negmine.mining.stats import MiningStats, drop_warning
from negmine.retrieve import RESCORE_MARGIN, Candidates, Retriever, canonical_order
from negmine.sparse import PairScorer

logger = logging.getLogger(__name__)


@dataclass
class MiningResult:
    records: list[MinedRecord]
    stats: MiningStats
    config: MineConfig
    out_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def rows(self, fmt: str | None = None) -> list[dict[str, Any]]:
        """Training rows in ``fmt`` (default: the configured format)."""
        return list(iter_rows(self.records, fmt or self.config.format, self.config.output_scores))

    def to_dataset(self, fmt: str | None = None) -> Any:
        """A ``datasets.Dataset`` in a sentence-transformers format, ready for ``SentenceTransformerTrainer``."""
        from datasets import Dataset

        return Dataset.from_list(self.rows(fmt))


def mine_hard_negatives(
    data: Any,
    retriever: Any = "minilm",
    *,
    out: str | None = None,
    cache: EmbeddingCache | None = None,
    **options: Any,
) -> MiningResult:
    """Mine hard negatives in one call.

    Args:
        data: a :class:`~negmine.data.RetrievalData`, a BEIR folder / dataset name, a pair file, or a ``Dataset``.
        retriever: an :class:`~negmine.encoders.Encoder`, a ``SentenceTransformer``, a preset name, folder or hub id.
        out: if given, write ``mined.jsonl``, the training file, ``stats.json``, ``manifest.json`` and ``scores.png``.
        cache: embedding cache (default: ``$NEGMINE_CACHE``; pass ``no_cache=True`` to disable).
        **options: any :class:`~negmine.mining.config.MineConfig` field (``strategy``, ``percentage``,
            ``range_max``, ``num_negatives``, ``sampling``, ``seed``, ``format``…).

    Example:
        >>> from negmine import mine_hard_negatives
        >>> from negmine.testing import toy_data
        >>> result = mine_hard_negatives(toy_data(), "hashing", num_negatives=2, range_max=10,
        ...                              no_cache=True, show_progress_bar=False)
        >>> all(set(r.negative_ids).isdisjoint(r.positive_ids) for r in result.records)
        True
    """
    label = lambda x: x if isinstance(x, str) else type(x).__name__  # noqa: E731
    # data loaded from a folder, file or hub id is recorded as that origin and split, so that later stages (random
    # negatives, re-mining) reload it from the manifest; data built in memory is recorded by its type only
    origin = getattr(data, "origin", None)
    if origin is not None:
        options = {"split": data.split, **options}
    data_label = origin or (data if isinstance(data, str) else in_memory_label(data))
    config = MineConfig(retriever=label(retriever), data=data_label, out=out or "", **options)
    return run_mining(
        config,
        data=None if isinstance(data, str) else data,
        encoder=None if isinstance(retriever, str) else retriever,
        cache=cache,
    )


def run_mining(
    config: MineConfig, *, data: Any = None, encoder: Any = None, cache: EmbeddingCache | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> MiningResult:
    """Run the mining stage for a resolved config (the CLI calls this).

    ``on_stage(name)`` is called as each part starts (``load``, ``encode+index``, ``search+mine``, ``write``) and
    with ``done`` at the end: ``benchmarks/pipeline_scaling.py`` measures each part's peak memory through it.
    ``timings`` also splits ``encode_corpus+index`` into ``encode_corpus`` and ``index`` when the retriever reports
    them (:attr:`Retriever.build_seconds`).
    """
    stage = on_stage or (lambda name: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    stage("load")
    data = _load_data(config, data)
    logger.info("%s", data.summary())
    timings["load"] = time.perf_counter() - start
    stage("encode+index")
    retriever = _make_retriever(config, data, encoder, cache)
    timings["encode_corpus+index"] = time.perf_counter() - start - timings["load"]
    timings.update(getattr(retriever, "build_seconds", {}))
    stage("search+mine")
    query_ids = data.split_query_ids
    view = CorpusView(data, retriever.doc_ids)
    t = time.perf_counter()
    # a retriever without document vectors (BM25, rank fusion) has no query vectors either: it searches texts
    q_emb = retriever.encode_queries([data.queries[q] for q in query_ids]) if _is_dense(retriever) else None
    encode_queries = time.perf_counter() - t
    t = time.perf_counter()
    search_seconds: list[float] = []
    search, scorer = _searcher(retriever, query_ids, [data.queries[q] for q in query_ids], q_emb, search_seconds)
    rescore = _rescorer(config, data, view) if config.cross_encoder else None
    records, stats = _make_miner(config)(
        data, query_ids, q_emb, retriever.doc_embeddings, search, view, rescore, scorer=scorer
    )
    stats.rows = sum(1 for _ in iter_rows(records, config.format, config.output_scores))
    stats.settings.update(positive_grade=config.positive_grade, exclude_grade=config.exclude_grade)
    warning = drop_warning(stats, config.too_few)
    if warning:
        stats.warnings.append(warning)
    # the search runs block by block inside the miner: its time is measured per call
    timings["encode_queries+search"] = encode_queries + sum(search_seconds)
    timings["mine"] = time.perf_counter() - t - sum(search_seconds)
    result = MiningResult(records, stats, config, timings=timings)
    stage("write")
    if config.out:
        t = time.perf_counter()
        result.out_dir = write_outputs(result, data, retriever)
        timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    stage("done")
    return result


def _load_data(config: MineConfig, data: Any) -> RetrievalData:
    if not isinstance(data, RetrievalData):
        data = load_data(
            config.data if data is None else data,
            config.split,
            on_invalid=config.on_invalid,
            unknown_qrels=config.unknown_qrels,
            corpus=config.corpus,
            corpus_storage=config.corpus_storage,
            cache_dir=config.cache_dir,
        )
    # graded qrels: a copy, so a caller's data object keeps its own grades
    return dataclasses.replace(data, positive_grade=config.positive_grade, exclude_grade=config.exclude_grade)


def _is_dense(retriever: Any) -> bool:
    return getattr(retriever, "doc_embeddings", None) is not None


def _searcher(
    retriever: Any, query_ids: list[str], query_texts: list[str], q_emb: np.ndarray | None, seconds: list[float]
) -> tuple[SearchFn, PairScorer | None]:
    """Search the queries at given positions ``k`` deep (the miner calls this block by block); appends the time of
    each call to ``seconds``.

    Also returns the teacher scorer of (query position, doc rows) for a retriever without document vectors (BM25,
    rank fusion; ``None`` for a dense one: the miner scores with the embeddings). Such a retriever searches texts and
    its ``pair_scorer()`` scores the queries of its last search, so each block's scorer is kept for its queries.
    """
    if _is_dense(retriever):
        assert q_emb is not None

        def search(positions: np.ndarray, k: int) -> Candidates:
            # as Retriever.search: a margin of extra candidates rescored exactly (float64), canonical order, cut to k
            t = time.perf_counter()
            index = retriever.index
            k = min(k, index.ntotal)
            q = q_emb[positions]
            scores, indices = index.search(q, min(k + RESCORE_MARGIN, index.ntotal))
            scores = exact_scores(q, retriever.doc_embeddings, indices, getattr(index, "metric", "ip"))
            scores, indices = canonical_order(scores, indices)
            seconds.append(time.perf_counter() - t)
            return Candidates([query_ids[i] for i in positions], retriever.doc_ids, indices[:, :k], scores[:, :k])

        return search, None

    block_scorers: dict[int, tuple[PairScorer, int]] = {}  # query position -> (its block's scorer, row in block)

    def sparse_search(positions: np.ndarray, k: int) -> Candidates:
        t = time.perf_counter()
        ids = [query_ids[i] for i in positions]
        cand, _ = retriever.search(ids, [query_texts[i] for i in positions], k)
        block_scorer = retriever.pair_scorer()
        for row, position in enumerate(positions.tolist()):
            block_scorers[position] = (block_scorer, row)
        seconds.append(time.perf_counter() - t)
        return cand

    def scorer(position: int, doc_rows: Any) -> np.ndarray:
        block_scorer, row = block_scorers[int(position)]
        return block_scorer(row, doc_rows)

    return sparse_search, scorer


def _make_retriever(config: MineConfig, data: RetrievalData, encoder: Any, cache: EmbeddingCache | None) -> Any:
    """A built retriever: the dense :class:`Retriever`, or for ``bm25`` / ``hybrid:A+B`` one from
    :mod:`negmine.sparse` (whose dense parts are built like the dense retriever)."""
    from negmine import sparse

    kind = "dense" if encoder is not None else sparse.retriever_kind(config.retriever)
    if kind == "dense":
        enc, cache = _load_encoder(config, encoder, cache)
        return _index_corpus(config, data, enc, cache)
    parts = ["bm25"] if kind == "bm25" else sparse.hybrid_parts(config.retriever)
    members = []
    for part in parts:
        if part == "bm25":
            member: Any = sparse.BM25Retriever(show_progress_bar=config.show_progress_bar)
            member.build(data)
        else:
            enc, cache = _load_encoder(config, part, cache)
            member = _index_corpus(config, data, enc, cache)
        members.append(member)
    if kind == "bm25":
        return members[0]
    fusion = sparse.FusionRetriever(members, parts, k=config.rrf_k, depth=config.rrf_depth)
    fusion.build(data)  # checks that the parts index the same corpus order
    return fusion


def _load_encoder(config: MineConfig, encoder: Any, cache: EmbeddingCache | None
                  ) -> tuple[Encoder, EmbeddingCache | None]:
    if isinstance(config.cross_encoder, str) and config.cross_encoder:
        from negmine.encoders.presets import resolve_model

        resolve_model(config.cross_encoder, option="--cross-encoder")  # a bad path fails before any encoding
    enc: Encoder = load_encoder(
        encoder if encoder is not None else config.retriever,
        model_path=config.model_path,
        query_prompt=config.query_prompt,
        corpus_prompt=config.corpus_prompt,
        precision=config.precision,
        max_seq_length=config.max_seq_length,
    )
    if config.ray_address:  # thin hook: everything Ray lives in negmine.distributed
        from negmine.distributed.encode import ray_cache

        cache = ray_cache(enc, config.ray_address, cache, cache_dir=config.cache_dir, no_cache=config.no_cache,
                          batch_size=config.batch_size)
    if cache is None and not config.no_cache:
        cache = EmbeddingCache(config.cache_dir)
    return enc, cache


def _index_corpus(
    config: MineConfig, data: RetrievalData, encoder: Encoder, cache: EmbeddingCache | None
) -> Retriever:
    """A retriever over a persisted index (``index_dir``), or one that encodes the corpus (through the cache) and
    indexes it."""
    options = dict(cache=cache, batch_size=config.batch_size, show_progress_bar=config.show_progress_bar)
    if config.index_dir:
        return Retriever.from_index_dir(config.index_dir, data, encoder, **options)
    backend = "ray" if config.ray_address else config.index  # --ray: exact search sharded on the cluster
    retriever = Retriever(encoder, index_backend=backend, factory=config.factory, **options)
    retriever.build(data)
    return retriever


def _rescorer(config: MineConfig, data: RetrievalData, view: CorpusView) -> RescoreFn:
    """Re-score a block's candidates (and its queries' positives) with ``config.cross_encoder``."""
    from negmine._optional import require
    from negmine.mining.rescore import load_cross_encoder, rescore_with_cross_encoder

    model: Any = config.cross_encoder
    if isinstance(model, str):
        model = load_cross_encoder(model, require("sentence_transformers", "cross-encoder rescoring"))

    def rescore(candidates: Candidates, positive_rows: list[np.ndarray]) -> tuple[Candidates, list[np.ndarray]]:
        return rescore_with_cross_encoder(
            model,
            candidates,
            [data.queries[q] for q in candidates.query_ids],
            view.texts,
            [list(map(int, p)) for p in positive_rows],
            batch_size=config.batch_size,
            show_progress_bar=config.show_progress_bar,
        )

    return rescore


def _make_miner(config: MineConfig) -> HardNegativeMiner:
    return HardNegativeMiner(
        Compose(config.filters()),
        config.num_negatives,
        config.sampling,
        config.temperature,
        config.seed,
        config.too_few,
        config.near_duplicate,
        config.margin_reference,
        config.block_candidates,
    )


def precision_record(encoder: Any) -> dict[str, Any]:
    """The precision the vectors were made in; for ``auto``, what was tried, chosen and why."""
    choice = getattr(encoder, "precision_choice", None)
    return choice or {"requested": getattr(encoder, "requested_precision", None),
                      "chosen": getattr(encoder, "precision", None)}


def output_file_name(fmt: str) -> str:
    return f"{fmt}.jsonl"


def write_outputs(result: MiningResult, data: RetrievalData, retriever: Any) -> Path:
    """Write every artifact of the stage atomically; the manifest is written last (its presence = a complete run)."""
    from negmine.plots import score_histogram

    config, out = result.config, Path(result.config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_mined(out / "mined.jsonl", result.records)
    write_jsonl(out / output_file_name(config.format), iter_rows(result.records, config.format, config.output_scores))
    write_json(out / "stats.json", {**result.stats.to_dict(), "load_report": data.report.to_dict()})
    score_histogram(
        out / "scores.png",
        result.stats.positive_scores,
        result.stats.negative_scores,
        title=f"{data.name} [{data.split}] — {config.retriever}",
    )
    write_manifest(
        out,
        "mine",
        {
            **config.to_dict(),
            "retriever_config": retriever.get_config_dict(),
            "filters": Compose(config.filters()).get_config_dict(),
        },
        inputs=data.sources,
        seed=config.seed,
        extra={"timings_s": result.timings, "precision": precision_record(getattr(retriever, "encoder", None))},
    )
    return out
