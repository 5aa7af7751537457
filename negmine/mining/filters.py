"""Candidate filters: the NV-Retriever mining strategies as vectorised keep-masks over (queries × candidates).

Each filter sees the candidate scores, their ranks (positions after removing the documents that can never be
negatives: known positives, the query itself, copies of a positive's text and documents of an excluded grade) and a
reference positive score per query, and returns a boolean keep-mask. Filters compose by logical AND (:class:`Compose`).

The filters relative to a positive (TopK-MarginPos, TopK-PercPos) also expose :meth:`CandidateFilter.threshold`: a
candidate passes when its score is below the threshold of the positive. The threshold rises with the positive's
score, so with ``margin_reference="each"`` the candidates that pass for one positive are a suffix of the
score-sorted candidate list: the miner finds it with one binary search per positive (see
:class:`~negmine.mining.miner.HardNegativeMiner`). The rules: docs/methods.md §1.
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
    positive_ref: np.ndarray  # (n,) reference positive score of each query (lowest, highest, or highest for 'each')


class CandidateFilter:
    """Base class: subclasses implement :meth:`keep` and set :attr:`name` (the key in ``stats.json``)."""

    name = "filter"
    citation = ""
    relative = False  # True: keeps s(q, n) < threshold(s(q, p)), a threshold increasing with the positive's score

    def keep(self, x: FilterInput) -> np.ndarray:
        if self.relative:
            return x.scores < self.threshold(x.positive_ref)[:, None]
        raise NotImplementedError

    def threshold(self, positive: np.ndarray) -> np.ndarray:
        """Relative filters: the score a negative must stay below, per positive score (same dtype)."""
        raise NotImplementedError(f"{type(self).__name__} is not relative to a positive")

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
    """TopK-MarginPos: keep ``s(q, n) < s(q, p) - margin``, ``p`` chosen by the margin reference."""

    name = "margin_pos"
    citation = NV_RETRIEVER
    relative = True

    def __init__(self, margin: float = 0.05) -> None:
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = margin

    def threshold(self, positive: np.ndarray) -> np.ndarray:
        return positive - np.asarray(self.margin, dtype=positive.dtype)


class PositivePercentage(CandidateFilter):
    """TopK-PercPos: keep ``s(q, n) < percentage · s(q, p)`` (NV-Retriever's best: 0.95).

    For a negative positive score the threshold is ``s - |s|·(1 - percentage)`` so it stays below the positive
    (this equals sentence-transformers' ``relative_margin = 1 - percentage``).
    """

    name = "perc_pos"
    citation = NV_RETRIEVER
    relative = True

    def __init__(self, percentage: float = 0.95) -> None:
        if not 0 < percentage <= 1:
            raise ValueError(f"percentage must be in (0, 1], got {percentage}")
        self.percentage = percentage

    def threshold(self, positive: np.ndarray) -> np.ndarray:
        return positive - np.abs(positive) * np.asarray(1 - self.percentage, dtype=positive.dtype)


MARGIN_REFERENCES = ("each", "lowest", "highest")
STRATEGIES = {"range": None, "abs": ScoreThreshold, "margin-pos": PositiveMargin, "perc-pos": PositivePercentage}


class Compose:
    """Logical AND of filters, counting how many still-alive candidates each one removes (in order)."""

    def __init__(self, filters: list[CandidateFilter]) -> None:
        self.filters = list(filters)

    def apply(
        self, x: FilterInput, alive: np.ndarray, counts: dict[str, int], per_query: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """AND the keep-masks into ``alive``; add each filter's removals to ``counts`` (per row: ``per_query``)."""
        for f in self.filters:
            keep = f.keep(x)
            removed = (alive & ~keep).sum(axis=1)
            counts[f.name] = counts.get(f.name, 0) + int(removed.sum())
            if per_query is not None:
                per_query[f.name] = per_query.get(f.name, 0) + removed
            alive = alive & keep
        return alive

    @property
    def relative(self) -> list[CandidateFilter]:
        return [f for f in self.filters if f.relative]

    def threshold(self, positive: np.ndarray) -> np.ndarray:
        """The tightest threshold of the relative filters for each positive score (``inf`` when there are none)."""
        out = np.full(positive.shape, np.inf, dtype=positive.dtype)
        for f in self.relative:
            out = np.minimum(out, f.threshold(positive))
        return out

    def get_config_dict(self) -> list[dict[str, Any]]:
        return [{"name": f.name, **f.get_config_dict()} for f in self.filters]
