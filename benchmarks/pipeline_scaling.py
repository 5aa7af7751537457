"""Pipeline scaling: ``negmine mine``'s real code path on synthetic BEIR corpora of 1M, 3M and 10M passages, with a
cheap deterministic stand-in encoder so that the model is not what is timed.

#### what runs
A deterministic generator writes a BEIR folder per size (``--work``): N passages of 40–80 words drawn from a fixed
vocabulary of pseudo-words (Zipf-like frequencies, half of them with a 1–6 word title; ~490 characters, ~530 bytes a
JSONL line; MS MARCO's passages are ~330 characters) and 1,000 queries of 8 words taken from their one positive
passage; the smaller corpora are prefixes of the largest, so every size has the same queries and positives. Each
(mode, size) then runs in its own process: :func:`negmine.mining.run_mining` with ``corpus_storage="disk"`` (the corpus
index built cold), a cold embedding cache, FAISS Flat (local) or the Ray-sharded exact search (``--ray``), perc-pos
mining of 7 negatives in the top 50, and the real output writer (``mined.jsonl``, the n-tuple file, stats, manifest,
histogram).

The stand-in encoder (:class:`VocabEncoder`) maps each word to a fixed random vector and sums them (d = ``--dim``,
default 64 so the 10M vectors, 2.6 GB, fit twice in a 24 GB machine): ~30 µs a passage on a loaded 2-core
machine, timed separately from the embedding cache work around it (reading texts from the corpus file, hashing, cache
blocks, the merge).

#### what is measured
Per stage: wall seconds and peak RSS of the process that ran it — ``VmHWM`` from ``/proc/self/status``, reset at each
stage start through ``/proc/self/clear_refs`` (not ``ru_maxrss``, which carries a parent's peak across fork+exec).
Stages: ``load`` (indexing the JSONL files), ``encode`` (the stand-in model), ``cache`` (the embedding cache minus the
model), ``index`` (FAISS add), ``search`` (exact search of every query block, float64 rescoring), ``mine`` (filters,
sampling, the records' texts), ``write`` (every output file and the manifest, which hashes the inputs). Peak RSS is
per :func:`run_mining` part (load / encode+index / search+mine / write) and is also given less the document vectors
the part holds (the cache's result array and FAISS's copy: 2 × N·d·4 bytes).

#### targets (issue 21)
- every non-encoding stage grows at most linearly with N (time per million passages at the largest size within +20 %
  of the smallest size's);
- peak RSS at the largest size under 8 GB, less the vectors;
- non-encoding overhead under 10 % of what all-MiniLM-L6-v2 would take to encode the corpus on one H100, at
  ``--encode-docs-per-s`` (default: the fp16 figure of ``benchmarks/results/gpu_check.json`` when that file was written
  on an H100, else sbert.net's published 14,200 sentences/s; the report also gives the break-even rate, the encoding
  speed at which the overhead would be exactly 10 %).

Run it on a quiet machine (the full run needs ~13 GB under ``--work`` at its peak; the 10M runs hold the vectors twice,
2 × 2.6 GB, plus for Ray the object store; on 2 cores about two hours)::

    python benchmarks/pipeline_scaling.py                          # 1M, 3M, 10M; local and on a 2-node Ray cluster
    # stopped midway? the same command again: finished rows (WORK/rows/, with their timed phase and load) are reused
    # while the measured code (this script and negmine/) is byte-identical
    python benchmarks/pipeline_scaling.py --sizes 20000,60000 --out -            # minutes, prints only
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO, Report  # noqa: E402

#### constants
SEED = 21
VOCAB_SIZE = 20_000
WORDS = (40, 80)  # words per passage
TITLE_WORDS = (1, 6)  # for half of the passages
QUERY_WORDS = 8
GEN_BLOCK = 10_000  # passages per deterministic generator block (a corpus is a prefix of the block stream)
DIM = 64
RANGE_MAX, NUM_NEGATIVES = 50, 7
#: all-MiniLM-L6-v2 encoding speed assumed when no H100 measurement exists: the "Speed" column of sbert.net's
#: Pretrained Models table (sentences/s, measured there on a V100 GPU); an H100 is faster, so the real budget is
#: tighter (see the break-even column)
MINILM_DOCS_PER_S = 14_200
RAY_POOL = 2  # encoder actors at once on the loopback cluster this script starts (2 nodes x 1 CPU)
MINILM_SOURCE = ("sbert.net Pretrained Models table, all-MiniLM-L6-v2 'Speed' = 14,200 sentences/s (a V100; short "
                 "sentences, not 60-word passages)")
GPU_CHECK = REPO / "benchmarks" / "results" / "gpu_check.json"
LINEAR_TOLERANCE = 1.2
RSS_TARGET_BYTES = 8 * 10**9
OVERHEAD_TARGET = 0.10
STAGES = ("load", "cache", "index", "search", "mine", "write")  # the non-encoding stages
PARTS = ("load", "encode+index", "search+mine", "write")  # run_mining's parts (peak RSS)
VECTOR_COPIES = {"load": 0, "encode+index": 2, "search+mine": 2, "write": 2}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,3000000,10000000", help="corpus sizes (passages), comma-separated")
    p.add_argument("--modes", default="local,ray", help="local and/or ray (a 2-node Ray cluster on loopback)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--dim", type=int, default=DIM, help="stand-in vector dimension")
    p.add_argument("--index", default="faiss", choices=["faiss", "exact"], help="local search backend (Flat)")
    p.add_argument("--encode-docs-per-s", type=float, default=None,
                   help="MiniLM docs/s on one H100 for the overhead target (default: gpu_check.json, else 14,200)")
    p.add_argument("--ray-object-store-gb", type=float, default=None,
                   help="object store per Ray node (default: the largest size's vectors + 1 GB)")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "negmine_pipeline_scaling"),
                   help="where corpora, caches and outputs go (corpora are kept and reused)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pipeline_scaling.md"),
                   help="report path (- prints only)")
    p.add_argument("--compare-storage", type=int, default=-1,
                   help="also compare dicts, the disk index and HF datasets/Arrow on a corpus of this size "
                        "(-1: the smallest size; 0: skip)")
    p.add_argument("--readme", default=None,
                   help="README whose block between the pipeline-scaling markers to rewrite with the targets table")
    p.add_argument("--readme-only", action="store_true",
                   help="rewrite README's block (--readme, default README.md) from the report at --out; run nothing")
    p.add_argument("--reanalyse", default=None, metavar="JSON",
                   help="rewrite the report from the rows of an earlier report's .json (its raw timings, stages "
                        "re-derived by this code); measures nothing")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--ray-address", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


#### data: a synthetic BEIR corpus
def vocabulary(size: int = VOCAB_SIZE, seed: int = SEED) -> list[str]:
    """``size`` distinct pronounceable pseudo-words (1–3 syllables, ~6 letters), the same for every run."""
    rng = np.random.default_rng([seed, 0])
    onsets = list("bcdfghjklmnprstvwz") + ["br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"]
    codas = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"]
    words: dict[str, None] = {}
    while len(words) < size:
        n = int(rng.integers(1, 4))
        word = "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] for _ in range(n))
        words[word + codas[rng.integers(len(codas))]] = None
    return list(words)


def word_probabilities(size: int = VOCAB_SIZE) -> np.ndarray:
    p = 1.0 / (np.arange(size) + 10.0)  # Zipf-like with a flattened head
    return p / p.sum()


def passage_block(block: int, words: list[str], probs: np.ndarray) -> list[tuple[str, str, str]]:
    """``(id, title, text)`` of passages ``block·GEN_BLOCK …``: deterministic per block, whatever the corpus size."""
    rng = np.random.default_rng([SEED, 1, block])
    lengths = rng.integers(WORDS[0], WORDS[1] + 1, size=GEN_BLOCK)
    ids = rng.choice(len(words), size=int(lengths.sum()), p=probs)
    titled = rng.random(GEN_BLOCK) < 0.5
    title_lengths = np.where(titled, rng.integers(TITLE_WORDS[0], TITLE_WORDS[1] + 1, size=GEN_BLOCK), 0)
    title_ids = rng.choice(len(words), size=int(title_lengths.sum()), p=probs)
    out, at, title_at = [], 0, 0
    for i in range(GEN_BLOCK):
        text = " ".join(words[j] for j in ids[at : at + lengths[i]])
        title = " ".join(words[j] for j in title_ids[title_at : title_at + title_lengths[i]])
        at += int(lengths[i])
        title_at += int(title_lengths[i])
        out.append((str(block * GEN_BLOCK + i), title, text))
    return out


def write_corpus(work: Path, n: int, largest: int, n_queries: int, smallest: int) -> Path:
    """The BEIR folder of size ``n`` (written once; reused while its ``meta.json`` matches): ``corpus.jsonl`` is the
    first ``n`` lines of the largest corpus's stream, queries and qrels are the same for every size."""
    folder = work / f"beir_{n}"
    meta = json.loads(json.dumps({"n": n, "queries": n_queries, "smallest": smallest, "seed": SEED,
                                  "vocab": VOCAB_SIZE, "words": WORDS, "block": GEN_BLOCK}))  # as read back
    if (folder / "meta.json").exists() and json.loads((folder / "meta.json").read_text()) == meta:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "qrels").mkdir(parents=True)
    words, probs = vocabulary(), word_probabilities()
    source = work / f"beir_{largest}"
    if n < largest and (source / "meta.json").exists() and \
            json.loads((source / "meta.json").read_text()) == {**meta, "n": largest}:
        with open(source / "corpus.jsonl", "rb") as src, open(folder / "corpus.jsonl", "wb") as handle:
            for _, line in zip(range(n), src):  # the same stream: a prefix of the largest corpus
                handle.write(line)
    else:
        with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
            for block in range(math.ceil(n / GEN_BLOCK)):
                rows = passage_block(block, words, probs)[: n - block * GEN_BLOCK]
                handle.write("".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, t, x in rows))
    # queries: 8 words of a passage among the first `smallest` (so every size has them), one positive each
    rng = np.random.default_rng([SEED, 2])
    positives = rng.choice(smallest, size=n_queries, replace=False)
    first = {}
    for block in sorted({int(p) // GEN_BLOCK for p in positives}):
        for doc_id, title, text in passage_block(block, words, probs):
            first[int(doc_id)] = f"{title} {text}".strip()
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as q, \
            open(folder / "qrels" / "train.tsv", "w", encoding="utf-8") as r:
        r.write("query-id\tcorpus-id\tscore\n")
        for i, doc in enumerate(positives.tolist()):
            tokens = first[doc].split()
            picked = rng.choice(len(tokens), size=min(QUERY_WORDS, len(tokens)), replace=False)
            q.write(json.dumps({"_id": f"q{i}", "text": " ".join(tokens[j] for j in sorted(picked))}) + "\n")
            r.write(f"q{i}\t{doc}\t1\n")
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


#### the stand-in encoder
class VocabEncoder:
    """Sum of fixed random word vectors, L2-normalised: deterministic, lexical, tens of µs a passage.

    ``seconds`` is the time spent encoding in this process; with ``seconds_dir`` each process (Ray actors too) also
    writes its running total to ``seconds_dir/<pid>``, so the model's share of a distributed encode is known.
    """

    similarity = "cosine"

    def __init__(self, words: list[str], dim: int = DIM, seed: int = SEED, seconds_dir: str | None = None) -> None:
        self.index = {w: i for i, w in enumerate(words)}
        self.vectors = np.random.default_rng([seed, 3]).standard_normal((len(words) + 1, dim)).astype(np.float32)
        self.dim, self.seed, self.seconds, self.seconds_dir = dim, seed, 0.0, seconds_dir
        self.vocab_sha = hashlib.sha256("\n".join(words).encode()).hexdigest()[:16]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        t = time.perf_counter()
        unknown = len(self.vectors) - 1
        ids, starts = [], []
        for text in texts:
            starts.append(len(ids))
            ids.extend(self.index.get(w, unknown) for w in text.split())
            if len(ids) == starts[-1]:
                ids.append(unknown)
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.add.reduceat(self.vectors[np.asarray(ids)], np.asarray(starts), axis=0)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        self.seconds += time.perf_counter() - t
        if self.seconds_dir:
            Path(self.seconds_dir, str(os.getpid())).write_text(f"{self.seconds:.6f}")
        return out

    def encode_queries(self, queries: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
                       ) -> np.ndarray:
        return self._encode(queries)

    def encode_corpus(self, docs: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
                      ) -> np.ndarray:
        return self._encode(docs)

    def fingerprint(self) -> dict[str, Any]:
        return {"encoder": "pipeline-scaling-vocab", "dim": self.dim, "seed": self.seed, "vocab": self.vocab_sha}


#### one run per process
def peak_rss() -> int:
    """``VmHWM`` of this process in bytes (the peak since start, or since the last :func:`reset_peak`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One (mode, size) run of the real mining path; per part its wall time and peak RSS."""
    from negmine.encoders import EmbeddingCache
    from negmine.mining import MineConfig, run_mining

    n, mode = args.n, args.child
    work = Path(args.work)
    folder = work / f"beir_{n}"
    run_dir = work / f"run_{mode}_{n}"
    shutil.rmtree(run_dir, ignore_errors=True)  # cold: corpus index, embedding cache and outputs
    (run_dir / "seconds").mkdir(parents=True)
    encoder = VocabEncoder(vocabulary(), args.dim, seconds_dir=str(run_dir / "seconds") if mode == "ray" else None)
    config = MineConfig(retriever="vocab-stand-in", data=str(folder), split="train", out=str(run_dir / "out"),
                        strategy="perc-pos", range_max=RANGE_MAX, num_negatives=NUM_NEGATIVES,
                        corpus_storage="disk", cache_dir=str(run_dir / "cache"), index=args.index,
                        ray_address=args.ray_address if mode == "ray" else None, show_progress_bar=False)
    parts: dict[str, dict[str, float]] = {}
    current: list[Any] = [None, 0.0]

    def on_stage(name: str) -> None:
        if current[0] is not None:
            parts[current[0]] = {"seconds": time.perf_counter() - current[1], "peak_rss": peak_rss()}
        reset_peak()
        current[:] = [name, time.perf_counter()]

    baseline = peak_rss()
    result = run_mining(config, encoder=encoder, cache=EmbeddingCache(run_dir / "cache"), on_stage=on_stage)
    timings = result.timings
    if mode == "local":
        model, processes, pool = encoder.seconds, 1, 1
    else:
        import ray

        # the actors' files (every window starts its own pool); the driver's own file is its local query encode
        files = [p for p in (run_dir / "seconds").iterdir() if p.name != str(os.getpid())]
        model, processes = sum(float(p.read_text()) for p in files), len(files)
        pool = int(ray.cluster_resources().get("CPU", 1))  # actors at once: one per CPU of the cluster
    row = {"mode": mode, "timings": timings, "model_seconds": model, "actor_pool": pool}
    mined = run_dir / "out" / "mined.jsonl"
    return {"mode": mode, "n": n, "dim": args.dim, "stages": derive_stages(row), "parts": parts, "timings": timings,
            "model_seconds": model, "actor_processes": processes, "actor_pool": pool, "records": len(result.records),
            "mined_sha256": hashlib.sha256(mined.read_bytes()).hexdigest(), "baseline_rss": baseline,
            "corpus_bytes": (folder / "corpus.jsonl").stat().st_size, "vector_bytes": n * args.dim * 4}


def derive_stages(row: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage from a row's raw timings. ``encode`` is the model's wall share: locally its own time; on
    Ray the actors' summed model time divided by the actors that ran at once (``actor_pool``; rows measured before
    it was recorded ran on this script's 2-node x 1-CPU cluster: 2). ``cache`` is the rest of the corpus encode."""
    t = row["timings"]
    model = row["model_seconds"] / (row.get("actor_pool") or (RAY_POOL if row["mode"] == "ray" else 1))
    return {"load": t["load"], "encode": model, "cache": t["encode_corpus"] - model, "index": t["index"],
            "search": t["encode_queries+search"], "mine": t["mine"], "write": t["write"]}


def storage_child(args: argparse.Namespace) -> dict[str, Any]:
    """How a corpus is held: dicts, this repo's disk index, or HF ``datasets`` (Arrow, memory-mapped). Load time
    cold and warm, peak RSS of the load over the process's baseline, bytes written beside the JSONL, and a random
    lookup by id (what the miner does for every text it writes)."""
    kind = args.child.removeprefix("storage-")
    folder = Path(args.work) / f"beir_{args.n}"
    corpus = folder / "corpus.jsonl"
    run_dir = Path(args.work) / f"storage_{kind}_{args.n}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    wanted = [str(i) for i in rng.choice(args.n, size=min(args.n, 20_000), replace=False)]
    import_start = time.perf_counter()
    if kind == "arrow":
        import datasets

        datasets.disable_progress_bars()
    else:
        from negmine.data import LoadReport, load_beir_corpus
        from negmine.data.disk import DiskCorpus
    import_s = time.perf_counter() - import_start
    reset_peak()
    baseline = peak_rss()
    out: dict[str, Any] = {"kind": kind, "n": args.n, "import_s": import_s}
    for attempt in ("cold", "warm"):
        t = time.perf_counter()
        if kind == "memory":
            table: Any = load_beir_corpus(corpus)
            lookup = table.__getitem__
        elif kind == "disk":
            table = DiskCorpus.open(corpus, LoadReport(), "error", run_dir)
            lookup = table.__getitem__
        else:
            table = datasets.load_dataset("json", data_files=str(corpus), split="train", cache_dir=str(run_dir))
            ids = table["_id"]  # Arrow has no lookup by id: a {id: row} dict is the usual way
            row_of = {d: i for i, d in enumerate(ids)}
            del ids
            lookup = lambda d: table[row_of[d]]  # noqa: E731
        out[f"{attempt}_s"] = time.perf_counter() - t
        if attempt == "cold" and kind == "memory":
            out["warm_s"] = out["cold_s"]  # nothing is kept between loads
            break
    t = time.perf_counter()
    texts = [lookup(d)["text"] for d in wanted]
    out["lookup_us"] = (time.perf_counter() - t) / len(wanted) * 1e6
    out["peak_rss_over_baseline"] = peak_rss() - baseline
    out["bytes_written"] = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    out["corpus_bytes"] = corpus.stat().st_size
    del texts
    return out


def code_fingerprint() -> str:
    """sha256 over the code a row measures (this script and every ``negmine/*.py``): a finished row is reused only
    while that code is byte-identical."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted((REPO / "negmine").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def row_path(args: argparse.Namespace, mode: str, n: int) -> Path:
    return Path(args.work) / "rows" / f"{mode}_{n}_d{args.dim}_q{args.queries}_{args.index}.json"


def run_row(args: argparse.Namespace, report: Report, label: str, mode: str, n: int, env: dict[str, str],
            address: str | None, code: str) -> dict[str, Any]:
    """One (mode, size) row, resumable: a finished row is kept under ``WORK/rows/`` with the timed phase it was
    measured in (seconds and load samples) and reused by a rerun of the same code, so a run stopped at 10M keeps its
    1M and 3M rows. A failed row is not kept."""
    saved = _saved_row(args, mode, n, code)
    if saved is not None:
        report.phases[label] = saved["phase"]
        print(f"{label}: reused {row_path(args, mode, n)}", flush=True)
        return saved["result"]
    path = row_path(args, mode, n)
    with report.phase(label):
        result = run_child(args, mode, n, env, address)
    if "error" not in result:
        from negmine.io import write_json

        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"code": code, "phase": report.phases[label], "result": result})
    return result


def run_child(args: argparse.Namespace, mode: str, n: int, env: dict[str, str], address: str | None
              ) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n), "--work", args.work, "--dim", str(args.dim),
           "--index", args.index]
    if address:
        cmd += ["--ray-address", address]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return {"mode": mode, "n": n, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    shutil.rmtree(Path(args.work) / f"run_{mode}_{n}" / "cache", ignore_errors=True)  # GBs of vectors
    print(json.dumps({k: v for k, v in result.items() if k != "timings"}), flush=True)
    return result


def _saved_row(args: argparse.Namespace, mode: str, n: int, code: str) -> dict[str, Any] | None:
    """The kept row of ``(mode, n)`` when it was measured by ``code``, else None."""
    path = row_path(args, mode, n)
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("code") == code else None


#### a 2-node Ray cluster on loopback (the one tests/distributed/test_ray_cluster.py starts)
@contextlib.contextmanager
def local_ray_cluster(env: dict[str, str], object_store_bytes: int) -> Iterator[str]:
    from negmine.testing import local_ray_cluster as cluster

    options = ["--num-cpus", "1", "--object-store-memory", str(object_store_bytes)]
    with cluster(env, node_options=options, prefix="nmps") as (address, _):
        yield address


#### analysis and report
def encoding_rate(override: float | None) -> tuple[float, str]:
    """MiniLM docs/s on one H100 and where the figure comes from."""
    if override:
        return override, "given with --encode-docs-per-s"
    if GPU_CHECK.exists():
        check = json.loads(GPU_CHECK.read_text())
        gpu = json.dumps(check.get("device") or check.get("hardware") or "")
        rate = (check.get("encoding") or {}).get("docs_per_s")
        if rate and "H100" in gpu:
            return float(rate), ("benchmarks/results/gpu_check.json (fp16 all-MiniLM-L6-v2 on SciFact, measured on "
                                 "an H100 by this repo's GPU check)")
    return float(MINILM_DOCS_PER_S), MINILM_SOURCE


def analyse(results: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Per mode: seconds per million passages per stage, growth from the smallest to the largest size, overhead
    against MiniLM encoding at ``rate`` docs/s, peak RSS less the vectors; and which targets hold."""
    out: dict[str, Any] = {}
    for mode in dict.fromkeys(r["mode"] for r in results):
        runs = sorted((r for r in results if r["mode"] == mode and "error" not in r), key=lambda r: r["n"])
        if not runs:
            continue
        small, large = runs[0], runs[-1]
        growth = {}
        for stage in (*STAGES, "encode"):
            per_m = [r["stages"][stage] / (r["n"] / 1e6) for r in runs]
            growth[stage] = per_m[-1] / per_m[0] if per_m[0] > 0 and len(runs) > 1 else None
        overhead = {r["n"]: sum(r["stages"][s] for s in STAGES) for r in runs}
        minilm = {r["n"]: r["n"] / rate for r in runs}
        fraction = {n: overhead[n] / minilm[n] for n in overhead}
        break_even = {n: OVERHEAD_TARGET * n / overhead[n] for n in overhead}  # docs/s where overhead = 10 %
        rss = {r["n"]: {p: r["parts"][p]["peak_rss"] for p in PARTS if p in r["parts"]} for r in runs}
        rss_less_vectors = {r["n"]: max(r["parts"][p]["peak_rss"] - VECTOR_COPIES[p] * r["vector_bytes"]
                                        for p in PARTS if p in r["parts"]) for r in runs}
        linear = all(g is None or g <= LINEAR_TOLERANCE for s, g in growth.items() if s != "encode")
        out[mode] = {
            "sizes": [r["n"] for r in runs], "growth_per_million": growth, "overhead_s": overhead,
            "minilm_s": minilm, "overhead_fraction": fraction, "break_even_docs_per_s": break_even,
            "peak_rss": rss, "peak_rss_less_vectors": rss_less_vectors,
            "targets": {"linear": linear if len(runs) > 1 else None,
                        "rss_under_8gb": rss_less_vectors[large["n"]] < RSS_TARGET_BYTES,
                        "overhead_under_10pct": fraction[large["n"]] < OVERHEAD_TARGET},
            "same_output_as_local": (None if mode == "local" else
                                     all(r["mined_sha256"] == o["mined_sha256"] for r in runs for o in results
                                         if o["mode"] == "local" and o["n"] == r["n"] and "error" not in o)),
            "largest": large["n"], "smallest": small["n"],
        }
    return out


def _count(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 10**6 else f"{n / 1e3:g}k"


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f}"


def markdown(results: list[dict[str, Any]], analysis: dict[str, Any], rate: float, source: str,
             args: argparse.Namespace, total_s: float) -> str:
    ok = lambda v: "—" if v is None else ("yes" if v else "**no**")  # noqa: E731
    sizes = sorted({r["n"] for r in results})
    span = f"{_count(sizes[0])}–{_count(sizes[-1])}" if sizes else "no"
    lines = [f"# Pipeline scaling: the real mining path on {span} synthetic passages", "",
             f"Synthetic BEIR corpora (40–80 words a passage from {VOCAB_SIZE:,} pseudo-words, {args.queries:,} "
             f"queries with one positive each), `corpus_storage=\"disk\"`, a cold corpus index and embedding cache "
             f"per run, a stand-in encoder (word vectors summed, d = {args.dim}), perc-pos mining of {NUM_NEGATIVES} "
             f"negatives in the top {RANGE_MAX}, every output file written. Local search: FAISS Flat "
             f"(`--index {args.index}`); Ray: 2 nodes × 1 CPU on loopback, the Ray-sharded exact search. "
             f"Each row is its own process. Total wall time {total_s / 60:.0f} min.", "",
             "## Seconds per stage (and per million passages)", "",
             "| mode | N | load | encode (stand-in) | cache | index | search | mine | write | non-encoding total | "
             "records | mined.jsonl |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['n']:,} | failed: {r['error'][:100]} |||||||||| ")
            continue
        s, m = r["stages"], r["n"] / 1e6
        cells = [f"{s[k]:.1f} ({s[k] / m:.1f})" for k in ("load", "encode", "cache", "index", "search", "mine",
                                                           "write")]
        total = sum(s[k] for k in STAGES)
        lines.append(f"| {r['mode']} | {r['n']:,} | " + " | ".join(cells) +
                     f" | {total:.1f} ({total / m:.1f}) | {r['records']:,} | `{r['mined_sha256'][:12]}` |")
    lines += ["", "## Peak RSS per part (GB; VmHWM of the process, reset at each part)", "",
              "| mode | N | load | encode+index | search+mine | write | vectors (N·d·4) | peak less vectors held |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            continue
        parts = " | ".join(_gb(r["parts"][p]["peak_rss"]) if p in r["parts"] else "—" for p in PARTS)
        less = analysis[r["mode"]]["peak_rss_less_vectors"][r["n"]]
        lines.append(f"| {r['mode']} | {r['n']:,} | {parts} | {_gb(r['vector_bytes'])} | {_gb(less)} |")
    lines += ["", "## Targets", "",
              f"MiniLM encoding assumed at **{rate:,.0f} docs/s** on one H100 — {source}.", "",
              "| mode | sizes | every non-encoding stage ≤ linear (+20 %) | peak RSS less vectors < 8 GB | "
              "overhead / MiniLM encoding | break-even docs/s | same mined.jsonl as local |",
              "|---|---|---|---|---:|---:|---|"]
    for mode, a in analysis.items():
        large = a["largest"]
        growth = ", ".join(f"{k} ×{v:.2f}" for k, v in a["growth_per_million"].items() if v is not None)
        lines.append(f"| {mode} | {', '.join(f'{n:,}' for n in a['sizes'])} | {ok(a['targets']['linear'])} "
                     f"({growth or 'one size'}) | {ok(a['targets']['rss_under_8gb'])} "
                     f"({_gb(a['peak_rss_less_vectors'][large])} GB at {large:,}) | "
                     f"{a['overhead_fraction'][large]:.1%} ({a['overhead_s'][large]:.0f} s vs "
                     f"{a['minilm_s'][large]:.0f} s) — {ok(a['targets']['overhead_under_10pct'])} | "
                     f"{a['break_even_docs_per_s'][large]:,.0f} | {ok(a['same_output_as_local'])} |")
    lines += ["", "Growth ×g = seconds per million passages at the largest size ÷ at the smallest (1 = linear; "
              "search+mine of a fixed query set grows with N only through the search). Break-even: the encoding "
              "speed at which the non-encoding stages cost exactly 10 % of encoding; a faster GPU pipeline than "
              "that makes the overhead the larger share. Ray: `encode` is the actors' summed model time ÷ the "
              "actors running at once, and the RSS is the driver's only (actors and the object store are other "
              "processes)."]
    return "\n".join(lines)


def storage_markdown(storage: list[dict[str, Any]]) -> str:
    lines = ["## How the corpus is held: dicts vs the disk index vs HF datasets (Arrow)", "",
             "One process each; RSS = peak VmHWM during the two loads and the lookups, over the process's baseline "
             "after imports. Lookup: 20,000 random ids → text (the Arrow row needs a {id: row} dict: Arrow has no "
             "index by id).", "",
             "| storage | N | load cold (s) | load warm (s) | peak RSS over baseline (GB) | "
             "written beside the JSONL (GB) | lookup (µs) |", "|---|---:|---:|---:|---:|---:|---:|"]
    names = {"memory": "dicts (memory)", "disk": "disk index (negmine)", "arrow": "HF datasets / Arrow"}
    for r in storage:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['n']:,} | failed: {r['error'][:100]} ||||| ")
            continue
        lines.append(f"| {names[r['kind']]} | {r['n']:,} | {r['cold_s']:.1f} | {r['warm_s']:.2f} | "
                     f"{_gb(r['peak_rss_over_baseline'])} | {_gb(r['bytes_written'])} | {r['lookup_us']:.1f} |")
    return "\n".join(lines)


README_START, README_END = "<!-- pipeline-scaling:start -->", "<!-- pipeline-scaling:end -->"


def readme_block(text: str) -> str:
    """README's block: the report's Targets section (its table and how to read it), with where it comes from."""
    body = text.split("\n## Targets\n", 1)[1]
    body = body.split("\n## ", 1)[0].split("\n---\n", 1)[0]
    return ("<!-- generated by benchmarks/pipeline_scaling.py from benchmarks/results/pipeline_scaling.md; "
            "do not edit -->\n\n" + body.strip() + "\n")


def write_readme(readme: str | os.PathLike, report_text: str) -> None:
    from _report import replace_readme_block

    if not replace_readme_block(readme, README_START, README_END, readme_block(report_text)):
        raise SystemExit(f"{readme} has no {README_START} ... {README_END} block")


def reanalyse(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """The report of an earlier run's rows, stages re-derived from their raw timings (:func:`derive_stages`): what
    was measured is not measured again, and the report says which command and commit measured it."""
    source = json.loads(Path(args.reanalyse).read_text(encoding="utf-8"))
    data = source["data"]
    results = [r if "error" in r else {**r, "stages": derive_stages(r)} for r in data["results"]]
    args.dim, args.queries, args.index = data["dim"], data["queries"], data.get("index", args.index)
    analysis = analyse(results, data["encode_docs_per_s"])
    report = Report("pipeline_scaling", "benchmarks/pipeline_scaling.py", argv=argv, out=args.out)
    # the run that measured the rows (kept through any number of re-derivations)
    measured = data.get("measured") or {k: source.get(k) for k in ("command", "commit", "written", "hardware_text",
                                                                    "phases")}
    report.phases = {label: {"seconds": p["seconds"], "samples": []} for label, p in measured["phases"].items()}
    total = data.get("total_s") or sum(p["seconds"] for p in measured["phases"].values())
    text = markdown(results, analysis, data["encode_docs_per_s"], data["encode_rate_source"], args, total)
    if data.get("storage"):
        text += "\n\n" + storage_markdown(data["storage"])
    loads = "; ".join(f"{label} {p['seconds']:.1f} s at load {p['load_average']['min']:.1f}-"
                      f"{p['load_average']['max']:.1f} (mean {p['load_average']['mean']:.1f})"
                      for label, p in measured["phases"].items() if p.get("load_average"))
    text += (f"\n\nMeasured by `{measured['command']}` at commit {measured['commit']} ({measured['written']}; "
             f"{measured['hardware_text']}); this report re-derives each row's stages from the raw timings it "
             f"recorded. Load during the measured phases: {loads}.")
    written = report.write(text, {**data, "results": results, "analysis": analysis, "measured": measured})
    if args.readme:
        write_readme(args.readme, written)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(storage_child(args) if args.child.startswith("storage-") else child(args)))
        return
    if args.readme_only:
        write_readme(args.readme or REPO / "README.md", Path(args.out).read_text(encoding="utf-8"))
        return
    if args.reanalyse:
        reanalyse(args, argv)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rate, source = encoding_rate(args.encode_docs_per_s)
    # RAY_AUTH_MODE=disabled: a ~/.ray/auth_token (which an in-process ray.init writes) would otherwise switch the
    # loopback cluster to token authentication, which its nodes and drivers do not share
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEGMINE_RAY_SHIP_CODE": "0", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false", "RAY_AUTH_MODE": "disabled"}
    report = Report("pipeline_scaling", "benchmarks/pipeline_scaling.py", argv=argv, out=args.out)
    start = time.perf_counter()
    for n in sorted(sizes, reverse=True):  # the largest first: the others are its prefixes
        t = time.perf_counter()
        write_corpus(work, n, max(sizes), args.queries, min(sizes))
        print(f"corpus {n:,}: {time.perf_counter() - t:.1f} s", flush=True)
    results: list[dict[str, Any]] = []
    code = code_fingerprint()
    if "local" in modes:
        for n in sizes:
            results.append(run_row(args, report, f"local {n:,}", "local", n, env, None, code))
    if "ray" in modes:
        todo = [n for n in sizes if _saved_row(args, "ray", n, code) is None]
        store = int(args.ray_object_store_gb * 1e9) if args.ray_object_store_gb else max(sizes) * args.dim * 4 + 10**9
        with (local_ray_cluster(env, store) if todo else contextlib.nullcontext(None)) as address:
            for n in sizes:
                results.append(run_row(args, report, f"ray {n:,}", "ray", n, env, address, code))
    storage: list[dict[str, Any]] = []
    compare = min(sizes) if args.compare_storage < 0 else args.compare_storage
    if compare:
        write_corpus(work, compare, max(sizes), args.queries, min(sizes))
        for kind in ("memory", "disk", "arrow"):
            with report.phase(f"storage {kind} {compare:,}"):
                storage.append(run_child(args, f"storage-{kind}", compare, env, None))
    analysis = analyse(results, rate)
    text = markdown(results, analysis, rate, source, args, time.perf_counter() - start)
    if storage:
        text += "\n\n" + storage_markdown(storage)
    written = report.write(text, {"sizes": sizes, "modes": modes, "dim": args.dim, "queries": args.queries,
                                  "index": args.index, "encode_docs_per_s": rate, "encode_rate_source": source,
                                  "results": results, "analysis": analysis, "storage": storage,
                                  "total_s": time.perf_counter() - start})
    if args.readme:
        write_readme(args.readme, written)


if __name__ == "__main__":
    main()
