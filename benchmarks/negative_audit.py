"""A hand audit of mined hard negatives: how many are false negatives, how many are even on topic.

No judge that runs on this machine tells SciFact positives from negatives well (``relabel_scifact.md``), so the
false-negative rate of the negatives the SciFact recipes train on was measured by reading them; ``judge`` mode then
measures a judge against those labels. This script draws the sample, writes a worksheet to label, checks a labels
file against the sample and writes the report.

    # 0. mine SciFact train as the SciFact recipes did when the audit was made (a file the audit owns)
    python benchmarks/negative_audit.py mine                           # minilm -> runs/negative_audit/mine-minilm
    python benchmarks/negative_audit.py mine --teacher mpnet --mined runs/negative_audit/mine-mpnet/mined.jsonl
    # 1. draw the sample (16 training queries x their 5 training negatives) and write the worksheet
    python benchmarks/negative_audit.py worksheet --out /tmp/audit.md
    # 2. label each negative in benchmarks/results/negative_audit_labels.jsonl, then
    python benchmarks/negative_audit.py report
    # the rates with intervals from the labels alone (no mined file needed)
    python benchmarks/negative_audit.py intervals --labels benchmarks/results/negative_audit_labels.jsonl \
        --labels benchmarks/results/negative_audit_labels_mpnet.jsonl
    # 3. measure a judge against the hand labels (the same sample, plus each query's positives)
    python benchmarks/negative_audit.py judge --judge llm-yes:$NEGMINE_MODELS/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

Labels:
- ``false_negative``: the abstract gives evidence for or against the claim (SciFact's own relevance criterion);
- ``borderline``: it states the claim only in passing (e.g. as background of a review);
- ``related``: about the claim's own entity or process, without evidence on the claim;
- ``off_topic``: shares at most the broad field.

The sample follows training: queries with at least ``--negatives`` negatives (the others are dropped by the
recipe's ``too_few`` policy) and their first ``--negatives`` ones, drawn with ``random.Random(seed).sample``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report  # noqa: E402

from negmine.data import LoadReport, iter_jsonl
from negmine.data.mined import read_mined
from negmine.errors import DataError
from negmine.evaluation.significance import cluster_bootstrap_rate
from negmine.io import atomic_open

DEFAULT_MINED = Path("runs/negative_audit/mine-minilm/mined.jsonl")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
# the SciFact recipes' mining when the labels were made (2026-11-22): TopK-PercPos 0.95 against each query's lowest
# positive, ranks 0-50, 8 negatives (5 + 3 spare), the top ones, every query kept; the sample is drawn from this file
AUDIT_MINING = {"split": "train", "strategy": "perc-pos", "percentage": 0.95, "margin_reference": "lowest",
                "range_min": 0, "range_max": 50, "num_negatives": 8, "sampling": "top", "too_few": "keep",
                "format": "flag", "output_scores": True, "seed": 0}
DEFAULT_LABELS = Path("benchmarks/results/negative_audit_labels.jsonl")
DEFAULT_OUT = Path("benchmarks/results/negative_audit.md")
DEFAULT_JUDGE_OUT = Path("benchmarks/results/negative_audit_judge.md")
DEFAULT_INTERVALS_OUT = Path("benchmarks/results/negative_audit_intervals.md")
LABELS = ("false_negative", "borderline", "related", "off_topic")


def draw_sample(records: list[dict[str, Any]], num_queries: int, num_negatives: int, seed: int,
                query_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``num_queries`` records with at least ``num_negatives`` negatives, cut to their first ``num_negatives``.

    With ``query_ids`` (another audit's queries, to compare two mined files on the same claims) those records are
    taken instead, in that order; the ones with fewer negatives are left out, as training leaves them out.
    """
    eligible = [r for r in records if len(r["negative_ids"]) >= num_negatives]
    if query_ids is not None:
        by_id = {str(r["query_id"]): r for r in eligible}
        sample = [by_id[q] for q in query_ids if q in by_id]
    elif len(eligible) < num_queries:
        raise DataError(f"only {len(eligible)} queries have {num_negatives} negatives; asked for {num_queries}")
    else:
        sample = random.Random(seed).sample(eligible, num_queries)
    keys = ("negative_ids", "negatives", "negative_scores")
    return [{**r, **{k: list(r.get(k) or [])[:num_negatives] for k in keys}} for r in sample]


