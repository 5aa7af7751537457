"""Candidate filters: the NV-Retriever mining strategies as vectorised keep-masks over (queries × candidates).

Each filter sees the candidate scores, their ranks (positions after removing the documents that can never be
negatives: known positives, the query itself and copies of a positive's text) and the **lowest** positive score of
each query, and returns a boolean keep-mask. Filters compose by logical AND (:class:`Compose`). The rules:
docs/methods.md §1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

NV_RETRIEVER = """@article{moreira2024nvretriever,
  title={NV-Retriever: Improving text embedding models with effective hard-negative mining},
  author={Moreira, Gabriel de Souza P. and Osmulski, Radek and Xu, Mengyao and Ak, Ronay and Schifferer, Benedikt
          and Oldridge, Even},
  journal={arXiv preprint arXiv:2407.15831},
  year={2024}
}"""


@dataclass(frozen=True)
class FilterInput:
    scores: np.ndarray  # (n, k) similarities, higher = more similar
    ranks: np.ndarray  # (n, k) rank among candidates that could be negatives (-1 where excluded)
    positive_min: np.ndarray  # (n,) lowest positive score of each query


class CandidateFilter:
    """Base class: subclasses implement :meth:`keep` and set :attr:`name` (the key in ``stats.json``)."""

    name = "filter"
    citation = ""

    def keep(self, x: FilterInput) -> np.ndarray:
        raise NotImplementedError

    def get_config_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class RankRange(CandidateFilter):
    """Naive top-k / "top-k shifted by N": keep ranks in ``[range_min, range_max)``."""

    name = "rank_range"

    def __init__(self, range_min: int = 0, range_max: int = 50) -> None:
        if range_min < 0:
            raise ValueError(f"range_min must be >= 0, got {range_min}")
        if range_max <= range_min:
            raise ValueError(
                f"range_max must be greater than range_min, got range_min={range_min}, range_max={range_max}"
            )
        self.range_min, self.range_max = range_min, range_max

    def keep(self, x: FilterInput) -> np.ndarray:
        return (x.ranks >= self.range_min) & (x.ranks < self.range_max)


class ScoreThreshold(CandidateFilter):
    """TopK-Abs: keep ``min_score <= s(q, n) < max_score`` (NV-Retriever's best ``max_score`` was 0.7)."""

    name = "score_threshold"
    citation = NV_RETRIEVER

    def __init__(self, max_score: float | None = None, min_score: float | None = None) -> None:
        if max_score is None and min_score is None:
            raise ValueError("strategy 'abs' (ScoreThreshold) needs max_score and/or min_score")
        if max_score is not None and min_score is not None and min_score >= max_score:
            raise ValueError(f"min_score ({min_score}) must be below max_score ({max_score})")
        self.max_score, self.min_score = max_score, min_score

    def keep(self, x: FilterInput) -> np.ndarray:
        keep = np.ones(x.scores.shape, dtype=bool)
        if self.max_score is not None:
            keep &= x.scores < self.max_score
        if self.min_score is not None:
            keep &= x.scores >= self.min_score
        return keep


class PositiveMargin(CandidateFilter):
    """TopK-MarginPos: keep ``s(q, n) < s(q, p) - margin``, with ``p`` the query's lowest-scoring positive."""

    name = "margin_pos"
    citation = NV_RETRIEVER

    def __init__(self, margin: float = 0.05) -> None:
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = margin

    def keep(self, x: FilterInput) -> np.ndarray:
        return x.scores < (x.positive_min - self.margin)[:, None]


class PositivePercentage(CandidateFilter):
    """TopK-PercPos: keep ``s(q, n) < percentage · s(q, p)`` (NV-Retriever's best: 0.95).

    For a negative positive score the threshold is ``s - |s|·(1 - percentage)`` so it stays below the positive
    (this equals sentence-transformers' ``relative_margin = 1 - percentage``).
    """

    name = "perc_pos"
    citation = NV_RETRIEVER

    def __init__(self, percentage: float = 0.95) -> None:
        if not 0 < percentage <= 1:
            raise ValueError(f"percentage must be in (0, 1], got {percentage}")
        self.percentage = percentage

    def keep(self, x: FilterInput) -> np.ndarray:
        p = x.positive_min
        return x.scores < (p - np.abs(p) * (1 - self.percentage))[:, None]


STRATEGIES = {"range": None, "abs": ScoreThreshold, "margin-pos": PositiveMargin, "perc-pos": PositivePercentage}


class Compose:
    """Logical AND of filters, counting how many still-alive candidates each one removes (in order)."""

    def __init__(self, filters: list[CandidateFilter]) -> None:
        self.filters = list(filters)

    def apply(self, x: FilterInput, alive: np.ndarray, counts: dict[str, int]) -> np.ndarray:
        for f in self.filters:
            keep = f.keep(x)
            counts[f.name] = counts.get(f.name, 0) + int((alive & ~keep).sum())
            alive = alive & keep
        return alive

    def get_config_dict(self) -> list[dict[str, Any]]:
        return [{"name": f.name, **f.get_config_dict()} for f in self.filters]
