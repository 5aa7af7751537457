"""Teacher scoring: re-score every (query, passage) of a mined file with a teacher that need not be the retriever.

``negmine score --mined FILE --teacher SPEC --out DIR`` reads ``mined.jsonl``, scores each query's positives and
negatives with the teacher and writes ``DIR/mined.jsonl`` where every record keeps the retriever's scores
(``positive_scores``, ``negative_scores``) and gains the teacher's (``positive_teacher_scores``,
``negative_teacher_scores``), plus ``stats.json`` and ``manifest.json`` (with the teacher's fingerprint).
``negmine train --scores teacher`` then hands the teacher's scores to the loss.

Teacher specs (``--teacher``):

* a bi-encoder: a retriever preset (``embeddinggemma``, with the preset's prompts), a model folder or a hub id;
  texts are encoded through the embedding cache (keyed by the encoder's fingerprint, which includes the
  ``max_seq_length`` cap), so an interrupted run resumes; the score is the encoder's similarity (cosine for presets);
* ``cross-encoder:PATH_OR_HUB_ID``: a sentence-transformers ``CrossEncoder``; the score is its raw logit;
* ``llm-yes:TARGET``: :mod:`negmine.relabel`'s pointwise judge (``TARGET`` as in ``negmine relabel``: a ``.gguf``
  file, a model folder or an OpenAI-compatible URL); the score is P(yes);
* ``scores:FILE``: precomputed scores looked up by ids in a score table (below), e.g. the ``teacher_scores.jsonl``
  of an earlier run, or a table converted from published cross-encoder scores; a pair missing from it is an error;
* an ensemble ``a,b[,c...][:w_a,w_b...]``: each member's scores are z-scored per query (over the query's positives
  and negatives) and summed with the weights (default equal weights ``1/k``).

Every run also writes ``DIR/teacher_scores.jsonl``, the score table: one line per query,
``{"query_id": ..., "scores": {doc_id: score, ...}}`` (ids and numbers only, no text), with the teacher's fingerprint
in ``manifest.json`` beside it. ``--teacher scores:DIR/teacher_scores.jsonl`` replays it on a re-mined file without
loading the teacher: a multi-hour teacher pass is paid once and can be shipped without the corpus.

Pairwise teachers (cross-encoder, LLM) are cached per block of queries under ``DIR/teacher_cache/``; a killed run
rerun with the same arguments gives byte-identical output.

False-negative guard (``guard="teacher-above-positive"``): a mined negative that the teacher scores above the
query's lowest-scored positive is dropped from the negatives (it is likely relevant); counts go to ``stats.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from negmine.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

GUARDS = ("teacher-above-positive",)
PAIRWISE_KINDS = ("cross-encoder", "llm-yes")
TABLE_KIND = "scores"
SCORE_TABLE = "teacher_scores.jsonl"
_WEIGHTS = re.compile(r"^(?P<members>.+,.+):(?P<weights>[0-9.eE+-]+(?:,[0-9.eE+-]+)+)$")


@dataclass
class ScoreConfig:
    """Options of ``negmine score`` (and of ``negmine mine --teacher``).

    Args:
        mined: ``mined.jsonl`` or the folder holding it.
        teacher: the teacher spec (module docstring).
        out: output folder (``mined.jsonl``, ``stats.json``, ``manifest.json``, ``teacher_cache/``).
        model_path: local weights folder for a preset teacher (offline use).
        max_seq_length: token cap of a bi-encoder teacher (part of its fingerprint, so of the cache key).
        batch_size: encoding / cross-encoder batch size.
        block_size: queries per cached block of a pairwise teacher.
        cache_dir / no_cache: the embedding cache of bi-encoder teachers.
        data: optional BEIR folder or dataset name of the mined corpus: a bi-encoder teacher then encodes the whole
            corpus in corpus order, the same cache entry ``negmine eval`` / ``negmine mine`` use with that encoder.
        split: the qrels split read with ``data`` (only its corpus is used).
        guard: ``None`` or ``"teacher-above-positive"``.
        n_ctx / n_threads / max_passage_words: ``llm-yes`` backend settings (as in ``negmine relabel``).
    """

    mined: str = ""
    teacher: str = ""
    out: str = "runs/score"
    model_path: str | None = None
    max_seq_length: int | None = None
    batch_size: int = 32
    block_size: int = 64
    cache_dir: str | None = None
    no_cache: bool = False
    data: str | None = None
    split: str = "train"
    guard: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    max_passage_words: int | None = 300
    show_progress_bar: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.guard is not None and self.guard not in GUARDS:
            raise ConfigError(f"guard {self.guard!r} is not one of {', '.join(GUARDS)}")
        for name in ("batch_size", "block_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ConfigError(f"max_seq_length must be >= 1, got {self.max_seq_length}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScoreResult:
    out_dir: Path
    records: list[Any]
    stats: dict[str, Any]
    fingerprint: dict[str, Any]


class Teacher(Protocol):
    """Scores each item's passages: ``items`` are ``(query, passages)``; returns one float per passage."""

    def fingerprint(self) -> dict[str, Any]: ...

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]: ...


