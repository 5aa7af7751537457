"""Does the teacher's token cap change what it teaches? EmbeddingGemma-300m scores at 512 tokens against its full
context, on the passages the cap actually cuts.

The SciFact recipes score every mined (query, passage) pair with EmbeddingGemma capped at 512 tokens
(``scifact_quality.TEACHER_MAX_SEQ_LENGTH``); 7.4 % of SciFact's abstracts are longer (p99 802 tokens, max 1,902;
the model's context is 2,048). This script takes the committed score table of that pass, finds the scored passages
whose prompt + text exceed the cap (the model's own tokenizer), re-encodes only those at ``--full`` tokens and
compares, per query, what a loss sees:

- the score change of each cut pair (signed and absolute);
- the ranking of the query's candidates (Kendall tau, capped vs full; queries whose top candidate changes);
- the listwise soft labels, softmax(score / tau_t) over [positives, negatives] at the recipes' tau_t = 0.05:
  KL(full || capped) and total variation per query;
- the false-negative guard: negatives scored above the query's lowest positive, capped vs full.

Before that, the capped scores are recomputed through the embedding cache (``--check`` pairs, default all) and must
equal the table: the texts and the model are the ones that wrote it.

    NEGMINE_MODELS=~/.cache/negmine-models HF_HUB_OFFLINE=1 python benchmarks/teacher_length_cap.py

Writes ``benchmarks/results/teacher_length_cap.md`` and its ``.json`` twin.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO, Report  # noqa: E402

#### constants
TABLE = REPO / "benchmarks" / "results" / "scifact_runs" / "teacher_scores" / "mine-minilm-embeddinggemma.jsonl"
DATA = REPO.parent / "shared" / "data" / "beir" / "scifact"
TAU_T = 0.05  # the teacher temperature of the gemma-listwise recipes
TOLERANCE = 1e-4  # |recomputed capped score - table| allowed (float32 embeddings, batch padding)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", type=Path, default=TABLE, help="score table written by negmine score at --cap")
    p.add_argument("--data", default=str(DATA), help="BEIR folder the table's ids come from")
    p.add_argument("--split", default="train", help="qrels split whose documents are a query's positives")
    p.add_argument("--teacher", default="embeddinggemma", help="the bi-encoder that wrote the table")
    p.add_argument("--cap", type=int, default=512, help="the table's token cap")
    p.add_argument("--full", type=int, default=2048, help="the uncapped length (the model's context)")
    p.add_argument("--tau", type=float, default=TAU_T, help="teacher temperature of the soft labels")
    p.add_argument("--check", type=int, default=0, help="capped pairs recomputed against the table (0: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--cache-dir", default=None, help="embedding cache (default $NEGMINE_CACHE)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "teacher_length_cap.md"))
    return p.parse_args(argv)


#### analysis (pure)
def softmax(scores: Sequence[float], tau: float) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64) / tau
    x = np.exp(x - x.max())
    return x / x.sum()


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-a of two score lists over the same items (1 = same order)."""
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))
    return s / (n * (n - 1) / 2) if n > 1 else 1.0


def above_lowest_positive(scores: dict[str, float], positives: set[str]) -> int:
    pos = [scores[d] for d in scores if d in positives]
    if not pos:
        return 0
    low = min(pos)
    return sum(1 for d, s in scores.items() if d not in positives and s > low)


