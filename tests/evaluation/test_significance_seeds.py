"""Seed-aware tests, Holm's correction and the query-level audit interval against loop references and known values."""

from __future__ import annotations

import numpy as np
import pytest

from negmine.errors import DataError
from negmine.evaluation.significance import (
    cluster_bootstrap_rate,
    holm,
    holm_adjust,
    paired_test,
    per_seed_test,
    seed_aware_test,
)


def _rows(rng: np.random.Generator, n_queries: int, seeds: tuple[int, ...], shift: float = 0.0, seed_sd: float = 0.0,
          base: np.ndarray | None = None) -> dict[int, dict[str, float]]:
    base = rng.uniform(0, 1, n_queries) if base is None else base
    out = {}
    for s in seeds:
        offset = rng.normal(0, seed_sd)
        out[s] = {f"q{i}": float(v + shift + offset + rng.normal(0, 0.05)) for i, v in enumerate(base)}
    return out


def _loop_reference(a, b, n_resamples: int, seed: int) -> np.ndarray:
    """The resampled differences, one resample and one query at a time (the same draws in the same order)."""
    ids = sorted(next(iter(a.values())))
    seeds_a, seeds_b = sorted(a), sorted(b)
    rng = np.random.default_rng(seed)
    q_idx = rng.integers(0, len(ids), size=(n_resamples, len(ids)))
    a_idx = rng.integers(0, len(seeds_a), size=(n_resamples, len(seeds_a)))
    b_idx = rng.integers(0, len(seeds_b), size=(n_resamples, len(seeds_b)))
    out = []
    for r in range(n_resamples):
        total = 0.0
        for qi in q_idx[r]:
            q = ids[qi]
            mean_b = sum(b[seeds_b[s]][q] for s in b_idx[r]) / len(seeds_b)
            mean_a = sum(a[seeds_a[s]][q] for s in a_idx[r]) / len(seeds_a)
            total += mean_b - mean_a
        out.append(total / len(ids))
    return np.array(out)


def test_seed_aware_bootstrap_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 25)
    a = _rows(rng, 25, (12, 13, 14), seed_sd=0.02, base=base)
    b = _rows(rng, 25, (12, 13), shift=0.01, seed_sd=0.02, base=base)
    n = 300
    result = seed_aware_test(a, b, metric="ndcg@10", n_resamples=n, seed=5)
    boot = _loop_reference(a, b, n, seed=5)
    observed = np.mean([[v for v in s.values()] for s in b.values()]) - np.mean([[v for v in s.values()]
                                                                                  for s in a.values()])
    assert result.diff == pytest.approx(observed)
    low, high = np.quantile(boot, [0.025, 0.975])
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high))
    expected_p = (np.sum(np.abs(boot - observed) >= abs(observed) - 1e-12) + 1) / (n + 1)
    assert result.p_value == pytest.approx(expected_p)
    assert result.seeds_a == (12, 13, 14) and result.seeds_b == (12, 13) and result.n_queries == 25
    assert result.seed_p_value is None and not result.single_seed


