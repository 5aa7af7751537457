"""Mining from a disk-backed corpus (``corpus_storage="disk"``) writes the bytes mining from the in-memory dicts
writes, shares its embedding cache entries, and reads from the corpus file only the texts of the records it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from negmine.data import load_data
from negmine.encoders import EmbeddingCache, HashingEncoder
from negmine.mining import MineConfig, read_mined, run_mining
from negmine.testing import beir_sample

OUTPUTS = ("mined.jsonl", "n-tuple.jsonl", "stats.json")


def scifact_sample(src: Path, out: Path, n_queries: int = 40, n_docs: int = 800) -> Path:
    """The first SciFact train queries, their positives and the first other documents, as a BEIR folder; two
    documents repeat another's text (equal-text exclusion and de-duplicated encoding); every other query's qrels rows
    are graded 2."""

    def edit(docs: list[dict], rows: list[list[str]], queries: list[str]) -> None:
        positives = {d for _, d, _ in rows}
        first_positive = next(d for d in docs if d["_id"] in positives)
        docs += [{**first_positive, "_id": "copy-of-a-positive"}, {**docs[5], "_id": "copy-of-another"}]
        graded = set(queries[::2])
        for row in rows:
            row[2] = "2" if row[0] in graded else row[2]

    return beir_sample(src, out, n_queries=n_queries, n_docs=n_docs, edit=edit)


@pytest.fixture(scope="module")
def sample(tmp_path_factory, scifact_dir):
    return scifact_sample(scifact_dir, tmp_path_factory.mktemp("disk-mining") / "sample")


def mine(sample: Path, out: Path, storage: str, cache: EmbeddingCache | None, **options):
    config = MineConfig(retriever="hashing", data=str(sample), split="train", out=str(out), corpus_storage=storage,
                        cache_dir=str(cache.root) if cache is not None else None, no_cache=cache is None,
                        show_progress_bar=False, **options)
    return run_mining(config, encoder=HashingEncoder(dim=64), cache=cache)


@pytest.mark.parametrize("options", [
    dict(),
    dict(strategy="range", range_max=20, num_negatives=5, too_few="pad", sampling="random", seed=3),
    dict(strategy="range,abs", max_score=0.8, positive_grade=2, exclude_grade=1, margin_reference="lowest",
         format="labeled-list", near_duplicate=0.9),
    dict(no_cache=True),
])
def test_disk_and_memory_write_the_same_bytes(sample, tmp_path, options):
    no_cache = options.pop("no_cache", False)
    cache = None if no_cache else EmbeddingCache(tmp_path / "cache")
    fmt = options.get("format", "n-tuple")
    written = {}
    for storage in ("memory", "disk"):
        mine(sample, tmp_path / storage, storage, cache, **options)
        names = [n.replace("n-tuple", fmt) for n in OUTPUTS]
        written[storage] = {name: (tmp_path / storage / name).read_bytes() for name in names}
    assert written["disk"] == written["memory"]
    assert len(read_mined(tmp_path / "disk")) >= 5
    if cache is not None:
        assert cache.hits >= 2  # the disk run found the memory run's corpus and query vectors


def test_a_cached_run_reads_only_the_texts_it_writes(sample, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    mine(sample, tmp_path / "first", "disk", cache)  # encodes: reads every text once
    data = load_data(sample, "train", corpus_storage="disk", cache_dir=str(cache.root))
    assert not data.corpus.built
    config = MineConfig(retriever="hashing", data=str(sample), split="train", out=str(tmp_path / "second"),
                        cache_dir=str(cache.root), show_progress_bar=False)
    result = run_mining(config, data=data, encoder=HashingEncoder(dim=64), cache=cache)
    written = sum(len(r.positive_ids) + len(r.negative_ids) for r in result.records)
    assert written > 0 and data.corpus.reads == written, (data.corpus.reads, written, len(data.corpus))
    assert (tmp_path / "second" / "mined.jsonl").read_bytes() == (tmp_path / "first" / "mined.jsonl").read_bytes()
