"""ANN / compressed indexes against the exact oracle (ExactIndex)."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.testing import importorskip

importorskip("faiss")

from negmine.index import ExactIndex  # noqa: E402
from negmine.index.ann import (  # noqa: E402
    AnnIndex,
    default_train_size,
    exact_search,
    is_approximate,
    recall_at_k,
    resolve_factory,
    suggest_nlist,
    suggest_pq_m,
)

DIM = 16


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


@pytest.fixture(scope="module")
def clustered():
    """2,000 unit vectors around 20 centres (real embeddings cluster too) and 40 queries near corpus points."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 20, 2000)] + 0.35 * rng.standard_normal((2000, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(2000, 40, replace=False)] + 0.05 * rng.standard_normal((40, DIM)).astype(np.float32)
    return np.ascontiguousarray(x), np.ascontiguousarray(q, dtype=np.float32)


def exact(x, q, k, metric="ip"):
    oracle = ExactIndex(DIM, metric)
    oracle.add(x)
    return oracle.search(q, k)


def test_presets_resolve_to_factory_strings():
    assert resolve_factory("ivf", 1_000_000, 384) == "IVF4096,Flat"
    assert resolve_factory("ivfpq", 1_000_000, 384) == "IVF4096,PQ48x8"
    assert resolve_factory("hnsw", 10, 384) == "HNSW32"
    assert resolve_factory("IVF{nlist},SQ8", 10_000, 64) == "IVF256,SQ8"
    assert suggest_nlist(100) == 2 and suggest_nlist(10) == 1  # >= 39 training points per list
    assert suggest_pq_m(384) == 48 and suggest_pq_m(768) == 96 and suggest_pq_m(17) == 1
    assert default_train_size("IVF256,Flat", 10**6) == 64 * 256 and default_train_size("IVF256,Flat", 100) == 100
    assert not is_approximate("Flat") and is_approximate("IVF16,Flat") and is_approximate("HNSW32")
    with pytest.raises(ValueError, match="placeholder"):
        resolve_factory("IVF{lists},Flat", 100, 8)


def test_invalid_factory_names_the_string():
    with pytest.raises(ValueError, match="NotAnIndex"):
        AnnIndex(DIM, "NotAnIndex")


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_equals_exact(clustered, metric):
    x, q = clustered
    index = AnnIndex(DIM, "Flat", metric)
    index.add(x)
    es, ei = exact(x, q, 25, metric)
    s, i = index.search(q, 25)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_allclose(s, es, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ivf_visiting_every_list_is_exact(clustered, metric):
    x, q = clustered
    index = AnnIndex(DIM, "IVF16,Flat", metric, nprobe=16)
    index.add(x)
    np.testing.assert_array_equal(index.search(q, 20)[1], exact(x, q, 20, metric)[1])


def test_ivf_recall_grows_with_nprobe_and_meets_documented_level(clustered):
    x, q = clustered
    index = AnnIndex(DIM, "IVF32,Flat", nprobe=1)
    index.add(x)
    truth = exact(x, q, 10)
    low = recall_at_k(index, x, q, 10, exact=truth)
    index.set_search_params(nprobe=8)
    assert index.nprobe == 8 and index.ef_search is None  # the other knob is kept
    high = recall_at_k(index, x, q, 10, exact=truth)
    assert low < high and high >= 0.9


def test_hnsw_recall(clustered):
    x, q = clustered
    index = AnnIndex(DIM, "hnsw", ef_search=64)
    index.add(x)
    assert recall_at_k(index, x, q, 10) >= 0.95
    _, ids = index.search(q, 300)  # k above efSearch: efSearch is raised to k, no padding
    assert (ids >= 0).all()


def test_ivfpq_exact_rerank_recovers_recall_and_exact_scores(clustered):
    x, q = clustered
    plain = AnnIndex(DIM, "IVF8,PQ4x4", nprobe=8, seed=1)
    plain.add(x)
    reranked = AnnIndex(DIM, "IVF8,PQ4x4", nprobe=8, rerank=10, refine_vectors=x, seed=1)
    reranked.add(x)
    truth = exact(x, q, 10)
    r_plain, r_rerank = recall_at_k(plain, x, q, 10, exact=truth), recall_at_k(reranked, x, q, 10, exact=truth)
    assert r_rerank >= 0.95 and r_rerank > r_plain
    scores, ids = reranked.search(q, 10)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, x[ids]), rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_rerank_needs_the_full_vectors(clustered):
    x, q = clustered
    index = AnnIndex(DIM, "IVF8,PQ4x4", rerank=4)
    index.add(x)
    with pytest.raises(ValueError, match="refine_vectors"):
        index.search(q, 5)
    with pytest.raises(ValueError, match="rerank"):
        AnnIndex(DIM, "Flat", rerank=0)


def test_recall_at_k_detects_a_wrong_index(clustered):
    x, q = clustered
    flat = AnnIndex(DIM, "Flat")
    flat.add(x)
    assert recall_at_k(flat, x, q, 10) == 1.0
    shuffled = AnnIndex(DIM, "Flat")
    shuffled.add(x[::-1].copy())  # right vectors, wrong ids
    assert recall_at_k(shuffled, x, q, 10) < 0.1


def test_training_uses_a_seeded_sample(clustered):
    x, _ = clustered
    a, b = AnnIndex(DIM, "IVF16,Flat", train_size=500, seed=3), AnnIndex(DIM, "IVF16,Flat", train_size=500, seed=3)
    assert a.train_on_sample(x) == 500 and b.train_on_sample(x) == 500
    import faiss

    ca = faiss.extract_index_ivf(a.index).quantizer.reconstruct_n(0, 16)
    cb = faiss.extract_index_ivf(b.index).quantizer.reconstruct_n(0, 16)
    np.testing.assert_array_equal(ca, cb)


@pytest.mark.parametrize("factory,kwargs", [("IVF16,Flat", {"nprobe": 4}), ("HNSW16", {"ef_search": 32}),
                                            ("IVF8,PQ4x4", {"rerank": 5})])
def test_save_load_gives_identical_results(tmp_path, clustered, factory, kwargs):
    x, q = clustered
    index = AnnIndex(DIM, factory, refine_vectors=x, **kwargs)
    index.add(x)
    index.save(tmp_path)
    again = AnnIndex.load(tmp_path, refine_vectors=x)
    assert again.get_config_dict() == index.get_config_dict()
    for a, b in zip(index.search(q, 10), again.search(q, 10)):
        np.testing.assert_array_equal(a, b)


def test_exact_search_helper_streams_a_store(tmp_path, clustered):
    from negmine.index.streamed import ShardStore

    x, q = clustered
    store = ShardStore.create(tmp_path / "s", DIM, shard_rows=700)
    store.append(x)
    np.testing.assert_array_equal(exact_search(store, q, 10)[1], exact(x, q, 10)[1])
