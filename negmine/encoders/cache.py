"""On-disk embedding cache: keyed by the encoder's fingerprint (weights hash, prompts, max length, precision), the
kind of text (query/document) and the texts themselves; written in blocks so an interrupted encode resumes.

Layout: ``<root>/<key[:2]>/<key>/`` holding ``meta.json`` and, while encoding, ``block_<size>_00000.npy``…;
once complete the blocks are merged into ``embeddings.npy`` (loaded memory-mapped). Texts are encoded
longest-first (one global sort, so every batch is padded as little as possible); the cache stores that order and
returns rows in the caller's order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from negmine.io import CACHE_ENV, atomic_open, default_cache_dir, sha256_texts, write_json

logger = logging.getLogger(__name__)

__all__ = ["CACHE_ENV", "CachePlan", "EmbeddingCache", "as_text_sequence", "cache_key", "default_cache_dir",
           "encode_in_blocks", "is_lazy", "longest_first", "texts_digest"]

FORMAT_VERSION = 1


def cache_key(fingerprint: dict[str, Any], kind: str, texts: Sequence[str]) -> str:
    payload = json.dumps({"v": FORMAT_VERSION, "fingerprint": fingerprint, "kind": kind}, sort_keys=True)
    return hashlib.sha256(f"{payload}|{texts_digest(texts)}".encode()).hexdigest()


def is_lazy(texts: Any) -> bool:
    """Whether ``texts`` is a lazy text sequence (:class:`negmine.data.disk.DocTexts`): it reads a block of texts
    with ``take(positions)`` and knows their ``lengths()`` and ``sha256_texts()`` without reading them."""
    return all(callable(getattr(texts, name, None)) for name in ("take", "lengths", "sha256_texts"))


def as_text_sequence(texts: Any) -> Sequence[str]:
    """``texts`` itself when it is lazy (no list of every text is built), else ``list(texts)``."""
    return texts if is_lazy(texts) else list(texts)


def texts_digest(texts: Sequence[str]) -> str:
    """:func:`negmine.io.sha256_texts` of ``texts`` (a lazy sequence answers from its memo)."""
    return texts.sha256_texts() if is_lazy(texts) else sha256_texts(texts)  # type: ignore[attr-defined]


def longest_first(texts: Sequence[str]) -> np.ndarray:
    """Positions of ``texts`` longest first (characters; ties in input order): the order texts are encoded in."""
    lengths = texts.lengths() if is_lazy(texts) else [len(t) for t in texts]  # type: ignore[attr-defined]
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def encode_in_blocks(texts: Sequence[str], encode: Callable[[Sequence[str]], np.ndarray], block_size: int = 256,
                     progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Encode ``texts`` block by block in the cache's longest-first layout, writing nothing: how a lazy text
    sequence is encoded without a cache (one call on every text would need them all in memory)."""
    plan = CachePlan(Path(), texts, longest_first(texts), block_size)
    for index in range(plan.num_blocks):
        plan.put(index, np.ascontiguousarray(encode(plan.block_texts(index)), dtype=np.float32))
        if progress:
            progress(plan.block_rows(index))
    return plan.result()