def compare(capped: dict[str, dict[str, float]], full: dict[str, dict[str, float]],
            positives: dict[str, set[str]], tau: float) -> dict[str, Any]:
    """Capped vs full scores of each query's candidates (``full`` holds only the re-encoded pairs; the others are
    unchanged by the cap)."""
    deltas, per_query = [], []
    for qid, row in capped.items():
        changed = full.get(qid, {})
        if not changed:
            continue
        after = {d: changed.get(d, s) for d, s in row.items()}
        deltas += [after[d] - row[d] for d in changed]
        docs = list(row)
        before_s, after_s = [row[d] for d in docs], [after[d] for d in docs]
        p, q = softmax(after_s, tau), softmax(before_s, tau)
        pos = positives.get(qid, set())
        per_query.append({
            "query_id": qid, "candidates": len(docs), "cut": len(changed),
            "cut_positives": sum(1 for d in changed if d in pos),
            "kendall_tau": kendall_tau(before_s, after_s),
            "top_changed": docs[int(np.argmax(before_s))] != docs[int(np.argmax(after_s))],
            "kl_full_capped": float(np.sum(p * (np.log(p + 1e-300) - np.log(q + 1e-300)))),
            "total_variation": float(0.5 * np.abs(p - q).sum()),
            "guard_capped": above_lowest_positive(row, pos), "guard_full": above_lowest_positive(after, pos),
        })
    absolute = [abs(x) for x in deltas]
    return {
        "queries": len(capped), "pairs": sum(len(r) for r in capped.values()),
        "cut_pairs": len(deltas), "queries_with_cut_pairs": len(per_query),
        "cut_positive_pairs": sum(r["cut_positives"] for r in per_query),
        "delta_mean": statistics.fmean(deltas) if deltas else None,
        "abs_delta_mean": statistics.fmean(absolute) if absolute else None,
        "abs_delta_median": statistics.median(absolute) if absolute else None,
        "abs_delta_max": max(absolute) if absolute else None,
        "kendall_tau_mean": statistics.fmean(r["kendall_tau"] for r in per_query) if per_query else None,
        "queries_order_changed": sum(1 for r in per_query if r["kendall_tau"] < 1.0),
        "queries_top_changed": sum(1 for r in per_query if r["top_changed"]),
        "kl_mean": statistics.fmean(r["kl_full_capped"] for r in per_query) if per_query else None,
        "kl_max": max((r["kl_full_capped"] for r in per_query), default=None),
        "tv_mean": statistics.fmean(r["total_variation"] for r in per_query) if per_query else None,
        "tv_max": max((r["total_variation"] for r in per_query), default=None),
        "guard_capped": sum(r["guard_capped"] for r in per_query),
        "guard_full": sum(r["guard_full"] for r in per_query),
        "per_query": per_query,
    }


#### the run
def token_lengths(encoder: Any, texts: Sequence[str]) -> list[int]:
    """Tokens of each passage as the encoder sees it (corpus prompt + text, special tokens), uncapped."""
    tokenizer = encoder.model.tokenizer
    prompt = encoder.corpus_prompt or ""
    return [len(ids) for ids in tokenizer([prompt + t for t in texts], add_special_tokens=True,
                                          truncation=False)["input_ids"]]


