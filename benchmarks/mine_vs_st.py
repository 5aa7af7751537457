"""negmine mine vs sentence-transformers' mine_hard_negatives on SciFact train, measured in the same run.

Both mine the same queries against the same 5,183-document corpus with the same model, rank range, relative margin
(TopK-PercPos 0.95 == ST relative_margin 0.05), number of negatives and `top` sampling. Printed: wall times (cold:
empty embedding caches for both; warm: negmine re-run on its cache), their ratios, and the overlap of the chosen
negatives on the queries both kept.

    python benchmarks/mine_vs_st.py                      # full SciFact train
    python benchmarks/mine_vs_st.py --queries 40 --out benchmarks/results/mine_vs_st_smoke.md   # quick check

Absolute times on shared machines are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

#### constants
MODEL = "minilm"
RANGE_MAX = 50
PERCENTAGE = 0.95  # = ST relative_margin 0.05
NUM_NEGATIVES = 5
BATCH_SIZE = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="scifact", help="BEIR folder or dataset name under $NEGMINE_DATA")
    parser.add_argument("--split", default="train")
    parser.add_argument("--queries", type=int, default=0, help="use only the first N queries (0 = all)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mine_vs_st.md"))
    return parser.parse_args()


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
    start = time.perf_counter()
    mined = mine_hard_negatives(
        dataset,
        model,
        corpus=corpus,
        range_max=RANGE_MAX,
        relative_margin=1 - PERCENTAGE,
        num_negatives=NUM_NEGATIVES,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=BATCH_SIZE,
        use_faiss=True,
        verbose=False,
    )
    seconds = time.perf_counter() - start
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


def load_average() -> str:
    """1-minute load average: a phase that ran under more load than another makes their ratio unfair."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def overlap(a: dict[str, set[str]], b: dict[str, set[str]]) -> tuple[float, int]:
    common = set(a) & set(b)
    if not common:
        return 0.0, 0
    shared = sum(len(a[q] & b[q]) for q in common)
    return shared / sum(len(a[q]) for q in common), len(common)


def main() -> None:
    args = parse_args()
    from sentence_transformers import SentenceTransformer

    from negmine.encoders import load_encoder

    data, qids = load(args)
    encoder = load_encoder(MODEL)
    model = encoder.model if hasattr(encoder, "model") else SentenceTransformer(MODEL)
    print(f"{data.summary()}; {len(qids)} queries mined", flush=True)

    loads = {"st": [load_average()]}
    st_s, st_neg, st_rows = run_st(data, qids, model)
    loads["st"].append(load_average())
    print(f"sentence-transformers: {st_s:.1f} s, {st_rows} rows", flush=True)
    with tempfile.TemporaryDirectory() as cache_dir:
        loads["cold"] = [load_average()]
        cold_s, nm_neg, nm_rows = run_negmine(data, encoder, cache_dir)
        loads["cold"].append(load_average())
        print(f"negmine cold: {cold_s:.1f} s, {nm_rows} rows", flush=True)
        loads["warm"] = [load_average()]
        warm_s, _, _ = run_negmine(data, encoder, cache_dir)
        loads["warm"].append(load_average())
        print(f"negmine warm (cache): {warm_s:.1f} s", flush=True)
    ov, n_common = overlap(st_neg, nm_neg)

    table = "\n".join(
        [
            "| run | wall time (s) | ratio vs sentence-transformers | rows | negative overlap |",
            "|---|---:|---:|---:|---:|",
            f"| sentence-transformers `mine_hard_negatives` (faiss) | {st_s:.1f} | 1.00 | {st_rows} | — |",
            f"| negmine mine, cold (empty cache) | {cold_s:.1f} | {cold_s / st_s:.2f} | {nm_rows} | "
            f"{ov:.1%} on {n_common} queries |",
            f"| negmine mine, warm (embedding cache hit) | {warm_s:.1f} | {warm_s / st_s:.3f} | {nm_rows} | same |",
        ]
    )
    header = (
        f"# negmine mine vs sentence-transformers\n\n{data.name} {args.split}, {len(qids)} queries, "
        f"{len(data.corpus):,} docs; all-MiniLM-L6-v2; range_max {RANGE_MAX}, TopK-PercPos {PERCENTAGE} "
        f"(ST relative_margin {1 - PERCENTAGE:.2f}), {NUM_NEGATIVES} negatives, top sampling, batch "
        f"{BATCH_SIZE}.\nMachine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {sys.version.split()[0]}. Command: `python benchmarks/mine_vs_st.py"
        f"{' --queries ' + str(args.queries) if args.queries else ''}`.\n\n"
    )
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(header + table + "\n")


if __name__ == "__main__":
    main()
