"""The candidate matrix of negmine's losses and its masks: which candidates are a row's positives, which are
negatives, and which in-batch negatives are masked out as likely false negatives. Formulas: docs/methods.md.

Input convention (every loss in this package)
---------------------------------------------
Columns arrive in sentence-transformers' order ``(anchor, positive_1, ..., positive_P, negative_1, ..., negative_N)``,
where ``P = num_positive_columns`` (default 1, which is sentence-transformers' ``(anchor, positive, negative_1..n)``).

* **Several positives per query.** A query with more positives than one (for instance extra positives added by
  relabeling) gets ``P`` positive columns. A query with fewer than ``P`` positives repeats its first positive in the
  spare positive columns; repeated texts inside a row are recognised (from their token ids) and counted once.
  Alternatively a spare slot can be marked with ``NaN`` in the ``scores`` column.
* **Candidates.** All candidate columns of all rows form one candidate matrix ``C``, column-major like
  ``MultipleNegativesRankingLoss``: ``C = [positive_1 of rows 0..B-1, positive_2 of rows 0..B-1, ..., negative_N of
  rows 0..B-1]``. Candidate ``j`` belongs to row ``j % B`` and column ``j // B``. For row ``i`` its own positive
  columns are the positives; everything else (its own hard negatives and every other row's candidates, the in-batch
  negatives) is a negative unless masked.
* **Labels.** A ``scores``/``labels`` column arrives as ``labels``: a ``(B, P + N)`` tensor with the teacher's score
  of each of the row's own candidates in column order (negmine's mining writes ``[pos, neg_1..neg_n]``). Scores of
  in-batch pairs (query ``i`` with a candidate of row ``k != i``) are unknown to the teacher and stay unknown (NaN)
  unless a frozen reference model or BM25 provides them.
* **Masking of in-batch false negatives.** A negative of row ``i`` is removed from its softmax when (a) its text is
  identical (same token ids) to row ``i``'s anchor or one of its positives - this covers "the same document", which
  always has the same text -, or (b) with ``margin`` set, its reference score is above the row's lowest positive
  score minus the margin (GIST / NV-Retriever positive-aware rule: ``absolute``: ``> pos - margin``, ``relative``:
  ``> pos - |pos| * margin``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Similarity = Literal["cosine", "dot"]
MarginStrategy = Literal["absolute", "relative"]
MultiPositive = Literal["mean", "sum"]


def similarity(a: Tensor, b: Tensor, kind: Similarity) -> Tensor:
    """``(n, d) x (m, d) -> (n, m)`` cosine or dot-product similarities."""
    if kind == "cosine":
        a, b = F.normalize(a, p=2, dim=-1), F.normalize(b, p=2, dim=-1)
    return a @ b.T


@dataclass
class CandidateBatch:
    """One batch laid out as a query x candidate matrix. Shapes: B rows, C = B * (P + N) candidates."""

    anchors: Tensor  # (B, d)
    candidates: Tensor  # (C, d), column-major
    logits: Tensor  # (B, C) similarity * scale
    positive: Tensor  # (B, C) bool: the row's valid positives
    negative: Tensor  # (B, C) bool: counted as negatives (neither a positive nor masked)
    reference: Tensor | None  # (B, C) frozen relevance scores (teacher/reference/BM25); NaN = unknown
    num_positive_columns: int
    anchor_keys: Tensor | None  # (B,) text keys of the anchors
    candidate_keys: Tensor | None  # (C,) text keys of the candidates

    @property
    def batch_size(self) -> int:
        return self.anchors.size(0)

    @property
    def num_columns(self) -> int:
        return self.candidates.size(0) // self.batch_size


def split_columns(embeddings: Sequence[Tensor], num_positive_columns: int) -> tuple[Tensor, Tensor]:
    """Check the column count and return ``(anchors (B, d), candidates (C, d))``."""
    embeddings = list(embeddings)
    if len(embeddings) < 1 + num_positive_columns:
        raise ValueError(f"expected at least {1 + num_positive_columns} columns (anchor + {num_positive_columns} "
                         f"positive column(s)), got {len(embeddings)}")
    batch_size = embeddings[0].size(0)
    for k, column in enumerate(embeddings):
        if column.dim() != 2 or column.size(0) != batch_size:
            raise ValueError(f"column {k} has shape {tuple(column.shape)}; expected ({batch_size}, dim)")
    return embeddings[0], torch.cat(embeddings[1:], dim=0)


def own_candidates(batch_size: int, num_columns: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(row_of, column_of)`` of each candidate: candidate ``j`` is column ``j // B`` of row ``j % B``."""
    index = torch.arange(batch_size * num_columns, device=device)
    return index % batch_size, index // batch_size


def own_positive_slots(batch_size: int, num_columns: int, num_positive_columns: int, device: torch.device) -> Tensor:
    """(B, C) bool: row ``i``'s own positive columns, valid or spare."""
    rows, cols = own_candidates(batch_size, num_columns, device)
    return (rows[None, :] == torch.arange(batch_size, device=device)[:, None]) & (cols < num_positive_columns)[None, :]