# --------------------------------------------------------------------------------------------------------------------
# teachers
# --------------------------------------------------------------------------------------------------------------------


class BiEncoderTeacher:
    """A bi-encoder teacher: query and passage embeddings through the embedding cache, scored by the encoder's
    similarity (the preset's prompts and similarity for a preset name)."""

    def __init__(self, spec: Any, *, model_path: str | None = None, max_seq_length: int | None = None,
                 batch_size: int = 32, cache: Any = None, show_progress_bar: bool = False,
                 corpus_texts: Sequence[str] | None = None) -> None:
        from negmine.encoders import load_encoder

        # with the corpus, documents are encoded as one list in corpus order - the cache entry that `negmine eval`
        # and `negmine mine` write for the same encoder - so a corpus encoded once is never encoded again
        self.corpus_texts = list(dict.fromkeys(corpus_texts)) if corpus_texts is not None else None

        self.spec = spec if isinstance(spec, str) else type(spec).__name__
        self.encoder = load_encoder(spec, model_path=model_path, max_seq_length=max_seq_length)
        self.batch_size = batch_size
        self.cache = cache
        self.show_progress_bar = show_progress_bar

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "bi-encoder", "spec": self.spec, **self.encoder.fingerprint()}

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        import numpy as np

        from negmine.encoders import encode_with_cache

        queries = sorted({q for q, _ in items})
        passages = sorted({p for _, ps in items for p in ps})
        options = dict(cache=self.cache, batch_size=self.batch_size, show_progress_bar=self.show_progress_bar)
        q_emb = np.asarray(encode_with_cache(self.encoder, queries, "query", **options), dtype=np.float32)
        parts: list[tuple[Any, dict[str, int]]] = []  # (embeddings, text -> row); the corpus part stays memory-mapped
        if self.corpus_texts is not None:
            corpus_row = {p: i for i, p in enumerate(self.corpus_texts)}
            parts.append((encode_with_cache(self.encoder, self.corpus_texts, "document", **options), corpus_row))
            passages = [p for p in passages if p not in corpus_row]
        if passages:
            emb = encode_with_cache(self.encoder, passages, "document", **options)
            parts.append((emb, {p: i for i, p in enumerate(passages)}))
        q_row = {q: i for i, q in enumerate(queries)}
        out = []
        for query, texts in items:
            rows = []
            for text in texts:
                emb, row = next((e, r[text]) for e, r in parts if text in r)
                rows.append(np.asarray(emb[row], dtype=np.float32))
            matrix = np.stack(rows) if rows else np.zeros((0, q_emb.shape[1]), dtype=np.float32)
            out.append([float(s) for s in matrix @ q_emb[q_row[query]]])
        return out


