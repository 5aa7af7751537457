"""Embedding judge: a bi-encoder teacher's cosine similarity as a pointwise relevance score.

The cheapest judge there is: one encode per distinct query and passage (through the embedding cache, so passages
the miner already encoded with the same model cost nothing), then a cosine per pair. A passage whose cosine with
the query is at or above ``threshold`` counts as answering it. Cosines of different models live on different
scales (MiniLM's relevant pairs sit around 0.5-0.7, EmbeddingGemma's lower), so the threshold is per model: pick it
on labelled queries (``benchmarks/false_negatives.py`` does) rather than reusing another model's.

Spec: ``embedding:MODEL[@THRESHOLD]``, MODEL a preset (``minilm``, ``mpnet``, ``embeddinggemma``…), a model folder
or a hub id, e.g. ``embedding:minilm@0.6``; without ``@`` the ``--threshold`` flag applies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from negmine.relabel.base import Judgment, Usage
from negmine.relabel.llm import Item, per_item_judgments


class EmbeddingJudge:
    """Scores pairs by the cosine of a bi-encoder's query and passage embeddings.

    Args:
        encoder: an :class:`~negmine.encoders.Encoder`, a preset name, a model folder or a hub id.
        threshold: cosine at or above which a passage counts as answering the query.
        unsure_band: ``(low, high)``: cosines in ``[low, high)`` are unsure; ``None``: never.
        cache: an :class:`~negmine.encoders.EmbeddingCache`; ``None``: encode without caching.
        batch_size: encoding batch size.
        model_path: folder of a preset's weights (else ``$NEGMINE_MODELS`` / the hub).
    """

    def __init__(
        self,
        encoder: Any,
        *,
        threshold: float = 0.5,
        unsure_band: tuple[float, float] | None = None,
        cache: Any = None,
        batch_size: int = 32,
        model_path: str | None = None,
        name: str | None = None,
    ) -> None:
        from negmine.encoders import load_encoder

        self.model_name = encoder if isinstance(encoder, str) else type(encoder).__name__
        self.encoder = load_encoder(encoder, model_path=model_path)
        self.threshold = threshold
        self.unsure_band = unsure_band
        self.cache = cache
        self.batch_size = batch_size
        self.name = name or f"embedding:{self.model_name}"
        self.usage = Usage()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "type": "embedding",
            "model": self.model_name,
            "encoder": self.encoder.fingerprint(),
            "threshold": self.threshold,
            "unsure_band": self.unsure_band,
        }

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        from negmine.encoders import PLURAL
        from negmine.retrieve import unique_encode

        emb = np.asarray(
            unique_encode(self.encoder, texts, kind, self.cache, self.batch_size, False, f"Encoding {PLURAL[kind]}"),
            dtype=np.float32,
        )
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.where(norms == 0, 1, norms)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Cosine of each (query, passage) pair."""
        if not pairs:
            return []
        start = time.perf_counter()
        queries = self._encode([q for q, _ in pairs], "query")
        passages = self._encode([p for _, p in pairs], "document")
        scores = np.einsum("ij,ij->i", queries, passages)
        self.usage.add(embedding_pairs=len(pairs), embedding_seconds=time.perf_counter() - start)
        return [float(s) for s in scores]

    def judge(self, query: str, passages: Sequence[str], num_positives: int = 1) -> list[Judgment]:
        return self.judge_many([(query, passages, num_positives)])[0]

    def judge_many(self, items: Sequence[Item]) -> list[list[Judgment]]:
        pairs = [(q, p) for q, passages, _ in items for p in passages]
        return per_item_judgments(items, self.score_pairs(pairs), self.threshold, self.unsure_band, self.name)
