"""benchmarks/teacher_length_cap.py: the comparison (pure) and a tiny real run (MiniLM capped at 24 tokens vs 256)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tlc(benchmark_script):
    return benchmark_script("teacher_length_cap")


def test_compare_by_hand(tlc):
    capped = {"q1": {"p": 0.9, "a": 0.5, "b": 0.4}, "q2": {"p": 0.8, "c": 0.1}}
    full = {"q1": {"a": 0.95}}  # the cut negative now outscores the positive
    r = tlc.compare(capped, full, {"q1": {"p"}, "q2": {"p"}}, 0.05)
    assert r["cut_pairs"] == 1 and r["queries_with_cut_pairs"] == 1 and r["cut_positive_pairs"] == 0
    assert r["delta_mean"] == pytest.approx(0.45) and r["abs_delta_max"] == pytest.approx(0.45)
    assert r["queries_top_changed"] == 1 and r["queries_order_changed"] == 1
    assert r["guard_capped"] == 0 and r["guard_full"] == 1
    # Kendall tau of (0.9, 0.5, 0.4) vs (0.9, 0.95, 0.4): pairs (p,a) disagree, (p,b) and (a,b) agree -> 1/3
    assert r["kendall_tau_mean"] == pytest.approx(1 / 3)
    p, q = tlc.softmax([0.9, 0.95, 0.4], 0.05), tlc.softmax([0.9, 0.5, 0.4], 0.05)
    assert r["kl_mean"] == pytest.approx(float(np.sum(p * np.log(p / q))))
    assert r["tv_mean"] == pytest.approx(0.5 * float(np.abs(p - q).sum()))


def test_tiny_real_run(tlc, tmp_path, scifact_dir, minilm_path, embedding_cache_dir):
    from negmine.data import load_data
    from negmine.encoders import EmbeddingCache
    from negmine.scoring import BiEncoderTeacher
    from negmine.testing import beir_sample

    data_dir = beir_sample(scifact_dir, tmp_path / "sample", n_queries=3, n_docs=6)
    data = load_data(data_dir, "train")
    teacher = BiEncoderTeacher(str(minilm_path), max_seq_length=24, cache=EmbeddingCache(embedding_cache_dir))
    docs = sorted(data.corpus)
    items = [(data.queries[q], [data.doc_text(d) for d in docs]) for q in data.split_query_ids]
    table = tmp_path / "teacher_scores.jsonl"
    with open(table, "w") as handle:
        for q, row in zip(data.split_query_ids, teacher.score(items)):
            handle.write(json.dumps({"query_id": q, "scores": dict(zip(docs, row))}) + "\n")
    out = tmp_path / "report" / "teacher_length_cap.md"
    tlc.main(["--table", str(table), "--data", str(data_dir), "--teacher", str(minilm_path), "--cap", "24",
              "--full", "256", "--out", str(out), "--cache-dir", str(embedding_cache_dir)])
    r = json.loads(out.with_suffix(".json").read_text())["data"]
    assert r["check_pairs"] == r["pairs"] == 3 * len(docs) and r["check_max_abs_diff"] < 1e-4
    assert r["long_passages"] > 0 and r["cut_pairs"] == 3 * r["long_passages"]  # every query scores every doc
    assert r["abs_delta_max"] > 0  # 24 tokens of an abstract is not the abstract
    assert "KL(full ‖ capped)" in out.read_text()
