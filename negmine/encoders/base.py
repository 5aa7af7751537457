"""The encoder protocol every retriever implements (BEIR's duck type, MTEB's runtime-checkable style)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Similarity = Literal["cosine", "dot"]


@runtime_checkable
class Encoder(Protocol):
    """Turns queries and documents into float32 vectors. Scores are inner products: higher = more similar."""

    similarity: Similarity

    def encode_queries(
        self, queries: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def encode_corpus(
        self, docs: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray: ...

    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the vectors (weights hash, prompts, max length, precision), for the cache key."""
        ...
