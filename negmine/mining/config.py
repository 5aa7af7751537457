"""The resolved configuration of one mining run (what ``--dry-run`` prints and ``manifest.json`` records)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_args

from negmine.data import CorpusStorage, OnInvalid, UnknownQrels
from negmine.data.mined import FORMATS
from negmine.errors import ConfigError
from negmine.mining.filters import (
    MARGIN_REFERENCES,
    STRATEGIES,
    CandidateFilter,
    PositiveMargin,
    PositivePercentage,
    RankRange,
    ScoreThreshold,
)
from negmine.mining.sampling import SAMPLING

TOO_FEW = ("drop", "keep", "pad")


@dataclass
class MineConfig:
    """Options of ``negmine mine`` / :func:`negmine.mine_hard_negatives`.

    Args:
        retriever: a preset (``minilm``, ``bge``, ``e5``…), a local model folder, a hub id, or ``hashing``.
        data: a BEIR folder, a dataset name under ``$NEGMINE_DATA``, a pair file (.jsonl/.parquet) or a hub id.
        split: qrels split to mine (queries with at least one positive in it).
        out: output folder.
        strategy: filters to apply, comma-separated and ANDed: ``range`` (rank range only), ``abs`` (TopK-Abs,
            ``max_score``/``min_score``), ``margin-pos`` (TopK-MarginPos, ``margin``), ``perc-pos`` (TopK-PercPos,
            ``percentage``). The rank range always applies.
        range_min / range_max: keep candidates ranked in ``[range_min, range_max)`` among documents that can be
            negatives (known positives, the query itself, copies of a positive's text and excluded-grade documents are
            not counted).
        margin_reference: the positive that margin-pos / perc-pos measure against: ``each`` (default; a training
            row per (query, positive) whose negatives satisfy the margin relative to that positive, every positive of
            the query still excluded), ``lowest`` (what sentence-transformers 6.x's ``mine_hard_negatives`` does) or
            ``highest`` positive of the query (one negative list per query).
        positive_grade: qrels with score >= this are positives (default 1).
        exclude_grade: qrels with ``exclude_grade <= score < positive_grade`` are neither positives nor negatives.
        num_negatives: negatives per training row (per query with ``lowest``/``highest``).
        sampling: ``top``, ``random`` or ``softmax`` (``temperature``), seeded by ``seed``.
        format: ``n-tuple``, ``triplet``, ``labeled-pair``, ``labeled-list`` (sentence-transformers) or ``flag``
            (FlagEmbedding JSONL). ``mined.jsonl`` (ids + texts + scores) is always written too.
        output_scores: add the teacher ``scores`` column ([positive, negatives…]) to sentence-transformers formats.
        too_few: rows (``each``) or queries with fewer than ``num_negatives`` survivors are dropped (``drop``), kept
            with fewer (``keep``; not with n-tuple) or padded with random corpus documents (``pad``).
        block_candidates: the most candidates (queries × search depth) held at once; queries are searched in blocks
            of similar depth, so this bounds peak memory whatever the largest query.
        near_duplicate: also exclude candidates whose cosine to a positive exceeds this (e.g. 0.98).
        cross_encoder: rescore the candidates with this ``CrossEncoder`` (path or hub id) before the filters.
        index_dir: search a persisted index folder (``negmine index build``) instead of encoding and indexing the
            corpus; its model fingerprint and corpus ids are checked against this run's.
        max_seq_length: token cap of the retriever (default: the preset's/model's); part of its fingerprint, so of
            the embedding cache key.
        rrf_k / rrf_depth: ``hybrid:`` retrievers (reciprocal-rank fusion, :mod:`negmine.sparse`): the RRF constant
            and how many documents each component contributes.

    ``retriever`` may also be ``bm25`` (the ``bm25`` extra) or ``hybrid:bm25+minilm`` (RRF of its parts). Their
    scores are BM25 points or fused ``1/(k+rank)`` sums, not cosines: ``abs``/``margin-pos``/``perc-pos`` are refused
    on fused scores (unless ``cross_encoder`` rescores), and ``near_duplicate``/``index_dir`` need a dense retriever.
        corpus_storage: where a BEIR folder's corpus and queries live while mining: ``memory`` (dicts),
            ``disk`` (an index over the JSONL files, built once under ``cache_dir``; the miner holds ids, rows and
            scores and reads only the texts it writes: memory does not grow with the corpus text) or ``auto`` (disk
            for a corpus file above 512 MiB). The output bytes are the same.
        ray_address: run encoding and search on this Ray cluster (``host:port`` or ``auto``; ``negmine[ray]``): the
            same cache entries and the same ``mined.jsonl`` bytes as a one-machine run (:mod:`negmine.distributed`).
    """

    retriever: str = "minilm"
    data: str = "scifact"
    split: str = "train"
    out: str = "runs/mine"
    model_path: str | None = None
    query_prompt: str | None = None
    corpus_prompt: str | None = None
    corpus: str | None = None
    strategy: str = "perc-pos"
    margin_reference: str = "each"
    positive_grade: int = 1
    exclude_grade: int | None = None
    range_min: int = 0
    range_max: int = 50
    max_score: float | None = None
    min_score: float | None = None
    margin: float = 0.05
    percentage: float = 0.95
    num_negatives: int = 7
    sampling: str = "top"
    temperature: float = 0.05
    seed: int = 0
    format: str = "n-tuple"
    output_scores: bool = False
    too_few: str = "drop"
    near_duplicate: float | None = None
    block_candidates: int = 1_000_000
    cross_encoder: str | None = None
    index: str = "faiss"
    factory: str = "Flat"
    index_dir: str | None = None
    rrf_k: int = 60
    rrf_depth: int = 100
    ray_address: str | None = None
    batch_size: int = 32
    precision: str = "fp32"
    max_seq_length: int | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    on_invalid: str = "error"
    unknown_qrels: str = "error"
    corpus_storage: str = "memory"
    show_progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check("sampling", self.sampling, SAMPLING)
        self._check("format", self.format, FORMATS)
        self._check("too_few", self.too_few, TOO_FEW)
        self._check("margin_reference", self.margin_reference, MARGIN_REFERENCES)
        if self.exclude_grade is not None and self.exclude_grade >= self.positive_grade:
            raise ConfigError(
                f"exclude_grade ({self.exclude_grade}) must be below positive_grade ({self.positive_grade})"
            )
        if self.block_candidates < 1:
            raise ConfigError(f"block_candidates must be >= 1, got {self.block_candidates}")
        self._check("on_invalid", self.on_invalid, get_args(OnInvalid))
        self._check("unknown_qrels", self.unknown_qrels, get_args(UnknownQrels))
        self._check("corpus_storage", self.corpus_storage, get_args(CorpusStorage))
        for name in self.strategies:
            self._check("strategy", name, tuple(STRATEGIES))
        self.filters()  # validates the numbers
        from negmine.sparse import check_score_filters

        check_score_filters(self.retriever, self.strategies, rescored=bool(self.cross_encoder),
                            near_duplicate=self.near_duplicate, index_dir=self.index_dir)
        if self.num_negatives < 1:
            raise ConfigError(f"num_negatives must be >= 1, got {self.num_negatives}")
        if self.num_negatives > self.range_max - self.range_min:
            raise ConfigError(
                f"num_negatives={self.num_negatives} cannot be mined from the rank range "
                f"[{self.range_min}, {self.range_max}); widen --range or lower --num-negatives"
            )
        if self.format == "n-tuple" and self.too_few == "keep":
            raise ConfigError("format 'n-tuple' needs exactly num_negatives per row: use --too-few drop or pad")

    @staticmethod
    def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            import difflib

            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{name} {value!r} is not one of {', '.join(allowed)}.{hint}")

    @property
    def strategies(self) -> list[str]:
        return [s.strip() for s in self.strategy.split(",") if s.strip()]

    def filters(self) -> list[CandidateFilter]:
        """The filter chain: the rank range, then the strategies in the order given."""
        try:
            chain: list[CandidateFilter] = [RankRange(self.range_min, self.range_max)]
            for name in self.strategies:
                if name == "abs":
                    chain.append(ScoreThreshold(self.max_score, self.min_score))
                elif name == "margin-pos":
                    chain.append(PositiveMargin(self.margin))
                elif name == "perc-pos":
                    chain.append(PositivePercentage(self.percentage))
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return chain

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
