"""negmine mine vs sentence-transformers' mine_hard_negatives on SciFact train, measured in the same run.

Both mine the same queries against the same 5,183-document corpus with the same model, rank range, relative margin
(TopK-PercPos 0.95 == ST relative_margin 0.05), number of negatives and `top` sampling. Printed: wall times (cold:
empty embedding caches for both; warm: negmine re-run on its cache), their ratios, and the overlap of the chosen
negatives on the queries both kept.

    python benchmarks/mine_vs_st.py                      # full SciFact train
    python benchmarks/mine_vs_st.py --queries 40 --out benchmarks/results/mine_vs_st_smoke.md   # quick check
    python benchmarks/mine_vs_st.py --many-positives     # trec-dl19 test: 40-201 graded positives per query

The many-positive mode (``--many-positives``, default data trec-dl19 ``test``, every qrels grade >= 1 a positive)
mines every (query, positive) pair with three child processes, each reporting its peak RSS while the parent samples
the 1-minute load average every second: sentence-transformers' ``mine_hard_negatives`` (same model, ``range_max``
50, ``relative_margin`` 0.05, 7 negatives, faiss, top sampling, n-tuple), negmine ``mine`` with every default
(``margin_reference each``, TopK-PercPos 0.95, rank range 0:50, 7 negatives, too-few rows dropped) and negmine with
``margin_reference lowest`` -- sentence-transformers 6.x measures the margin of every row against the query's lowest
positive (``hard_negatives.py``: "we will use the _minimum_ positive score"), so ``lowest`` is its like-for-like
setting. Written: ``benchmarks/results/mine_vs_st_many_positives.md`` and its ``.json`` twin: rows and queries kept
by each, the overlap of the negatives on the (query, positive) rows both keep, wall times and peak RSS.

Absolute times on shared machines are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#### constants
MODEL = "minilm"
RANGE_MAX = 50
PERCENTAGE = 0.95  # = ST relative_margin 0.05
NUM_NEGATIVES = 5
BATCH_SIZE = 32


def st_mine(mine_hard_negatives, dataset, model, corpus, num_negatives, **extra):
    """sentence-transformers' ``mine_hard_negatives`` with this benchmark's settings: (seconds, rows)."""
    start = time.perf_counter()
    mined = mine_hard_negatives(dataset, model, corpus=corpus, range_max=RANGE_MAX, relative_margin=1 - PERCENTAGE,
                                num_negatives=num_negatives, sampling_strategy="top", output_format="n-tuple",
                                batch_size=BATCH_SIZE, use_faiss=True, verbose=False, **extra)
    return time.perf_counter() - start, mined


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="scifact", help="BEIR folder or dataset name under $NEGMINE_DATA")
    parser.add_argument("--split", default="train")
    parser.add_argument("--queries", type=int, default=0, help="use only the first N queries (0 = all)")
    parser.add_argument("--out", default=None, help="report .md (its .json twin beside it in --many-positives)")
    parser.add_argument("--many-positives", action="store_true", help="the many-positive mode (see above)")
    parser.add_argument("--child", choices=("st", "negmine", "negmine-lowest"), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--st-encodes",
        action="store_true",
        help="--many-positives: let sentence-transformers encode the corpus in its timed run (default: it reads the "
        "embeddings negmine cached for the same model)",
    )
    args = parser.parse_args()
    if args.many_positives or args.child:
        args.data = "trec-dl19" if args.data == "scifact" else args.data
        args.split = "test" if args.split == "train" else args.split
    if args.out is None:
        name = "mine_vs_st_many_positives.md" if args.many_positives else "mine_vs_st.md"
        args.out = str(Path(__file__).parent / "results" / name)
    return args


def load(args):
    from negmine.data import load_data

    data = load_data(args.data, args.split)
    qids = data.split_query_ids[: args.queries or None]
    data.qrels = {q: data.qrels[q] for q in qids}
    return data, qids


#### sentence-transformers
def run_st(data, qids, model):
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    pairs = [(data.queries[q], data.doc_text(d)) for q in qids for d in data.positives(q)]
    dataset = Dataset.from_dict({"query": [p[0] for p in pairs], "positive": [p[1] for p in pairs]})
    corpus = [data.doc_text(d) for d in data.corpus]
    seconds, mined = st_mine(mine_hard_negatives, dataset, model, corpus, NUM_NEGATIVES)
    negatives = {}
    for row in mined:
        negatives.setdefault(row["query"], {row[f"negative_{i + 1}"] for i in range(NUM_NEGATIVES)})
    return seconds, negatives, len(mined)


#### negmine
def run_negmine(data, encoder, cache_dir):
    from negmine.encoders import EmbeddingCache
    from negmine.mining import mine_hard_negatives

    start = time.perf_counter()
    result = mine_hard_negatives(
        data,
        encoder,
        cache=EmbeddingCache(cache_dir),
        strategy="perc-pos",
        percentage=PERCENTAGE,
        range_max=RANGE_MAX,
        num_negatives=NUM_NEGATIVES,
        sampling="top",
        batch_size=BATCH_SIZE,
        show_progress_bar=False,
    )
    seconds = time.perf_counter() - start
    return seconds, {r.query: set(r.negatives) for r in result.records}, result.stats.rows


def overlap(a: dict[str, set[str]], b: dict[str, set[str]]) -> tuple[float, int]:
    common = set(a) & set(b)
    if not common:
        return 0.0, 0
    shared = sum(len(a[q] & b[q]) for q in common)
    return shared / sum(len(a[q]) for q in common), len(common)


#### many positives per query: each tool in its own child process
MANY_NEGATIVES = 7  # negmine's default num_negatives
CHILDREN = {
    "st": "sentence-transformers `mine_hard_negatives`",
    "negmine": "negmine `mine` (defaults: margin reference `each`)",
    "negmine-lowest": "negmine `mine --margin-reference lowest`",
}


def child_st(args) -> dict:
    from _st_cache import loaded_from_seed, seed_st_cache
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from negmine.encoders import load_encoder

    data, qids = load(args)
    encoder = load_encoder(MODEL)
    model = encoder.model
    pairs = [(data.queries[q], data.doc_text(d)) for q in qids for d in data.positives(q)]
    dataset = Dataset.from_dict({"query": [p[0] for p in pairs], "positive": [p[1] for p in pairs]})
    corpus = [data.doc_text(d) for d in data.corpus]
    with tempfile.TemporaryDirectory() as cache_folder:
        seed = None if args.st_encodes else seed_st_cache(cache_folder, encoder, corpus, [p[1] for p in pairs],
                                                          batch_size=BATCH_SIZE)
        seconds, mined = st_mine(mine_hard_negatives, dataset, model, corpus, MANY_NEGATIVES,
                                 cache_folder=cache_folder)
        seeded = seed is not None and loaded_from_seed(seed)
    rows = [[r["query"], r["positive"], [r[f"negative_{i + 1}"] for i in range(MANY_NEGATIVES)]] for r in mined]
    return {"seconds": seconds, "rows": rows, "corpus_embeddings_from_negmine_cache": seeded}


def child_negmine(args, margin_reference: str | None) -> dict:
    from negmine.mining import mine_hard_negatives

    data, _ = load(args)
    options = {} if margin_reference is None else {"margin_reference": margin_reference}
    start = time.perf_counter()
    result = mine_hard_negatives(data, MODEL, batch_size=BATCH_SIZE, show_progress_bar=False, **options)
    seconds = time.perf_counter() - start
    rows = [
        [r["anchor"], r["positive"], [r[f"negative_{i + 1}"] for i in range(MANY_NEGATIVES)]] for r in result.rows()
    ]
    stats = result.stats.to_dict()
    config = result.config.to_dict()
    keys = ("strategy", "percentage", "range_min", "range_max", "num_negatives", "margin_reference", "too_few")
    return {
        "seconds": seconds,
        "rows": rows,
        "loaded_torch": "torch" in sys.modules,  # False: query and corpus embeddings both came from the cache
        "stats": {k: stats[k] for k in ("settings", "warnings", "queries", "pairs", "search", "candidates")},
        "config": {k: config[k] for k in (*keys, "positive_grade", "exclude_grade")},
    }


def run_child(tool: str, args) -> dict:
    """Run one tool in a child process; sample the 1-minute load average every second while it runs."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        cmd = [sys.executable, __file__, "--child", tool, "--child-out", str(out), "--data", args.data]
        cmd += ["--split", args.split, "--queries", str(args.queries)] + (["--st-encodes"] if args.st_encodes else [])
        loads: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                loads.append(os.getloadavg()[0])

        thread = threading.Thread(target=sample, daemon=True)
        loads.append(os.getloadavg()[0])
        thread.start()
        wall = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - wall
        done.set()
        thread.join()
        loads.append(os.getloadavg()[0])
        result = json.loads(out.read_text())
    result["process_wall_seconds"] = wall
    result["load_average_1min"] = {"min": min(loads), "mean": sum(loads) / len(loads), "max": max(loads)}
    return result


