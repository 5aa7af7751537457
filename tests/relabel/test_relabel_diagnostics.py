"""Ranking diagnostics: which presentation slot the judge ranks first, and the warning for a judge that ranks by
position instead of content (seen for real with Qwen2.5-Coder-1.5B on SciFact: slot 2 first for 82 % of queries)."""

from __future__ import annotations

import json
import logging
import re

from test_relabel_pipeline import records, truth, write_mined

from negmine.relabel.api import first_choice_slots, judge_warning, ranking_diagnostics, relabel_file
from negmine.relabel.llm import ARHNJudge
from negmine.relabel.testing import OracleScript, ScriptedChatClient

# 24 queries, each with a positive that the oracle ranks first and 3 negatives
DATA = {f"q{i}": (f"question {i}?", [(f"p{i}", f"passage {i} answers question {i}.", 0.9, None)]
                  + [(f"n{i}-{j}", f"passage {i}-{j} is about something else.", 0.5 - 0.1 * j, None)
                     for j in range(3)])
        for i in range(24)}


def _rows(query_id, ranks, positives=1):
    best = None if None in ranks else min(ranks[:positives])
    return [{"query_id": query_id, "role": "positive" if i < positives else "negative", "rank": rank,
             "positive_rank": best} for i, rank in enumerate(ranks)]


def test_first_choice_slots_and_diagnostics():
    rows = (_rows("a", [2, 1, 3]) + _rows("b", [3, 1, 2]) + _rows("c", [1, 2, 3])
            + _rows("d", [2, 1, 3], positives=2) + _rows("e", [None, None, None]))
    assert first_choice_slots(rows) == {2: 3, 1: 1}  # query e's ranking failed: no first choice
    assert ranking_diagnostics(rows) == {"ranked_queries": 4, "positive_ranked_first": 0.5,
                                         "first_choice_slots": {"1": 1, "2": 3}}


def _diag(ranked, positive_first, slots):
    return {"ranked_queries": ranked, "positive_ranked_first": positive_first, "first_choice_slots": slots}


def test_judge_warning_needs_few_positives_first_and_one_dominant_slot():
    assert judge_warning(_diag(100, 0.10, {"2": 82, "6": 15, "4": 3})) is not None  # the 1.5B judge's figures
    assert "slot 2 first for 82%" in judge_warning(_diag(100, 0.10, {"2": 82, "6": 15, "4": 3}))
    assert judge_warning(_diag(100, 0.90, {"1": 90, "2": 10})) is None  # reads content
    assert judge_warning(_diag(100, 0.40, {"1": 40, "2": 20, "3": 20, "4": 20})) is None  # many false negatives
    assert judge_warning(_diag(10, 0.0, {"2": 10})) is None  # too few queries to tell


def _position_biased(messages):
    content = messages[-1]["content"]
    if "Rank the" not in content:
        return "NO_ANSWER"
    n = len(re.findall(r"<passage>", content))
    return " > ".join(f"[{i}]" for i in [2, 1, *range(3, n + 1)])


def test_relabel_file_warns_about_a_position_biased_judge(tmp_path, caplog):
    mined = write_mined(tmp_path / "mined.jsonl", records(DATA))
    biased = ARHNJudge(ScriptedChatClient(_position_biased), max_passage_words=None)
    with caplog.at_level(logging.WARNING, logger="negmine.relabel.api"):
        summary = relabel_file(mined, biased, tmp_path / "biased", show_progress_bar=False)
    assert summary["ranking"] == {"ranked_queries": 24, "positive_ranked_first": 0.0, "first_choice_slots": {"2": 24}}
    assert len(summary["warnings"]) == 1 and "ranks by position" in summary["warnings"][0]
    assert "ranks by position" in caplog.text
    assert json.loads((tmp_path / "biased" / "summary.json").read_text())["warnings"] == summary["warnings"]

    oracle = ARHNJudge(ScriptedChatClient(OracleScript(truth(DATA))), max_passage_words=None)
    summary = relabel_file(mined, oracle, tmp_path / "oracle", show_progress_bar=False)
    assert summary["ranking"]["positive_ranked_first"] == 1.0 and "warnings" not in summary
