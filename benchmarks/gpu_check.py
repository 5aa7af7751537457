"""The GPU check's measurements (run through ``benchmarks/gpu_check.sh``, which runs ``pytest -m gpu`` first).

Steps, each skipped with its reason when the time budget (``--budget-s``) or the hardware does not allow it:

1. environment: torch, CUDA, devices, memory;
2. ``pytest -m gpu``: passed / failed / skipped, read from the JUnit XML the shell script wrote;
3. matrix-product peak: the device's nominal dense fp16/bf16 tensor peak (table below) and a measured
   8192×8192×8192 product;
4. encoding: docs/s of all-MiniLM-L6-v2 in fp16 on the SciFact corpus (after a warm-up), and the cosine of its
   vectors to fp32's on a sample;
5. exact search through torch (:class:`negmine.index.torch_exact.TorchExactIndex`, blocked matmul + top-k) in fp16
   and bf16: queries/s and GFLOP/s (2 · queries · rows · dim per search) against both peaks, and recall@100 of a
   query sample against the fp32 numpy oracle;
6. the top-k > 2048 path (FAISS GPU's limit; the torch index has none): k = 4096, checked against the oracle;
7. sharding over every visible GPU when there are several: ids equal to the one-GPU search, and the speed-up.

``--cpu`` runs the same code on the CPU with tiny sizes (what the test suite exercises); its report says so.
Writes ``gpu_check.md`` and ``gpu_check.json`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import command_line  # noqa: E402

from negmine.io import atomic_open, write_json  # noqa: E402

#: nominal dense fp16/bf16 tensor-core peak in TFLOP/s (vendor data sheets, without sparsity), by name fragment
NOMINAL_TFLOPS = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM (the name reads "NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)

GPU_SIZES = {
    "rows": 2_000_000,
    "dim": 768,
    "queries": 8192,
    "k": 100,
    "chunk": 250_000,
    "oracle_queries": 128,
    "large_k": 4096,
    "large_k_queries": 32,
    "encode_docs": None,
    "encode_batch": 256,
    "cos_docs": 512,
}
CPU_SIZES = {
    "rows": 20_000,
    "dim": 64,
    "queries": 256,
    "k": 50,
    "chunk": 5_000,
    "oracle_queries": 64,
    "large_k": 2100,
    "large_k_queries": 8,
    "encode_docs": 32,
    "encode_batch": 16,
    "cos_docs": 16,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="run on the CPU with tiny sizes (a dry run of the script)")
    p.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--junit", default=None, help="JUnit XML of the `pytest -m gpu` run")
    p.add_argument("--pytest-rc", type=int, default=None)
    p.add_argument("--model", default=None, help="all-MiniLM-L6-v2 folder (default: $NEGMINE_MODELS, bundled)")
    p.add_argument("--data", default="scifact", help="BEIR folder or name under $NEGMINE_DATA")
    p.add_argument("--budget-s", type=float, default=300.0, help="stop starting new steps after this many seconds")
    p.add_argument("--command", default=None, help="the command line to print in the report")
    return p.parse_args(argv)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def environment(torch, cpu: bool) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "commit": _git("rev-parse", "--short", "HEAD"),
        "mode": "cpu (dry run)" if cpu else "gpu",
        "devices": [],
    }
    if not cpu and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            env["devices"].append(
                {
                    "name": prop.name,
                    "memory_gib": round(prop.total_memory / 2**30, 1),
                    "multiprocessors": prop.multi_processor_count,
                }
            )
    return env


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def pytest_summary(junit: str | None, rc: int | None) -> dict:
    if not junit or not Path(junit).exists():
        return {"ran": False, "rc": rc, "reason": "no JUnit XML (pytest did not run or crashed before writing it)"}
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for s in suites
        for case in s.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return {"ran": True, "rc": rc, "passed": passed, **total, "failed_tests": failed}


def nominal_peak(name: str) -> float | None:
    for fragment, tflops in NOMINAL_TFLOPS:
        if fragment in name:
            return tflops
    return None


def matmul_peak(torch, device: str, cpu: bool) -> dict:
    n = 512 if cpu else 8192
    out = {}
    for dtype_name in ("fp32",) if cpu else ("fp16", "bf16"):
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        sync(torch, device)
        reps = 3 if cpu else 20
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(torch, device)
        out[dtype_name] = 2 * n**3 * reps / (time.perf_counter() - t) / 1e9
    return {"size": n, "gflops": out}


def resolve_model(arg: str | None) -> str:
    if arg:
        return arg
    models = os.environ.get("NEGMINE_MODELS")
    if models and (Path(models) / "all-MiniLM-L6-v2").is_dir():
        return str(Path(models) / "all-MiniLM-L6-v2")
    from negmine.encoders.presets import bundled_minilm_path

    path = bundled_minilm_path()
    if path is None:
        raise FileNotFoundError("no all-MiniLM-L6-v2 folder: pass --model or set $NEGMINE_MODELS")
    return str(path)


def encoding(torch, args, device: str, sizes: dict) -> dict:
    from negmine.data import doc_text, load_beir_corpus, resolve_data_path
    from negmine.encoders.st import SentenceTransformerEncoder

    folder = Path(resolve_data_path(args.data))
    corpus = load_beir_corpus(next(p for p in sorted(folder.iterdir()) if p.name.startswith("corpus.jsonl")))
    docs = [doc_text(d) for d in corpus.values()][: sizes["encode_docs"]]
    precision = "fp32" if args.cpu else "fp16"
    model = resolve_model(args.model)
    enc = SentenceTransformerEncoder(model, precision=precision, device=device)
    enc.encode_corpus(docs[: sizes["encode_batch"] * 2], batch_size=sizes["encode_batch"])  # warm-up
    sync(torch, device)
    t = time.perf_counter()
    emb = enc.encode_corpus(docs, batch_size=sizes["encode_batch"])
    sync(torch, device)
    seconds = time.perf_counter() - t
    out = {
        "model": Path(model).name,
        "precision": precision,
        "docs": len(docs),
        "batch_size": sizes["encode_batch"],
        "max_seq_length": int(enc.model.max_seq_length),
        "seconds": seconds,
        "docs_per_s": len(docs) / seconds,
    }
    if not args.cpu:
        ref = SentenceTransformerEncoder(model, precision="fp32", device=device)
        ref.model.float()  # transformers 5 loads a checkpoint in its own dtype: the carried copy is fp16
        sample = docs[: sizes["cos_docs"]]
        cos = (ref.encode_corpus(sample, batch_size=64) * emb[: len(sample)]).sum(1)
        out.update(cos_to_fp32_mean=float(cos.mean()), cos_to_fp32_min=float(cos.min()))
    return out


def make_vectors(torch, sizes: dict, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, sizes["rows"], sizes["chunk"]):
        x = torch.randn(min(sizes["chunk"], sizes["rows"] - start), sizes["dim"], generator=gen)
        chunks.append(torch.nn.functional.normalize(x, dim=1).numpy())
    q = torch.nn.functional.normalize(torch.randn(sizes["queries"], sizes["dim"], generator=gen), dim=1).numpy()
    return chunks, q


def build(chunks: list[np.ndarray], dim: int, devices, dtype: str):
    from negmine.index.torch_exact import TorchExactIndex

    index = TorchExactIndex(dim, device=devices, dtype=dtype)
    for x in chunks:
        index.add(x)
    return index


def oracle(chunks: list[np.ndarray], q: np.ndarray, k: int) -> np.ndarray:
    from negmine.index.exact import ExactIndex

    index = ExactIndex(q.shape[1])
    for x in chunks:
        index.add(x)
    return index.search(q, k)[1]


def timed_search(torch, index, q: np.ndarray, k: int, device: str) -> tuple[float, np.ndarray]:
    index.search(q[: min(len(q), 512)], k)  # warm-up (kernels, allocator)
    sync(torch, device)
    t = time.perf_counter()
    _, ids = index.search(q, k)
    sync(torch, device)
    return time.perf_counter() - t, ids


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)]))


def search_steps(torch, args, sizes: dict, budget: Budget, peaks: dict, report: dict) -> None:
    devices = ["cpu"] if args.cpu else ["cuda:0"]
    chunks, q = make_vectors(torch, sizes)
    n, d, nq, k = sizes["rows"], sizes["dim"], len(q), sizes["k"]
    flops = 2 * nq * n * d
    sample = q[: sizes["oracle_queries"]]
    truth = oracle(chunks, sample, k)
    report["search"] = {"rows": n, "dim": d, "queries": nq, "k": k, "runs": []}
    single_ids = None
    for dtype in ("fp32",) if args.cpu else ("fp16", "bf16"):
        if budget.left() < 30:
            report["search"]["runs"].append({"dtype": dtype, "skipped": "time budget"})
            continue
        index = build(chunks, d, devices, dtype)
        seconds, ids = timed_search(torch, index, q, k, devices[0])
        gflops = flops / seconds / 1e9
        run = {
            "dtype": dtype,
            "seconds": seconds,
            "queries_per_s": nq / seconds,
            "gflops": gflops,
            "recall_at_k_vs_fp32_oracle": overlap(ids[: len(sample)], truth),
            "vs_measured_matmul": gflops / peaks["measured"][dtype] if dtype in peaks["measured"] else None,
            "vs_nominal": gflops / (peaks["nominal_tflops"] * 1e3) if peaks.get("nominal_tflops") else None,
        }
        report["search"]["runs"].append(run)
        if single_ids is None:
            single_ids, single_seconds, single_dtype = ids, seconds, dtype
            if budget.left() > 30:  # top-k > 2048 on the same index
                kq = q[: sizes["large_k_queries"]]
                big = sizes["large_k"]
                sync(torch, devices[0])
                t = time.perf_counter()
                s_big, i_big = index.search(kq, big)
                sync(torch, devices[0])
                report["large_k"] = {
                    "k": big,
                    "queries": len(kq),
                    "dtype": dtype,
                    "seconds": time.perf_counter() - t,
                    "prefix_equals_top_k_search": bool((i_big[:, :k] == ids[: len(kq)]).all()),
                    "recall_vs_fp32_oracle": overlap(i_big, oracle(chunks, kq, big)),
                    "sorted": bool((np.diff(s_big, axis=1) <= 0).all()),
                }
        del index
        if not args.cpu:
            torch.cuda.empty_cache()
    n_gpus = torch.cuda.device_count() if not args.cpu and torch.cuda.is_available() else 0
    if single_ids is None:
        return
    if args.cpu:
        shard_devices = ["cpu", "cpu"]  # two shards on one CPU: exercises the sharding and merge code
    elif n_gpus >= 2:
        shard_devices = [f"cuda:{i}" for i in range(n_gpus)]
    else:
        report["multi_gpu"] = {"skipped": f"{n_gpus} GPU visible"}
        return
    if budget.left() < 30:
        report["multi_gpu"] = {"skipped": "time budget"}
        return
    index = build(chunks, d, shard_devices, single_dtype)
    seconds, ids = timed_search(torch, index, q, k, shard_devices[0])
    report["multi_gpu"] = {
        "devices": shard_devices,
        "dtype": single_dtype,
        "seconds": seconds,
        "gflops": flops / seconds / 1e9,
        "speedup_vs_one": single_seconds / seconds,
        "ids_equal_one_device": bool((ids == single_ids).all()),
    }


def run(args: argparse.Namespace) -> dict:
    import torch

    budget = Budget(args.budget_s)
    sizes = CPU_SIZES if args.cpu else GPU_SIZES
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device; use --cpu for a dry run")
    device = "cpu" if args.cpu else "cuda:0"
    report: dict = {
        "environment": environment(torch, args.cpu),
        "pytest": pytest_summary(args.junit, args.pytest_rc),
        "sizes": sizes,
        "errors": {},
    }
    name = report["environment"]["devices"][0]["name"] if report["environment"]["devices"] else "CPU"
    peaks = {"device": name, "nominal_tflops": nominal_peak(name) if not args.cpu else None}
    for step in ("peak", "encoding", "search"):
        if budget.left() < 20:
            report["errors"][step] = "skipped: time budget"
            continue
        try:
            if step == "peak":
                peaks["measured"] = matmul_peak(torch, device, args.cpu)["gflops"]
                report["peak"] = peaks
            elif step == "encoding":
                report["encoding"] = encoding(torch, args, device, sizes)
            else:
                search_steps(torch, args, sizes, budget, peaks, report)
        except Exception as err:  # noqa: BLE001 - one broken step must not lose the others' figures
            report["errors"][step] = f"{type(err).__name__}: {err}"
        print(f"[gpu_check] {step} done at {time.perf_counter() - budget.start:.0f} s", flush=True)
    report["wall_s"] = time.perf_counter() - budget.start
    return report


def fmt(value, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def markdown(report: dict, command: str) -> str:
    env, lines = report["environment"], []
    devices = ", ".join(f"{d['name']} ({d['memory_gib']} GiB)" for d in env["devices"]) or "none (CPU)"
    lines += [
        "# GPU check" + (" — CPU dry run (not GPU figures)" if env["mode"] != "gpu" else ""),
        "",
        f"Command: `{command}`",
        "",
        f"Commit {env['commit'] or '?'}; torch {env['torch']} (CUDA {env['cuda']}), Python {env['python']}, "
        f"{env['machine']}, {env['cpu_count']} CPU cores, load average {env['load_average']:.1f}; "
        f"devices: {devices}. Wall time {report['wall_s']:.0f} s.",
        "",
    ]
    pt = report["pytest"]
    lines += [
        "## pytest -m gpu",
        "",
        (
            f"{pt['passed']} passed, {pt['failures'] + pt['errors']} failed, {pt['skipped']} skipped "
            f"(exit code {pt['rc']})."
            if pt["ran"]
            else f"Not run: {pt['reason']}."
        ),
        "",
    ]
    lines += [f"Failed: `{t}`" for t in pt.get("failed_tests", [])]
    if "peak" in report:
        peak = report["peak"]
        measured = ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peak["measured"].items())
        nominal = "unknown"
        if peak["nominal_tflops"]:
            nominal = f"{peak['nominal_tflops'] * 1e3:,.0f} GFLOP/s dense fp16/bf16 (data sheet)"
        lines += [
            "## Matrix-product peak",
            "",
            f"Nominal: {nominal}. Measured ({report['peak']['device']}, "
            f"{'512' if env['mode'] != 'gpu' else '8192'}³ product): {measured}.",
            "",
        ]
    if "encoding" in report:
        e = report["encoding"]
        cos = (
            f"; cosine to fp32 mean {e['cos_to_fp32_mean']:.5f}, min {e['cos_to_fp32_min']:.5f}"
            if "cos_to_fp32_mean" in e
            else ""
        )
        lines += [
            "## Encoding",
            "",
            f"{e['model']} {e['precision']}, {e['docs']} SciFact documents, batch "
            f"{e['batch_size']}, max {e['max_seq_length']} tokens: **{e['docs_per_s']:.0f} docs/s** "
            f"({e['seconds']:.1f} s){cos}.",
            "",
        ]
    if "search" in report:
        s = report["search"]
        lines += [
            "## Exact search through torch (TorchExactIndex)",
            "",
            f"{s['rows']:,} rows × {s['dim']}-d (normalised Gaussian), {s['queries']:,} queries, k = {s['k']}; "
            "GFLOP/s = 2 · queries · rows · dim / wall time of the whole search (product, top-k and merge); "
            "recall@k against the fp32 numpy oracle on a query sample.",
            "",
            "| dtype | s | queries/s | GFLOP/s | of measured matmul | of nominal peak | recall@k |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in s["runs"]:
            if "skipped" in r:
                lines.append(f"| {r['dtype']} | skipped: {r['skipped']} | | | | | |")
                continue
            lines.append(
                f"| {r['dtype']} | {r['seconds']:.2f} | {r['queries_per_s']:.0f} | {r['gflops']:.0f} | "
                f"{fmt(r['vs_measured_matmul'], '.1%')} | {fmt(r['vs_nominal'], '.1%')} | "
                f"{r['recall_at_k_vs_fp32_oracle']:.4f} |"
            )
        lines.append("")
    if "large_k" in report:
        lk = report["large_k"]
        lines += [
            "## Top-k > 2048",
            "",
            f"k = {lk['k']} for {lk['queries']} queries ({lk['dtype']}): "
            f"{lk['seconds']:.2f} s; sorted: {lk['sorted']}; first k equal the k = {report['search']['k']} "
            f"search: {lk['prefix_equals_top_k_search']}; recall vs the fp32 oracle "
            f"{lk['recall_vs_fp32_oracle']:.4f}.",
            "",
        ]
    if "multi_gpu" in report:
        m = report["multi_gpu"]
        lines += ["## Sharding over several devices", ""]
        lines += [
            f"Skipped: {m['skipped']}."
            if "skipped" in m
            else f"{len(m['devices'])} shards on {', '.join(m['devices'])} ({m['dtype']}): {m['seconds']:.2f} s, "
            f"{m['gflops']:.0f} GFLOP/s, {m['speedup_vs_one']:.2f}× one device; ids equal to one device: "
            f"{m['ids_equal_one_device']}.",
            "",
        ]
    if report["errors"]:
        lines += ["## Errors", ""] + [f"- {k}: {v}" for k, v in report["errors"].items()] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    command = args.command or command_line("benchmarks/gpu_check.py", argv)
    report["command"] = command
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report, command)
    with atomic_open(out / "gpu_check.md") as handle:
        handle.write(text)
    write_json(out / "gpu_check.json", report)
    print(text)
    failed = report["errors"] or (report["pytest"].get("ran") and report["pytest"]["rc"] not in (0, None))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
