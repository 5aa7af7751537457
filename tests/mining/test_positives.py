"""Several positives per query: margin references, graded qrels, queries without a positive in the corpus, the
drop warning, and the per-positive negatives of the mined record through read_mined, the formats, training and
relabel."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reference import reference_mine  # noqa: E402
from test_miner import FixedEncoder, mined_lists, random_world  # noqa: E402

from negmine.data import RetrievalData  # noqa: E402
from negmine.errors import ConfigError, DataError  # noqa: E402
from negmine.mining import MineConfig, MinedQuery, iter_rows, mine_hard_negatives, read_mined  # noqa: E402

KW = dict(no_cache=True, show_progress_bar=False)


def graded_world(seed=1, n_docs=400, n_queries=30, dim=16):
    """Queries with 3-12 graded qrels (0-3) each; the queries sit near their judged documents."""
    rng = np.random.default_rng(seed)
    corpus = {f"d{i}": {"title": "", "text": f"text {i}"} for i in range(n_docs)}
    corpus["d9"]["text"] = corpus["d8"]["text"]  # a copy
    vecs = rng.standard_normal((n_docs, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    table = {corpus[d]["text"]: vecs[i] for i, d in enumerate(corpus)}
    queries, qrels = {}, {}
    for i in range(n_queries):
        judged = rng.choice(n_docs, size=int(rng.integers(3, 13)), replace=False)
        qrels[f"q{i}"] = {f"d{j}": int(g) for j, g in zip(judged, rng.integers(0, 4, size=judged.size))}
        qrels[f"q{i}"][f"d{judged[0]}"] = 3
        v = vecs[judged].mean(0) + 0.2 * rng.standard_normal(dim).astype(np.float32)
        queries[f"q{i}"] = f"graded query {i}"
        table[queries[f"q{i}"]] = v / np.linalg.norm(v)
    qrels["q0"]["d8"] = 1  # its copy d9 must not become a negative when grade 1 is excluded
    return RetrievalData(corpus, queries, qrels, name="graded", split="test"), FixedEncoder(table)


@pytest.mark.parametrize("reference", ["each", "lowest", "highest"])
@pytest.mark.parametrize("grades", [dict(), dict(positive_grade=2), dict(positive_grade=2, exclude_grade=1)])
def test_graded_qrels_match_reference(reference, grades):
    data, enc = graded_world()
    opts = dict(strategy="margin-pos", margin=0.05, range_max=30, num_negatives=4)
    result = mine_hard_negatives(
        data, enc, too_few="keep", format="triplet", margin_reference=reference, **grades, **opts, **KW
    )
    graded = RetrievalData(
        data.corpus,
        data.queries,
        data.qrels,
        positive_grade=grades.get("positive_grade", 1),
        exclude_grade=grades.get("exclude_grade"),
    )
    query_ids = graded.split_query_ids
    doc_ids = list(data.corpus)
    q_emb = enc.encode_queries([data.queries[q] for q in query_ids])
    d_emb = enc.encode_corpus([data.doc_text(d) for d in doc_ids])
    expected = reference_mine(
        graded,
        doc_ids,
        q_emb,
        d_emb,
        query_ids,
        range_min=0,
        range_max=30,
        num_negatives=4,
        margin=0.05,
        margin_reference=reference,
    )
    assert mined_lists(result.records, reference) == expected
    g = grades.get("positive_grade", 1)
    for r in result.records:
        assert r.positive_ids == [d for d, s in data.qrels[r.query_id].items() if s >= g]
        never = {d for d, s in data.qrels[r.query_id].items() if s >= grades.get("exclude_grade", g)}
        never_texts = {data.doc_text(d) for d in never}
        assert never.isdisjoint(r.negative_ids) and never_texts.isdisjoint(r.negatives)
    settings = result.stats.to_dict()["settings"]
    assert settings == {
        "margin_reference": reference,
        "positive_grade": g,
        "exclude_grade": grades.get("exclude_grade"),
    }
    if "exclude_grade" in grades:
        assert result.stats.excluded["excluded_grade"] > 0


def test_grades_recorded_in_manifest_and_stats(tmp_path):
    data, enc = graded_world()
    mine_hard_negatives(
        data, enc, out=str(tmp_path), positive_grade=2, exclude_grade=1, range_max=30, num_negatives=4, **KW
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    stats = json.loads((tmp_path / "stats.json").read_text())
    for key, value in (("positive_grade", 2), ("exclude_grade", 1), ("margin_reference", "each")):
        assert manifest["config"][key] == value and stats["settings"][key] == value


def test_each_gives_each_positive_its_own_margin():
    data, enc = graded_world()
    kw = dict(strategy="perc-pos", percentage=0.9, range_max=30, num_negatives=4, too_few="drop", **KW)
    each = mine_hard_negatives(data, enc, margin_reference="each", **kw)
    lowest = mine_hard_negatives(data, enc, margin_reference="lowest", **kw)
    assert len(each.records) > len(lowest.records)  # the lowest positive leaves too few for some queries
    assert any(r.positive_negatives is not None for r in each.records)
    for r in each.records:
        for p, score in enumerate(r.positive_scores):
            negs = r.negatives_of(p)
            assert len(negs) == (4 if r.has_row(p) else 0)
            assert all(r.negative_scores[i] < score - abs(score) * (1 - 0.9) + 1e-6 for i in negs)
    pairs = each.stats.to_dict()["pairs"]
    assert pairs["total"] == sum(len(data.positives(q)) for q in data.split_query_ids)
    assert pairs["written"] == each.stats.rows == sum(1 for _ in iter_rows(each.records, "n-tuple"))


@pytest.mark.parametrize("strategy", ["perc-pos", "margin-pos", "range"])
@pytest.mark.parametrize("reference", ["each", "lowest"])
def test_query_without_positive_in_corpus_is_skipped_and_counted(strategy, reference, tmp_path):
    data, enc = random_world()
    data.qrels["q1"] = {"missing-doc": 1}  # unknown_qrels="keep" leaves such rows
    result = mine_hard_negatives(
        data,
        enc,
        out=str(tmp_path),
        strategy=strategy,
        range_max=40,
        num_negatives=3,
        too_few="pad",
        margin_reference=reference,
        **KW,
    )
    assert "q1" not in {r.query_id for r in result.records}
    stats = json.loads((tmp_path / "stats.json").read_text())
    q = stats["queries"]
    assert q["skipped"] == {"no_positive_in_corpus": 1}
    assert q["total"] == 1 + q["enough_negatives"] + q["too_few"] and q["written"] == len(result.records)
    read_mined(tmp_path)  # every written record is readable


def test_drop_warning_names_the_filter_and_flag(tmp_path):

    data, enc = graded_world()
    kw = dict(strategy="perc-pos", percentage=0.5, range_max=30, num_negatives=4, **KW)
    result = mine_hard_negatives(data, enc, margin_reference="lowest", **kw)
    (warning,) = result.stats.warnings
    assert "perc_pos" in warning and "--margin-reference each" in warning and "--too-few" in warning
    assert result.stats.too_few["dropped"] > 0.2 * result.stats.queries
    quiet = mine_hard_negatives(
        data, enc, margin_reference="each", strategy="range", range_max=30, num_negatives=4, **KW
    )
    assert quiet.stats.warnings == []


def test_drop_warning_on_the_console(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from negmine.cli import app

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"alpha beta document number {i}"} for i in range(30)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": f"q{i}", "text": f"alpha beta document number {i}"} for i in range(5)]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(5))
    )
    result = CliRunner().invoke(
        app,
        [
            "mine",
            "--retriever",
            "hashing",
            "--data",
            str(folder),
            "--split",
            "test",
            "--strategy",
            "abs",
            "--max-score",
            "-0.99",
            "--range",
            "0:10",
            "--num-negatives",
            "2",
            "--no-cache",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning: 5 of 5 queries (100%) were not written" in result.output
    assert "score_threshold" in result.output and "--max-score" in result.output
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["warnings"] and "score_threshold" in stats["warnings"][0]


def test_config_checks():
    with pytest.raises(ConfigError, match="Did you mean 'each'"):
        MineConfig(margin_reference="eahc")
    with pytest.raises(ConfigError, match=r"exclude_grade \(2\) must be below positive_grade \(2\)"):
        MineConfig(positive_grade=2, exclude_grade=2)
    with pytest.raises(ConfigError, match="block_candidates must be >= 1"):
        MineConfig(block_candidates=0)


def test_block_size_does_not_change_results():
    data, enc = graded_world()
    kw = dict(strategy="perc-pos", range_max=30, num_negatives=4, sampling="random", seed=5, too_few="pad", **KW)
    kw.update(near_duplicate=0.9)
    small = mine_hard_negatives(data, enc, block_candidates=1, **kw)
    large = mine_hard_negatives(data, enc, block_candidates=10**9, **kw)
    assert small.stats.blocks == len(data.split_query_ids) and large.stats.blocks == 1
    # the same choices; scores agree to float32 rounding (BLAS sums a 1-query and a 30-query batch differently)
    key = lambda r: (r.query_id, r.positive_ids, r.negative_ids, r.positive_negatives)  # noqa: E731
    assert [key(r) for r in small.records] == [key(r) for r in large.records]
    for a, b in zip(small.records, large.records):
        np.testing.assert_allclose(a.negative_scores, b.negative_scores, atol=1e-6)
    for key in ("candidates", "queries", "pairs"):  # every query is searched exactly its own depth
        assert small.stats.to_dict()[key] == large.stats.to_dict()[key]


def test_pad_draws_valid_distinct_documents():
    data, enc = graded_world()
    result = mine_hard_negatives(
        data, enc, strategy="abs", max_score=-0.5, range_max=30, num_negatives=6, too_few="pad", exclude_grade=0, **KW
    )
    assert result.stats.pad_negatives > 0
    for r in result.records:
        judged = set(data.qrels[r.query_id])
        judged_texts = {data.doc_text(d) for d in judged}
        for p in range(len(r.positive_ids)):
            negs = [r.negative_ids[i] for i in r.negatives_of(p)]
            assert len(negs) == len(set(negs)) == 6
            assert judged.isdisjoint(negs) and judged_texts.isdisjoint(data.doc_text(d) for d in negs)


# ---------------------------------------------------------------------------------------------- the mined record
def per_positive_record():
    return MinedQuery(
        query_id="q",
        query="query",
        positive_ids=["a", "b", "c"],
        positives=["A", "B", "C"],
        positive_scores=[0.9, 0.7, 0.5],
        negative_ids=["x", "y", "z"],
        negatives=["X", "Y", "Z"],
        negative_scores=[0.8, 0.6, 0.4],
        positive_negatives=[[0, 1, 2], [1, 2], None],
    )


def test_record_round_trip_and_rows(tmp_path):
    from negmine.data.mined import write_mined

    record = per_positive_record()
    write_mined(tmp_path / "mined.jsonl", [record])
    (back,) = read_mined(tmp_path)
    assert back == record
    assert "positive_negatives" not in MinedQuery("q", "x", ["a"], ["A"], [1.0]).to_dict()
    triplets = list(iter_rows([record], "triplet", output_scores=True))
    assert [(t["positive"], t["negative"], t["scores"]) for t in triplets] == [
        ("A", "X", [0.9, 0.8]),
        ("A", "Y", [0.9, 0.6]),
        ("A", "Z", [0.9, 0.4]),
        ("B", "Y", [0.7, 0.6]),
        ("B", "Z", [0.7, 0.4]),
    ]
    ntuple = list(iter_rows([record], "n-tuple"))
    assert [list(r.values()) for r in ntuple] == [["query", "A", "X", "Y", "Z"], ["query", "B", "Y", "Z"]]
    labeled = list(iter_rows([record], "labeled-list"))
    assert [r["labels"] for r in labeled] == [[1, 0, 0, 0], [1, 0, 0]]
    assert len(list(iter_rows([record], "labeled-pair"))) == 4 + 3
    flag = list(iter_rows([record], "flag"))
    assert [(f["pos"], f["neg"]) for f in flag] == [(["A"], ["X", "Y", "Z"]), (["B"], ["Y", "Z"])]


@pytest.mark.parametrize(
    "value,message",
    [
        ([[0], [1]], "one item per positive"),
        ([[0], [1], [3]], "not a list of indices"),
        ([[0, 0], [], None], "repeats a negative"),
        ([[True], [], None], "not a list of indices"),
    ],
)
def test_read_mined_checks_positive_negatives(tmp_path, value, message):
    obj = {**per_positive_record().to_dict(), "positive_negatives": value}
    (tmp_path / "mined.jsonl").write_text(json.dumps(obj) + "\n")
    with pytest.raises(DataError, match=f"line 1, field 'positive_negatives'.*{message}"):
        read_mined(tmp_path)


def test_training_and_relabel_follow_the_record(tmp_path):
    from negmine.data.mined import write_mined
    from negmine.relabel.arhn import Decision, apply_decisions
    from negmine.training import build_rows, read_records

    record = per_positive_record()
    write_mined(tmp_path / "mined.jsonl", [record])
    (back,) = read_records(tmp_path)
    assert back == record
    rows = build_rows([back], num_negatives=2)
    assert [(r["positive"], r["negative_1"], r["negative_2"]) for r in rows] == [("A", "X", "Y"), ("B", "Y", "Z")]
    rows = build_rows([back])  # the fewest negatives of a row: 2
    assert [len([k for k in r if k.startswith("negative")]) for r in rows] == [2, 2]
    # relabel: y becomes a positive, z is filtered
    decisions = [Decision("keep", False, ""), Decision("relabel", True, ""), Decision("filter", True, "")]
    out = apply_decisions(record, decisions)
    assert out.negative_ids == ["x"] and out.positive_ids == ["a", "b", "c", "y"]
    assert out.positive_negatives == [[0], [], None, []]  # x (0.8) does not score below y (0.6)
    write_mined(tmp_path / "relabeled.jsonl", [out])
    assert read_mined(tmp_path / "relabeled.jsonl") == [out]