class EmbeddingCache:
    """Block-wise, resumable embedding store.

    Args:
        root: cache folder (default ``$NEGMINE_CACHE`` or ``~/.cache/negmine``).
        block_size: texts per block; an interrupted encode loses at most one block of work.
    """

    def __init__(self, root: str | os.PathLike | None = None, block_size: int = 256) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.block_size = block_size
        self.hits = 0  # complete cache hits, for stats and tests
        self.encoded = 0  # texts actually encoded

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get_or_encode(
        self,
        texts: Sequence[str],
        encode: Callable[[Sequence[str]], np.ndarray],
        fingerprint: dict[str, Any],
        kind: str,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Return embeddings of ``texts`` (rows in the given order), encoding only what is not cached yet.

        ``encode`` maps a list of texts to a float32 array; ``progress(n)`` is called after each block with the
        number of texts it covered (cached blocks included), for progress bars.
        """
        texts = as_text_sequence(texts)
        plan = self.start(texts, fingerprint, kind, progress)
        if plan.cached is not None:
            return plan.cached
        for index in range(plan.num_blocks):
            plan.put(index, self._block(plan.block_path(index), plan.block_texts(index), encode))
            if progress:
                progress(plan.block_rows(index))
        return self.finish(plan)

    def start(self, texts: Sequence[str], fingerprint: dict[str, Any], kind: str,
              progress: Callable[[int], None] | None = None) -> CachePlan:
        """:meth:`plan`, reporting every text as done to ``progress`` when the entry is already complete."""
        plan = self.plan(texts, fingerprint, kind)
        if plan.cached is not None and progress:
            progress(len(texts))
        return plan

    def plan(self, texts: Sequence[str], fingerprint: dict[str, Any], kind: str) -> CachePlan:
        """Where ``texts`` live in the cache and in which blocks (the one layout local and Ray encoding share):
        ``cached`` holds the embeddings when the entry is complete; otherwise ``meta.json`` is written. ``texts``
        may be lazy (:func:`is_lazy`): its key, order and blocks then come without a list of every text."""
        texts = as_text_sequence(texts)
        key = cache_key(fingerprint, kind, texts)
        folder = self.folder(key)
        final = folder / "embeddings.npy"
        if final.exists():
            emb = np.load(final, mmap_mode="r")
            if emb.shape[0] == len(texts):
                self.hits += 1
                return CachePlan(folder, texts, np.zeros(0, dtype=np.int64), self.block_size, np.asarray(emb))
            logger.warning("embedding cache %s has %d rows for %d texts; re-encoding", final, emb.shape[0], len(texts))
        folder.mkdir(parents=True, exist_ok=True)
        write_json(
            folder / "meta.json",
            {
                "format": FORMAT_VERSION,
                "kind": kind,
                "n": len(texts),
                "block_size": self.block_size,
                "fingerprint": fingerprint,
            },
        )
        return CachePlan(folder, texts, longest_first(texts), self.block_size)

    def finish(self, plan: CachePlan, blocks: list[np.ndarray] | None = None) -> np.ndarray:
        """Write the plan's blocks (given here, or :meth:`CachePlan.put` one by one) into ``embeddings.npy`` and
        return rows in the caller's order."""
        for index, block in enumerate(blocks or []):
            plan.put(index, block)
        emb = plan.result()
        with atomic_open(plan.folder / "embeddings.npy", "wb") as handle:
            np.save(handle, emb)
        remove_blocks(plan.folder)
        return emb

    @staticmethod
    def read_block(path: Path, n: int) -> np.ndarray | None:
        """A finished block of ``n`` rows, or ``None`` if it is missing or unreadable."""
        if not path.exists():
            return None
        try:
            emb = np.load(path)
            if emb.shape[0] == n:
                return emb
        except (OSError, ValueError):
            logger.warning("unreadable cache block %s; re-encoding it", path)
        return None

    def write_block(self, path: Path, emb: np.ndarray) -> np.ndarray:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        self.encoded += len(emb)
        # not fsynced (a block is a resume aid, checked when read; embeddings.npy is fsynced): 10M passages are 39k
        # blocks, and an fsync costs milliseconds on some disks
        with atomic_open(path, "wb", durable=False) as handle:
            np.save(handle, emb)
        return emb

    def _block(self, path: Path, texts: list[str], encode: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        emb = self.read_block(path, len(texts))
        return emb if emb is not None else self.write_block(path, encode(texts))


def remove_blocks(folder: Path, background_above: int = 256) -> None:
    """Delete a finished entry's block files; more than ``background_above`` of them in a background thread (the run
    goes on, and the interpreter waits for the thread at exit): an unlink costs milliseconds on disks mounted with
    ``discard``, ~2 minutes for the 39k blocks of 10M passages."""
    paths = list(folder.glob("block_*.npy"))

    def remove() -> None:
        for path in paths:
            path.unlink(missing_ok=True)  # another process finishing the same key may have removed it already

    if len(paths) <= background_above:
        remove()
    else:
        import threading

        threading.Thread(target=remove, name="negmine-cache-cleanup").start()


@dataclass
class CachePlan:
    """One cache entry being filled: its folder, the texts, their longest-first ``order`` and the block layout.

    Finished blocks are :meth:`put` straight into the result (rows in the caller's order), so filling an entry holds
    one copy of the vectors, not the blocks and then the merged array."""

    folder: Path
    texts: Sequence[str]
    order: np.ndarray
    block_size: int
    cached: np.ndarray | None = None
    _result: np.ndarray | None = None

    @property
    def num_blocks(self) -> int:
        return -(-len(self.texts) // self.block_size)

    def block_path(self, index: int) -> Path:
        return self.folder / f"block_{self.block_size}_{index:05d}.npy"

    def block_rows(self, index: int) -> int:
        """How many texts block ``index`` holds."""
        return max(0, min(self.block_size, len(self.texts) - index * self.block_size))

    def block_texts(self, index: int) -> list[str]:
        start = index * self.block_size
        positions = self.order[start : start + self.block_size]
        if is_lazy(self.texts):
            return self.texts.take(positions)  # type: ignore[attr-defined]
        return [self.texts[i] for i in positions]

    def put(self, index: int, emb: np.ndarray) -> None:
        """Place block ``index``'s vectors at its texts' rows of the result."""
        if self._result is None:
            self._result = np.empty((len(self.texts), *emb.shape[1:]), dtype=emb.dtype)
        start = index * self.block_size
        self._result[self.order[start : start + len(emb)]] = emb

    def result(self) -> np.ndarray:
        return self._result if self._result is not None else np.zeros((0, 0), dtype=np.float32)
