"""Hard-negative mining: composable filters (rank range, TopK-Abs, TopK-MarginPos, TopK-PercPos), seeded sampling,
output formats, and the one-call :func:`mine_hard_negatives`."""

from __future__ import annotations

from negmine.mining.api import MiningResult, mine_hard_negatives, run_mining
from negmine.mining.config import MineConfig
from negmine.mining.filters import (
    CandidateFilter,
    Compose,
    PositiveMargin,
    PositivePercentage,
    RankRange,
    ScoreThreshold,
)
from negmine.mining.formats import FORMATS, MinedQuery, iter_rows, read_mined
from negmine.mining.miner import HardNegativeMiner

__all__ = [
    "CandidateFilter",
    "Compose",
    "FORMATS",
    "HardNegativeMiner",
    "MineConfig",
    "MinedQuery",
    "MiningResult",
    "PositiveMargin",
    "PositivePercentage",
    "RankRange",
    "ScoreThreshold",
    "iter_rows",
    "mine_hard_negatives",
    "read_mined",
    "run_mining",
]
