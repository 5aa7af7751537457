"""Search backends behind one protocol: exact (the oracle), FAISS (CPU/GPU, flat and ANN)."""

from __future__ import annotations

from typing import Any

from negmine.index.base import IndexBackend
from negmine.index.exact import ExactIndex
from negmine.index.faiss_index import FaissIndex

__all__ = ["IndexBackend", "ExactIndex", "FaissIndex", "make_index"]

BACKENDS = ("faiss", "exact", "torch")


def make_index(dim: int, backend: str = "faiss", factory: str = "Flat", metric: str = "ip",
               **kwargs: Any) -> IndexBackend:
    """Build an empty index: ``backend="faiss"`` with a factory string, ``"exact"`` (numpy, no FAISS needed) or
    ``"torch"`` (exact search on the CUDA devices through torch, fp16; the CPU without one). (``"ray"``, exact search
    sharded over a Ray cluster, is built by :class:`negmine.retrieve.Retriever`.)"""
    if backend == "torch":
        from negmine.index.torch_exact import TorchExactIndex

        return TorchExactIndex(dim, metric, **kwargs)
    if backend == "exact":
        return ExactIndex(dim, metric, **kwargs)
    if backend == "faiss":
        return FaissIndex(dim, factory, metric, **kwargs)
    raise ValueError(f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}")