class PairwiseTeacher:
    """A teacher that scores (query, passage) pairs: a cross-encoder (raw logit) or the ``llm-yes`` judge."""

    def __init__(self, kind: str, target: str, cfg: ScoreConfig, out: Path) -> None:
        self.kind, self.target = kind, target
        self.batch_size = cfg.batch_size
        if kind == "cross-encoder":
            from negmine._optional import require

            st = require("sentence_transformers", "the cross-encoder teacher")
            self.model = st.CrossEncoder(target, max_length=cfg.max_seq_length or 512)
            self._fingerprint = {"kind": kind, "model": target, "max_length": cfg.max_seq_length or 512,
                                 "weights_sha256": _weights_hash(self.model)}
        elif kind == "llm-yes":
            from negmine.relabel.cache import JudgmentCache
            from negmine.relabel.factory import JudgeOptions, load_chat_client
            from negmine.relabel.llm import PointwiseLLMJudge

            options = JudgeOptions(n_ctx=cfg.n_ctx, n_threads=cfg.n_threads, batch_size=cfg.batch_size,
                                   max_passage_words=cfg.max_passage_words)
            client = load_chat_client(target, options)
            out.mkdir(parents=True, exist_ok=True)
            self.judge = PointwiseLLMJudge(client, cache=JudgmentCache(out / "teacher_cache" / "llm_yes.jsonl"),
                                           max_passage_words=cfg.max_passage_words)
            config = self.judge.get_config_dict()
            config.pop("threshold", None)
            config.pop("unsure_band", None)
            self._fingerprint = {"kind": kind, "target": target, **config}
        else:  # pragma: no cover - split_teacher_spec only yields the kinds above
            raise ConfigError(f"unknown pairwise teacher kind {kind!r}")

    def fingerprint(self) -> dict[str, Any]:
        return self._fingerprint

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        pairs = [(q, p) for q, ps in items for p in ps]
        if not pairs:
            return [[] for _ in items]
        if self.kind == "cross-encoder":
            flat = _cross_encoder_logits(self.model, pairs, self.batch_size)
        else:
            flat = self.judge.score_pairs(pairs)
            failed = [pairs[i] for i, s in enumerate(flat) if s is None]
            if failed:
                raise DataError(f"the llm-yes teacher returned no probability for {len(failed)} pair(s), e.g. query "
                                f"{failed[0][0][:80]!r}; rerun (answers so far are cached)")
        out, offset = [], 0
        for _, ps in items:
            out.append([float(s) for s in flat[offset:offset + len(ps)]])
            offset += len(ps)
        return out


def _cross_encoder_logits(model: Any, pairs: list[tuple[str, str]], batch_size: int) -> list[float]:
    """Raw scores of a one-output cross-encoder (no sigmoid: distillation wants logits, not saturated
    probabilities)."""
    import inspect

    import torch

    kwargs: dict[str, Any] = {"batch_size": batch_size, "show_progress_bar": False, "convert_to_numpy": True}
    parameters = inspect.signature(model.predict).parameters
    if "activation_fn" in parameters:
        kwargs["activation_fn"] = torch.nn.Identity()
    elif "activation_fct" in parameters:
        kwargs["activation_fct"] = torch.nn.Identity()
    scores = model.predict(pairs, **kwargs)
    return [float(s) for s in scores.reshape(len(pairs), -1)[:, 0]]


def _weights_hash(model: Any) -> str:
    from negmine.encoders.st import weights_hash

    inner = getattr(model, "model", model)
    return weights_hash(inner)


