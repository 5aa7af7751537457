"""Persisted index folders: reload gives identical results; damage or a mismatched model/corpus is a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negmine.testing import importorskip

importorskip("faiss")

from negmine.index.store import MANIFEST, IndexStoreError, build_index_dir, load_index_dir, read_manifest  # noqa: E402

DIM = 16
FP = {"encoder": "test", "weights_sha256": "abc", "precision": "fp32", "query_prompt": ""}


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1500, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [f"doc{i}" for i in range(len(x))], rng.standard_normal((30, DIM)).astype(np.float32)


def oracle(x, q, k):
    from negmine.index import ExactIndex

    index = ExactIndex(DIM)
    index.add(x)
    return index.search(q, k)


@pytest.mark.parametrize("factory", ["Flat", "streamed", "IVF8,Flat", "HNSW16", "IVF8,PQ4x4"])
def test_build_reload_identical(tmp_path, corpus, factory):
    x, ids, q = corpus
    manifest = build_index_dir(tmp_path / "ix", x, ids, factory=factory, encoder_fingerprint=FP, queries=q,
                               recall_queries=20, recall_k=10, shard_rows=400, rerank=4 if "PQ" in factory else None,
                               nprobe=8)
    assert manifest["dim"] == DIM and manifest["ntotal"] == 1500 and manifest["encoder"] == FP
    approximate = factory not in ("Flat", "streamed")
    assert manifest["approximate"] is approximate
    assert (manifest["recall"] is not None) is approximate
    if approximate:
        assert 0 < manifest["recall"]["value"] <= 1 and manifest["recall"]["query_source"] == "queries"
    loaded = load_index_dir(tmp_path / "ix", encoder_fingerprint=FP, dim=DIM, doc_ids=ids, verify="sha256")
    assert loaded.doc_ids == ids and loaded.embeddings.num_shards == 4
    np.testing.assert_array_equal(loaded.embeddings.to_array(), x)
    first = loaded.index.search(q, 10)
    second = load_index_dir(tmp_path / "ix").index.search(q, 10)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    if not approximate:
        np.testing.assert_array_equal(first[1], oracle(x, q, 10)[1])


def test_refuses_to_overwrite(tmp_path, corpus):
    x, ids, _ = corpus
    build_index_dir(tmp_path / "ix", x, ids, encoder_fingerprint=FP)
    with pytest.raises(IndexStoreError, match="already exists"):
        build_index_dir(tmp_path / "ix", x, ids, encoder_fingerprint=FP)
    build_index_dir(tmp_path / "ix", x[:10], ids[:10], encoder_fingerprint=FP, overwrite=True)
    assert read_manifest(tmp_path / "ix")["ntotal"] == 10


@pytest.fixture
def built(tmp_path, corpus):
    x, ids, _ = corpus
    build_index_dir(tmp_path / "ix", x, ids, factory="IVF8,Flat", encoder_fingerprint=FP, recall_queries=0)
    return tmp_path / "ix"


def test_other_model_is_refused(built):
    other = {**FP, "weights_sha256": "def"}
    with pytest.raises(IndexStoreError, match="another model.*weights_sha256"):
        load_index_dir(built, encoder_fingerprint=other)
    with pytest.raises(IndexStoreError, match="precision"):
        load_index_dir(built, encoder_fingerprint={**FP, "precision": "int8"})


def test_wrong_dimension_is_refused(built):
    with pytest.raises(IndexStoreError, match="dimension 16 .* 384"):
        load_index_dir(built, dim=384)


def test_other_corpus_is_refused(built, corpus):
    _, ids, _ = corpus
    with pytest.raises(IndexStoreError, match="another corpus"):
        load_index_dir(built, doc_ids=ids[::-1])


def test_corrupted_index_file(built):
    path = built / "index" / "index.faiss"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexStoreError, match="index.faiss: corrupted"):
        load_index_dir(built)


def test_truncated_and_missing_files(built):
    path = built / "embeddings" / "shard_00000.npy"
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(IndexStoreError, match="shard_00000.npy: corrupted or truncated"):
        load_index_dir(built)
    path.unlink()
    with pytest.raises(IndexStoreError, match="missing"):
        load_index_dir(built)


def test_unreadable_faiss_file_even_without_hashes(built):
    path = built / "index" / "index.faiss"
    path.write_bytes(b"\0" * path.stat().st_size)
    with pytest.raises(IndexStoreError, match="cannot read the FAISS index"):
        load_index_dir(built, verify="size")


def test_bad_manifest(tmp_path, built):
    with pytest.raises(IndexStoreError, match="not a negmine index folder"):
        load_index_dir(tmp_path)
    (built / MANIFEST).write_text("{not json")
    with pytest.raises(IndexStoreError, match="corrupted manifest"):
        load_index_dir(built)
    (built / MANIFEST).write_text(json.dumps({"format": 99, "kind": "faiss", "dim": 1, "metric": "ip", "ntotal": 1,
                                              "files": {}}))
    with pytest.raises(IndexStoreError, match="format 99"):
        load_index_dir(built)


def test_mine_with_a_persisted_index_equals_mining_without(tmp_path):
    from negmine.encoders import HashingEncoder
    from negmine.mining import mine_hard_negatives
    from negmine.retrieve import unique_encode
    from negmine.testing import toy_data

    data, encoder = toy_data(), HashingEncoder()
    options = dict(num_negatives=2, range_max=6, no_cache=True, show_progress_bar=False, too_few="keep",
                   format="triplet")
    expected = mine_hard_negatives(data, encoder, index="exact", **options)  # the numpy oracle
    doc_ids = list(data.corpus)
    emb = unique_encode(encoder, [data.doc_text(d) for d in doc_ids], "document", None, 32, False, "")
    build_index_dir(tmp_path / "ix", emb, doc_ids, factory="streamed", encoder_fingerprint=encoder.fingerprint(),
                    doc_texts=[data.doc_text(d) for d in doc_ids])
    got = mine_hard_negatives(data, encoder, index_dir=str(tmp_path / "ix"), **options)
    assert [(r.query_id, r.positive_ids, r.negative_ids) for r in got.records] == [
        (r.query_id, r.positive_ids, r.negative_ids) for r in expected.records]
    for a, b in zip(got.records, expected.records):
        np.testing.assert_allclose(a.negative_scores + a.positive_scores, b.negative_scores + b.positive_scores,
                                   atol=1e-6)
    with pytest.raises(IndexStoreError, match="another model"):
        mine_hard_negatives(data, HashingEncoder(seed=1), index_dir=str(tmp_path / "ix"), **options)


def write_toy_beir(folder, extra_qrels: str = ""):
    """The toy data as a BEIR folder (``extra_qrels``: raw lines appended to qrels/train.tsv)."""
    from negmine.testing import toy_data

    data = toy_data()
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, **v}) + "\n" for d, v in data.corpus.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                  for q, t in data.queries.items()))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{s}\n" for q, rel in data.qrels.items() for d, s in rel.items()) + extra_qrels)
    return folder


def test_cli_index_build_then_mine(tmp_path):
    from typer.testing import CliRunner

    from negmine.cli import app

    folder = write_toy_beir(tmp_path / "beir")
    runner = CliRunner()
    result = runner.invoke(app, ["index", "build", "--retriever", "hashing", "--data", str(folder), "--factory",
                                 "HNSW8", "--recall-queries", "6", "--recall-k", "5", "--no-cache", "--out",
                                 str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    assert "recall@5" in result.output
    manifest = read_manifest(tmp_path / "ix")
    assert manifest["factory"] == "HNSW8" and manifest["recall"]["queries"] == 6
    result = runner.invoke(app, ["mine", "--retriever", "hashing", "--data", str(folder), "--index-dir",
                                 str(tmp_path / "ix"), "--no-cache", "--range", "0:8", "--num-negatives", "2",
                                 "--too-few", "pad", "--out", str(tmp_path / "mined")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mined" / "mined.jsonl").exists()


def test_cli_index_build_unknown_qrels(tmp_path):
    """A qrels row naming a document the corpus lacks: a clear error by default, accepted with --unknown-qrels."""
    from typer.testing import CliRunner

    from negmine.cli import app
    from negmine.errors import DataError
    from negmine.testing import toy_data

    query = next(iter(toy_data().qrels))
    folder = write_toy_beir(tmp_path / "beir", extra_qrels=f"{query}\tno-such-doc\t1\n")
    args = ["index", "build", "--retriever", "hashing", "--data", str(folder), "--factory", "Flat", "--no-cache"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    message = str(result.exception)  # negmine.cli.main prints it on one line and exits 2
    assert isinstance(result.exception, DataError)
    assert "train.tsv, line 9" in message and "'corpus-id'" in message and "--unknown-qrels" in message
    for policy in ("skip", "keep"):
        result = CliRunner().invoke(app, [*args, "--unknown-qrels", policy, "--out", str(tmp_path / policy)])
        assert result.exit_code == 0, result.output
        assert read_manifest(tmp_path / policy)["ntotal"] == len(toy_data().corpus)
    result = CliRunner().invoke(app, [*args, "--unknown-qrels", "ignore", "--out", str(tmp_path / "b")])
    assert result.exit_code != 0 and "ignore" in str(result.exception)


def test_mine_cli_passes_index_dir_and_precision():
    from unittest import mock

    from typer.testing import CliRunner

    from negmine.cli import app

    with mock.patch("negmine.mining.run_mining") as run:
        run.return_value.stats.table.return_value = []
        run.return_value.timings = {}
        result = CliRunner().invoke(app, ["mine", "--index-dir", "runs/ix", "--precision", "int8", "--out", "o"])
    assert result.exit_code == 0, result.output
    config = run.call_args.args[0]
    assert config.index_dir == "runs/ix" and config.precision == "int8"
