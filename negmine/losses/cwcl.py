"""CWCL (Srinivasa et al., NeurIPS 2023): contrastive loss with continuous targets from a frozen reference."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from negmine.losses._common import CandidateLoss, check_frozen_reference, check_range
from negmine.losses._masks import CandidateBatch, MarginStrategy, Similarity, split_columns

logger = logging.getLogger(__name__)


class CWCL(CandidateLoss):
    def __init__(self, model: nn.Module, reference: str | nn.Module = "labels", power: float = 1.0,
                 threshold: float = 0.0, rescale: bool = True, temperature: float = 0.05,
                 similarity: Similarity = "cosine", num_positive_columns: int = 1, mask_identical_texts: bool = True,
                 margin: float | None = None, margin_strategy: MarginStrategy = "absolute") -> None:
        """Continuously weighted contrastive loss: a soft target over each query's candidates instead of one-hot.

        For row ``i`` with candidates ``j`` (its positives and its unmasked negatives, docs/methods.md §5)::

            w_ij = 1 for the row's positives; for a negative  w_ij = f(r_ij)
            f(r) = r' ** power if r' ** power >= threshold else 0,   r' = (r + 1) / 2 when rescale else r
            L_i  = - sum_j (w_ij / sum_k w_ik) * log softmax_j(s_ij / temperature)

        The reference similarity ``r_ij`` comes from a frozen source:

        * ``reference="labels"``: the mined teacher scores ``s(q_i, c_j)`` (the ``scores`` column); in-batch pairs,
          which the teacher never scored, get weight 0 (plain negatives). These are query-document scores: this mode
          is **soft-label distillation** from the teacher, not the paper's CWCL, and tables name it so.
        * ``reference=<frozen SentenceTransformer>``: **the paper's CWCL weights** (Srinivasa et al., eq. 4), which
          compare samples inside one modality through a frozen encoder: the reference model's cosine between the
          row's positive document and candidate ``j`` (the highest over the row's positives), for every pair of the
          batch, in-batch pairs included. With ``power=1, threshold=0, rescale=True`` (the defaults) this is the
          paper's ``w_ij = (<p_i, c_j> + 1) / 2``. Pass the initial student (loaded once more, frozen) to follow the
          paper's setting of a frozen pretrained encoder.

        With every negative weight 0 (e.g. ``threshold`` above all weights) the target is one-hot and the loss equals
        :class:`~negmine.losses.InfoNCE`; with several positives it is uniform over them, i.e.
        ``-mean_p log softmax_p`` over the full candidate list. Text embedders give unrelated documents cosines of
        0.3-0.7, so sharpen (``power`` > 1) or cut (``threshold``) in practice; the defaults are the paper's form.
        Check the target before training: ``benchmarks/soft_weights.py`` prints the share of the target that lands
        on the mined negatives. With MiniLM-mined SciFact negatives, ``power=4`` puts 58 % there with ``rescale``
        (more than the untrained student's own softmax, 39 %: the loss would pull the negatives closer) and 22 %
        without it.

        Args:
            model: the SentenceTransformer being trained.
            reference: ``"labels"`` or a frozen SentenceTransformer (not the trained model).
            power: sharpening exponent applied to the rescaled reference similarity, > 0.
            threshold: weights below it become 0, in [0, 1].
            rescale: map cosine similarities from [-1, 1] to [0, 1] with ``(r + 1) / 2`` (the paper's form); turn off
                for scores already in [0, 1] (e.g. a cross-encoder's probabilities). Negative weights are clipped to 0.
            temperature, similarity, num_positive_columns, mask_identical_texts, margin, margin_strategy: as in
                :class:`~negmine.losses.InfoNCE`; masked candidates leave both the softmax and the targets.

        Requirements:
            As :class:`~negmine.losses.InfoNCE`; ``reference="labels"`` needs the ``scores`` column.

        Example:
            >>> loss = CWCL(model, reference=SentenceTransformer("BAAI/bge-base-en-v1.5"), power=4.0)  # doctest: +SKIP
        """
        super().__init__(model, temperature, similarity, num_positive_columns, mask_identical_texts, margin,
                         margin_strategy)
        if isinstance(reference, str):
            if reference != "labels":
                raise ValueError(f"reference={reference!r} is not allowed; expected 'labels' or a frozen "
                                 "SentenceTransformer")
        else:
            check_frozen_reference("reference", reference, model)
            self.reference_model = reference
        check_range("power", power, 0.0, None, low_inclusive=False)
        check_range("threshold", threshold, 0.0, 1.0)
        self.reference = reference
        self.power, self.threshold, self.rescale = float(power), float(threshold), bool(rescale)

    def loss_from_batch(self, batch: CandidateBatch, reference_embeddings: Sequence[Tensor] | None = None,
                        **inputs: Any) -> Tensor:
        weights = self.target_weights(batch, reference_embeddings)
        return soft_target_cross_entropy(batch.logits, weights, batch.positive | batch.negative)

    def target_weights(self, batch: CandidateBatch, reference_embeddings: Sequence[Tensor] | None) -> Tensor:
        """(B, C) unnormalised targets: 1 on positives, ``f(r)`` on negatives, 0 on masked candidates."""
        if isinstance(self.reference, str):
            if batch.reference is None:
                raise ValueError("reference='labels' needs the teacher scores: pass a 'scores' column (it arrives as "
                                 "labels) or a frozen reference model")
            raw = batch.reference
        else:
            if reference_embeddings is None:
                raise ValueError("a reference model is set but no reference_embeddings were given")
            raw = positive_to_candidate_similarity(reference_embeddings, batch)
        return continuous_weights(raw.detach(), batch.positive, batch.negative, self.power, self.threshold,
                                  self.rescale)

    def get_config_dict(self) -> dict[str, Any]:
        reference = self.reference if isinstance(self.reference, str) else type(self.reference).__name__
        return {**self.base_config(), "reference": reference, "power": self.power, "threshold": self.threshold,
                "rescale": self.rescale}

    @property
    def citation(self) -> str:
        return """
@inproceedings{srinivasa2023cwcl,
    title={{CWCL}: Cross-Modal Transfer with Continuously Weighted Contrastive Loss},
    author={Srinivasa, Rakshith Sharma and Cho, Jaejin and Yang, Chouchang and Saidutta, Yashas Malur and
            Lee, Ching-Hua and Shen, Yilin and Jin, Hongxia},
    booktitle={Advances in Neural Information Processing Systems},
    year={2023},
    eprint={2309.14580},
    archivePrefix={arXiv},
    url={https://arxiv.org/abs/2309.14580},
}
"""


def positive_to_candidate_similarity(reference_embeddings: Sequence[Tensor], batch: CandidateBatch) -> Tensor:
    """(B, C) reference cosine between each row's positives (the highest over them) and every candidate."""
    _, ref_candidates = split_columns(reference_embeddings, batch.num_positive_columns)
    ref_candidates = F.normalize(ref_candidates.to(batch.logits.dtype), dim=-1)
    batch_size = batch.batch_size
    best = None
    for column in range(batch.num_positive_columns):
        slots = torch.arange(column * batch_size, (column + 1) * batch_size, device=ref_candidates.device)
        sims = ref_candidates[slots] @ ref_candidates.T  # (B, C)
        valid = batch.positive[torch.arange(batch_size, device=slots.device), slots][:, None]
        sims = torch.where(valid, sims, torch.full_like(sims, float("-inf")))
        best = sims if best is None else torch.maximum(best, sims)
    return best


def continuous_weights(raw: Tensor, positive: Tensor, negative: Tensor, power: float, threshold: float,
                       rescale: bool) -> Tensor:
    weights = (raw + 1.0) / 2.0 if rescale else raw
    weights = torch.nan_to_num(weights, nan=0.0, neginf=0.0, posinf=0.0).clamp(min=0.0)
    weights = weights.pow(power)
    weights = torch.where(weights >= threshold, weights, torch.zeros_like(weights))
    weights = torch.where(negative, weights, torch.zeros_like(weights))
    return torch.where(positive, torch.ones_like(weights), weights)


def soft_target_cross_entropy(logits: Tensor, weights: Tensor, in_list: Tensor) -> Tensor:
    """``-sum_j (w_ij / sum_k w_ik) log softmax_j`` over the candidates in ``in_list``, averaged over rows."""
    lowest = torch.finfo(logits.dtype).min
    log_p = torch.log_softmax(logits.masked_fill(~in_list, lowest), dim=1)
    targets = weights / weights.sum(dim=1, keepdim=True)
    return -(targets * log_p.masked_fill(~in_list, 0.0)).sum(dim=1).mean()
