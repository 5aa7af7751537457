"""benchmarks/negative_audit.py: the sample follows training, labels are checked against it, the report counts."""

from __future__ import annotations

import json

import pytest

from negmine.errors import DataError


@pytest.fixture(scope="module")
def audit(benchmark_script):
    return benchmark_script("negative_audit")


def _record(q: str, num_negatives: int) -> dict:
    return {"query_id": q, "query": f"claim {q}", "positive_ids": [f"{q}-p"], "positives": ["pos"],
            "positive_scores": [0.8], "negative_ids": [f"{q}-{i}" for i in range(num_negatives)],
            "negatives": [f"neg {i}" for i in range(num_negatives)],
            "negative_scores": [0.7 - 0.1 * i for i in range(num_negatives)]}


def test_sample_skips_short_queries_and_cuts_to_the_training_negatives(audit):
    records = [_record("a", 3), _record("b", 6), _record("c", 5), _record("d", 2)]
    sample = audit.draw_sample(records, 2, 5, seed=0)
    assert sorted(r["query_id"] for r in sample) == ["b", "c"]
    assert all(len(r["negative_ids"]) == len(r["negatives"]) == len(r["negative_scores"]) == 5 for r in sample)
    assert audit.draw_sample(records, 2, 5, seed=0) == sample
    with pytest.raises(DataError, match="only 2 queries have 5 negatives"):
        audit.draw_sample(records, 3, 5, seed=0)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_labels_are_checked_against_the_sample(audit, tmp_path):
    sample = audit.draw_sample([_record("a", 2), _record("b", 2)], 2, 2, seed=1)
    rows = audit.label_template(sample)
    for row, label in zip(rows, ("false_negative", "related", "off_topic", "off_topic")):
        row["label"] = label
    path = tmp_path / "labels.jsonl"
    _write(path, rows)
    assert audit.check_labels(path, sample) == rows

    _write(path, [rows[0], {**rows[1], "negative_id": "zzz"}, *rows[2:]])
    with pytest.raises(DataError, match=r"line 2.*negative_id"):
        audit.check_labels(path, sample)
    _write(path, [*rows[:3], {**rows[3], "label": "maybe"}])
    with pytest.raises(DataError, match=r"line 4.*label"):
        audit.check_labels(path, sample)
    _write(path, rows[:3])
    with pytest.raises(DataError, match="3 labels for a sample of 4"):
        audit.check_labels(path, sample)
    path.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1"):
        audit.check_labels(path, sample)


def test_summary_counts_labels_scores_and_query_patterns(audit):
    sample = [_record("a", 2), _record("b", 2)]
    labels = [{"query_id": "a", "label": "false_negative"}, {"query_id": "a", "label": "related"},
              {"query_id": "b", "label": "off_topic"}, {"query_id": "b", "label": "off_topic"}]
    s = audit.summarize(sample, labels)
    assert s["counts"] == {"false_negative": 1, "borderline": 0, "related": 1, "off_topic": 2}
    assert s["shares"]["off_topic"] == 0.5
    assert s["mean_score"]["false_negative"] == pytest.approx(0.7)
    assert s["mean_score"]["off_topic"] == pytest.approx(0.65)
    assert s["mean_score"]["borderline"] is None
    assert (s["queries_with_false_negative"], s["queries_all_off_topic"]) == (1, 1)
    low, high = s["intervals"]["off_topic"]
    assert low < 0.5 < high
    assert audit.wilson_interval(0, 80)[0] == 0.0
    # the query bootstrap draws whole queries: the false negative sits in query a, so the resampled rate is 0 (b, b),
    # 1/4 (a, b) or 1/2 (a, a), and the interval spans [0, 0.5]
    assert s["query_intervals"]["false_negative"] == pytest.approx((0.0, 0.5))
    report = audit.report(s, sample, labels_with_ranks(labels), "mined.jsonl")
    assert "| false_negative | 1 | 25.0 % | [0.0, 50.0] |" in report


def labels_with_ranks(labels):
    return [{**row, "rank": i % 2 + 1, "negative_id": f"n{i}", "note": ""} for i, row in enumerate(labels)]