class TableTeacher:
    """Precomputed teacher scores looked up by ``(query_id, doc_id)`` in a score table (module docstring).

    Its fingerprint is the table's sha256 plus, when the table's folder has a ``manifest.json`` written by
    ``negmine score``, the fingerprint of the teacher that produced it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / SCORE_TABLE
        if not self.path.is_file():
            raise ConfigError(f"score table {self.path} not found (--teacher scores:FILE expects a "
                              f"{SCORE_TABLE} written by negmine score)")
        self.table = read_score_table(self.path)
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self._fingerprint: dict[str, Any] = {"kind": TABLE_KIND, "file": self.path.name, "sha256": digest}
        manifest = self.path.parent / "manifest.json"
        if manifest.is_file():
            try:
                source = json.loads(manifest.read_text(encoding="utf-8")).get("config", {}).get("teacher_fingerprint")
            except ValueError:
                source = None
            if source is not None:
                self._fingerprint["source"] = source

    def fingerprint(self) -> dict[str, Any]:
        return self._fingerprint

    def score_ids(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """``items`` of ``(query_id, doc_ids)`` -> their scores; a missing query or pair is a :class:`DataError`."""
        out = []
        for query_id, doc_ids in items:
            row = self.table.get(query_id)
            if row is None:
                raise DataError(f"{self.path}: no scores for query {query_id!r} (the table was written for another "
                                "mined file; score it with the teacher itself)")
            missing = [d for d in doc_ids if d not in row]
            if missing:
                raise DataError(f"{self.path}: query {query_id!r} has no score for passage(s) "
                                f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}")
            out.append([row[d] for d in doc_ids])
        return out


def read_score_table(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """A score table -> ``{query_id: {doc_id: score}}``; errors name the file, line and field."""
    table: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{where}: not JSON ({exc})") from None
            if not isinstance(row, dict) or not isinstance(row.get("query_id"), str):
                raise DataError(f"{where}: field 'query_id' must be a string")
            scores = row.get("scores")
            if not isinstance(scores, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in scores.values()):
                raise DataError(f"{where}: field 'scores' must map doc ids to finite numbers")
            if row["query_id"] in table:
                raise DataError(f"{where}: query {row['query_id']!r} appears twice")
            table[row["query_id"]] = {str(k): float(v) for k, v in scores.items()}
    return table


class EnsembleTeacher:
    """Members' scores z-scored per query (over its positives and negatives) and summed with weights."""

    def __init__(self, members: list[Any], weights: list[float]) -> None:
        if len(members) != len(weights):
            raise ConfigError(f"{len(weights)} weights for {len(members)} ensemble members")
        self.members, self.weights = members, [float(w) for w in weights]

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "ensemble", "combine": "per-query z-score, weighted sum", "weights": self.weights,
                "members": [m.fingerprint() for m in self.members]}

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        return self.combine([m.score(items) for m in self.members])

    def combine(self, per_member: list[list[list[float]]]) -> list[list[float]]:
        """``sum_k w_k * zscore(scores_k[i])`` per item ``i``."""
        out = []
        for i in range(len(per_member[0]) if per_member else 0):
            combined = [0.0] * len(per_member[0][i])
            for weight, scores in zip(self.weights, per_member, strict=True):
                for j, z in enumerate(zscore(scores[i])):
                    combined[j] += weight * z
            out.append(combined)
        return out


def zscore(values: Sequence[float]) -> list[float]:
    """``(v - mean) / std`` (population std); all zeros when the values are constant or there is one."""
    n = len(values)
    if n == 0:
        return []
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / n)
    if std == 0.0 or not math.isfinite(std):
        return [0.0] * n
    return [(v - mean) / std for v in values]


