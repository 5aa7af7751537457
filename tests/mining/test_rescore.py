import numpy as np

from negmine.encoders import HashingEncoder
from negmine.mining import mine_hard_negatives
from negmine.testing import tiny_cross_encoder


def test_cross_encoder_rescoring_replaces_scores(tmp_path, toy):
    ce = tiny_cross_encoder(tmp_path / "ce")
    kw = dict(num_negatives=2, range_max=10, strategy="range", too_few="keep", format="triplet", no_cache=True,
              show_progress_bar=False)
    plain = mine_hard_negatives(toy, HashingEncoder(), **kw)
    rescored = mine_hard_negatives(toy, HashingEncoder(), cross_encoder=str(tmp_path / "ce"), **kw)
    for r in rescored.records:
        expected = ce.predict([(r.query, n) for n in r.negatives])
        np.testing.assert_allclose(r.negative_scores, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(r.positive_scores, ce.predict([(r.query, p) for p in r.positives]), rtol=1e-4,
                                   atol=1e-5)
        assert set(r.negative_ids).isdisjoint(toy.positives(r.query_id))
        assert r.negative_scores == sorted(r.negative_scores, reverse=True)
    assert [r.negative_scores for r in plain.records] != [r.negative_scores for r in rescored.records]
