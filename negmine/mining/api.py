"""The mining stage end to end: load → encode (cached) → index → search → [rescore] → mine → write."""

from __future__ import annotations

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
from negmine.mining.miner import CorpusView, HardNegativeMiner
from negmine.mining.stats import MiningStats
from negmine.retrieve import Candidates, Retriever

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
    timings["load"] = time.perf_counter() - start
    retriever = _make_retriever(config, data, encoder, cache)
    timings["encode_corpus+index"] = time.perf_counter() - start - timings["load"]
    query_ids = data.split_query_ids
    view = CorpusView(data, retriever.doc_ids)
    top_k = config.range_max + max((view.excludable(q) for q in query_ids), default=1)
    t = time.perf_counter()
    candidates, q_emb = retriever.search(query_ids, [data.queries[q] for q in query_ids], top_k)
    timings["encode_queries+search"] = time.perf_counter() - t
    positive_scores = None
    if config.cross_encoder:
        candidates, positive_scores = _rescore(config, data, query_ids, view, candidates)
    t = time.perf_counter()
    scorer = retriever.pair_scorer() if retriever.doc_embeddings is None else None  # BM25 / rank fusion
    records, stats = _make_miner(config)(
        data, candidates, q_emb, retriever.doc_embeddings, view, positive_scores, scorer=scorer
    )
    stats.rows = sum(1 for _ in iter_rows(records, config.format, config.output_scores))
    timings["mine"] = time.perf_counter() - t
    result = MiningResult(records, stats, config, timings=timings)
    if config.out:
        result.out_dir = write_outputs(result, data, retriever)
    timings["total"] = time.perf_counter() - start
    return result


def _load_data(config: MineConfig, data: Any) -> RetrievalData:
    if isinstance(data, RetrievalData):
        return data
    return load_data(
        config.data if data is None else data,
        config.split,
        on_invalid=config.on_invalid,
        unknown_qrels=config.unknown_qrels,
        corpus=config.corpus,
    )


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


def _index_corpus(config: MineConfig, data: RetrievalData, encoder: Encoder, cache: EmbeddingCache | None
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


def _rescore(
    config: MineConfig, data: RetrievalData, query_ids: list[str], view: CorpusView, candidates: Candidates
) -> tuple[Candidates, list[np.ndarray]]:
    """Re-score the candidates of ``query_ids`` (and their positives) with ``config.cross_encoder``."""
    from negmine.mining.rescore import rescore_with_cross_encoder

    pos_rows = [[view.row[d] for d in data.positives(q) if d in view.row] for q in query_ids]
    return rescore_with_cross_encoder(
        config.cross_encoder,
        candidates,
        [data.queries[q] for q in query_ids],
        view.texts,
        pos_rows,
        batch_size=config.batch_size,
        show_progress_bar=config.show_progress_bar,
    )


def _make_miner(config: MineConfig) -> HardNegativeMiner:
    return HardNegativeMiner(
        Compose(config.filters()),
        config.num_negatives,
        config.sampling,
        config.temperature,
        config.seed,
        config.too_few,
        config.near_duplicate,
    )


def precision_record(encoder: Any) -> dict[str, Any]:
    """The precision the vectors were made in; for ``auto``, what was tried, chosen and why."""
    choice = getattr(encoder, "precision_choice", None)
    return choice or {"requested": getattr(encoder, "requested_precision", None),
                      "chosen": getattr(encoder, "precision", None)}


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
        extra={"timings_s": result.timings, "precision": precision_record(retriever.encoder)},
    )
    return out
