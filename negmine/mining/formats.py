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
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from negmine.errors import DataError

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


_LIST_FIELDS = ("positive_ids", "positives", "positive_scores", "negative_ids", "negatives", "negative_scores")


def read_mined(path: str | os.PathLike) -> list[MinedQuery]:
    """Read a ``mined.jsonl`` file strictly (bad lines raise :class:`DataError` with file, line and field)."""
    path = Path(path)
    if path.is_dir():
        path = path / "mined.jsonl"
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise DataError(f"malformed JSON ({err})", path, lineno) from None
            records.append(_mined_from_dict(obj, path, lineno))
    return records


def _mined_from_dict(obj: Any, path: Path, lineno: int) -> MinedQuery:
    if not isinstance(obj, dict):
        raise DataError("expected a JSON object", path, lineno)
    for key in ("query_id", "query"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise DataError("missing or not a non-empty string", path, lineno, key)
    for key in _LIST_FIELDS:
        if not isinstance(obj.get(key, []), list):
            raise DataError("expected a list", path, lineno, key)
    if not obj.get("positives"):
        raise DataError("a query needs at least one positive", path, lineno, "positives")
    for ids, texts in (("positive_ids", "positives"), ("negative_ids", "negatives")):
        if len(obj.get(ids, [])) != len(obj.get(texts, [])):
            raise DataError(f"{ids} and {texts} have different lengths", path, lineno, ids)
    return MinedQuery(**{k: obj.get(k, []) for k in ("query_id", "query", *_LIST_FIELDS)})


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
