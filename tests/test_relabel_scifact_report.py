"""benchmarks/relabel_scifact.py: the report rebuilt from a finished run (judgments + summary), judge not loaded."""

from __future__ import annotations

import argparse
import json

import pytest

from negmine.relabel.api import RelabelSummary


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("relabel_scifact")


def _rows(query_id: str, ranks: list[int]) -> list[dict]:
    """Judgment rows in presentation order: one positive, then the negatives."""
    best = ranks[0]
    return [{"query_id": query_id, "passage_id": f"{query_id}-{i}", "role": "negative" if i else "positive",
             "rank": rank, "positive_rank": best, "answer": "NO_ANSWER", "answer_status": "no_answer",
             "decision": ("relabel" if rank < best else "keep") if i else "positive", "reason": "r"}
            for i, rank in enumerate(ranks)]


def test_report_only_rebuilds_the_report_from_a_finished_run(script, tmp_path):
    records = [{"query_id": q, "query": f"claim {q}", "positive_ids": [f"{q}-0"], "positives": ["the positive"],
                "negative_ids": [f"{q}-1", f"{q}-2"], "negatives": ["first negative", "second negative"]}
               for q in ("a", "b")]
    rows = _rows("a", [2, 1, 3]) + _rows("b", [1, 2, 3])
    out, results = tmp_path / "run", tmp_path / "results"
    out.mkdir(), results.mkdir()
    (out / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = RelabelSummary(queries=2, positives_in=2, negatives_in=4, relabeled=1, kept=3, wall_seconds=10.0,
                             usage={"stage1_calls": 6, "stage1_seconds": 3.0, "stage2_pairs": 6,
                                    "stage2_seconds": 2.0, "stage1_no_answer": 6})
    config = {"backend": "server http://x", "n_threads": None, "load_start": 1.5, "load_end": 2.5}
    (results / "relabel_scifact_summary.json").write_text(json.dumps({**summary.to_dict(), "config": config}))

    script.report_only(argparse.Namespace(out=out, results=results, threads=2), records)

    report = (results / "relabel_scifact.md").read_text()
    assert "2 of 2 queries done" in report and "Partial" not in report
    assert "| relabeled per 10 negatives | 2.50 |" in report
    assert "| queries whose original positive is ranked first | 0.50 |" in report
    assert "slot 2: 50%, slot 1: 50%" in report
    assert "load average 1.5 at the start of this invocation, 2.5 at this report" in report  # the saved run's
    assert "| stage-1 pairs/s | 2.000 |" in report and "| stage-2 pairs/s | 3.000 |" in report
    saved = json.loads((results / "relabel_scifact_summary.json").read_text())
    assert saved["config"] == config and saved["relabeled"] == 1
    assert (results / "relabel_scifact_spotcheck.md").read_text().count("## ") == 4  # every negative (< 20 exist)
    assert json.loads((results / "relabel_scifact.json").read_text())["data"]["summary"]["relabeled"] == 1
    assert "Command: `python benchmarks/relabel_scifact.py" in report


def test_passage_budget_follows_the_model_context(script):
    assert script.passage_budget("truncated", 4096, 1.5) == {"stage1_words": 120, "stage2_words": 50}
    assert script.passage_budget("full", 32768, 1.5) == {"stage1_words": None, "stage2_words": None}
    small, large = script.passage_budget("context", 4096, 1.5), script.passage_budget("context", 8192, 1.5)
    # stage 1 holds one passage: what n_ctx leaves after the prompt and the snippet, in words
    assert small["stage1_words"] == int((4096 - script.PROMPT_OVERHEAD_TOKENS - script.SNIPPET_MAX_TOKENS) / 1.5)
    # stage 2 holds a window of passages with their snippets: each gets a share
    per_passage = (4096 - script.PROMPT_OVERHEAD_TOKENS - script.RANK_MAX_TOKENS) / script.WINDOW
    assert small["stage2_words"] == int((per_passage - script.SNIPPET_MAX_TOKENS - 10) / 1.5)
    assert large["stage1_words"] > small["stage1_words"] and large["stage2_words"] > small["stage2_words"]
    with pytest.raises(SystemExit, match="n-ctx"):
        script.passage_budget("context", 1024, 1.5)
    records = [{"positives": ["a " * 10], "negatives": ["b " * 300, "c " * 100]}]
    assert script.cut_share(records, 120) == pytest.approx(1 / 3) and script.cut_share(records, None) == 0.0


def test_tokens_per_word_measures_with_the_local_tokenizer(script):
    class Llm:
        def tokenize(self, data, add_bos=False):
            return list(data)  # one token per byte

    class Client:
        _llm = Llm()

    records = [{"positives": ["ab cd"], "negatives": ["efg"]}]
    tpw, source = script.tokens_per_word(Client(), records)
    assert tpw == pytest.approx(8 / 3) and "measured" in source
    assert script.tokens_per_word(object(), records) == (script.FALLBACK_TOKENS_PER_WORD,
                                                         "assumed (no local tokenizer)")


def test_first_negatives_cuts_every_per_negative_field(script):
    from negmine.data.mined import MinedRecord

    record = {"query_id": "q", "query": "claim", "positive_ids": ["p1", "p2"], "positives": ["a", "b"],
              "positive_scores": [0.9, 0.8], "negative_ids": [f"n{i}" for i in range(7)],
              "negatives": [f"neg {i}" for i in range(7)], "negative_scores": [0.7 - i / 100 for i in range(7)],
              "positive_teacher_scores": [0.6, 0.6], "negative_teacher_scores": [0.5] * 7,
              "positive_negatives": [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6]]}
    cut = script.first_negatives(record, 5)
    assert cut["negative_ids"] == ["n0", "n1", "n2", "n3", "n4"] and len(cut["negative_teacher_scores"]) == 5
    assert cut["positive_negatives"] == [[0, 1, 2, 3, 4], [2, 3, 4]]
    MinedRecord.from_dict(cut, "<test>", 1, require_scores=True)  # a valid record (the full run failed here)
    assert record["positive_negatives"][1] == [2, 3, 4, 5, 6]  # the input is not changed
