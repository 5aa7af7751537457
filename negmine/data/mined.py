"""``mined.jsonl``: the record of one query's mined negatives, and the one builder of sentence-transformers rows.

One record type, :class:`MinedRecord`, travels from ``negmine mine`` (which writes it) through ``negmine relabel``
(which moves passages between its lists) to ``negmine train`` (which turns it into training rows). Mining, relabeling
and training all import it from here, so none of them depends on another.

The file has one JSON object per line, ids beside texts so later stages can join back to the corpus::

    {"query_id", "query", "positive_ids", "positives", "positive_scores",
     "negative_ids", "negatives", "negative_scores"[, "positive_negatives", "positive_teacher_scores",
     "negative_teacher_scores"]}

``*_teacher_scores`` (present once ``negmine score`` has run, :mod:`negmine.scoring`) are a teacher's scores of the
same passages; the teacher's fingerprint is in that stage's ``manifest.json``.

``positive_negatives`` (optional) is written when the positives of a query have different negatives (mining with
``margin_reference "each"``: each (query, positive) row keeps the negatives that satisfy the margin relative to *its*
positive): one entry per positive, a list of indices into ``negative_ids``, or ``null`` for a positive whose row was
dropped for too few negatives (it has no training row but stays a positive). Without it every positive uses every
negative.

Score lists hold the miner's (teacher's) score of each passage, higher = more similar; they may be empty (a file
mined without scores) unless a reader asks for them (``require_scores``). Reading is strict: every bad line raises
:class:`~negmine.errors.DataError` naming the file, line and field.

Extending the record
--------------------
New optional fields (so far ``positive_negatives`` and ``positive_teacher_scores``/``negative_teacher_scores``) are
added in one place, here:

1. an attribute on :class:`MinedRecord` after ``negative_scores``, defaulting to ``None`` ("absent");
2. its name and validator in :data:`OPTIONAL_FIELDS` (the validator gets the raw JSON value, the file and the line,
   raises :class:`DataError` naming the field, and returns the parsed value).

:meth:`MinedRecord.to_dict` writes an optional field only when it is set, so files without it stay byte-identical and
older readers are unaffected; :meth:`MinedRecord.from_dict` validates it when present. Fields this version does not
know are kept in :attr:`MinedRecord.extra` and written back unchanged (a relabeled file passes them through).

Training rows
-------------
:func:`build_rows` (``negmine train``) and :func:`iter_rows` (``negmine mine --format``) build every
sentence-transformers row from records; the n-tuple row of both comes from one function. Formats of
:func:`iter_rows` follow sentence-transformers (one row per (query, positive) pair, columns in its order
``anchor, positive, negative_1..n``; the optional ``scores`` column is ``[positive, negatives…]`` and reaches a loss
as ``labels``) or FlagEmbedding (``query, pos, neg, pos_scores, neg_scores``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negmine.data.beir import text_id
from negmine.errors import DataError
from negmine.io import iter_text_lines

logger = logging.getLogger(__name__)

FORMATS = ("n-tuple", "triplet", "labeled-pair", "labeled-list", "flag")

_ID_FIELDS = ("query_id", "query")
_SCORE_FIELDS = ("positive_scores", "negative_scores")
_LIST_FIELDS = ("positive_ids", "positives", "positive_scores", "negative_ids", "negatives", "negative_scores")
#: the fields every record has, in the order they are written
MINED_FIELDS = (*_ID_FIELDS, *_LIST_FIELDS)

def _score_list(name: str) -> Callable[[Any, Path, int | None], list[float]]:
    def check(value: Any, path: Path, lineno: int | None) -> list[float]:
        if not isinstance(value, list):
            raise DataError("not a list", path, lineno, name)
        for item in value:
            if not _valid_item(item, True):
                raise DataError(f"list item {item!r} has the wrong type", path, lineno, name)
        return list(value)

    return check


def _check_positive_negatives(value: Any, path: Path, lineno: int | None) -> list[list[int] | None]:
    """Structure of ``positive_negatives``: a list whose items are ``null`` or lists of distinct indices (their
    count and range are checked against the record in :meth:`MinedRecord.from_dict`)."""
    key = "positive_negatives"
    if not isinstance(value, list):
        raise DataError("must be a list with one item per positive", path, lineno, key)
    for negs in value:
        if negs is None:
            continue
        if not isinstance(negs, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in negs):
            raise DataError(f"item {negs!r} is not a list of indices into negative_ids", path, lineno, key)
        if len(set(negs)) != len(negs):
            raise DataError(f"item {negs!r} repeats a negative", path, lineno, key)
    return [None if negs is None else list(negs) for negs in value]


#: optional fields: name -> validator(raw value, path, line) -> parsed value (see "Extending the record")
OPTIONAL_FIELDS: dict[str, Callable[[Any, Path, int | None], Any]] = {
    "positive_negatives": _check_positive_negatives,
    "positive_teacher_scores": _score_list("positive_teacher_scores"),
    "negative_teacher_scores": _score_list("negative_teacher_scores"),
}


@dataclass
class MinedRecord:
    """One query of ``mined.jsonl``: its positives and mined negatives, with ids and (optional) teacher scores."""

    query_id: str
    query: str
    positive_ids: list[str]
    positives: list[str]
    positive_scores: list[float]
    negative_ids: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)
    # optional fields (OPTIONAL_FIELDS) go here, defaulting to None
    positive_negatives: list[list[int] | None] | None = None
    """Per positive: indices into the negatives, ``None`` when its row was dropped (module docstring)."""
    positive_teacher_scores: list[float] | None = None  # negmine score: a teacher's score of each positive
    negative_teacher_scores: list[float] | None = None  # ... and of each negative
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields this version does not know, passed through unchanged."""

    def negatives_of(self, positive: int) -> list[int]:
        """Indices into ``negatives`` of the negatives of one positive."""
        if self.positive_negatives is None:
            return list(range(len(self.negative_ids)))
        return list(self.positive_negatives[positive] or [])

    def has_row(self, positive: int) -> bool:
        """Whether a positive has a training row (``False`` when its row was dropped for too few negatives)."""
        return self.positive_negatives is None or self.positive_negatives[positive] is not None

    def groups(self) -> list[tuple[list[int], list[int]]]:
        """(positive indices, negative indices) for each distinct negative list, in order of first appearance: one
        group of everything without per-positive negatives; positives whose row was dropped are left out."""
        if self.positive_negatives is None:
            return [(list(range(len(self.positive_ids))), list(range(len(self.negative_ids))))]
        by_list: dict[tuple[int, ...], list[int]] = {}
        for p, negs in enumerate(self.positive_negatives):
            if negs is not None:
                by_list.setdefault(tuple(negs), []).append(p)
        return [(positives, list(negs)) for negs, positives in by_list.items()]

    def subset(self, positives: list[int], negatives: list[int]) -> MinedRecord:
        """The record of some positives with some negatives (no per-positive field): one group of :meth:`groups`."""
        scored = self.has_scores
        return MinedRecord(
            self.query_id, self.query, [self.positive_ids[p] for p in positives],
            [self.positives[p] for p in positives], [self.positive_scores[p] for p in positives] if scored else [],
            [self.negative_ids[i] for i in negatives], [self.negatives[i] for i in negatives],
            [self.negative_scores[i] for i in negatives] if scored else [],
            positive_teacher_scores=None if self.positive_teacher_scores is None
            else [self.positive_teacher_scores[p] for p in positives],
            negative_teacher_scores=None if self.negative_teacher_scores is None
            else [self.negative_teacher_scores[i] for i in negatives],
            extra=dict(self.extra))

    @property
    def has_scores(self) -> bool:
        """Whether every positive and every negative has a teacher score."""
        return len(self.positive_scores) == len(self.positives) and len(self.negative_scores) == len(self.negatives)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (lists copied): the fixed fields, the optional ones that are set, extras."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _ID_FIELDS}
        out.update({k: list(getattr(self, k)) for k in _LIST_FIELDS})
        for key in OPTIONAL_FIELDS:
            if getattr(self, key, None) is not None:
                out[key] = getattr(self, key)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: Any, path: str | os.PathLike = "<records>", lineno: int | None = None, *,
                  require_scores: bool = False) -> MinedRecord:
        """Validate one JSON object; a bad one raises :class:`DataError` naming ``path``, ``lineno`` and the field.

        Checks: the required fields are there with the right types, scores are finite numbers, lists agree in length
        with their ids (score lists may be empty unless ``require_scores``), and the query has a positive.
        """
        path = Path(path)
        if not isinstance(obj, Mapping):
            raise DataError("expected a JSON object", path, lineno)
        for key in _ID_FIELDS:
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise DataError("missing or not a non-empty string", path, lineno, key)
        for key in _LIST_FIELDS:
            if not isinstance(obj.get(key), list):
                raise DataError("missing or not a list", path, lineno, key)
            for item in obj[key]:
                if not _valid_item(item, key in _SCORE_FIELDS):
                    raise DataError(f"list item {item!r} has the wrong type", path, lineno, key)
        if not obj["positives"]:
            raise DataError("a query needs at least one positive", path, lineno, "positives")
        for prefix in ("positive", "negative"):
            n = len(obj[f"{prefix}_ids"])
            for key in (f"{prefix}s", f"{prefix}_scores"):
                optional = key in _SCORE_FIELDS and not require_scores and not obj[key]
                if len(obj[key]) != n and not optional:
                    raise DataError(f"has {len(obj[key])} items but {prefix}_ids has {n}", path, lineno, key)
        optional_values = {k: check(obj[k], path, lineno) for k, check in OPTIONAL_FIELDS.items() if k in obj}
        _check_teacher_scores(obj, optional_values, path, lineno)
        per_positive = optional_values.get("positive_negatives")
        if per_positive is not None:
            n_pos, n_neg = len(obj["positive_ids"]), len(obj["negative_ids"])
            if len(per_positive) != n_pos:
                raise DataError(f"must be a list with one item per positive ({n_pos})", path, lineno,
                                "positive_negatives")
            for negs in per_positive:
                if negs is not None and not all(0 <= i < n_neg for i in negs):
                    raise DataError(f"item {negs!r} is not a list of indices into negative_ids (0..{n_neg - 1})",
                                    path, lineno, "positive_negatives")
        extra = {k: v for k, v in obj.items() if k not in MINED_FIELDS and k not in OPTIONAL_FIELDS}
        return cls(**{k: obj[k] for k in _ID_FIELDS}, **{k: list(obj[k]) for k in _LIST_FIELDS}, **optional_values,
                   extra=extra)