class TableYesClient:
    """P(yes) by passage text: a stand-in for the LLM's next-token reader."""

    concurrency = 1

    def __init__(self, table):
        self.table = table

    def get_config_dict(self):
        return {"backend": "table"}

    def yes_probability(self, conversations):
        return [next((p for text, p in self.table.items() if text in m[-1]["content"]), None)
                for m in conversations]


def test_judge_mode_scores_positives_and_labelled_negatives_and_counts_what_a_filter_removes(audit):
    from negmine.relabel.llm import PointwiseLLMJudge

    sample = [_record("a", 2), _record("b", 2)]
    sample[1]["positives"] = ["pos b"]
    for r in sample:
        r["negatives"] = [f"neg {r['query_id']}{i}" for i in range(2)]
    labels = [{"query_id": "a", "negative_id": "a-0", "label": "false_negative"},
              {"query_id": "a", "negative_id": "a-1", "label": "related"},
              {"query_id": "b", "negative_id": "b-0", "label": "off_topic"},
              {"query_id": "b", "negative_id": "b-1", "label": "off_topic"}]
    # query a: positive 0.9 beats its negatives; query b: an off-topic negative (0.95) beats the positive (0.6)
    table = {"pos b": 0.6, "pos": 0.9, "neg a0": 0.7, "neg a1": 0.2, "neg b0": 0.95, "neg b1": 0.1}
    rows = audit.judge_pairs(sample, labels, PointwiseLLMJudge(TableYesClient(table)))
    assert [(r["doc_id"], r["kind"], r["judge_score"]) for r in rows] == [
        ("a-p", "positive", 0.9), ("a-0", "false_negative", 0.7), ("a-1", "related", 0.2),
        ("b-p", "positive", 0.6), ("b-0", "off_topic", 0.95), ("b-1", "off_topic", 0.1)]
    s = audit.judge_summary(rows)
    assert s["queries_positive_first"] == 1
    # positives {0.9, 0.6} vs not relevant {0.2, 0.95, 0.1}: 4 of 6 comparisons won
    assert s["auc_positive"] == pytest.approx(4 / 6)
    assert s["auc_relevant"] == pytest.approx(6 / 9)
    assert (s["filtered"], s["negatives"]) == (2, 4)
    # the false negative scores 0.7 (judge) / 0.7 (teacher); not relevant: judge 0.2, 0.95, 0.1; teacher 0.6, 0.7, 0.6
    assert (s["catch_all_judge"], s["catch_all_teacher"]) == (1, 1)
    assert s["called_positive"]["false_negative"] == 1 and s["called_positive"]["off_topic"] == 1
    report = audit.judge_report(s, rows, "table", "labels.jsonl", 0.5)
    assert "remove 2 of 4 negatives, 1 of them among the 1 false negatives" in report
    assert "| a | a-0 | false_negative | 0.700 | 0.700 | positive |" in report


def test_auc_counts_ties_as_half_and_needs_both_groups(audit):
    assert audit.auc([1.0, 0.5], [0.5]) == pytest.approx(0.75)
    assert audit.auc([], [0.1]) is None


def test_mine_mode_writes_the_audit_mining_and_the_report_names_it(audit, scifact_dir, tmp_path):
    from negmine.testing import beir_sample

    data = beir_sample(scifact_dir, tmp_path / "scifact", n_queries=12, n_docs=60)
    mined = audit.mine(data, "hashing", tmp_path / "mine" / "mined.jsonl")
    described = audit.mined_with(mined)
    # the settings of the audited file: every query kept, negatives measured against the lowest positive
    assert "retriever hashing" in described and "margin_reference lowest" in described
    assert "too_few keep" in described and "num_negatives 8" in described
    from negmine.data.mined import read_mined

    records = [m.to_dict() for m in read_mined(mined)]
    assert len(records) == 12
    sample = audit.draw_sample(records, 2, 3, seed=0)
    labels = [{**row, "label": "off_topic"} for row in audit.label_template(sample)]
    text = audit.report(audit.summarize(sample, labels), sample, labels, mined, "hashing")
    assert f"Mined file: `{mined}` (hashing as teacher; retriever hashing, split train" in text
    assert audit.mined_with(tmp_path / "elsewhere" / "mined.jsonl") == "no manifest.json beside it"
