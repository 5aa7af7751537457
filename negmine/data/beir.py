"""BEIR data: the :class:`RetrievalData` shape, BEIR folders (corpus, queries, qrels) and BEIR datasets on the hub.

Everything negmine loads (here and in :mod:`negmine.data.pairs`) ends in one shape, :class:`RetrievalData` (BEIR
dicts at the edges), after strict validation: malformed JSON, missing ``_id``/``text``, duplicate ids, empty texts, a
qrels TSV without its header, and qrels that name unknown queries or documents each raise
:class:`~negmine.errors.DataError` naming the file, line and field. Rows are never dropped silently: with
``on_invalid="skip"`` they are skipped, counted and reported in :attr:`RetrievalData.report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from negmine.errors import DataError
from negmine.io import iter_text_lines

logger = logging.getLogger(__name__)

Corpus = dict[str, dict[str, str]]  # doc_id -> {"title": ..., "text": ...}
Queries = dict[str, str]  # query_id -> text
Qrels = dict[str, dict[str, int]]  # query_id -> {doc_id: relevance}

OnInvalid = Literal["error", "skip"]
CorpusStorage = Literal["memory", "disk", "auto"]
#: ``corpus_storage="auto"`` keeps a corpus file up to this size in memory (dicts) and indexes a larger one on disk
#: (512 MiB ≈ 1.2M passages of ~60 words, which as dicts take ~1.5 GB of Python objects)
AUTO_DISK_BYTES = 512 * 2**20
UnknownQrels = Literal["error", "skip", "keep"]

DATA_ENV = "NEGMINE_DATA"


@dataclass
class LoadReport:
    """What loading skipped or kept despite a problem, by reason (``"corpus.jsonl: empty text"`` -> count)."""

    skipped: Counter = field(default_factory=Counter)
    kept_unknown: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # input read despite a quirk ("…: UTF-8 byte-order mark …")

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def note_bom(self, path: str | os.PathLike) -> None:
        self.notes.append(f"{Path(path).name}: starts with a UTF-8 byte-order mark; read as utf-8-sig")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"skipped": dict(self.skipped), "kept_unknown": dict(self.kept_unknown)}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class RetrievalData:
    """A corpus, queries and the qrels of one split.

    Graded qrels: a document whose qrels score is ``>= positive_grade`` (default 1: every score > 0) is a positive;
    with ``exclude_grade`` set, one scoring ``>= exclude_grade`` and ``< positive_grade`` is *excluded*: never a
    positive and never mined as a negative (TREC's grade 1 "related" with ``positive_grade=2, exclude_grade=1``).
    """

    corpus: Mapping[str, dict[str, str]]  # a dict, or a DiskCorpus (corpus_storage="disk")
    queries: Mapping[str, str]  # a dict, or DiskQueries
    qrels: Qrels
    name: str = ""
    split: str = ""
    sources: list[str] = field(default_factory=list)
    report: LoadReport = field(default_factory=LoadReport)
    positive_grade: int = 1
    exclude_grade: int | None = None
    # what load_data(origin, split) reloads as this data (a folder, pair file or hub id); None for data built or
    # changed in memory (a subsample, toy data): a run's manifest records it so later stages can reload the data
    origin: str | None = None

    def __post_init__(self) -> None:
        if self.exclude_grade is not None and self.exclude_grade >= self.positive_grade:
            raise ValueError(
                f"exclude_grade ({self.exclude_grade}) must be below positive_grade ({self.positive_grade})"
            )

    def doc_text(self, doc_id: str) -> str:
        return doc_text(self.corpus[doc_id])

    def corpus_ids(self) -> Sequence[str]:
        """The document ids in corpus order: a list, or for a disk-backed corpus a lazy sequence (no list of 10M
        ids)."""
        ids = getattr(self.corpus, "ids", None)
        return ids() if callable(ids) else list(self.corpus)

    def doc_texts(self, doc_ids: Sequence[str] | None = None) -> Sequence[str]:
        """The encoded text of each document of ``doc_ids`` (default: every document, in corpus order): a list, or
        for the whole of a disk-backed corpus a lazy sequence read block by block."""
        texts = getattr(self.corpus, "texts", None)
        if callable(texts) and (doc_ids is None or getattr(doc_ids, "table", None) is self.corpus):
            return texts()
        return [self.doc_text(d) for d in (self.corpus if doc_ids is None else doc_ids)]

    def positives(self, query_id: str) -> list[str]:
        """Ids of the positives of a query (qrels score >= ``positive_grade``), in qrels order."""
        return [doc_id for doc_id, rel in self.qrels.get(query_id, {}).items() if rel >= self.positive_grade]

    def excluded(self, query_id: str) -> list[str]:
        """Ids graded ``exclude_grade <= score < positive_grade`` for a query: neither positives nor negatives."""
        if self.exclude_grade is None:
            return []
        low, high = self.exclude_grade, self.positive_grade
        return [doc_id for doc_id, rel in self.qrels.get(query_id, {}).items() if low <= rel < high]

    @property
    def split_query_ids(self) -> list[str]:
        """Queries that have at least one positive in this split, in qrels order."""
        return [qid for qid in self.qrels if qid in self.queries and self.positives(qid)]

    def summary(self) -> str:
        n_pos = sum(len(self.positives(q)) for q in self.split_query_ids)
        return (
            f"{self.name or 'data'}[{self.split}]: {len(self.corpus):,} docs, {len(self.split_query_ids):,} queries "
            f"with {n_pos:,} positives"
        )


def doc_text(doc: dict[str, str]) -> str:
    """The text a document is encoded as: ``title + " " + text`` (stripped) when it has a title (MTEB, BEIR)."""
    title = doc.get("title") or ""
    text = doc.get("text") or ""
    return f"{title} {text}".strip() if title else text


def text_id(text: str, prefix: str) -> str:
    """A stable id for a text that came without one (pair files)."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# locating data
# --------------------------------------------------------------------------------------------------------------------


def default_data_root() -> Path | None:
    """``$NEGMINE_DATA`` if set, else ``../shared/data/beir`` (relative to the working directory or this checkout)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    candidates = [
        Path.cwd() / ".." / "shared" / "data" / "beir",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "beir",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_data_path(data: str | os.PathLike) -> Path | str:
    """Turn ``--data`` into a folder or file: an existing path, a dataset name under the data root, or a hub id."""
    path = Path(data).expanduser()
    if path.exists():
        return path
    root = default_data_root()
    if root is not None and (root / str(data)).exists():
        return root / str(data)
    if "/" in str(data) and not str(data).startswith((".", "/")):
        return str(data)  # a hub id such as BeIR/scifact, loaded with `datasets` when online
    hint = f" (looked in {root})" if root else f" (set ${DATA_ENV} to the folder holding BEIR datasets)"
    raise DataError(f"no such data folder or file{hint}", path=data)


def resolve_storage(storage: str, corpus_path: str | os.PathLike) -> Literal["memory", "disk"]:
    """``memory`` or ``disk`` for ``corpus_storage`` (``auto``: disk when the corpus file is larger than
    :data:`AUTO_DISK_BYTES`; a ``.gz`` file counts four times its size, a typical compression ratio of text)."""
    from negmine.errors import check_choice

    check_choice("corpus_storage", storage, get_args(CorpusStorage))
    if storage != "auto":
        return storage  # type: ignore[return-value]
    size = os.path.getsize(corpus_path) * (4 if str(corpus_path).endswith(".gz") else 1)
    return "disk" if size > AUTO_DISK_BYTES else "memory"


# --------------------------------------------------------------------------------------------------------------------
# BEIR folders
# --------------------------------------------------------------------------------------------------------------------


def find_beir_file(folder: Path, stem: str) -> Path:
    """``folder/stem`` or its gzipped twin ``folder/stem.gz``."""
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"missing {stem} (or {stem}.gz)", path=folder)


def iter_jsonl(path: Path, report: LoadReport, on_invalid: OnInvalid) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line, with strict JSON parsing (a leading UTF-8 byte-order
    mark is accepted and noted in ``report``; a line that is not UTF-8 is invalid like malformed JSON)."""
    for lineno, line in iter_text_lines(path, on_bom=lambda: report.note_bom(path),
                                        on_undecodable=lambda err: _invalid(report, on_invalid,
                                                                            f"{path.name}: not UTF-8", err)):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        except (ValueError, RecursionError) as err:
            _invalid(
                report,
                on_invalid,
                f"{path.name}: malformed JSON",
                DataError(f"malformed JSON ({_short(err)})", path, lineno),
            )
            continue
        yield lineno, obj


def _short(err: BaseException, limit: int = 200) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _invalid(report: LoadReport, on_invalid: OnInvalid, reason: str, error: DataError) -> None:
    if on_invalid == "error":
        raise error
    report.skip(reason)
    logger.debug("skipped: %s", error)


def _require_str(obj: dict[str, Any], key: str, path: Path, lineno: int, allow_empty: bool = False) -> str:
    if key not in obj or obj[key] is None:
        raise DataError("missing", path, lineno, key)
    value = obj[key]
    if not isinstance(value, (str, int)):
        raise DataError(f"expected a string, got {type(value).__name__}", path, lineno, key)
    value = str(value)
    if not allow_empty and not value.strip():
        raise DataError("empty", path, lineno, key)
    return value


def _load_id_table(path: Path, parse: Callable[[dict[str, Any], int], Any], what: str, report: LoadReport | None,
                   on_invalid: OnInvalid) -> dict[str, Any]:
    """Read a BEIR jsonl file of ``{"_id", ...}`` objects into ``{_id: parse(obj)}`` with strict validation."""
    report = report if report is not None else LoadReport()
    table: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path, report, on_invalid):
        try:
            key = _require_str(obj, "_id", path, lineno)
            if key in table:
                raise DataError(f"duplicate id {key!r} (first seen on line {first_line[key]})", path, lineno, "_id")
            value = parse(obj, lineno)
        except DataError as err:
            _invalid(report, on_invalid, f"{path.name}: bad {err.field}", err)
            continue
        table[key] = value
        first_line[key] = lineno
    if not table:
        raise DataError(f"no {what}", path)
    return table


