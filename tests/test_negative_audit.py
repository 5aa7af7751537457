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
    report = audit.report(s, sample, labels_with_ranks(labels), "mined.jsonl")
    assert "| false_negative | 1 | 25.0 %" in report


def labels_with_ranks(labels):
    return [{**row, "rank": i % 2 + 1, "negative_id": f"n{i}", "note": ""} for i, row in enumerate(labels)]
