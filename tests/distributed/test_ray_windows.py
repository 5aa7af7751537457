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


def test_windows_of_blocks_and_the_same_cache_entry(local_ray, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    with open(tmp_path / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i in range(50):
            handle.write(json.dumps({"_id": f"d{i}", "text": " ".join(rng.choice(words, int(rng.integers(2, 12))))})
                         + "\n")
    texts = DiskCorpus.open(tmp_path / "corpus.jsonl", LoadReport(), "error", tmp_path / "index").texts()
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
    def entries(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("embeddings.npy")}

    assert entries(tmp_path / "local") == entries(tmp_path / "ray") and len(entries(tmp_path / "ray")) == 1
    assert not list((tmp_path / "ray").rglob("block_*"))
