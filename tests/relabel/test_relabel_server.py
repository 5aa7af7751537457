"""End to end through a real llama.cpp OpenAI-compatible server (SmolLM2-135M GGUF on loopback), and the in-process
llama-cpp-python backend on the same GGUF.

SmolLM2-135M is far too weak to judge well; these tests check the plumbing with a real model and a real server:
requests, token accounting, parsing of real outputs, complete records, the cache on a rerun, and P(yes) logprobs.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from negmine.data.mined import read_mined

REPO = Path(__file__).resolve().parents[2]


def scifact_mined(path: Path, scifact_dir: Path, n_queries: int = 2, n_negatives: int = 2) -> Path:
    """A small mined file from real SciFact train data: each query's first positive plus random other abstracts."""
    def read_jsonl(name):
        with gzip.open(scifact_dir / name, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    corpus = {d["_id"]: d for d in read_jsonl("corpus.jsonl.gz")}
    queries = {q["_id"]: q["text"] for q in read_jsonl("queries.jsonl.gz")}
    qrels: dict[str, list[str]] = {}
    with open(scifact_dir / "qrels" / "train.tsv") as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.split("\t")
            if int(score) > 0 and did in corpus:
                qrels.setdefault(qid, []).append(did)
    rng = random.Random(0)
    ids = sorted(corpus)
    records = []
    for qid in sorted(qrels)[:n_queries]:
        pos = qrels[qid][0]
        negs = rng.sample([d for d in ids if d not in qrels[qid]], n_negatives)
        text = lambda d: " ".join(corpus[d]["text"].split()[:40])  # noqa: E731  (short prompts for a tiny model)
        records.append({"query_id": qid, "query": queries[qid], "positive_ids": [pos], "positives": [text(pos)],
                        "positive_scores": [0.8], "negative_ids": negs, "negatives": [text(d) for d in negs],
                        "negative_scores": [0.5, 0.4, 0.3][:n_negatives]})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from negmine.cli import main; main()", "relabel", *args],
                          capture_output=True, text=True, timeout=900, cwd=REPO)


def test_relabel_cli_end_to_end_through_llama_cpp_server(llama_server, scifact_dir, tmp_path):
    mined = scifact_mined(tmp_path / "mined.jsonl", scifact_dir)
    out = tmp_path / "out"
    args = ["--mined", str(mined), "--judge", f"llm:{llama_server}@smollm2", "--out", str(out), "--mode", "both",
            "--snippet-max-tokens", "24", "--concurrency", "2", "--no-progress"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["queries"] == 2 and summary["negatives_in"] == 4
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0  # the server really answered
    assert summary["usage"]["stage1_calls"] == 6 and summary["usage"]["stage2_calls"] == 2
    rows = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert row["judge"] == "arhn:smollm2"
        assert row["answer_status"] in {"verified", "no_answer", "unverified", "unparseable"}
        assert row["decision"] in {"positive", "relabel", "filter", "keep", "unsure"}
        assert row["rank"] is None or 1 <= row["rank"] <= 3
    relabeled = list(read_mined(out / "mined.jsonl"))  # the output is valid input again
    original = list(read_mined(mined))
    for before, after in zip(original, relabeled, strict=True):
        assert after.positive_ids[:1] == before.positive_ids
        assert set(after.negative_ids) <= set(before.negative_ids)
    # the summary counts the rows' decisions, and the output files hold what they say
    decisions = Counter(r["decision"] for r in rows if r["role"] == "negative")
    assert sum(decisions.values()) == 4
    assert (summary["relabeled"], summary["filtered"], summary["kept"], summary["unsure"]) == (
        decisions["relabel"], decisions["filter"], decisions["keep"], decisions["unsure"])
    assert sum(len(r.positive_ids) - 1 for r in relabeled) == decisions["relabel"]
    kept_unsure = decisions["unsure"] - summary["unsure_dropped"]
    assert sum(len(r.negative_ids) for r in relabeled) == decisions["keep"] + kept_unsure
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["judge"]["client"] == {"backend": "openai", "model": "smollm2", "temperature": 0.0,
                                                      "seed": 0}
    # a rerun is answered from the cache: no new tokens, identical judgments
    before = (out / "judgments.jsonl").read_text()
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((out / "summary.json").read_text())
    assert again["prompt_tokens"] == 0 and again["usage"].get("requests", 0) == 0
    assert (out / "judgments.jsonl").read_text() == before


def test_pointwise_p_yes_through_the_server(llama_server):
    from negmine.relabel.clients import OpenAIChatClient
    from negmine.relabel.llm import PointwiseLLMJudge

    judge = PointwiseLLMJudge(OpenAIChatClient(llama_server, "smollm2", concurrency=2))
    judgments = judge.judge("What is the capital of France?",
                            ["Paris is the capital of France.", "Bananas are yellow."])
    assert all(j.score is not None and 0.0 <= j.score <= 1.0 for j in judgments)
    assert sorted(j.rank for j in judgments) == [0, 1]


def test_bad_server_url_fails_with_a_clear_error(tmp_path, scifact_dir):
    from conftest import free_port

    mined = scifact_mined(tmp_path / "mined.jsonl", scifact_dir, n_queries=1)
    result = run_cli("--mined", str(mined), "--judge", f"llm:http://127.0.0.1:{free_port()}/v1@m", "--out",
                     str(tmp_path / "out"), "--max-retries", "1", "--no-progress")
    assert result.returncode == 2
    assert "giving up after 2 attempts" in result.stderr and "Traceback" not in result.stderr


def test_llama_cpp_in_process(smollm2_gguf):
    pytest.importorskip("llama_cpp")
    from negmine.relabel.clients import LlamaCppChatClient
    from negmine.relabel.prompts import pointwise_messages, stage1_messages

    client = LlamaCppChatClient(smollm2_gguf, n_ctx=1024, n_threads=2)
    (completion,) = client.complete_many([stage1_messages("What is the capital of France?",
                                                          "Paris is the capital of France.")], max_tokens=16)
    assert completion.error is None and completion.prompt_tokens > 50 and completion.completion_tokens > 0
    probs = client.yes_probability([pointwise_messages("What is the capital of France?", p)
                                    for p in ("Paris is the capital of France.", "Bananas are yellow.")])
    assert all(p is not None and 0.0 < p < 1.0 for p in probs)
    again = client.yes_probability([pointwise_messages("What is the capital of France?",
                                                       "Paris is the capital of France.")])
    assert again[0] == pytest.approx(probs[0], abs=1e-4)  # deterministic, state reset between prompts
