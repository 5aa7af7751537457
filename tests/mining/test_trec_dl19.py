"""Real many-positive data: TREC DL 2019 passage, 43 queries with 4-201 graded (>= 1) positives each."""

import pytest

from negmine.mining import mine_hard_negatives


@pytest.mark.slow
def test_default_mine_keeps_most_trec_dl19_queries(beir_root, minilm_encoder, embedding_cache_dir):
    from negmine.encoders import EmbeddingCache

    result = mine_hard_negatives(
        str(beir_root / "trec-dl19"),
        minilm_encoder,
        split="test",
        cache=EmbeddingCache(embedding_cache_dir),
        show_progress_bar=False,
    )
    q = result.stats.to_dict()["queries"]
    assert q["total"] == 43 and q["written"] >= 0.9 * 43, q
    assert result.stats.warnings == []
    for r in result.records:
        assert set(r.negative_ids).isdisjoint(r.positive_ids)
        for p in range(len(r.positive_ids)):
            negs = r.negatives_of(p)
            assert len(negs) == (7 if r.has_row(p) else 0)
            assert all(r.negative_scores[i] < 0.95 * r.positive_scores[p] + 1e-6 for i in negs)
