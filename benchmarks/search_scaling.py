"""Search scaling: exact (FAISS Flat), IVF-Flat, IVF-PQ + exact re-rank, HNSW, and streamed exact search, on random
unit vectors (d = 384) from 10k to 5M rows.

For every (size, index): build time (train + add), search time for the query set, peak RSS of the process that did
it (each measurement runs in its own subprocess, with the corpus on disk as memory-mapped shards, so the RSS is the
index's, not the generator's), and recall@k against exact search. Flat search throughput is reported in GFLOP/s
(2·nq·N·d / time) next to this machine's fp32 matrix-product throughput measured in the same process just before
and after. Streamed exact search (out-of-core, memory bound ``--streamed-mem-mb``) runs on the largest size and its
ids are compared with in-memory exact search on the same queries.

Random unit vectors in 384-d have no cluster structure: the worst case for IVF/HNSW/PQ. ``--real scifact,arguana``
adds the contrast: the same factories and search settings as the 10k random rows (IVF256 at nprobe 32/128, IVF256-PQ48
with exact re-ranking, HNSW32 at efSearch 128/512) built over real corpora embedded by all-MiniLM-L6-v2 (through the
embedding cache, as ``negmine index build``), recall@k against exact search on a sample of their test queries.

One invocation writes the whole page (tables and the reading, computed from the measurements):

    python benchmarks/search_scaling.py --sizes 10000,100000 --streamed-size 100000          # minutes
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/search_scaling.py --queries 200 --ann-max 5000000 \
        --hnsw-max 1000000 --streamed-queries 50 --real scifact,arguana                     # results/search_scaling.md

The second needs about 19 GB of RAM (IVF-Flat over 5M vectors) and, on one core, 41 minutes on an Intel Xeon with
AVX-512 (about an hour and a half on a busy AMD EPYC); HNSW over 5M vectors adds over an hour of build
(``--hnsw-max 5000000``). Absolute times on shared machines are noisy; the
ratios are measured in the same run. On oversubscribed cores set ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``
(FAISS's OpenMP threads spin-wait).
"""

from __future__ import annotations

