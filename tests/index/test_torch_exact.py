"""TorchExactIndex against the numpy oracle (ExactIndex): on the CPU always, on CUDA with ``pytest -m gpu``.

Integer vectors make every dot product exact in fp32, fp16 and bf16 (|score| <= 2 * 2 * 16 = 64), with many ties,
so ids and scores must be identical, tie order included; random vectors check the float path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from negmine.index.exact import ExactIndex  # noqa: E402
from negmine.index.torch_exact import TorchExactIndex, block_topk  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
N_CUDA = torch.cuda.device_count() if HAS_CUDA else 0


def integer_data(n=3000, nq=37, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(-2, 3, (n, dim)).astype(np.float32), rng.integers(-2, 3, (nq, dim)).astype(np.float32))


def oracle(x, q, k, metric="ip"):
    index = ExactIndex(x.shape[1], metric, corpus_block=700)
    index.add(x)
    return index.search(q, k)


def torch_index(x, metric="ip", **kwargs):
    index = TorchExactIndex(x.shape[1], metric, **kwargs)
    index.add(x[: len(x) // 3])  # several adds: pieces with their own offsets
    index.add(x[len(x) // 3 :])
    return index


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cpu_equals_exact_index_with_ties(metric, dtype):
    x, q = integer_data()
    expected = oracle(x, q, 25, metric)
    got = torch_index(x, metric, device="cpu", dtype=dtype, query_block=10, corpus_block=256).search(q, 25)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


def test_k_above_2048_and_above_ntotal_pads_like_faiss():
    x, q = integer_data(n=2600)
    index = torch_index(x, device="cpu", corpus_block=1000)
    s, i = index.search(q, 2500)
    np.testing.assert_array_equal(i, oracle(x, q, 2500)[1])
    s, i = index.search(q[:3], 2700)
    assert (i[:, 2600:] == -1).all() and np.isneginf(s[:, 2600:]).all()
    np.testing.assert_array_equal(i[:, :2600], oracle(x, q[:3], 2600)[1])


def test_sharded_over_several_devices_equals_one():
    x, q = integer_data()
    one = torch_index(x, device="cpu").search(q, 40)
    many = torch_index(x, device=["cpu", "cpu", "cpu"])  # three shards on one device: the merge is what's tested
    # two adds (1000 rows, then 2000), each split in contiguous near-equal slices
    assert [[(p.offset, len(p.x)) for p in shard] for shard in many._shards] == [
        [(0, 334), (1000, 667)],
        [(334, 334), (1667, 667)],
        [(668, 332), (2334, 666)],
    ]
    np.testing.assert_array_equal(many.search(q, 40)[1], one[1])
    np.testing.assert_array_equal(many.search(q, 40)[0], one[0])


def test_random_vectors_match_the_oracle():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5000, 48)).astype(np.float32)
    q = rng.standard_normal((20, 48)).astype(np.float32)
    es, ei = oracle(x, q, 50)
    ts, ti = torch_index(x, device="cpu", corpus_block=1024).search(q, 50)
    assert (ti == ei).mean() >= 0.999
    np.testing.assert_allclose(ts, es, rtol=1e-5, atol=1e-5)


def test_block_topk_settles_ties_at_the_cut_by_lower_column():
    sims = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0], [5.0, 4.0, 4.0, 4.0, 4.0, 9.0]])
    s, i = block_topk(sims, 3)
    assert i.tolist() == [[1, 2, 3], [5, 0, 1]]
    assert s.tolist() == [[3.0, 3.0, 3.0], [9.0, 5.0, 4.0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        TorchExactIndex(4, "cosine", device="cpu")
    with pytest.raises(ValueError, match="dtype"):
        TorchExactIndex(4, device="cpu", dtype="int8")
    index = TorchExactIndex(4, device="cpu")
    with pytest.raises(ValueError, match="dimension"):
        index.add(np.zeros((2, 5), dtype=np.float32))


def test_make_index_torch_backend():
    from negmine.index import make_index

    index = make_index(16, "torch", device="cpu")
    x, q = integer_data(n=200)
    index.add(x)
    np.testing.assert_array_equal(index.search(q, 7)[1], oracle(x, q, 7)[1])


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA device")
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_cuda_equals_exact_index_on_integer_vectors(dtype):
    x, q = integer_data(n=20_000, nq=300)
    expected = oracle(x, q, 100)
    got = torch_index(x, device="cuda:0", dtype=dtype, corpus_block=4096).search(q, 100)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA device")
def test_cuda_fp16_on_random_vectors_and_k_above_2048():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((64, 64)).astype(np.float32)
    es, ei = oracle(x, q, 3000)
    ts, ti = torch_index(x, device="cuda:0", dtype="fp16").search(q, 3000)
    assert np.mean([len(set(a[:100]) & set(b[:100])) / 100 for a, b in zip(ei, ti)]) >= 0.98
    np.testing.assert_allclose(ts, es, atol=2e-2)
    fs, fi = torch_index(x, device="cuda:0", dtype="fp32").search(q, 3000)
    assert (fi == ei).mean() >= 0.999  # TF32 is off for plain matmul by default in torch


@pytest.mark.gpu
@pytest.mark.skipif(N_CUDA < 2, reason="needs 2 CUDA devices")
def test_cuda_sharded_equals_one_device():
    x, q = integer_data(n=30_000, nq=200)
    one = torch_index(x, device="cuda:0").search(q, 100)
    many = torch_index(x, device="cuda")
    assert len(many.devices) == N_CUDA
    np.testing.assert_array_equal(many.search(q, 100)[1], one[1])
