"""`negmine relabel` killed with SIGKILL mid-run, then rerun, ends byte-identical to an uninterrupted run.

The whole stage runs in a child process (relabel_file: read, judge through the JSONL cache, write mined.jsonl,
judgments.jsonl, summary.json, manifest.json) and is killed with SIGKILL once part of the judge calls are cached; the
rerun resumes from the cache. Two judges: a deterministic scripted chat model (fast, always runs) and, through the
real CLI, SmolLM2-135M in-process via llama.cpp (when llama-cpp-python and the GGUF are there).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = r'''
import hashlib, re, sys, time
from negmine.relabel.api import relabel_file
from negmine.relabel.cache import JudgmentCache
from negmine.relabel.llm import ARHNJudge
from negmine.relabel.testing import ScriptedChatClient

mined, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
BLOCK = re.compile(r"<passage>\n(.*?)\n</passage>", re.DOTALL)

def h(text):
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)

def script(messages):
    time.sleep(delay)
    content = messages[-1]["content"]
    blocks = BLOCK.findall(content)
    if "Rank the" in content:
        return " > ".join(f"[{i + 1}]" for i in sorted(range(len(blocks)), key=lambda i: h(blocks[i])))
    (passage,) = blocks
    return "ANSWER: " + " ".join(passage.split()[:6]) if h(passage) % 3 == 0 else "NO_ANSWER"

judge = ARHNJudge(ScriptedChatClient(script), cache=JudgmentCache(f"{out}/cache.jsonl"), max_passage_words=None)
relabel_file(mined, judge, out, chunk_size=2, show_progress_bar=False)
'''

# summary/manifest fields that measure this run's work (time, tokens spent, cache hits) rather than its result; a
# resumed run spends fewer tokens by design. Everything else must be equal.
VOLATILE = {"wall_seconds", "pairs_per_second", "usage", "prompt_tokens", "completion_tokens", "created", "command",
            "cache", "inputs"}


def scifact_mined(scifact_dir: Path, path: Path, n_queries: int = 8, n_negatives: int = 4) -> Path:
    with gzip.open(scifact_dir / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        docs = [json.loads(next(handle)) for _ in range(60)]
    with gzip.open(scifact_dir / "queries.jsonl.gz", "rt", encoding="utf-8") as handle:
        queries = [json.loads(next(handle)) for _ in range(n_queries)]
    lines = []
    for i, query in enumerate(queries):
        pos, negs = docs[i], docs[20 + i * n_negatives: 20 + (i + 1) * n_negatives]
        lines.append(json.dumps({
            "query_id": query["_id"], "query": query["text"], "positive_ids": [pos["_id"]],
            "positives": [" ".join(pos["text"].split()[:60])], "positive_scores": [0.8],
            "negative_ids": [d["_id"] for d in negs], "negatives": [" ".join(d["text"].split()[:60]) for d in negs],
            "negative_scores": [round(0.7 - 0.05 * k, 2) for k in range(n_negatives)]}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cache_lines(out: Path) -> int:
    try:
        return (out / "cache.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_when_cached(command: list[str], out: Path, lines: int, timeout: float = 240) -> subprocess.Popen:
    """Start ``command``; SIGKILL it once ``out/cache.jsonl`` holds ``lines`` lines (a mid-run kill)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while cache_lines(out) < lines:
        assert process.poll() is None, f"finished before the kill: {process.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return process


def stable_dict(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in VOLATILE and not k.endswith("_per_second")}


def stable(path: Path) -> dict:
    return stable_dict(json.loads(path.read_text()))


def assert_same_stage(reference: Path, resumed: Path) -> None:
    for name in ("mined.jsonl", "judgments.jsonl"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    assert stable(resumed / "summary.json") == stable(reference / "summary.json")
    manifest_ref, manifest = stable(reference / "manifest.json"), stable(resumed / "manifest.json")
    for m in (manifest_ref, manifest):
        m["summary"] = stable_dict(m["summary"])
        m["config"] = stable_dict(m["config"])  # its cache path names the output folder
    assert manifest == manifest_ref
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in reference.iterdir())


def test_sigkill_mid_relabel_resumes_to_identical_outputs(tmp_path, scifact_dir):
    mined = scifact_mined(scifact_dir, tmp_path / "mined.jsonl")
    child = [sys.executable, "-c", CHILD, str(mined)]
    reference = tmp_path / "reference"
    done = subprocess.run([*child, str(reference), "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    total = cache_lines(reference)  # every judge call of the stage
    assert total >= 40

    resumed = tmp_path / "resumed"
    kill_when_cached([*child, str(resumed), "0.01"], resumed, total // 2)
    killed_at = cache_lines(resumed)
    assert total // 2 <= killed_at < total and not (resumed / "mined.jsonl").exists()  # really mid-run
    rerun = subprocess.run([*child, str(resumed), "0"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_stage(reference, resumed)
    usage = json.loads((resumed / "summary.json").read_text())["usage"]
    hits = usage["stage1_cache_hits"] + usage["stage2_cache_hits"]
    assert hits >= killed_at - 1 and usage["requests"] == total - hits  # the rerun made only the calls left undone


@pytest.mark.slow
def test_sigkill_mid_negmine_relabel_with_a_real_gguf(tmp_path, scifact_dir):
    """The real CLI and a real model: SmolLM2-135M in-process through llama.cpp, killed mid-run with SIGKILL (slow:
    three model loads and ~20 generations on CPU)."""
    pytest.importorskip("llama_cpp")
    gguf = Path(os.environ.get("NEGMINE_MODELS", Path.home() / ".cache" / "negmine-models")).expanduser() / \
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        pytest.skip(f"{gguf} is missing")
    mined = scifact_mined(scifact_dir, tmp_path / "mined.jsonl", n_queries=2, n_negatives=3)
    base = [sys.executable, "-c", "from negmine.cli import main; main()", "relabel", "--mined", str(mined),
            "--judge", f"llm:{gguf}", "--n-ctx", "2048", "--threads", "2", "--max-passage-words", "40",
            "--snippet-max-tokens", "16", "--chunk-size", "1", "--no-progress"]
    reference = tmp_path / "reference"
    done = subprocess.run([*base, "--out", str(reference)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    total = cache_lines(reference)
    resumed = tmp_path / "resumed"
    kill_when_cached([*base, "--out", str(resumed)], resumed, max(1, total // 2))
    assert cache_lines(resumed) < total and not (resumed / "judgments.jsonl").exists()
    rerun = subprocess.run([*base, "--out", str(resumed)], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_stage(reference, resumed)


def test_a_cache_line_cut_inside_a_character_is_ignored(tmp_path):
    """A kill can cut the last cache line inside a multi-byte UTF-8 character: that line is dropped, the rest load."""
    from negmine.relabel.cache import JudgmentCache

    path = tmp_path / "cache.jsonl"
    good = json.dumps({"key": "k1", "value": {"text": "café"}}, ensure_ascii=False).encode()
    cut = json.dumps({"key": "k2", "value": {"text": "naïve"}}, ensure_ascii=False).encode()
    path.write_bytes(good + b"\n" + cut[:cut.index("ï".encode()) + 1])
    cache = JudgmentCache(path)
    assert len(cache) == 1 and cache.get("k1") == {"text": "café"}
    cache.put("k3", {"text": "ok"})
    assert len(JudgmentCache(path)) == 2
