"""Sliding-window listwise ranking (RankGPT): rank lists longer than the model's window.

The window of ``window`` items starts at the bottom of the list and moves up by ``step`` items; each window is
ranked and written back in place. With ``step < window`` the windows overlap by ``window - step`` items, which
carry the best items of one window into the next, so after one pass the top ``window - step`` items of the whole
list are in their correct order (for a consistent ranker). More passes sort deeper: ``ceil(n / (window - step))``
passes sort the whole list, like a bubble sort in blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# rank_fn(indices) -> (order of positions 0..len(indices)-1 best first, info) or None when the output was unparseable
RankFn = Callable[[Sequence[int]], "tuple[list[int], dict[str, Any]] | None"]


@dataclass
class WindowResult:
    """Final order (input indices, best first), per-window records, and whether any window failed to parse."""

    order: list[int]
    windows: list[dict[str, Any]] = field(default_factory=list)
    failed: bool = False


def window_spans(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of one backward pass, bottom window first."""
    if window < 2 or not 1 <= step < window:
        raise ValueError(f"need window >= 2 and 1 <= step < window, got window={window}, step={step}")
    if n <= window:
        return [(0, n)] if n > 1 else []
    spans = []
    end = n
    while True:
        start = max(0, end - window)
        spans.append((start, end))
        if start == 0:
            return spans
        end -= step


def sliding_window_rank(n: int, rank_fn: RankFn, window: int = 20, step: int = 10, passes: int = 1) -> WindowResult:
    """Rank ``n`` items with a listwise ``rank_fn`` that sees at most ``window`` items at a time.

    Args:
        n: the number of items (indices ``0..n-1``, in the initial order).
        rank_fn: ranks the items at the given indices; returns a permutation of ``range(len(indices))`` (best
            first) plus an info dict, or ``None`` when it could not rank them (the window keeps its order and the
            result is marked ``failed``).
        window: the most items one call sees (RankGPT uses 20).
        step: how far the window moves up after each call (RankGPT uses 10).
        passes: backward passes over the list.

    Example:
        >>> scores = [0.1, 0.9, 0.5, 0.7]
        >>> rank = lambda idx: (sorted(range(len(idx)), key=lambda j: -scores[idx[j]]), {})
        >>> sliding_window_rank(4, rank, window=2, step=1, passes=3).order
        [1, 3, 2, 0]
    """
    order = list(range(n))
    result = WindowResult(order)
    for pass_index in range(passes):
        for start, end in window_spans(n, window, step):
            indices = order[start:end]
            ranked = rank_fn(indices)
            record: dict[str, Any] = {"pass": pass_index, "start": start, "end": end}
            if ranked is None:
                result.failed = True
                record["failed"] = True
            else:
                local, info = ranked
                if sorted(local) != list(range(len(indices))):
                    raise ValueError(f"rank_fn returned {local}, not a permutation of 0..{len(indices) - 1}")
                order[start:end] = [indices[j] for j in local]
                record.update(info)
            result.windows.append(record)
    result.order = order
    return result