def _check_teacher_scores(obj: dict[str, Any], values: dict[str, Any], path: str | os.PathLike,
                          lineno: int | None) -> None:
    """Teacher scores come for positives and negatives alike, one per passage."""
    given = [k for k in ("positive_teacher_scores", "negative_teacher_scores") if k in values]
    if len(given) == 1:
        missing = "negative_teacher_scores" if given[0] == "positive_teacher_scores" else "positive_teacher_scores"
        raise DataError("teacher scores must be given for positives and negatives alike", path, lineno, missing)
    for key in given:
        prefix = key.split("_", 1)[0]
        if len(values[key]) != len(obj[f"{prefix}_ids"]):
            raise DataError(f"has {len(values[key])} items but {prefix}_ids has {len(obj[prefix + '_ids'])}", path,
                            lineno, key)


def _valid_item(item: Any, is_score: bool) -> bool:
    if is_score:
        return _is_number(item)
    return isinstance(item, str)


def as_records(records: Iterable[MinedRecord | Mapping[str, Any]], source: str = "<records>",
               require_scores: bool = False) -> list[MinedRecord]:
    """Records as :class:`MinedRecord` (mappings are validated, item ``i`` reported as line ``i + 1``)."""
    return [r if isinstance(r, MinedRecord) else MinedRecord.from_dict(r, source, i, require_scores=require_scores)
            for i, r in enumerate(records, start=1)]


