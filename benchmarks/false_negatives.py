"""False negatives measured on human judgments: mining strategies and false-negative judges on TREC DL 2019.

Mine with the sparse labels (one positive per query, MS MARCO style), then look every mined "negative" up in the
dense graded judgments: grade 2-3 is a known false negative (``fn``), grade 1 ``related``, grade 0 a known true
negative (``tn``), no judgment ``unjudged``. Works on any BEIR folder of that shape (``corpus.jsonl``,
``queries.jsonl``, ``qrels/<split>.tsv`` with the sparse positives, ``qrels/<judge-split>.tsv`` with graded
judgments)::

    python benchmarks/false_negatives.py --out runs/fn-dl19 \\
        --judge embedding:minilm --judge embedding:mpnet \\
        --judge llm-yes:$NEGMINE_MODELS/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \\
        --cascade embedding:mpnet,llm-yes:$NEGMINE_MODELS/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \\
        --report benchmarks/results/false_negatives_dl19.md

What it does:

1. **Strategies.** Mines the ``--split`` queries with negmine (``mine_hard_negatives``) under several strategies:
   naive top-k, top-k shifted by ``range_min``, TopK-MarginPos, TopK-PercPos 0.95 (with ``--retriever``), and the
   candidates of the ``--extra-retrievers`` (default ``bm25`` and ``hybrid:bm25+RETRIEVER``). Each strategy's
   negatives are counted by grade, and by rank band (the negative's rank in its retriever's list, positives
   excluded). *Hardness* is the mean cosine of the kept negatives under ``--retriever`` (one teacher for every
   strategy, so BM25's and fusion's negatives are comparable).
2. **Default run.** The ``--default`` strategy (TopK-PercPos 0.95: ``negmine mine``'s default filter with
   ``--num-negatives 10 --range 0:100``) is written to ``OUT/mined.jsonl``; its grade counts are
   ``negatives_by_grade``.
3. **Judges.** Every ``--judge`` scores the default run's (query, negative) pairs. The queries are split in two
   halves with ``random.Random(--seed)``; each judge's threshold is chosen on the *tune* half (among the
   thresholds whose true-negative removal stays at or below ``--max-tn-removed``: the most recall, then the fewest
   true negatives removed) and reported on the *test* half; the spread over ``--halvings`` random halvings is
   reported beside it. A negative is removed when its score is at or above the threshold:
   exactly ``negmine relabel --mode filter --threshold T`` for pointwise judges. Judges without scores (ARHN) count
   their ``--mode both`` decision (relabeled or filtered = removed from the negatives) as score 1/0. A
   ``--cascade CHEAP,EXPENSIVE`` pair (both also given as ``--judge``) is computed from the two judges' scores: the
   cheap judge clears negatives below ``clear_below`` (chosen on the tune half so that it clears at most
   ``--cascade-fn-loss`` of the tune false negatives), the expensive judge decides
   the rest -- the decisions of :class:`~negmine.relabel.CascadeJudge`, with its cost.
4. **Outputs.** ``OUT/false_negatives.json`` (``negatives_by_grade``, ``strategies``, ``judges``), judge scores
   under ``OUT/judges/`` (a rerun reuses them), the LLM judgment cache, and with ``--report`` a Markdown report,
   its ``.json`` twin and a precision-recall plot (``.png``) of every judge on the test half.

Metrics (test half): ``recall`` = share of ``fn`` negatives removed; ``precision`` = ``fn`` share of what is
removed (related and unjudged removals count against it); ``tn_removed`` = share of ``tn`` negatives removed;
``auc`` = ROC AUC of the score for ``fn`` vs ``tn``; ``fn_share_after`` = ``fn`` share of the negatives left.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _report import command_line, publish, replace_readme_block

from negmine.data import RetrievalData, load_data, resolve_data_path
from negmine.io import atomic_open, write_json, write_jsonl

REPO = Path(__file__).resolve().parents[1]
GRADES = ("fn", "related", "tn", "unjudged")
BANDS = ((0, 10), (10, 30), (30, 100))
DEFAULT_JSON = "false_negatives.json"


# ---------------------------------------------------------------------------------------------------------------
# grades and counts
# ---------------------------------------------------------------------------------------------------------------


def grade_of(dense: dict[str, dict[str, int]], query_id: str, doc_id: str) -> str:
    """``fn`` (graded >= 2), ``related`` (1), ``tn`` (0) or ``unjudged`` (no judgment)."""
    grade = dense.get(query_id, {}).get(doc_id)
    if grade is None:
        return "unjudged"
    return "fn" if grade >= 2 else "related" if grade == 1 else "tn"


def band_name(rank: int | None) -> str:
    for low, high in BANDS:
        if rank is not None and low <= rank < high:
            return f"{low}-{high}"
    return "other"


def count_grades(
    records: Sequence[Any], dense: dict[str, dict[str, int]], ranks: dict[tuple[str, str], int] | None = None
) -> dict[str, Any]:
    """Grade counts of the mined negatives, overall and per rank band (``ranks``: (query, doc) -> 0-based rank)."""
    total = dict.fromkeys(GRADES, 0)
    bands: dict[str, dict[str, int]] = {}
    for record in records:
        for doc_id in record.negative_ids:
            grade = grade_of(dense, record.query_id, doc_id)
            total[grade] += 1
            if ranks is not None:
                band = bands.setdefault(band_name(ranks.get((record.query_id, doc_id))), dict.fromkeys(GRADES, 0))
                band[grade] += 1
    out: dict[str, Any] = {"queries": len(records), "negatives": sum(total.values()), "by_grade": total}
    n = out["negatives"]
    out["share"] = {g: (c / n if n else None) for g, c in total.items()}
    if ranks is not None:
        out["by_rank_band"] = {
            b: bands[b] for b in sorted(bands, key=lambda b: int(b.split("-")[0]) if b[0].isdigit() else 1 << 30)
        }
    return out


# ---------------------------------------------------------------------------------------------------------------
# judge metrics
# ---------------------------------------------------------------------------------------------------------------


def roc_auc(high: Sequence[float], low: Sequence[float]) -> float | None:
    """P(score of a random ``high`` item > a random ``low`` one), ties counting one half; ``None`` if either is empty.
    The Mann-Whitney form, O(n log n)."""
    if not len(high) or not len(low):
        return None
    values = np.concatenate([np.asarray(high, dtype=np.float64), np.asarray(low, dtype=np.float64)])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):  # average ranks of ties
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_high, n_low = len(high), len(low)
    return float((ranks[:n_high].sum() - n_high * (n_high + 1) / 2) / (n_high * n_low))


def removal_metrics(rows: Sequence[dict[str, Any]], threshold: float, key: str = "score") -> dict[str, Any]:
    """What removing every negative with ``row[key] >= threshold`` does, by grade."""
    removed = {g: 0 for g in GRADES}
    total = {g: 0 for g in GRADES}
    for row in rows:
        total[row["grade"]] += 1
        if row[key] is not None and row[key] >= threshold:
            removed[row["grade"]] += 1
    n_removed, left = sum(removed.values()), sum(total.values()) - sum(removed.values())
    precision = removed["fn"] / n_removed if n_removed else None
    recall = removed["fn"] / total["fn"] if total["fn"] else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tn_removed": removed["tn"] / total["tn"] if total["tn"] else None,
        "removed": n_removed,
        "removed_by_grade": removed,
        "negatives_by_grade": total,
        "fn_share_after": (total["fn"] - removed["fn"]) / left if left else None,
    }


def choose_threshold(rows: Sequence[dict[str, Any]], max_tn_removed: float, key: str = "score") -> float:
    """The threshold with the most recall on ``rows`` whose true-negative removal is at most ``max_tn_removed``;
    among those, the one removing the fewest true negatives (the lowest such threshold).

    Going lower than needed only adds true negatives where the recall has stopped rising: a judge that separates
    the grades with a gap gets a threshold at the top of the gap, not one ``max_tn_removed`` deep into the true
    negatives (which on held-out queries would break the bound about half the time by construction)."""
    best: tuple[float, float, float] | None = None  # (recall, -tn removed, -threshold): the largest wins
    for t in sorted({r[key] for r in rows if r[key] is not None}):
        m = removal_metrics(rows, t, key)
        if m["tn_removed"] is not None and m["tn_removed"] > max_tn_removed:
            continue
        candidate = (m["recall"] or 0.0, -(m["tn_removed"] or 0.0), -t)
        if best is None or candidate > best:
            best = candidate
    return float("inf") if best is None else float(-best[2])


def pr_curve(rows: Sequence[dict[str, Any]], key: str = "score") -> list[tuple[float, float]]:
    """(recall, precision) at every threshold on ``rows``."""
    points = []
    for t in sorted({r[key] for r in rows if r[key] is not None}, reverse=True):
        m = removal_metrics(rows, t, key)
        if m["recall"] is not None and m["precision"] is not None:
            points.append((m["recall"], m["precision"]))
    return points


def judge_report(
    rows: list[dict[str, Any]],
    tune: set[str],
    max_tn: float,
    moon_tn: float,
    key: str = "score",
    fixed_threshold: float | None = None,
) -> dict[str, Any]:
    """Threshold from the tune half, metrics on the test half (plus AUCs on both and on all rows).

    ``fixed_threshold``: for a judge scored on the test half only, its own threshold (e.g. P(yes) 0.5) is used
    instead, and the second operating point is left out."""
    tune_rows = [r for r in rows if r["query_id"] in tune and r[key] is not None]
    test_rows = [r for r in rows if r["query_id"] not in tune and r[key] is not None]

    def auc(part: Sequence[dict[str, Any]]) -> float | None:
        return roc_auc([r[key] for r in part if r["grade"] == "fn"], [r[key] for r in part if r["grade"] == "tn"])

    fixed = fixed_threshold is not None
    threshold = fixed_threshold if fixed else choose_threshold(tune_rows, max_tn, key)
    test = removal_metrics(test_rows, threshold, key)
    moon = None if fixed else removal_metrics(test_rows, choose_threshold(tune_rows, moon_tn, key), key)
    return {
        **{k: test[k] for k in ("precision", "recall", "f1")},
        "auc": auc(test_rows),
        "tn_removed": test["tn_removed"],
        "threshold": threshold,
        "threshold_rule": "fixed (the judge's own; scored on the test half only)"
        if fixed
        else f"tuned: lowest with tn removed <= {max_tn:g} on the tune half",
        "fn_share_after": test["fn_share_after"],
        "test": test,
        "tune": removal_metrics(tune_rows, threshold, key),
        "auc_tune": auc(tune_rows),
        "auc_all": auc(tune_rows + test_rows),
        f"at_tn_{moon_tn:g}": moon,
        "scored_pairs": len(tune_rows) + len(test_rows),
    }


def repeated_halvings(rows: list[dict[str, Any]], query_ids: Sequence[str], n_splits: int, seed: int,
                      max_tn: float, key: str = "score") -> dict[str, Any] | None:
    """The tune/test protocol over ``n_splits`` seeded random halvings of the queries: the spread of held-out recall
    and tn removal (one split's figures rest on ~15 true negatives), the share of halvings meeting the target, and
    the AUC over all queries with a 95 % query-bootstrap interval (queries resampled with replacement, their
    negatives kept together). ``None`` for a judge without a score on every row (scored on one half only)."""
    scored = [r for r in rows if r[key] is not None]
    if len(scored) < len(rows) or not scored:
        return None
    rng = random.Random(seed)
    ids = sorted(set(query_ids))
    by_query: dict[str, list[dict[str, Any]]] = {q: [] for q in ids}
    for r in scored:
        by_query[r["query_id"]].append(r)
    recalls, tns, meets = [], [], 0
    for _ in range(n_splits):
        order = ids[:]
        rng.shuffle(order)
        tune = set(order[: len(order) // 2])
        tune_rows = [r for q in tune for r in by_query[q]]
        test_rows = [r for q in ids if q not in tune for r in by_query[q]]
        m = removal_metrics(test_rows, choose_threshold(tune_rows, max_tn, key), key)
        if m["recall"] is None or m["tn_removed"] is None:
            continue
        recalls.append(m["recall"])
        tns.append(m["tn_removed"])
        meets += m["recall"] >= 0.6 and m["tn_removed"] <= 0.2
    aucs = []
    for _ in range(1000):
        sample = [r for q in rng.choices(ids, k=len(ids)) for r in by_query[q]]
        a = roc_auc([r[key] for r in sample if r["grade"] == "fn"], [r[key] for r in sample if r["grade"] == "tn"])
        if a is not None:
            aucs.append(a)

    def spread(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        q = np.quantile(values, [0.05, 0.5, 0.95])
        return {"p5": float(q[0]), "median": float(q[1]), "p95": float(q[2])}

    auc_all = roc_auc([r[key] for r in scored if r["grade"] == "fn"], [r[key] for r in scored if r["grade"] == "tn"])
    return {"splits": len(recalls), "recall": spread(recalls), "tn_removed": spread(tns),
            "meets_target_share": meets / len(recalls) if recalls else None, "auc_all": auc_all,
            "auc_ci95": [float(np.quantile(aucs, 0.025)), float(np.quantile(aucs, 0.975))] if aucs else None,
            "bootstrap": 1000, "seed": seed}


# ---------------------------------------------------------------------------------------------------------------
# mining
# ---------------------------------------------------------------------------------------------------------------


def strategy_table(retriever: str, extra: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Named mining configurations: the dense teacher's strategies, then the other retrievers' candidates."""
    table = {
        "naive top-k": {"retriever": retriever, "strategy": "range"},
        "range_min 10": {"retriever": retriever, "strategy": "range", "range_min": 10},
        "range_min 30": {"retriever": retriever, "strategy": "range", "range_min": 30},
        "TopK-MarginPos 0.05": {"retriever": retriever, "strategy": "margin-pos", "margin": 0.05},
        "TopK-PercPos 0.95": {"retriever": retriever, "strategy": "perc-pos", "percentage": 0.95},
    }
    for other in extra:
        table[f"{other} top-k"] = {"retriever": other, "strategy": "range"}
        if other == "bm25":
            table[f"{other} TopK-PercPos 0.95"] = {"retriever": other, "strategy": "perc-pos", "percentage": 0.95}
    return table


class Teacher:
    """The hardness teacher's cosine of any (query, document) of ``data``: the whole corpus and the split's queries
    are encoded as the miner encodes them, so both come from the embedding cache the mining runs filled."""

    def __init__(self, judge: Any, data: RetrievalData) -> None:
        from negmine.retrieve import unique_encode

        self.doc_row = {d: i for i, d in enumerate(data.corpus)}
        self.query_row = {q: i for i, q in enumerate(data.split_query_ids)}
        encode = lambda texts, kind: unique_encode(judge.encoder, texts, kind, judge.cache, 32, False, kind)  # noqa: E731
        self.docs = self._normalised(encode([data.doc_text(d) for d in data.corpus], "document"))
        self.queries = self._normalised(encode([data.queries[q] for q in data.split_query_ids], "query"))

    @staticmethod
    def _normalised(emb: Any) -> np.ndarray:
        emb = np.asarray(emb, dtype=np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def cosine(self, query_id: str, doc_id: str) -> float:
        return float(self.docs[self.doc_row[doc_id]] @ self.queries[self.query_row[query_id]])


def mine(data: RetrievalData, spec: dict[str, Any], args: argparse.Namespace, cache: Any, **extra: Any) -> Any:
    from negmine.mining import mine_hard_negatives

    options = {
        "num_negatives": args.num_negatives,
        "range_max": args.range_max,
        "seed": args.seed,
        "show_progress_bar": False,
        "batch_size": args.batch_size,
        **spec,
        **extra,
    }
    retriever = options.pop("retriever")
    if args.model_path and retriever == args.retriever:
        options["model_path"] = args.model_path
    return mine_hard_negatives(data, retriever, cache=cache, no_cache=cache is None, **options)


def rank_pool(data: RetrievalData, retriever: str, args: argparse.Namespace, cache: Any) -> dict[tuple[str, str], int]:
    """Each candidate's 0-based rank among its retriever's top ``range_max`` (positives excluded)."""
    result = mine(
        data,
        {"retriever": retriever, "strategy": "range"},
        args,
        cache,
        num_negatives=args.range_max,
        too_few="keep",
        format="labeled-pair",
    )
    return {(r.query_id, d): i for r in result.records for i, d in enumerate(r.negative_ids)}


# ---------------------------------------------------------------------------------------------------------------
# judges
# ---------------------------------------------------------------------------------------------------------------


def slug(spec: str) -> str:
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", spec.replace(os.environ.get("NEGMINE_MODELS", "\0"), ""))
    return name.strip("_")[:120]


def score_with_judge(spec: str, records: Sequence[Any], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Scores of every (query, negative) pair of ``records`` by ``spec``, cached in ``OUT/judges/<slug>.json``."""
    path = out / "judges" / f"{slug(spec)}.json"
    keys = [[r.query_id, d] for r in records for d in r.negative_ids]
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("pairs") == keys:
            return saved
    from negmine.relabel.factory import JudgeOptions, load_judge

    options = JudgeOptions(
        n_threads=args.threads,
        batch_size=args.judge_batch_size,
        no_embedding_cache=True,  # a judge's pairs/s is its cold cost: its own encodes, not cache reads
        embedding_cache_dir=args.cache_dir,
    )
    judge = load_judge(spec, cache=str(out / "judge_cache.jsonl"), options=options)
    start = time.perf_counter()
    if hasattr(judge, "score_pairs"):  # pointwise: the negatives alone
        pairs = [(r.query, text) for r in records for text in r.negatives]
        scores = list(judge.score_pairs(pairs))
        judged = len(pairs)
    else:  # listwise/ARHN: whole candidate sets, the filter decision as the score
        from negmine.relabel.arhn import decide

        items = [(r.query, list(r.positives) + list(r.negatives), len(r.positives)) for r in records]
        judged = sum(len(p) for _, p, _ in items)
        judgments = judge.judge_many(items) if hasattr(judge, "judge_many") else [judge.judge(*i) for i in items]
        scores = []
        for (_, _, k), js in zip(items, judgments, strict=True):
            scores += [1.0 if d.removed else 0.0 for d in decide(js, k, mode="both", on_unsure="keep")]
    seconds = time.perf_counter() - start
    usage = judge.usage.to_dict() if hasattr(judge, "usage") else {}
    fresh = usage.get("pointwise_calls", judged) if spec.startswith("llm-yes") else judged
    result = {
        "spec": spec,
        "pairs": keys,
        "scores": scores,
        "seconds": seconds,
        "pairs_judged": judged,
        # a rate measured on answers read back from the judgment cache (a resumed LLM run) would be meaningless
        "pairs_per_s": judged / seconds if seconds and not usage.get("pointwise_cached_pairs") else None,
        "cached_pairs": usage.get("pointwise_cached_pairs", 0),
        "uncached_pairs_per_s": (fresh / usage["pointwise_seconds"]) if usage.get("pointwise_seconds") else None,
        "usage": usage,
        "config": judge.get_config_dict(),
    }
    write_json(path, result)
    return result


def cascade_rows(
    cheap: list[dict[str, Any]], expensive: list[dict[str, Any]], tune: set[str], fn_loss: float
) -> tuple[list[dict[str, Any]], float]:
    """Cascade scores: the expensive score where the cheap one is at or above ``clear_below``, else -inf (cleared).
    ``clear_below``: the highest cheap score that clears at most ``fn_loss`` of the tune half's false negatives."""
    tune_fn = sorted(r["score"] for r in cheap if r["query_id"] in tune and r["grade"] == "fn")
    clear_below = tune_fn[int(np.floor(fn_loss * len(tune_fn)))] if tune_fn else float("-inf")
    rows = []
    for c, e in zip(cheap, expensive, strict=True):
        escalated = c["score"] >= clear_below
        rows.append({**c, "score": e["score"] if escalated else float("-inf"), "escalated": escalated})
    return rows, float(clear_below)


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores shared with other jobs, no GPU; Python {sys.version.split()[0]}"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def plot_pr(
    curves: dict[str, list[tuple[float, float]]], points: dict[str, tuple[float, float]], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, curve in curves.items():
        if curve:
            line = ax.plot([r for r, _ in curve], [p for _, p in curve], drawstyle="steps-post", label=name)[0]
            if name in points:
                ax.plot(*points[name], "o", color=line.get_color())
    ax.axvline(0.6, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("recall of NIST false negatives (held-out queries)")
    ax.set_ylabel("precision (false-negative share of removed)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def fixed_mark(judge: dict[str, Any]) -> str:
    return " (fixed)" if judge["threshold_rule"].startswith("fixed") else ""


def halvings_lines(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The table of the repeated halvings (every judge scored on all queries, and the mining teacher's cosine)."""
    meta = result["meta"]
    entries = [(f"`{meta['judge_labels'][s]}`", j.get("halvings")) for s, j in result["judges"].items()]
    entries.append((f"mining teacher's cosine (`{args.retriever}`)", meta.get("teacher_halvings")))
    entries = [(name, h) for name, h in entries if h]
    if not entries:
        return []
    n = entries[0][1]["splits"]

    def band(x: dict[str, float] | None) -> str:
        return "-" if x is None else f"{pct(x['median'])} ({pct(x['p5'])}-{pct(x['p95'])})"

    lines = [f"Over {n} random halvings of the queries (seed {args.seed}; threshold chosen on one half, measured on "
             "the other; median and 5th-95th percentile) and the AUC over all queries with a 95 % interval from "
             "1,000 query-bootstrap resamples:", "",
             "| judge | held-out recall | held-out tn removed | halvings meeting the target | AUC fn vs tn, all "
             "queries [95 % CI] |", "|---|---:|---:|---:|---:|"]
    for name, h in entries:
        ci = h["auc_ci95"]
        lines.append(f"| {name} | {band(h['recall'])} | {band(h['tn_removed'])} | {pct(h['meets_target_share'])} | "
                     f"{num(h['auc_all'])} [{num(ci[0]) if ci else '-'}, {num(ci[1]) if ci else '-'}] |")
    return [*lines, ""]


README_START, README_END = "<!-- false-negatives:start -->", "<!-- false-negatives:end -->"


def readme_block(text: str) -> str:
    """The report's tables and targets (its Markdown minus the title and provenance lines) for README's block."""
    body = text.split("\n## Strategies\n", 1)[1]
    body = body.replace("\n## Judges\n", "\n**Judges.**\n").replace("\n## Targets\n", "\n**Targets.**\n")
    body = re.sub(r"\n!\[[^\]]*\]\([^)]*\)\n?", "\n", body)  # the plot is linked from README itself
    return ("<!-- generated by benchmarks/false_negatives.py from benchmarks/results/false_negatives_dl19.json; "
            "do not edit -->\n\n" + body.strip() + "\n")


def write_readme_block(readme: Path, text: str) -> None:
    if not replace_readme_block(readme, README_START, README_END, readme_block(text)):
        raise SystemExit(f"{readme} has no {README_START} ... {README_END} block")


def markdown(result: dict[str, Any], args: argparse.Namespace, png: str | None) -> str:
    meta = result["meta"]
    lines = [
        f"# False negatives on {meta['data_name']}: mining strategies and judges against human judgments",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Commit {meta['commit']}; {meta['hardware']}; load average {meta['load_start']:.1f} at start, "
        f"{meta['load_end']:.1f} at the end; {meta['wall_s'] / 60:.1f} min wall.",
        "",
        f"Mined with `--split {args.split}` (one positive per query), graded with `qrels/{args.judge_split}.tsv`: "
        "`fn` = graded 2-3 (a known false negative), `related` = 1, `tn` = 0, `unjudged` = no judgment. "
        f"{args.num_negatives} negatives per query from the top {args.range_max} (positives excluded), "
        "queries with fewer survivors dropped (negmine's default). Hardness = mean cosine of the kept negatives "
        f"under `{args.retriever}`, the same teacher for every strategy.",
        "",
        "## Strategies",
        "",
        "| strategy | queries | negatives | fn | related | tn | unjudged | hardness |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["strategies"].items():
        share = s["share"]
        lines.append(
            f"| {name}{' (default)' if name == args.default else ''} | {s['queries']} | {s['negatives']} | "
            f"{pct(share['fn'])} | {pct(share['related'])} | {pct(share['tn'])} | {pct(share['unjudged'])} "
            f"| {num(s['hardness'])} |"
        )
    lines += [
        "",
        "False-negative share by rank band (rank among the retriever's candidates, positives excluded; "
        "fn / negatives in the band):",
        "",
        "| strategy | " + " | ".join(f"ranks {low}-{high - 1}" for low, high in BANDS) + " |",
        "|---|" + "---:|" * len(BANDS),
    ]
    for name, s in result["strategies"].items():
        cells = []
        for low, high in BANDS:
            band = s.get("by_rank_band", {}).get(f"{low}-{high}")
            n = sum(band.values()) if band else 0
            cells.append(f"{band['fn']}/{n} ({pct(band['fn'] / n)})" if n else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    judges = result["judges"]
    if judges:
        split = meta["query_split"]
        lines += [
            "",
            "## Judges",
            "",
            f"On the default run's negatives. Queries split with seed {args.seed}: thresholds chosen on "
            f"{len(split['tune'])} tune queries (the most recall among thresholds removing at most "
            f"{pct(args.max_tn_removed)} of their true negatives), everything below measured on the other "
            f"{len(split['test'])} (held out). A judge removes a negative when its score is at or above the "
            "threshold (`negmine relabel --mode filter --threshold T`).",
            "",
            "| judge | AUC fn vs tn | threshold | recall | tn removed | precision | F1 | fn share after | "
            f"recall at tn <= {pct(args.moonshot_tn)} | pairs/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for spec, j in judges.items():
            moon = j[f"at_tn_{args.moonshot_tn:g}"] or {"recall": None, "tn_removed": None}
            lines.append(
                f"| `{meta['judge_labels'][spec]}` | {num(j['auc'])} | {num(j['threshold'])}{fixed_mark(j)} | "
                f"{pct(j['recall'])} | {pct(j['tn_removed'])} | {pct(j['precision'])} | {num(j['f1'])} | "
                f"{pct(j['fn_share_after'])} | {pct(moon['recall'])} (tn {pct(moon['tn_removed'])}) | "
                f"{num(j.get('pairs_per_s'), 1)} |"
            )
        lines += [
            "",
            f"Mining teacher's own cosine AUC (fn vs tn, held-out queries): {num(meta['teacher_auc'])}.",
            "",
            *halvings_lines(result, args),
            "## Targets",
            "",
        ]
        for spec, j in judges.items():
            rec, tn = j["recall"], j["tn_removed"]
            ok = rec is not None and tn is not None and rec >= 0.6 and tn <= 0.2
            beats = j["auc"] is not None and meta["teacher_auc"] is not None and j["auc"] > meta["teacher_auc"]
            gap = [] if ok else [f"recall {pct(rec)} vs 60 % at tn removed {pct(tn)} vs <= 20 %"]
            lines.append(
                f"- `{meta['judge_labels'][spec]}`: {'meets' if ok and beats else 'misses'} the target"
                + (f" ({'; '.join(gap)})" if gap else "")
                + f"; AUC {num(j['auc'])} {'>' if beats else '<='} teacher {num(meta['teacher_auc'])}."
            )
    if png:
        lines += ["", f"![precision-recall of every judge on the held-out queries]({png})"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="trec-dl19", help="BEIR folder (or name under $NEGMINE_DATA).")
    p.add_argument("--split", default="sparse", help="qrels split to mine with (sparse labels).")
    p.add_argument("--judge-split", default="test", help="qrels split with graded judgments (0-3).")
    p.add_argument("--retriever", default="minilm", help="dense retriever of the strategies and the hardness teacher")
    p.add_argument("--model-path", default=None, help="weights folder of --retriever's preset")
    p.add_argument(
        "--extra-retrievers",
        nargs="*",
        default=None,
        help="other candidate sources (default: bm25 hybrid:bm25+RETRIEVER; none: pass the flag alone)",
    )
    p.add_argument("--default", default="TopK-PercPos 0.95", help="strategy whose negatives are judged")
    p.add_argument("--num-negatives", type=int, default=10)
    p.add_argument("--range-max", type=int, default=100)
    p.add_argument("--judge", action="append", default=[], help="judge spec (repeatable), e.g. embedding:minilm")
    p.add_argument("--cascade", action="append", default=[], help="CHEAP,EXPENSIVE: two --judge specs")
    p.add_argument(
        "--test-only",
        action="append",
        default=[],
        help="a --judge spec to score on the held-out half only (slow LLMs); its own threshold is used",
    )
    p.add_argument(
        "--test-only-queries",
        type=int,
        default=None,
        help="--test-only judges score only the first N held-out queries (in mined order; default all)",
    )
    p.add_argument(
        "--cascade-fn-loss",
        type=float,
        default=0.05,
        help="cascade: share of the tune half's false negatives the cheap judge may clear",
    )
    p.add_argument("--max-tn-removed", type=float, default=0.20, help="threshold rule: tn removal bound (tune half)")
    p.add_argument("--moonshot-tn", type=float, default=0.10, help="a second operating point's tn removal bound")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--halvings", type=int, default=200,
                   help="random tune/test halvings of the queries for the spread of held-out recall / tn removal")
    p.add_argument("--readme", type=Path, default=None,
                   help="README whose block between the false-negatives markers to rewrite with the tables")
    p.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size (mining)")
    p.add_argument("--judge-batch-size", type=int, default=32, help="batch size of embedding/cross-encoder judges")
    p.add_argument("--cache-dir", default=None, help="embedding cache (default $NEGMINE_CACHE or ~/.cache/negmine)")
    p.add_argument("--no-cache", action="store_true", help="no embedding cache")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--report", type=Path, default=None, help="also write a Markdown report (+ .json and .png)")
    args = p.parse_args(argv)
    if args.extra_retrievers is None:
        args.extra_retrievers = ["bm25", f"hybrid:bm25+{args.retriever}"]
    for pair in args.cascade:
        parts = pair.split(",")
        if len(parts) != 2 or any(part not in args.judge for part in parts):
            p.error(f"--cascade {pair!r}: give CHEAP,EXPENSIVE, both also passed as --judge")
        if parts[0] in args.test_only:
            p.error(f"--cascade {pair!r}: the cheap judge must score the tune half too (it sets clear_below)")
    for spec in args.test_only:
        if spec not in args.judge:
            p.error(f"--test-only {spec!r} is not one of the --judge specs")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    from negmine.encoders import EmbeddingCache
    from negmine.relabel.embedding import EmbeddingJudge

    start, load_start = time.perf_counter(), os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.data, args.split)
    dense = load_data(args.data, args.judge_split).qrels
    cache = None if args.no_cache else EmbeddingCache(args.cache_dir)
    teacher = Teacher(EmbeddingJudge(args.retriever, cache=cache, model_path=args.model_path), data)
    table = strategy_table(args.retriever, args.extra_retrievers)
    if args.default not in table:
        raise SystemExit(f"--default {args.default!r} is not one of: {', '.join(table)}")
    pools: dict[str, dict[tuple[str, str], int]] = {}
    strategies: dict[str, Any] = {}
    default_records: list[Any] = []
    for name, spec in table.items():
        t = time.perf_counter()
        if spec["retriever"] not in pools:
            pools[spec["retriever"]] = rank_pool(data, spec["retriever"], args, cache)
        result = mine(data, spec, args, cache)
        counts = count_grades(result.records, dense, pools[spec["retriever"]])
        cosines = [teacher.cosine(r.query_id, d) for r in result.records for d in r.negative_ids]
        scores = [s for r in result.records for s in r.negative_scores]
        strategies[name] = {
            **counts,
            "hardness": float(np.mean(cosines)) if cosines else None,
            "mean_retriever_score": float(np.mean(scores)) if scores else None,
            "config": spec,
            "seconds": time.perf_counter() - t,
        }
        if name == args.default:
            default_records = result.records
            write_jsonl(args.out / "mined.jsonl", (r.to_dict() for r in default_records))
    query_ids = sorted({r.query_id for r in default_records})
    random.Random(args.seed).shuffle(query_ids)
    tune = set(query_ids[: len(query_ids) // 2])
    base_rows = [
        {"query_id": r.query_id, "doc_id": d, "grade": grade_of(dense, r.query_id, d), "teacher": s}
        for r in default_records
        for d, s in zip(r.negative_ids, r.negative_scores)
    ]
    test_rows = [r for r in base_rows if r["query_id"] not in tune]
    teacher_auc = roc_auc(
        [r["teacher"] for r in test_rows if r["grade"] == "fn"],
        [r["teacher"] for r in test_rows if r["grade"] == "tn"],
    )
    judges: dict[str, Any] = {}
    judge_rows: dict[str, list[dict[str, Any]]] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    points: dict[str, tuple[float, float]] = {}
    labels: dict[str, str] = {}
    fixed: dict[str, float] = {}
    for spec in args.judge:
        test_only = spec in args.test_only
        records = [r for r in default_records if r.query_id not in tune] if test_only else default_records
        if test_only and args.test_only_queries is not None:
            records = records[: args.test_only_queries]
        scored = score_with_judge(spec, records, args, args.out)
        by_pair = {tuple(k): s for k, s in zip(scored["pairs"], scored["scores"], strict=True)}
        rows = [{**row, "score": by_pair.get((row["query_id"], row["doc_id"]))} for row in base_rows]
        judge_rows[spec] = rows
        if test_only:
            fixed[spec] = float(scored["config"].get("threshold", 0.5))
        report = judge_report(rows, tune, args.max_tn_removed, args.moonshot_tn, fixed_threshold=fixed.get(spec))
        report.update(
            pairs_per_s=scored["pairs_per_s"],
            uncached_pairs_per_s=scored["uncached_pairs_per_s"],
            seconds=scored["seconds"],
            usage=scored["usage"],
            config=scored["config"],
        )
        judges[spec] = report
    for pair in args.cascade:
        cheap, expensive = pair.split(",")
        rows, clear_below = cascade_rows(judge_rows[cheap], judge_rows[expensive], tune, args.cascade_fn_loss)
        spec = f"cascade({cheap} -> {expensive})"
        judge_rows[spec] = rows
        report = judge_report(rows, tune, args.max_tn_removed, args.moonshot_tn, fixed_threshold=fixed.get(expensive))
        escalated = sum(r["escalated"] for r in rows) / len(rows) if rows else 0.0
        seconds_per_pair = [
            1 / judges[s]["pairs_per_s"] if judges[s]["pairs_per_s"] else 0.0 for s in (cheap, expensive)
        ]
        cost = seconds_per_pair[0] + escalated * seconds_per_pair[1]
        report.update(clear_below=clear_below, escalated_share=escalated, pairs_per_s=1 / cost if cost else None)
        judges[spec] = report
    for spec, rows in judge_rows.items():
        judges[spec]["halvings"] = repeated_halvings(rows, query_ids, args.halvings, args.seed, args.max_tn_removed)
    teacher_halvings = repeated_halvings(base_rows, query_ids, args.halvings, args.seed, args.max_tn_removed,
                                         key="teacher")
    for spec, rows in judge_rows.items():
        labels[spec] = spec.replace(os.environ.get("NEGMINE_MODELS", "\0"), "$NEGMINE_MODELS")
        test = [r for r in rows if r["query_id"] not in tune]
        curves[labels[spec]] = pr_curve(test)
        if judges[spec]["recall"] is not None and judges[spec]["precision"] is not None:
            points[labels[spec]] = (judges[spec]["recall"], judges[spec]["precision"])
    default = strategies[args.default]
    result = {
        "negatives_by_grade": default["by_grade"],
        "strategies": strategies,
        "judges": judges,
        "meta": {
            "data": str(resolve_data_path(args.data)),
            "data_name": data.name,
            "split": args.split,
            "judge_split": args.judge_split,
            "default": args.default,
            "retriever": args.retriever,
            "query_split": {"seed": args.seed, "tune": sorted(tune), "test": sorted(set(query_ids) - tune)},
            "teacher_auc": teacher_auc,
            "teacher_halvings": teacher_halvings,
            "judge_labels": labels,
            "command": command_line("benchmarks/false_negatives.py", None if args.argv is None else args.argv),
            "commit": git_commit(),
            "hardware": hardware(),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
            "wall_s": time.perf_counter() - start,
        },
    }
    write_json(args.out / DEFAULT_JSON, result)
    if args.report:
        png = args.report.with_suffix(".png")
        if curves:
            plot_pr(curves, points, png, f"{data.name}: false-negative judges, held-out queries")
        text = markdown(result, args, png.name if curves else None)
        publish(text, args.report)
        if args.readme is not None:
            write_readme_block(args.readme, text)
        write_json(args.report.with_suffix(".json"), result)
    else:
        print(json.dumps({k: result[k] for k in ("negatives_by_grade",)}, indent=2))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = None if argv is None else list(argv)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
