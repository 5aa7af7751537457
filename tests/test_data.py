import gzip
import json
from pathlib import Path

import pytest

from negmine.data import load_beir, load_data, load_hf_pairs, load_pairs
from negmine.errors import DataError


def write_beir(root: Path, corpus=None, queries=None, qrels=None, split="train") -> Path:
    corpus = (
        corpus
        if corpus is not None
        else [
            {"_id": "d1", "title": "A", "text": "alpha"},
            {"_id": "d2", "title": "", "text": "beta"},
            {"_id": "d3", "title": "", "text": "gamma"},
        ]
    )
    queries = (
        queries
        if queries is not None
        else [{"_id": "q1", "text": "what is alpha"}, {"_id": "q2", "text": "what is beta"}]
    )
    qrels = qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td3\t1\n"
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        (root / name).write_text(text)
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def test_loads_valid_folder_with_multiple_positives(tmp_path):
    data = load_beir(write_beir(tmp_path), "train")
    assert data.positives("q2") == ["d2", "d3"]
    assert data.doc_text("d1") == "A alpha"
    assert data.split_query_ids == ["q1", "q2"]


def test_gzip_files_are_read(tmp_path):
    root = write_beir(tmp_path)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (root / f"{name}.gz").write_bytes(gzip.compress((root / name).read_bytes()))
        (root / name).unlink()
    assert len(load_beir(root, "train").corpus) == 3


