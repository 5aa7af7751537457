"""Output formats of mined negatives.

``mined.jsonl`` (always written) is negmine's own format: one record per query with ids beside texts, so later
stages (relabel, train, eval) can join back to the corpus::

    {"query_id", "query", "positive_ids", "positives", "positive_scores",
     "negative_ids", "negatives", "negative_scores"[, "positive_negatives"]}

``positive_negatives`` is present when the positives of a query have different negatives (``margin_reference
"each"``: each (query, positive) row keeps the negatives that satisfy the margin relative to *its* positive): one list
per positive of indices into ``negative_ids``, or ``null`` for a positive whose row was dropped for too few negatives
(it has no training row but stays a positive). Without the field every positive uses every negative.

The training formats follow sentence-transformers (one row per (query, positive) pair, columns in its order
``anchor, positive, negative_1..n``; the optional ``scores`` column is ``[positive, negatives…]`` and reaches a loss as
``labels``) or FlagEmbedding (``query, pos, neg, pos_scores, neg_scores``).
"""

from __future__ import annotations

import json
import math
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
    positive_negatives: list[list[int] | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.positive_negatives is None:
            del out["positive_negatives"]
        return out

    def negatives_of(self, positive: int) -> list[int]:
        """Indices into ``negatives`` of the negatives of one positive."""
        if self.positive_negatives is None:
            return list(range(len(self.negative_ids)))
        return list(self.positive_negatives[positive] or [])

    def has_row(self, positive: int) -> bool:
        """Whether a positive has a training row (``False`` when its row was dropped for too few negatives)."""
        return self.positive_negatives is None or self.positive_negatives[positive] is not None

    def groups(self) -> list[tuple[list[int], list[int]]]:
        """(positive indices, negative indices) for each distinct negative list, in order of first appearance.

        One group holding every positive and every negative for a record without per-positive negatives; positives
        whose row was dropped (``None``) are left out.
        """
        if self.positive_negatives is None:
            return [(list(range(len(self.positive_ids))), list(range(len(self.negative_ids))))]
        by_list: dict[tuple[int, ...], list[int]] = {}
        for p, negs in enumerate(self.positive_negatives):
            if negs is not None:
                by_list.setdefault(tuple(negs), []).append(p)
        return [(positives, list(negs)) for negs, positives in by_list.items()]


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
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise DataError(f"malformed JSON ({err})", path, lineno) from None
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
    per_positive = obj.get("positive_negatives")
    if per_positive is not None:
        _check_positive_negatives(per_positive, len(obj["positive_ids"]), len(obj["negative_ids"]), path, lineno)
    return MinedQuery(**{k: obj[k] for k in (*_ID_FIELDS, *_LIST_FIELDS)}, positive_negatives=per_positive)


def _check_positive_negatives(value: Any, n_pos: int, n_neg: int, path: Path, lineno: int) -> None:
    key = "positive_negatives"
    if not isinstance(value, list) or len(value) != n_pos:
        raise DataError(f"must be a list with one list per positive ({n_pos})", path, lineno, key)
    for negs in value:
        if negs is None:
            continue
        if not isinstance(negs, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_neg for i in negs
        ):
            raise DataError(
                f"item {negs!r} is not a list of indices into negative_ids (0..{n_neg - 1})", path, lineno, key
            )
        if len(set(negs)) != len(negs):
            raise DataError(f"item {negs!r} repeats a negative", path, lineno, key)


def _valid_item(item: Any, is_score: bool) -> bool:
    if is_score:
        return isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
    return isinstance(item, str)


def _scores(record: MinedQuery, positive: int, negatives: list[int]) -> list[float]:
    return [record.positive_scores[positive], *(record.negative_scores[i] for i in negatives)]


def iter_rows(records: Iterable[MinedQuery], fmt: str, output_scores: bool = False) -> Iterator[dict[str, Any]]:
    """Rows of a training format (see module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    for r in records:
        if fmt == "flag":
            for positives, negatives in r.groups():
                yield {
                    "query": r.query,
                    "pos": [r.positives[p] for p in positives],
                    "neg": [r.negatives[i] for i in negatives],
                    "pos_scores": [r.positive_scores[p] for p in positives] if r.positive_scores else [],
                    "neg_scores": [r.negative_scores[i] for i in negatives] if r.negative_scores else [],
                }
            continue
        for p, positive in enumerate(r.positives):
            if r.has_row(p):  # not dropped for too few negatives
                yield from _st_rows(r, p, positive, r.negatives_of(p), fmt, output_scores)


def _st_rows(
    r: MinedQuery, p: int, positive: str, negatives: list[int], fmt: str, output_scores: bool
) -> Iterator[dict[str, Any]]:
    if fmt == "n-tuple":
        row = {"anchor": r.query, "positive": positive}
        row.update({f"negative_{k + 1}": r.negatives[i] for k, i in enumerate(negatives)})
        if output_scores:
            row["scores"] = _scores(r, p, negatives)
        yield row
    elif fmt == "triplet":
        for i in negatives:
            row = {"anchor": r.query, "positive": positive, "negative": r.negatives[i]}
            if output_scores:
                row["scores"] = [r.positive_scores[p], r.negative_scores[i]]
            yield row
    elif fmt == "labeled-pair":
        pairs = [(positive, r.positive_scores[p] if output_scores else 0.0, 1)]
        pairs += [(r.negatives[i], r.negative_scores[i] if output_scores else 0.0, 0) for i in negatives]
        for doc, score, label in pairs:
            yield {
                "anchor": r.query,
                "document": doc,
                ("score" if output_scores else "label"): score if output_scores else label,
            }
    else:  # labeled-list
        docs = [positive, *(r.negatives[i] for i in negatives)]
        yield {
            "anchor": r.query,
            "documents": docs,
            ("scores" if output_scores else "labels"): _scores(r, p, negatives)
            if output_scores
            else [1] + [0] * len(negatives),
        }
