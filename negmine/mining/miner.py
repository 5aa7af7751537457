"""Turning retrieval candidates into hard negatives: exclusions, filters, sampling, too-few policy, statistics.

Memory and time grow with the total number of positives, not with the largest query:

- each query is searched as deep as it needs (``range_max`` + the documents it can never take as negatives: its
  positives and their text copies, documents of an excluded grade, itself), in blocks of queries of similar depth
  whose candidate matrix holds at most ``block_candidates`` entries (the flag that bounds peak memory);
- candidates are matched against those documents by an exact sorted-key membership test over the block (no
  queries × candidates × positives broadcast);
- with ``margin_reference="each"`` the candidates a positive accepts are a suffix of the query's score-sorted
  survivors (the thresholds rise with the positive's score), found by one binary search per positive;
- padding draws random documents by rejection, O(1) expected per draw.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from negmine.data import RetrievalData
from negmine.data.mined import MinedRecord
from negmine.mining.filters import MARGIN_REFERENCES, Compose, FilterInput
from negmine.mining.sampling import check_sampling, sample
from negmine.mining.stats import MiningStats
from negmine.retrieve import Candidates
from negmine.sparse import PairScorer


def embedding_scorer(q_emb: np.ndarray, d_emb: np.ndarray) -> PairScorer:
    """The dense teacher's score of (query row, doc rows): inner products of the embeddings."""
    return lambda row, doc_rows: d_emb[np.asarray(doc_rows, dtype=np.int64)] @ q_emb[row]

logger = logging.getLogger(__name__)

SearchFn = Callable[[np.ndarray, int], Candidates]
"""``search(positions, k)``: the top-``k`` candidates (canonical order) of the queries at ``positions``."""
RescoreFn = Callable[[Candidates, list[np.ndarray]], tuple[Candidates, list[np.ndarray]]]
"""``rescore(candidates, positive_rows)``: re-scored candidates and the new score of each query's positives."""