# --------------------------------------------------------------------------------------------------------------------
# reading and writing mined.jsonl
# --------------------------------------------------------------------------------------------------------------------


def read_mined(path: str | os.PathLike, *, require_scores: bool = False) -> list[MinedRecord]:
    """Read a ``mined.jsonl`` file (or the folder holding it) strictly.

    Every bad line raises :class:`DataError` naming the file, line and field: malformed JSON, a missing or empty
    ``query_id``/``query``, a missing list, an item of the wrong type or a non-finite score, lists whose lengths
    disagree with their ids, a query without positives, or a repeated ``query_id``. Score lists may be empty (a file
    mined without teacher scores) unless ``require_scores`` is set.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "mined.jsonl"
    if not path.is_file():
        raise DataError("file not found", path)
    records: list[MinedRecord] = []
    seen: set[str] = set()
    on_bom = lambda: logger.warning("%s: starts with a UTF-8 byte-order mark; read as utf-8-sig", path)  # noqa: E731
    for lineno, line in iter_text_lines(path, on_bom=on_bom):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise DataError(f"malformed JSON ({str(err)[:200]})", path, lineno) from None
        record = MinedRecord.from_dict(obj, path, lineno, require_scores=require_scores)
        if record.query_id in seen:
            raise DataError(f"duplicate query_id {record.query_id!r}", path, lineno, "query_id")
        seen.add(record.query_id)
        records.append(record)
    return records


def write_mined(path: str | os.PathLike, records: Iterable[MinedRecord]) -> int:
    """Write records as ``mined.jsonl``, atomically; returns the number written."""
    from negmine.io import write_jsonl

    return write_jsonl(path, (r.to_dict() for r in records))


SCORE_SOURCES = ("retriever", "teacher")


def read_records(path: str | os.PathLike, scores: str = "retriever") -> list[MinedRecord]:
    """Training input as records: ``mined.jsonl`` (or a folder holding it), or a sentence-transformers n-tuple
    file/folder (``anchor, positive, negative_1..n[, scores]``, one row per (query, positive)) whose rows with the same
    anchor are merged into one record (ids derived from the texts).

    ``scores="teacher"`` puts a scored ``mined.jsonl``'s teacher scores (``negmine score``) where the retriever's
    were, so every row builder and loss sees the teacher's."""
    if scores not in SCORE_SOURCES:
        raise ValueError(f"scores={scores!r} is not one of {', '.join(SCORE_SOURCES)}")
    path = Path(path)
    if path.is_dir() and (path / "mined.jsonl").exists():
        path = path / "mined.jsonl"
    if not path.exists():
        raise DataError("no such file or folder", path=path)
    if path.is_file() and path.name.endswith((".jsonl", ".json")) and _is_mined(path):
        records = read_mined(path)
        return records if scores == "retriever" else [_teacher_view(r, path) for r in records]
    if scores == "teacher":
        raise DataError("teacher scores are read from a mined.jsonl scored by `negmine score`, not from a "
                        "sentence-transformers file", path=path)
    from negmine.data.pairs import read_st_rows

    return records_from_st_rows(read_st_rows(path), str(path))


