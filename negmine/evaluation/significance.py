"""Paired significance tests between two runs over the same queries.

A 300-query test set (SciFact) moves by ±0.01 nDCG@10 from noise alone, so a difference between two models is
reported with a test that pairs each query's two scores:

- ``t-test``: the paired (dependent-samples) t-test on per-query differences (``scipy.stats.ttest_rel``); the usual
  choice in IR papers (Smucker, Allan & Carterette, CIKM 2007, found it agrees with the randomisation test).
- ``bootstrap``: a seeded paired bootstrap of the mean difference; the p-value is the two-sided share of resampled
  means on the other side of 0 (shifted to the null), and the 95% interval is the percentile interval.
- ``randomization``: Fisher's paired randomisation (sign-flip) test with a seeded Monte-Carlo sample.

Every method also returns the percentile bootstrap 95% confidence interval of the mean difference.
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
