"""benchmarks/soft_weights.py: the replayed Soft-InfoNCE weights equal the formula computed by hand, and the report
has one row per (alpha, t)."""

from __future__ import annotations

import json
import math

import pytest


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("soft_weights")


def by_hand(scores: list[float], batch_size: int, alpha: float, beta: float, t: float, w_min: float) -> list[float]:
    n = batch_size * (1 + len(scores)) - 1
    filled = scores + [min(scores)] * (n - len(scores))
    z = sum(math.exp(s / t) for s in filled)
    return [max(w_min, (beta - alpha * math.exp(s / t) / z) / (beta - alpha / n)) for s in scores]


@pytest.mark.parametrize("t", [1.0, 0.05, 0.01])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 10.0])
def test_row_weights_match_the_formula(script, alpha, t):
    scores = [0.71, 0.55, 0.52, 0.40]
    got = script.row_weights(scores, 8, alpha, 1.0, t, 0.1).tolist()
    assert got == pytest.approx(by_hand(scores, 8, alpha, 1.0, t, 0.1), rel=1e-9)
    assert got == sorted(got)  # the hardest negative gets the lowest weight
    if alpha == 0.0:
        assert got == [1.0] * len(scores)


def test_report_from_a_mined_file(script, tmp_path):
    mined = tmp_path / "mined.jsonl"
    rows = [{"query_id": str(i), "query": f"q{i}", "positive_ids": [f"p{i}"], "positives": ["p"],
             "positive_scores": [0.8], "negative_ids": [f"n{i}{j}" for j in range(3)], "negatives": ["a", "b", "c"],
             "negative_scores": [0.3 + 0.1 * i, 0.2, 0.1]} for i in range(4)]
    rows.append({**rows[0], "query_id": "short", "negative_ids": ["x"], "negatives": ["x"], "negative_scores": [0.9]})
    mined.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "weights.md"
    text = script.main(["--mined", str(mined), "--batch-size", "4", "--num-negatives", "3", "--alpha", "1", "10",
                        "--t", "1", "0.01", "--out", str(out)])
    assert out.read_text() == text
    assert "4 queries with 3 teacher-scored negatives" in text  # the query with one negative is left out
    table = [line for line in text.splitlines() if line.startswith("| 1") and "|---" not in line]
    assert len(table) == 4
    hardest = {(r.split("|")[1].strip(), r.split("|")[2].strip()): float(r.split("|")[3]) for r in table}
    assert hardest[("10", "0.01")] < hardest[("10", "1")] <= 1.0


@pytest.mark.parametrize("rescale", [True, False])
def test_cwcl_shares_match_the_formula(script, rescale):
    rows = [([0.8, 0.6], [0.5, 0.3, -0.2]), ([0.7], [0.65, 0.1, 0.0])]
    target, student = script.cwcl_target_share(rows, 4.0, rescale), script.student_share(rows, 0.05)
    want_target, want_student = [], []
    for positives, negatives in rows:
        weights = [max(0.0, (s + 1) / 2 if rescale else s) ** 4 for s in negatives]
        want_target.append(sum(weights) / (sum(weights) + len(positives)))
        exps = [math.exp(s / 0.05) for s in positives + negatives]
        want_student.append(sum(exps[len(positives):]) / sum(exps))
    assert target == pytest.approx(sum(want_target) / 2, rel=1e-9)
    assert student == pytest.approx(sum(want_student) / 2, rel=1e-9)


def test_report_has_the_cwcl_table(script, tmp_path):
    mined = tmp_path / "mined.jsonl"
    rows = [{"query_id": str(i), "query": f"q{i}", "positive_ids": [f"p{i}"], "positives": ["p"],
             "positive_scores": [0.6], "negative_ids": [f"n{i}{j}" for j in range(2)], "negatives": ["a", "b"],
             "negative_scores": [0.55, 0.5]} for i in range(3)]
    mined.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = script.main(["--mined", str(mined), "--num-negatives", "2", "--power", "1", "8", "--out", "-"])
    cwcl = [line for line in text.splitlines() if line.startswith(("| (r + 1) / 2 |", "| r |"))]
    assert len(cwcl) == 4
    # power 1 on the rescaled scores gives the negatives more target than the sharp student softmax: "pulls"
    assert "pulls them closer" in cwcl[0] and "pushes them away" in cwcl[-1]
