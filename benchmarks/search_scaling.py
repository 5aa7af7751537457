"""Search scaling: exact (FAISS Flat), IVF-Flat, IVF-PQ + exact re-rank, HNSW, and streamed exact search, on random
unit vectors (d = 384) from 10k to 5M rows.

For every (size, index): build time (train + add), search time for the query set, peak RSS of the process that did
it (each measurement runs in its own subprocess, with the corpus on disk as memory-mapped shards, so the RSS is the
index's, not the generator's), and recall@k against exact search. Flat search throughput is reported in GFLOP/s
(2·nq·N·d / time) next to this machine's fp32 matrix-product throughput measured in the same process just before
and after. Streamed exact search (out-of-core, memory bound ``--streamed-mem-mb``) runs on the largest size and its
ids are compared with in-memory exact search on the same queries.

Random unit vectors in 384-d have no cluster structure: the worst case for IVF/HNSW/PQ (real embeddings give higher
recall at the same settings). Sizes are flags; run the big ones once:

    python benchmarks/search_scaling.py --sizes 10000,100000 --streamed-size 100000          # minutes
    python benchmarks/search_scaling.py                                                       # 10k → 5M

Absolute times on shared machines are noisy; the ratios are measured in the same run. On oversubscribed cores set
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` (FAISS's OpenMP threads spin-wait; results/search_scaling.md was run so).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

#### constants
DIM = 384
K = 100
SEED = 0
GEN_BLOCK = 500_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000,5000000")
    p.add_argument("--indexes", default="flat,numpy,ivf,ivfpq,hnsw", help="flat = FAISS Flat (the oracle, run first); "
                   "numpy = negmine's numpy exact scan")
    p.add_argument("--queries", type=int, default=1000, help="queries per search (throughput and recall)")
    p.add_argument("--k", type=int, default=K)
    p.add_argument("--ann-max", type=int, default=1_000_000, help="largest size for IVF/IVF-PQ (training cost)")
    p.add_argument("--hnsw-max", type=int, default=100_000, help="largest size for HNSW (build cost on 2 cores)")
    p.add_argument("--flat-max", type=int, default=5_000_000, help="largest size for in-memory flat search")
    p.add_argument("--nprobe", default="32,128")
    p.add_argument("--ef-search", default="128,512")
    p.add_argument("--rerank", type=int, default=10, help="IVF-PQ short list = rerank × k, re-scored exactly")
    p.add_argument("--streamed-size", type=int, default=5_000_000)
    p.add_argument("--streamed-queries", type=int, default=100)
    p.add_argument("--streamed-mem-mb", type=float, default=1024)
    p.add_argument("--streamed-engine", default="faiss", choices=["faiss", "numpy"])
    p.add_argument("--oracle", default="faiss", choices=["faiss", "numpy"],
                   help="in-memory exact search that gives the ground truth (the 'flat' row)")
    p.add_argument("--work", default="/tmp/negmine_search_scaling", help="where the corpora are written (disk)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "search_scaling.md"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


#### data: deterministic random unit vectors, written once as shards
def unit_block(seed: int, block: int, rows: int) -> np.ndarray:
    x = np.random.default_rng([seed, block]).standard_normal((rows, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def corpus(work: Path, n: int):
    from negmine.index.streamed import ShardStore

    path = work / f"corpus_{n}"
    try:
        store = ShardStore.open(path)
        if len(store) == n:
            return store
    except ValueError:
        pass
    store = ShardStore.create(path, DIM, shard_rows=GEN_BLOCK, overwrite=True)  # one file per block: no rewrites
    for b, start in enumerate(range(0, n, GEN_BLOCK)):
        store.append(unit_block(SEED, b, min(GEN_BLOCK, n - start)))
    return store


def queries(nq: int) -> np.ndarray:
    return unit_block(SEED + 1, 0, nq)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed_exact_search(index, q: np.ndarray, n: int, k: int, out: dict) -> tuple[np.ndarray, np.ndarray]:
    """Search once, recording time and GFLOP/s next to this machine's matmul throughput measured just before/after."""
    out["matmul_before"] = matmul_gflops(len(q))
    t = time.perf_counter()
    scores, ids = index.search(q, k)
    out["search_s"] = time.perf_counter() - t
    out["matmul_after"] = matmul_gflops(len(q))
    out["gflops"] = 2 * len(q) * n * DIM / out["search_s"] / 1e9
    return scores, ids


