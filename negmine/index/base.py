"""The index protocol: what miners and retrievers need from any search backend.

Method names and return values follow FAISS: ``add`` vectors, ``search(queries, k) -> (scores, indices)`` with
``scores`` as similarities (higher = more similar; L2 distances are negated at this boundary) and ``-1`` in
``indices`` where fewer than ``k`` results exist. Exact, FAISS (CPU/GPU, ANN) and streamed out-of-core backends
implement it, so miners never change when the index does.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Metric = Literal["ip", "l2"]


@runtime_checkable
class IndexBackend(Protocol):
    metric: Metric

    @property
    def ntotal(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def add(self, embeddings: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, path: str | os.PathLike) -> None: ...

    def get_config_dict(self) -> dict[str, Any]: ...


def check_metric(metric: str) -> Metric:
    """``metric`` if it is one the backends know (``ip`` or ``l2``); a ``ValueError`` naming it otherwise."""
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    return metric  # type: ignore[return-value]


class CountedVectors:
    """``ntotal`` and ``dim`` of a backend that keeps its own count of added vectors (``_ntotal``) and its
    dimension (``_dim``); the FAISS-backed indexes ask FAISS instead."""

    _dim: int
    _ntotal: int

    @property
    def ntotal(self) -> int:
        return self._ntotal

    @property
    def dim(self) -> int:
        return self._dim


def check_vectors(x: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    """Validate and convert to a C-contiguous float32 matrix."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, dim), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what} have dimension {x.shape[1]}, the index has {dim}")
    return np.ascontiguousarray(x, dtype=np.float32)


def check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def pad_results(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (n, k') results to (n, k) with -inf / -1, the FAISS convention for 'no result'."""
    missing = k - scores.shape[1]
    if missing <= 0:
        return scores, indices
    n = scores.shape[0]
    return (
        np.concatenate([scores, np.full((n, missing), -np.inf, dtype=np.float32)], axis=1),
        np.concatenate([indices, np.full((n, missing), -1, dtype=np.int64)], axis=1),
    )