def parse_document(obj: dict[str, Any], path: Path, lineno: int | None) -> dict[str, str]:
    """A corpus row's value, ``{"title", "text"}``, validated (the one rule of the in-memory and disk corpora)."""
    title = obj.get("title") or ""
    if not isinstance(title, str):
        raise DataError(f"expected a string, got {type(title).__name__}", path, lineno, "title")
    text = _require_str(obj, "text", path, lineno, allow_empty=True)  # type: ignore[arg-type]
    if not text.strip() and not title.strip():
        raise DataError(f"document {str(obj.get('_id'))!r} has an empty text (and no title)", path, lineno, "text")
    return {"title": title, "text": text}


def parse_query(obj: dict[str, Any], path: Path, lineno: int | None) -> str:
    """A queries row's value, its text, validated."""
    return _require_str(obj, "text", path, lineno)  # type: ignore[arg-type]


def load_beir_corpus(path: Path, report: LoadReport | None = None, on_invalid: OnInvalid = "error") -> Corpus:
    return _load_id_table(path, lambda obj, lineno: parse_document(obj, path, lineno), "documents", report,
                          on_invalid)


def load_beir_queries(path: Path, report: LoadReport | None = None, on_invalid: OnInvalid = "error") -> Queries:
    return _load_id_table(path, lambda obj, lineno: parse_query(obj, path, lineno), "queries", report, on_invalid)


