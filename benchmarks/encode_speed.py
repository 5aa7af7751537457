"""Encoding speed and what faster precisions cost: fp32 vs bf16 vs bf16-autocast vs int8 (torch dynamic quantization)
with all-MiniLM-L6-v2 on SciFact.

#### step 1 (always): docs/s on the first ``--docs`` SciFact documents per precision, measured in the same process,
in rounds (every precision once per round, best round kept, so background load hits all of them alike), plus the
cosine of each precision's vectors to fp32's on those documents.
#### step 2 (``--full``): per precision, the whole corpus through the embedding cache (fp32 is usually cached
already), SciFact test nDCG@10, and the negatives mined on train with the same settings as
``benchmarks/mine_vs_st.py``; overlap = shared negatives / negatives, on the queries both kept.
#### step 3 (``--vs-st``): cold ``negmine mine`` (empty cache, ``--st-precision``) vs sentence-transformers'
``mine_hard_negatives`` (fp32) on SciFact train, timed in the same run.

    python benchmarks/encode_speed.py --docs 300                       # step 1 only (minutes)
    python benchmarks/encode_speed.py --docs 300 --full --vs-st        # everything (an hour on 2 busy cores)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

#### constants
MODEL = "minilm"
BATCH_SIZE = 32
RANGE_MAX = 50
PERCENTAGE = 0.95
NUM_NEGATIVES = 5


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="scifact")
    p.add_argument("--docs", type=int, default=300, help="documents for the docs/s measurement")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precisions", default="fp32,bf16,bf16-autocast,int8,int8-mixed")
    p.add_argument("--full", action="store_true", help="nDCG@10 and negative overlap on the full corpus")
    p.add_argument("--full-precisions", default="fp32,int8,int8-mixed")
    p.add_argument("--subset-queries", type=int, default=0,
                   help="quality step on a seeded subsample: this many test queries (0 = full SciFact)")
    p.add_argument("--subset-docs", type=int, default=0, help="subsample corpus size (positives + random others)")
    p.add_argument("--skip-speed", action="store_true", help="skip step 1")
    p.add_argument("--vs-st", action="store_true", help="cold negmine mine vs sentence-transformers")
    p.add_argument("--st-precision", default="int8")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "encode_speed.md"))
    return p.parse_args()


def encoder(precision: str):
    from negmine.encoders import load_encoder

    enc = load_encoder(MODEL, precision=precision)
    enc.model  # load (and quantize) outside the timed region
    return enc


#### step 1
def speed(args, data) -> list[dict]:
    texts = [data.doc_text(d) for d in list(data.corpus)[: args.docs]]
    precisions = args.precisions.split(",")
    encoders = {p: encoder(p) for p in precisions}
    for enc in encoders.values():  # warm-up (first-call allocations, oneDNN kernel selection)
        enc.encode_corpus(texts[:BATCH_SIZE], batch_size=BATCH_SIZE)
    best: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for p in precisions:
            t = time.perf_counter()
            vectors[p] = encoders[p].encode_corpus(texts, batch_size=BATCH_SIZE)
            rate = len(texts) / (time.perf_counter() - t)
            best[p] = max(best.get(p, 0.0), rate)
            print(f"round {r}: {p}: {rate:.1f} docs/s", flush=True)
    rows = []
    for p in precisions:
        cos = (vectors[p] * vectors["fp32"]).sum(1) if "fp32" in vectors else np.full(len(texts), np.nan)
        rows.append({"precision": p, "docs_per_s": best[p], "speedup": best[p] / best.get("fp32", np.nan),
                     "cos_mean": float(cos.mean()), "cos_min": float(cos.min())})
    return rows


#### step 2
def mine(data, enc, cache):
    from negmine.mining import mine_hard_negatives

    result = mine_hard_negatives(data, enc, cache=cache, strategy="perc-pos", percentage=PERCENTAGE,
                                 range_max=RANGE_MAX, num_negatives=NUM_NEGATIVES, sampling="top",
                                 batch_size=BATCH_SIZE, show_progress_bar=False)
    return {r.query_id if hasattr(r, "query_id") else r.query: set(r.negative_ids) for r in result.records}


def overlap(a: dict, b: dict) -> tuple[float, int]:
    common = set(a) & set(b)
    shared = sum(len(a[q] & b[q]) for q in common)
    return (shared / max(1, sum(len(a[q]) for q in common)), len(common))


def full(args, train, test) -> list[dict]:
    from negmine.encoders import EmbeddingCache
    from negmine.evaluation.beir import evaluate_beir, subsample

    cache = EmbeddingCache()
    if args.subset_queries:  # one seeded sub-corpus: nDCG on its test queries, negatives mined for the same queries
        test = subsample(test, args.subset_queries, args.subset_docs or None, seed=0)
        train = test
    rows, negatives = [], {}
    for p in args.full_precisions.split(","):
        enc = encoder(p)
        t = time.perf_counter()
        ndcg = evaluate_beir(enc, test, "test", cache=cache, batch_size=BATCH_SIZE).metrics["ndcg@10"]
        eval_s = time.perf_counter() - t
        negatives[p] = mine(train, enc, cache)
        ov, n = overlap(negatives["fp32"], negatives[p]) if "fp32" in negatives else (float("nan"), 0)
        rows.append({"precision": p, "ndcg@10": ndcg, "overlap": ov, "overlap_queries": n,
                     "mined_queries": len(negatives[p]), "eval_s": eval_s})
        print(rows[-1], flush=True)
    return rows


#### step 3
def vs_st(args, train) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from mine_vs_st import run_negmine, run_st

    qids = train.split_query_ids
    st_model = encoder("fp32").model
    st_s, st_neg, _ = run_st(train, qids, st_model)
    print(f"sentence-transformers: {st_s:.1f} s", flush=True)
    enc = encoder(args.st_precision)
    with tempfile.TemporaryDirectory() as cache_dir:
        nm_s, nm_neg, _ = run_negmine(train, enc, cache_dir)
    print(f"negmine cold ({args.st_precision}): {nm_s:.1f} s", flush=True)
    ov, n = overlap(st_neg, nm_neg)
    return {"st_s": st_s, "negmine_s": nm_s, "ratio": nm_s / st_s, "overlap_vs_st": ov, "queries": n}


def main() -> None:
    args = parse_args()
    import torch

    from negmine.data import load_data

    if args.threads:
        torch.set_num_threads(args.threads)
    report = Report("encode_speed", "benchmarks/encode_speed.py", out=args.out)
    train = load_data(args.data, "train")
    start = time.perf_counter()
    data: dict = {"batch_size": BATCH_SIZE, "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "quantized_engine": torch.backends.quantized.engine}
    lines = ["# Encoding speed: fp32 vs bf16 vs int8\n",
             f"all-MiniLM-L6-v2 (max 256 tokens), SciFact, batch {BATCH_SIZE}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, quantized engine {torch.backends.quantized.engine}. Every section "
             "below comes from this one invocation.\n"]
    if not args.skip_speed:
        with report.phase("speed"):
            data["speed"] = speed(args, train)
        lines += [f"## Speed on the first {args.docs} documents (best of {args.rounds} interleaved rounds)\n",
                  "| precision | docs/s | vs fp32 | cosine to fp32 (mean) | cosine to fp32 (min) |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['precision']} | {r['docs_per_s']:.1f} | {r['speedup']:.2f}× | {r['cos_mean']:.4f} | "
                  f"{r['cos_min']:.4f} |" for r in data["speed"]]
        report.write("\n".join(lines), data, echo=True)
    if args.full:
        test = load_data(args.data, "test")
        scope = (f"seeded subsample of SciFact test: {args.subset_queries} queries, {args.subset_docs} documents "
                 f"(their positives + random others); negatives mined for the same queries" if args.subset_queries
                 else "full corpus")
        lines += ["", f"## Retrieval quality and mined negatives ({scope})\n",
                  f"Test nDCG@10; negatives mined on train (TopK-PercPos {PERCENTAGE}, range 0:{RANGE_MAX}, "
                  f"{NUM_NEGATIVES} negatives, top); overlap = shared negatives / negatives on queries both kept.\n",
                  "| precision | test nDCG@10 | Δ vs fp32 (points) | negative overlap with fp32 | queries kept |",
                  "|---|---:|---:|---:|---:|"]
        with report.phase("full"):
            rows = full(args, train, test)
        base = next((r["ndcg@10"] for r in rows if r["precision"] == "fp32"), float("nan"))
        for r in rows:
            r["delta_points"] = 100 * (r["ndcg@10"] - base)
            lines.append(f"| {r['precision']} | {r['ndcg@10']:.4f} | {r['delta_points']:+.2f} | "
                         f"{r['overlap']:.1%} ({r['overlap_queries']} queries) | {r['mined_queries']} |")
        data["full"] = {"scope": scope, "rows": rows}
        report.write("\n".join(lines), data, echo=True)
    if args.vs_st:
        with report.phase("negmine vs sentence-transformers"):
            r = vs_st(args, train)
        data["vs_st"] = r
        lines += ["", "## Cold `negmine mine` vs sentence-transformers `mine_hard_negatives` (SciFact train)\n",
                  "| run | wall time (s) | ratio |", "|---|---:|---:|",
                  f"| sentence-transformers (fp32, faiss) | {r['st_s']:.1f} | 1.00 |",
                  f"| negmine mine, cold, {args.st_precision} | {r['negmine_s']:.1f} | {r['ratio']:.2f} |",
                  f"\nNegative overlap negmine ({args.st_precision}) vs sentence-transformers: "
                  f"{r['overlap_vs_st']:.1%} on {r['queries']} queries."]
    data["total_minutes"] = (time.perf_counter() - start) / 60
    lines.append(f"\nTotal wall time {data['total_minutes']:.1f} min.")
    report.write("\n".join(lines), data, echo=True)


if __name__ == "__main__":
    main()
