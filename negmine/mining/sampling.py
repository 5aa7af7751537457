"""Choosing ``num_negatives`` among the surviving candidates: ``top``, ``random`` or ``softmax`` (temperature)."""

from __future__ import annotations

import numpy as np

SAMPLING = ("top", "random", "softmax")


def check_sampling(strategy: str, temperature: float) -> None:
    if strategy not in SAMPLING:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING)}, got {strategy!r}")
    if strategy == "softmax" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for softmax sampling, got {temperature}")


def sample(
    scores: np.ndarray, n: int, strategy: str, rng: np.random.Generator, temperature: float = 0.05
) -> np.ndarray:
    """Pick up to ``n`` positions of ``scores`` (candidates sorted by score, descending); result sorted the same way.

    ``top`` takes the first ``n``; ``random`` draws uniformly without replacement; ``softmax`` draws without
    replacement with probability ∝ exp(score / temperature) (Gumbel top-k). The ``rng`` makes runs reproducible.
    """
    m = len(scores)
    if m <= n or strategy == "top":
        return np.arange(min(n, m))
    if strategy == "random":
        chosen = rng.choice(m, size=n, replace=False)
    else:
        gumbel = rng.gumbel(size=m)
        chosen = np.argpartition(-(scores / temperature + gumbel), n - 1)[:n]
    return np.sort(chosen)
