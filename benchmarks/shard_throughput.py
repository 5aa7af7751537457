"""Per-shard exact-search throughput on this CPU, the measured input of the 100M-passage cost model in
``index/README.md``.

One shard of ``--rows`` random unit vectors (d = ``--dim``), ``--queries`` queries, k = 100, one thread (as one Ray
worker per core runs it): FAISS ``Flat`` (through :class:`negmine.index.ann.AnnIndex`, BLAS path), negmine's numpy
:class:`~negmine.index.exact.ExactIndex` (what a Ray shard task runs) and :class:`~negmine.index.torch_exact.
TorchExactIndex` on the CPU; plus the fp32 matrix-product rate of the same core and the cost of the exact float64
rescoring of the merged candidates (:func:`negmine.index.exact.exact_scores`) per query. Throughput is
GFLOP/s = 2 · queries · rows · dim / wall time.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/shard_throughput.py   # ~1 minute
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from negmine.io import atomic_open, command_line, package_versions, write_json  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "shard_throughput.md"))
    return p.parse_args()


def matmul_gflops(dim: int) -> float:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((256, dim), dtype=np.float32)
    b = rng.standard_normal((dim, 65_536), dtype=np.float32)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 256 * dim * 65_536 / (time.perf_counter() - t) / 1e9)
    return best


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    flops = 2 * args.queries * args.rows * args.dim
    before = matmul_gflops(args.dim)
    rows, ids = [], {}

    from negmine.index.exact import ExactIndex, exact_scores

    def run(name, build):
        index = build()
        index.add(x)
        seconds, (_, found) = timed(lambda: index.search(q, args.k))
        ids[name] = found
        rows.append({"index": name, "seconds": seconds, "gflops": flops / seconds / 1e9})
        print(rows[-1], flush=True)

    try:
        from negmine.index.ann import AnnIndex

        run("FAISS Flat (AnnIndex)", lambda: AnnIndex(args.dim, "Flat"))
    except ImportError as err:
        rows.append({"index": "FAISS Flat (AnnIndex)", "skipped": str(err)})
    run("negmine ExactIndex (numpy)", lambda: ExactIndex(args.dim))
    from negmine.index.torch_exact import TorchExactIndex

    run("negmine TorchExactIndex (CPU, fp32)", lambda: TorchExactIndex(args.dim, device="cpu"))
    after = matmul_gflops(args.dim)
    reference = ids["negmine ExactIndex (numpy)"]
    for row in rows:
        if row["index"] in ids:
            row["same_ids_as_numpy"] = float((ids[row["index"]] == reference).mean())
            row["of_matmul"] = row["gflops"] / max(before, after)
    cand = np.concatenate([reference, reference[:, :16]], axis=1)  # k + the 16-candidate margin
    rescore_s, _ = timed(lambda: exact_scores(q, x, cand))
    report = {
        "command": command_line("benchmarks/shard_throughput.py"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average": os.getloadavg()[0],
                    "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}},
        "versions": package_versions(),
        "shard": {"rows": args.rows, "dim": args.dim, "queries": args.queries, "k": args.k},
        "matmul_gflops": {"before": before, "after": after},
        "rows": rows,
        "rescore": {"candidates_per_query": cand.shape[1], "seconds": rescore_s,
                    "us_per_query": rescore_s / args.queries * 1e6},
    }
    lines = ["# Per-shard exact-search throughput (one CPU core)", "",
             f"Command: `{report['command']}`", "",
             f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average "
             f"{report['machine']['load_average']:.1f}), threads {report['machine']['threads']}; one shard of "
             f"{args.rows:,} random unit vectors × {args.dim}, {args.queries} queries, k = {args.k}; fp32 matmul on "
             f"this core {before:.1f} / {after:.1f} GFLOP/s (before / after).", "",
             "| index | search (s) | GFLOP/s | of matmul | same ids as numpy |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['index']} | skipped: {row['skipped']} | | | |")
        else:
            lines.append(f"| {row['index']} | {row['seconds']:.2f} | {row['gflops']:.1f} | {row['of_matmul']:.0%} "
                         f"| {row['same_ids_as_numpy']:.4f} |")
    lines += ["", f"Exact float64 rescoring of the merged candidates ({cand.shape[1]} per query, "
              f"`negmine.index.exact.exact_scores`): {report['rescore']['us_per_query']:.0f} µs per query.", ""]
    text = "\n".join(lines)
    print(text)
    with atomic_open(args.out) as handle:
        handle.write(text)
    write_json(Path(args.out).with_suffix(".json"), report)


if __name__ == "__main__":
    main()
