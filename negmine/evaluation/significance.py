"""Paired significance tests between two runs over the same queries.

A 300-query test set (SciFact) moves by ±0.01 nDCG@10 from noise alone, so a difference between two models is
reported with a test that pairs each query's two scores:

- ``t-test``: the paired (dependent-samples) t-test on per-query differences (``scipy.stats.ttest_rel``); the usual
  choice in IR papers (Smucker, Allan & Carterette, CIKM 2007, found it agrees with the randomisation test).
- ``bootstrap``: a seeded paired bootstrap of the mean difference; the p-value is the two-sided share of resampled
  means on the other side of 0 (shifted to the null), and the 95% interval is the percentile interval.
- ``randomization``: Fisher's paired randomisation (sign-flip) test with a seeded Monte-Carlo sample.

Every method also returns the percentile bootstrap 95% confidence interval of the mean difference.

Rows trained with several seeds (:func:`seed_aware_test`) vary between seeds as well as between queries; a test on
seed-averaged query scores ignores the first. The seed-aware test bootstraps queries *and* each row's seeds, and adds
a paired t-test on the per-seed means once both rows have >= 3 seeds. :func:`holm` corrects a table's p-values for
the number of rows compared; :func:`cluster_bootstrap_rate` gives a rate measured on pairs grouped by query (an audit
of mined negatives) an interval that resamples queries, not pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from negmine.errors import DataError

Method = Literal["t-test", "bootstrap", "randomization"]
METHODS: tuple[str, ...] = ("t-test", "bootstrap", "randomization")


@dataclass(frozen=True)
class PairedTestResult:
    """The outcome of one paired test: ``b`` minus ``a`` (``a`` is the baseline)."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paired_arrays(a: Mapping[str, float], b: Mapping[str, float], metric: str) -> tuple[np.ndarray, np.ndarray]:
    if not a or not b:
        raise DataError(f"no per-query scores for {metric!r} in {'the baseline' if not a else 'the run'}",
                        field=metric)
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        example = sorted(only_a or only_b)[:3]
        raise DataError(f"the two runs were scored on different queries for {metric!r}: {len(only_a):,} only in the "
                        f"baseline, {len(only_b):,} only in the run (e.g. {example}); compare runs on the same "
                        "data and split", field=metric)
    ids = sorted(a)
    return (np.array([float(a[q]) for q in ids], dtype=np.float64),
            np.array([float(b[q]) for q in ids], dtype=np.float64))


