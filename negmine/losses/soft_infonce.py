"""Soft-InfoNCE (Li et al., EMNLP 2023): InfoNCE with a weight per negative from a frozen relevance estimator."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from negmine.losses._common import check_frozen_reference, check_range
from negmine.losses._masks import CandidateBatch, MarginStrategy, MultiPositive, Similarity
from negmine.losses.infonce import InfoNCE

logger = logging.getLogger(__name__)

ESTIMATORS = ("labels", "bm25")


class SoftInfoNCE(InfoNCE):
    def __init__(self, model: nn.Module, estimator: str | nn.Module = "labels", alpha: float = 1.0,
                 beta: float = 1.0, t: float = 1.0, w_min: float = 0.1, temperature: float = 0.05,
                 similarity: Similarity = "cosine", num_positive_columns: int = 1,
                 multi_positive: MultiPositive = "mean", symmetric: bool = False, mask_identical_texts: bool = True,
                 margin: float | None = None, margin_strategy: MarginStrategy = "absolute", bm25_k1: float = 1.2,
                 bm25_b: float = 0.75, bm25_avg_len: float | None = None) -> None:
        """Soft-InfoNCE: negatives that a frozen estimator finds relevant are pushed away less.

        For row ``i`` with negatives ``N_i`` (``|N_i| = N``) and frozen relevance estimates ``m_ij``
        (docs/methods.md §3)::

            p_ij = softmax_{j in N_i}(m_ij / t)
            w_ij = max(w_min, (beta - alpha * p_ij) / (beta - alpha / N))      # average 1 before clipping
            L_i  = -log( e^{s_ii} / (e^{s_ii} + sum_{j in N_i} w_ij e^{s_ij}) )

        ``alpha = 0`` gives ``w = 1``: exactly :class:`~negmine.losses.InfoNCE` (same masks, same multi-positive
        handling). The positive's weight is 1. With ``symmetric=True`` the document-to-query term is unweighted.

        Args:
            model: the SentenceTransformer being trained.
            estimator: the frozen relevance estimate ``m``: ``"labels"`` - the mined teacher scores (the ``scores``
                column); in-batch pairs, which the teacher never scored, get the lowest known negative score of the row
                (so they are treated as the easiest negatives) -; ``"bm25"`` - token-id BM25 between the query and
                each candidate of the batch (IDF over the batch's candidates); or a frozen SentenceTransformer (not
                the trained model) whose cosine ``m_ij = cos(q_i, c_j)`` is used.
            alpha: ``weight_kl`` in the authors' code, >= 0; 0 turns the weighting off.
            beta: ``weight_unif``, > 0; needs ``beta > alpha / N`` for every row.
            t: temperature of the estimator's softmax, > 0.
            w_min: lower clip of the weights, in [0, 1] (the authors use 0.1).
            temperature: the model's softmax temperature (``scale = 1/temperature``).
            similarity, num_positive_columns, multi_positive, symmetric, mask_identical_texts, margin,
                margin_strategy: as in :class:`~negmine.losses.InfoNCE` (the margin uses the estimator's scores).
            bm25_k1, bm25_b: BM25 parameters.
            bm25_avg_len: average candidate length in tokens; default the batch's mean (the authors used the
                train set's mean; pass it for the same behaviour).

        Requirements:
            As :class:`~negmine.losses.InfoNCE`; ``estimator="labels"`` needs the ``scores`` column.

        Example:
            >>> loss = SoftInfoNCE(model, estimator="labels", alpha=1.0, beta=1.0, t=1.0)  # doctest: +SKIP
        """
        super().__init__(model, temperature, similarity, num_positive_columns, multi_positive, symmetric,
                         mask_identical_texts, margin, margin_strategy)
        if isinstance(estimator, str):
            if estimator not in ESTIMATORS:
                allowed = ", ".join(map(repr, ESTIMATORS))
                raise ValueError(f"estimator={estimator!r} is not allowed; expected one of {allowed} "
                                 "or a frozen SentenceTransformer")
        else:
            check_frozen_reference("estimator", estimator, model)
            self.reference_model = estimator
        check_range("alpha", alpha, 0.0, None)
        check_range("beta", beta, 0.0, None, low_inclusive=False)
        check_range("t", t, 0.0, None, low_inclusive=False)
        check_range("w_min", w_min, 0.0, 1.0)
        check_range("bm25_k1", bm25_k1, 0.0, None)
        check_range("bm25_b", bm25_b, 0.0, 1.0)
        if bm25_avg_len is not None:
            check_range("bm25_avg_len", bm25_avg_len, 0.0, None, low_inclusive=False)
        self.estimator = estimator
        self.alpha, self.beta, self.t, self.w_min = float(alpha), float(beta), float(t), float(w_min)
        self.bm25_k1, self.bm25_b, self.bm25_avg_len = float(bm25_k1), float(bm25_b), bm25_avg_len

    def extra_inputs(self, features: list[dict[str, Tensor]]) -> dict[str, Any]:
        if self.estimator != "bm25":
            return {}
        tokenizer = getattr(self.model, "tokenizer", None)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        queries = _token_lists(features[:1], special)
        candidates = _token_lists(features[1:], special)
        scores = bm25_scores(queries, candidates, self.bm25_k1, self.bm25_b, self.bm25_avg_len)
        return {"reference_scores": scores.to(features[0]["input_ids"].device)}

    def negative_log_weights(self, batch: CandidateBatch, **inputs: Any) -> Tensor | None:
        if batch.reference is None:
            raise ValueError(f"estimator={self.estimator!r} has nothing to estimate from: pass a 'scores' column "
                             "(it arrives as labels), use estimator='bm25', or a frozen model")
        weights = soft_weights(batch.reference, batch.negative, self.alpha, self.beta, self.t, self.w_min)
        return torch.log(weights)

    def get_config_dict(self) -> dict[str, Any]:
        estimator = self.estimator if isinstance(self.estimator, str) else type(self.estimator).__name__
        config = {**super().get_config_dict(), "estimator": estimator, "alpha": self.alpha, "beta": self.beta,
                  "t": self.t, "w_min": self.w_min}
        config.pop("guide", None)
        if self.estimator == "bm25":
            config.update(bm25_k1=self.bm25_k1, bm25_b=self.bm25_b, bm25_avg_len=self.bm25_avg_len)
        return config

    @property
    def citation(self) -> str:
        return """
@inproceedings{li2023rethinking,
    title={Rethinking Negative Pairs in Code Search},
    author={Li, Haochen and Zhou, Xin and Luu, Anh Tuan and Miao, Chunyan},
    booktitle={Proceedings of the 2023 Conference on Empirical Methods in Natural Language Processing},
    year={2023},
    eprint={2310.08069},
    archivePrefix={arXiv},
    url={https://arxiv.org/abs/2310.08069},
}
"""


def soft_weights(relevance: Tensor, negative: Tensor, alpha: float, beta: float, t: float, w_min: float) -> Tensor:
    """(B, C) Soft-InfoNCE weights: ``max(w_min, (beta - alpha p) / (beta - alpha / N))`` on negatives, 1 elsewhere.

    ``p`` is the softmax of ``relevance / t`` over each row's negatives; unknown (NaN) estimates take the lowest known
    estimate of the row's negatives (0 when none is known).
    """
    relevance = relevance.detach()
    known = negative & ~torch.isnan(relevance)
    row_min = torch.where(known, relevance, torch.full_like(relevance, float("inf"))).min(dim=1, keepdim=True).values
    row_min = torch.where(torch.isfinite(row_min), row_min, torch.zeros_like(row_min))
    filled = torch.where(torch.isnan(relevance), row_min.expand_as(relevance), relevance)
    scaled = (filled / t).masked_fill(~negative, float("-inf"))
    count = negative.sum(dim=1, keepdim=True)
    has_negatives = count > 0
    p = torch.softmax(torch.where(has_negatives, scaled, torch.zeros_like(scaled)), dim=1)
    denominator = beta - alpha / count.clamp(min=1).to(relevance.dtype)
    if bool((denominator[has_negatives] <= 0).any()):
        worst = int(count[has_negatives].min())
        raise ValueError(f"beta={beta} must exceed alpha / N = {alpha}/{worst} for every row (N = number of negatives "
                         "of the row); raise beta or lower alpha")
    weights = ((beta - alpha * p) / denominator).clamp(min=w_min)
    return torch.where(negative, weights, torch.ones_like(weights))


def _token_lists(features: list[dict[str, Tensor]], special: set[int]) -> list[list[int]]:
    """Token ids of every row of every column (column-major), without padding and special tokens."""
    out = []
    for f in features:
        mask = f.get("attention_mask")
        mask_rows = mask.tolist() if mask is not None else None
        for r, ids in enumerate(f["input_ids"].tolist()):
            keep = mask_rows[r] if mask_rows is not None else [1] * len(ids)
            out.append([t for t, m in zip(ids, keep) if m and t not in special])
    return out


def bm25_scores(queries: list[list[int]], documents: list[list[int]], k1: float = 1.2, b: float = 0.75,
                avg_len: float | None = None) -> Tensor:
    """(Q, D) Okapi BM25 of token-id queries against token-id documents; IDF over ``documents``.

    ``score(q, d) = sum_{t in q} idf(t) * tf(t,d) (k1 + 1) / (tf(t,d) + k1 (1 - b + b |d| / avg_len))`` with
    ``idf(t) = log(1 + (D - df(t) + 0.5) / (df(t) + 0.5))``; a query term repeated ``k`` times counts ``k`` times.
    """
    vocab = {t: i for i, t in enumerate(sorted({t for doc in documents for t in doc}))}
    tf = torch.zeros(len(documents), max(len(vocab), 1), dtype=torch.float64)
    for j, doc in enumerate(documents):
        for token in doc:
            tf[j, vocab[token]] += 1
    qtf = torch.zeros(len(queries), tf.size(1), dtype=torch.float64)
    for i, query in enumerate(queries):
        for token in query:
            if token in vocab:
                qtf[i, vocab[token]] += 1
    lengths = tf.sum(dim=1, keepdim=True)
    avg = float(avg_len) if avg_len is not None else max(float(lengths.mean()), 1e-9)
    df = (tf > 0).sum(dim=0).to(torch.float64)
    idf = torch.log1p((len(documents) - df + 0.5) / (df + 0.5))
    saturation = tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / avg)).clamp(min=1e-12)
    return (qtf * idf) @ saturation.T