def hardware() -> dict:
    model, flags = "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    simd = [f for f in wanted if f in flags]
    return {
        "cpu": model,
        "cpu_flags": " ".join(simd) or "n/a",
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
    }


def git_commit() -> str:
    try:
        cmd = ["git", "rev-parse", "--short", "HEAD"]
        return subprocess.run(
            cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def compare_rows(st_rows: list, nm_rows: list) -> dict:
    """Rows, queries and the negative overlap (shared / sentence-transformers' negatives) on the (query, positive)
    rows both tools keep."""
    st = {(q, p): set(n) for q, p, n in st_rows}
    nm = {(q, p): set(n) for q, p, n in nm_rows}
    common = set(st) & set(nm)
    shared = sum(len(st[k] & nm[k]) for k in common)
    total = sum(len(st[k]) for k in common)
    st_q, nm_q = {q for q, _ in st}, {q for q, _ in nm}
    return {
        "rows": len(nm_rows),
        "queries": len(nm_q),
        "rows_both_keep": len(common),
        "queries_both_keep": len(st_q & nm_q),
        "overlap_on_rows_both_keep": shared / total if total else None,
        "identical_rows": sum(st[k] == nm[k] for k in common),
    }


def many_positives(args) -> None:
    from _report import command_line

    from negmine.io import write_json

    data, qids = load(args)
    n_pairs = sum(len(data.positives(q)) for q in qids)
    print(f"{data.summary()}; {len(qids)} queries, {n_pairs} (query, positive) pairs", flush=True)
    runs = {}
    for tool in CHILDREN:
        runs[tool] = run_child(tool, args)
        print(
            f"{tool}: {runs[tool]['seconds']:.1f} s, {len(runs[tool]['rows'])} rows, "
            f"peak RSS {runs[tool]['peak_rss_bytes'] / 2**20:.0f} MiB",
            flush=True,
        )
    st_queries = len({q for q, _, _ in runs["st"]["rows"]})
    tools = {}
    for tool, run in runs.items():
        entry = {k: run[k] for k in ("seconds", "process_wall_seconds", "peak_rss_bytes", "load_average_1min")}
        if tool == "st":
            entry.update(rows=len(run["rows"]), queries=st_queries)
            entry["corpus_embeddings_from_negmine_cache"] = run["corpus_embeddings_from_negmine_cache"]
        else:
            entry.update(compare_rows(runs["st"]["rows"], run["rows"]), stats=run["stats"], config=run["config"])
            entry["loaded_torch"] = run["loaded_torch"]
        tools[tool] = entry
    report = {
        "command": command_line("benchmarks/mine_vs_st.py"),
        "commit": git_commit(),
        "hardware": hardware(),
        "data": {
            "name": data.name,
            "split": args.split,
            "docs": len(data.corpus),
            "queries": len(qids),
            "pairs": n_pairs,
        },
        "settings": {
            "model": "all-MiniLM-L6-v2",
            "range_max": RANGE_MAX,
            "percentage": PERCENTAGE,
            "st_relative_margin": round(1 - PERCENTAGE, 6),
            "num_negatives": MANY_NEGATIVES,
            "sampling": "top",
        },
        "tools": tools,
    }
    out = Path(args.out)
    write_json(out.with_suffix(".json"), report)
    write_report(out, report)


def write_report(out: Path, report: dict) -> None:
    """The .md view of the .json report (every figure comes from it)."""
    d, hw, tools = report["data"], report["hardware"], report["tools"]
    nq = d["queries"]

    def cell(tool: str, key: str) -> str:
        t = tools[tool]
        if key == "queries":
            return f"{t['queries']} ({t['queries'] / nq:.0%})"
        if key == "overlap":
            if tool == "st":
                return "—"
            o = t["overlap_on_rows_both_keep"]
            text = "n/a" if o is None else f"{o:.1%}"
            return f"{text} on {t['rows_both_keep']:,} rows (queries: {t['queries_both_keep']})"
        if key == "rss":
            return f"{t['peak_rss_bytes'] / 2**20:,.0f}"
        if key == "load":
            return "{min:.1f} / {mean:.1f} / {max:.1f}".format(**t["load_average_1min"])
        if key == "seconds":
            return f"{t['seconds']:.1f}"
        return f"{t[key]:,}"

    rows = [
        ("rows written", "rows"),
        (f"queries kept (of {nq})", "queries"),
        ("negative overlap with sentence-transformers on the rows both keep", "overlap"),
        ("wall time in process (s)", "seconds"),
        ("peak RSS of its process (MiB)", "rss"),
        ("1-min load average during the run (min / mean / max)", "load"),
    ]
    names = list(tools)
    lines = [
        "# Many positives per query: negmine mine vs sentence-transformers",
        "",
        f"{d['name']} `{d['split']}`: {d['docs']:,} passages, {nq} queries, {d['pairs']:,} (query, positive) pairs "
        f"(every qrels grade >= 1 a positive). all-MiniLM-L6-v2; range_max {report['settings']['range_max']}, "
        f"TopK-PercPos {report['settings']['percentage']} (sentence-transformers relative_margin "
        f"{report['settings']['st_relative_margin']}), {report['settings']['num_negatives']} negatives, top "
        "sampling, n-tuple rows, faiss. Each tool runs in its own child process. "
        + (
            "Neither timed run encodes the corpus: negmine reads its embedding cache, sentence-transformers its "
            "`cache_folder`, seeded with the same embeddings."
            if tools["st"]["corpus_embeddings_from_negmine_cache"]
            else "negmine reads its embedding cache; sentence-transformers encodes the corpus in its run."
        ),
        "",
        f"Command: `{report['command']}`  ",
        f"Commit: `{report['commit']}`  ",
        f"Hardware: {hw['cpu']} ({hw['cores']} cores; {hw['cpu_flags']}), Python {hw['python']}",
        "",
        "| | " + " | ".join(CHILDREN[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(cell(n, key) for n in names) + " |" for label, key in rows]
    nm = tools["negmine"]["stats"]
    lines += [
        "",
        f"negmine (`each`): {nm['pairs']['written']:,} of {nm['pairs']['total']:,} (query, positive) rows written; "
        f"search depth per query mean {nm['search']['depth_mean']:.0f}, max {nm['search']['depth_max']} "
        f"(query blocks: {nm['search']['blocks']}).",
    ]
    if not any(tools[n]["loaded_torch"] for n in names[1:]):
        lines += [
            "",
            "negmine found the query embeddings cached too, so its runs did not import torch or load the model; "
            "sentence-transformers loads both. That is most of the difference in peak RSS.",
        ]
    lines += [
        "",
        "Why the overlap of `each` is low: sentence-transformers 6.x measures the margin of every row against the "
        "query's *lowest* positive (its `hard_negatives.py` takes the minimum positive score of each query), so the "
        "rows of one query share one negative list, and it keeps a query only when even its lowest positive leaves "
        "enough candidates. `lowest` is negmine's like-for-like setting; `each` measures every row against its own "
        "positive and picks harder negatives for the better-scored positives. The rank windows also differ: "
        "sentence-transformers takes the best `range_max` candidates left after removing positives and margin "
        "failures among the first `range_max` + (largest positive count) + 1 retrieved; negmine applies the rank "
        "range to the documents that can be negatives, before the margin.",
    ]
    for tool in names[1:]:
        for warning in tools[tool]["stats"]["warnings"]:
            lines.append(f"\nnegmine warning ({tools[tool]['config']['margin_reference']}): {warning}")
    from _report import publish

    out.parent.mkdir(parents=True, exist_ok=True)
    publish("\n".join(lines) + "\n", out)


def main() -> None:
    args = parse_args()
    if args.child:
        if args.child == "st":
            result = child_st(args)
        else:
            result = child_negmine(args, "lowest" if args.child == "negmine-lowest" else None)
        result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        Path(args.child_out).write_text(json.dumps(result))
        return
    if args.many_positives:
        many_positives(args)
        return
    from _report import Report
    from sentence_transformers import SentenceTransformer

    from negmine.encoders import load_encoder

    data, qids = load(args)
    encoder = load_encoder(MODEL)
    model = encoder.model if hasattr(encoder, "model") else SentenceTransformer(MODEL)
    print(f"{data.summary()}; {len(qids)} queries mined", flush=True)
    report = Report("mine_vs_st", "benchmarks/mine_vs_st.py", sys.argv[1:], out=args.out)

    # the three phases back to back, each with its load average in the footer (a ratio across phases of unequal
    # load is not a ratio of the tools)
    with report.phase("sentence-transformers"):
        st_s, st_neg, st_rows = run_st(data, qids, model)
    print(f"sentence-transformers: {st_s:.1f} s, {st_rows} rows", flush=True)
    with tempfile.TemporaryDirectory() as cache_dir:
        with report.phase("negmine cold"):
            cold_s, nm_neg, nm_rows = run_negmine(data, encoder, cache_dir)
        print(f"negmine cold: {cold_s:.1f} s, {nm_rows} rows", flush=True)
        with report.phase("negmine warm"):
            warm_s, _, _ = run_negmine(data, encoder, cache_dir)
        print(f"negmine warm (cache): {warm_s:.1f} s", flush=True)
    ov, n_common = overlap(st_neg, nm_neg)
    figures = {"data": data.name, "split": args.split, "queries": len(qids), "docs": len(data.corpus),
               "model": "all-MiniLM-L6-v2", "range_max": RANGE_MAX, "percentage": PERCENTAGE,
               "num_negatives": NUM_NEGATIVES, "batch_size": BATCH_SIZE,
               "st": {"seconds": st_s, "rows": st_rows},
               "negmine_cold": {"seconds": cold_s, "rows": nm_rows, "ratio_vs_st": cold_s / st_s},
               "negmine_warm": {"seconds": warm_s, "rows": nm_rows, "ratio_vs_st": warm_s / st_s},
               "negative_overlap": ov, "overlap_queries": n_common}
    report.write(mine_vs_st_markdown(figures), figures)


def mine_vs_st_markdown(f: dict) -> str:
    """The default mode's report, from the figures its ``.json`` twin holds."""
    cold, warm = f["negmine_cold"], f["negmine_warm"]
    return "\n".join([
        "# negmine mine vs sentence-transformers",
        "",
        f"{f['data']} {f['split']}, {f['queries']} queries, {f['docs']:,} docs; {f['model']}; range_max "
        f"{f['range_max']}, TopK-PercPos {f['percentage']} (ST relative_margin {1 - f['percentage']:.2f}), "
        f"{f['num_negatives']} negatives, top sampling, batch {f['batch_size']}. Both start from empty embedding "
        "caches; the warm row re-runs negmine on its cache.",
        "",
        "| run | wall time (s) | ratio vs sentence-transformers | rows | negative overlap |",
        "|---|---:|---:|---:|---:|",
        f"| sentence-transformers `mine_hard_negatives` (faiss) | {f['st']['seconds']:.1f} | 1.00 | "
        f"{f['st']['rows']} | — |",
        f"| negmine mine, cold (empty cache) | {cold['seconds']:.1f} | {cold['ratio_vs_st']:.2f} | {cold['rows']} | "
        f"{f['negative_overlap']:.1%} on {f['overlap_queries']} queries |",
        f"| negmine mine, warm (embedding cache hit) | {warm['seconds']:.1f} | {warm['ratio_vs_st']:.3f} | "
        f"{warm['rows']} | same |",
        "",
        "Target: cold ratio ≤ 1.0 (negmine no slower than sentence-transformers for the same negatives). Read the "
        "ratio with the load of each phase in the footer: on a 2-core machine another job during one phase moves it.",
    ])


if __name__ == "__main__":
    main()
