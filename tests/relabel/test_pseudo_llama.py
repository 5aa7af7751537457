"""``negmine pseudo --method llm`` with a real in-process model (SmolLM2-135M GGUF through llama.cpp) on SciFact
documents: the chat backends the judges use also write queries, cached so a rerun asks nothing."""

from __future__ import annotations

import json

import pytest

from negmine.pseudo import GENERATIONS, PseudoConfig, make_pseudo_queries


def test_llama_cpp_writes_cached_pseudo_queries_for_scifact_documents(smollm2_gguf, scifact_dir, tmp_path):
    pytest.importorskip("llama_cpp")
    source = tmp_path / "scifact"
    (source / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl.gz", "queries.jsonl.gz", "qrels/test.tsv"):
        (source / name).symlink_to(scifact_dir / name)
    cfg = PseudoConfig(data=str(source), out=str(tmp_path / "out"), method="llm", model=str(smollm2_gguf), n=3,
                       n_ctx=1024, n_threads=2, max_passage_words=120, show_progress_bar=False)
    result = make_pseudo_queries(cfg)
    assert result.stats["documents"] == 3 and result.stats["queries"] + result.stats["unusable"] == 3
    assert result.stats["queries"] >= 1  # a 135M model still answers with something query-like
    for query in result.queries:
        assert 0 < len(query.text.split()) <= 64 and query.query_id == f"pseudo-{query.doc_id}"
    cached = [json.loads(line) for line in (tmp_path / "out" / GENERATIONS).read_text().splitlines()]
    assert len(cached) == 3 and all(c["value"]["completion_tokens"] > 0 for c in cached)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["generator"]["backend"] == "llama-cpp" and manifest["seed"] == 0
    # the rerun is served from the cache: same queries, no new answer
    again = make_pseudo_queries(cfg)
    assert [q.text for q in again.queries] == [q.text for q in result.queries]
    assert len((tmp_path / "out" / GENERATIONS).read_text().splitlines()) == 3
