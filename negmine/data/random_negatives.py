"""Random negatives (STAR, Zhan et al., SIGIR 2021): ``K`` corpus documents drawn per query beside the hard ones.

Static hard negatives alone make training unstable (STAR); a few uniformly drawn documents per row restore the
"easy" part of the negative distribution. :class:`RandomNegatives` draws them from the run's corpus:

* never a positive of the query, nor any document whose text equals a positive's (a copy), nor the query itself
  (by id, as in ArguAna, or by text), nor one of the row's hard negatives, and no text twice;
* seeded per query: the draw of a query depends only on ``(seed, query_id)``, so the same seed gives the same rows
  whatever the order of the records, another seed another draw;
* ``O(1)`` per draw: rejection sampling over the corpus rows (``n`` documents, ``e`` excluded texts), expected
  ``n / (n - e)`` tries per kept document. Building the sampler is ``O(n)`` once (text groups).

It sits in the data layer (no torch, no ``negmine.mining``): ``negmine train --random-negatives K`` uses it on the
records it reads, with the corpus of the run that mined them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from negmine.data.mined import MinedRecord, split_records
from negmine.errors import ConfigError, DataError

__all__ = ["RandomNegatives", "add_random_negatives"]

#: give up on a query after this many rejected tries per wanted document (only an almost fully excluded corpus)
_MAX_TRIES_PER_DRAW = 1000


class RandomNegatives:
    """Seeded uniform corpus negatives for a query, excluding positives, their copies, the query and given texts.

    Args:
        doc_ids / texts: the corpus (aligned lists).
        k: documents drawn per query.
        seed: the run's seed.
    """

    def __init__(self, doc_ids: Sequence[str], texts: Sequence[str], k: int, seed: int = 0) -> None:
        if k < 0:
            raise ConfigError(f"random_negatives={k!r} is not allowed; expected an integer >= 0")
        if len(doc_ids) != len(texts):
            raise ValueError(f"{len(doc_ids)} doc ids but {len(texts)} texts")
        self.doc_ids, self.texts, self.k, self.seed = list(doc_ids), list(texts), k, seed
        self.row = {d: i for i, d in enumerate(self.doc_ids)}
        groups: dict[str, int] = {}
        self.group = np.array([groups.setdefault(t, len(groups)) for t in self.texts], dtype=np.int64)
        self.group_of_text = groups
        self.tries = 0  # rejection-sampling tries of the last draw (tests check the O(1) cost)

    def _rng(self, query_id: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{self.seed}\0{query_id}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def excluded_groups(self, record: MinedRecord) -> set[int]:
        """Text groups that can never be a random negative of ``record``."""
        out: set[int] = set()
        for doc_id in [*record.positive_ids, record.query_id]:
            if doc_id in self.row:
                out.add(int(self.group[self.row[doc_id]]))
        for text in [*record.positives, *record.negatives, record.query]:
            group = self.group_of_text.get(text)
            if group is not None:
                out.add(group)
        return out

    def draw(self, record: MinedRecord) -> tuple[list[str], list[str]]:
        """``(doc_ids, texts)`` of ``k`` random negatives of ``record`` (distinct texts)."""
        excluded = self.excluded_groups(record)
        rng = self._rng(record.query_id)
        ids: list[str] = []
        texts: list[str] = []
        self.tries = 0
        n = len(self.doc_ids)
        while len(ids) < self.k:
            if self.tries >= _MAX_TRIES_PER_DRAW * self.k or n == 0:
                raise DataError(
                    f"query {record.query_id!r}: the corpus ({n} documents) has fewer than {self.k} "
                    f"documents that are not a positive, a copy of one, a hard negative or the query; "
                    f"lower random_negatives"
                )
            self.tries += 1
            row = int(rng.integers(n))
            group = int(self.group[row])
            if group in excluded:
                continue
            excluded.add(group)
            ids.append(self.doc_ids[row])
            texts.append(self.texts[row])
        return ids, texts


def add_random_negatives(
    records: Sequence[MinedRecord], sampler: RandomNegatives, num_negatives: int | None = None
) -> list[MinedRecord]:
    """Copies of ``records`` whose negatives are the first ``num_negatives`` hard ones (default: the fewest of any
    record, as in :func:`~negmine.data.mined.build_rows`) followed by ``sampler.k`` random ones. A random negative
    has no teacher score: when the record has scores, its score is ``NaN`` ("unknown", which the losses skip)."""
    records = split_records(records)  # per-positive negatives: one record per distinct negative list
    if not records:
        raise DataError("no queries to train on")
    keep = min(len(r.negatives) for r in records) if num_negatives is None else num_negatives
    out = []
    for record in records:
        if len(record.negatives) < keep:
            out.append(record)  # build_rows leaves it out, with the usual log line
            continue
        hard = replace(
            record,
            negative_ids=record.negative_ids[:keep],
            negatives=record.negatives[:keep],
            negative_scores=record.negative_scores[:keep],
            negative_teacher_scores=None if record.negative_teacher_scores is None
            else record.negative_teacher_scores[:keep],
            extra=dict(record.extra),
        )
        ids, texts = sampler.draw(hard)
        unknown = [float("nan")] * len(ids)

        def extended(scores: list[float] | None) -> list[float] | None:  # no scores stay no scores
            return scores + unknown if scores else scores

        out.append(
            replace(
                hard, negative_ids=hard.negative_ids + ids, negatives=hard.negatives + texts,
                negative_scores=extended(hard.negative_scores),
                negative_teacher_scores=extended(hard.negative_teacher_scores),
            )
        )
    return out