def rescore(teacher: Any, items: list[tuple[str, str, list[str]]], data: Any) -> dict[str, dict[str, float]]:
    """``items`` of (query_id, query text, doc ids) scored by ``teacher`` -> {query_id: {doc_id: score}}."""
    scores = teacher.score([(text, [data.doc_text(d) for d in docs]) for _, text, docs in items])
    return {qid: dict(zip(docs, row)) for (qid, _, docs), row in zip(items, scores)}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from negmine.data import load_data
    from negmine.encoders import EmbeddingCache
    from negmine.scoring import BiEncoderTeacher, read_score_table

    report = Report("teacher_length_cap", "benchmarks/teacher_length_cap.py", argv=argv, out=args.out)
    table = read_score_table(args.table)
    data = load_data(args.data, args.split, unknown_qrels="skip")
    positives = {q: set(data.positives(q)) for q in table if q in data.qrels}
    cache = EmbeddingCache(args.cache_dir)
    capped_teacher = BiEncoderTeacher(args.teacher, max_seq_length=args.cap, batch_size=args.batch_size,
                                      cache=cache, show_progress_bar=True)

    docs = sorted({d for row in table.values() for d in row})
    lengths = dict(zip(docs, token_lengths(capped_teacher.encoder, [data.doc_text(d) for d in docs])))
    long_docs = {d for d, n in lengths.items() if n > args.cap}
    print(f"{len(table)} queries, {len(docs)} passages, {len(long_docs)} over {args.cap} tokens", flush=True)

    # 1. the table is what this model and these texts give at the cap
    pairs = [(q, d) for q, row in table.items() for d in row]
    check = pairs if args.check <= 0 else [pairs[i] for i in
                                           np.random.default_rng(0).choice(len(pairs), args.check, replace=False)]
    by_query: dict[str, list[str]] = {}
    for q, d in check:
        by_query.setdefault(q, []).append(d)
    with report.phase("capped re-score"):
        again = rescore(capped_teacher, [(q, data.queries[q], ds) for q, ds in by_query.items()], data)
    worst = max(abs(again[q][d] - table[q][d]) for q, d in check)
    if worst > TOLERANCE:
        raise SystemExit(f"the capped scores differ from {args.table} by up to {worst:.2e}: not the texts or the "
                         "model that wrote the table")

    # 2. the cut passages at full length
    full_teacher = BiEncoderTeacher(args.teacher, max_seq_length=args.full, batch_size=args.batch_size, cache=cache,
                                    show_progress_bar=True)
    items = [(q, data.queries[q], [d for d in row if d in long_docs]) for q, row in table.items()]
    items = [it for it in items if it[2]]
    with report.phase(f"full re-score ({args.full} tokens)"):
        full = rescore(full_teacher, items, data)
    result = compare(table, full, positives, args.tau)
    cut = sorted(lengths[d] for d in long_docs)
    result.update({"passages": len(docs), "long_passages": len(long_docs), "cap": args.cap, "full": args.full,
                   "tau": args.tau, "check_pairs": len(check), "check_max_abs_diff": worst,
                   "long_tokens_median": statistics.median(cut) if cut else None,
                   "long_tokens_max": max(cut) if cut else None, "teacher": capped_teacher.fingerprint(),
                   "table": str(args.table.relative_to(REPO)) if args.table.is_relative_to(REPO) else str(args.table)})
    report.write(markdown(result), result)


def markdown(r: dict[str, Any]) -> str:
    f = lambda x, p=4: "—" if x is None else f"{x:.{p}f}"  # noqa: E731
    n = r["queries_with_cut_pairs"]
    return "\n".join([
        f"# Teacher token cap: {r['teacher'].get('spec')} at {r['cap']} tokens vs {r['full']}",
        "",
        f"Score table `{r['table']}`: {r['queries']} queries, {r['pairs']:,} (query, passage) pairs over "
        f"{r['passages']:,} passages. {r['long_passages']} passages exceed {r['cap']} tokens (prompt + text; median "
        f"{r['long_tokens_median']}, max {r['long_tokens_max']}): they make {r['cut_pairs']} pairs "
        f"({r['cut_positive_pairs']} of them positives) in {n} queries. Only those were re-encoded at {r['full']} "
        f"tokens; the table itself was first recomputed at {r['cap']} ({r['check_pairs']:,} pairs, largest "
        f"difference {r['check_max_abs_diff']:.1e}).",
        "",
        "| what a loss sees | capped → full |",
        "|---|---:|",
        f"| score change of a cut pair, mean (signed) | {f(r['delta_mean'])} |",
        f"| score change of a cut pair, mean / median / max (absolute) | {f(r['abs_delta_mean'])} / "
        f"{f(r['abs_delta_median'])} / {f(r['abs_delta_max'])} |",
        f"| candidate order, Kendall tau (mean over the {n} queries) | {f(r['kendall_tau_mean'], 3)} |",
        f"| queries whose order changes / whose top candidate changes | {r['queries_order_changed']} / "
        f"{r['queries_top_changed']} of {n} |",
        f"| soft labels at tau_t = {r['tau']}: KL(full ‖ capped), mean / max | {f(r['kl_mean'])} / {f(r['kl_max'])} |",
        f"| soft labels: total variation, mean / max | {f(r['tv_mean'])} / {f(r['tv_max'])} |",
        f"| negatives above the query's lowest positive (the guard), capped → full | {r['guard_capped']} → "
        f"{r['guard_full']} |",
        "",
        f"Queries without a cut passage ({r['queries'] - n} of {r['queries']}) see identical scores either way.",
    ])


if __name__ == "__main__":
    main()
