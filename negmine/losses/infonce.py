"""InfoNCE with in-batch and hard negatives, several positives per query and masking of in-batch false negatives."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from negmine.losses._common import CandidateLoss, check_choice, check_frozen_reference
from negmine.losses._masks import (
    CandidateBatch,
    MarginStrategy,
    MultiPositive,
    Similarity,
    contrastive_nll,
    masked_logsumexp,
    similarity,
)

logger = logging.getLogger(__name__)


class InfoNCE(CandidateLoss):
    def __init__(self, model: nn.Module, temperature: float = 0.05, similarity: Similarity = "cosine",
                 num_positive_columns: int = 1, multi_positive: MultiPositive = "mean", symmetric: bool = False,
                 mask_identical_texts: bool = True, margin: float | None = None,
                 margin_strategy: MarginStrategy = "absolute", guide: nn.Module | None = None) -> None:
        """InfoNCE (contrastive loss with in-batch negatives) over ``(anchor, positive(s), negative_1..n)`` columns.

        ``L_i = -log( e^{s(q_i, d_i+)/t} / (e^{s(q_i, d_i+)/t} + sum_{d in N_i} e^{s(q_i, d)/t}) )`` where ``N_i`` is
        every candidate of the batch that is not a positive of row ``i`` and not masked as a false negative: the row's
        own hard negatives plus all other rows' positives and hard negatives (the in-batch negatives). With one
        positive column and no masking this is exactly sentence-transformers' ``MultipleNegativesRankingLoss``
        (docs/methods.md §2, which also states the masks).

        Several positives per query (e.g. extra positives from relabeling): put them in positive columns
        ``(anchor, positive_1, ..., positive_P, negative_1..n)`` and pass ``num_positive_columns=P``. A query with
        fewer than ``P`` positives repeats its first positive in the spare columns (a repeated text inside a row
        counts once) or gives the spare slot a ``NaN`` score. A spare slot is neither a positive nor a negative.
        ``negmine train`` builds rows this way from ``mined.jsonl``; queries with more than ``P`` positives are split
        over several rows (which no-duplicates batching keeps apart). The teacher scores in ``labels`` follow the
        column order: ``(B, P + n)``.

        Args:
            model: the SentenceTransformer being trained.
            temperature: softmax temperature ``t`` (``scale = 1 / t``); 0.05 equals MNRL's default ``scale=20``.
            similarity: ``"cosine"`` (default) or ``"dot"``.
            num_positive_columns: ``P``, how many columns after the anchor hold positives.
            multi_positive: how several positives combine: ``"mean"`` averages ``-log p`` of each positive against
                the negatives only (SupCon "out"); ``"sum"`` takes ``-log`` of the summed probability of all positives.
                Both are InfoNCE for one positive.
            symmetric: add the document-to-query term (each positive against all queries of the batch, queries for
                which it is also a positive masked) and average the two directions.
            mask_identical_texts: drop from row ``i``'s negatives every candidate whose text is identical to the
                anchor or to one of row ``i``'s positives (the same document seen twice, or a duplicate text).
                Identity is decided from the token ids in :meth:`forward`; ``compute_loss_from_embeddings`` needs
                ``text_keys`` for it.
            margin: if set, also drop negatives whose reference score exceeds the row's lowest positive score minus
                the margin (GIST / NV-Retriever positive-aware rule). The reference is the ``guide`` model when given
                (every pair of the batch), else the mined teacher scores in ``labels`` (the row's own hard negatives;
                the teacher never scored in-batch pairs, so those are not margin-masked).
            margin_strategy: ``"absolute"`` (drop if ``> pos - margin``) or ``"relative"`` (``> pos - |pos|*margin``,
                the same vocabulary as the offline miners).
            guide: optional frozen SentenceTransformer scoring every query-candidate pair for ``margin``.

        Requirements:
            Columns ``(anchor, positive_1..positive_P[, negative_1..negative_n])``; optional ``scores`` column with
            ``P + n`` teacher scores per row (it arrives as ``labels``). Use ``BatchSamplers.NO_DUPLICATES``.

        Relations:
            :class:`~negmine.losses.SoftInfoNCE` weights the negatives; :class:`~negmine.losses.HardNegativeMixing`
            adds synthetic negatives to this loss; ST's ``GISTEmbedLoss`` masks with a guide like ``margin`` does.

        Example:
            >>> from sentence_transformers import SentenceTransformer
            >>> from negmine.losses import InfoNCE
            >>> model = SentenceTransformer("all-MiniLM-L6-v2")  # doctest: +SKIP
            >>> loss = InfoNCE(model, temperature=0.05, margin=0.05)  # doctest: +SKIP
        """
        super().__init__(model, temperature, similarity, num_positive_columns, mask_identical_texts, margin,
                         margin_strategy)
        check_choice("multi_positive", multi_positive, ("mean", "sum"))
        self.multi_positive = multi_positive
        self.symmetric = bool(symmetric)
        if guide is not None:
            check_frozen_reference("guide", guide, model)
        self.guide = guide
        self.reference_model = guide

    def negative_log_weights(self, batch: CandidateBatch, **inputs: Any) -> Tensor | None:
        """Per-negative ``log w`` added to the logits; InfoNCE weighs every negative 1 (hook for Soft-InfoNCE)."""
        return None

    def loss_from_batch(self, batch: CandidateBatch, extra_negative_logits: Tensor | None = None,
                        **inputs: Any) -> Tensor:
        """InfoNCE on a candidate batch; ``extra_negative_logits`` (B, M) are appended as negatives (mixing)."""
        logits, positive, negative = batch.logits, batch.positive, batch.negative
        log_weights = self.negative_log_weights(batch, **inputs)
        if extra_negative_logits is not None and extra_negative_logits.size(1) > 0:
            logits, positive, negative, log_weights = _append_negatives(logits, positive, negative, log_weights,
                                                                        extra_negative_logits)
        loss = contrastive_nll(logits, positive, negative, self.multi_positive, log_weights)
        if self.symmetric:
            loss = 0.5 * (loss + self.doc_to_query_loss(batch))
        return loss

    def doc_to_query_loss(self, batch: CandidateBatch) -> Tensor:
        """Each valid positive against all queries of the batch (queries it is also a positive of are masked)."""
        batch_size, num_pos = batch.batch_size, batch.num_positive_columns
        slots = torch.arange(batch_size * num_pos, device=batch.logits.device)
        rows = slots % batch_size
        valid = batch.positive[rows, slots]  # (B*P,)
        docs = batch.candidates[: batch_size * num_pos]
        logits = similarity(docs, batch.anchors, self.similarity) * self.scale  # (B*P, B)
        target = torch.zeros_like(logits, dtype=torch.bool)
        target[slots, rows] = True
        allowed = torch.ones_like(target)
        if self.mask_identical_texts and batch.candidate_keys is not None:
            same_text = batch.candidate_keys[: batch_size * num_pos, None] == batch.candidate_keys[None, :]  # (B*P, C)
            also_positive = (same_text.to(logits.dtype) @ batch.positive.to(logits.dtype).T) > 0  # (B*P, B)
            same_query = batch.anchor_keys[rows][:, None] == batch.anchor_keys[None, :]
            allowed = ~((also_positive | same_query) & ~target)
        per_slot = masked_logsumexp(logits, allowed, dim=1) - logits[slots, rows]
        return per_slot[valid].mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.base_config(), "multi_positive": self.multi_positive, "symmetric": self.symmetric,
                "guide": None if self.guide is None else type(self.guide).__name__}

    @property
    def citation(self) -> str:
        return """
@misc{oord2018representation,
    title={Representation Learning with Contrastive Predictive Coding},
    author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
    year={2018},
    eprint={1807.03748},
    archivePrefix={arXiv},
    primaryClass={cs.LG},
    url={https://arxiv.org/abs/1807.03748},
}
"""


def _append_negatives(logits: Tensor, positive: Tensor, negative: Tensor, log_weights: Tensor | None,
                      extra: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Append ``extra`` (B, M) logits as negatives (weight 1; ``-inf``/NaN entries are left out)."""
    valid = torch.isfinite(extra)
    logits = torch.cat([logits, extra.masked_fill(~valid, 0.0)], dim=1)
    positive = torch.cat([positive, torch.zeros_like(valid)], dim=1)
    negative = torch.cat([negative, valid], dim=1)
    if log_weights is not None:
        log_weights = torch.cat([log_weights, torch.zeros_like(extra)], dim=1)
    return logits, positive, negative, log_weights
