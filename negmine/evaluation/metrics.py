"""Retrieval metrics over BEIR-style dicts, computed by ``pytrec_eval`` (trec_eval's own code, no hand-written maths).

``evaluate(qrels, run)`` is a pure function: it reads two dicts and returns flat keys (``ndcg@10``, ``recall@100``,
``mrr@10``, ``map@10``, ``precision@5``, ``map``). :func:`evaluate_per_query` also returns every query's score per
metric, which paired significance tests (:mod:`negmine.evaluation.significance`) need.

Conventions (the BEIR/MTEB ones, so the figures are comparable with published tables):

- The evaluated queries are those of ``qrels`` with at least one judgement > 0. A query missing from the run, or whose
  run is empty, scores 0 on every metric; it is not silently dropped (``pytrec_eval`` alone would drop it).
- Relevant documents missing from the corpus (ArguAna names 5) simply cannot be retrieved: they still count in
  recall and nDCG's ideal ranking, as trec_eval counts them.
- ``ignore_identical_ids=True`` removes a retrieved document whose id equals the query id before scoring (BEIR's
  default; ArguAna's queries are themselves documents of the corpus).
- Ranking is by score descending, ties broken by document id descending: trec_eval's order. MRR@k is trec_eval's
  ``recip_rank`` on each run cut to its top k in that same order.
- ``map@k`` is trec_eval's ``map_cut.k``; ``map`` is trec_eval's ``map`` over the whole run as given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from negmine.errors import DataError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)

# negmine name -> trec_eval measure family (cut at each k)
_CUT_MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut"}


def check_k_values(k_values: Iterable[int]) -> tuple[int, ...]:
    """Validate and sort ``k_values`` (positive integers, at least one)."""
    try:
        ks = tuple(sorted({int(k) for k in k_values}))
    except (TypeError, ValueError):
        raise ValueError(f"k_values must be positive integers, got {k_values!r}") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"k_values must be positive integers, got {k_values!r}")
    return ks


def metric_names(k_values: Sequence[int] = DEFAULT_K_VALUES) -> list[str]:
    """The flat metric keys :func:`evaluate` returns for ``k_values``, in display order."""
    ks = check_k_values(k_values)
    names = [f"{m}@{k}" for m in ("ndcg", "recall", "precision", "mrr", "map") for k in ks]
    return [*names, "map"]


def rank(doc_scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval's order: score descending, then document id descending."""
    return [doc for doc, _ in sorted(doc_scores.items(), key=lambda item: (float(item[1]), item[0]), reverse=True)]


def truncate_run(run: Run, k: int) -> dict[str, dict[str, float]]:
    """Keep each query's top ``k`` documents in trec_eval's order."""
    out: dict[str, dict[str, float]] = {}
    for qid, doc_scores in run.items():
        top = rank(doc_scores)[:k]
        out[qid] = {doc: float(doc_scores[doc]) for doc in top}
    return out


def drop_identical_ids(run: Run) -> dict[str, dict[str, float]]:
    """Remove retrieved documents whose id equals the query id (BEIR's ``ignore_identical_ids``)."""
    return {qid: {doc: float(s) for doc, s in docs.items() if doc != qid} for qid, docs in run.items()}


def _check_inputs(qrels: Qrels, run: Run) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    if not isinstance(qrels, Mapping) or not qrels:
        raise DataError("empty qrels: there is nothing to evaluate against", field="qrels")
    clean_qrels: dict[str, dict[str, int]] = {}
    for qid, docs in qrels.items():
        if not isinstance(docs, Mapping):
            raise DataError(f"qrels[{qid!r}] must map document ids to relevance, got {type(docs).__name__}",
                            field="qrels")
        judged = {str(doc): int(rel) for doc, rel in docs.items()}
        if any(rel > 0 for rel in judged.values()):
            clean_qrels[str(qid)] = judged
    if not clean_qrels:
        raise DataError("qrels have no relevant (score > 0) judgement", field="qrels")
    if not isinstance(run, Mapping) or not any(run.get(qid) for qid in clean_qrels):
        n_docs = sum(len(d) for d in run.values()) if isinstance(run, Mapping) else 0
        raise DataError(f"empty run: none of the {len(clean_qrels):,} judged queries retrieved a document "
                        f"(the run has {len(run) if isinstance(run, Mapping) else 0:,} queries and {n_docs:,} "
                        "documents); check that the run's query ids match the qrels'", field="run")
    clean_run: dict[str, dict[str, float]] = {}
    for qid in clean_qrels:
        docs = run.get(qid) or {}
        scores = {}
        for doc, score in docs.items():
            value = float(score)
            if math.isnan(value):
                raise DataError(f"NaN score for document {doc!r} of query {qid!r}", field="run")
            scores[str(doc)] = value
        clean_run[qid] = scores
    return clean_qrels, clean_run