def _bootstrap_means(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    means = np.empty(n_resamples, dtype=np.float64)
    block = max(1, 2_000_000 // max(1, diff.size))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        idx = rng.integers(0, diff.size, size=(size, diff.size))
        means[start:start + size] = diff[idx].mean(axis=1)
    return means


def paired_test(a: Mapping[str, float], b: Mapping[str, float], *, metric: str = "", method: Method = "t-test",
                n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> PairedTestResult:
    """Test whether run ``b`` differs from baseline ``a`` on one metric, pairing scores by query id.

    Args:
        a: baseline ``query_id -> score``.
        b: the other run's ``query_id -> score``; must cover exactly the same queries.
        metric: the metric's name, carried into the result.
        method: ``t-test`` (paired t-test), ``bootstrap`` (paired bootstrap) or ``randomization`` (sign-flip test).
        n_resamples: resamples for the bootstrap interval and the resampling tests.
        seed: seed of the local random generator (results are reproducible).
        confidence: level of the bootstrap confidence interval of the mean difference.

    Returns:
        A :class:`PairedTestResult` with means, ``diff = mean(b) - mean(a)``, the interval and the two-sided p-value.

    Example:
        >>> a = {"q1": 0.2, "q2": 0.4, "q3": 0.1, "q4": 0.3}
        >>> b = {"q1": 0.3, "q2": 0.5, "q3": 0.2, "q4": 0.5}
        >>> result = paired_test(a, b, metric="ndcg@10")
        >>> round(result.diff, 3), result.p_value < 0.05
        (0.125, True)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x, y = _paired_arrays(a, b, metric)
    diff = y - x
    n = diff.size
    rng = np.random.default_rng(seed)
    boot = _bootstrap_means(diff, n_resamples, rng)
    alpha = 1 - confidence
    ci_low, ci_high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    observed = float(diff.mean())
    if np.allclose(diff, diff[0]):  # no variance: identical runs (p = 1) or a constant shift (p = 0)
        p_value = 1.0 if abs(observed) < 1e-12 else 0.0
    elif method == "t-test":
        from scipy import stats

        p_value = float(stats.ttest_rel(y, x).pvalue)
    elif method == "bootstrap":
        shifted = boot - observed  # the bootstrap distribution under H0: mean difference 0
        p_value = float((np.sum(np.abs(shifted) >= abs(observed) - 1e-12) + 1) / (n_resamples + 1))
    else:
        flips = np.empty(n_resamples, dtype=np.float64)
        block = max(1, 2_000_000 // n)
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
            flips[start:start + size] = (signs * diff).mean(axis=1)
        p_value = float((np.sum(np.abs(flips) >= abs(observed) - 1e-12) + 1) / (n_resamples + 1))
    return PairedTestResult(metric=metric, n=n, mean_a=float(x.mean()), mean_b=float(y.mean()), diff=observed,
                            ci_low=ci_low, ci_high=ci_high, p_value=min(1.0, p_value), method=method)


def compare_runs(baseline: Mapping[str, Mapping[str, float]], run: Mapping[str, Mapping[str, float]],
                 metrics: Sequence[str] | None = None, *, method: Method = "t-test", n_resamples: int = 10_000,
                 seed: int = 0) -> list[PairedTestResult]:
    """Paired tests for several metrics; inputs are ``per_query`` dicts (``metric -> {query_id: score}``).

    Args:
        baseline: the baseline's per-query scores (``metrics.json``'s ``per_query``).
        run: the compared run's per-query scores.
        metrics: which metrics to test (default: every metric both have, in the run's order).
        method / n_resamples / seed: see :func:`paired_test`.

    No correction for multiple comparisons is applied; the p-values are per metric.
    """
    names = list(metrics) if metrics is not None else [m for m in run if m in baseline]
    missing = [m for m in names if m not in baseline or m not in run]
    if missing:
        raise DataError(f"metric(s) {', '.join(missing)} missing from the "
                        f"{'baseline' if any(m not in baseline for m in missing) else 'run'}'s per-query scores",
                        field="per_query")
    if not names:
        raise DataError("the baseline and the run share no metric with per-query scores", field="per_query")
    return [paired_test(baseline[m], run[m], metric=m, method=method, n_resamples=n_resamples, seed=seed)
            for m in names]


@dataclass(frozen=True)
class SeedAwareResult:
    """Row ``b`` against baseline ``a`` on one metric, counting both queries and training seeds.

    ``p_value`` is the two-sided paired bootstrap over queries x seeds; ``seed_p_value`` the paired t-test on
    per-seed means (``None`` unless both rows have >= 3 seeds); ``p_holm`` is filled by :func:`holm_adjust`.
    ``single_seed`` says that one of the two rows has one seed: its seed variance is then unknown and the p-value
    counts only the other row's (and the queries').
    """

    metric: str
    n_queries: int
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    seed_p_value: float | None
    seed_test: str | None
    p_holm: float | None = None
    method: str = "bootstrap over queries x seeds"

    @property
    def single_seed(self) -> bool:
        return min(len(self.seeds_a), len(self.seeds_b)) < 2

    def label(self) -> str:
        """``""``, or ``"single seed"`` when either row ran one seed."""
        return "single seed" if self.single_seed else ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seeds_a": list(self.seeds_a), "seeds_b": list(self.seeds_b),
                "single_seed": self.single_seed}


SeedScores = Mapping[Any, Mapping[str, float]]  # seed -> {query_id: score}


def _seed_matrix(scores: SeedScores, which: str, metric: str) -> tuple[tuple[int, ...], list[str], np.ndarray]:
    if not scores:
        raise DataError(f"no seeds with per-query scores for {metric!r} in {which}", field=metric)
    seeds = tuple(sorted(scores, key=lambda s: (str(type(s)), s)))
    ids = sorted(scores[seeds[0]])
    for s in seeds[1:]:
        if set(scores[s]) != set(ids):
            raise DataError(f"the seeds of {which} were scored on different queries for {metric!r} (seed {seeds[0]}: "
                            f"{len(ids):,}, seed {s}: {len(scores[s]):,})", field=metric)
    if not ids:
        raise DataError(f"no per-query scores for {metric!r} in {which}", field=metric)
    return seeds, ids, np.array([[float(scores[s][q]) for q in ids] for s in seeds], dtype=np.float64)


def _draw_block(rng: np.random.Generator, size: int, n_queries: int, n_a: int, n_b: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block of resamples, always drawn in this order: query indices, then row a's seeds, then row b's."""
    return (rng.integers(0, n_queries, size=(size, n_queries)), rng.integers(0, n_a, size=(size, n_a)),
            rng.integers(0, n_b, size=(size, n_b)))


def _seed_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """(R, n) share of each seed in each resample (counts / n)."""
    counts = np.zeros((idx.shape[0], n), dtype=np.float64)
    np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return counts / n


def seed_aware_test(a: SeedScores, b: SeedScores, *, metric: str = "", n_resamples: int = 10_000, seed: int = 0,
                    confidence: float = 0.95) -> SeedAwareResult:
    """Test whether row ``b`` differs from baseline ``a``, with queries and training seeds both as random draws.

    Each resample draws the queries with replacement (the same draw for both rows: the pairing) and, independently
    for each row, its seeds with replacement; a row's score on a resampled query is the mean over its resampled
    seeds. The statistic is the mean over resampled queries of ``b - a``; the p-value is the two-sided share of
    resampled differences, shifted to the null, at least as far from 0 as the observed one (as
    :func:`paired_test`'s bootstrap), the interval the percentile interval.

    With >= 3 seeds in both rows a paired t-test on per-seed means (mean over queries) is added: paired by seed number
    when both rows ran the same seeds (same data order), otherwise Welch's t-test.

    Args:
        a: the baseline, ``seed -> {query_id: score}``; every seed must cover the same queries.
        b: the other row, likewise, on the same queries.
        metric, n_resamples, seed, confidence: as :func:`paired_test`.

    Example:
        >>> a = {12: {"q1": 0.2, "q2": 0.4, "q3": 0.1}, 13: {"q1": 0.3, "q2": 0.4, "q3": 0.2}}
        >>> b = {12: {"q1": 0.5, "q2": 0.6, "q3": 0.4}}
        >>> r = seed_aware_test(a, b, metric="ndcg@10", n_resamples=1000)
        >>> round(r.diff, 3), r.single_seed
        (0.233, True)
    """
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    seeds_a, ids_a, x = _seed_matrix(a, "the baseline", metric)
    seeds_b, ids_b, y = _seed_matrix(b, "the row", metric)
    if ids_a != ids_b:
        only_a, only_b = set(ids_a) - set(ids_b), set(ids_b) - set(ids_a)
        raise DataError(f"the two rows were scored on different queries for {metric!r}: {len(only_a):,} only in the "
                        f"baseline, {len(only_b):,} only in the row; compare rows on the same split", field=metric)
    n_queries, n_a, n_b = len(ids_a), len(seeds_a), len(seeds_b)
    observed = float(y.mean() - x.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples, dtype=np.float64)
    block = max(1, 2_000_000 // max(1, n_queries))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        q_idx, a_idx, b_idx = _draw_block(rng, size, n_queries, n_a, n_b)
        per_query = _seed_weights(b_idx, n_b) @ y - _seed_weights(a_idx, n_a) @ x  # (R, Q) seed-averaged diffs
        boot[start:start + size] = np.take_along_axis(per_query, q_idx, axis=1).mean(axis=1)
    alpha = 1 - confidence
    ci_low, ci_high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    spread = float(np.ptp(boot))
    if spread < 1e-12:  # no variance at all: identical rows (p = 1) or a constant shift (p = 0)
        p_value = 1.0 if abs(observed) < 1e-12 else 0.0
    else:
        shifted = boot - observed
        p_value = float((np.sum(np.abs(shifted) >= abs(observed) - 1e-12) + 1) / (n_resamples + 1))
    seed_p, seed_test = per_seed_test(dict(zip(seeds_a, x.mean(axis=1))), dict(zip(seeds_b, y.mean(axis=1))))
    return SeedAwareResult(metric=metric, n_queries=n_queries, seeds_a=seeds_a, seeds_b=seeds_b,
                           mean_a=float(x.mean()), mean_b=float(y.mean()), diff=observed, ci_low=ci_low,
                           ci_high=ci_high, p_value=min(1.0, p_value), seed_p_value=seed_p, seed_test=seed_test)


def per_seed_test(a: Mapping[Any, float], b: Mapping[Any, float],
                  min_seeds: int = 3) -> tuple[float | None, str | None]:
    """Two-sided t-test on per-seed means: ``(p, "paired t-test")`` over the seeds both rows ran when they share
    >= ``min_seeds`` of them, ``(p, "Welch t-test")`` when each has >= ``min_seeds`` seeds but not the same ones,
    else ``(None, None)``."""
    if min(len(a), len(b)) < min_seeds:
        return None, None
    from scipy import stats

    common = sorted(set(a) & set(b), key=lambda s: (str(type(s)), s))
    if len(common) >= min_seeds:
        x, y = np.array([a[s] for s in common]), np.array([b[s] for s in common])
        d = y - x
        if np.allclose(d, d[0]):
            return (1.0 if abs(d[0]) < 1e-12 else 0.0), "paired t-test"
        return float(stats.ttest_rel(y, x).pvalue), "paired t-test"
    x, y = np.array(list(a.values())), np.array(list(b.values()))
    if np.ptp(x) < 1e-12 and np.ptp(y) < 1e-12:
        return (1.0 if abs(x.mean() - y.mean()) < 1e-12 else 0.0), "Welch t-test"
    return float(stats.ttest_ind(y, x, equal_var=False).pvalue), "Welch t-test"


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (Holm 1979) of a family of p-values; ``None`` entries are left out of the family
    and stay ``None``.

    Sorted ascending ``p_(1) <= ... <= p_(m)``, ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting
    ``adj < alpha`` controls the family-wise error rate at ``alpha``.

    Example:
        >>> [round(p, 4) for p in holm([0.01, 0.04, 0.03, 0.005])]
        [0.03, 0.06, 0.06, 0.02]
    """
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    for p, _ in present:
        if not 0.0 <= p <= 1.0 or p != p:
            raise ValueError(f"p-values must lie in [0, 1], got {p!r}")
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def holm_adjust(results: Sequence[SeedAwareResult]) -> list[SeedAwareResult]:
    """The results with ``p_holm`` set: Holm's adjustment over the given family (one metric of one table)."""
    import dataclasses

    adjusted = holm([r.p_value for r in results])
    return [dataclasses.replace(r, p_holm=p) for r, p in zip(results, adjusted)]


@dataclass(frozen=True)
class RateInterval:
    """A rate over pairs grouped by query, with a percentile interval from resampling the queries."""

    hits: int
    total: int
    queries: int
    rate: float
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_bootstrap_rate(groups: Mapping[str, Sequence[bool]], *, n_resamples: int = 10_000, seed: int = 0,
                           confidence: float = 0.95) -> RateInterval:
    """``hits / pairs`` with a query-level (cluster) bootstrap interval.

    Pairs of one query are not independent draws (the SciFact audit found both of its false negatives under one
    query), so each resample draws the *queries* with replacement and takes the pooled rate
    ``sum(hits) / sum(pairs)`` of the drawn queries.

    Args:
        groups: ``query_id -> [is_hit for each audited pair of the query]``; queries without pairs are ignored.
        n_resamples, seed, confidence: as :func:`paired_test`.

    Example:
        >>> r = cluster_bootstrap_rate({"q1": [True, True, False], "q2": [False] * 3, "q3": [False] * 2})
        >>> r.hits, r.total, round(r.rate, 3)
        (2, 8, 0.25)
    """
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    kept = [(sum(bool(v) for v in pairs), len(pairs)) for _, pairs in sorted(groups.items()) if len(pairs)]
    if not kept:
        raise DataError("no audited pairs to compute a rate from")
    hits = np.array([h for h, _ in kept], dtype=np.float64)
    sizes = np.array([n for _, n in kept], dtype=np.float64)
    rng = np.random.default_rng(seed)
    rates = np.empty(n_resamples, dtype=np.float64)
    block = max(1, 2_000_000 // len(kept))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        idx = rng.integers(0, len(kept), size=(size, len(kept)))
        rates[start:start + size] = hits[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    alpha = 1 - confidence
    low, high = (float(v) for v in np.quantile(rates, [alpha / 2, 1 - alpha / 2]))
    return RateInterval(hits=int(hits.sum()), total=int(sizes.sum()), queries=len(kept),
                        rate=float(hits.sum() / sizes.sum()), ci_low=low, ci_high=high, confidence=confidence,
                        n_resamples=n_resamples)


def format_comparison(results: Sequence[PairedTestResult], digits: int = 4, alpha: float = 0.05) -> str:
    """A plain-text table of paired tests (the CLI prints it)."""
    header = ["metric", "baseline", "run", "diff", f"{1 - alpha:.0%} CI", "p", ""]
    rows = [header]
    for r in results:
        rows.append([r.metric, f"{r.mean_a:.{digits}f}", f"{r.mean_b:.{digits}f}", f"{r.diff:+.{digits}f}",
                     f"[{r.ci_low:+.{digits}f}, {r.ci_high:+.{digits}f}]", f"{r.p_value:.4g}",
                     "*" if r.significant(alpha) else ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    method = results[0].method if results else ""
    n = results[0].n if results else 0
    lines.append(f"paired {method} over {n:,} queries; * = p < {alpha} (no multiple-comparison correction)")
    return "\n".join(lines)
