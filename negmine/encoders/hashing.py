"""A deterministic, download-free encoder for tests and documentation examples."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_TOKEN = re.compile(r"\w+")


class HashingEncoder:
    """Bag of hashed word uni- and bigrams, L2-normalised. Lexical, like a tiny BM25 without IDF.

    Args:
        dim: output dimension.
        seed: changes the hash functions (and so the vectors).

    Example:
        >>> enc = HashingEncoder(dim=64)
        >>> q = enc.encode_queries(["hard negative mining"])
        >>> d = enc.encode_corpus(["mining hard negatives with faiss", "a recipe for soup"])
        >>> bool((q @ d.T)[0, 0] > (q @ d.T)[0, 1])
        True
    """

    similarity = "cosine"

    def __init__(self, dim: int = 256, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.seed = dim, seed
        self.encode_calls = 0  # how many texts were encoded: tests use it to prove cache hits

    def _vector(self, text: str) -> np.ndarray:
        tokens = _TOKEN.findall(text.lower())
        grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
        vec = np.zeros(self.dim, dtype=np.float32)
        for gram in grams:
            h = int.from_bytes(hashlib.blake2b(f"{self.seed}:{gram}".encode(), digest_size=8).digest(), "little")
            vec[h % self.dim] += 1.0 if (h >> 63) == 0 else -1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm > 0 else vec

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encode_calls += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def encode_queries(
        self, queries: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(queries)

    def encode_corpus(
        self, docs: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        return self._encode(docs)

    def fingerprint(self) -> dict[str, Any]:
        return {"encoder": "hashing", "dim": self.dim, "seed": self.seed}