def matmul_gflops(nq: int, rows: int = 65536, repeat: int = 3) -> float:
    """Best-of-``repeat`` fp32 (nq × d) @ (d × rows) throughput with numpy's BLAS, in GFLOP/s."""
    a, b = unit_block(7, 0, nq), unit_block(8, 0, rows)
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b.T
        best = max(best, 2 * nq * rows * DIM / (time.perf_counter() - t) / 1e9)
    return best


#### one measurement per subprocess
def child(args: argparse.Namespace) -> dict:
    from negmine.index.ann import AnnIndex, recall_at_k
    from negmine.index.streamed import ShardStore, StreamedExactIndex

    work, n, kind = Path(args.work), args.n, args.child
    store = ShardStore.open(work / f"corpus_{n}")
    q = queries(args.queries)
    gt_path = work / f"gt_{n}_{args.queries}_{args.k}.npy"  # the oracle's ids, and next to them its scores
    gt_scores_path = work / f"gts_{n}_{args.queries}_{args.k}.npy"
    out: dict = {"n": n, "index": kind}
    if kind == "streamed":
        q = q[: args.streamed_queries]
        index = StreamedExactIndex(store, "ip", max_memory_mb=args.streamed_mem_mb, engine=args.streamed_engine)
        t = time.perf_counter()
        scores, ids = index.search(q, args.k)
        out.update(search_s=time.perf_counter() - t, queries=len(q), engine=index.engine,
                   block=index.block_sizes(len(q), args.k))
        if gt_path.exists():
            gt = np.load(gt_path)[: len(q)]
            out["ids_equal_in_memory"] = bool(np.array_equal(ids, gt))
            out["rows_equal"] = int((ids == gt).all(1).sum())
            gt_scores = np.load(gt_scores_path)[: len(q)]
            out["max_score_diff"] = float(np.abs(scores - gt_scores).max())
            out["recall"] = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, gt)]))
        out["peak_rss_mb"] = peak_rss_mb()
        return out
    if kind == "flat" and args.oracle == "numpy":
        kind = "numpy"
    if kind == "numpy":  # negmine's own exact scan (numpy BLAS + threshold pruning) over the in-memory matrix
        x = store.to_array()
        index = StreamedExactIndex(x, "ip", max_memory_mb=256, engine="numpy")
        out["factory"] = "negmine exact (numpy, pruned top-k)"
        out["build_s"] = 0.0
        scores, ids = timed_exact_search(index, q, n, args.k, out)
        if args.oracle == "numpy":  # this run's oracle
            np.save(gt_path, ids)
            np.save(gt_scores_path, scores)
        out["recall"] = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, np.load(gt_path))]))
        out["peak_rss_mb"] = peak_rss_mb()
        return out
    factory = {"flat": "Flat", "ivf": "ivf", "ivfpq": "ivfpq", "hnsw": "hnsw"}[kind]
    from negmine.index.ann import default_train_size, resolve_factory

    concrete = resolve_factory(factory, n, DIM)
    train_size = min(n, 40 * int(concrete.split(",")[0][3:])) if concrete.startswith("IVF") else None
    index = AnnIndex(DIM, factory, "ip", rerank=args.rerank if kind == "ivfpq" else None, refine_vectors=store,
                     expected_size=n, train_size=train_size or default_train_size(concrete, n) or None)
    out["factory"] = index.factory + (f" + re-rank {args.rerank}×k" if kind == "ivfpq" else "")
    t = time.perf_counter()
    index.add_from(store)
    out["build_s"] = time.perf_counter() - t
    if kind == "flat":
        scores, ids = timed_exact_search(index, q, n, args.k, out)
        np.save(gt_path, ids)
        np.save(gt_scores_path, scores)
        out["recall"] = 1.0
        out["peak_rss_mb"] = peak_rss_mb()
        return out
    gt = np.load(gt_path)
    settings = args.nprobe.split(",") if kind in ("ivf", "ivfpq") else args.ef_search.split(",")
    out["runs"] = []
    for value in settings:
        if kind == "hnsw":
            index.ef_search = int(value)
        else:
            index.nprobe = int(value)
        index._apply_search_params()
        t = time.perf_counter()
        recall = recall_at_k(index, None, q, args.k, exact=(None, gt))
        out["runs"].append({"param": f"{'efSearch' if kind == 'hnsw' else 'nprobe'}={value}",
                            "search_s": time.perf_counter() - t, "recall": recall})
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_child(args: argparse.Namespace, kind: str, n: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--n", str(n), "--work", args.work, "--queries",
           str(args.queries), "--k", str(args.k), "--nprobe", args.nprobe, "--ef-search", args.ef_search,
           "--rerank", str(args.rerank), "--streamed-queries", str(args.streamed_queries), "--streamed-mem-mb",
           str(args.streamed_mem_mb), "--streamed-engine", args.streamed_engine, "--oracle", args.oracle]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"n": n, "index": kind, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    print(json.dumps(result), flush=True)
    return result


