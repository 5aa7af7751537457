"""Ray encoding of a disk-backed corpus: the driver reads and submits the texts window by window (never one list of
every text), and the cache entry it writes is byte for byte the one a local encode writes."""

from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from negmine.data import LoadReport  # noqa: E402
from negmine.data.disk import DiskCorpus  # noqa: E402
from negmine.distributed.encode import RayEmbeddingCache  # noqa: E402
from negmine.encoders import EmbeddingCache, HashingEncoder  # noqa: E402


@pytest.fixture()
def local_ray(monkeypatch):
    monkeypatch.setenv("NEGMINE_RAY_SHIP_CODE", "0")  # workers import this checkout through PYTHONPATH
    # no token authentication: with it, ray.init writes ~/.ray/auth_token, which breaks later loopback clusters
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    temp = tempfile.mkdtemp(prefix="nmrw", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=1, include_dashboard=False, object_store_memory=80 * 1024**2, log_to_driver=False,
             logging_level="ERROR", _temp_dir=temp)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def _corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    with open(tmp_path / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i in range(50):
            handle.write(json.dumps({"_id": f"d{i}", "text": " ".join(rng.choice(words, int(rng.integers(2, 12))))})
                         + "\n")
    return DiskCorpus.open(tmp_path / "corpus.jsonl", LoadReport(), "error", tmp_path / "index").texts()


def _entries(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("embeddings.npy")}


def test_windows_of_blocks_and_the_same_cache_entry(local_ray, tmp_path, monkeypatch):
    texts = _corpus(tmp_path)
    encoder = HashingEncoder(dim=16)
    encode = lambda batch: encoder.encode_corpus(batch)  # noqa: E731
    local = EmbeddingCache(tmp_path / "local", block_size=4).get_or_encode(texts, encode, encoder.fingerprint(),
                                                                            "document")
    submitted = []
    from_items = ray.data.from_items

    def spy(items, **kwargs):  # the real from_items; records how many blocks each window holds
        submitted.append(len(items))
        return from_items(items, **kwargs)

    monkeypatch.setattr(ray.data, "from_items", spy)
    cache = RayEmbeddingCache(encoder, "local", tmp_path / "ray", block_size=4, window_blocks=3,
                              local_single_block=False)
    distributed = cache.get_or_encode(texts, encode, encoder.fingerprint(), "document")
    assert submitted == [3, 3, 3, 3, 1]  # 13 blocks of 4 texts, 3 blocks a window
    assert np.array_equal(distributed, local)
    assert _entries(tmp_path / "local") == _entries(tmp_path / "ray") and len(_entries(tmp_path / "ray")) == 1
    assert not list((tmp_path / "ray").rglob("block_*"))


def test_tasks_carry_several_blocks_and_give_the_same_entry(local_ray, tmp_path, monkeypatch):
    texts = _corpus(tmp_path)
    encoder = HashingEncoder(dim=16)
    encode = lambda batch: encoder.encode_corpus(batch)  # noqa: E731
    EmbeddingCache(tmp_path / "local", block_size=2).get_or_encode(texts, encode, encoder.fingerprint(), "document")
    tasks = []
    from_items = ray.data.from_items

    def spy(items, **kwargs):
        tasks.append(kwargs["override_num_blocks"])
        return from_items(items, **kwargs)

    monkeypatch.setattr(ray.data, "from_items", spy)
    cache = RayEmbeddingCache(encoder, "local", tmp_path / "ray", block_size=2, blocks_per_task=3,
                              local_single_block=False)
    cache.get_or_encode(texts, encode, encoder.fingerprint(), "document")
    assert tasks == [9]  # 25 blocks of 2 texts, 3 a task (one actor: 25 // 4 = 6 allows 3)
    assert _entries(tmp_path / "local") == _entries(tmp_path / "ray")


def test_blocks_per_task_keeps_every_actor_busy():
    from negmine.distributed.encode import tasks_of

    assert tasks_of(4096, 2, 16) == 16
    assert tasks_of(40, 2, 16) == 5  # at least 4 tasks per actor
    assert tasks_of(3, 4, 16) == 1
    with pytest.raises(ValueError, match="blocks_per_task"):
        RayEmbeddingCache(HashingEncoder(dim=4), "local", blocks_per_task=0)
