"""Teacher scoring without real models: the record fields, the guard, ensembles, spec parsing, block caching and
the cache reuse of a bi-encoder teacher; `negmine train --scores teacher` reads what `negmine score` writes."""

from __future__ import annotations

import json
import math

import pytest

from negmine.data.mined import MinedRecord as MinedQuery
from negmine.data.mined import read_mined
from negmine.errors import ConfigError, DataError
from negmine.scoring import (
    BiEncoderTeacher,
    EnsembleTeacher,
    ScoreConfig,
    score_items,
    score_mined,
    split_teacher_spec,
    zscore,
)


class LengthTeacher:
    """Scores a passage by its word overlap with the query (deterministic, no model); counts its calls."""

    def __init__(self, bonus: float = 0.0) -> None:
        self.bonus, self.calls = bonus, 0

    def fingerprint(self):
        return {"kind": "test", "bonus": self.bonus}

    def score(self, items):
        self.calls += 1
        return [[float(len(set(q.split()) & set(p.split())) + self.bonus) for p in ps] for q, ps in items]


def write_mined(path, records):
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")
    return path


RECORDS = [
    MinedQuery("q1", "red apple pie", ["d1"], ["red apple pie recipe"], [0.9], ["d2", "d3", "d4"],
               ["red apple pie with red apple", "green pear", "apple"], [0.8, 0.5, 0.4]),
    MinedQuery("q2", "blue sky", ["d5", "d6"], ["blue sky today", "sky"], [0.7, 0.6], ["d7"], ["ocean"], [0.3]),
]


def test_score_keeps_retriever_scores_and_adds_teacher_scores(tmp_path):
    mined = write_mined(tmp_path / "mined.jsonl", RECORDS)
    result = score_mined(ScoreConfig(mined=str(mined), teacher="test", out=str(tmp_path / "out")),
                         teacher=LengthTeacher())
    records = read_mined(tmp_path / "out" / "mined.jsonl")
    assert [r.positive_scores for r in records] == [[0.9], [0.7, 0.6]]  # the retriever's, unchanged
    assert [r.negative_scores for r in records] == [[0.8, 0.5, 0.4], [0.3]]
    assert records[0].positive_teacher_scores == [3] and records[0].negative_teacher_scores == [3, 0, 1]
    assert records[1].positive_teacher_scores == [2, 1] and records[1].negative_teacher_scores == [0]
    assert result.stats["teacher_above_positive"] == 0 and result.stats["removed_by_guard"] == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stage"] == "score" and manifest["config"]["teacher_fingerprint"] == {"kind": "test", "bonus": 0.0}


def test_guard_drops_negatives_the_teacher_puts_above_the_lowest_positive(tmp_path):
    records = [RECORDS[0], MinedQuery("q2", "blue sky", ["d5", "d6"], ["blue sky today", "sky"], [0.7, 0.6],
                                      ["d7", "d8"], ["ocean", "blue sky sky blue"], [0.3, 0.2])]
    mined = write_mined(tmp_path / "mined.jsonl", records)
    unguarded = score_mined(ScoreConfig(mined=str(mined), teacher="t", out=str(tmp_path / "a")),
                            teacher=LengthTeacher())
    assert unguarded.stats["teacher_above_positive"] == 1 and len(unguarded.records[1].negatives) == 2
    guarded = score_mined(ScoreConfig(mined=str(mined), teacher="t", out=str(tmp_path / "b"),
                                      guard="teacher-above-positive"), teacher=LengthTeacher())
    assert guarded.stats["removed_by_guard"] == 1
    # q2: lowest positive "sky" scores 1; "blue sky sky blue" scores 2 > 1 -> dropped with its id and both scores.
    # q1: "red apple pie with red apple" ties the positive (3 = 3): a tie is kept
    second = read_mined(tmp_path / "b" / "mined.jsonl")[1]
    assert second.negative_ids == ["d7"] and second.negatives == ["ocean"] and second.negative_scores == [0.3]
    assert second.negative_teacher_scores == [0]
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["removed_by_guard"] == 1 and stats["queries_with_teacher_above_positive"] == 1
    assert stats["negatives"] == 4


