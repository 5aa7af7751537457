"""`negmine score` with real models on a small SciFact sample: MiniLM as a bi-encoder teacher (scores equal to
sentence-transformers' own cosines under a --max-seq-length cap), SmolLM2 (GGUF, in-process) as an `llm-yes`
teacher, and a SIGKILLed `negmine score` whose rerun gives byte-identical output."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from negmine.mining.formats import MinedQuery, read_mined

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scifact_sample(tmp_path_factory, scifact_dir) -> Path:
    """6 SciFact train queries, their positives and 3 seeded random negatives each (retriever scores omitted)."""
    from negmine.data import load_data

    data = load_data(scifact_dir, "train")
    rng = random.Random(0)
    doc_ids = list(data.corpus)
    records = []
    for qid in data.split_query_ids[:6]:
        positives = data.positives(qid)
        negatives = [d for d in rng.sample(doc_ids, 5) if d not in positives][:3]
        records.append(MinedQuery(qid, data.queries[qid], positives, [data.doc_text(d) for d in positives], [],
                                  negatives, [data.doc_text(d) for d in negatives], []))
    path = tmp_path_factory.mktemp("scifact_sample") / "mined.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")
    return path


def negmine(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "negmine", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kwargs)


def test_bi_encoder_teacher_equals_sentence_transformers_cosines(scifact_sample, minilm_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "out"
    result = negmine("score", "--mined", str(scifact_sample), "--teacher", str(minilm_path), "--max-seq-length",
                     "64", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    records = read_mined(out / "mined.jsonl")
    model = SentenceTransformer(str(minilm_path), device="cpu")
    model.max_seq_length = 64
    for r in records:
        q = model.encode([r.query], normalize_embeddings=True)
        p = model.encode([*r.positives, *r.negatives], normalize_embeddings=True)
        expected = (p @ q[0]).tolist()
        np.testing.assert_allclose(r.positive_teacher_scores + r.negative_teacher_scores, expected, atol=2e-5)
    positives = np.mean([s for r in records for s in r.positive_teacher_scores])
    negatives = np.mean([s for r in records for s in r.negative_teacher_scores])
    assert positives > negatives + 0.2  # MiniLM tells SciFact evidence from random abstracts
    fingerprint = json.loads((out / "manifest.json").read_text())["config"]["teacher_fingerprint"]
    assert fingerprint["kind"] == "bi-encoder" and fingerprint["max_seq_length"] == 64
    assert len(fingerprint["weights_sha256"]) == 64


def test_llm_yes_teacher_scores_probabilities(scifact_sample, smollm2_gguf, llama_cpp, tmp_path):
    from negmine.scoring import ScoreConfig, score_mined

    result = score_mined(ScoreConfig(mined=str(scifact_sample), teacher=f"llm-yes:{smollm2_gguf}",
                                     out=str(tmp_path / "out"), n_ctx=1024, n_threads=2, max_passage_words=40,
                                     show_progress_bar=False))
    scores = [s for r in result.records for s in (*r.positive_teacher_scores, *r.negative_teacher_scores)]
    assert len(scores) == result.stats["positives"] + result.stats["negatives"]
    assert all(0.0 < s < 1.0 for s in scores) and len(set(scores)) > 1
    assert result.fingerprint["kind"] == "llm-yes" and result.fingerprint["client"]["backend"] == "llama-cpp"


def test_killed_score_resumes_byte_identical(scifact_sample, smollm2_gguf, llama_cpp, tmp_path):
    args = ["score", "--mined", str(scifact_sample), "--teacher", f"llm-yes:{smollm2_gguf}", "--n-ctx", "1024",
            "--n-threads", "2", "--max-passage-words", "40", "--block-size", "1", "--no-progress"]
    clean = negmine(*args, "--out", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr

    killed_out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "negmine", *args, "--out", str(killed_out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    blocks: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        blocks = list(killed_out.glob("teacher_cache/*/block_*.json"))
        if len(blocks) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed_out / "mined.jsonl").exists()
    finished = len(list(killed_out.glob("teacher_cache/*/block_*.json")))
    assert 2 <= finished < 6

    resumed = negmine(*args, "--out", str(killed_out))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("mined.jsonl", "stats.json"):
        assert (killed_out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
