"""Exact search through torch itself: blocked matrix products and top-k on one or several GPUs (or the CPU).

What a user without faiss-gpu gets on CUDA, and the kernel ``benchmarks/gpu_check.py`` times. Vectors are stored on
the devices in ``fp16`` (default on CUDA), ``bf16`` or ``fp32``; with several devices the rows are sharded across
them (each holds a contiguous slice of every ``add``) and the per-device top-k lists are merged on the host.

Results are in negmine's canonical order (score descending, ties by the lower corpus row, ``-1`` padding last), with
no limit on ``k`` (FAISS GPU stops at 2048). Ties that straddle a block's top-k cut are settled by a stable sort of
those rows, so in ``fp32`` the ids equal :class:`~negmine.index.exact.ExactIndex`'s whenever the scores are computed
exactly (the tests use integer vectors); in ``fp16``/``bf16`` the scores are those of the rounded vectors.

``torch`` is imported on first use, not with :mod:`negmine.index`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from negmine.index.base import CountedVectors, Metric, check_k, check_metric, check_vectors
from negmine.index.exact import merged_search

DTYPES = ("fp32", "fp16", "bf16")


def _torch() -> Any:
    from negmine._optional import require

    return require("torch", "torch exact search")


def resolve_devices(device: str | Sequence[str] | None) -> list[str]:
    """``None``: every visible CUDA device, else ``["cpu"]``; ``"cuda"`` = all CUDA devices; a list is taken as is."""
    torch = _torch()
    if device is None or device == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device == "cuda" and n == 0:
            raise RuntimeError("device 'cuda' asked for but torch sees no CUDA device")
        return [f"cuda:{i}" for i in range(n)] if n else ["cpu"]
    if isinstance(device, str):
        return [device]
    devices = [str(d) for d in device]
    if not devices:
        raise ValueError("devices is empty")
    return devices


class _Piece:
    """A slice of the corpus on one device: rows ``offset .. offset + len(x)``."""

    def __init__(self, offset: int, x: Any, sq_norms: Any) -> None:
        self.offset, self.x, self.sq_norms = offset, x, sq_norms


class TorchExactIndex(CountedVectors):
    """Brute-force inner-product (or negated-L2) search with torch on CUDA or CPU.

    Args:
        dim: vector dimension.
        metric: ``ip`` or ``l2`` (scores are ``-||q - d||²``).
        device: ``None`` (all CUDA devices, else CPU), ``"cuda"``, ``"cuda:1"``, ``"cpu"``, or a list of devices to
            shard over (one shard per entry; an entry may repeat).
        dtype: storage and matrix-product precision, ``fp16`` / ``bf16`` / ``fp32`` (default: fp16 on CUDA, fp32 on
            CPU). Products accumulate in fp32 (cuBLAS), scores are rounded to ``dtype``; top-k and merging run on fp32.
        query_block / corpus_block: block sizes; a score block is ``query_block × corpus_block`` fp32 values (default
            4096 × 262,144 = 4 GiB on CUDA, 1024 × 65,536 = 256 MiB on CPU).
    """

    def __init__(
        self,
        dim: int,
        metric: Metric = "ip",
        *,
        device: str | Sequence[str] | None = None,
        dtype: str | None = None,
        query_block: int | None = None,
        corpus_block: int | None = None,
    ) -> None:
        check_metric(metric)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self._dim, self.metric = int(dim), metric
        self.devices = resolve_devices(device)
        on_cuda = all(d.startswith("cuda") for d in self.devices)
        self.dtype = dtype or ("fp16" if on_cuda else "fp32")
        self.query_block = query_block or (4096 if on_cuda else 1024)
        self.corpus_block = corpus_block or (262_144 if on_cuda else 65_536)
        if self.query_block < 1 or self.corpus_block < 1:
            raise ValueError("query_block and corpus_block must be >= 1")
        self._shards: list[list[_Piece]] = [[] for _ in self.devices]  # shard j lives on devices[j]
        self._ntotal = 0

    def _torch_dtype(self) -> Any:
        torch = _torch()
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype]

    def add(self, embeddings: np.ndarray) -> None:
        """Append rows; with several devices each takes a contiguous, near-equal slice of them."""
        torch = _torch()
        x = check_vectors(embeddings, self._dim, "embeddings")
        per = math.ceil(len(x) / len(self.devices)) if len(x) else 0
        for i, device in enumerate(self.devices):
            part = x[i * per : (i + 1) * per]
            if not len(part):
                continue
            host = torch.from_numpy(part)
            sq = (host.double() ** 2).sum(1).float().to(device) if self.metric == "l2" else None
            self._shards[i].append(_Piece(self._ntotal + i * per, host.to(device, self._torch_dtype()), sq))
        self._ntotal += len(x)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self._dim, "queries")
        k = check_k(k)

        def shards(qb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
            if len(self.devices) == 1:
                return [self._search_shard(0, qb, k)]
            with ThreadPoolExecutor(len(self.devices)) as pool:  # kernels release the GIL: devices overlap
                return list(pool.map(lambda j: self._search_shard(j, qb, k), range(len(self.devices))))

        return merged_search(q, k, self.query_block, shards)

    def _search_shard(self, shard: int, qb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of one query block against one shard's rows, canonical order, as host arrays."""
        torch = _torch()
        device = self.devices[shard]
        with torch.inference_mode():
            host_q = torch.from_numpy(qb)
            qd = host_q.to(device, self._torch_dtype())
            q_sq = (host_q.double() ** 2).sum(1).float().to(device)[:, None] if self.metric == "l2" else None
            best_s = torch.empty((len(qb), 0), dtype=torch.float32, device=device)
            best_i = torch.empty((len(qb), 0), dtype=torch.int64, device=device)
            for piece in self._shards[shard]:
                for cs in range(0, len(piece.x), self.corpus_block):
                    block = piece.x[cs : cs + self.corpus_block]
                    sims = (qd @ block.T).float()
                    if self.metric == "l2":
                        sims = 2 * sims - q_sq - piece.sq_norms[cs : cs + len(block)][None, :]
                    s, i = block_topk(sims, k)
                    best_s, best_i = merge_sorted(best_s, best_i, s, i + (piece.offset + cs), k)
            return best_s.cpu().numpy(), best_i.cpu().numpy()

    def save(self, path: Any) -> None:
        raise NotImplementedError("TorchExactIndex lives on the device; persist the vectors (negmine index build)")

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "type": "torch-exact",
            "dim": self._dim,
            "metric": self.metric,
            "ntotal": self._ntotal,
            "devices": self.devices,
            "dtype": self.dtype,
        }


