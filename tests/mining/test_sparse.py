"""BM25 and reciprocal-rank fusion retrievers (negmine.sparse) against brute-force references, and mining with them."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("bm25s")

from negmine.errors import ConfigError  # noqa: E402
from negmine.mining import MineConfig, mine_hard_negatives  # noqa: E402
from negmine.retrieve import Candidates  # noqa: E402
from negmine.sparse import BM25Retriever, FusionRetriever, rrf_fuse, tokenize  # noqa: E402
from negmine.testing import toy_data  # noqa: E402


def bm25_reference(doc_tokens: list[list[str]], query: list[str], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Lucene BM25 written out: idf = ln(1 + (N - df + 0.5) / (df + 0.5)); tf / (tf + k1 (1 - b + b dl / avgdl))."""
    n = len(doc_tokens)
    avgdl = sum(map(len, doc_tokens)) / n
    df = Counter(t for doc in doc_tokens for t in set(doc))
    scores = []
    for doc in doc_tokens:
        tf, score = Counter(doc), 0.0
        for term in query:  # a repeated query term counts each time
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(score)
    return scores


def test_bm25_matches_brute_force_reference():
    data = toy_data()
    retriever = BM25Retriever()
    retriever.build(data)
    doc_tokens = tokenize([data.doc_text(d) for d in retriever.doc_ids])
    qids = list(data.queries)
    candidates, q_emb = retriever.search(qids, [data.queries[q] for q in qids], top_k=5)
    assert q_emb is None and candidates.indices.shape == (len(qids), 5)
    for row, qid in enumerate(qids):
        ref = np.array(bm25_reference(doc_tokens, tokenize([data.queries[qid]])[0]), dtype=np.float32)
        order = sorted(range(len(ref)), key=lambda i: (-ref[i], i))[:5]  # ties by corpus row
        assert candidates.indices[row].tolist() == order
        np.testing.assert_allclose(candidates.scores[row], ref[order], rtol=1e-5)
        assert ref[order[0]] > 0  # the toy queries share words with their documents: a real ranking is tested
        # the pair scorer gives the same numbers for any documents
        np.testing.assert_allclose(retriever.pair_scorer()(row, [0, 3, 7]), ref[[0, 3, 7]], rtol=1e-5)


def test_rrf_matches_loop_reference():
    rankings = [np.array([3, 1, 4, -1]), np.array([1, 5, 9, 2]), np.array([4, 3])]
    fused = rrf_fuse(rankings, k=60)
    expected: dict[int, float] = {}
    for ranking in ([3, 1, 4], [1, 5, 9, 2], [4, 3]):
        for position in range(len(ranking)):
            expected[ranking[position]] = expected.get(ranking[position], 0) + 1 / (60 + position + 1)
    assert fused.keys() == expected.keys()
    for doc, score in expected.items():
        assert fused[doc] == pytest.approx(score)


class _FixedRetriever:
    """A stand-in retriever that returns fixed rankings (best first) for every query."""

    doc_embeddings = None

    def __init__(self, ranking: list[int], n_docs: int) -> None:
        self.ranking, self.doc_ids = ranking, [f"d{i}" for i in range(n_docs)]

    def build(self, data) -> None:
        pass

    def search(self, query_ids, query_texts, top_k):
        idx = np.array([self.ranking[:top_k]] * len(query_ids), dtype=np.int64)
        return Candidates(list(query_ids), self.doc_ids, idx, -np.arange(idx.shape[1], dtype=np.float32)[None]), None

    def get_config_dict(self):
        return {"type": "fixed"}


def test_fusion_retriever_orders_by_fused_score_with_row_ties():
    a, b = _FixedRetriever([0, 1, 2, 3], 6), _FixedRetriever([3, 2, 5, 0], 6)
    fusion = FusionRetriever([a, b], ["a", "b"], k=1, depth=4)
    fusion.build(None)
    candidates, _ = fusion.search(["q"], ["text"], top_k=6)
    # k=1: doc0 1/2+1/5, doc1 1/3, doc2 1/4+1/3, doc3 1/5+1/2, doc5 1/4; doc4 in no list
    expected = {0: 0.7, 1: 1 / 3, 2: 7 / 12, 3: 0.7, 5: 0.25}
    order = sorted(expected, key=lambda d: (-expected[d], d))
    assert candidates.indices[0].tolist() == order + [-1]
    np.testing.assert_allclose(candidates.scores[0][:5], [expected[d] for d in order], rtol=1e-6)
    np.testing.assert_allclose(fusion.pair_scorer()(0, [4, 1]), [0.0, 1 / 3], rtol=1e-6)


def test_mine_with_bm25_and_hybrid(minilm_path):
    data = toy_data()
    bm25 = mine_hard_negatives(
        data, "bm25", strategy="perc-pos", num_negatives=2, range_max=6, no_cache=True, show_progress_bar=False
    )
    assert bm25.records and all(set(r.negative_ids).isdisjoint(r.positive_ids) for r in bm25.records)
    for r in bm25.records:  # perc-pos on BM25 points: every kept negative is below 0.95 x its positive's score
        assert r.positive_scores[0] > 0
        for p, score in enumerate(r.positive_scores):  # margin_reference "each": per-positive negative lists
            assert all(r.negative_scores[i] < 0.95 * score for i in r.negatives_of(p))
    hybrid = mine_hard_negatives(
        data,
        f"hybrid:bm25+{minilm_path}",
        strategy="range",
        num_negatives=2,
        range_max=6,
        no_cache=True,
        show_progress_bar=False,
    )
    assert len(hybrid.records) == len(data.queries)
    assert all(0 < s <= 2 / 61 for r in hybrid.records for s in r.negative_scores)  # sums of two 1/(60+rank)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"retriever": "hybrid:bm25+minilm", "strategy": "perc-pos"}, "fuses ranks"),
        ({"retriever": "hybrid:bm25+minilm", "strategy": "range,margin-pos"}, "fuses ranks"),
        ({"retriever": "bm25", "near_duplicate": 0.98}, "no"),
        ({"retriever": "bm25", "index_dir": "x"}, "builds its own"),
        ({"retriever": "hybrid:bm25", "strategy": "range"}, "two or more"),
    ],
)
def test_meaningless_combinations_are_refused(options, message):
    from negmine.sparse import hybrid_parts

    with pytest.raises(ConfigError, match=message):
        cfg = MineConfig(**options)
        hybrid_parts(cfg.retriever)


def test_hybrid_with_cross_encoder_rescoring_may_use_margins():
    MineConfig(retriever="hybrid:bm25+minilm", strategy="perc-pos", cross_encoder="some/reranker")


@pytest.mark.parametrize("margin_reference", ["each", "lowest"])
def test_bm25_blocks_do_not_change_records(margin_reference):
    """Searched block by block, a sparse retriever's scorer is its block's: padded negatives and positives get the
    same BM25 scores, and the records the same bytes, however the queries are grouped."""
    data = toy_data()
    runs = [
        mine_hard_negatives(
            data, "bm25", strategy="perc-pos", num_negatives=3, range_max=4, too_few="pad",
            margin_reference=margin_reference, block_candidates=block, no_cache=True, show_progress_bar=False,
        )
        for block in (1, 1_000_000)
    ]
    assert runs[0].stats.blocks > 1 and runs[1].stats.blocks == 1
    assert [r.to_dict() for r in runs[0].records] == [r.to_dict() for r in runs[1].records]
    assert runs[0].stats.pad_negatives > 0
