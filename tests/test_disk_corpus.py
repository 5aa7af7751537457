"""The disk-backed corpus (``corpus_storage="disk"``): the same data, the same errors and the same mined bytes as the
in-memory dicts, with memory that does not grow with the corpus text, and an index built once and reused."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from negmine.data import load_data
from negmine.data.disk import DiskCorpus, DiskQueries, corpus_index_root
from negmine.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]


def write_beir(root: Path, corpus, queries=None, qrels=None, split="train") -> Path:
    queries = queries if queries is not None else [{"_id": "q1", "text": "what is alpha"},
                                                   {"_id": "q2", "text": "what is beta"}]
    qrels = qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        (root / name).write_text(text, encoding="utf-8")
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def load(root: Path, storage: str, tmp_path: Path, **kwargs):
    return load_data(root, "train", corpus_storage=storage, cache_dir=tmp_path / "cache", **kwargs)


CORPUS = [
    {"_id": "d1", "title": "A", "text": "alpha"},
    {"_id": "d2", "title": "", "text": "beta"},
    {"_id": 3, "text": "gamma"},  # a numeric id, read as "3"
    {"_id": "d4", "title": None, "text": "beta"},  # the same text as d2
    {"_id": "dé", "text": "ünïcode ✓"},
]


def test_disk_corpus_is_the_memory_corpus(tmp_path):
    root = write_beir(tmp_path / "beir", CORPUS, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\t3\t1\n")
    memory, disk = load(root, "memory", tmp_path), load(root, "disk", tmp_path)
    assert isinstance(disk.corpus, DiskCorpus) and isinstance(disk.queries, DiskQueries)
    assert list(disk.corpus) == list(memory.corpus) == ["d1", "d2", "3", "d4", "dé"]
    assert len(disk.corpus) == 5 and "dé" in disk.corpus and "d9" not in disk.corpus and 3 not in disk.corpus
    assert {d: disk.corpus[d] for d in disk.corpus} == dict(memory.corpus)
    assert dict(disk.queries) == dict(memory.queries)
    assert [disk.doc_text(d) for d in disk.corpus] == [memory.doc_text(d) for d in memory.corpus]
    assert disk.qrels == memory.qrels and disk.split_query_ids == memory.split_query_ids
    with pytest.raises(KeyError):
        disk.corpus["d9"]
    with pytest.raises(KeyError):
        disk.corpus["d1" * 40]  # longer than any indexed id
    texts = disk.corpus.texts()
    assert list(texts) == [memory.doc_text(d) for d in memory.corpus] and texts[3] == "beta"
    assert texts.take([4, 0, 4]) == ["ünïcode ✓", "A alpha", "ünïcode ✓"]
    assert texts.lengths().tolist() == [len(t) for t in texts]
    unique, inverse = texts.unique()
    assert list(unique) == list(dict.fromkeys(texts)) and [unique[i] for i in inverse] == list(texts)
    assert disk.summary() == memory.summary()


def test_gzip_and_byte_order_mark(tmp_path):
    root = write_beir(tmp_path / "beir", CORPUS)
    raw = (root / "corpus.jsonl").read_bytes()
    (root / "corpus.jsonl.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + raw))
    (root / "corpus.jsonl").unlink()
    memory, disk = load(root, "memory", tmp_path), load(root, "disk", tmp_path)
    assert {d: disk.corpus[d] for d in disk.corpus} == dict(memory.corpus)
    assert disk.report.notes == memory.report.notes and "byte-order mark" in disk.report.notes[0]


@pytest.mark.parametrize(
    "corpus_text",
    [
        '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n',  # malformed JSON
        '{"_id": "d1", "text": "a"}\n{"text": "b"}\n',  # missing _id
        '{"_id": "d1", "text": "a"}\n{"_id": "d2"}\n',  # missing text
        '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n',  # duplicate id
        '{"_id": "d1", "text": "a"}\n{"_id": "d2", "title": "", "text": "  "}\n',  # empty text
        '{"_id": "d1", "text": "a"}\n[1, 2]\n',  # not an object
        '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n{"_id": "d3"}\n',  # a duplicate, then a bad row
        '{"_id": "d1", "text": "a"}\n{"_id": "d3"}\n{"_id": "d1", "text": "b"}\n',  # a bad row, then a duplicate
        '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": ""}\n',  # a duplicate id on an invalid row
        '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n{"_id": "d2", "text": "c"}\n'
        '{"_id": "d1", "text": 1}\n',  # two duplicates, the later one's id seen first
        '{"_id": "d1", "text": "a"}\n{"_id": "d2", "title": 5, "text": "x"}\n',  # a title that is not a string
        b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "\xff"}\n',  # not UTF-8
    ],
)
def test_errors_and_skips_are_those_of_the_memory_loader(tmp_path, corpus_text):
    root = tmp_path / "beir"
    write_beir(root, "")
    (root / "corpus.jsonl").write_bytes(corpus_text if isinstance(corpus_text, bytes) else corpus_text.encode())
    errors = []
    for storage in ("memory", "disk"):
        with pytest.raises(DataError) as info:
            load(root, storage, tmp_path)
        errors.append((str(info.value), info.value.line, info.value.field))
    assert errors[0] == errors[1]
    loaded = [load(root, storage, tmp_path, on_invalid="skip", unknown_qrels="skip") for storage in ("memory", "disk")]
    assert list(loaded[1].corpus) == list(loaded[0].corpus)
    assert [loaded[1].corpus[d] for d in loaded[1].corpus] == [loaded[0].corpus[d] for d in loaded[0].corpus]
    assert list(loaded[1].report.skipped.items()) == list(loaded[0].report.skipped.items())  # same reasons, order


def test_queries_errors_are_those_of_the_memory_loader(tmp_path):
    root = write_beir(tmp_path / "beir", CORPUS, queries='{"_id": "q1", "text": "x"}\n{"_id": "q1", "text": "y"}\n')
    with pytest.raises(DataError,
                       match=r"queries.jsonl, line 2, field '_id': duplicate id 'q1' \(first seen on line 1\)"):
        load(root, "disk", tmp_path)


def test_the_index_is_built_once_and_rebuilt_when_the_file_changes(tmp_path):
    root = write_beir(tmp_path / "beir", CORPUS)
    first = load(root, "disk", tmp_path)
    assert first.corpus.built and first.queries.built
    folders = sorted(p.name for p in corpus_index_root(tmp_path / "cache").glob("*/*"))
    assert len(folders) == 2  # corpus and queries
    again = load(root, "disk", tmp_path)
    assert not again.corpus.built and not again.queries.built and list(again.corpus) == list(first.corpus)
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "d6", "text": "delta"}) + "\n")
    changed = load(root, "disk", tmp_path)
    assert changed.corpus.built and list(changed.corpus)[-1] == "d6" and changed.corpus["d6"]["text"] == "delta"


def test_an_index_built_with_skips_is_not_reused_to_load_without_them(tmp_path):
    root = write_beir(tmp_path / "beir", '{"_id": "d1", "text": "a"}\nnot json\n')
    skipped = load(root, "disk", tmp_path, on_invalid="skip")
    assert list(skipped.corpus) == ["d1"] and skipped.report.skipped == {"corpus.jsonl: malformed JSON": 1}
    again = load(root, "disk", tmp_path, on_invalid="skip")  # reused: its report comes with it
    assert not again.corpus.built and again.report.skipped == {"corpus.jsonl: malformed JSON": 1}
    with pytest.raises(DataError, match="corpus.jsonl, line 2: malformed JSON"):
        load(root, "disk", tmp_path)


def test_storage_choice_and_auto_threshold(tmp_path, monkeypatch):
    import negmine.data.beir as beir

    root = write_beir(tmp_path / "beir", CORPUS)
    assert isinstance(load(root, "auto", tmp_path).corpus, dict)  # a small corpus stays in memory
    monkeypatch.setattr(beir, "AUTO_DISK_BYTES", 10)
    assert isinstance(load(root, "auto", tmp_path).corpus, DiskCorpus)
    with pytest.raises(ConfigError, match="corpus_storage='ram' is not one of 'memory', 'disk', 'auto'"):
        load(root, "ram", tmp_path)


#### memory: what a process holds does not grow with the corpus text
RSS_CHILD = textwrap.dedent("""
    import sys

    import numpy  # imported before measuring: the structures are measured, not numpy
    from negmine.data import load_data

    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    before = hwm()
    data = load_data(sys.argv[1], "train", corpus_storage=sys.argv[2], cache_dir=sys.argv[3])
    n = sum(len(data.doc_text(d)) for d in list(data.corpus)[:50])  # a few texts, as a miner writing records
    ids = sum(1 for _ in data.corpus)
    print(hwm() - before, ids)
