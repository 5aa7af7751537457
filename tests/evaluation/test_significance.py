"""negmine.evaluation.significance: paired tests against scipy and their edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.errors import DataError
from negmine.evaluation.significance import compare_runs, format_comparison, paired_test


def _scores(values: np.ndarray) -> dict[str, float]:
    return {f"q{i}": float(v) for i, v in enumerate(values)}


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, float], dict[str, float]]:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 300)
    b = np.clip(a + rng.normal(0.03, 0.1, 300), 0, 1)
    return _scores(a), _scores(b)


def test_t_test_matches_scipy(pair) -> None:
    from scipy import stats

    a, b = pair
    result = paired_test(a, b, metric="ndcg@10")
    ids = sorted(a)
    expected = stats.ttest_rel([b[q] for q in ids], [a[q] for q in ids])
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.diff == pytest.approx(np.mean([b[q] - a[q] for q in ids]))
    assert result.ci_low < result.diff < result.ci_high
    assert result.n == 300 and result.metric == "ndcg@10"


@pytest.mark.parametrize("method", ["bootstrap", "randomization"])
def test_resampling_tests_agree_with_t_test_and_are_seeded(pair, method) -> None:
    a, b = pair
    t = paired_test(a, b)
    r1 = paired_test(a, b, method=method, seed=1)
    r2 = paired_test(a, b, method=method, seed=1)
    assert r1 == r2
    assert (r1.p_value < 0.05) == (t.p_value < 0.05)
    assert r1.p_value == pytest.approx(t.p_value, abs=0.02)


def test_no_difference_and_noise_only() -> None:
    rng = np.random.default_rng(3)
    a = _scores(rng.uniform(0, 1, 200))
    assert paired_test(a, a).p_value == 1.0
    noisy = {q: v + rng.normal(0, 0.05) for q, v in a.items()}
    shuffled_sign = paired_test(a, noisy, method="randomization")
    assert shuffled_sign.p_value > 0.01
    shift = {q: v + 0.1 for q, v in a.items()}
    assert paired_test(a, shift).p_value == 0.0


def test_different_query_sets_are_an_error(pair) -> None:
    a, b = pair
    b = dict(b)
    b.pop("q0")
    with pytest.raises(DataError, match="different queries"):
        paired_test(a, b, metric="ndcg@10")
    with pytest.raises(ValueError, match="method"):
        paired_test(a, a, method="wilcoxon")  # type: ignore[arg-type]


def test_compare_runs_and_table(pair) -> None:
    a, b = pair
    results = compare_runs({"ndcg@10": a, "mrr@10": a}, {"ndcg@10": b, "mrr@10": b})
    assert [r.metric for r in results] == ["ndcg@10", "mrr@10"]
    table = format_comparison(results)
    assert "ndcg@10" in table and "paired t-test over 300 queries" in table
    with pytest.raises(DataError, match="missing"):
        compare_runs({"ndcg@10": a}, {"ndcg@10": b}, ["recall@100"])
