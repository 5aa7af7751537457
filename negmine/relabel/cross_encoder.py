"""Cross-encoder judge: a reranker's probability per (query, passage), ranked within the candidate set.

Cheap enough to score every pair, so it is the usual first stage of a :class:`~negmine.relabel.cascade.CascadeJudge`.
Used alone, its ranking and its ``threshold`` stand in for ARHN's listwise rank and "has an answer".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from negmine._optional import require
from negmine.relabel.base import Judgment, Usage
from negmine.relabel.llm import Item, per_item_judgments


class CrossEncoderJudge:
    """Scores pairs with a sentence-transformers ``CrossEncoder`` (sigmoid probability for one-logit models).

    Args:
        model: a model folder or hub id, or a loaded ``CrossEncoder``.
        threshold: probability at or above which a passage counts as answering the query.
        unsure_band: ``(low, high)``: probabilities in ``[low, high)`` are unsure; ``None``: never.
        batch_size: pairs per forward pass.
        device: ``None`` lets sentence-transformers pick.
        max_length: token limit of a (query, passage) pair.
    """

    def __init__(self, model: Any, *, threshold: float = 0.5, unsure_band: tuple[float, float] | None = None,
                 batch_size: int = 32, device: str | None = None, max_length: int | None = 512,
                 name: str | None = None) -> None:
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            st = require("sentence_transformers", "the cross-encoder judge")
            self.model_name = str(model)
            model = st.CrossEncoder(str(model), device=device, max_length=max_length)
        else:
            self.model_name = getattr(model, "model_card_data", None) and getattr(
                model.model_card_data, "base_model", None) or type(model).__name__
        self.model = model
        self.threshold = threshold
        self.unsure_band = unsure_band
        self.batch_size = batch_size
        self.name = name or f"cross-encoder:{self.model_name}"
        self.usage = Usage()

    def get_config_dict(self) -> dict[str, Any]:
        return {"type": "cross-encoder", "model": self.model_name, "threshold": self.threshold,
                "unsure_band": self.unsure_band}

    def judge(self, query: str, passages: Sequence[str], num_positives: int = 1) -> list[Judgment]:
        return self.judge_many([(query, passages, num_positives)])[0]

    def judge_many(self, items: Sequence[Item]) -> list[list[Judgment]]:
        pairs = [(q, p) for q, passages, _ in items for p in passages]
        start = time.perf_counter()
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False) if pairs else []
        self.usage.add(cross_encoder_pairs=len(pairs), cross_encoder_seconds=time.perf_counter() - start)
        return per_item_judgments(items, [float(s) for s in scores], self.threshold, self.unsure_band, self.name)
