"""exact_scores and the rescoring in Retriever.search: scores depend on the two vectors only, so FAISS, numpy,
torch and any sharding give the same candidates bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.index.exact import exact_scores


def test_exact_scores_match_a_float64_loop_and_mark_padding():
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((50, 16)).astype(np.float32)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    ids = rng.integers(0, 50, (7, 9))
    ids[2, 5:] = -1
    got = exact_scores(q, docs, ids, block=3)
    for i in range(7):
        for j in range(9):
            if ids[i, j] < 0:
                assert got[i, j] == -np.inf
            else:
                want = np.float32(sum(float(a) * float(b) for a, b in zip(q[i], docs[ids[i, j]])))
                assert abs(got[i, j] - want) <= 1e-6 * max(1, abs(want))
    l2 = exact_scores(q, docs, ids, "l2")
    assert np.allclose(l2[0], -((q[0][None] - docs[ids[0]]) ** 2).sum(1), atol=1e-4)


def test_scores_do_not_depend_on_blocks_or_sharding():
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((3000, 64)).astype(np.float32)
    q = rng.standard_normal((40, 64)).astype(np.float32)
    ids = np.argsort(-(q @ docs.T), axis=1)[:, :30]
    full = exact_scores(q, docs, ids)
    assert full.tobytes() == np.concatenate([exact_scores(q[:13], docs, ids[:13], block=5),
                                             exact_scores(q[13:], docs, ids[13:], block=64)]).tobytes()

    class Rows:  # a ShardStore-like source (rows fetched by id)
        def rows(self, flat):
            return docs[flat]

    assert exact_scores(q, Rows(), ids).tobytes() == full.tobytes()


def test_retriever_candidates_are_identical_across_backends(toy):
    pytest.importorskip("faiss")
    from negmine.encoders import HashingEncoder
    from negmine.retrieve import Retriever

    results = []
    for backend in ("faiss", "exact", "torch"):
        if backend == "torch":
            pytest.importorskip("torch")
        retriever = Retriever(HashingEncoder(), index_backend=backend, show_progress_bar=False)
        retriever.build(toy)
        qids = toy.split_query_ids
        candidates, _ = retriever.search(qids, [toy.queries[q] for q in qids], 5)
        results.append((candidates.indices.tobytes(), candidates.scores.tobytes()))
        assert candidates.indices.shape == (len(qids), 5)
    assert results[0] == results[1] == results[2]
