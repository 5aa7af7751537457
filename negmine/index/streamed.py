"""Out-of-core exact search: embeddings in on-disk ``.npy`` shards, searched block by block under a memory bound.

A :class:`ShardStore` is a folder of float32 ``shard_00000.npy``, ``shard_00001.npy``… plus ``shards.json`` (dim,
rows per shard). Rows are appended in order, so row ``i`` of the store is corpus row ``i``. Shards load memory-mapped
(:meth:`ShardStore.rows` gathers any rows without reading the rest), and :class:`StreamedExactIndex` streams them
through a fixed buffer: each corpus block is scored against a block of queries, its per-row top-k is taken and merged
into the running top-k (:func:`negmine.index.exact.merge_topk`). Peak memory is set by ``max_memory_mb`` whatever the
corpus size, so a corpus whose flat index does not fit in RAM is still mined exactly.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from negmine._optional import require
from negmine.index.base import Metric, check_k, check_metric, check_vectors, pad_results
from negmine.index.exact import _similarity, merge_topk, topk_rows

logger = logging.getLogger(__name__)

STORE_META = "shards.json"
PRUNE_CHUNK = 4096  # corpus rows scored per matrix product in the numpy engine (the slice stays in cache)
STORE_FORMAT = 1


class ShardStoreError(ValueError):
    """A shard store folder that is missing, incomplete or inconsistent; the message names the file."""


def _npy_data_offset(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """Byte offset of the array data in an ``.npy`` file, with its shape and dtype (raises on a bad header)."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(handle)
        except ValueError as err:
            raise ShardStoreError(f"{path}: not a valid .npy file ({err})") from None
        if fortran:
            raise ShardStoreError(f"{path}: Fortran-ordered shards are not supported")
        return handle.tell(), tuple(shape), np.dtype(dtype)