def test_seed_variance_widens_the_interval_and_raises_p() -> None:
    """Same query-level effect; when seeds disagree, the seed-aware test is less sure than the seed-averaged one."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 300)
    a = _rows(rng, 300, (12, 13, 14), seed_sd=0.03, base=base)
    b = _rows(rng, 300, (12, 13, 14), shift=0.02, seed_sd=0.03, base=base)
    aware = seed_aware_test(a, b, n_resamples=2000)
    averaged = paired_test({q: np.mean([a[s][q] for s in a]) for q in a[12]},
                           {q: np.mean([b[s][q] for s in b]) for q in b[12]}, method="bootstrap", n_resamples=2000)
    assert aware.diff == pytest.approx(averaged.diff)
    assert aware.ci_high - aware.ci_low > 2 * (averaged.ci_high - averaged.ci_low)
    assert aware.p_value > averaged.p_value
    assert aware.seed_test == "paired t-test" and aware.seed_p_value is not None


def test_single_seed_rows_reduce_to_the_query_bootstrap_and_are_labelled() -> None:
    rng = np.random.default_rng(2)
    a = _rows(rng, 50, (12,))
    b = _rows(rng, 50, (12,), shift=0.05, base=np.array([a[12][f"q{i}"] for i in range(50)]))
    aware = seed_aware_test(a, b, n_resamples=1000, seed=3)
    assert aware.single_seed and aware.label() == "single seed"
    assert aware.to_dict()["single_seed"] is True
    # with one seed per row the seed draws are all 0: the query draws are those of the plain paired bootstrap
    plain = paired_test(a[12], b[12], method="bootstrap", n_resamples=1000, seed=3)
    assert aware.ci_low == pytest.approx(plain.ci_low) and aware.ci_high == pytest.approx(plain.ci_high)


def test_identical_rows_and_constant_shift() -> None:
    rng = np.random.default_rng(4)
    a = _rows(rng, 20, (1, 2, 3))
    assert seed_aware_test(a, a, n_resamples=200).p_value == 1.0
    one = {1: a[1]}
    shifted = {2: {q: v + 0.1 for q, v in a[1].items()}}
    assert seed_aware_test(one, shifted, n_resamples=200).p_value == 0.0


def test_seed_aware_is_seeded_and_checks_inputs() -> None:
    rng = np.random.default_rng(5)
    a, b = _rows(rng, 30, (1, 2)), _rows(rng, 30, (1, 2))
    assert seed_aware_test(a, b, n_resamples=500, seed=9) == seed_aware_test(a, b, n_resamples=500, seed=9)
    with pytest.raises(DataError, match="different queries"):
        seed_aware_test(a, {1: {"other": 0.1}}, n_resamples=200)
    with pytest.raises(DataError, match="seeds of the row"):
        seed_aware_test(a, {1: b[1], 2: {"q0": 0.1}}, n_resamples=200)
    with pytest.raises(DataError, match="no seeds"):
        seed_aware_test({}, b, n_resamples=200)
    with pytest.raises(ValueError, match="n_resamples"):
        seed_aware_test(a, b, n_resamples=10)


def test_per_seed_test_matches_scipy() -> None:
    from scipy import stats

    a = {12: 0.60, 13: 0.62, 14: 0.61}
    b = {12: 0.63, 13: 0.64, 14: 0.66}
    p, name = per_seed_test(a, b)
    assert name == "paired t-test"
    assert p == pytest.approx(stats.ttest_rel([0.63, 0.64, 0.66], [0.60, 0.62, 0.61]).pvalue)
    p, name = per_seed_test(a, {1: 0.63, 2: 0.64, 3: 0.66})
    assert name == "Welch t-test"
    assert p == pytest.approx(stats.ttest_ind([0.63, 0.64, 0.66], [0.60, 0.62, 0.61], equal_var=False).pvalue)
    assert per_seed_test(a, {12: 0.7, 13: 0.7}) == (None, None)


def test_holm_textbook_values() -> None:
    # Holm (1979)-style worked example: sorted p 0.005, 0.01, 0.03, 0.04 with m = 4 -> 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # the step-down is monotone and capped at 1
    assert holm([0.5, 0.4, 0.01]) == pytest.approx([0.8, 0.8, 0.03])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.2, None, 0.01]) == [pytest.approx(0.2), None, pytest.approx(0.02)]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([1.5])


def test_holm_matches_brute_force_definition() -> None:
    rng = np.random.default_rng(6)
    p = rng.uniform(0, 0.2, 9)
    m = len(p)
    order = np.argsort(p)
    expected = np.empty(m)
    for rank, i in enumerate(order):
        expected[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    assert holm(list(p)) == pytest.approx(list(expected))


def test_holm_adjust_fills_results() -> None:
    rng = np.random.default_rng(7)
    base = _rows(rng, 40, (1, 2, 3))
    rows = [_rows(rng, 40, (1, 2, 3), shift=s) for s in (0.0, 0.05)]
    results = holm_adjust([seed_aware_test(base, r, n_resamples=300) for r in rows])
    assert [r.p_holm for r in results] == pytest.approx(holm([r.p_value for r in results]))


def _loop_rate(groups, n_resamples: int, seed: int) -> np.ndarray:
    keys = sorted(k for k in groups if groups[k])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(keys), size=(n_resamples, len(keys)))
    out = []
    for r in range(n_resamples):
        hits = sum(sum(groups[keys[i]]) for i in idx[r])
        pairs = sum(len(groups[keys[i]]) for i in idx[r])
        out.append(hits / pairs)
    return np.array(out)


def test_cluster_bootstrap_rate_matches_loop_reference() -> None:
    groups = {f"q{i}": [False] * 5 for i in range(16)}
    groups["q3"] = [True, True, False, False, False]  # the audit's shape: both hits under one query
    groups["empty"] = []
    result = cluster_bootstrap_rate(groups, n_resamples=2000, seed=1)
    assert (result.hits, result.total, result.queries) == (2, 80, 16)
    assert result.rate == pytest.approx(2 / 80)
    rates = _loop_rate(groups, 2000, seed=1)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(rates, [0.025, 0.975])))
    # one query holds every hit: in about (15/16)^16 = 36 % of resamples it is not drawn and the rate is 0
    assert result.ci_low == 0.0
    # a pair-level (binomial) interval would be narrower than the clustered one
    assert result.ci_high > 2 / 80 + 1.96 * np.sqrt(2 / 80 * 78 / 80 / 80)


def test_cluster_bootstrap_rate_errors() -> None:
    with pytest.raises(DataError):
        cluster_bootstrap_rate({"q": []})
    with pytest.raises(ValueError):
        cluster_bootstrap_rate({"q": [True]}, n_resamples=5)
