"""FAISS indexes on one or several GPUs: fp16 storage, sharding, and the k > 2048 limit handled explicitly.

Importable without a GPU or the FAISS GPU wheel: everything GPU-specific happens inside the functions, and
:func:`require_faiss_gpu` fails with the install line (``pip install "negmine[gpu]"``, the ``faiss-gpu-cu12`` wheel).

FAISS GPU search (flat and IVF) returns at most :data:`GPU_MAX_K` = 2048 results per query. Mining rarely needs
more, but when it does :class:`GpuFaissIndex` does not truncate silently: ``large_k="cpu"`` (default) logs a warning
and answers that call from a CPU copy of the index; ``large_k="error"`` raises.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from negmine.index.base import check_k, check_vectors

logger = logging.getLogger(__name__)

GPU_MAX_K = 2048
LARGE_K = ("cpu", "error")


def require_faiss_gpu(purpose: str = "GPU search") -> Any:
    """Return the ``faiss`` module if it was built with GPU support and sees at least one GPU, else raise."""
    from negmine._optional import require

    faiss = require("faiss", purpose)
    if not hasattr(faiss, "StandardGpuResources"):
        raise ImportError(f"{purpose} needs FAISS built with GPU support (the installed faiss has none): "
                          f'pip uninstall faiss-cpu && pip install "negmine[gpu]"  (faiss-gpu-cu12)')
    if faiss.get_num_gpus() < 1:
        raise RuntimeError(f"{purpose}: FAISS has GPU support but sees no GPU (check CUDA_VISIBLE_DEVICES / driver)")
    return faiss


def gpu_count() -> int:
    """GPUs visible to FAISS (0 without the GPU wheel or without GPUs; never raises)."""
    from negmine._optional import require

    try:
        faiss = require("faiss", "gpu_count")
    except ImportError:
        return 0
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def index_to_gpu(cpu_index: Any, devices: Sequence[int] | int | None = None, *, use_float16: bool = False,
                 shard: bool = True) -> tuple[Any, list[Any]]:
    """Clone a CPU FAISS index to GPUs.

    Args:
        cpu_index: a ``faiss.Index`` (trained; it may already hold vectors).
        devices: GPU ids (default: all visible GPUs). Several ids either shard the vectors across the GPUs
            (``shard=True``: each holds 1/n, for corpora too big for one GPU) or replicate them (faster search).
        use_float16: store vectors (flat) or IVF list contents in fp16: half the GPU memory, scores rounded to fp16.
        shard: shard (default) or replicate across several GPUs.

    Returns:
        ``(gpu_index, resources)``; keep ``resources`` alive as long as the index.
    """
    faiss = require_faiss_gpu("index_to_gpu")
    if devices is None:
        devices = list(range(faiss.get_num_gpus()))
    elif isinstance(devices, int):
        devices = [devices]
    devices = [int(d) for d in devices]
    if not devices:
        raise ValueError("devices is empty")
    available = faiss.get_num_gpus()
    bad = [d for d in devices if not 0 <= d < available]
    if bad:
        raise ValueError(f"GPU ids {bad} do not exist: FAISS sees {available} GPU(s)")
    if len(devices) == 1:
        resources = [faiss.StandardGpuResources()]
        co = faiss.GpuClonerOptions()
        co.useFloat16 = use_float16
        return faiss.index_cpu_to_gpu(resources[0], devices[0], cpu_index, co), resources
    co = faiss.GpuMultipleClonerOptions()
    co.useFloat16, co.shard = use_float16, shard
    resources = [faiss.StandardGpuResources() for _ in devices]
    vres, vdev = faiss.GpuResourcesVector(), faiss.Int32Vector()
    for dev, res in zip(devices, resources):
        vdev.push_back(dev)
        vres.push_back(res)
    return faiss.index_cpu_to_gpu_multiple(vres, vdev, cpu_index, co), resources


class GpuFaissIndex:
    """A :class:`~negmine.index.faiss_index.FaissIndex` (or :class:`~negmine.index.ann.AnnIndex`) searched on GPU.

    The CPU index stays the source of truth (``save`` writes it); the GPU copy is made by :func:`index_to_gpu` and
    refreshed after ``add``.

    Args:
        cpu: the CPU index wrapper (trained for IVF/PQ factories).
        devices: GPU ids (default all); ``use_float16`` / ``shard``: see :func:`index_to_gpu`.
        large_k: what to do when ``k > 2048``: ``cpu`` (warn, then search the CPU copy) or ``error``.
    """

    def __init__(self, cpu: Any, devices: Sequence[int] | int | None = None, *, use_float16: bool = False,
                 shard: bool = True, large_k: str = "cpu") -> None:
        if large_k not in LARGE_K:
            raise ValueError(f"large_k must be one of {LARGE_K}, got {large_k!r}")
        self.cpu, self.devices, self.use_float16, self.shard, self.large_k = cpu, devices, use_float16, shard, large_k
        self.metric = cpu.metric
        self._gpu, self._resources = index_to_gpu(cpu.index, devices, use_float16=use_float16, shard=shard)

    @property
    def ntotal(self) -> int:
        return int(self.cpu.ntotal)

    @property
    def dim(self) -> int:
        return int(self.cpu.dim)

    def add(self, embeddings: np.ndarray) -> None:
        self.cpu.add(embeddings)
        self._gpu, self._resources = index_to_gpu(self.cpu.index, self.devices, use_float16=self.use_float16,
                                                  shard=self.shard)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.dim, "queries")
        k = check_k(k)
        if k > GPU_MAX_K:
            message = (f"k={k} exceeds the FAISS GPU limit of {GPU_MAX_K} results per query; "
                       + ("searching the CPU copy of the index instead (slower)" if self.large_k == "cpu" else
                          "lower k (e.g. --range) or use large_k='cpu'"))
            if self.large_k == "error":
                raise ValueError(message)
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            return self.cpu.search(q, k)
        scores, ids = self._gpu.search(q, k)
        scores = np.asarray(scores, dtype=np.float32)
        scores = scores if self.metric == "ip" else -scores
        ids = np.asarray(ids, dtype=np.int64)
        scores[ids < 0] = -np.inf
        return scores, ids

    def save(self, path: Any) -> None:
        self.cpu.save(path)

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.cpu.get_config_dict(), "device": "cuda", "devices": self.devices,
                "use_float16": self.use_float16, "shard": self.shard, "large_k": self.large_k}