def _teacher_view(record: MinedRecord, path: Path) -> MinedRecord:
    """The record with its teacher scores in ``positive_scores``/``negative_scores``."""
    import dataclasses

    if record.positive_teacher_scores is None or record.negative_teacher_scores is None:
        raise DataError(f"query {record.query_id!r} has no teacher scores; score the file first (negmine score "
                        "--mined FILE --teacher SPEC)", path, field="positive_teacher_scores")
    return dataclasses.replace(record, positive_scores=list(record.positive_teacher_scores),
                               negative_scores=list(record.negative_teacher_scores))


def _is_mined(path: Path) -> bool:
    for lineno, line in iter_text_lines(path):
        if line.strip():
            try:
                first = json.loads(line)
            except (ValueError, RecursionError) as err:
                raise DataError(f"malformed JSON ({str(err)[:200]})", path, lineno) from None
            return isinstance(first, dict) and "query_id" in first and "positives" in first
    raise DataError("empty file", path)


def records_from_st_rows(rows: list[dict[str, Any]], source: str) -> list[MinedRecord]:
    """Merge sentence-transformers n-tuple rows (one per query and positive) into one record per anchor. Scores are
    kept only when every row of the anchor carries a valid ``scores`` column."""
    by_anchor: dict[str, MinedRecord] = {}
    for lineno, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", source, lineno)
        anchor, positive = row.get("anchor"), row.get("positive")
        if not isinstance(anchor, str) or not isinstance(positive, str):
            raise DataError("expected string columns 'anchor' and 'positive' (sentence-transformers n-tuple)",
                            source, lineno, "anchor" if not isinstance(anchor, str) else "positive")
        negatives = [row[k] for k in sorted((k for k in row if k.startswith("negative")), key=_column_number)
                     if isinstance(row[k], str)]
        scores = row.get("scores")
        valid_scores = (isinstance(scores, list) and len(scores) == 1 + len(negatives)
                        and all(_is_number(s) for s in scores))
        record = by_anchor.get(anchor)
        if record is None:
            by_anchor[anchor] = MinedRecord(
                text_id(anchor, "q"), anchor, [text_id(positive, "d")], [positive],
                [float(scores[0])] if valid_scores else [], [text_id(n, "d") for n in negatives], negatives,
                [float(s) for s in scores[1:]] if valid_scores else [])
        elif positive not in record.positives:
            scored = record.has_scores and valid_scores
            record.positive_ids.append(text_id(positive, "d"))
            record.positives.append(positive)
            if scored:
                record.positive_scores.append(float(scores[0]))
            else:
                record.positive_scores, record.negative_scores = [], []
    if not by_anchor:
        raise DataError("no training rows", source)
    return list(by_anchor.values())


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _column_number(name: str) -> int:
    digits = name.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else 0