""")


def test_peak_memory_does_not_grow_with_the_text(tmp_path):
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
    rng = np.random.default_rng(0)
    n = 8000
    with open(tmp_path / "corpus.jsonl", "w", encoding="utf-8") as handle:  # ~40 MB of text
        for i in range(n):
            handle.write(json.dumps({"_id": f"doc{i}", "text": " ".join(rng.choice(words, 700))}) + "\n")
    root = write_beir(tmp_path, (tmp_path / "corpus.jsonl").read_text(),
                      qrels="query-id\tcorpus-id\tscore\nq1\tdoc1\t1\n")
    size = (root / "corpus.jsonl").stat().st_size
    grown = {}
    for storage in ("disk", "disk", "memory"):  # the second disk load reuses the index
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(root), storage, str(tmp_path / "cache")],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                             check=True)
        delta, ids = map(int, out.stdout.split())
        assert ids == n
        grown[storage] = delta
    assert grown["memory"] > 0.8 * size  # the dicts hold the text
    assert grown["disk"] < 0.1 * size, (grown, size)


def test_cli_mine_and_eval_give_the_same_output_from_disk(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from negmine.cli import app

    monkeypatch.setenv("NEGMINE_CACHE", str(tmp_path / "cache"))
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    rng = np.random.default_rng(1)
    docs = [{"_id": f"d{i}", "title": "", "text": " ".join(rng.choice(words, 6))} for i in range(40)]
    queries = [{"_id": f"q{i}", "text": " ".join(rng.choice(words, 3))} for i in range(8)]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{3 * i}\t1\n" for i in range(8))
    root = write_beir(tmp_path / "beir", docs, queries, qrels)
    runner = CliRunner()
    outputs = {}
    for storage in ("memory", "disk"):
        mined, evaluated = tmp_path / f"mine-{storage}", tmp_path / f"eval-{storage}"
        result = runner.invoke(app, ["mine", "--retriever", "hashing", "--data", str(root), "--split", "train",
                                     "--strategy", "range", "--range", "0:6", "--num-negatives", "3", "--out",
                                     str(mined), "--corpus-storage", storage])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["eval", "--model", "hashing", "--data", str(root), "--split", "train",
                                     "--k", "1,5", "--out", str(evaluated), "--no-progress", "--corpus-storage",
                                     storage])
        assert result.exit_code == 0, result.output
        outputs[storage] = [(mined / "mined.jsonl").read_bytes(), (evaluated / "run.trec").read_bytes(),
                            json.loads((evaluated / "metrics.json").read_text())["metrics"]]
        assert json.loads((mined / "manifest.json").read_text())["config"]["corpus_storage"] == storage
    assert outputs["disk"] == outputs["memory"] and outputs["disk"][0].count(b"\n") == 8
    assert list(corpus_index_root(tmp_path / "cache").glob("*/*/meta.json"))  # the index went to $NEGMINE_CACHE
