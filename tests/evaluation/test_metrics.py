"""negmine.evaluation.metrics: hand-computed values, trec_eval conventions, and parity with MTEB's own scorer."""

from __future__ import annotations

import math
import random

import pytest

from negmine.errors import DataError
from negmine.evaluation.metrics import evaluate, evaluate_per_query, format_table, metric_names, rank, truncate_run

QRELS = {"q1": {"d1": 1, "d2": 1}, "q2": {"d3": 2, "d4": 1}}
RUN = {
    "q1": {"d9": 0.9, "d1": 0.8, "d8": 0.7, "d2": 0.6},  # relevant at ranks 2 and 4
    "q2": {"d3": 0.5, "d7": 0.4, "d4": 0.3},  # grade 2 at rank 1, grade 1 at rank 3
}


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_hand_computed_values() -> None:
    scores = evaluate(QRELS, RUN, k_values=(1, 3, 10))
    ndcg_q1 = _dcg([0, 1, 0, 1]) / _dcg([1, 1])
    ndcg_q2 = _dcg([2, 0, 1]) / _dcg([2, 1])  # trec_eval's ndcg uses the grade as the gain
    assert scores["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert scores["ndcg@1"] == pytest.approx((0 + 1) / 2)
    assert scores["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert scores["recall@3"] == pytest.approx((0.5 + 1.0) / 2)
    assert scores["precision@3"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert scores["mrr@1"] == pytest.approx((0 + 1) / 2)
    assert scores["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)
    ap_q1 = (1 / 2 + 2 / 4) / 2
    ap_q2 = (1 / 1 + 2 / 3) / 2
    assert scores["map"] == pytest.approx((ap_q1 + ap_q2) / 2)
    assert scores["map@1"] == pytest.approx((0 + 1 / 2) / 2)
    assert scores["num_queries"] == 2
    assert set(metric_names((1, 3, 10))) == set(scores) - {"num_queries"}


def test_query_missing_from_run_scores_zero_and_still_counts() -> None:
    scores, per_query = evaluate_per_query(QRELS, {"q2": RUN["q2"]}, k_values=(10,))
    assert per_query["ndcg@10"]["q1"] == 0.0
    assert scores["ndcg@10"] == pytest.approx(per_query["ndcg@10"]["q2"] / 2)
    empty_q1 = evaluate(QRELS, {"q1": {}, "q2": RUN["q2"]}, k_values=(10,))
    assert empty_q1["ndcg@10"] == pytest.approx(scores["ndcg@10"])


def test_unretrievable_relevant_document_still_counts_in_recall() -> None:
    # ArguAna: the qrels name documents that are not in the corpus; they lower recall, they are not dropped
    qrels = {"q1": {"d1": 1, "missing-doc": 1}}
    assert evaluate(qrels, {"q1": {"d1": 1.0}}, k_values=(10,))["recall@10"] == pytest.approx(0.5)


def test_queries_without_positive_judgement_are_not_evaluated() -> None:
    qrels = {**QRELS, "q3": {"d5": 0}}
    assert evaluate(qrels, RUN)["num_queries"] == 2


def test_ignore_identical_ids() -> None:
    qrels = {"a1": {"a2": 1}}
    run = {"a1": {"a1": 0.99, "a2": 0.9}}
    assert evaluate(qrels, run, k_values=(1,))["ndcg@1"] == 0.0
    assert evaluate(qrels, run, k_values=(1,), ignore_identical_ids=True)["ndcg@1"] == 1.0


def test_ties_follow_trec_eval_order() -> None:
    # equal scores: trec_eval ranks the larger doc id first, and MRR@1 (computed on a cut run) must agree
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 0.5, "b": 0.5}}
    assert rank(run["q"]) == ["b", "a"]
    assert truncate_run(run, 1) == {"q": {"b": 0.5}}
    scores = evaluate(qrels, run, k_values=(1, 2))
    assert scores["mrr@1"] == 0.0 == scores["ndcg@1"]
    assert scores["mrr@2"] == 0.5


@pytest.mark.parametrize("run", [{}, {"other": {"d1": 1.0}}, {"q1": {}, "q2": {}}])
def test_empty_run_is_a_clear_error(run: dict) -> None:
    with pytest.raises(DataError, match="empty run"):
        evaluate(QRELS, run)


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="empty qrels"):
        evaluate({}, RUN)
    with pytest.raises(DataError, match="no relevant"):
        evaluate({"q1": {"d1": 0}}, RUN)
    with pytest.raises(ValueError, match="k_values"):
        evaluate(QRELS, RUN, k_values=(0, 10))
    with pytest.raises(DataError, match="NaN"):
        evaluate(QRELS, {"q1": {"d1": float("nan")}})


def test_format_table_lists_every_family() -> None:
    text = format_table(evaluate(QRELS, RUN, k_values=(1, 10)), (1, 10))
    for family in ("ndcg", "recall", "precision", "mrr", "map", "MAP (whole run)"):
        assert family in text


def test_parity_with_mteb_retrieval_scores() -> None:
    """Same qrels and run through MTEB's scorer (pytrec_eval + its own MRR) give the same numbers (5 decimals)."""
    pytest.importorskip("mteb")
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    rng = random.Random(7)
    docs = [f"d{i}" for i in range(300)]
    qrels = {f"q{i}": {d: rng.choice([1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 5))} for i in range(80)}
    run = {}
    for qid, rel in qrels.items():
        scores = {d: round(rng.random(), 2) for d in rng.sample(docs, 150)}  # rounding creates ties
        for d in rel:
            if rng.random() < 0.6:
                scores[d] = round(rng.uniform(0.95, 1.0), 2)
        run[qid] = scores
    ks = [1, 3, 5, 10, 100]
    ours = evaluate(qrels, run, ks)
    theirs = calculate_retrieval_scores({q: dict(d) for q, d in run.items()}, qrels, ks)
    assert ours["ndcg@10"] > 0.2  # a run with signal, so the comparison means something
    for k in ks:
        assert ours[f"ndcg@{k}"] == pytest.approx(theirs.ndcg[f"NDCG@{k}"], abs=1e-5)
        assert ours[f"recall@{k}"] == pytest.approx(theirs.recall[f"Recall@{k}"], abs=1e-5)
        assert ours[f"precision@{k}"] == pytest.approx(theirs.precision[f"P@{k}"], abs=1e-5)
        assert ours[f"map@{k}"] == pytest.approx(theirs.map[f"MAP@{k}"], abs=1e-5)
        assert ours[f"mrr@{k}"] == pytest.approx(theirs.mrr[f"MRR@{k}"], abs=1e-5)