def test_non_positive_qrels_are_not_positives(tmp_path):
    data = load_beir(write_beir(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n"), "train")
    assert data.positives("q1") == ["d1"]


@pytest.mark.parametrize(
    "corpus_text,line,field",
    [
        ('{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n', 2, None),  # malformed JSON
        ('{"_id": "d1", "text": "a"}\n{"text": "b"}\n', 2, "_id"),  # missing _id
        ('{"_id": "d1", "text": "a"}\n{"_id": "d2"}\n', 2, "text"),  # missing text
        ('{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', 2, "_id"),  # duplicate id
        ('{"_id": "d1", "text": "a"}\n{"_id": "d2", "title": "", "text": "  "}\n', 2, "text"),  # empty text
        ('{"_id": "d1", "text": "a"}\n[1, 2]\n', 2, None),  # not an object
    ],
)
def test_corpus_errors_name_file_line_and_field(tmp_path, corpus_text, line, field):
    root = write_beir(tmp_path, corpus=corpus_text, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with pytest.raises(DataError) as info:
        load_beir(root, "train")
    err = info.value
    assert err.path.endswith("corpus.jsonl") and err.line == line and err.field == field
    assert "corpus.jsonl" in str(err) and f"line {line}" in str(err)


def test_duplicate_query_id_and_empty_query(tmp_path):
    root = write_beir(tmp_path, queries='{"_id": "q1", "text": "x"}\n{"_id": "q1", "text": "y"}\n')
    with pytest.raises(
        DataError, match=r"queries.jsonl, line 2, field '_id': duplicate id 'q1' \(first seen on line 1\)"
    ):
        load_beir(root, "train")
    root = write_beir(tmp_path, queries='{"_id": "q1", "text": ""}\n')
    with pytest.raises(DataError, match="line 1, field 'text': empty"):
        load_beir(root, "train")


@pytest.mark.parametrize(
    "qrels,line,field,message",
    [
        ("q1\td1\t1\n", 1, "header", "expected the header"),
        ("query-id\tcorpus-id\tscore\nq9\td1\t1\n", 2, "query-id", "unknown query id 'q9'"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n", 3, "corpus-id", "unknown document id 'd9'"),
        ("query-id\tcorpus-id\tscore\nq1\td1\tx\n", 2, "score", "not a number"),
        ("query-id\tcorpus-id\tscore\nq1\td1\n", 2, "score", "expected 3 tab-separated columns"),
    ],
)
def test_qrels_errors(tmp_path, qrels, line, field, message):
    with pytest.raises(DataError, match=message) as info:
        load_beir(write_beir(tmp_path, qrels=qrels), "train")
    assert (info.value.line, info.value.field) == (line, field)
    assert info.value.path.endswith("train.tsv")


def test_skip_flag_counts_and_reports_skipped_rows(tmp_path):
    corpus = '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "dup"}\nnot json\n{"_id": "d2", "text": "b"}\n'
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\nq2\td2\t1\n"
    data = load_data(
        write_beir(tmp_path, corpus=corpus, qrels=qrels), "train", on_invalid="skip", unknown_qrels="skip"
    )
    assert set(data.corpus) == {"d1", "d2"} and data.corpus["d1"]["text"] == "a"
    assert data.report.skipped == {
        "corpus.jsonl: bad _id": 1,
        "corpus.jsonl: malformed JSON": 1,
        "train.tsv: unknown corpus-id": 1,
    }
    assert data.report.total_skipped == 3


def test_unknown_qrels_keep_keeps_the_judgement(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tmissing\t1\n"
    data = load_data(write_beir(tmp_path, qrels=qrels), "train", unknown_qrels="keep")
    assert data.qrels["q1"] == {"d1": 1, "missing": 1}
    assert data.report.kept_unknown == {"train.tsv: unknown corpus-id": 1}


def test_missing_split_lists_available(tmp_path):
    with pytest.raises(DataError, match=r"no qrels for split 'test' \(available: train\)"):
        load_beir(write_beir(tmp_path), "test")


def test_missing_folder_gives_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("NEGMINE_DATA", str(tmp_path))
    with pytest.raises(DataError, match="no such data folder"):
        load_data("nope")


def test_dataset_name_resolves_under_negmine_data(tmp_path, monkeypatch):
    write_beir(tmp_path / "mini")
    monkeypatch.setenv("NEGMINE_DATA", str(tmp_path))
    assert load_data("mini", "train").name == "mini"


def test_pairs_jsonl_with_several_positives_and_negatives(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"query": "q a", "positive": "doc a"},
        {"query": "q a", "positive": "doc a2"},
        {"anchor": "q b", "pos": ["doc b"], "neg": ["doc x"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_pairs(path)
    assert len(data.queries) == 2 and len(data.corpus) == 4
    (qa,) = [q for q, t in data.queries.items() if t == "q a"]
    assert [data.doc_text(d) for d in data.positives(qa)] == ["doc a", "doc a2"]


def test_pairs_errors_name_line_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "q", "positive": "p"}\n{"query": "q2"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl, line 2, field 'positive'"):
        load_pairs(path)
    path.write_text('{"query": "", "positive": "p"}\n')
    with pytest.raises(DataError, match=r"line 1, field 'query'"):
        load_pairs(path)


def test_pairs_parquet_and_hf_dataset(tmp_path):
    from datasets import Dataset

    ds = Dataset.from_dict({"anchor": ["q1", "q2"], "positive": ["p1", "p2"]})
    ds.to_parquet(str(tmp_path / "pairs.parquet"))
    assert len(load_pairs(tmp_path / "pairs.parquet").queries) == 2
    data = load_hf_pairs(Dataset.from_dict({"question": ["q1"], "answer": ["p1"]}))
    assert list(data.queries.values()) == ["q1"]
    with pytest.raises(DataError, match="line 2, field 'query'"):
        load_hf_pairs(Dataset.from_dict({"query": ["q1", " "], "positive": ["p1", "p2"]}))


def test_pairs_matched_to_corpus_by_text(tmp_path):
    root = write_beir(tmp_path / "b")
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"query": "q", "positive": "beta"}) + "\n")
    data = load_pairs(path, corpus=root / "corpus.jsonl")
    assert list(data.qrels.values())[0] == {"d2": 1} and len(data.corpus) == 3


def test_real_scifact_counts(scifact_dir):
    train = load_data(scifact_dir, "train")
    assert (len(train.corpus), len(train.split_query_ids)) == (5183, 809)
    assert sum(len(train.positives(q)) for q in train.split_query_ids) == 919


def test_load_data_records_where_the_data_can_be_reloaded_from(tmp_path, monkeypatch):
    """``origin``: what ``load_data(origin, split)`` reloads (an absolute folder or file); None for data built or
    changed in memory, and for a pair file read with a separate corpus."""
    from negmine.evaluation import subsample
    from negmine.testing import toy_data

    root = write_beir(tmp_path / "beir", split="dev")
    monkeypatch.chdir(tmp_path)
    data = load_data("beir", "dev")  # a relative path: recorded absolute
    assert data.origin == str(root.absolute()) and data.split == "dev"
    again = load_data(data.origin, data.split)
    assert (again.corpus, again.queries, again.qrels) == (data.corpus, data.queries, data.qrels)
    assert subsample(data, max_queries=1, seed=0).origin is None  # a sample is not what the folder holds
    assert toy_data().origin is None
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n")
    assert load_data(str(pairs)).origin == str(pairs.absolute())
    assert load_data(str(pairs), corpus=str(root / "corpus.jsonl")).origin is None
