"""negmine.data.mined: the one mined record, strict reading, byte-stable writing, unknown fields passed through."""

from __future__ import annotations

import json

import pytest

from negmine.data.mined import MINED_FIELDS, MinedRecord, as_records, read_mined, read_records, write_mined
from negmine.errors import DataError

RECORD = {"query_id": "q1", "query": "what is é?", "positive_ids": ["p"], "positives": ["P é"],
          "positive_scores": [0.9], "negative_ids": ["a", "b"], "negatives": ["A", "B"],
          "negative_scores": [0.5, 0.25]}


def test_write_then_read_is_byte_identical_and_keeps_unknown_fields(tmp_path):
    lines = [json.dumps(RECORD, ensure_ascii=False),
             json.dumps({**RECORD, "query_id": "q2", "source": {"split": "train"}, "note": 1}, ensure_ascii=False)]
    path = tmp_path / "mined.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = read_mined(tmp_path)  # the folder works too
    assert records[0].extra == {} and records[1].extra == {"source": {"split": "train"}, "note": 1}
    assert list(records[0].to_dict()) == list(MINED_FIELDS)
    write_mined(tmp_path / "again.jsonl", records)
    assert (tmp_path / "again.jsonl").read_bytes() == path.read_bytes()


def test_to_dict_copies_lists():
    record = MinedRecord.from_dict(RECORD)
    record.to_dict()["negatives"].append("C")
    assert record.negatives == ["A", "B"]


def test_has_scores():
    assert MinedRecord.from_dict(RECORD).has_scores
    unscored = MinedRecord.from_dict({**RECORD, "positive_scores": [], "negative_scores": []})
    assert not unscored.has_scores
    with pytest.raises(DataError, match="positive_scores"):
        MinedRecord.from_dict({**RECORD, "positive_scores": []}, require_scores=True)


def test_as_records_names_the_item():
    with pytest.raises(DataError) as info:
        as_records([RECORD, {**RECORD, "query": ""}], source="<mine>")
    assert (info.value.path, info.value.line, info.value.field) == ("<mine>", 2, "query")
    record = MinedRecord.from_dict(RECORD)
    assert as_records([record])[0] is record


def test_relabel_passes_unknown_fields_through(tmp_path):
    from negmine.relabel.api import relabel_file
    from negmine.relabel.base import Judgment, Label

    class KeepAll:  # ranks the positive first and answers nothing: every negative is kept
        name = "keep-all"

        def get_config_dict(self):
            return {"type": "keep-all"}

        def judge(self, query, passages, num_positives=1):
            return [Judgment(Label.NEGATIVE, rank=i, answer_status="no_answer", judge=self.name)
                    for i in range(len(passages))]

    path = tmp_path / "mined.jsonl"
    path.write_text(json.dumps({**RECORD, "source": "x"}) + "\n")
    relabel_file(path, KeepAll(), tmp_path / "out", show_progress_bar=False)
    assert json.loads((tmp_path / "out" / "mined.jsonl").read_text()) == {**RECORD, "source": "x"}


def test_ntuple_file_rows_become_records_with_text_ids(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"anchor": "q", "positive": "a", "negative_1": "x", "scores": [0.9, 0.1]},
            {"anchor": "q", "positive": "b", "negative_1": "x"}]  # no scores: the merged record has none
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [record] = read_records(path)
    assert (record.positives, record.negatives, record.has_scores) == (["a", "b"], ["x"], False)
    assert record.query_id.startswith("q") and len(set(record.positive_ids)) == 2
