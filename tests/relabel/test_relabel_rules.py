"""The ARHN relabel/filter rules, the unsure policy, the output record, and strict reading of mined.jsonl."""

from __future__ import annotations

import json

import pytest

from negmine.data.mined import MinedRecord, read_mined
from negmine.errors import ConfigError, DataError
from negmine.relabel.arhn import apply_decisions, decide
from negmine.relabel.base import Judgment, Label


def j(rank, status="no_answer", label=None):
    if label is None:
        label = {"verified": Label.POSITIVE, "unparseable": Label.UNSURE}.get(status, Label.NEGATIVE)
    return Judgment(label, rank=rank, answer_status=status)


# candidate set: positive ranked 2nd; negatives: above it, below with answer, below without, below unparseable
CANDIDATES = [j(1, "verified"), j(0, "verified"), j(2, "verified"), j(3, "no_answer"), j(4, "unparseable"),
              j(5, "unverified")]


@pytest.mark.parametrize("mode,expected", [
    ("both", ["relabel", "filter", "keep", "unsure", "keep"]),
    ("relabel", ["relabel", "keep", "keep", "keep", "keep"]),
    ("filter", ["keep", "filter", "keep", "unsure", "keep"]),
])
def test_rules_per_mode(mode, expected):
    assert [d.decision for d in decide(CANDIDATES, 1, mode)] == expected


def test_unverified_snippet_counts_as_no_answer():
    (decision,) = decide([j(0, "verified"), j(1, "unverified")], 1)
    assert decision.decision == "keep"


def test_above_the_positive_needs_no_answer_to_be_relabeled():
    (decision,) = decide([j(1, "verified"), j(0, "no_answer")], 1)
    assert decision.decision == "relabel" and decision.removed


@pytest.mark.parametrize("on_unsure,removed", [("drop", True), ("keep", False)])
def test_unsure_policy(on_unsure, removed):
    decisions = decide(CANDIDATES, 1, "both", on_unsure)
    assert decisions[3].decision == "unsure" and decisions[3].removed is removed
    assert decisions[1].removed  # filtered ones are removed whatever the policy


def test_missing_ranking_makes_every_negative_unsure():
    judgments = [j(None, "verified"), j(None, "no_answer"), j(None, "verified")]
    assert [d.decision for d in decide(judgments, 1)] == ["unsure", "unsure"]
    assert [d.removed for d in decide(judgments, 1, on_unsure="keep")] == [False, False]


def test_anchor_is_the_best_ranked_original_positive():
    # positives ranked 1 and 4; a negative between them is below the anchor
    judgments = [j(0, "verified"), j(3, "verified"), j(1, "verified"), j(2, "no_answer")]
    assert [d.decision for d in decide(judgments, 2)] == ["filter", "keep"]


def test_pointwise_labels_stand_in_for_snippets():
    judgments = [Judgment(Label.POSITIVE, 0.9, 0), Judgment(Label.POSITIVE, 0.7, 1), Judgment(Label.NEGATIVE, 0.2, 2),
                 Judgment(Label.UNSURE, 0.5, 3)]
    assert [d.decision for d in decide(judgments, 1)] == ["filter", "keep", "unsure"]


def test_bad_choices_are_config_errors():
    with pytest.raises(ConfigError, match="mode='relabell'"):
        decide(CANDIDATES, 1, "relabell")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_unsure"):
        decide(CANDIDATES, 1, "both", "maybe")  # type: ignore[arg-type]


RECORD = {"query_id": "q", "query": "what?", "positive_ids": ["p"], "positives": ["P"], "positive_scores": [0.9],
          "negative_ids": ["a", "b", "c", "d", "e"], "negatives": ["A", "B", "C", "D", "E"],
          "negative_scores": [0.8, 0.7, 0.6, 0.5, 0.4], "extra_field": 1}


def test_apply_decisions_appends_positives_and_drops_negatives():
    record = MinedRecord.from_dict(RECORD)
    out = apply_decisions(record, decide(CANDIDATES, 1, "both")).to_dict()
    assert out["positive_ids"] == ["p", "a"] and out["positives"] == ["P", "A"]
    assert out["positive_scores"] == [0.9, 0.8]
    assert out["negative_ids"] == ["c", "e"] and out["negatives"] == ["C", "E"]
    assert out["negative_scores"] == [0.6, 0.4]
    assert out["extra_field"] == 1
    assert record.positive_ids == ["p"] and record.to_dict() == RECORD  # input untouched


def _write(tmp_path, lines):
    path = tmp_path / "mined.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_mined_accepts_valid_records(tmp_path):
    path = _write(tmp_path, [json.dumps(RECORD), "", json.dumps({**RECORD, "query_id": "q2"})])
    assert [r.query_id for r in read_mined(path)] == ["q", "q2"]


@pytest.mark.parametrize("line,lineno,field", [
    ("{not json", 2, None),
    (json.dumps({k: v for k, v in RECORD.items() if k != "negatives"}), 2, "negatives"),
    (json.dumps({**RECORD, "negative_scores": [0.1]}), 2, "negative_scores"),
    (json.dumps({**RECORD, "positives": [], "positive_ids": [], "positive_scores": []}), 2, "positives"),
    (json.dumps({**RECORD, "query": ""}), 2, "query"),
    (json.dumps({**RECORD, "negative_ids": ["a", 2, "c", "d", "e"]}), 2, "negative_ids"),
    (json.dumps({**RECORD, "negative_scores": [0.1, "x", 0, 0, 0]}), 2, "negative_scores"),
    (json.dumps(RECORD), 2, "query_id"),  # duplicate of line 1
])
def test_read_mined_is_strict(tmp_path, line, lineno, field):
    path = _write(tmp_path, [json.dumps(RECORD), line])
    with pytest.raises(DataError) as info:
        read_mined(path, require_scores=True)
    assert info.value.line == lineno and info.value.field == field
    assert str(path) in str(info.value) and f"line {lineno}" in str(info.value)


def test_read_mined_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_mined(tmp_path / "nope.jsonl")