# --------------------------------------------------------------------------------------------------------------------
# sentence-transformers rows
# --------------------------------------------------------------------------------------------------------------------


def negatives_histogram(records: list[MinedRecord]) -> str:
    """``"negatives per query: 0 x 3 queries, 2 x 40 queries"``: how many queries have how many negatives."""
    counts = Counter(len(r.negatives) for r in records)
    return "negatives per query: " + ", ".join(f"{n} x {counts[n]} quer{'y' if counts[n] == 1 else 'ies'}"
                                                for n in sorted(counts))


def ntuple_row(record: MinedRecord, start: int, num_pos: int, num_neg: int, with_scores: bool) -> dict[str, Any]:
    """The n-tuple row of ``record``'s positives ``start .. start + num_pos``: ``anchor, positive[_1..P],
    negative_1..N[, scores]``. Spare positive columns repeat the first positive of the group with a ``NaN`` score."""
    group = record.positives[start:start + num_pos]
    row: dict[str, Any] = {"anchor": record.query}
    for k in range(num_pos):
        # positive_1..P, never "positive" next to "positive_2": the trainer splits a batch into columns by name
        # prefix, so "positive" would also collect positive_2's tensors and the merged forward would be refused
        row["positive" if num_pos == 1 else f"positive_{k + 1}"] = group[k] if k < len(group) else group[0]
    for k in range(num_neg):
        row[f"negative_{k + 1}"] = record.negatives[k]
    if with_scores:
        pos_scores = record.positive_scores[start:start + num_pos]
        row["scores"] = ([float(s) for s in pos_scores] + [math.nan] * (num_pos - len(pos_scores))
                         + [float(s) for s in record.negative_scores[:num_neg]])
    return row


def split_records(records: Iterable[MinedRecord]) -> list[MinedRecord]:
    """Records without per-positive negatives: a record with ``positive_negatives`` becomes one record per distinct
    negative list (:meth:`MinedRecord.groups`); the others are returned as they are."""
    return [r if r.positive_negatives is None else r.subset(p, n) for r in records
            for p, n in ([([], [])] if r.positive_negatives is None else r.groups())]