class ShardStore:
    """Row-appendable float32 vectors on disk, one ``.npy`` file per ``shard_rows`` rows.

    Args:
        path: the store folder (created by :meth:`create`, reopened by :meth:`open`).

    Example:
        >>> import numpy as np, tempfile
        >>> store = ShardStore.create(tempfile.mkdtemp(), dim=2, shard_rows=2)
        >>> store.append(np.eye(2, dtype=np.float32)); store.append(np.ones((1, 2), dtype=np.float32))
        >>> len(store), store.num_shards, store.rows([2, 0]).tolist()
        (3, 2, [[1.0, 1.0], [1.0, 0.0]])
    """

    def __init__(self, path: str | os.PathLike, dim: int, shard_rows: int, counts: list[int]) -> None:
        self.path, self.dim, self.shard_rows, self.counts = Path(path), int(dim), int(shard_rows), list(counts)
        self._maps: dict[int, np.ndarray] = {}

    # ---- creation / opening
    @classmethod
    def create(cls, path: str | os.PathLike, dim: int, shard_rows: int = 1_000_000,
               overwrite: bool = False) -> ShardStore:
        """An empty store at ``path`` (an existing store there is an error unless ``overwrite``)."""
        path = Path(path)
        if dim < 1 or shard_rows < 1:
            raise ValueError(f"dim and shard_rows must be >= 1, got dim={dim}, shard_rows={shard_rows}")
        if (path / STORE_META).exists():
            if not overwrite:
                raise ShardStoreError(f"{path}: a shard store already exists there (pass overwrite=True)")
            for old in path.glob("shard_*.npy"):
                old.unlink()
        path.mkdir(parents=True, exist_ok=True)
        store = cls(path, dim, shard_rows, [])
        store._write_meta()
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> ShardStore:
        """Reopen a store; checks that every shard exists and has the recorded shape."""
        path = Path(path)
        meta_path = path / STORE_META
        if not meta_path.exists():
            raise ShardStoreError(f"{path}: no shard store here ({STORE_META} is missing)")
        try:
            meta = json.loads(meta_path.read_text())
            dim, shard_rows, counts = int(meta["dim"]), int(meta["shard_rows"]), [int(c) for c in meta["counts"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ShardStoreError(f"{meta_path}: unreadable shard store metadata ({err})") from None
        store = cls(path, dim, shard_rows, counts)
        for i, count in enumerate(counts):
            shard = store.shard_path(i)
            if not shard.exists():
                raise ShardStoreError(f"{shard}: shard file missing (the store lists {len(counts)} shards)")
            offset, shape, dtype = _npy_data_offset(shard)
            if shape != (count, dim) or dtype != np.float32:
                raise ShardStoreError(f"{shard}: expected float32 ({count}, {dim}), found {dtype} {shape}")
            if shard.stat().st_size < offset + count * dim * 4:
                raise ShardStoreError(f"{shard}: truncated ({shard.stat().st_size} bytes)")
        return store

    def _write_meta(self) -> None:
        from negmine.io import write_json

        write_json(self.path / STORE_META, {"format": STORE_FORMAT, "dtype": "float32", "dim": self.dim,
                                            "shard_rows": self.shard_rows, "counts": self.counts,
                                            "ntotal": len(self)})

    def shard_path(self, i: int) -> Path:
        return self.path / f"shard_{i:05d}.npy"

    # ---- writing
    def append(self, x: np.ndarray) -> None:
        """Append rows (filling the last shard up to ``shard_rows`` before starting a new one)."""
        x = check_vectors(x, self.dim, "embeddings")
        start = 0
        while start < len(x):
            if self.counts and self.counts[-1] < self.shard_rows:
                i = len(self.counts) - 1
                take = min(self.shard_rows - self.counts[i], len(x) - start)
                old = np.load(self.shard_path(i))  # only the partial last shard is rewritten
                self._write_shard(i, np.concatenate([old, x[start:start + take]]))
            else:
                i = len(self.counts)
                take = min(self.shard_rows, len(x) - start)
                self.counts.append(0)
                self._write_shard(i, x[start:start + take])
            self.counts[i] += take
            start += take
        self._write_meta()

    def _write_shard(self, i: int, rows: np.ndarray) -> None:
        from negmine.io import atomic_open

        self._maps.pop(i, None)
        with atomic_open(self.shard_path(i), "wb") as handle:
            np.save(handle, np.ascontiguousarray(rows, dtype=np.float32))

    # ---- reading
    def __len__(self) -> int:
        return int(sum(self.counts))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.dim

    @property
    def num_shards(self) -> int:
        return len(self.counts)

    @property
    def nbytes(self) -> int:
        return len(self) * self.dim * 4

    def shard(self, i: int) -> np.ndarray:
        """Shard ``i`` as a read-only memory map (pages are read on access only)."""
        if i not in self._maps:
            self._maps[i] = np.load(self.shard_path(i), mmap_mode="r")
        return self._maps[i]

    def rows(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """Gather rows by global id (any order, repeats allowed) into a float32 array; reads only those rows."""
        ids = np.asarray(ids, dtype=np.int64)
        flat = ids.ravel()
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"row ids must be in [0, {len(self)}), got {flat.min()}..{flat.max()}")
        out = np.empty((flat.size, self.dim), dtype=np.float32)
        shard_of = flat // self.shard_rows
        for i in np.unique(shard_of):
            mask = shard_of == i
            local = flat[mask] - i * self.shard_rows
            order = np.argsort(local, kind="stable")  # sequential access within the shard
            out[np.flatnonzero(mask)[order]] = self.shard(int(i))[local[order]]
        return out.reshape(*ids.shape, self.dim)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            return self.rows(np.arange(len(self))[key])
        if isinstance(key, (int, np.integer)):
            return self.rows([int(key)])[0]
        return self.rows(key)

    def to_array(self) -> np.ndarray:
        """The whole store in memory (only for stores that fit)."""
        return np.concatenate([np.asarray(self.shard(i)) for i in range(self.num_shards)]) if self.counts else (
            np.zeros((0, self.dim), dtype=np.float32))

    def iter_blocks(self, block_rows: int, buffer: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, block)`` of at most ``block_rows`` rows, read with plain file reads into one reused
        buffer (no memory map), so resident memory stays at one block however large the store is.

        The yielded block is overwritten by the next one: copy it if you keep it.
        """
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        if buffer is None or buffer.shape[0] < block_rows or buffer.shape[1] != self.dim:
            buffer = np.empty((block_rows, self.dim), dtype=np.float32)
        first = 0
        for i, count in enumerate(self.counts):
            offset, _, _ = _npy_data_offset(self.shard_path(i))
            with open(self.shard_path(i), "rb", buffering=0) as handle:
                handle.seek(offset)
                for start in range(0, count, block_rows):
                    n = min(block_rows, count - start)
                    view = memoryview(buffer[:n].reshape(-1).view(np.uint8))
                    got = 0
                    while got < view.nbytes:
                        read = handle.readinto(view[got:])
                        if not read:
                            raise ShardStoreError(f"{self.shard_path(i)}: truncated while reading row {start + got}")
                        got += read
                    yield first + start, buffer[:n]
            first += count


def pruned_merge(best: tuple[np.ndarray, np.ndarray], sims: np.ndarray, first: int, k: int,
                 chunk: int = PRUNE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Merge a block of similarities (columns = rows ``first…``) into the running per-row top-``k``.

    Columns are taken ``chunk`` at a time; only entries strictly above a row's current k-th best score can enter
    (a later row with an equal score loses the tie, as in exact search). Once ``k`` results exist, one vectorised
    comparison rejects almost every entry and only the rows with survivors are merged, so selection costs a few
    percent of the matrix product instead of an argpartition over every score.
    """
    n, m = sims.shape
    for start in range(0, m, chunk):
        part = sims[:, start:start + chunk]
        base = first + start
        if best[0].shape[1] < k or not np.isfinite(best[0][:, k - 1]).all():
            s, i = topk_rows(part, k)
            best = merge_topk(best, (s, i + base), k)
            continue
        mask = part > best[0][:, k - 1][:, None]
        counts = np.count_nonzero(mask, axis=1)
        hit = np.flatnonzero(counts)
        if hit.size == 0:
            continue
        sub_mask, sub_part = mask[hit], part[hit]
        width = int(counts[hit].max())
        if width >= k:  # many survivors in some row: select per row first
            s, i = topk_rows(np.where(sub_mask, sub_part, -np.inf), k)
            cand = (s, np.where(np.isfinite(s), i + base, -1))
        else:
            rows, cols = np.nonzero(sub_mask)
            sub_counts = counts[hit]
            pos = np.arange(rows.size) - (np.cumsum(sub_counts) - sub_counts)[rows]
            cand_s = np.full((hit.size, width), -np.inf, dtype=np.float32)
            cand_i = np.full((hit.size, width), -1, dtype=np.int64)
            cand_s[rows, pos] = sub_part[rows, cols]
            cand_i[rows, pos] = cols + base
            cand = (cand_s, cand_i)
        merged = merge_topk((best[0][hit], best[1][hit]), cand, k)
        scores, ids = np.array(best[0]), np.array(best[1])
        scores[hit], ids[hit] = merged
        best = (scores, ids)
    return best


class ArrayBlocks:
    """An in-memory matrix seen through the :class:`ShardStore` reading interface (``iter_blocks``, ``rows``)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = check_vectors(x, None, "vectors")
        self.dim = self.x.shape[1]
        self.num_shards = 1

    def __len__(self) -> int:
        return self.x.shape[0]

    def rows(self, ids: np.ndarray | list[int]) -> np.ndarray:
        return self.x[np.asarray(ids, dtype=np.int64)]

    def iter_blocks(self, block_rows: int, buffer: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(self), block_rows):
            yield start, self.x[start:start + block_rows]

    def append(self, x: np.ndarray) -> None:
        self.x = np.concatenate([self.x, check_vectors(x, self.dim, "embeddings")])


class StreamedExactIndex:
    """Exact search over a :class:`ShardStore`, streaming corpus blocks and merging per-block top-k.

    Results equal :class:`~negmine.index.exact.ExactIndex` on the same vectors (same scores up to float rounding,
    same tie-break: lower row first). The working memory of one search step (the corpus block, the block of
    similarities and the top-k selection over it) stays under ``max_memory_mb``; the queries and the ``(n, k)``
    results come on top.

    Args:
        store: a :class:`ShardStore` or its folder (or an in-memory array, for the same algorithm in RAM).
        metric: ``ip`` or ``l2`` (scores ``-||q - d||²``).
        max_memory_mb: bound on the working memory of one search step.
        query_block: queries scored together (larger = faster matrix products, smaller corpus blocks).
        engine: ``numpy`` (BLAS matmul per block, then only scores above each query's current k-th best are
            selected: :func:`pruned_merge`) or ``faiss`` (``faiss.knn`` per block); ``auto`` = ``numpy``.

    Example:
        >>> import numpy as np, tempfile
        >>> store = ShardStore.create(tempfile.mkdtemp(), dim=2, shard_rows=2)
        >>> store.append(np.array([[1, 0], [0, 1], [0.7, 0.7]], dtype=np.float32))
        >>> StreamedExactIndex(store, engine="numpy").search(np.array([[1.0, 0.2]], dtype=np.float32), 2)[1].tolist()
        [[0, 2]]
    """

    def __init__(self, store: ShardStore | str | os.PathLike, metric: Metric = "ip", max_memory_mb: float = 1024,
                 query_block: int = 1024, engine: str = "auto") -> None:
        check_metric(metric)
        if max_memory_mb <= 0:
            raise ValueError(f"max_memory_mb must be > 0, got {max_memory_mb}")
        if engine not in ("auto", "numpy", "faiss"):
            raise ValueError(f"engine must be 'auto', 'numpy' or 'faiss', got {engine!r}")
        if isinstance(store, np.ndarray):
            store = ArrayBlocks(store)
        self.store = store if isinstance(store, (ShardStore, ArrayBlocks)) else ShardStore.open(store)
        self.metric, self.max_memory_mb, self.query_block = metric, float(max_memory_mb), int(query_block)
        self.engine = "numpy" if engine == "auto" else engine

    @property
    def ntotal(self) -> int:
        return len(self.store)

    @property
    def dim(self) -> int:
        return self.store.dim

    def add(self, embeddings: np.ndarray) -> None:
        self.store.append(embeddings)

    def block_sizes(self, n_queries: int, k: int) -> tuple[int, int]:
        """(queries, corpus rows) per step so that block + similarities + selection fit in ``max_memory_mb``.

        Per corpus row: its vector (4·dim bytes) and, per query, the similarity (4 B), its negation (4 B) and the
        argpartition index (8 B); the running top-k of a query block takes ``query_block·k·12·3`` bytes.
        """
        budget = self.max_memory_mb * 2**20
        qb = max(1, min(self.query_block, n_queries))
        while True:
            topk_bytes = qb * k * 12 * 3
            per_row = 4 * self.dim + 16 * qb
            rows = int((budget - topk_bytes) // per_row)
            if rows >= max(k, 1024) or qb == 1:
                break
            qb = max(1, qb // 2)
        if rows < 1:
            raise ValueError(f"max_memory_mb={self.max_memory_mb:g} is too small for k={k} at dim {self.dim}")
        return qb, max(1, min(rows, self.ntotal))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = check_vectors(queries, self.dim, "queries")
        k = check_k(k)
        if q.shape[0] == 0 or self.ntotal == 0:
            s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
            return s, np.full((q.shape[0], k), -1, dtype=np.int64)
        qb, rows = self.block_sizes(q.shape[0], k)
        buffer = np.empty((rows, self.dim), dtype=np.float32)
        # one pass over the corpus per query super-block: as many queries as the budget allows per pass
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        for qs in range(0, q.shape[0], qb):
            qblock = q[qs:qs + qb]
            best = (np.zeros((len(qblock), 0), dtype=np.float32), np.zeros((len(qblock), 0), dtype=np.int64))
            for first, block in self.store.iter_blocks(rows, buffer):
                if self.engine == "numpy":  # scores made and pruned one cache-sized slice at a time
                    c = 0
                    while c < block.shape[0]:
                        # the first slice is wide, so the k-th best score is already tight when pruning starts
                        width = PRUNE_CHUNK if best[0].shape[1] >= k else max(PRUNE_CHUNK, 64 * k)
                        sims = _similarity(qblock, block[c:c + width], self.metric)
                        best = pruned_merge(best, sims, first + c, k, chunk=width)
                        c += width
                    continue
                s, i = self._block_topk(qblock, block, k)
                best = merge_topk(best, (s, np.where(i < 0, -1, i + first)), k)
            out_s[qs:qs + qb], out_i[qs:qs + qb] = pad_results(*best, k)
        return out_s, out_i

    def _block_topk(self, q: np.ndarray, block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.engine == "faiss":
            faiss = require("faiss", "StreamedExactIndex")

            kk = min(k, block.shape[0])
            metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
            from negmine.index.faiss_index import fast_flat_scan

            with fast_flat_scan():
                d, i = faiss.knn(q, block, kk, metric=metric)
            return (d if self.metric == "ip" else -d).astype(np.float32), i.astype(np.int64)
        return topk_rows(_similarity(q, block, self.metric), k)

    def save(self, path: str | os.PathLike) -> None:
        """Write the index description (the vectors already live in the store; a different ``path`` copies them)."""
        from negmine.io import write_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if path.resolve() != self.store.path.resolve():
            copy = ShardStore.create(path / "shards", self.dim, self.store.shard_rows, overwrite=True)
            for _, block in self.store.iter_blocks(self.store.shard_rows):
                copy.append(block)
            rel = "shards"
        else:
            rel = "."
        write_json(path / "index.json", {"type": "streamed", **self.get_config_dict(), "store": rel})

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> StreamedExactIndex:
        path = Path(path)
        config = json.loads((path / "index.json").read_text())
        store = ShardStore.open(path / config.get("store", "."))
        if store.dim != config["dim"]:
            raise ShardStoreError(f"{path}: the shard store has dimension {store.dim}, index.json says "
                                  f"{config['dim']}")
        kwargs.setdefault("max_memory_mb", config.get("max_memory_mb", 1024))
        return cls(store, config["metric"], **kwargs)

    def get_config_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "metric": self.metric, "ntotal": self.ntotal, "max_memory_mb": self.max_memory_mb,
                "query_block": self.query_block, "engine": self.engine, "shards": self.store.num_shards}
