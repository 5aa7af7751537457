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
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import command_line  # noqa: E402

from negmine.io import atomic_open, package_versions, write_json  # noqa: E402
from negmine.pipeline import git_commit, hardware_info, hardware_text  # noqa: E402


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


#: the 100M-passage plan's inputs (assumptions, stated in the report)
PLAN = {"passages": 100_000_000, "dim": 768, "queries": 1_000_000, "k": 100,
        "gpu": {"H100 SXM 80 GB": (80, 989.4), "H200 141 GB": (141, 989.4)},  # GB, nominal dense fp16 TFLOP/s
        "gpu_efficiency": 0.5, "gpu_memory_usable": 0.8, "pq_bytes": 96, "ivf_lists": 65_536, "nprobe": 64,
        "rerank": 1000}


def cost_model(cpu_gflops: float, rescore: dict) -> dict:
    """Derived times for ``PLAN`` from the measured per-core throughput (CPU) and nominal peaks (GPU, derived)."""
    n, d, q = PLAN["passages"], PLAN["dim"], PLAN["queries"]
    flops = 2 * q * n * d
    cpu_core_h = flops / (cpu_gflops * 1e9) / 3600
    out = {"flat_flops": flops, "fp16_gb": n * d * 2 / 1e9, "fp32_gb": n * d * 4 / 1e9,
           "cpu_gflops_per_core_measured": cpu_gflops, "cpu_core_hours": cpu_core_h,
           "cpu_hours_on": {c: cpu_core_h / c for c in (64, 512, 4096)},
           "rescore_core_hours": rescore["us_per_query"] * 1e-6 * q / 3600, "gpus": {}}
    for name, (mem, tflops) in PLAN["gpu"].items():
        shards = math.ceil(out["fp16_gb"] / (mem * PLAN["gpu_memory_usable"]))
        per_gpu = tflops * 1e12 * PLAN["gpu_efficiency"]
        out["gpus"][name] = {"min_gpus_flat_fp16": shards,
                             "flat_minutes": {g: flops / (per_gpu * g) / 60 for g in sorted({shards, 8, 16})}}
    pq_gb = n * (PLAN["pq_bytes"] + 8) / 1e9  # codes + ids
    scanned = n * PLAN["nprobe"] / PLAN["ivf_lists"]
    out["ivfpq"] = {"index_gb": pq_gb, "codes_scanned_per_query": scanned,
                    "rerank_flops_per_query": 2 * PLAN["rerank"] * d,
                    "rerank_bytes_per_query_fp16": PLAN["rerank"] * d * 2,
                    "flat_over_ivfpq_work": (2 * n * d) / (scanned * PLAN["pq_bytes"] + 2 * PLAN["rerank"] * d)}
    return out


def cost_model_lines(m: dict) -> list[str]:
    p = PLAN
    lines = ["## Derived: 100M passages × 768-d", "",
             f"Inputs: {p['passages']:,} passages, d = {p['dim']}, {p['queries']:,} queries (a large mining run), "
             f"k = {p['k']}. Flat exact search is 2·Q·N·d = {m['flat_flops']:.2e} FLOP. Vectors: "
             f"{m['fp16_gb']:.0f} GB in fp16, {m['fp32_gb']:.0f} GB in fp32.", "",
             f"**CPU (derived from the measured {m['cpu_gflops_per_core_measured']:.1f} GFLOP/s per core above):** "
             f"{m['cpu_core_hours']:,.0f} core-hours, i.e. "
             + ", ".join(f"{h:,.1f} h on {c:,} cores" for c, h in m["cpu_hours_on"].items())
             + f" (Ray: one shard task per core). The float64 rescoring of the merged candidates adds "
             f"{m['rescore_core_hours']:.2f} core-hours on the driver.", "",
             f"**GPU (derived, NOT measured: nominal dense fp16 peak × an assumed {p['gpu_efficiency']:.0%} "
             f"efficiency for blocked matmul + top-k; `benchmarks/gpu_check.sh` measures the real fraction):**", "",
             "| GPU | GPUs to hold the fp16 shards | sharded flat, minutes on that many / 8 / 16 GPUs |",
             "|---|---:|---|"]
    for name, g in m["gpus"].items():
        times = " / ".join(f"{t:.1f} ({n})" for n, t in g["flat_minutes"].items())
        lines.append(f"| {name} | {g['min_gpus_flat_fp16']} | {times} |")
    ivf = m["ivfpq"]
    lines += ["", f"**IVF{p['ivf_lists']},PQ{p['pq_bytes']}x8 (derived):** codes + ids {ivf['index_gb']:.1f} GB "
              f"(one GPU or one host holds them); nprobe {p['nprobe']} scans ~{ivf['codes_scanned_per_query']:,.0f} "
              f"codes per query; exact re-ranking of {p['rerank']:,} candidates reads "
              f"{ivf['rerank_bytes_per_query_fp16'] / 1e6:.1f} MB of fp16 vectors per query. Roughly "
              f"{ivf['flat_over_ivfpq_work']:,.0f}× less arithmetic than flat, but approximate: mining needs the "
              "exact head of each list, so measure recall@k (`negmine index build`) before trusting it.", ""]
    return lines


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
        "commit": git_commit(),
        "hardware": hardware_info(),
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
             f"Commit: {report['commit']}. Hardware: {hardware_text(report['hardware'])}.", "",
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
    report["cost_model"] = cost_model(max(r["gflops"] for r in rows if "gflops" in r), report["rescore"])
    lines += cost_model_lines(report["cost_model"])
    text = "\n".join(lines)
    print(text)
    with atomic_open(args.out) as handle:
        handle.write(text)
    write_json(Path(args.out).with_suffix(".json"), report)


if __name__ == "__main__":
    main()
