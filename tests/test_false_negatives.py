"""benchmarks/false_negatives.py: exact grade counts on a hand-made dense-label set, and the judge metrics."""

from __future__ import annotations

import json
import random

import pytest

pytest.importorskip("bm25s")


@pytest.fixture(scope="module")
def fn(benchmark_script):
    return benchmark_script("false_negatives")


DOCS = {
    "d1": "solar panels turn sunlight into electricity",
    "d2": "photovoltaic cells convert light to power",
    "d3": "the history of the sun in mythology",
    "d4": "wind turbines generate electricity from wind",
    "d5": "how solar energy is converted by panels",
    "d6": "offshore wind farms and their turbines",
}
QUERIES = {"q1": "how do solar panels make electricity", "q2": "how do wind turbines work"}
SPARSE = [("q1", "d1", 1), ("q2", "d4", 1)]
# graded: q1's negatives d2 fn, d3 related, d4 tn, d5 fn, d6 unjudged;
# q2's d1 tn, d2 tn, d3 related, d5 unjudged, d6 fn
DENSE = [
    ("q1", "d1", 3),
    ("q1", "d2", 2),
    ("q1", "d3", 1),
    ("q1", "d4", 0),
    ("q1", "d5", 3),
    ("q2", "d4", 2),
    ("q2", "d1", 0),
    ("q2", "d2", 0),
    ("q2", "d3", 1),
    ("q2", "d6", 2),
]
HAND_COUNT = {"fn": 3, "related": 2, "tn": 3, "unjudged": 2}  # every non-positive document is mined (5 per query)


def _write(folder, rows, name):
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
    (folder / "qrels" / name).write_text("\n".join(lines) + "\n")


@pytest.fixture()
def dense_set(tmp_path):
    folder = tmp_path / "synthetic"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in DOCS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    _write(folder, SPARSE, "sparse.tsv")
    _write(folder, DENSE, "test.tsv")
    return folder


def test_grade_counts_match_a_hand_count(fn, dense_set, tmp_path):
    out = tmp_path / "out"
    code = fn.main(
        [
            "--data",
            str(dense_set),
            "--retriever",
            "hashing",
            "--extra-retrievers",
            "bm25",
            "--default",
            "naive top-k",
            "--num-negatives",
            "5",
            "--judge",
            "embedding:hashing@0.1",
            "--judge",
            "embedding:hashing@0.2",
            "--test-only",
            "embedding:hashing@0.2",
            "--cascade",
            "embedding:hashing@0.1,embedding:hashing@0.2",
            "--no-cache",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "false_negatives.json").read_text())
    assert result["negatives_by_grade"] == HAND_COUNT
    for name in ("naive top-k", "bm25 top-k"):  # any retriever: all five candidates of each query are mined
        s = result["strategies"][name]
        assert (s["queries"], s["negatives"], s["by_grade"]) == (2, 10, HAND_COUNT)
        assert s["by_rank_band"] == {"0-10": HAND_COUNT}
    for name in ("range_min 10", "range_min 30"):  # nothing ranked that low: both queries dropped
        assert result["strategies"][name]["negatives"] == 0
    mined = [json.loads(line) for line in (out / "mined.jsonl").read_text().splitlines()]
    assert sorted((r["query_id"], sorted(r["negative_ids"])) for r in mined) == [
        ("q1", ["d2", "d3", "d4", "d5", "d6"]),
        ("q2", ["d1", "d2", "d3", "d5", "d6"]),
    ]
    judge = result["judges"]["embedding:hashing@0.1"]
    assert {"precision", "recall", "f1", "auc", "tn_removed", "pairs_per_s"} <= judge.keys()
    split = result["meta"]["query_split"]
    assert len(split["tune"]) == 1 and sorted(split["tune"] + split["test"]) == ["q1", "q2"]
    assert (
        judge["test"]["negatives_by_grade"]
        == {
            "q1": {"fn": 2, "related": 1, "tn": 1, "unjudged": 1},
            "q2": {"fn": 1, "related": 1, "tn": 2, "unjudged": 1},
        }[split["test"][0]]
    )

    fixed = result["judges"]["embedding:hashing@0.2"]  # scored on the held-out query only, its own threshold
    assert fixed["threshold"] == 0.2 and fixed["threshold_rule"].startswith("fixed")
    assert fixed["scored_pairs"] == 5 and fixed["auc_tune"] is None
    scores = json.loads((out / "judges" / "embedding_hashing_0.2.json").read_text())
    assert [q for q, _ in scores["pairs"]] == split["test"] * 5
    cascade = result["judges"]["cascade(embedding:hashing@0.1 -> embedding:hashing@0.2)"]
    assert cascade["threshold"] == 0.2 and 0 <= cascade["escalated_share"] <= 1


def _loop_auc(high, low):
    return sum((h > lo) + 0.5 * (h == lo) for h in high for lo in low) / (len(high) * len(low))


