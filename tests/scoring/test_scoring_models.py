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

from negmine.data.mined import MinedRecord as MinedQuery
from negmine.data.mined import read_mined

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


@pytest.fixture(scope="module")
def llm_sample(scifact_sample, tmp_path_factory) -> Path:
    """4 of the sample's queries with one positive and one negative each: 8 pairs, cheap enough for a 135M LLM."""
    records = []
    for r in read_mined(scifact_sample)[:4]:
        records.append(MinedQuery(r.query_id, r.query, r.positive_ids[:1], r.positives[:1], [], r.negative_ids[:1],
                                  r.negatives[:1], []))
    path = tmp_path_factory.mktemp("llm_sample") / "mined.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records), encoding="utf-8")
    return path


def llm_args(mined: Path, gguf: Path) -> list[str]:
    return ["score", "--mined", str(mined), "--teacher", f"llm-yes:{gguf}", "--n-ctx", "512", "--n-threads", "1",
            "--max-passage-words", "24", "--block-size", "1", "--no-progress"]


@pytest.fixture(scope="module")
def llm_clean(llm_sample, smollm2_gguf, llama_cpp, tmp_path_factory) -> Path:
    """One uninterrupted `negmine score` run with SmolLM2 as the llm-yes teacher."""
    out = tmp_path_factory.mktemp("llm_clean")
    result = negmine(*llm_args(llm_sample, smollm2_gguf), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_llm_yes_teacher_scores_probabilities(llm_clean):
    records = read_mined(llm_clean / "mined.jsonl")
    scores = [s for r in records for s in (*r.positive_teacher_scores, *r.negative_teacher_scores)]
    assert len(scores) == 8 and all(0.0 < s < 1.0 for s in scores) and len(set(scores)) > 1
    fingerprint = json.loads((llm_clean / "manifest.json").read_text())["config"]["teacher_fingerprint"]
    assert fingerprint["kind"] == "llm-yes" and fingerprint["client"]["backend"] == "llama-cpp"
    assert len(list(llm_clean.glob("teacher_cache/*/block_*.json"))) == 4


def test_killed_score_resumes_byte_identical(llm_sample, llm_clean, smollm2_gguf, tmp_path):
    args = llm_args(llm_sample, smollm2_gguf)
    killed_out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "negmine", *args, "--out", str(killed_out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if list(killed_out.glob("teacher_cache/*/block_*.json")):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed_out / "mined.jsonl").exists()
    assert 1 <= len(list(killed_out.glob("teacher_cache/*/block_*.json"))) < 4

    resumed = negmine(*args, "--out", str(killed_out))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("mined.jsonl", "stats.json"):
        assert (killed_out / name).read_bytes() == (llm_clean / name).read_bytes(), name
