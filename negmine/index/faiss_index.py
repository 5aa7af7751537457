"""FAISS indexes behind the negmine index protocol (CPU here; GPU and ANN factories share the same class)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from negmine._optional import require
from negmine.index.base import Metric, check_k, check_metric, check_vectors

logger = logging.getLogger(__name__)


FLAT_BLAS_DATABASE_BLOCK = 16384


@contextlib.contextmanager
def fast_flat_scan() -> Iterator[None]:
    """Temporarily set FAISS's exhaustive-scan knobs for throughput (same results): always the BLAS path (FAISS 1.15
    only takes it above ``distance_compute_blas_threshold`` = 128,000 query·dim values, e.g. >= 334 queries at d = 384,
    and scans 5-10x slower below), in blocks of 16,384 database rows (2-3x faster than the default 1,024 on CPU)."""
    faiss = require("faiss", "fast_flat_scan")

    cvar = faiss.cvar
    previous = cvar.distance_compute_blas_database_bs, cvar.distance_compute_blas_threshold
    cvar.distance_compute_blas_database_bs = max(previous[0], FLAT_BLAS_DATABASE_BLOCK)
    cvar.distance_compute_blas_threshold = min(previous[1], 20)
    try:
        yield
    finally:
        cvar.distance_compute_blas_database_bs, cvar.distance_compute_blas_threshold = previous


class FaissIndex:
    """A FAISS index built from a factory string (``Flat``, ``IVF4096,Flat``, ``HNSW32``, ``IVF1024,PQ48x8``…).

    Scores are similarities: inner products for ``metric="ip"``, negated squared L2 distances for ``metric="l2"``.

    Args:
        dim: vector dimension.
        factory: a ``faiss.index_factory`` description.
        metric: ``ip`` or ``l2``.
        search_block: queries searched per call, so memory for (scores, ids) stays bounded.
    """

    def __init__(self, dim: int, factory: str = "Flat", metric: Metric = "ip", search_block: int = 16384) -> None:
        faiss = require("faiss", "FaissIndex")
        check_metric(metric)
        self._dim, self.factory, self.metric, self.search_block = int(dim), factory, metric, search_block
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        try:
            self.index = faiss.index_factory(self._dim, factory, faiss_metric)
        except RuntimeError as err:
            from negmine.errors import ConfigError

            reason = str(err).strip().splitlines()[-1].rsplit(": ", 1)[-1]  # faiss prefixes its C++ location
            raise ConfigError(f"invalid FAISS factory string {factory!r}: {reason}") from None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    def train(self, sample: np.ndarray) -> None:
        self.index.train(check_vectors(sample, self._dim, "training vectors"))

    def add(self, embeddings: np.ndarray) -> None:
        x = check_vectors(embeddings, self._dim, "embeddings")
        if not self.index.is_trained:
            self.train(x)
        self.index.add(x)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self._dim, "queries")
        k = check_k(k)
        parts_s, parts_i = [], []
        with fast_flat_scan():
            for start in range(0, max(q.shape[0], 1), self.search_block):
                scores, ids = self.index.search(q[start : start + self.search_block], k)
                parts_s.append(scores if self.metric == "ip" else -scores)
                parts_i.append(ids)
        scores, ids = np.concatenate(parts_s).astype(np.float32), np.concatenate(parts_i).astype(np.int64)
        scores[ids < 0] = -np.inf
        return scores, ids

    def save(self, path: str | os.PathLike) -> None:
        faiss = require("faiss", "FaissIndex.save")
        from negmine.io import write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / ".index.faiss.tmp"
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path / "index.faiss")
        write_json(path / "index.json", {"type": "faiss", **self.get_config_dict()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaissIndex:
        faiss = require("faiss", "FaissIndex.load")
        path = Path(path)
        config = json.loads((path / "index.json").read_text())
        obj = cls.__new__(cls)
        obj._dim, obj.factory, obj.metric = config["dim"], config["factory"], config["metric"]
        obj.search_block = config.get("search_block", 16384)
        obj.index = faiss.read_index(str(path / "index.faiss"))
        if obj.index.d != obj._dim:
            raise ValueError(f"{path}: index.faiss has dimension {obj.index.d} but index.json says {obj._dim}")
        return obj

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "dim": self._dim,
            "factory": self.factory,
            "metric": self.metric,
            "ntotal": self.ntotal,
            "search_block": self.search_block,
        }