def test_zscore_and_ensemble_combination():
    assert zscore([1.0, 2.0, 3.0]) == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert zscore([5.0, 5.0]) == [0.0, 0.0] and zscore([]) == []
    a, b = LengthTeacher(), LengthTeacher(bonus=100.0)
    items = [("red apple pie", ["red apple pie recipe", "green pear", "apple"])]
    combined = EnsembleTeacher([a, b], [0.25, 0.75]).score(items)[0]
    # a shift (bonus) does not survive the per-query z-score: both members agree, weights sum to 1
    assert combined == pytest.approx(zscore([3, 0, 1]))
    assert EnsembleTeacher([a, b], [1.0, 1.0]).fingerprint()["members"][1] == {"kind": "test", "bonus": 100.0}
    with pytest.raises(ConfigError, match="2 weights for 1"):
        EnsembleTeacher([a], [1.0, 2.0])


def test_ensemble_members_are_scored_and_cached_one_by_one(tmp_path, monkeypatch):
    from negmine import scoring

    pairwise, bi_encoder = LengthTeacher(), LengthTeacher(bonus=1.0)
    monkeypatch.setattr(scoring, "_is_pairwise", lambda teacher: teacher is pairwise)
    items = [(f"q {i}", [f"q {i} x", "y", f"q {i}"]) for i in range(5)]
    ensemble = EnsembleTeacher([pairwise, bi_encoder], [0.5, 0.5])
    assert score_items(ensemble, items, tmp_path, block_size=2) == ensemble.score(items)
    assert bi_encoder.calls == 2  # once inside score_items (all items at once), once by ensemble.score
    assert pairwise.calls == 3 + 1  # three blocks, then once by ensemble.score


@pytest.mark.parametrize("spec,members,weights", [
    ("embeddinggemma", ["embeddinggemma"], None),
    ("cross-encoder:BAAI/bge-reranker-v2-m3", ["cross-encoder:BAAI/bge-reranker-v2-m3"], None),
    ("embeddinggemma,mpnet", ["embeddinggemma", "mpnet"], None),
    ("embeddinggemma,mpnet:0.7,0.3", ["embeddinggemma", "mpnet"], [0.7, 0.3]),
    ("llm-yes:/m/x.gguf,cross-encoder:/m/ce:2,1", ["llm-yes:/m/x.gguf", "cross-encoder:/m/ce"], [2.0, 1.0]),
])
def test_split_teacher_spec(spec, members, weights):
    assert split_teacher_spec(spec) == (members, weights)


@pytest.mark.parametrize("spec,match", [("", "empty"), ("a,,b", "empty ensemble member"),
                                        ("a,b:-1,2", "must be finite")])
def test_split_teacher_spec_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        split_teacher_spec(spec)


def test_llm_two_stage_judge_is_refused_as_a_teacher(tmp_path):
    from negmine.scoring import load_teacher

    with pytest.raises(ConfigError, match="llm-yes"):
        load_teacher("llm:http://127.0.0.1:1/v1@m", ScoreConfig(), tmp_path)


def test_bad_guard_and_block_size_are_config_errors():
    with pytest.raises(ConfigError, match="guard 'above'"):
        ScoreConfig(guard="above")
    with pytest.raises(ConfigError, match="block_size must be >= 1"):
        ScoreConfig(block_size=0)


def test_block_cache_serves_finished_blocks_and_recomputes_changed_ones(tmp_path, monkeypatch):
    from negmine import scoring

    monkeypatch.setattr(scoring, "_is_pairwise", lambda teacher: True)
    teacher = LengthTeacher()
    items = [(f"q {i}", [f"q {i} x", "y"]) for i in range(5)]
    first = score_items(teacher, items, tmp_path, block_size=2)
    assert teacher.calls == 3 and len(list((tmp_path / "teacher_cache").rglob("block_*.json"))) == 3
    again = score_items(teacher, items, tmp_path, block_size=2)
    assert again == first and teacher.calls == 3
    changed = items[:4] + [("q 4", ["other"])]
    score_items(teacher, changed, tmp_path, block_size=2)
    assert teacher.calls == 4  # only the last block's items changed