def labels_matrix(labels: Tensor | None, batch_size: int, num_columns: int, device: torch.device,
                  dtype: torch.dtype) -> Tensor | None:
    """Spread ``labels`` (B, P + N) teacher scores over the (B, C) candidate matrix; in-batch pairs are NaN."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels, device=device)
    if labels.dim() != 2 or labels.size(0) != batch_size or labels.size(1) != num_columns:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not match the batch: expected ({batch_size}, "
                         f"{num_columns}) teacher scores, one per candidate column (positives then negatives)")
    out = torch.full((batch_size, batch_size * num_columns), float("nan"), device=device, dtype=dtype)
    rows, cols = own_candidates(batch_size, num_columns, device)
    out[rows, torch.arange(rows.numel(), device=device)] = labels.to(dtype).T.reshape(-1)
    return out


def positive_mask(batch_size: int, num_columns: int, num_positive_columns: int, device: torch.device,
                  candidate_keys: Tensor | None, labels: Tensor | None) -> Tensor:
    """(B, C) bool: row ``i``'s own positive columns, without repeated texts and without NaN-labelled slots."""
    valid = torch.ones(batch_size, num_positive_columns, dtype=torch.bool, device=device)
    if labels is not None:
        valid &= ~torch.isnan(torch.as_tensor(labels, device=device)[:, :num_positive_columns].float())
    if candidate_keys is not None and num_positive_columns > 1:
        keys = candidate_keys[: batch_size * num_positive_columns].view(num_positive_columns, batch_size).T  # (B, P)
        same = keys[:, :, None] == keys[:, None, :]  # (B, P, P)
        earlier = torch.ones(num_positive_columns, num_positive_columns, dtype=torch.bool, device=device).tril(-1)
        valid &= ~(same & earlier).any(dim=2)  # a slot repeating an earlier positive of the row
    if not bool(valid[:, 0].all()):
        bad = int((~valid[:, 0]).nonzero()[0])
        raise ValueError(f"row {bad} has no first positive (its score is NaN); the first positive column is required")
    out = torch.zeros(batch_size, batch_size * num_columns, dtype=torch.bool, device=device)
    slots = torch.arange(batch_size * num_positive_columns, device=device)  # slot j = column j // B of row j % B
    out[slots % batch_size, slots] = valid.T.reshape(-1)
    return out


def identical_text_mask(positive: Tensor, anchor_keys: Tensor, candidate_keys: Tensor) -> Tensor:
    """(B, C) bool: candidates whose text equals row ``i``'s anchor or one of its positives (not the positives)."""
    same_as_anchor = candidate_keys[None, :] == anchor_keys[:, None]
    pos_keys = torch.where(positive, candidate_keys[None, :], torch.full_like(positive, -1, dtype=torch.long))
    same_as_positive = (candidate_keys[None, :, None] == pos_keys[:, None, :]).any(dim=2)  # (B, C)
    return (same_as_anchor | same_as_positive) & ~positive


def margin_mask(reference: Tensor, positive: Tensor, margin: float, strategy: MarginStrategy) -> Tensor:
    """(B, C) bool: candidates scored above ``pos - margin`` (absolute) or ``pos - |pos| * margin`` (relative).

    ``pos`` is the lowest reference score among the row's positives. Unknown (NaN) scores are never masked.
    """
    pos_scores = torch.where(positive, reference, torch.full_like(reference, float("inf")))
    lowest = pos_scores.min(dim=1, keepdim=True).values
    lowest = torch.where(torch.isfinite(lowest), lowest, torch.full_like(lowest, float("inf")))
    threshold = lowest - margin if strategy == "absolute" else lowest - lowest.abs() * margin
    return (reference > threshold) & ~positive & ~torch.isnan(reference)


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """``logsumexp`` over the entries where ``mask`` is True; rows without any give the dtype's lowest value."""
    lowest = torch.finfo(x.dtype).min
    return torch.logsumexp(x.masked_fill(~mask, lowest), dim=dim)


def contrastive_nll(logits: Tensor, positive: Tensor, negative: Tensor, multi_positive: MultiPositive = "mean",
                    negative_log_weights: Tensor | None = None) -> Tensor:
    """InfoNCE with one or several positives per row, averaged over rows.

    * ``mean``: ``-1/|P_i| * sum_p log( e^{s_ip} / (e^{s_ip} + sum_n w_in e^{s_in}) )`` - each positive against the
      negatives only (the other positives are neither rewarded nor punished). This is SupCon's "out" form.
    * ``sum``: ``-log( sum_p e^{s_ip} / (sum_p e^{s_ip} + sum_n w_in e^{s_in}) )`` - the probability mass on all
      positives.

    With one positive per row both are ``-log softmax`` of the positive, i.e. ``MultipleNegativesRankingLoss``.
    ``negative_log_weights`` (B, C) adds ``log w`` to the negatives' logits (Soft-InfoNCE).
    """
    neg_logits = logits if negative_log_weights is None else logits + negative_log_weights
    neg_lse = masked_logsumexp(neg_logits, negative, dim=1)  # (B,)
    if multi_positive == "sum":
        pos_lse = masked_logsumexp(logits, positive, dim=1)
        return (torch.logaddexp(pos_lse, neg_lse) - pos_lse).mean()
    per_positive = torch.logaddexp(logits, neg_lse[:, None]) - logits  # (B, C), used only where positive
    per_positive = per_positive.masked_fill(~positive, 0.0)
    return (per_positive.sum(dim=1) / positive.sum(dim=1)).mean()
