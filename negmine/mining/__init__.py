"""Hard-negative mining: composable filters (rank range, TopK-Abs, TopK-MarginPos, TopK-PercPos), seeded sampling,
and the one-call :func:`mine_hard_negatives`. The mined record and the output formats live in
:mod:`negmine.data.mined` (re-exported here; ``MinedQuery`` is the old name of :class:`MinedRecord`)."""

from __future__ import annotations

from negmine.data.mined import FORMATS, MinedRecord, iter_rows, read_mined
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
from negmine.mining.miner import HardNegativeMiner

MinedQuery = MinedRecord  # the name before negmine 0.1's data layer; kept for existing imports

__all__ = [
    "CandidateFilter",
    "Compose",
    "FORMATS",
    "HardNegativeMiner",
    "MineConfig",
    "MinedQuery",
    "MinedRecord",
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
