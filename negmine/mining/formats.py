"""Output formats of mined negatives.

``mined.jsonl`` (always written) is negmine's own format: one record per query with ids beside texts, so later
stages (relabel, train, eval) can join back to the corpus::

    {"query_id", "query", "positive_ids", "positives", "positive_scores",
     "negative_ids", "negatives", "negative_scores"}

The training formats follow sentence-transformers (one row per (query, positive) pair, columns in its order
``anchor, positive, negative_1..n``; the optional ``scores`` column is ``[positive, negatives…]`` and reaches a loss as
``labels``) or FlagEmbedding (``query, pos, neg, pos_scores, neg_scores``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import DataError
from negmine.io import iter_text_lines

logger = logging.getLogger(__name__)

FORMATS = ("n-tuple", "triplet", "labeled-pair", "labeled-list", "flag")


@dataclass
class MinedQuery:
    query_id: str
    query: str
    positive_ids: list[str]
    positives: list[str]
    positive_scores: list[float]
    negative_ids: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ID_FIELDS = ("query_id", "query")
_SCORE_FIELDS = ("positive_scores", "negative_scores")
_LIST_FIELDS = ("positive_ids", "positives", "positive_scores", "negative_ids", "negatives", "negative_scores")


def read_mined(path: str | os.PathLike, *, require_scores: bool = False) -> list[MinedQuery]:
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
    records: list[MinedQuery] = []
    seen: set[str] = set()
    for lineno, line in iter_text_lines(path, on_bom=lambda: logger.warning("%s: starts with a UTF-8 byte-order "
                                                                           "mark; read as utf-8-sig", path)):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise DataError(f"malformed JSON ({str(err)[:200]})", path, lineno) from None
        record = _mined_from_dict(obj, path, lineno, require_scores)
        if record.query_id in seen:
            raise DataError(f"duplicate query_id {record.query_id!r}", path, lineno, "query_id")
        seen.add(record.query_id)
        records.append(record)
    return records


def _mined_from_dict(obj: Any, path: Path, lineno: int, require_scores: bool) -> MinedQuery:
    if not isinstance(obj, dict):
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
    return MinedQuery(**{k: obj[k] for k in (*_ID_FIELDS, *_LIST_FIELDS)})


def _valid_item(item: Any, is_score: bool) -> bool:
    if is_score:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            return False
        try:
            return math.isfinite(item)
        except OverflowError:  # an integer too large for a float
            return False
    return isinstance(item, str)


def _scores(record: MinedQuery, positive: int) -> list[float]:
    return [record.positive_scores[positive], *record.negative_scores]


def iter_rows(records: Iterable[MinedQuery], fmt: str, output_scores: bool = False) -> Iterator[dict[str, Any]]:
    """Rows of a training format (see module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    for r in records:
        if fmt == "flag":
            yield {
                "query": r.query,
                "pos": r.positives,
                "neg": r.negatives,
                "pos_scores": r.positive_scores,
                "neg_scores": r.negative_scores,
            }
            continue
        for p, positive in enumerate(r.positives):
            yield from _st_rows(r, p, positive, fmt, output_scores)


def _st_rows(r: MinedQuery, p: int, positive: str, fmt: str, output_scores: bool) -> Iterator[dict[str, Any]]:
    if fmt == "n-tuple":
        row = {"anchor": r.query, "positive": positive}
        row.update({f"negative_{i + 1}": neg for i, neg in enumerate(r.negatives)})
        if output_scores:
            row["scores"] = _scores(r, p)
        yield row
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