def worksheet(sample: list[dict[str, Any]], chars: int = 1500) -> str:
    """Markdown with each claim, its positives and the negatives to label."""
    lines = ["# Negatives to label", "", f"Labels: {', '.join(LABELS)}.", ""]
    for r in sample:
        lines += [f"## query {r['query_id']}: {r['query']}", ""]
        for pid, text in zip(r["positive_ids"], r["positives"]):
            lines.append(f"- positive {pid}: {text[:chars]}")
        for i, (nid, text) in enumerate(zip(r["negative_ids"], r["negatives"]), 1):
            lines.append(f"- **negative {i}** {nid}: {text[:chars]}")
        lines.append("")
    return "\n".join(lines)


def label_template(sample: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"query_id": r["query_id"], "negative_id": nid, "rank": i, "label": None, "note": ""}
            for r in sample for i, nid in enumerate(r["negative_ids"], 1)]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError("no such labels file", path=path)
    return [row for _, row in iter_jsonl(path, LoadReport(), "error")]


def _scored(sample: list[dict[str, Any]], labels: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """Each label row beside its negative's teacher score (labels are in sample order, see :func:`check_labels`)."""
    return list(zip(labels, (score for r in sample for score in r["negative_scores"]), strict=True))


def check_labels(path: Path, sample: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The labels of ``path`` in sample order; an error names the line and field that does not match the sample."""
    expected = label_template(sample)
    rows = _read_rows(path)
    if len(rows) != len(expected):
        raise DataError(f"{len(rows)} labels for a sample of {len(expected)} negatives", path=path)
    for line, (row, want) in enumerate(zip(rows, expected), 1):
        for key in ("query_id", "negative_id", "rank"):
            if str(row.get(key)) != str(want[key]):
                raise DataError(f"expected {want[key]!r} (the sample's negative {want['rank']} of query "
                                f"{want['query_id']}), got {row.get(key)!r}", path=path, line=line, field=key)
        if row.get("label") not in LABELS:
            raise DataError(f"label must be one of {', '.join(LABELS)}, got {row.get('label')!r}",
                            path=path, line=line, field="label")
    return rows


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial share ``k / n``."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _query_interval(by_query: dict[str, list[str]], name: str) -> tuple[float, float]:
    rate = cluster_bootstrap_rate({q: [x == name for x in v] for q, v in by_query.items()}, seed=0)
    return rate.ci_low, rate.ci_high


def summarize(sample: list[dict[str, Any]], labels: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and shares per label, teacher scores per label and per-query patterns."""
    by_query: dict[str, list[str]] = {}
    per_label: dict[str, list[float]] = {name: [] for name in LABELS}
    for row, score in _scored(sample, labels):
        by_query.setdefault(str(row["query_id"]), []).append(row["label"])
        per_label[row["label"]].append(score)
    counts = Counter(row["label"] for row in labels)
    n = len(labels)
    return {
        "negatives": n, "queries": len(sample),
        "counts": {name: counts[name] for name in LABELS},
        "shares": {name: counts[name] / n for name in LABELS},
        "intervals": {name: wilson_interval(counts[name], n) for name in LABELS},
        # pairs of one query are not independent draws (both SciFact false negatives came from one claim): the
        # interval that resamples queries is the one to quote
        "query_intervals": {name: _query_interval(by_query, name) for name in LABELS},
        "mean_score": {name: statistics.fmean(v) if v else None for name, v in per_label.items()},
        "mean_positive_score": statistics.fmean(s for r in sample for s in r["positive_scores"]),
        "queries_with_false_negative": sum("false_negative" in v for v in by_query.values()),
        "queries_all_off_topic": sum(all(x == "off_topic" for x in v) for v in by_query.values()),
    }


def report(summary: dict[str, Any], sample: list[dict[str, Any]], labels: list[dict[str, Any]],
           mined: Path, teacher: str = "all-MiniLM-L6-v2", drawn: str = "random training queries") -> str:
    s = summary
    lines = [
        "# Hand audit of the mined negatives the SciFact recipes train on",
        "",
        f"Mined file: `{mined}` ({teacher} as teacher; {mined_with(mined)}).",
        f"Sample: {s['queries']} {drawn} × their first {s['negatives'] // s['queries']} negatives = "
        f"{s['negatives']} (query, negative) pairs, each read in full and labelled by the negmine developers. "
        "Labels: `false_negative` = the abstract gives evidence for or against the claim; `borderline` = states "
        "it only in passing; `related` = the claim's own entity or process, no evidence; `off_topic` = at most the "
        "broad field.",
        "",
        "Intervals: the query-level bootstrap (10,000 resamples of the queries, seed 0) is the one to quote, since "
        "negatives of one query are not independent draws; the Wilson interval treats the pairs as independent and "
        "is shown for comparison.",
        "",
        "| label | negatives | share | [95 % query bootstrap] | [95 % Wilson, pairs independent] | "
        "mean teacher score |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in LABELS:
        score = s["mean_score"][name]
        low, high = s["intervals"][name]
        q_low, q_high = s["query_intervals"][name]
        lines.append(f"| {name} | {s['counts'][name]} | {100 * s['shares'][name]:.1f} % | "
                     f"[{100 * q_low:.1f}, {100 * q_high:.1f}] | [{100 * low:.1f}, {100 * high:.1f}] | "
                     f"{'—' if score is None else f'{score:.3f}'} |")
    lines += [
        f"| (the queries' positives) | | | | | {s['mean_positive_score']:.3f} |",
        "",
        f"- Queries with at least one false negative among their 5: {s['queries_with_false_negative']} of "
        f"{s['queries']}. Queries whose 5 negatives are all off topic: {s['queries_all_off_topic']} of "
        f"{s['queries']}.",
        "",
        "## Every label",
        "",
        "| query | claim | rank | negative | score | label | why |",
        "|---|---|---:|---|---:|---|---|",
    ]
    claims = {str(r["query_id"]): r["query"] for r in sample}
    for row, score in _scored(sample, labels):
        claim = claims[str(row["query_id"])]
        claim = claim if len(claim) <= 80 else claim[:77] + "..."
        lines.append(f"| {row['query_id']} | {claim} | {row['rank']} | {row['negative_id']} | {score:.3f} | "
                     f"{row['label']} | {row.get('note', '')} |")
    return "\n".join(lines) + "\n"


POSITIVE = "positive"  # the qrels' positives of the sampled queries, judged beside the labelled negatives
NOT_RELEVANT = ("related", "off_topic")


def judge_pairs(sample: list[dict[str, Any]], labels: list[dict[str, Any]], judge: Any,
                show_progress_bar: bool = False) -> list[dict[str, Any]]:
    """Every positive and labelled negative of ``sample`` with the judge's score (``None``: unsure) and decision.

    The judge sees each query's candidate set as relabeling does (positives first), one query at a time.
    """
    from tqdm.auto import tqdm

    items = [(r["query"], [*r["positives"], *r["negatives"]], len(r["positives"])) for r in sample]
    judgments = [judge.judge(*item) for item in tqdm(items, desc="judge", unit="query", disable=not show_progress_bar)]
    scored = iter(_scored(sample, labels))
    rows = []
    for r, verdicts in zip(sample, judgments, strict=True):
        kinds = [(pid, POSITIVE, score) for pid, score in zip(r["positive_ids"], r["positive_scores"])]
        kinds += [(row["negative_id"], row["label"], score) for row, score in
                  (next(scored) for _ in r["negative_ids"])]
        for (doc_id, kind, teacher), verdict in zip(kinds, verdicts, strict=True):
            rows.append({"query_id": str(r["query_id"]), "doc_id": str(doc_id), "kind": kind,
                         "teacher_score": teacher, "judge_score": verdict.score, "judge_label": verdict.label.value})
    return rows


def auc(high: Sequence[float], low: Sequence[float]) -> float | None:
    """P(a random ``high`` score > a random ``low`` one), ties counting one half (the ROC AUC); ``None`` if empty."""
    if not high or not low:
        return None
    wins = sum((h > lo) + 0.5 * (h == lo) for h in high for lo in low)
    return wins / (len(high) * len(low))


def _catch_all(negatives: list[dict[str, Any]], key: str) -> int | None:
    """How many not-relevant negatives a filter on ``key`` removes at the highest threshold that still removes every
    false negative (the price of catching them all); ``None`` without false negatives or scores."""
    fn = [r[key] for r in negatives if r["kind"] == "false_negative" and r[key] is not None]
    if not fn:
        return None
    return sum(r[key] is not None and r[key] >= min(fn) for r in negatives if r["kind"] in NOT_RELEVANT)


def judge_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the judge's scores and decisions say about the hand labels.

    ``auc_positive``: positives vs not-relevant negatives (``related`` + ``off_topic``); ``auc_relevant``: positives
    and false negatives vs the same. ``filtered``: negatives the judge calls positive (the ones a filter removes),
    by hand label. ``queries_positive_first``: queries whose best-scored positive beats all their negatives.
    """
    def scores(kinds: Sequence[str]) -> list[float]:
        return [r["judge_score"] for r in rows if r["kind"] in kinds and r["judge_score"] is not None]

    kinds = (POSITIVE, *LABELS)
    per_kind = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    negatives = [r for r in rows if r["kind"] != POSITIVE]
    by_query: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_query.setdefault(r["query_id"], []).append(r)
    first = 0
    for group in by_query.values():
        pos = [r["judge_score"] for r in group if r["kind"] == POSITIVE and r["judge_score"] is not None]
        neg = [r["judge_score"] for r in group if r["kind"] != POSITIVE and r["judge_score"] is not None]
        first += bool(pos) and all(max(pos) > n for n in neg)
    return {
        "pairs": len(rows), "queries": len(by_query),
        "count": {k: len(v) for k, v in per_kind.items()},
        "mean_score": {k: statistics.fmean(s) if (s := scores([k])) else None for k in kinds},
        "called_positive": {k: sum(r["judge_label"] == "positive" for r in v) for k, v in per_kind.items()},
        "unsure": sum(r["judge_score"] is None for r in rows),
        "auc_positive": auc(scores([POSITIVE]), scores(NOT_RELEVANT)),
        "auc_relevant": auc(scores([POSITIVE, "false_negative"]), scores(NOT_RELEVANT)),
        "auc_teacher": auc([r["teacher_score"] for r in per_kind[POSITIVE]],
                           [r["teacher_score"] for r in rows if r["kind"] in NOT_RELEVANT]),
        "catch_all_judge": _catch_all(negatives, "judge_score"),
        "catch_all_teacher": _catch_all(negatives, "teacher_score"),
        "filtered": sum(r["judge_label"] == "positive" for r in negatives),
        "negatives": len(negatives),
        "queries_positive_first": first,
    }


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def judge_report(s: dict[str, Any], rows: list[dict[str, Any]], judge_name: str, labels_path: Path,
                 threshold: float, command: str = "") -> str:
    """Markdown: the judge's scores per hand label, its AUCs and what its filter would remove."""
    fn = s["count"]["false_negative"]
    caught = s["called_positive"]["false_negative"]
    expected_random = s["filtered"] * fn / s["negatives"] if s["negatives"] else 0.0
    not_relevant = sum(s["count"][k] for k in NOT_RELEVANT)
    lines = [
        "# A false-negative judge against the hand labels",
        "",
        f"Judge: `{judge_name}` (threshold {threshold}). Labels: `{labels_path}` ({s['queries']} SciFact train "
        f"queries; {s['count'][POSITIVE]} qrels positives and {s['negatives']} hand-labelled mined negatives, "
        f"{s['pairs']} pairs). A filter removes the negatives the judge calls positive.",
        "",
        *([f"Command: `{command}`", ""] if command else []),
        "| pairs | n | mean judge score | called positive |",
        "|---|---:|---:|---:|",
    ]
    for kind in (POSITIVE, *LABELS):
        score = s["mean_score"][kind]
        lines.append(f"| {kind} | {s['count'][kind]} | {fmt(score)} | "
                     f"{s['called_positive'][kind]} |")
    lines += [
        "",
        f"- ROC AUC, positives vs not-relevant negatives (`related` + `off_topic`): **{fmt(s['auc_positive'])}** "
        f"(0.5 = chance; the mining teacher's own cosine: {fmt(s['auc_teacher'])}, favoured by construction, since "
        "mining kept only negatives scoring below 95 % of their query's positive). Positives and false negatives "
        f"vs the same: {fmt(s['auc_relevant'])}.",
        f"- Queries whose positive scores above all their negatives: {s['queries_positive_first']} of "
        f"{s['queries']}.",
        f"- As a filter: it would remove {s['filtered']} of {s['negatives']} negatives, {caught} of them among the "
        f"{fn} false negatives (a random filter removing as many would catch {expected_random:.2f}). "
        f"Unscored pairs: {s['unsure']}.",
        f"- The price of catching every false negative: at the highest threshold that removes all {fn}, a filter on "
        f"the judge's score also removes {s['catch_all_judge']} of the {not_relevant} not-relevant negatives; a "
        f"filter on the teacher's cosine removes {s['catch_all_teacher']}.",
        "",
        "## Every pair",
        "",
        "| query | document | hand label | teacher score | judge score | judge label |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['query_id']} | {r['doc_id']} | {r['kind']} | {r['teacher_score']:.3f} | "
                     f"{fmt(r['judge_score'])} | {r['judge_label']} |")
    return "\n".join(lines) + "\n"


def label_intervals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per label: count, share, the query-level bootstrap interval and the Wilson interval, from labels alone."""
    by_query: dict[str, list[str]] = {}
    for row in rows:
        by_query.setdefault(str(row["query_id"]), []).append(row["label"])
    n = len(rows)
    counts = Counter(row["label"] for row in rows)
    return {"pairs": n, "queries": len(by_query),
            "labels": {name: {"count": counts[name], "share": counts[name] / n if n else 0.0,
                              "query_bootstrap": _query_interval(by_query, name),
                              "wilson": wilson_interval(counts[name], n),
                              "queries_with_label": sum(name in v for v in by_query.values())}
                       for name in LABELS}}


def intervals_report(summaries: dict[str, dict[str, Any]]) -> str:
    lines = ["# Hand-audit rates with query-level intervals", "",
             "Each labels file's shares with two 95 % intervals: the query bootstrap (10,000 resamples of the "
             "queries, seed 0; negatives of one query are not independent draws) and the Wilson interval (pairs "
             "treated as independent; too narrow when hits cluster in a few queries).", ""]
    for path, s in summaries.items():
        lines += [f"## `{path}`: {s['pairs']} pairs from {s['queries']} queries", "",
                  "| label | pairs | share | [95 % query bootstrap] | [95 % Wilson] | queries with this label |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, v in s["labels"].items():
            (q_low, q_high), (w_low, w_high) = v["query_bootstrap"], v["wilson"]
            lines.append(f"| {name} | {v['count']} | {100 * v['share']:.1f} % | "
                         f"[{100 * q_low:.1f}, {100 * q_high:.1f}] | [{100 * w_low:.1f}, {100 * w_high:.1f}] | "
                         f"{v['queries_with_label']} of {s['queries']} |")
        lines.append("")
    return "\n".join(lines)


def run_judge(args: argparse.Namespace, sample: list[dict[str, Any]], labels: list[dict[str, Any]]) -> int:
    from negmine.relabel.factory import JudgeOptions, load_judge

    options = JudgeOptions(threshold=args.threshold, n_threads=args.threads,
                           max_passage_words=args.max_passage_words)
    judge = load_judge(args.judge, cache=str(args.cache), options=options)
    rows = judge_pairs(sample, labels, judge, show_progress_bar=True)
    out = args.out or DEFAULT_JUDGE_OUT
    kind, _, target = args.judge.partition(":")
    summary = judge_summary(rows)
    report = Report(out.stem, "benchmarks/negative_audit.py", args.argv, out=out)
    report.write(judge_report(summary, rows, f"{kind}:{target.rsplit('/', 1)[-1]}", args.labels, args.threshold),
                 {"summary": summary, "rows": rows}, echo=False)
    print(f"report: {out}")
    return 0


def mine(data: Path, teacher: str, mined: Path) -> Path:
    """Mine ``data``'s train split with ``teacher`` and :data:`AUDIT_MINING` into ``mined``'s folder."""
    from negmine.mining import mine_hard_negatives

    mine_hard_negatives(str(data), teacher, out=str(mined.parent), show_progress_bar=True, **AUDIT_MINING)
    return mined


def mined_with(mined: str | Path) -> str:
    """How ``mined`` was made, from the ``manifest.json`` beside it (retriever and mining settings)."""
    manifest = Path(mined).parent / "manifest.json"
    if not manifest.is_file():
        return "no manifest.json beside it"
    config = json.loads(manifest.read_text())["config"]
    keys = ("retriever", "split", "strategy", "percentage", "margin_reference", "range_min", "range_max",
            "num_negatives", "sampling", "too_few", "seed")
    return ", ".join(f"{k} {config.get(k)}" for k in keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("mine", "worksheet", "report", "judge", "intervals"))
    parser.add_argument("--mined", type=Path, default=DEFAULT_MINED)
    parser.add_argument("--labels", type=Path, action="append", default=None,
                        help=f"hand labels (default {DEFAULT_LABELS}); intervals mode: repeatable")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"worksheet: where to write it (required); report: default {DEFAULT_OUT}; "
                             f"judge: default {DEFAULT_JUDGE_OUT}")
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--same-queries-as", type=Path, default=None, metavar="LABELS",
                        help="audit the queries of this labels file (in its order) instead of a random draw")
    parser.add_argument("--teacher", default="all-MiniLM-L6-v2",
                        help="the mining teacher (mine mode: a preset such as minilm or mpnet; else for the report)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mine mode: the SciFact BEIR folder")
    parser.add_argument("--judge", default=None, help="judge mode: a judge spec, as `negmine relabel --judge`")
    parser.add_argument("--threshold", type=float, default=0.5, help="judge mode: score that counts as positive")
    parser.add_argument("--threads", type=int, default=None, help="judge mode: llama.cpp threads")
    parser.add_argument("--max-passage-words", type=int, default=300, help="judge mode: passage cut in prompts")
    parser.add_argument("--cache", type=Path, default=Path("runs/negative_audit/judge_cache.jsonl"),
                        help="judge mode: raw judge outputs (a rerun resumes from it)")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    labels_files = args.labels or [DEFAULT_LABELS]
    if args.mode == "intervals":
        summaries = {str(path): label_intervals(_read_rows(path)) for path in labels_files}
        out = args.out or DEFAULT_INTERVALS_OUT
        Report(out.stem, "benchmarks/negative_audit.py", args.argv, out=out).write(intervals_report(summaries),
                                                                                   summaries, echo=False)
        print(f"report: {out}")
        return 0
    if args.mode == "mine":
        teacher = "minilm" if args.teacher == "all-MiniLM-L6-v2" else args.teacher
        print(f"mined: {mine(args.data, teacher, args.mined)}")
        return 0
    args.labels = labels_files[0]
    query_ids = None
    if args.same_queries_as is not None:
        query_ids = list(dict.fromkeys(str(row["query_id"]) for row in _read_rows(args.same_queries_as)))
    sample = draw_sample([m.to_dict() for m in read_mined(args.mined)], args.queries, args.negatives, args.seed,
                         query_ids)
    if args.mode == "worksheet":
        if args.out is None:
            parser.error("worksheet needs --out")
        with atomic_open(args.out) as handle:
            handle.write(worksheet(sample))
        template = args.out.with_suffix(".labels.jsonl")
        with atomic_open(template) as handle:
            handle.writelines(json.dumps(row) + "\n" for row in label_template(sample))
        print(f"worksheet: {args.out}\nlabels to fill in: {template}")
        return 0
    labels = check_labels(args.labels, sample)
    if args.mode == "judge":
        if args.judge is None:
            parser.error("judge needs --judge SPEC")
        return run_judge(args, sample, labels)
    out = args.out or DEFAULT_OUT
    drawn = (f"random training queries (`random.Random({args.seed})`)" if query_ids is None else
             f"training queries of `{args.same_queries_as}` ({len(query_ids) - len(sample)} left out: fewer "
             f"than {args.negatives} negatives here)")
    summary = summarize(sample, labels)
    Report(out.stem, "benchmarks/negative_audit.py", args.argv, out=out).write(
        report(summary, sample, labels, args.mined, args.teacher, drawn), {"summary": summary, "labels": labels},
        echo=False)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