QRELS_HEADER = ("query-id", "corpus-id", "score")


def load_qrels(
    path: Path,
    corpus: Corpus | None = None,
    queries: Queries | None = None,
    report: LoadReport | None = None,
    on_invalid: OnInvalid = "error",
    unknown_qrels: UnknownQrels = "error",
) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id  corpus-id  score``) and check its ids against corpus/queries."""
    report = report if report is not None else LoadReport()
    qrels: Qrels = {}
    lines = iter_text_lines(path, on_bom=lambda: report.note_bom(path),
                            on_undecodable=lambda err: _invalid(report, on_invalid, f"{path.name}: not UTF-8", err))
    header = next(lines, None)
    if header is None:
        raise DataError("empty qrels file", path, 1)
    header_fields = header[1].rstrip("\r\n").split("\t")
    if header[0] != 1 or tuple(h.strip().lower() for h in header_fields[:3]) != QRELS_HEADER:
        raise DataError(
            f"expected the header {'<TAB>'.join(QRELS_HEADER)!r}, got {_short('<TAB>'.join(header_fields))!r}", path,
            header[0], "header"
        )
    for lineno, line in lines:
        row = line.rstrip("\r\n").split("\t")
        if not row or not "".join(row).strip():
            continue
        try:
            qid, doc_id, score = _parse_qrels_row(row, path, lineno)
            _check_known(qid, doc_id, corpus, queries, path, lineno)
        except DataError as err:
            if err.field in ("query-id", "corpus-id") and "unknown" in str(err):
                if unknown_qrels == "keep":
                    report.kept_unknown[f"{path.name}: unknown {err.field}"] += 1
                elif unknown_qrels == "skip":
                    report.skip(f"{path.name}: unknown {err.field}")
                    continue
                else:
                    raise DataError(
                        f"{str(err).rsplit(': ', 1)[-1]} (pass unknown_qrels='keep' or 'skip', "
                        "CLI --unknown-qrels, to accept such rows)",
                        path,
                        lineno,
                        err.field,
                    ) from None
            else:
                _invalid(report, on_invalid, f"{path.name}: bad {err.field}", err)
                continue
        qrels.setdefault(qid, {})[doc_id] = score
    if not qrels:
        raise DataError("no judgements", path)
    return qrels


def _parse_qrels_row(row: list[str], path: Path, lineno: int) -> tuple[str, str, int]:
    if len(row) < 3:
        raise DataError(
            f"expected 3 tab-separated columns, got {len(row)}",
            path,
            lineno,
            "score" if len(row) == 2 else "corpus-id",
        )
    qid, doc_id, raw = row[0].strip(), row[1].strip(), row[2].strip()
    if not qid:
        raise DataError("empty", path, lineno, "query-id")
    if not doc_id:
        raise DataError("empty", path, lineno, "corpus-id")
    try:
        score = int(float(raw))
    except (ValueError, OverflowError):
        raise DataError(f"not a number: {raw!r}", path, lineno, "score") from None
    return qid, doc_id, score


def _check_known(
    qid: str, doc_id: str, corpus: Corpus | None, queries: Queries | None, path: Path, lineno: int
) -> None:
    if queries is not None and qid not in queries:
        raise DataError(f"unknown query id {qid!r}", path, lineno, "query-id")
    if corpus is not None and doc_id not in corpus:
        raise DataError(f"unknown document id {doc_id!r}", path, lineno, "corpus-id")


def load_beir(
    folder: str | os.PathLike,
    split: str = "test",
    *,
    on_invalid: OnInvalid = "error",
    unknown_qrels: UnknownQrels = "error",
    corpus_storage: str = "memory",
    cache_dir: str | os.PathLike | None = None,
) -> RetrievalData:
    """Load a BEIR folder: ``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]`` and ``qrels/<split>.tsv``.

    ``corpus_storage``: ``memory`` (dicts), ``disk`` (:class:`~negmine.data.disk.DiskCorpus` and
    :class:`~negmine.data.disk.DiskQueries`, indexed once under ``cache_dir``/``$NEGMINE_CACHE``) or ``auto``
    (disk for a corpus file above :data:`AUTO_DISK_BYTES`). The same rows, errors and skips."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder", path=folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise DataError(f"no qrels for split {split!r} (available: {', '.join(available) or 'none'})", path=qrels_path)
    report = LoadReport()
    corpus_path, queries_path = find_beir_file(folder, "corpus.jsonl"), find_beir_file(folder, "queries.jsonl")
    corpus: Any
    queries: Any
    if resolve_storage(corpus_storage, corpus_path) == "disk":
        from negmine.data.disk import DiskCorpus, DiskQueries

        corpus = DiskCorpus.open(corpus_path, report, on_invalid, cache_dir)
        queries = DiskQueries.open(queries_path, report, on_invalid, cache_dir)
    else:
        corpus = load_beir_corpus(corpus_path, report, on_invalid)
        queries = load_beir_queries(queries_path, report, on_invalid)
    qrels = load_qrels(qrels_path, corpus, queries, report, on_invalid, unknown_qrels)
    data = RetrievalData(
        corpus,
        queries,
        qrels,
        name=folder.name,
        split=split,
        sources=[str(corpus_path), str(queries_path), str(qrels_path)],
        report=report,
    )
    _log_report(data)
    return data


def _log_report(data: RetrievalData) -> None:
    for reason, count in {**data.report.skipped, **data.report.kept_unknown}.items():
        logger.warning("%s: %d row(s) %s", data.name, count, reason)
    for note in data.report.notes:
        logger.warning("%s: %s", data.name, note)


def load_hf_beir(hub_id: str, split: str = "test") -> RetrievalData:  # pragma: no cover - needs the network
    """Load a BEIR dataset from the Hugging Face hub (``BeIR/scifact`` + ``BeIR/scifact-qrels``); needs the network."""
    from negmine._optional import require

    datasets = require("datasets", "loading a dataset from the hub")
    corpus_ds = datasets.load_dataset(hub_id, "corpus", split="corpus")
    queries_ds = datasets.load_dataset(hub_id, "queries", split="queries")
    qrels_ds = datasets.load_dataset(f"{hub_id}-qrels", split=split)
    corpus = {str(r["_id"]): {"title": r.get("title") or "", "text": r["text"]} for r in corpus_ds}
    queries = {str(r["_id"]): r["text"] for r in queries_ds}
    qrels: Qrels = {}
    for row in qrels_ds:
        qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    return RetrievalData(corpus, queries, qrels, name=hub_id.split("/")[-1], split=split, sources=[hub_id])