def fmt_table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [f"| N | index | build (s) | search (s) | queries/s | peak RSS (MB) | recall@{args.k} | notes |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['n']:,} | {r['index']} | — | — | — | — | — | failed: {r['error'][:80]} |")
            continue
        if r["index"] in ("flat", "numpy"):
            note = (f"{r['gflops']:.1f} GFLOP/s = {r['gflops'] / max(r['matmul_before'], r['matmul_after']):.0%} of "
                    f"matmul ({r['matmul_before']:.1f} / {r['matmul_after']:.1f} GFLOP/s before/after)")
            lines.append(f"| {r['n']:,} | {r['factory']} | {r['build_s']:.1f} | {r['search_s']:.2f} | "
                         f"{args.queries / r['search_s']:,.0f} | {r['peak_rss_mb']:,.0f} | "
                         f"{'1 (oracle)' if r['index'] == 'flat' else format(r['recall'], '.4f')} | {note} |")
        elif r["index"] == "streamed":
            eq = r.get("ids_equal_in_memory")
            note = (f"max score diff {r.get('max_score_diff', float('nan')):.1e}; engine {r['engine']}, blocks "
                    f"{r['block'][0]} q × {r['block'][1]:,} rows, bound {args.streamed_mem_mb:g} MB; "
                    f"ids == in-memory flat: {eq} ({r.get('rows_equal')}/{r['queries']} rows identical)")
            lines.append(f"| {r['n']:,} | streamed exact | 0 | {r['search_s']:.1f} | "
                         f"{r['queries'] / r['search_s']:,.1f} | {r['peak_rss_mb']:,.0f} | "
                         f"{r.get('recall', float('nan')):.4f} | {note} |")
        else:
            for run in r["runs"]:
                lines.append(f"| {r['n']:,} | {r['factory']} | {r['build_s']:.1f} | {run['search_s']:.2f} | "
                             f"{args.queries / run['search_s']:,.0f} | {r['peak_rss_mb']:,.0f} | "
                             f"{run['recall']:.4f} | {run['param']} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    import faiss

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.indexes.split(",")
    results = []
    report = Report("search_scaling", "benchmarks/search_scaling.py", out=args.out)
    start = time.perf_counter()
    for n in sizes:
        t = time.perf_counter()
        corpus(work, n)
        print(f"corpus {n:,}: {time.perf_counter() - t:.1f} s", flush=True)
        for kind in kinds:
            limit = {"flat": args.flat_max, "numpy": args.flat_max, "ivf": args.ann_max, "ivfpq": args.ann_max,
                     "hnsw": args.hnsw_max}[kind]
            if n <= limit:
                with report.phase(f"{kind} {n:,}"):
                    results.append(run_child(args, kind, n))
        if n == args.streamed_size:
            with report.phase(f"streamed {n:,}"):
                results.append(run_child(args, "streamed", n))
    skipped = [f"{k} above {lim:,}" for k, lim in (("HNSW", args.hnsw_max), ("IVF/IVF-PQ", args.ann_max),
                                                   ("flat", args.flat_max)) if lim < max(sizes)]
    header = (f"# Search scaling\n\nRandom unit vectors, d = {DIM}, {args.queries} queries (random unit vectors), "
              f"k = {args.k}; recall@{args.k} against exact (FAISS Flat) search on the same queries. "
              f"faiss {faiss.__version__}, numpy {np.__version__}. "
              f"Each row is its own process: peak RSS = ru_maxrss of that process (corpus read from memory-mapped "
              f"shards on disk). IVF lists = ~4·√N (power of 2), trained on 40 vectors per list; IVF-PQ = PQ48x8 "
              f"codes with the top {args.rerank}·k re-scored exactly from the on-disk vectors. Not run (build cost "
              f"on 2 shared cores): {', '.join(skipped) or 'none'}. Total wall time "
              f"{(time.perf_counter() - start) / 60:.0f} min.\n\n")
    table = fmt_table(results, args)
    report.write(header + table, {"dim": DIM, "queries": args.queries, "k": args.k, "skipped": skipped,
                                  "faiss": faiss.__version__, "numpy": np.__version__,
                                  "total_minutes": (time.perf_counter() - start) / 60, "results": results})


if __name__ == "__main__":
    main()
