"""Turning retrieval candidates into hard negatives: exclusions, filters, sampling, too-few policy, statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from negmine.data import RetrievalData
from negmine.data.mined import MinedRecord
from negmine.mining.filters import Compose, FilterInput
from negmine.mining.sampling import check_sampling, sample
from negmine.mining.stats import MiningStats
from negmine.retrieve import Candidates

logger = logging.getLogger(__name__)

NO_DOC = -2  # padding value for per-query index lists (never equal to a row or to FAISS's -1)


@dataclass
class QueryContext:
    """Per-query arrays the miner needs, aligned with ``Candidates.query_ids``."""

    positive_rows: np.ndarray  # (n, P) doc rows of each query's positives, NO_DOC-padded
    positive_groups: np.ndarray  # (n, P) text-group ids of the positives, NO_DOC-padded
    self_rows: np.ndarray  # (n,) doc row whose id equals the query id, or NO_DOC
    positive_scores: list[np.ndarray]  # per query: teacher score of each positive


class CorpusView:
    """Row lookups over the indexed corpus: id -> row, and a text-group id per row (equal texts share a group)."""

    def __init__(self, data: RetrievalData, doc_ids: Sequence[str]) -> None:
        self.data, self.doc_ids = data, list(doc_ids)
        self.row = {d: i for i, d in enumerate(self.doc_ids)}
        groups: dict[str, int] = {}
        self.texts = [data.doc_text(d) for d in self.doc_ids]
        self.group = np.array([groups.setdefault(t, len(groups)) for t in self.texts], dtype=np.int64)
        self.group_size = np.bincount(self.group)

    def excludable(self, query_id: str) -> int:
        """How many documents can never be a negative of this query (positives, their text copies, itself)."""
        rows = [self.row[d] for d in self.data.positives(query_id) if d in self.row]
        return int(self.group_size[self.group[rows]].sum()) + 1 if rows else 1


def build_context(
    data: RetrievalData, view: CorpusView, query_ids: Sequence[str], q_emb: np.ndarray, d_emb: np.ndarray
) -> QueryContext:
    pos_lists = [[view.row[d] for d in data.positives(q) if d in view.row] for q in query_ids]
    width = max((len(p) for p in pos_lists), default=0) or 1
    rows = np.full((len(query_ids), width), NO_DOC, dtype=np.int64)
    for i, p in enumerate(pos_lists):
        rows[i, : len(p)] = p
    groups = np.where(rows >= 0, view.group[np.clip(rows, 0, None)], NO_DOC)
    self_rows = np.array([view.row.get(q, NO_DOC) for q in query_ids], dtype=np.int64)
    scores = [d_emb[p] @ q_emb[i] if p else np.zeros(0, dtype=np.float32) for i, p in enumerate(pos_lists)]
    return QueryContext(rows, groups, self_rows, scores)


class HardNegativeMiner:
    """Selects hard negatives from :class:`~negmine.retrieve.Candidates`.

    Every candidate is first checked against what can never be a negative — the query's qrels positives, the query's
    own id (ArguAna's queries are in its corpus) and documents whose text equals a positive's — then optionally
    against near-duplicates of a positive, then through the filter chain (rank range + strategies), then sampled.

    Args:
        filters: the filter chain (:class:`~negmine.mining.filters.Compose`).
        num_negatives: negatives per query.
        sampling / temperature / seed: see :func:`~negmine.mining.sampling.sample`.
        too_few: ``drop``, ``keep`` or ``pad`` for queries with fewer survivors than ``num_negatives``.
        near_duplicate: exclude candidates whose cosine to any positive exceeds this value.
    """

    def __init__(
        self,
        filters: Compose,
        num_negatives: int = 7,
        sampling: str = "top",
        temperature: float = 0.05,
        seed: int = 0,
        too_few: str = "drop",
        near_duplicate: float | None = None,
    ) -> None:
        check_sampling(sampling, temperature)
        if too_few not in ("drop", "keep", "pad"):
            raise ValueError(f"too_few must be 'drop', 'keep' or 'pad', got {too_few!r}")
        self.filters, self.num_negatives = filters, num_negatives
        self.sampling, self.temperature, self.seed = sampling, temperature, seed
        self.too_few, self.near_duplicate = too_few, near_duplicate

    def __call__(
        self,
        data: RetrievalData,
        candidates: Candidates,
        q_emb: np.ndarray,
        d_emb: np.ndarray,
        view: CorpusView | None = None,
        positive_scores: list[np.ndarray] | None = None,
    ) -> tuple[list[MinedRecord], MiningStats]:
        """Mine. ``positive_scores`` overrides the embedding scores of the positives (cross-encoder rescoring)."""
        view = view or CorpusView(data, candidates.doc_ids)
        ctx = build_context(data, view, candidates.query_ids, q_emb, d_emb)
        if positive_scores is not None:
            ctx.positive_scores = positive_scores
        stats = MiningStats(queries=len(candidates.query_ids), retrieved=int(candidates.indices.size))
        alive = self._exclude(candidates, view, ctx, stats)
        alive = self._near_duplicates(candidates, d_emb, ctx, alive, stats)
        ranks = np.where(alive, np.cumsum(alive, axis=1) - 1, -1)
        pos_min = np.array([s.min() if s.size else np.inf for s in ctx.positive_scores], dtype=np.float32)
        alive = self.filters.apply(FilterInput(candidates.scores, ranks, pos_min), alive, stats.filtered)
        stats.eligible = int(alive.sum())
        rng = np.random.default_rng(self.seed)
        records = []
        for row, qid in enumerate(candidates.query_ids):
            record = self._select(row, qid, data, candidates, alive[row], ctx, view, q_emb, d_emb, rng, stats)
            if record is not None:
                records.append(record)
                stats.positive_scores.extend(record.positive_scores)
                stats.negative_scores.extend(record.negative_scores)
        return records, stats

    def _exclude(self, c: Candidates, view: CorpusView, ctx: QueryContext, stats: MiningStats) -> np.ndarray:
        idx = c.indices
        padding = idx < 0
        positive = (idx[:, :, None] == ctx.positive_rows[:, None, :]).any(-1) & ~padding
        self_hit = (idx == ctx.self_rows[:, None]) & ~padding & ~positive
        groups = np.where(padding, NO_DOC - 1, view.group[np.clip(idx, 0, None)])
        equal_text = (groups[:, :, None] == ctx.positive_groups[:, None, :]).any(-1) & ~positive & ~self_hit & ~padding
        stats.padding = int(padding.sum())
        stats.excluded.update(
            {
                "positive": int(positive.sum()),
                "query_itself": int(self_hit.sum()),
                "equal_text_to_positive": int(equal_text.sum()),
            }
        )
        return ~(padding | positive | self_hit | equal_text)

    def _near_duplicates(
        self, c: Candidates, d_emb: np.ndarray, ctx: QueryContext, alive: np.ndarray, stats: MiningStats
    ) -> np.ndarray:
        if self.near_duplicate is None:
            return alive
        removed = np.zeros_like(alive)
        for row in range(len(c.query_ids)):
            pos = ctx.positive_rows[row][ctx.positive_rows[row] >= 0]
            cand = np.where(alive[row])[0]
            if pos.size and cand.size:
                sims = d_emb[c.indices[row, cand]] @ d_emb[pos].T
                removed[row, cand[(sims > self.near_duplicate).any(1)]] = True
        stats.filtered["near_duplicate"] = int(removed.sum())
        return alive & ~removed

    def _select(
        self,
        row: int,
        qid: str,
        data: RetrievalData,
        c: Candidates,
        alive: np.ndarray,
        ctx: QueryContext,
        view: CorpusView,
        q_emb: np.ndarray,
        d_emb: np.ndarray,
        rng: np.random.Generator,
        stats: MiningStats,
    ) -> MinedRecord | None:
        cols = np.where(alive)[0]
        cols = cols[np.argsort(-c.scores[row, cols], kind="stable")]
        chosen = cols[sample(c.scores[row, cols], self.num_negatives, self.sampling, rng, self.temperature)]
        neg_rows = [int(i) for i in c.indices[row, chosen]]
        neg_scores = [float(s) for s in c.scores[row, chosen]]
        if len(neg_rows) >= self.num_negatives:
            stats.enough += 1
        elif self.too_few == "drop":
            stats.too_few["dropped"] += 1
            return None
        elif self.too_few == "keep":
            stats.too_few["kept_fewer"] += 1
        else:
            stats.too_few["padded"] += 1
            extra = self._pad(row, qid, neg_rows, ctx, view, rng)
            neg_rows += extra
            neg_scores += [float(d_emb[i] @ q_emb[row]) for i in extra]
            stats.pad_negatives += len(extra)
        stats.selected += len(neg_rows)
        pos_rows = [int(i) for i in ctx.positive_rows[row] if i >= 0]
        return MinedRecord(
            query_id=qid,
            query=data.queries[qid],
            positive_ids=[view.doc_ids[i] for i in pos_rows],
            positives=[view.texts[i] for i in pos_rows],
            positive_scores=[float(s) for s in ctx.positive_scores[row]],
            negative_ids=[view.doc_ids[i] for i in neg_rows],
            negatives=[view.texts[i] for i in neg_rows],
            negative_scores=neg_scores,
        )

    def _pad(
        self, row: int, qid: str, taken: list[int], ctx: QueryContext, view: CorpusView, rng: np.random.Generator
    ) -> list[int]:
        """Random corpus documents that are not positives, copies of a positive's text, the query, or taken."""
        banned_groups = set(ctx.positive_groups[row][ctx.positive_groups[row] >= 0].tolist())
        banned = set(taken) | {int(ctx.self_rows[row])}
        need, extra = self.num_negatives - len(taken), []
        for i in rng.permutation(len(view.doc_ids)):
            if int(i) not in banned and int(view.group[i]) not in banned_groups:
                extra.append(int(i))
                if len(extra) == need:
                    break
        return extra