def test_roc_auc_matches_the_pairwise_loop(fn):
    rng = random.Random(3)
    for _ in range(20):
        high = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.9]) for _ in range(rng.randint(1, 9))]
        low = [rng.choice([0.1, 0.2, 0.4, 0.5]) for _ in range(rng.randint(1, 9))]
        assert fn.roc_auc(high, low) == pytest.approx(_loop_auc(high, low))
    assert fn.roc_auc([], [0.1]) is None


def _rows(pairs, query="a"):
    return [{"query_id": query, "grade": g, "score": s} for g, s in pairs]


def test_removal_metrics_and_threshold_rule_by_hand(fn):
    rows = _rows(
        [
            ("fn", 0.9),
            ("fn", 0.7),
            ("fn", 0.2),
            ("tn", 0.8),
            ("tn", 0.3),
            ("tn", 0.1),
            ("tn", 0.05),
            ("tn", 0.0),
            ("related", 0.75),
            ("unjudged", 0.1),
        ]
    )
    m = fn.removal_metrics(rows, 0.7)  # removes fn 0.9, fn 0.7, tn 0.8, related 0.75
    assert m["recall"] == pytest.approx(2 / 3) and m["precision"] == pytest.approx(2 / 4)
    assert m["tn_removed"] == pytest.approx(1 / 5) and m["fn_share_after"] == pytest.approx(1 / 6)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # at most 20 % of 5 tn = 1 tn may go: 0.3 would remove two, so the lowest allowed threshold is 0.7
    assert fn.choose_threshold(rows, 0.20) == 0.7
    assert fn.choose_threshold(rows, 0.0) == 0.9
    assert fn.choose_threshold(_rows([("tn", 0.5)]), 0.0) == float("inf")


def test_cascade_clears_below_the_cheap_cut_and_lets_the_expensive_judge_decide(fn):
    cheap = _rows([("fn", 0.9), ("fn", 0.5), ("tn", 0.1), ("tn", 0.6)], "t") + _rows([("fn", 0.8), ("tn", 0.2)], "h")
    expensive = _rows([("fn", 0.3), ("fn", 0.95), ("tn", 0.99), ("tn", 0.1)], "t") + _rows(
        [("fn", 0.7), ("tn", 0.9)], "h"
    )
    rows, clear_below = fn.cascade_rows(cheap, expensive, {"t"}, fn_loss=0.0)
    assert clear_below == 0.5  # the lowest tune fn: no tune fn is cleared
    assert [r["score"] for r in rows] == [0.3, 0.95, float("-inf"), 0.1, 0.7, float("-inf")]
    assert [r["escalated"] for r in rows] == [True, True, False, True, True, False]


def test_repeated_halvings_spread_and_bootstrap(fn):
    """A perfect judge meets the target on every halving with AUC 1; a judge that scores true negatives highest
    never does; a judge scored on one half only gets no halvings."""
    rng = random.Random(3)
    rows = []
    for q in range(20):
        for _ in range(3):
            rows.append({"query_id": f"q{q}", "grade": "fn", "score": rng.uniform(0.6, 1.0), "teacher": 0.5})
            rows.append({"query_id": f"q{q}", "grade": "tn", "score": rng.uniform(0.0, 0.4), "teacher": 0.5})
        rows.append({"query_id": f"q{q}", "grade": "related", "score": rng.uniform(0.0, 1.0), "teacher": 0.5})
    ids = [f"q{q}" for q in range(20)]
    perfect = fn.repeated_halvings(rows, ids, 25, 0, 0.2)
    assert perfect["splits"] == 25 and perfect["meets_target_share"] == 1.0
    assert perfect["recall"]["median"] == 1.0 and perfect["tn_removed"]["p95"] <= 0.2
    assert perfect["auc_all"] == 1.0 and perfect["auc_ci95"] == [1.0, 1.0]
    flipped = [{**r, "score": -r["score"]} for r in rows]
    worst = fn.repeated_halvings(flipped, ids, 25, 0, 0.2)
    assert worst["meets_target_share"] == 0.0 and worst["auc_all"] == 0.0
    tied = fn.repeated_halvings(rows, ids, 10, 0, 0.2, key="teacher")  # one score for all: AUC one half
    assert tied["auc_all"] == 0.5
    assert fn.repeated_halvings([*rows, {**rows[0], "score": None}], ids, 5, 0, 0.2) is None


def test_readme_block_replaces_only_the_marked_part(fn, tmp_path):
    report = ("# t\n\nCommand: `x`\n\n## Strategies\n\n| a |\n|---|\n| 1 |\n\n## Judges\n\nj\n\n## Targets\n\n- t\n\n"
              "![plot](p.png)\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{fn.README_START}\nold\n{fn.README_END}\nafter\n", encoding="utf-8")
    fn.write_readme_block(readme, report)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n" + fn.README_START) and text.endswith(fn.README_END + "\nafter\n")
    assert "old" not in text and "| 1 |" in text and "**Judges.**" in text and "Command" not in text
    assert "p.png" not in text
    (tmp_path / "bare.md").write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no <!-- false-negatives:start -->"):
        fn.write_readme_block(tmp_path / "bare.md", report)
