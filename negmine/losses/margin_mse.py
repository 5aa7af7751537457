"""MarginMSE (Hofstätter et al. 2020): the student's positive-negative score margin regressed on the teacher's."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from negmine.losses._common import CandidateLoss
from negmine.losses._masks import CandidateBatch, MarginStrategy, Similarity
from negmine.losses.listwise import own_list

logger = logging.getLogger(__name__)


class MarginMSE(CandidateLoss):
    def __init__(self, model: nn.Module, similarity: Similarity = "dot", num_positive_columns: int = 1,
                 mask_identical_texts: bool = True, margin: float | None = None,
                 margin_strategy: MarginStrategy = "absolute") -> None:
        """Margin-MSE distillation from precomputed teacher scores.

        For query ``i``, each of its valid positives ``p`` and each of its own (unmasked) hard negatives ``n`` with a
        known teacher score, with student similarities ``s`` (no temperature) and teacher scores ``y``::

            L_i = mean_{p, n} ((s_ip - s_in) - (y_ip - y_in))^2,        L = mean_i L_i

        Only the row's own candidates enter (the teacher never scored in-batch pairs).

        Against sentence-transformers' ``MarginMSELoss``: with one positive column, no masks and
        ``similarity="dot"`` (both defaults' similarity) the two are equal; ST's ``labels`` are the teacher's margins
        ``y_p - y_n`` (``(B, n)``) or, in recent versions, the raw scores ``(B, n + 1)``; negmine's ``scores``
        column holds the raw teacher scores ``[y_p, y_n...]`` and the margins are taken inside. negmine adds several
        positives per row (every positive-negative pair, each query weighted equally; spare slots with a ``NaN``
        score or a repeated text left out), negatives with an unknown (``NaN``) teacher score left out, and the
        identical-text and positive-aware margin masks.

        Args:
            model: the SentenceTransformer being trained.
            similarity: ``"dot"`` (default, as Hofstätter et al. and ST) or ``"cosine"``.
            num_positive_columns: ``P``, how many columns after the anchor hold positives.
            mask_identical_texts: leave out negatives whose text equals the anchor or a positive of the row.
            margin: if set, negatives whose teacher score exceeds the row's lowest positive teacher score minus
                ``margin`` are left out (``margin=0``: the teacher ranks them above the positive).
            margin_strategy: ``"absolute"`` or ``"relative"``.

        Requirements:
            Columns ``(anchor, positive_1..positive_P, negative_1..negative_n)`` and a ``scores`` column with
            ``P + n`` teacher scores per row (it arrives as ``labels``); the teacher's score scale matters (the
            student regresses its margins), so a cosine student pairs best with a cosine teacher.

        Example:
            >>> loss = MarginMSE(model)  # doctest: +SKIP
        """
        super().__init__(model, 1.0, similarity, num_positive_columns, mask_identical_texts, margin,
                         margin_strategy)

    def loss_from_batch(self, batch: CandidateBatch, labels: Tensor | None = None, **inputs: Any) -> Tensor:
        if labels is None:
            raise ValueError("MarginMSE needs teacher scores: a 'scores' column (it arrives as labels) with one "
                             "score per positive and negative column")
        student, teacher, in_list = own_list(batch, labels)
        num_pos = batch.num_positive_columns
        teacher = torch.nan_to_num(teacher)  # NaN slots are out of the list; keep them out of the arithmetic
        s_pos, s_neg = student[:, :num_pos], student[:, num_pos:]
        t_pos, t_neg = teacher[:, :num_pos], teacher[:, num_pos:]
        pairs = in_list[:, :num_pos, None] & in_list[:, None, num_pos:]  # (B, P, N)
        diff = (s_pos[:, :, None] - s_neg[:, None, :]) - (t_pos[:, :, None] - t_neg[:, None, :])
        squared = torch.where(pairs, diff.square(), torch.zeros_like(diff)).sum(dim=(1, 2))
        count = pairs.sum(dim=(1, 2))
        has_pairs = count > 0
        if not bool(has_pairs.any()):
            return student.sum() * 0.0
        return (squared[has_pairs] / count[has_pairs].to(student.dtype)).mean()

    def get_config_dict(self) -> dict[str, Any]:
        config = self.base_config()
        config.pop("temperature")
        return config

    @property
    def citation(self) -> str:
        return """
@misc{hofstaetter2020improving,
    title={Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation},
    author={Sebastian Hofst{\\"a}tter and Sophia Althammer and Michael Schr{\\"o}der and Mete Sertkan and
            Allan Hanbury},
    year={2020},
    eprint={2010.02666},
    archivePrefix={arXiv},
    primaryClass={cs.IR},
    url={https://arxiv.org/abs/2010.02666},
}
"""