def evaluate_per_query(qrels: Qrels, run: Run, k_values: Sequence[int] = DEFAULT_K_VALUES, *,
                       ignore_identical_ids: bool = False) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score a run against qrels with ``pytrec_eval``: the mean of each metric and every query's value.

    Args:
        qrels: ``query_id -> {doc_id: relevance}``; queries without any relevance > 0 are not evaluated.
        run: ``query_id -> {doc_id: score}``, higher = more relevant; queries it lacks score 0.
        k_values: cut-offs for nDCG, recall, precision, MRR and MAP.
        ignore_identical_ids: drop retrieved documents whose id equals the query id first.

    Returns:
        ``(means, per_query)``: ``means[metric]`` is the average over the evaluated queries;
        ``per_query[metric][query_id]`` the value of each of those queries (same query set for every metric).

    Raises:
        DataError: empty qrels, qrels without a relevant judgement, or a run that retrieved nothing for any judged
            query (mismatched ids).
    """
    from negmine._optional import require

    pytrec_eval = require("pytrec_eval", "retrieval metrics")
    ks = check_k_values(k_values)
    clean_qrels, clean_run = _check_inputs(qrels, drop_identical_ids(run) if ignore_identical_ids else run)
    query_ids = list(clean_qrels)
    # trec_eval skips queries absent from the run; evaluate only those with documents and fill zeros for the rest
    answered = {qid: docs for qid, docs in clean_run.items() if docs}

    per_query: dict[str, dict[str, float]] = {name: dict.fromkeys(query_ids, 0.0) for name in metric_names(ks)}
    cut = ",".join(str(k) for k in ks)
    measures = {f"{family}.{cut}" for family in _CUT_MEASURES.values()} | {"map"}
    scores = pytrec_eval.RelevanceEvaluator(clean_qrels, measures).evaluate(answered)
    for qid, values in scores.items():
        for name, family in _CUT_MEASURES.items():
            for k in ks:
                per_query[f"{name}@{k}"][qid] = float(values[f"{family}_{k}"])
        per_query["map"][qid] = float(values["map"])
    rr_evaluator = pytrec_eval.RelevanceEvaluator(clean_qrels, {"recip_rank"})
    for k in ks:
        for qid, values in rr_evaluator.evaluate(truncate_run(answered, k)).items():
            per_query[f"mrr@{k}"][qid] = float(values["recip_rank"])
    means = {name: sum(values.values()) / len(query_ids) for name, values in per_query.items()}
    return means, per_query


def evaluate(qrels: Qrels, run: Run, k_values: Sequence[int] = DEFAULT_K_VALUES, *,
             ignore_identical_ids: bool = False) -> dict[str, float]:
    """Mean nDCG@k, Recall@k, Precision@k, MRR@k, MAP@k and MAP of ``run`` against ``qrels`` (``pytrec_eval``).

    Args:
        qrels: ``query_id -> {doc_id: relevance}`` (BEIR qrels).
        run: ``query_id -> {doc_id: score}`` (a TREC run; higher = more relevant).
        k_values: cut-offs, e.g. ``(1, 3, 5, 10, 100)``.
        ignore_identical_ids: drop retrieved documents whose id equals the query id (needed for ArguAna).

    Returns:
        Flat keys: ``ndcg@10``, ``recall@100``, ``precision@1``, ``mrr@10``, ``map@10``, ``map``…, plus
        ``num_queries``.

    Example:
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d2": 0.8, "d3": 0.7}}
        >>> scores = evaluate(qrels, run, k_values=(1, 2))
        >>> scores["recall@1"], scores["mrr@2"]
        (0.5, 0.75)
    """
    means, per_query = evaluate_per_query(qrels, run, k_values, ignore_identical_ids=ignore_identical_ids)
    return {**means, "num_queries": len(next(iter(per_query.values())))}


def format_table(metrics: Mapping[str, Any], k_values: Sequence[int] = DEFAULT_K_VALUES, digits: int = 4) -> str:
    """A plain-text table: one row per metric family, one column per k (the CLI prints it)."""
    ks = check_k_values(k_values)
    header = ["metric", *(f"@{k}" for k in ks)]
    rows = [header]
    for family in ("ndcg", "recall", "precision", "mrr", "map"):
        if any(f"{family}@{k}" in metrics for k in ks):
            rows.append([family, *(f"{metrics[f'{family}@{k}']:.{digits}f}" if f"{family}@{k}" in metrics else "-"
                                   for k in ks)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    if "map" in metrics:
        lines.append(f"MAP (whole run): {metrics['map']:.{digits}f}")
    return "\n".join(lines)