def split_teacher_spec(spec: str) -> tuple[list[str], list[float] | None]:
    """``"a,b:0.7,0.3"`` -> ``(["a", "b"], [0.7, 0.3])``; ``"a"`` -> ``(["a"], None)``."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("--teacher is empty; pass a preset, a model folder, cross-encoder:..., llm-yes:... or a,b")
    weights = None
    match = _WEIGHTS.match(spec)
    if match and len(match["members"].split(",")) == len(match["weights"].split(",")):
        spec = match["members"]
        try:
            weights = [float(w) for w in match["weights"].split(",")]
        except ValueError:
            raise ConfigError(f"bad ensemble weights {match['weights']!r} in --teacher") from None
    members = [m.strip() for m in spec.split(",")]
    if any(not m for m in members):
        raise ConfigError(f"--teacher {spec!r} has an empty ensemble member")
    if weights is not None and (any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) == 0):
        raise ConfigError(f"ensemble weights {weights} must be finite, >= 0 and not all 0")
    return members, weights


def load_teacher(spec: str, cfg: ScoreConfig | None = None, out: str | os.PathLike | None = None, *,
                 corpus_texts: Sequence[str] | None = None) -> Any:
    """The teacher of a spec (module docstring). ``corpus_texts`` (the corpus's texts in corpus order) stands in
    for ``cfg.data`` when the caller holds the data already."""
    cfg = cfg or ScoreConfig(teacher=spec)
    out_dir = Path(out if out is not None else cfg.out)
    members, weights = split_teacher_spec(spec)
    if corpus_texts is None:
        corpus_texts = _corpus_texts(cfg.data, cfg.split)
    built = [_single_teacher(m, cfg, out_dir, corpus_texts) for m in members]
    if len(built) == 1:
        return built[0]
    return EnsembleTeacher(built, weights or [1.0 / len(built)] * len(built))


def _single_teacher(spec: str, cfg: ScoreConfig, out: Path, corpus_texts: Sequence[str] | None) -> Any:
    kind, sep, target = spec.partition(":")
    if sep and kind in PAIRWISE_KINDS:
        if not target:
            raise ConfigError(f"teacher {spec!r} names no model")
        return PairwiseTeacher(kind, target, cfg, out)
    if sep and kind == TABLE_KIND:
        if not target:
            raise ConfigError(f"teacher {spec!r} names no score table")
        return TableTeacher(target)
    if sep and kind in ("llm",):
        raise ConfigError("the two-stage 'llm:' judge gives no score per passage; use 'llm-yes:' as a teacher")
    cache = None
    if not cfg.no_cache:
        from negmine.encoders import EmbeddingCache

        cache = EmbeddingCache(cfg.cache_dir)
    return BiEncoderTeacher(spec, model_path=cfg.model_path, max_seq_length=cfg.max_seq_length,
                            batch_size=cfg.batch_size, cache=cache, show_progress_bar=cfg.show_progress_bar,
                            corpus_texts=corpus_texts)


def _corpus_texts(data: str | None, split: str) -> list[str] | None:
    """The corpus's document texts in corpus order (as :class:`~negmine.retrieve.Retriever` encodes them)."""
    if data is None:
        return None
    from negmine.data import load_data

    loaded = load_data(data, split, unknown_qrels="skip")
    return [loaded.doc_text(d) for d in loaded.corpus]


# --------------------------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------------------------


def _key(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


class BlockCache:
    """Per-block teacher scores under ``folder``: ``block_00000.json`` holds the scores of one block of queries,
    tagged with the hash of its items so a changed input is never served stale scores."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, index: int) -> Path:
        return self.folder / f"block_{index:05d}.json"

    def get(self, index: int, items_hash: str) -> list[list[float]] | None:
        path = self.path(index)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # a damaged block is recomputed
        return data["scores"] if data.get("items") == items_hash else None

    def put(self, index: int, items_hash: str, scores: list[list[float]]) -> None:
        from negmine.io import write_json

        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.path(index), {"items": items_hash, "scores": scores})


def _items_hash(items: Sequence[tuple[str, Sequence[str]]]) -> str:
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def score_items(teacher: Any, items: list[tuple[str, list[str]]], out: Path, block_size: int = 64,
                show_progress_bar: bool = False,
                ids: list[tuple[str, list[str]]] | None = None) -> list[list[float]]:
    """Teacher scores of ``items`` (texts; ``ids``: the same as ``(query_id, doc_ids)``, which a score table
    needs). Pairwise teachers are cached per block of queries; bi-encoders score everything at once (their
    embeddings are cached); an ensemble scores member by member and combines."""
    if isinstance(teacher, EnsembleTeacher):
        return teacher.combine([score_items(m, items, out, block_size, show_progress_bar, ids)
                                for m in teacher.members])
    if isinstance(teacher, TableTeacher):
        if ids is None:
            raise ConfigError("a scores: teacher looks passages up by id; pass the items' ids")
        return teacher.score_ids(ids)
    if not _is_pairwise(teacher):
        return teacher.score(items)
    from tqdm.auto import tqdm

    cache = BlockCache(out / "teacher_cache" / _key(teacher.fingerprint())[:16])
    scores: list[list[float]] = []
    starts = range(0, len(items), block_size)
    for index, start in enumerate(tqdm(starts, desc="Teacher scoring", unit="block", disable=not show_progress_bar)):
        block = items[start:start + block_size]
        digest = _items_hash(block)
        hit = cache.get(index, digest)
        if hit is None:
            hit = teacher.score(block)
            cache.put(index, digest, hit)
        scores.extend(hit)
    return scores


def _is_pairwise(teacher: Any) -> bool:
    return isinstance(teacher, PairwiseTeacher)


def score_mined(cfg: ScoreConfig, *, teacher: Any = None) -> ScoreResult:
    """Score every passage of ``cfg.mined`` with the teacher and write ``cfg.out`` (module docstring).

    ``teacher`` overrides ``cfg.teacher`` with a built teacher (tests, ensembles of loaded models).
    """
    from negmine.data.mined import read_mined
    from negmine.io import write_json, write_jsonl, write_manifest

    if not cfg.mined:
        raise ConfigError("no mined file: pass --mined FILE (mined.jsonl or its folder)")
    if teacher is None and not cfg.teacher:
        raise ConfigError("no teacher: pass --teacher SPEC")
    started = time.perf_counter()
    mined_path = Path(cfg.mined)
    records = read_mined(mined_path)
    out = Path(cfg.out)
    teacher = teacher if teacher is not None else load_teacher(cfg.teacher, cfg, out)
    scored, scores, stats = score_records(records, teacher, cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "mined.jsonl", (r.to_dict() for r in scored))
    # the table holds every scored passage, the guard's removals included (it records the teacher, not the filter)
    write_jsonl(out / SCORE_TABLE, ({"query_id": r.query_id,
                                     "scores": dict(zip([*r.positive_ids, *r.negative_ids], row, strict=True))}
                                    for r, row in zip(records, scores, strict=True)))
    write_json(out / "stats.json", stats)
    fingerprint = teacher.fingerprint()
    write_manifest(out, "score", {**cfg.to_dict(), "teacher_fingerprint": fingerprint},
                   inputs=[mined_path / "mined.jsonl" if mined_path.is_dir() else mined_path],
                   extra={"timings_s": {"total": time.perf_counter() - started}})
    return ScoreResult(out, scored, stats, fingerprint)


def score_records(records: Sequence[Any], teacher: Any, cfg: ScoreConfig, out: str | os.PathLike
                  ) -> tuple[list[Any], list[list[float]], dict[str, Any]]:
    """Teacher scores for every passage of ``records`` (:class:`~negmine.data.mined.MinedRecord`), attached to
    them (``cfg.guard`` applied); returns ``(scored records, the raw scores per record, stats)``. ``out`` holds a
    pairwise teacher's block cache. :func:`score_mined` runs it on a file; :mod:`negmine.dynamic` on every re-mined
    round."""
    items = [(r.query, [*r.positives, *r.negatives]) for r in records]
    ids = [(r.query_id, [*r.positive_ids, *r.negative_ids]) for r in records]
    scores = score_items(teacher, items, Path(out), cfg.block_size, cfg.show_progress_bar, ids)
    stats = {"queries": len(records), "positives": 0, "negatives": 0, "teacher_above_positive": 0,
             "queries_with_teacher_above_positive": 0, "guard": cfg.guard, "removed_by_guard": 0}
    scored = []
    for record, row in zip(records, scores, strict=True):
        record, removed = _attach(record, row, cfg.guard)
        stats["teacher_above_positive"] += removed
        stats["queries_with_teacher_above_positive"] += int(removed > 0)
        if cfg.guard is not None:
            stats["removed_by_guard"] += removed
        stats["positives"] += len(record.positives)
        stats["negatives"] += len(record.negatives)
        scored.append(record)
    return scored, scores, stats


def _attach(record: Any, scores: list[float], guard: str | None) -> tuple[Any, int]:
    """The record with teacher scores (negatives above the lowest positive dropped under the guard) and how many
    negatives the teacher puts above the lowest positive."""
    import dataclasses

    num_pos = len(record.positives)
    if len(scores) != num_pos + len(record.negatives):
        raise DataError(f"teacher returned {len(scores)} scores for {num_pos + len(record.negatives)} passages of "
                        f"query {record.query_id!r}")
    if any(not math.isfinite(s) for s in scores):
        raise DataError(f"teacher returned a non-finite score for query {record.query_id!r}")
    pos, neg = scores[:num_pos], scores[num_pos:]
    lowest = min(pos)
    above = [s > lowest for s in neg]
    keep = [not a for a in above] if guard == "teacher-above-positive" else [True] * len(neg)

    def kept(values: list) -> list:
        return [v for v, k in zip(values, keep) if k] if values else values

    return dataclasses.replace(record, negative_ids=kept(record.negative_ids), negatives=kept(record.negatives),
                               negative_scores=kept(record.negative_scores), positive_teacher_scores=pos,
                               negative_teacher_scores=kept(neg)), sum(above)
