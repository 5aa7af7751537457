import numpy as np
import pytest

from negmine.index import ExactIndex, FaissIndex, make_index


def brute_force(q, x, k, metric="ip"):
    sims = q @ x.T if metric == "ip" else -((q[:, None, :] - x[None]) ** 2).sum(-1)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, 1), order


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    q = rng.standard_normal((257, 24)).astype(np.float32)
    return q, x


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("blocks", [(1024, 65536), (50, 333)])
def test_exact_matches_brute_force(vectors, metric, blocks):
    q, x = vectors
    index = ExactIndex(24, metric, query_block=blocks[0], corpus_block=blocks[1])
    index.add(x[:1000])
    index.add(x[1000:])
    scores, ids = index.search(q, 37)
    ref_s, ref_i = brute_force(q, x, 37, metric)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_flat_matches_exact(vectors, metric):
    q, x = vectors
    exact, flat = ExactIndex(24, metric), FaissIndex(24, "Flat", metric)
    exact.add(x)
    flat.add(x)
    (es, ei), (fs, fi) = exact.search(q, 50), flat.search(q, 50)
    np.testing.assert_array_equal(ei, fi)
    np.testing.assert_allclose(es, fs, rtol=1e-4, atol=1e-3)
    assert np.all(np.diff(fs, axis=1) <= 1e-6)  # higher = more similar, sorted


def test_k_larger_than_corpus_is_padded(vectors):
    q, x = vectors
    for index in (ExactIndex(24), FaissIndex(24)):
        index.add(x[:5])
        scores, ids = index.search(q[:3], 8)
        assert ids.shape == (3, 8) and (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()


def test_bad_input_errors(vectors):
    q, x = vectors
    index = ExactIndex(24)
    with pytest.raises(ValueError, match="dimension 23, the index has 24"):
        index.add(x[:, :23])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(q, 0)
    with pytest.raises(ValueError, match="invalid FAISS factory"):
        FaissIndex(24, "NotAnIndex")
    with pytest.raises(ValueError, match="unknown index backend"):
        make_index(24, "annoy")


@pytest.mark.parametrize("cls", [ExactIndex, FaissIndex])
def test_save_and_load_roundtrip(tmp_path, vectors, cls):
    q, x = vectors
    index = cls(24)
    index.add(x)
    index.save(tmp_path / "idx")
    loaded = cls.load(tmp_path / "idx")
    np.testing.assert_array_equal(loaded.search(q, 10)[1], index.search(q, 10)[1])


@pytest.mark.parametrize("backend", ["exact", "torch", "faiss", "ann", "streamed", "ray"])
def test_every_backend_names_an_unknown_metric(backend):
    from negmine.distributed.search import RayShardedIndex
    from negmine.index.ann import AnnIndex
    from negmine.index.streamed import StreamedExactIndex
    from negmine.index.torch_exact import TorchExactIndex

    build = {"exact": lambda: ExactIndex(8, "cosine"), "torch": lambda: TorchExactIndex(8, "cosine"),
             "faiss": lambda: FaissIndex(8, metric="cosine"), "ann": lambda: AnnIndex(8, "Flat", metric="cosine"),
             "streamed": lambda: StreamedExactIndex(np.zeros((3, 8), np.float32), "cosine"),
             "ray": lambda: RayShardedIndex(8, "cosine")}[backend]
    with pytest.raises(ValueError, match="metric must be 'ip' or 'l2', got 'cosine'"):
        build()


def test_counted_backends_report_their_size():
    from negmine.distributed.search import RayShardedIndex
    from negmine.index.torch_exact import TorchExactIndex

    for index in (ExactIndex(8), TorchExactIndex(8), RayShardedIndex(8)):
        assert (index.ntotal, index.dim) == (0, 8)
        index.add(np.ones((5, 8), np.float32))
        assert (index.ntotal, index.dim) == (5, 8), type(index).__name__