def build_rows(records: list[MinedRecord], max_positives: int = 1, num_negatives: int | None = None,
               use_scores: bool = True, source: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Training rows ``anchor, positive[, positive_2..P], negative_1..N[, scores]`` for ``negmine train``.

    ``P = min(max_positives, most positives of any query)``; a query with more than ``P`` positives is split over
    several rows of ``P`` positives (same anchor and negatives); one with fewer repeats its first positive in the spare
    columns with a ``NaN`` score. ``N = num_negatives`` (default: the fewest negatives of any query); queries with
    fewer are left out (logged), longer lists keep their first ``N``. ``scores`` is written when ``use_scores`` and
    every kept query has teacher scores. ``source`` (the file the records came from) is named in the errors.
    """
    if not records:
        raise DataError("no queries to train on", source)
    records = split_records(records)
    if not records:
        raise DataError("no queries to train on", source)
    num_pos = min(max_positives, max(len(r.positives) for r in records))
    num_neg = min(len(r.negatives) for r in records) if num_negatives is None else num_negatives
    kept = [r for r in records if len(r.negatives) >= num_neg]
    if len(kept) < len(records):
        logger.warning("%d of %d queries have fewer than %d negatives and are left out", len(records) - len(kept),
                       len(records), num_neg)
    if not kept:
        raise DataError(f"no query has {num_neg} negatives ({negatives_histogram(records)}); lower "
                        "num_negatives (--num-negatives) or mine more", source)
    with_scores = use_scores and all(r.has_scores for r in kept)
    if use_scores and not with_scores:
        logger.info("not every query has teacher scores: training without a scores column")
    return [ntuple_row(r, start, num_pos, num_neg, with_scores)
            for r in kept for start in range(0, len(r.positives), num_pos)]


def iter_rows(records: Iterable[MinedRecord], fmt: str, output_scores: bool = False) -> Iterator[dict[str, Any]]:
    """Rows of a training file format (``negmine mine --format``; see the module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    for r in records:
        if fmt == "flag":
            for sub in [r] if r.positive_negatives is None else [r.subset(p, n) for p, n in r.groups()]:
                yield {
                    "query": sub.query,
                    "pos": sub.positives,
                    "neg": sub.negatives,
                    "pos_scores": sub.positive_scores,
                    "neg_scores": sub.negative_scores,
                }
            continue
        for p, positive in enumerate(r.positives):
            if r.positive_negatives is None:
                yield from _pair_rows(r, p, positive, fmt, output_scores)
            elif r.has_row(p):  # not dropped for too few negatives
                yield from _pair_rows(r.subset([p], r.negatives_of(p)), 0, positive, fmt, output_scores)


def _scores(record: MinedRecord, positive: int) -> list[float]:
    return [record.positive_scores[positive], *record.negative_scores]


def _pair_rows(r: MinedRecord, p: int, positive: str, fmt: str, output_scores: bool) -> Iterator[dict[str, Any]]:
    if fmt == "n-tuple":
        yield ntuple_row(r, p, 1, len(r.negatives), output_scores)
    elif fmt == "triplet":
        for neg, neg_score in zip(r.negatives, r.negative_scores):
            row = {"anchor": r.query, "positive": positive, "negative": neg}
            if output_scores:
                row["scores"] = [r.positive_scores[p], neg_score]
            yield row
    elif fmt == "labeled-pair":
        pairs = [(positive, r.positive_scores[p], 1)] + [(n, s, 0) for n, s in zip(r.negatives, r.negative_scores)]
        for doc, score, label in pairs:
            yield {
                "anchor": r.query,
                "document": doc,
                ("score" if output_scores else "label"): score if output_scores else label,
            }
    else:  # labeled-list
        docs = [positive, *r.negatives]
        yield {
            "anchor": r.query,
            "documents": docs,
            ("scores" if output_scores else "labels"): _scores(r, p)
            if output_scores
            else [1] + [0] * len(r.negatives),
        }