def test_bi_encoder_teacher_reuses_the_corpus_cache_entry(tmp_path, toy):
    from negmine.encoders import EmbeddingCache, load_encoder
    from negmine.retrieve import Retriever

    cache = EmbeddingCache(tmp_path / "cache")
    Retriever(load_encoder("hashing"), index_backend="exact", cache=cache, show_progress_bar=False).build(toy)
    encoded = cache.encoded
    texts = [toy.doc_text(d) for d in toy.corpus]
    teacher = BiEncoderTeacher("hashing", cache=cache, corpus_texts=texts)
    items = [(toy.queries[q], [toy.doc_text(d) for d in list(toy.corpus)[:3]]) for q in list(toy.queries)[:2]]
    scores = teacher.score(items)
    assert cache.encoded == encoded + 2  # only the two queries; the corpus came from the retriever's entry
    plain = BiEncoderTeacher("hashing", cache=None).score(items)
    assert [s for row in scores for s in row] == pytest.approx([s for row in plain for s in row], abs=1e-6)
    assert teacher.fingerprint()["kind"] == "bi-encoder"


def test_teacher_fields_are_validated(tmp_path):
    good = RECORDS[0].to_dict()
    assert "positive_teacher_scores" not in good  # unscored records do not carry the fields
    path = tmp_path / "mined.jsonl"
    for broken, field in [({"positive_teacher_scores": [1.0]}, "negative_teacher_scores"),
                          ({"positive_teacher_scores": [1.0], "negative_teacher_scores": [1.0]},
                           "negative_teacher_scores"),
                          ({"positive_teacher_scores": ["x"], "negative_teacher_scores": [1, 2, 3]},
                           "positive_teacher_scores")]:
        path.write_text(json.dumps({**good, **broken}) + "\n")
        with pytest.raises(DataError, match=rf"mined.jsonl, line 1, field '{field}'"):
            read_mined(path)


def test_train_reads_teacher_or_retriever_scores(tmp_path):
    from negmine.training import build_rows, read_records

    mined = write_mined(tmp_path / "mined.jsonl", RECORDS)
    with pytest.raises(DataError, match="no teacher scores"):
        read_records(mined, "teacher")
    score_mined(ScoreConfig(mined=str(mined), teacher="t", out=str(tmp_path / "out")), teacher=LengthTeacher())
    scored = tmp_path / "out" / "mined.jsonl"
    teacher_rows = build_rows(read_records(scored, "teacher"), max_positives=2, num_negatives=1)
    retriever_rows = build_rows(read_records(scored, "retriever"), max_positives=2, num_negatives=1)
    assert teacher_rows[0]["scores"][0] == 3 and math.isnan(teacher_rows[0]["scores"][1])
    assert teacher_rows[1]["scores"] == [2, 1, 0]
    assert retriever_rows[1]["scores"] == [0.7, 0.6, 0.3]


def test_train_config_checks_scores_and_reference():
    from negmine.training import TrainConfig

    with pytest.raises(ConfigError, match="scores='student'"):
        TrainConfig(data="x", scores="student")
    with pytest.raises(ConfigError, match="takes no reference model"):
        TrainConfig(data="x", loss="listwise", reference_model="minilm")


def test_cross_encoder_teacher_gives_raw_logits_and_joins_an_ensemble(tmp_path, toy):
    import numpy as np
    import torch

    from negmine.testing import tiny_cross_encoder

    model = tiny_cross_encoder(tmp_path / "ce")
    records = []
    for k, qid in enumerate(list(toy.queries)[:4]):
        positives = toy.positives(qid)
        negatives = [d for d in list(toy.corpus)[k:k + 4] if d not in positives][:3]
        records.append(MinedQuery(qid, toy.queries[qid], positives, [toy.doc_text(d) for d in positives], [],
                                  negatives, [toy.doc_text(d) for d in negatives], []))
    mined = write_mined(tmp_path / "mined.jsonl", records)
    cfg = ScoreConfig(mined=str(mined), teacher=f"cross-encoder:{tmp_path / 'ce'}", out=str(tmp_path / "out"),
                      max_seq_length=128, block_size=3, show_progress_bar=False)
    result = score_mined(cfg)
    for r in result.records:
        pairs = [(r.query, p) for p in (*r.positives, *r.negatives)]
        logits = model.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True)
        np.testing.assert_allclose(r.positive_teacher_scores + r.negative_teacher_scores, logits, atol=1e-5)
    assert any(s < 0 or s > 1 for r in result.records for s in r.positive_teacher_scores + r.negative_teacher_scores)
    assert len(list((tmp_path / "out" / "teacher_cache").rglob("block_*.json"))) == 2  # 4 queries, blocks of 3
    assert result.fingerprint["kind"] == "cross-encoder" and len(result.fingerprint["weights_sha256"]) == 64

    both = score_mined(ScoreConfig(mined=str(mined), teacher=f"hashing,cross-encoder:{tmp_path / 'ce'}:1,3",
                                   out=str(tmp_path / "ens"), max_seq_length=128, no_cache=True,
                                   show_progress_bar=False))
    assert both.fingerprint["weights"] == [1.0, 3.0] and both.fingerprint["members"][0]["kind"] == "bi-encoder"
    for r in both.records:
        scores = r.positive_teacher_scores + r.negative_teacher_scores
        assert abs(sum(scores)) < 1e-9  # a weighted sum of z-scores sums to 0 over the query's passages


