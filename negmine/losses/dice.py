"""Listwise self-adjusting Dice loss (Li et al., ACL 2020) over each query's candidates, alone or added to InfoNCE."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from negmine.losses._common import check_range
from negmine.losses._masks import CandidateBatch, MarginStrategy, MultiPositive, Similarity
from negmine.losses.infonce import InfoNCE

logger = logging.getLogger(__name__)


class Dice(InfoNCE):
    def __init__(self, model: nn.Module, alpha: float = 0.01, gamma: float = 1.0, square_denominator: bool = True,
                 infonce_weight: float = 0.0, dice_weight: float = 1.0, temperature: float = 0.05,
                 similarity: Similarity = "cosine", num_positive_columns: int = 1,
                 multi_positive: MultiPositive = "mean", mask_identical_texts: bool = True,
                 margin: float | None = None, margin_strategy: MarginStrategy = "absolute",
                 guide: nn.Module | None = None) -> None:
        """Self-adjusting Dice over each query's candidate list, with multi-hot targets for several positives.

        For row ``i`` (docs/methods.md §4), over the row's candidates (positives and unmasked negatives)::

            p_ij = softmax_j(s_ij / temperature)           y_ij = 1 for the row's positives, else 0
            q_ij = (1 - p_ij)^alpha * p_ij                   (self-adjusting factor, focal-like)
            L_i  = 1 - (2 sum_j q_ij y_ij + gamma) / (sum_j q_ij^2 + sum_j y_ij^2 + gamma)     (square_denominator)
            L_i  = 1 - (2 sum_j q_ij y_ij + gamma) / (sum_j q_ij + sum_j y_ij + gamma)         (otherwise)

        The returned loss is ``infonce_weight * InfoNCE + dice_weight * mean_i L_i``: ``infonce_weight=0`` is Dice
        alone, ``infonce_weight=1, dice_weight=lambda`` is ``InfoNCE + lambda * Dice`` (the recommended use; both terms
        share one similarity matrix and the same false-negative masks).

        Args:
            model: the SentenceTransformer being trained.
            alpha: self-adjusting exponent, >= 0 (0 is plain soft Dice; the authors' scripts use 0.01).
            gamma: smoothing, >= 0 (the authors' scripts use 1).
            square_denominator: squared (V-Net) denominator, as in the authors' ``--dice_square`` runs.
            infonce_weight: weight of the InfoNCE term, >= 0.
            dice_weight: weight ``lambda`` of the Dice term, >= 0 (0.1 to 1 when added to InfoNCE).
            temperature, similarity, num_positive_columns, multi_positive, mask_identical_texts, margin,
                margin_strategy, guide: as in :class:`~negmine.losses.InfoNCE` (``multi_positive`` only affects
                the InfoNCE term).

        Requirements:
            As :class:`~negmine.losses.InfoNCE`.

        Example:
            >>> loss = Dice(model, alpha=0.01, gamma=1.0, infonce_weight=1.0, dice_weight=0.5)  # doctest: +SKIP
        """
        super().__init__(model, temperature, similarity, num_positive_columns, multi_positive, False,
                         mask_identical_texts, margin, margin_strategy, guide)
        check_range("alpha", alpha, 0.0, None)
        check_range("gamma", gamma, 0.0, None)
        check_range("infonce_weight", infonce_weight, 0.0, None)
        check_range("dice_weight", dice_weight, 0.0, None)
        if infonce_weight == 0 and dice_weight == 0:
            raise ValueError("infonce_weight=0 and dice_weight=0 leave no loss; set at least one of them > 0")
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.square_denominator = bool(square_denominator)
        self.infonce_weight, self.dice_weight = float(infonce_weight), float(dice_weight)

    def loss_from_batch(self, batch: CandidateBatch, **inputs: Any) -> Tensor:
        loss = batch.logits.new_zeros(())
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * dice_loss(batch.logits, batch.positive, batch.negative, self.alpha,
                                                       self.gamma, self.square_denominator)
        if self.infonce_weight > 0:
            loss = loss + self.infonce_weight * super().loss_from_batch(batch, **inputs)
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        config = {**super().get_config_dict(), "alpha": self.alpha, "gamma": self.gamma,
                  "square_denominator": self.square_denominator, "infonce_weight": self.infonce_weight,
                  "dice_weight": self.dice_weight}
        config.pop("symmetric", None)
        return config

    @property
    def citation(self) -> str:
        return """
@inproceedings{li2020dice,
    title={Dice Loss for Data-imbalanced {NLP} Tasks},
    author={Li, Xiaoya and Sun, Xiaofei and Meng, Yuxian and Liang, Junjun and Wu, Fei and Li, Jiwei},
    booktitle={Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics},
    pages={465--476},
    year={2020},
    eprint={1911.02855},
    archivePrefix={arXiv},
    url={https://arxiv.org/abs/1911.02855},
}
"""


def dice_loss(logits: Tensor, positive: Tensor, negative: Tensor, alpha: float, gamma: float,
              square_denominator: bool = True) -> Tensor:
    """Mean over rows of the listwise self-adjusting Dice loss; candidates outside ``positive | negative`` are out."""
    in_list = positive | negative
    lowest = torch.finfo(logits.dtype).min
    p = torch.softmax(logits.masked_fill(~in_list, lowest), dim=1).masked_fill(~in_list, 0.0)
    # (1 - p) is kept above the smallest normal number so that (1 - p)^alpha has a finite gradient at p = 1
    q = (1.0 - p).clamp(min=torch.finfo(p.dtype).tiny).pow(alpha) * p if alpha != 0 else p
    y = positive.to(logits.dtype)
    intersection = (q * y).sum(dim=1)
    if square_denominator:
        denominator = (q * q).sum(dim=1) + (y * y).sum(dim=1) + gamma
    else:
        denominator = q.sum(dim=1) + y.sum(dim=1) + gamma
    return (1.0 - (2.0 * intersection + gamma) / denominator).mean()
