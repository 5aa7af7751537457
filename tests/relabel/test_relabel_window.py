"""Sliding-window listwise ranking against brute-force references."""

from __future__ import annotations

import math
import random

import pytest

from negmine.relabel.window import sliding_window_rank, window_spans


def oracle(scores):
    """A consistent listwise ranker: orders the given indices by hidden score (ties: lower index first)."""
    calls = []

    def rank(indices):
        calls.append(list(indices))
        local = sorted(range(len(indices)), key=lambda j: (-scores[indices[j]], indices[j]))
        return local, {}

    return rank, calls


def reference_pass(order, scores, window, step):
    """Brute-force reference of one RankGPT backward pass, written independently of the library code."""
    order = list(order)
    n = len(order)
    end = n
    while True:
        start = max(0, end - window)
        order[start:end] = sorted(order[start:end], key=lambda i: (-scores[i], i))
        if start == 0:
            return order
        end -= step


def brute_force_sort(scores):
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def test_window_spans():
    assert window_spans(5, 20, 10) == [(0, 5)]
    assert window_spans(1, 20, 10) == []
    assert window_spans(25, 20, 10) == [(5, 25), (0, 15)]
    assert window_spans(10, 4, 2) == [(6, 10), (4, 8), (2, 6), (0, 4)]
    with pytest.raises(ValueError):
        window_spans(10, 4, 4)


@pytest.mark.parametrize("seed", range(40))
def test_one_pass_matches_the_reference_and_gets_the_top_right(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    window = rng.randint(2, 12)
    step = rng.randint(1, window - 1)
    scores = [rng.random() for _ in range(n)]
    rank, calls = oracle(scores)
    result = sliding_window_rank(n, rank, window=window, step=step, passes=1)
    assert result.order == reference_pass(range(n), scores, window, step)
    assert len(calls) == len(window_spans(n, window, step))
    assert all(len(c) <= window for c in calls)
    top = min(window - step, n) if n > window else n
    assert result.order[:top] == brute_force_sort(scores)[:top]


@pytest.mark.parametrize("seed", range(20))
def test_enough_passes_sort_the_whole_list(seed):
    rng = random.Random(100 + seed)
    n = rng.randint(2, 30)
    window = rng.randint(2, 8)
    step = rng.randint(1, window - 1)
    scores = [rng.random() for _ in range(n)]
    rank, _ = oracle(scores)
    passes = math.ceil(n / (window - step))
    assert sliding_window_rank(n, rank, window, step, passes).order == brute_force_sort(scores)


def test_a_failed_window_keeps_its_order_and_marks_the_result():
    scores = [0.1, 0.2, 0.9, 0.3, 0.8, 0.4]
    good, _ = oracle(scores)
    calls = []

    def flaky(indices):
        calls.append(indices)
        return None if len(calls) == 1 else good(indices)

    result = sliding_window_rank(6, flaky, window=3, step=2)
    assert result.failed and result.windows[0]["failed"]
    assert sorted(result.order) == list(range(6))


def test_rank_fn_must_return_a_permutation():
    with pytest.raises(ValueError, match="not a permutation"):
        sliding_window_rank(3, lambda idx: ([0, 0, 1], {}), window=3, step=1)
