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

from negmine.io import atomic_open, sha256_texts, write_json

logger = logging.getLogger(__name__)

CACHE_ENV = "NEGMINE_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "negmine").expanduser()


def cache_key(fingerprint: dict[str, Any], kind: str, texts: Sequence[str]) -> str:
    payload = json.dumps({"v": FORMAT_VERSION, "fingerprint": fingerprint, "kind": kind}, sort_keys=True)
    return hashlib.sha256(f"{payload}|{sha256_texts(texts)}".encode()).hexdigest()


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
        texts = list(texts)
        plan = self.start(texts, fingerprint, kind, progress)
        if plan.cached is not None:
            return plan.cached
        blocks = []
        for index, start in enumerate(range(0, len(texts), self.block_size)):
            blocks.append(self._block(plan.block_path(index), plan.block_texts(index), encode))
            if progress:
                progress(min(self.block_size, len(texts) - start))
        return self.finish(plan, blocks)

    def start(self, texts: list[str], fingerprint: dict[str, Any], kind: str,
              progress: Callable[[int], None] | None = None) -> CachePlan:
        """:meth:`plan`, reporting every text as done to ``progress`` when the entry is already complete."""
        plan = self.plan(texts, fingerprint, kind)
        if plan.cached is not None and progress:
            progress(len(texts))
        return plan

    def plan(self, texts: Sequence[str], fingerprint: dict[str, Any], kind: str) -> CachePlan:
        """Where ``texts`` live in the cache and in which blocks (the one layout local and Ray encoding share):
        ``cached`` holds the embeddings when the entry is complete; otherwise ``meta.json`` is written."""
        texts = list(texts)
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
        order = np.argsort([-len(t) for t in texts], kind="stable")
        return CachePlan(folder, texts, order, self.block_size)

    def finish(self, plan: CachePlan, blocks: list[np.ndarray]) -> np.ndarray:
        """Merge the blocks (in sorted order) into ``embeddings.npy`` and return rows in the caller's order."""
        sorted_emb = np.concatenate(blocks) if blocks else np.zeros((0, 0), dtype=np.float32)
        emb = np.empty_like(sorted_emb)
        emb[plan.order] = sorted_emb
        with atomic_open(plan.folder / "embeddings.npy", "wb") as handle:
            np.save(handle, emb)
        for path in plan.folder.glob("block_*.npy"):
            path.unlink(missing_ok=True)  # another process finishing the same key may have removed it already
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
        with atomic_open(path, "wb") as handle:
            np.save(handle, emb)
        return emb

    def _block(self, path: Path, texts: list[str], encode: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        emb = self.read_block(path, len(texts))
        return emb if emb is not None else self.write_block(path, encode(texts))


@dataclass
class CachePlan:
    """One cache entry being filled: its folder, the texts, their longest-first ``order`` and the block layout."""

    folder: Path
    texts: list[str]
    order: np.ndarray
    block_size: int
    cached: np.ndarray | None = None

    @property
    def num_blocks(self) -> int:
        return -(-len(self.texts) // self.block_size)

    def block_path(self, index: int) -> Path:
        return self.folder / f"block_{self.block_size}_{index:05d}.npy"

    def block_texts(self, index: int) -> list[str]:
        start = index * self.block_size
        return [self.texts[i] for i in self.order[start : start + self.block_size]]
