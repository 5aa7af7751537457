"""Mining from a disk-backed corpus (``corpus_storage="disk"``) writes the bytes mining from the in-memory dicts
writes, shares its embedding cache entries, and reads from the corpus file only the texts of the records it writes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from negmine.data import load_data
from negmine.encoders import EmbeddingCache, HashingEncoder
from negmine.mining import MineConfig, read_mined, run_mining

OUTPUTS = ("mined.jsonl", "n-tuple.jsonl", "stats.json")


def scifact_sample(src: Path, out: Path, n_queries: int = 40, n_docs: int = 800) -> Path:
    """The first SciFact train queries, their positives and the first other documents, as a BEIR folder; two
    documents repeat another's text (equal-text exclusion and de-duplicated encoding); every other query's qrels rows
    are graded 2."""
    qrels = [line.split("\t") for line in (src / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    queries = list(dict.fromkeys(q for q, _, _ in qrels))[:n_queries]
    rows = [r for r in qrels if r[0] in queries]
    positives = {d for _, d, _ in rows}
    docs = []
    with gzip.open(src / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            if json.loads(line)["_id"] in positives or len(docs) < n_docs:
                docs.append(json.loads(line))
    first_positive = next(d for d in docs if d["_id"] in positives)
    docs += [{**first_positive, "_id": "copy-of-a-positive"}, {**docs[5], "_id": "copy-of-another"}]
    out.mkdir(parents=True)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    with gzip.open(src / "queries.jsonl.gz", "rt", encoding="utf-8") as handle:
        (out / "queries.jsonl").write_text("".join(line for line in handle if json.loads(line)["_id"] in queries))
    graded = set(queries[::2])
    for row in rows:
        row[2] = "2" if row[0] in graded else row[2]
    (out / "qrels").mkdir()
    (out / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n"
                                                                                     for r in rows))
    return out


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