def test_score_table_replays_a_teacher_by_id_without_loading_it(tmp_path):
    """Every run writes teacher_scores.jsonl (ids and numbers only); `scores:FILE` replays it to the same mined.jsonl,
    with the producing teacher's fingerprint carried in its own."""
    mined = write_mined(tmp_path / "mined.jsonl", RECORDS)
    first = score_mined(ScoreConfig(mined=str(mined), teacher="test", out=str(tmp_path / "a"),
                                    guard="teacher-above-positive"), teacher=LengthTeacher())
    table = tmp_path / "a" / "teacher_scores.jsonl"
    lines = [json.loads(line) for line in table.read_text(encoding="utf-8").splitlines()]
    # the guard's removals stay in the table: it records the teacher, not the filter
    assert lines[0] == {"query_id": "q1", "scores": {"d1": 3.0, "d2": 3.0, "d3": 0.0, "d4": 1.0}}
    assert "red" not in table.read_text(encoding="utf-8")  # no text
    replay = score_mined(ScoreConfig(mined=str(mined), teacher=f"scores:{table}", out=str(tmp_path / "b"),
                                     guard="teacher-above-positive"))
    assert (tmp_path / "b" / "mined.jsonl").read_bytes() == (tmp_path / "a" / "mined.jsonl").read_bytes()
    assert replay.stats == first.stats
    assert replay.fingerprint["kind"] == "scores" and replay.fingerprint["source"] == {"kind": "test", "bonus": 0.0}
    # a folder works too, and a table joins an ensemble like any teacher
    both = score_mined(ScoreConfig(mined=str(mined), teacher=f"scores:{tmp_path / 'a'},scores:{table}",
                                   out=str(tmp_path / "c")))
    assert both.records[0].positive_teacher_scores == pytest.approx([zscore([3, 3, 0, 1])[0]])


def test_score_table_errors_name_file_line_and_pair(tmp_path):
    mined = write_mined(tmp_path / "mined.jsonl", RECORDS)
    table = tmp_path / "t.jsonl"
    table.write_text('{"query_id": "q1", "scores": {"d1": 1, "d2": 0, "d3": 0}}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"query 'q1' has no score for passage\(s\) 'd4'"):
        score_mined(ScoreConfig(mined=str(mined), teacher=f"scores:{table}", out=str(tmp_path / "o")))
    table.write_text('{"query_id": "q1", "scores": {"d1": 1, "d2": 0, "d3": 0, "d4": 2}}\n', encoding="utf-8")
    with pytest.raises(DataError, match="no scores for query 'q2'"):
        score_mined(ScoreConfig(mined=str(mined), teacher=f"scores:{table}", out=str(tmp_path / "o")))
    for bad, match in [('{"query_id": "q1", "scores": {"d1": "x"}}', "line 2: field 'scores'"),
                       ('{"query_id": 3, "scores": {}}', "line 2: field 'query_id'"),
                       ('{"query_id": "q1", "scores": {}}', "line 2: query 'q1' appears twice"),
                       ("{nope", "line 2: not JSON")]:
        table.write_text('{"query_id": "q1", "scores": {"d1": 1}}\n' + bad + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=match):
            score_mined(ScoreConfig(mined=str(mined), teacher=f"scores:{table}", out=str(tmp_path / "o")))
    with pytest.raises(ConfigError, match="not found"):
        score_mined(ScoreConfig(mined=str(mined), teacher=f"scores:{tmp_path / 'missing.jsonl'}",
                                out=str(tmp_path / "o")))
    with pytest.raises(ConfigError, match="names no score table"):
        score_mined(ScoreConfig(mined=str(mined), teacher="scores:", out=str(tmp_path / "o")))