def block_topk(sims: Any, k: int) -> tuple[Any, Any]:
    """Per-row top-``k`` of a score block (torch, any device): score descending, ties by lower column.

    ``torch.topk`` picks among equal scores at the cut arbitrarily (common in fp16). In rows where ties straddle the
    cut (more than ``k`` scores >= the k-th) the selection is redone exactly: every score above the k-th, then the
    lowest columns holding the k-th score, in one pass over those rows (no sort of the whole row)."""
    torch = _torch()
    m = sims.shape[1]
    kk = min(k, m)
    if kk == m:
        return torch.sort(sims, dim=1, descending=True, stable=True)
    s, i = torch.topk(sims, kk, dim=1, largest=True, sorted=True)
    kth = s[:, -1:]
    rows = ((sims >= kth).sum(1) > kk).nonzero().flatten()
    if len(rows):
        sub, cut = sims[rows], kth[rows]
        equal = sub == cut
        need = kk - (sub > cut).sum(1, keepdim=True)
        keep = (sub > cut) | (equal & (equal.cumsum(1) <= need))
        cols = keep.nonzero()[:, 1].reshape(len(rows), kk)  # row-major: each row's kk columns, ascending
        s[rows], i[rows] = torch.gather(sub, 1, cols), cols
    return sort_canonical(s, i)


def sort_canonical(s: Any, i: Any) -> tuple[Any, Any]:
    """Sort rows by score descending, ties by id ascending; ids ``< 0`` (padding) last."""
    torch = _torch()
    big = torch.iinfo(torch.int64).max
    key_i = torch.where(i < 0, torch.full_like(i, big), i)
    o1 = torch.argsort(key_i, dim=1, stable=True)
    s1, i1 = torch.gather(s, 1, o1), torch.gather(i, 1, o1)
    s1 = torch.where(torch.gather(key_i, 1, o1) == big, torch.full_like(s1, -math.inf), s1)
    o2 = torch.argsort(s1, dim=1, descending=True, stable=True)
    return torch.gather(s1, 1, o2), torch.gather(i1, 1, o2)


def merge_sorted(a_s: Any, a_i: Any, b_s: Any, b_i: Any, k: int) -> tuple[Any, Any]:
    """Merge two per-row lists into the canonical top ``k`` (on their device)."""
    torch = _torch()
    s, i = sort_canonical(torch.cat([a_s, b_s], 1), torch.cat([a_i, b_i], 1))
    return s[:, :k], i[:, :k]
