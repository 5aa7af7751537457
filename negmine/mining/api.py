"""The mining stage end to end: load → encode (cached) → index → search → [rescore] → mine → write."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from negmine.data import RetrievalData, load_data
from negmine.data.mined import MinedRecord, iter_rows, write_mined
from negmine.encoders import EmbeddingCache, Encoder, load_encoder
from negmine.io import write_json, write_jsonl, write_manifest
from negmine.mining.config import MineConfig
from negmine.mining.filters import Compose
from negmine.mining.miner import CorpusView, HardNegativeMiner, RescoreFn, SearchFn
from negmine.mining.stats import MiningStats, drop_warning
from negmine.retrieve import Candidates, Retriever, canonical_order

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
    config = MineConfig(retriever=label(retriever), data=label(data), out=out or "", **options)
    return run_mining(
        config,
        data=None if isinstance(data, str) else data,
        encoder=None if isinstance(retriever, str) else retriever,
        cache=cache,
    )


def run_mining(
    config: MineConfig, *, data: Any = None, encoder: Any = None, cache: EmbeddingCache | None = None
) -> MiningResult:
    """Run the mining stage for a resolved config (the CLI calls this)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = _load_data(config, data)
    logger.info("%s", data.summary())
    encoder, cache = _load_encoder(config, encoder, cache)
    timings["load"] = time.perf_counter() - start
    retriever = _index_corpus(config, data, encoder, cache)
    timings["encode_corpus+index"] = time.perf_counter() - start - timings["load"]
    query_ids = data.split_query_ids
    view = CorpusView(data, retriever.doc_ids)
    t = time.perf_counter()
    q_emb = retriever.encode_queries([data.queries[q] for q in query_ids])
    encode_queries = time.perf_counter() - t
    t = time.perf_counter()
    search_seconds: list[float] = []
    search = _searcher(retriever, query_ids, q_emb, search_seconds)
    rescore = _rescorer(config, data, view) if config.cross_encoder else None
    records, stats = _make_miner(config)(data, query_ids, q_emb, retriever.doc_embeddings, search, view, rescore)
    stats.rows = sum(1 for _ in iter_rows(records, config.format, config.output_scores))
    stats.settings.update(positive_grade=config.positive_grade, exclude_grade=config.exclude_grade)
    warning = drop_warning(stats, config.too_few)
    if warning:
        stats.warnings.append(warning)
    # the search runs block by block inside the miner: its time is measured per call
    timings["encode_queries+search"] = encode_queries + sum(search_seconds)
    timings["mine"] = time.perf_counter() - t - sum(search_seconds)
    result = MiningResult(records, stats, config, timings=timings)
    if config.out:
        result.out_dir = write_outputs(result, data, retriever)
    timings["total"] = time.perf_counter() - start
    return result


def _load_data(config: MineConfig, data: Any) -> RetrievalData:
    if not isinstance(data, RetrievalData):
        data = load_data(
            config.data if data is None else data,
            config.split,
            on_invalid=config.on_invalid,
            unknown_qrels=config.unknown_qrels,
            corpus=config.corpus,
        )
    # graded qrels: a copy, so a caller's data object keeps its own grades
    return dataclasses.replace(data, positive_grade=config.positive_grade, exclude_grade=config.exclude_grade)


def _searcher(retriever: Retriever, query_ids: list[str], q_emb: np.ndarray, seconds: list[float]) -> SearchFn:
    """Search the queries at given positions ``k`` deep (the miner calls this block by block); appends the time of
    each call to ``seconds``."""

    def search(positions: np.ndarray, k: int) -> Candidates:
        t = time.perf_counter()
        scores, indices = canonical_order(*retriever.index.search(q_emb[positions], min(k, retriever.index.ntotal)))
        seconds.append(time.perf_counter() - t)
        return Candidates([query_ids[i] for i in positions], retriever.doc_ids, indices, scores)

    return search


def _load_encoder(
    config: MineConfig, encoder: Any, cache: EmbeddingCache | None
) -> tuple[Encoder, EmbeddingCache | None]:
    enc: Encoder = load_encoder(
        encoder if encoder is not None else config.retriever,
        model_path=config.model_path,
        query_prompt=config.query_prompt,
        corpus_prompt=config.corpus_prompt,
        precision=config.precision,
    )
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
    retriever = Retriever(encoder, index_backend=config.index, factory=config.factory, **options)
    retriever.build(data)
    return retriever


def _rescorer(config: MineConfig, data: RetrievalData, view: CorpusView) -> RescoreFn:
    """Re-score a block's candidates (and its queries' positives) with ``config.cross_encoder``."""
    from negmine._optional import require
    from negmine.mining.rescore import rescore_with_cross_encoder

    model: Any = config.cross_encoder
    if isinstance(model, str):
        model = require("sentence_transformers", "cross-encoder rescoring").CrossEncoder(model)

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


def output_file_name(fmt: str) -> str:
    return f"{fmt}.jsonl"


def write_outputs(result: MiningResult, data: RetrievalData, retriever: Retriever) -> Path:
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
        extra={"timings_s": result.timings},
    )
    return out