class CorpusView:
    """Row lookups over the indexed corpus: id -> row, a text-group id per row (equal texts share a group, numbered
    by first occurrence) and the text of a row.

    Over a disk-backed corpus (:class:`~negmine.data.disk.DiskCorpus`) indexed in its own order, nothing is
    materialised: rows and groups come from the corpus index and ``texts[row]`` reads one text from the file, so the
    miner holds ids, rows and scores and reads only the texts of the records it writes. Otherwise every text is
    grouped in memory (the in-memory corpus)."""

    def __init__(self, data: RetrievalData, doc_ids: Sequence[str]) -> None:
        self.data = data
        corpus = data.corpus
        if getattr(doc_ids, "table", None) is corpus and hasattr(corpus, "group"):
            self.doc_ids: Sequence[str] = doc_ids
            self._row_of: Callable[[str], int] = corpus.row  # type: ignore[attr-defined]
            self.texts: Sequence[str] = corpus.texts()  # type: ignore[attr-defined]
            self.group = np.asarray(corpus.group)  # type: ignore[attr-defined]
        else:
            self.doc_ids = list(doc_ids)
            row = {d: i for i, d in enumerate(self.doc_ids)}
            self._row_of = lambda d: row.get(d, -1)
            groups: dict[str, int] = {}
            self.texts = [data.doc_text(d) for d in self.doc_ids]
            self.group = np.array([groups.setdefault(t, len(groups)) for t in self.texts], dtype=np.int64)
        self.group_size = np.bincount(self.group, minlength=1)

    def row(self, doc_id: str) -> int:
        """The corpus row of ``doc_id``, or -1."""
        return self._row_of(doc_id)

    def texts_of(self, rows: Sequence[int]) -> list[str]:
        """The texts of corpus ``rows`` (one batch of reads for a disk-backed corpus)."""
        take = getattr(self.texts, "take", None)
        return take(rows) if take is not None else [self.texts[i] for i in rows]

    def rows(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Corpus rows of the ids that are in the corpus, in the given order."""
        rows = (self._row_of(d) for d in doc_ids)
        return np.array([r for r in rows if r >= 0], dtype=np.int64)


@dataclass
class QueryPlan:
    """What one query can never take as a negative, and how deep it must be searched."""

    position: int  # index into query_ids / q_emb
    positive_rows: np.ndarray  # corpus rows of its positives (qrels order)
    banned_groups: np.ndarray  # sorted text groups: its positives' and its excluded-grade documents'
    positive_groups: np.ndarray  # sorted text groups of its positives
    self_row: int  # the row whose id is the query id, or -1
    depth: int


def plan_queries(
    data: RetrievalData, view: CorpusView, query_ids: Sequence[str], range_max: int
) -> tuple[list[QueryPlan], int]:
    """One plan per query with a positive in the corpus; also how many queries had none (they are skipped)."""
    plans, skipped = [], 0
    n_docs = len(view.doc_ids)
    for i, qid in enumerate(query_ids):
        pos = view.rows(data.positives(qid))
        if pos.size == 0:
            skipped += 1
            continue
        pos_groups = np.unique(view.group[pos])
        excl = view.rows(data.excluded(qid))
        banned = np.union1d(pos_groups, view.group[excl]) if excl.size else pos_groups
        self_row = view.row(qid)
        depth = min(n_docs, range_max + int(view.group_size[banned].sum()) + (self_row >= 0))
        plans.append(QueryPlan(i, pos, banned, pos_groups, self_row, depth))
    return plans, skipped


def query_blocks(plans: list[QueryPlan], block_candidates: int) -> list[list[QueryPlan]]:
    """Queries grouped by depth so that each block's (queries × depth) matrix holds <= ``block_candidates`` entries
    (one query per block at least); the sum of block sizes × depths then stays near the sum of the depths."""
    blocks: list[list[QueryPlan]] = []
    current: list[QueryPlan] = []
    for plan in sorted(plans, key=lambda p: p.depth):
        if current and (len(current) + 1) * plan.depth > block_candidates:
            blocks.append(current)
            current = []
        current.append(plan)
    if current:
        blocks.append(current)
    return blocks


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Exact membership of ``keys`` in the sorted 1-D array ``sorted_keys``."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.searchsorted(sorted_keys, keys)
    return sorted_keys[np.minimum(pos, sorted_keys.size - 1)] == keys


class HardNegativeMiner:
    """Selects hard negatives from retrieval candidates.

    Every candidate is first checked against what can never be a negative — the query's qrels positives, the query's
    own id (ArguAna's queries are in its corpus), documents whose text equals a positive's and documents of an
    excluded grade (and their copies) — then optionally against near-duplicates of a positive, then through the
    filter chain (rank range + strategies), then sampled.

    Args:
        filters: the filter chain (:class:`~negmine.mining.filters.Compose`).
        num_negatives: negatives per training row.
        sampling / temperature / seed: see :func:`~negmine.mining.sampling.sample`.
        too_few: ``drop``, ``keep`` or ``pad`` for rows with fewer survivors than ``num_negatives``.
        near_duplicate: exclude candidates whose cosine to any positive exceeds this value.
        margin_reference: the positive the relative filters (margin-pos, perc-pos) measure against: ``each`` (a
            training row per (query, positive) whose negatives satisfy the margin relative to that positive),
            ``lowest`` or ``highest`` positive of the query (one negative list per query).
        block_candidates: most candidate entries (queries × depth) searched and held at once.
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
        margin_reference: str = "each",
        block_candidates: int = 1_000_000,
    ) -> None:
        check_sampling(sampling, temperature)
        if too_few not in ("drop", "keep", "pad"):
            raise ValueError(f"too_few must be 'drop', 'keep' or 'pad', got {too_few!r}")
        if margin_reference not in MARGIN_REFERENCES:
            raise ValueError(
                f"margin_reference must be one of {', '.join(MARGIN_REFERENCES)}, got {margin_reference!r}"
            )
        if block_candidates < 1:
            raise ValueError(f"block_candidates must be >= 1, got {block_candidates}")
        self.filters, self.num_negatives = filters, num_negatives
        self.sampling, self.temperature, self.seed = sampling, temperature, seed
        self.too_few, self.near_duplicate = too_few, near_duplicate
        self.margin_reference, self.block_candidates = margin_reference, block_candidates

    def range_max(self) -> int:
        return max((getattr(f, "range_max", 0) for f in self.filters.filters), default=0) or self.num_negatives

    def __call__(
        self,
        data: RetrievalData,
        query_ids: Sequence[str],
        q_emb: np.ndarray | None,
        d_emb: np.ndarray | None,
        search: SearchFn,
        view: CorpusView,
        rescore: RescoreFn | None = None,
        scorer: PairScorer | None = None,
    ) -> tuple[list[MinedRecord], MiningStats]:
        """Mine the queries ``query_ids`` (rows of ``q_emb``) against the corpus of ``view`` (rows of ``d_emb``).

        ``rescore`` replaces the candidates' and positives' scores (cross-encoder rescoring) block by block.

        ``q_emb``/``d_emb`` may be ``None`` for a retriever without vectors (BM25, rank fusion); its ``scorer``
        then gives the teacher score of any (query position, doc rows) pair — the positives' scores and padded
        negatives' — and ``near_duplicate`` is unavailable.
        """
        if scorer is None:
            if q_emb is None or d_emb is None:
                raise ValueError("a retriever without embeddings must pass a scorer")
            scorer = embedding_scorer(q_emb, d_emb)
        plans, skipped = plan_queries(data, view, query_ids, self.range_max())
        stats = MiningStats(queries=len(query_ids), margin_reference=self.margin_reference)
        if skipped:
            stats.skipped["no_positive_in_corpus"] = skipped
        stats.depth = [p.depth for p in plans]
        blocks = query_blocks(plans, self.block_candidates)
        stats.blocks = len(blocks)
        survivors: dict[int, tuple] = {}  # per query: its survivors only (at most the rank range), not its candidates
        for block in blocks:
            for plan, args in zip(block, self._mine_block(block, data, d_emb, scorer, search, view, rescore, stats)):
                survivors[plan.position] = (plan, args)
        # sampling and padding draw from one generator in query order, whatever the blocks
        rng = np.random.default_rng(self.seed)
        results: dict[int, MinedRecord] = {}
        for position in sorted(survivors):
            plan, args = survivors.pop(position)
            record = self._select(plan, query_ids[position], data, view, scorer, rng, stats, *args)
            if record is not None:
                results[position] = record
        records = [results[p] for p in sorted(results)]
        for record in records:
            stats.positive_scores.extend(record.positive_scores)
            stats.negative_scores.extend(record.negative_scores)
        return records, stats

    # ---------------------------------------------------------------------------------------------------------- block
    def _mine_block(
        self,
        block: list[QueryPlan],
        data: RetrievalData,
        d_emb: np.ndarray | None,
        scorer: PairScorer,
        search: SearchFn,
        view: CorpusView,
        rescore: RescoreFn | None,
        stats: MiningStats,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]]:
        """Search one block and apply exclusions and filters; per query: (rows, scores of survivors, positive
        scores, removals per filter)."""
        positions = np.array([p.position for p in block], dtype=np.int64)
        cand = search(positions, max(p.depth for p in block))
        # each query keeps its own depth: what a deeper query of its block brought is not its candidate, so results
        # and counts do not depend on how queries were grouped into blocks
        beyond = np.arange(cand.indices.shape[1])[None, :] >= np.array([p.depth for p in block])[:, None]
        cand = Candidates(
            cand.query_ids, cand.doc_ids, np.where(beyond, -1, cand.indices), np.where(beyond, -np.inf, cand.scores)
        )
        if rescore is not None:
            cand, pos_scores = rescore(cand, [p.positive_rows for p in block])
        else:
            pos_scores = [scorer(p.position, p.positive_rows) for p in block]
        pos_scores = [np.asarray(s, dtype=np.float32).reshape(-1) for s in pos_scores]
        idx, scores = cand.indices, cand.scores.astype(np.float32, copy=False)
        stats.retrieved += int(idx.size - beyond.sum())
        stats.padding -= int(beyond.sum())  # counted as padding by _exclude; never retrieved
        alive = self._exclude(block, idx, view, stats)
        alive = self._near_duplicates(block, idx, d_emb, alive, stats)
        ranks = np.where(alive, np.cumsum(alive, axis=1) - 1, -1)
        pick = np.min if self.margin_reference == "lowest" else np.max  # 'each': a candidate no positive accepts
        ref = np.array([pick(s) for s in pos_scores], dtype=np.float32)
        per_query: dict[str, np.ndarray] = {}
        alive = self.filters.apply(FilterInput(scores, ranks, ref), alive, stats.filtered, per_query)
        stats.eligible += int(alive.sum())
        out = []
        for row in range(len(block)):
            cols = np.flatnonzero(alive[row])
            cols = cols[np.argsort(-scores[row, cols], kind="stable")]
            removed = {name: int(v[row]) for name, v in per_query.items()}
            out.append((idx[row, cols], scores[row, cols], pos_scores[row], removed))
        return out

    def _exclude(self, block: list[QueryPlan], idx: np.ndarray, view: CorpusView, stats: MiningStats) -> np.ndarray:
        n_rows, n_groups = len(view.doc_ids) + 1, int(view.group.max(initial=0)) + 1
        local = np.arange(len(block), dtype=np.int64)[:, None]
        padding = idx < 0
        safe = np.where(padding, len(view.doc_ids), idx)  # a row that matches nothing
        groups = np.where(padding, -1, view.group[np.clip(idx, 0, None)])
        pos_keys = np.sort(np.concatenate([i * n_rows + p.positive_rows for i, p in enumerate(block)]))
        positive = _member(local * n_rows + safe, pos_keys) & ~padding
        self_rows = np.array([p.self_row for p in block], dtype=np.int64)[:, None]
        self_hit = (idx == self_rows) & (self_rows >= 0) & ~padding & ~positive
        gkeys = local * n_groups + groups
        pos_groups = np.concatenate([i * n_groups + p.positive_groups for i, p in enumerate(block)])
        equal_text = _member(gkeys, pos_groups) & ~positive & ~self_hit & ~padding
        banned = np.concatenate([i * n_groups + p.banned_groups for i, p in enumerate(block)])
        graded = _member(gkeys, banned) & ~equal_text & ~positive & ~self_hit & ~padding
        stats.padding += int(padding.sum())
        stats.excluded["positive"] += int(positive.sum())
        stats.excluded["query_itself"] += int(self_hit.sum())
        stats.excluded["equal_text_to_positive"] += int(equal_text.sum())
        stats.excluded["excluded_grade"] += int(graded.sum())
        return ~(padding | positive | self_hit | equal_text | graded)

    def _near_duplicates(
        self, block: list[QueryPlan], idx: np.ndarray, d_emb: np.ndarray | None, alive: np.ndarray, stats: MiningStats
    ) -> np.ndarray:
        if self.near_duplicate is None:
            return alive
        if d_emb is None:
            raise ValueError("near_duplicate compares document vectors; this retriever has none")
        removed = np.zeros_like(alive)
        for row, plan in enumerate(block):
            cand = np.flatnonzero(alive[row])
            if not cand.size:
                continue
            docs = d_emb[idx[row, cand]]
            hit = np.zeros(cand.size, dtype=bool)
            for start in range(0, plan.positive_rows.size, 1024):  # bounded (candidates × 1024) similarity blocks
                sims = docs @ d_emb[plan.positive_rows[start : start + 1024]].T
                hit |= (sims > self.near_duplicate).any(1)
            removed[row, cand[hit]] = True
        stats.filtered["near_duplicate"] = stats.filtered.get("near_duplicate", 0) + int(removed.sum())
        return alive & ~removed

    # -------------------------------------------------------------------------------------------------------- select
    def _select(
        self,
        plan: QueryPlan,
        qid: str,
        data: RetrievalData,
        view: CorpusView,
        scorer: PairScorer,
        rng: np.random.Generator,
        stats: MiningStats,
        rows: np.ndarray,
        scores: np.ndarray,
        pos_scores: np.ndarray,
        removed: dict[str, int],
    ) -> MinedRecord | None:
        n_pos = plan.positive_rows.size
        if self.margin_reference == "each" and self.filters.relative:
            # the survivors of positive p are those scoring below its threshold: a suffix of the sorted survivors
            starts = np.searchsorted(-scores, -self.filters.threshold(pos_scores), side="right")
        else:
            starts = np.zeros(n_pos, dtype=np.int64)
        lists: dict[int, list[int] | None] = {}  # start -> chosen corpus rows (None: dropped)
        fates = []
        for start in dict.fromkeys(int(s) for s in starts):
            chosen = [
                int(r)
                for r in rows[start:][sample(scores[start:], self.num_negatives, self.sampling, rng, self.temperature)]
            ]
            fate = "enough"
            if len(chosen) < self.num_negatives:
                fate = {"drop": "dropped", "keep": "kept_fewer", "pad": "padded"}[self.too_few]
                if fate == "dropped":
                    chosen = None
                elif fate == "padded":
                    chosen = chosen + self._pad(plan, chosen, view, rng)
            lists[start] = chosen
            share = int((starts == start).sum())
            stats.pairs[fate] += share
            fates.append(fate)
        query_fate = "enough" if all(f == "enough" for f in fates) else None
        written = [s for s, c in lists.items() if c is not None]
        if query_fate is None:
            if not written:
                query_fate = "dropped"
            elif self.too_few == "drop":
                query_fate = "dropped_some_positives"
            else:
                query_fate = {"keep": "kept_fewer", "pad": "padded"}[self.too_few]
        if query_fate == "enough":
            stats.enough += 1
        else:
            stats.too_few[query_fate] += 1
        if not written:
            for name, count in removed.items():
                stats.dropped_removed[name] = stats.dropped_removed.get(name, 0) + count
            return None
        # the union of the written lists, in score order (padded documents after the candidates)
        rank = {int(r): i for i, r in enumerate(rows)}  # survivors are sorted by score (descending)
        chosen_rows = {r for s in written for r in lists[s]}
        padded = list(dict.fromkeys(r for s in written for r in lists[s] if r not in rank))
        neg_rows = sorted((r for r in chosen_rows if r in rank), key=rank.__getitem__) + padded
        where = {r: i for i, r in enumerate(neg_rows)}
        per_positive = [None if lists[int(s)] is None else sorted(where[r] for r in lists[int(s)]) for s in starts]
        stats.selected += len(neg_rows)
        stats.pad_negatives += len(padded)
        score_of = {int(r): float(s) for r, s in zip(rows, scores)}
        unscored = [r for r in neg_rows if r not in score_of]  # padded: the teacher scores them
        if unscored:
            score_of.update(zip(unscored, map(float, scorer(plan.position, unscored))))
        neg_scores = [score_of[r] for r in neg_rows]
        pos_rows = [int(r) for r in plan.positive_rows]
        shared = all(p == per_positive[0] for p in per_positive) and len(per_positive[0]) == len(neg_rows)
        texts = view.texts_of(pos_rows + neg_rows)  # the only texts mining reads: those of the records it writes
        return MinedRecord(
            query_id=qid,
            query=data.queries[qid],
            positive_ids=[view.doc_ids[i] for i in pos_rows],
            positives=texts[: len(pos_rows)],
            positive_scores=[float(s) for s in pos_scores],
            negative_ids=[view.doc_ids[i] for i in neg_rows],
            negatives=texts[len(pos_rows) :],
            negative_scores=neg_scores,
            positive_negatives=None if shared else per_positive,
        )

    def _pad(self, plan: QueryPlan, taken: list[int], view: CorpusView, rng: np.random.Generator) -> list[int]:
        """Random corpus documents that are not positives, copies of a positive's text, excluded-grade documents, the
        query itself or already taken: rejection sampling, O(1) expected draws each; a full scan only when most of
        the corpus is banned."""
        need = self.num_negatives - len(taken)
        banned_groups = set(plan.banned_groups.tolist())
        banned = set(taken) | {plan.self_row}
        n_docs, extra = len(view.doc_ids), []
        for _ in range(64 * need + 64):
            r = int(rng.integers(n_docs))
            if r not in banned and int(view.group[r]) not in banned_groups:
                extra.append(r)
                banned.add(r)
                if len(extra) == need:
                    return extra
        allowed = np.flatnonzero(~np.isin(view.group, plan.banned_groups))
        allowed = allowed[~np.isin(allowed, list(banned))]
        extra += [int(r) for r in rng.choice(allowed, size=min(need - len(extra), allowed.size), replace=False)]
        return extra
