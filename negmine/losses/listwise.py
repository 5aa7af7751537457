"""Listwise distillation (Tamber et al. 2025; RocketQAv2): KL(teacher softmax || student softmax) per query, over
the query's own positives and hard negatives, optionally added to InfoNCE over in-batch negatives."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from negmine.losses._common import CandidateLoss, check_choice, check_range
from negmine.losses._masks import CandidateBatch, MarginStrategy, MultiPositive, Similarity, contrastive_nll

logger = logging.getLogger(__name__)


class ListwiseDistillation(CandidateLoss):
    def __init__(self, model: nn.Module, temperature: float = 0.05, teacher_temperature: float = 0.05,
                 similarity: Similarity = "cosine", num_positive_columns: int = 1, kl_weight: float = 1.0,
                 infonce_weight: float = 0.0, multi_positive: MultiPositive = "mean",
                 mask_identical_texts: bool = True, margin: float | None = None,
                 margin_strategy: MarginStrategy = "absolute") -> None:
        """Listwise KL distillation from precomputed teacher scores, optionally plus InfoNCE.

        For query ``i`` with its own candidate list ``L_i`` (its valid positives and its hard negatives, masked
        negatives left out), student similarities ``s_ij`` and teacher scores ``y_ij`` (the ``scores`` column)::

            p^T_ij = softmax_{j in L_i}(y_ij / teacher_temperature)
            p^S_ij = softmax_{j in L_i}(s_ij / temperature)
            L      = kl_weight * mean_i KL(p^T_i || p^S_i) + infonce_weight * InfoNCE

        The KL term sees only the row's own candidates (the teacher never scored in-batch pairs); the optional
        InfoNCE term is :class:`~negmine.losses.InfoNCE` (same ``temperature``, in-batch negatives, the same masks
        and multi-positive handling). Tamber et al. (2025, arXiv 2502.19712 and 2505.19274) find this listwise KL
        from a stronger teacher gives consistent gains where contrastive fine-tuning of strong small embedders hurts;
        RocketQAv2 (Ren et al. 2021) distils listwise the same way.

        Against sentence-transformers' ``DistillKLDivLoss``: with one positive column, no masks, ``similarity="dot"``,
        ``temperature`` = ST's ``student_temperature``, ``teacher_temperature`` = ST's ``teacher_temperature`` (both
        ST's ``temperature`` before ST 6.3), ``kl_weight = temperature ** 2`` and ``infonce_weight = 0`` the two are
        equal (ST multiplies its KL by the student temperature squared; ST's ``labels`` are the raw teacher scores
        ``[positive, negatives...]``, the same as negmine's ``scores`` column). negmine adds: several positives per
        row (each in the list with its teacher score; spare slots with a ``NaN`` score or a repeated text are left
        out), negatives with an unknown (``NaN``) teacher score left out of the list, the identical-text and
        positive-aware margin masks (``margin=0`` drops negatives the teacher ranks above the positive), the InfoNCE
        term over in-batch negatives, and a KL weight that is not tied to the temperature (at a cosine student's
        ``temperature=0.05`` ST's ``T ** 2`` factor shrinks the KL 400 times).

        Args:
            model: the SentenceTransformer being trained.
            temperature: the student's softmax temperature (also InfoNCE's); 0.05 is MNRL's ``scale=20``.
            teacher_temperature: the temperature of the teacher's softmax over its scores; for cosine teachers
                about the student's, for cross-encoder logits about 1.
            similarity: ``"cosine"`` (default) or ``"dot"``.
            num_positive_columns: ``P``, how many columns after the anchor hold positives.
            kl_weight: weight of the KL term (>= 0). Hinton's ``T ** 2`` scaling is not applied; pass
                ``kl_weight=T ** 2`` for it.
            infonce_weight: weight of the InfoNCE term over in-batch and hard negatives (>= 0; 0: pure distillation).
            multi_positive: InfoNCE's combination of several positives (``"mean"`` or ``"sum"``).
            mask_identical_texts: leave out of the list (and of InfoNCE) negatives whose text equals the anchor or a
                positive of the row.
            margin: if set, negatives whose teacher score is above the row's lowest positive teacher score minus
                ``margin`` are left out (``margin=0``: the teacher ranks them above the positive, a likely false
                negative).
            margin_strategy: ``"absolute"`` or ``"relative"``, as in :class:`~negmine.losses.InfoNCE`.

        Requirements:
            Columns ``(anchor, positive_1..positive_P, negative_1..negative_n)`` and a ``scores`` column with
            ``P + n`` teacher scores per row (it arrives as ``labels``). Use ``BatchSamplers.NO_DUPLICATES``.

        Example:
            >>> loss = ListwiseDistillation(model, temperature=0.05, teacher_temperature=0.02, infonce_weight=0.1)
            ... # doctest: +SKIP
        """
        super().__init__(model, temperature, similarity, num_positive_columns, mask_identical_texts, margin,
                         margin_strategy)
        check_range("teacher_temperature", teacher_temperature, 0.0, None, low_inclusive=False)
        check_range("kl_weight", kl_weight, 0.0, None)
        check_range("infonce_weight", infonce_weight, 0.0, None)
        check_choice("multi_positive", multi_positive, ("mean", "sum"))
        self.teacher_temperature = float(teacher_temperature)
        self.kl_weight = float(kl_weight)
        self.infonce_weight = float(infonce_weight)
        self.multi_positive = multi_positive

    def loss_from_batch(self, batch: CandidateBatch, labels: Tensor | None = None, **inputs: Any) -> Tensor:
        if labels is None:
            raise ValueError("ListwiseDistillation needs teacher scores: a 'scores' column (it arrives as labels) "
                             "with one score per positive and negative column")
        loss = batch.logits.new_zeros(())
        if self.kl_weight > 0:
            loss = loss + self.kl_weight * listwise_kl(batch, labels, self.teacher_temperature)
        if self.infonce_weight > 0:
            loss = loss + self.infonce_weight * contrastive_nll(batch.logits, batch.positive, batch.negative,
                                                                self.multi_positive)
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.base_config(), "teacher_temperature": self.teacher_temperature, "kl_weight": self.kl_weight,
                "infonce_weight": self.infonce_weight, "multi_positive": self.multi_positive}

    @property
    def citation(self) -> str:
        return """
@misc{tamber2025teaching,
    title={Teaching Dense Retrieval Models to Specialize with Listwise Distillation and LLM Data Augmentation},
    author={Manveer Singh Tamber and Suleman Kazi and Vivek Sourabh and Jimmy Lin},
    year={2025},
    eprint={2502.19712},
    archivePrefix={arXiv},
    primaryClass={cs.IR},
    url={https://arxiv.org/abs/2502.19712},
}
@inproceedings{ren2021rocketqav2,
    title={RocketQAv2: A Joint Training Method for Dense Passage Retrieval and Passage Re-ranking},
    author={Ren, Ruiyang and Qu, Yingqi and Liu, Jing and Zhao, Wayne Xin and She, Qiaoqiao and Wu, Hua and
            Wang, Haifeng and Wen, Ji-Rong},
    booktitle={Proceedings of the 2021 Conference on Empirical Methods in Natural Language Processing},
    year={2021},
    url={https://aclanthology.org/2021.emnlp-main.224},
}
"""


def own_columns(matrix: Tensor, batch_size: int) -> Tensor:
    """``(B, C)`` with ``C = B * K`` column-major candidates -> ``(B, K)``: each row's own candidates, in order."""
    num_columns = matrix.size(1) // batch_size
    return torch.diagonal(matrix.view(batch_size, num_columns, batch_size), dim1=0, dim2=2).T


def own_list(batch: CandidateBatch, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(student_logits, teacher_scores, in_list)``, each ``(B, P + N)``: the row's own candidates, and which of
    them form its list (valid positives and unmasked negatives with a known teacher score)."""
    batch_size = batch.batch_size
    student = own_columns(batch.logits, batch_size)
    teacher = torch.as_tensor(labels, device=student.device).to(student.dtype)
    in_list = (own_columns(batch.positive, batch_size) | own_columns(batch.negative, batch_size))
    in_list &= ~torch.isnan(teacher)
    return student, teacher, in_list


def listwise_kl(batch: CandidateBatch, labels: Tensor, teacher_temperature: float) -> Tensor:
    """``mean_i KL(softmax(y_i / T_t) || softmax(s_i))`` over each row's list (``s`` already scaled)."""
    student, teacher, in_list = own_list(batch, labels)
    lowest = torch.finfo(student.dtype).min
    log_p_student = torch.log_softmax(student.masked_fill(~in_list, lowest), dim=1)
    log_p_teacher = torch.log_softmax((teacher / teacher_temperature).masked_fill(~in_list, lowest), dim=1).detach()
    terms = torch.where(in_list, log_p_teacher.exp() * (log_p_teacher - log_p_student),
                        torch.zeros_like(student))
    return terms.sum(dim=1).mean()