import argparse
import json
import os
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
FLAT_DETECT_MAX = 1_000_000  # the slow-kernel comparison row stops here (its point is made at every size)
SEED = 0
GEN_BLOCK = 500_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000,5000000")
    p.add_argument("--indexes", default="flat,flat-detect,numpy,ivf,ivfpq,hnsw",
                   help="flat = FAISS Flat (the oracle, run first); flat-detect = the same with faiss's bundled "
                        "OpenBLAS left to pick its kernels itself (negmine._blas); numpy = negmine's numpy exact scan")
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
    p.add_argument("--real", default="", help="comma-separated BEIR datasets (names or folders): the 10k random "
                   "rows' ANN settings on their MiniLM embeddings")
    p.add_argument("--real-queries", type=int, default=300, help="test queries for the real corpora's recall")
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
    if kind in ("flat", "flat-detect"):
        from negmine._blas import faiss_blas_core

        out["blas_core"] = faiss_blas_core()
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
    factory = {"flat": "Flat", "flat-detect": "Flat", "ivf": "ivf", "ivfpq": "ivfpq", "hnsw": "hnsw"}[kind]
    from negmine.index.ann import default_train_size, resolve_factory

    concrete = resolve_factory(factory, n, DIM)
    train_size = min(n, 40 * int(concrete.split(",")[0][3:])) if concrete.startswith("IVF") else None
    index = AnnIndex(DIM, factory, "ip", rerank=args.rerank if kind == "ivfpq" else None, refine_vectors=store,
                     expected_size=n, train_size=train_size or default_train_size(concrete, n) or None)
    out["factory"] = index.factory + (f" + re-rank {args.rerank}×k" if kind == "ivfpq" else "")
    t = time.perf_counter()
    index.add_from(store)
    out["build_s"] = time.perf_counter() - t
    if kind == "flat-detect":
        _, ids = timed_exact_search(index, q, n, args.k, out)
        out["recall"] = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, np.load(gt_path))]))
        out["peak_rss_mb"] = peak_rss_mb()
        return out
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
        index.set_search_params(**{"ef_search" if kind == "hnsw" else "nprobe": int(value)})
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
    # flat-detect: an OPENBLAS_CORETYPE already set (empty: OpenBLAS detects the CPU itself) is left alone by negmine
    env = {**os.environ, "OPENBLAS_CORETYPE": ""} if kind == "flat-detect" else None
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
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
        if r["index"] in ("flat", "flat-detect", "numpy"):
            note = (f"{r['gflops']:.1f} GFLOP/s = {r['gflops'] / max(r['matmul_before'], r['matmul_after']):.0%} of "
                    f"matmul ({r['matmul_before']:.1f} / {r['matmul_after']:.1f} GFLOP/s before/after)"
                    + (f"; faiss's OpenBLAS kernels: {r['blas_core']}" if r.get("blas_core") else ""))
            name = r["factory"] + (" (OpenBLAS left to detect the CPU)" if r["index"] == "flat-detect" else "")
            lines.append(f"| {r['n']:,} | {name} | {r['build_s']:.1f} | {r['search_s']:.2f} | "
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


#### real corpora: the random 10k rows' settings on MiniLM embeddings
REAL_SETTINGS: tuple[tuple[str, dict[str, int]], ...] = (
    ("IVF256,Flat", {"nprobe": 32}), ("IVF256,Flat", {"nprobe": 128}),
    ("IVF256,PQ48x8", {"nprobe": 32, "rerank": 10}), ("IVF256,PQ48x8", {"nprobe": 128, "rerank": 10}),
    ("HNSW32", {"ef_search": 128}), ("HNSW32", {"ef_search": 512}))


def _param(options: dict[str, int]) -> str:
    return f"efSearch={options['ef_search']}" if "ef_search" in options else f"nprobe={options['nprobe']}"


def real_recall(args: argparse.Namespace) -> list[dict]:
    """Recall@k of each of :data:`REAL_SETTINGS` on each ``--real`` dataset: MiniLM embeddings of the corpus and of a
    seeded sample of its test queries (through the embedding cache, as ``negmine index build``), each factory built
    once and searched at each of its settings, against exact search on the same queries."""
    from negmine.data import load_data
    from negmine.encoders import EmbeddingCache, load_encoder
    from negmine.index.ann import AnnIndex, recall_at_k, sample_queries
    from negmine.index.exact import ExactIndex
    from negmine.retrieve import unique_encode

    encoder, cache = load_encoder("minilm"), EmbeddingCache()
    rows = []
    for dataset in filter(None, args.real.split(",")):
        data = load_data(dataset, "test", unknown_qrels="keep")
        doc_ids, qids = data.corpus_ids(), data.split_query_ids
        docs = np.asarray(unique_encode(encoder, data.doc_texts(doc_ids), "document", cache, 32, False, "corpus"),
                          dtype=np.float32)
        picked = [data.queries[qids[i]] for i in sample_queries(len(qids), args.real_queries, SEED)]
        q = np.asarray(unique_encode(encoder, picked, "query", cache, 32, False, "queries"), dtype=np.float32)
        exact = ExactIndex(docs.shape[1])
        exact.add(docs)
        truth = exact.search(q, args.k)
        for factory in dict.fromkeys(f for f, _ in REAL_SETTINGS):
            settings = [options for f, options in REAL_SETTINGS if f == factory]
            rerank = settings[0].get("rerank")
            index = AnnIndex(docs.shape[1], factory, "ip", rerank=rerank, refine_vectors=docs if rerank else None,
                             seed=SEED)
            t = time.perf_counter()
            index.add(docs)
            build_s = time.perf_counter() - t
            for options in settings:
                index.set_search_params(nprobe=options.get("nprobe"), ef_search=options.get("ef_search"))
                rows.append({"corpus": Path(dataset).name, "n": len(docs), "factory": factory, "rerank": rerank,
                             "param": _param(options), "recall": recall_at_k(index, None, q, args.k, exact=truth),
                             "queries": len(q), "build_s": build_s})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _random_twin(results: list[dict], factory: str, param: str) -> dict | None:
    """The random-vector run with this factory and setting at the smallest size measured (10k on the page)."""
    runs = [{"n": r["n"], **run} for r in results if "runs" in r and r["factory"].split(" ")[0] == factory
            for run in r["runs"] if run["param"] == param]
    return min(runs, key=lambda run: run["n"]) if runs else None


def real_table(rows: list[dict], results: list[dict], k: int) -> str:
    lines = [f"| corpus | N | index | setting | recall@{k} (real, test queries) | recall@{k} (random vectors) | "
             "build (s) |", "|---|---:|---|---|---:|---:|---:|"]
    for r in rows:
        twin = _random_twin(results, r["factory"], r["param"])
        index = r["factory"] + (f" + re-rank {r['rerank']}×k" if r["rerank"] else "")
        lines.append(f"| {r['corpus']} | {r['n']:,} | {index} | {r['param']} | {r['recall']:.4f} | "
                     + (f"{twin['recall']:.4f} ({twin['n']:,})" if twin else "—") + f" | {r['build_s']:.1f} |")
    return "\n".join(lines)


ANN_LABELS = {"ivf": "IVF", "ivfpq": "IVF-PQ", "hnsw": "HNSW"}  # the approximate --indexes, as the reading names them


def _span(values: list[float], fmt: str = "{:.0%}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def reading(results: list[dict], real: list[dict], queries: int, k: int = K) -> list[str]:
    """What the tables say, computed from them (no figure typed in)."""
    ok = [r for r in results if "error" not in r]
    lines = []
    flat = [r for r in ok if r["index"] == "flat" and r["n"] >= 100_000]
    if flat:
        eff = [r["gflops"] / max(r["matmul_before"], r["matmul_after"]) for r in flat]
        big = max(flat, key=lambda r: r["n"])
        lines.append(f"- Exact search (FAISS Flat) runs at {_span(eff)} of this core's fp32 matmul throughput from "
                     f"{min(r['n'] for r in flat):,} to {big['n']:,} vectors; {queries} queries against "
                     f"{big['n']:,} vectors take {big['search_s']:.1f} s.")
    detect = {r["n"]: r for r in ok if r["index"] == "flat-detect"}
    pairs = [(r, detect[r["n"]]) for r in ok if r["index"] == "flat" and r["n"] in detect]
    if pairs:
        chosen, found = pairs[0][0].get("blas_core"), pairs[0][1].get("blas_core")
        speedups = [d["search_s"] / r["search_s"] for r, d in pairs]
        sizes = ", ".join(f"{r['n']:,}" for r, _ in pairs)
        eff = [d["gflops"] / max(d["matmul_before"], d["matmul_after"]) for _, d in pairs]
        lines.append(f"- faiss-cpu's bundled OpenBLAS, left to detect this CPU, runs its {found} kernels: FAISS Flat "
                     f"then reaches {_span(eff)} of matmul; with the {chosen} kernels negmine selects for it "
                     f"(negmine._blas) the same searches run {_span(speedups, '{:.2f}')}× faster "
                     f"({sizes} vectors).")
    for r in ok:
        if r["index"] == "streamed" and "ids_equal_in_memory" in r:
            lines.append(f"- Streamed exact search over {r['n']:,} × {DIM} ({r['n'] * DIM * 4 / 1e9:.1f} GB of "
                         f"vectors) peaks at {r['peak_rss_mb'] / 1024:.2f} GB RSS; its ids equal in-memory exact "
                         f"search's for {r['rows_equal']} of {r['queries']} queries (max score difference "
                         f"{r['max_score_diff']:.1e}).")
    by_setting: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in ok:
        for run in r.get("runs", []):
            by_setting.setdefault((ANN_LABELS[r["index"]], run["param"]), []).append((r["n"], run["recall"]))
    for (kind, param), points in sorted(by_setting.items()):
        if len(points) > 1:
            lines.append(f"- {kind} at {param} on random vectors: recall@{k} "
                         + ", ".join(f"{v:.2f} ({n:,})" for n, v in sorted(points)) + ".")
    largest = max((r["n"] for r in ok if r["index"] in ("ivf", "ivfpq")), default=None)
    ivf = {r["index"]: r for r in ok if r["n"] == largest and r["index"] in ("ivf", "ivfpq")}
    if len(ivf) == 2:
        pq, flat_ivf = (ivf[kind]["peak_rss_mb"] / 1024 for kind in ("ivfpq", "ivf"))
        lines.append(f"- Memory at {largest:,} vectors: IVF-PQ with exact re-ranking peaks at {pq:.1f} GB RSS, "
                     f"IVF-Flat at {flat_ivf:.1f} GB (both count the memory-mapped shard pages read while adding).")
    hnsw = sorted((r for r in ok if r["index"] == "hnsw"), key=lambda r: r["n"])
    if hnsw:
        lines.append("- HNSW32 build on this core: " + ", ".join(f"{r['build_s'] / 60:.1f} min for {r['n']:,}"
                                                                  for r in hnsw) + ".")
    if real:
        for factory, options in REAL_SETTINGS:
            param = _param(options)
            vals = [r["recall"] for r in real if r["factory"] == factory and r["param"] == param]
            twin = _random_twin(results, factory, param)
            lines.append(f"- {factory} at {param} on real MiniLM embeddings: recall@{k} {_span(vals, '{:.2f}')}"
                         + (f", against {twin['recall']:.2f} on {twin['n']:,} random vectors" if twin else "")
                         + ".")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    from negmine._optional import require

    faiss = require("faiss", "search_scaling")  # as negmine imports it (negmine._blas)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.indexes.split(",")
    results = []
    report = Report("search_scaling", "benchmarks/search_scaling.py", argv, out=args.out)
    start = time.perf_counter()
    for n in sizes:
        t = time.perf_counter()
        corpus(work, n)
        print(f"corpus {n:,}: {time.perf_counter() - t:.1f} s", flush=True)
        for kind in kinds:
            limit = {"flat": args.flat_max, "flat-detect": min(args.flat_max, FLAT_DETECT_MAX), "numpy": args.flat_max,
                     "ivf": args.ann_max, "ivfpq": args.ann_max, "hnsw": args.hnsw_max}[kind]
            if n <= limit:
                with report.phase(f"{kind} {n:,}"):
                    results.append(run_child(args, kind, n))
        if n == args.streamed_size:
            with report.phase(f"streamed {n:,}"):
                results.append(run_child(args, "streamed", n))
    real = []
    if args.real:
        with report.phase("real corpora"):
            real = real_recall(args)
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
    body = header + fmt_table(results, args)
    if real:
        body += ("\n\n## The same settings on real corpora\n\nall-MiniLM-L6-v2 embeddings (384-d) of each "
                 "corpus (through the embedding cache), each index built once and searched at each setting; "
                 f"recall@{args.k} against exact search on {args.real_queries} test queries (fewer where the dataset "
                 "has fewer). The random column is the same factory and setting on random vectors at the smallest "
                 "size above.\n\n"
                 + real_table(real, results, args.k))
    body += "\n\n## Reading\n\n" + "\n".join(reading(results, real, args.queries, args.k))
    report.write(body, {"dim": DIM, "queries": args.queries, "k": args.k, "skipped": skipped,
                        "faiss": faiss.__version__, "numpy": np.__version__,
                        "total_minutes": (time.perf_counter() - start) / 60, "results": results, "real": real})


if __name__ == "__main__":
    main()
