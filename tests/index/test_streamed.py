"""Out-of-core exact search equals in-memory exact search; the shard store round-trips and rejects damage."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.index import ExactIndex
from negmine.index.streamed import ShardStore, ShardStoreError, StreamedExactIndex, pruned_merge

DIM = 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((3001, DIM)).astype(np.float32), rng.standard_normal((37, DIM)).astype(np.float32)


@pytest.fixture
def store(tmp_path, data):
    x, _ = data
    s = ShardStore.create(tmp_path / "shards", DIM, shard_rows=700)
    s.append(x[:100])
    s.append(x[100:2500])  # fills the partial shard first, then new ones
    s.append(x[2500:])
    return s


def oracle(x, q, k, metric="ip"):
    index = ExactIndex(DIM, metric)
    index.add(x)
    return index.search(q, k)


def test_store_round_trip(store, data):
    x, _ = data
    again = ShardStore.open(store.path)
    assert again.counts == [700, 700, 700, 700, 201] and len(again) == 3001 and again.shape == (3001, DIM)
    ids = np.array([3000, 0, 699, 700, 1400, 5, 5])
    np.testing.assert_array_equal(again.rows(ids), x[ids])
    np.testing.assert_array_equal(again[[[1, 2], [3, 4]]], x[[[1, 2], [3, 4]]])
    np.testing.assert_array_equal(again.to_array(), x)
    blocks = list((first, b.copy()) for first, b in again.iter_blocks(333))
    assert [f for f, _ in blocks][:3] == [0, 333, 666]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), x)
    with pytest.raises(IndexError):
        again.rows([3001])


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("engine", ["numpy", "faiss"])
@pytest.mark.parametrize("max_memory_mb", [0.25, 64])
def test_streamed_equals_in_memory(store, data, metric, engine, max_memory_mb):
    if engine == "faiss":
        pytest.importorskip("faiss")
    x, q = data
    index = StreamedExactIndex(store, metric, max_memory_mb=max_memory_mb, engine=engine)
    scores, ids = index.search(q, 50)
    ref_s, ref_i = oracle(x, q, 50, metric)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-4, atol=1e-4)


def test_memory_bound_sets_the_block_sizes(store):
    small = StreamedExactIndex(store, max_memory_mb=0.25, query_block=64)
    qb, rows = small.block_sizes(37, 50)
    assert rows * (4 * DIM + 16 * qb) + qb * 50 * 36 <= 0.25 * 2**20 and rows < len(store)
    assert StreamedExactIndex(store, max_memory_mb=512).block_sizes(37, 50) == (37, len(store))
    with pytest.raises(ValueError, match="too small"):
        StreamedExactIndex(store, max_memory_mb=0.001).search(np.zeros((1, DIM), np.float32), 5000)


def test_ties_break_by_lower_row_like_exact_search(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(2000, 4)).astype(np.float32)  # many equal scores
    q = rng.integers(-2, 3, size=(9, 4)).astype(np.float32)
    s = ShardStore.create(tmp_path / "t", 4, shard_rows=300)
    s.append(x)
    sims = q @ x.T
    ref = np.lexsort((np.broadcast_to(np.arange(len(x)), sims.shape), -sims), axis=1)[:, :40]  # full stable sort
    for mb in (0.05, 8):
        np.testing.assert_array_equal(StreamedExactIndex(s, max_memory_mb=mb, engine="numpy").search(q, 40)[1], ref)


def test_pruned_merge_matches_a_full_sort():
    rng = np.random.default_rng(2)
    sims = rng.integers(0, 50, size=(6, 9000)).astype(np.float32)
    best = (np.zeros((6, 0), np.float32), np.zeros((6, 0), np.int64))
    for start in range(0, 9000, 2500):
        best = pruned_merge(best, sims[:, start:start + 2500], start, 30, chunk=700)
    order = np.lexsort((np.broadcast_to(np.arange(9000), sims.shape), -sims), axis=1)[:, :30]
    np.testing.assert_array_equal(best[1], order)


def test_k_larger_than_corpus_pads(tmp_path, data):
    x, q = data
    s = ShardStore.create(tmp_path / "p", DIM, shard_rows=4)
    s.append(x[:10])
    scores, ids = StreamedExactIndex(s, engine="numpy").search(q[:3], 15)
    assert (ids[:, 10:] == -1).all() and np.isneginf(scores[:, 10:]).all()
    np.testing.assert_array_equal(ids[:, :10], oracle(x[:10], q[:3], 10)[1])


def test_in_memory_array_and_save_load(tmp_path, store, data):
    x, q = data
    in_ram = StreamedExactIndex(x, engine="numpy")
    np.testing.assert_array_equal(in_ram.search(q, 20)[1], oracle(x, q, 20)[1])
    index = StreamedExactIndex(store, engine="numpy")
    index.save(tmp_path / "saved")
    again = StreamedExactIndex.load(tmp_path / "saved", engine="numpy")
    for a, b in zip(index.search(q, 20), again.search(q, 20)):
        np.testing.assert_array_equal(a, b)


def test_damaged_stores_fail_clearly(tmp_path, store):
    shard = store.shard_path(1)
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(ShardStoreError, match="shard_00001.npy"):
        ShardStore.open(store.path)
    shard.unlink()
    with pytest.raises(ShardStoreError, match="missing"):
        ShardStore.open(store.path)
    with pytest.raises(ShardStoreError, match="shards.json"):
        ShardStore.open(tmp_path / "nowhere")
    with pytest.raises(ShardStoreError, match="already exists"):
        ShardStore.create(store.path, DIM)
    with pytest.raises(ValueError, match="dimension"):
        ShardStore.create(tmp_path / "d", DIM).append(np.zeros((2, DIM + 1), np.float32))
