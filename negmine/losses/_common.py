"""The base class of negmine's contrastive losses (:class:`CandidateLoss`), parameter checks, and how the columns are
embedded: the trained model through the sentence-transformers seam (:mod:`negmine._st_compat`), text keys for
identical-text masking, and frozen reference models.

The input convention (columns, the candidate matrix, labels) and the masks are in :mod:`negmine.losses._masks`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from negmine._st_compat import embed_columns
from negmine.losses._masks import (
    CandidateBatch,
    MarginStrategy,
    Similarity,
    identical_text_mask,
    labels_matrix,
    margin_mask,
    own_positive_slots,
    positive_mask,
    similarity,
    split_columns,
)

logger = logging.getLogger(__name__)

# token-id keys shared by the features of sentence-transformers text models
_TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


# --------------------------------------------------------------------------------------------------------------------
# parameter validation
# --------------------------------------------------------------------------------------------------------------------


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise ``ValueError`` naming the parameter, the bad value and the allowed values."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {', '.join(map(repr, allowed))}")


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """Raise ``ValueError`` unless ``low (<|<=) value (<|<=) high``; the message names the parameter and the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None
    ok = number == number  # not NaN
    if ok and low is not None:
        ok = number >= low if low_inclusive else number > low
    if ok and high is not None:
        ok = number <= high if high_inclusive else number < high
    if not ok:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name}={value!r} is out of range; expected a value in {left}{lo}, {hi}{right}")


def check_int(name: str, value: Any, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed; expected an integer >= {low}")


# --------------------------------------------------------------------------------------------------------------------
# embedding the columns
# --------------------------------------------------------------------------------------------------------------------


def embed(model: nn.Module, features: list[dict[str, Any]]) -> list[Tensor]:
    """One ``sentence_embedding`` per column, using sentence-transformers' merged forward when it is available."""
    return embed_columns(model, features)


def float32_columns(embeddings: Sequence[Tensor]) -> list[Tensor]:
    """The embedding columns with bf16/fp16 ones (mixed-precision training) in float32; float32 and float64 ones
    (tests' references) unchanged."""
    return [e.float() if e.dtype in (torch.bfloat16, torch.float16) else e for e in embeddings]


def float32_math(embeddings: Sequence[Tensor]) -> Any:
    """A context in which autocast is off, so that under mixed precision the similarities, softmaxes and their
    gradients stay in float32: a bf16 cosine carries about 3 digits, which at temperature 0.05 is a logit error of
    about 0.02, the size of a teacher's preference between two close negatives."""
    return torch.autocast(device_type=embeddings[0].device.type, enabled=False)


def text_keys(features: Sequence[dict[str, Any]]) -> list[Tensor] | None:
    """An integer per row and column such that two texts get the same key iff their token ids are identical.

    Padding is ignored (only positions with ``attention_mask == 1`` count), so the same text padded to different
    lengths in different columns still matches. Returns ``None`` for non-text features (nothing to compare).
    """
    if not features or any("input_ids" not in f for f in features):
        return None
    ids_of: dict[tuple[int, ...], int] = {}
    keys = []
    for f in features:
        input_ids = f["input_ids"].tolist()
        mask = f["attention_mask"].tolist() if "attention_mask" in f else [[1] * len(r) for r in input_ids]
        column = []
        for ids, m in zip(input_ids, mask):
            token_tuple = tuple(t for t, keep in zip(ids, m) if keep)
            column.append(ids_of.setdefault(token_tuple, len(ids_of)))
        keys.append(torch.tensor(column, dtype=torch.long, device=f["input_ids"].device))
    return keys


def reference_embeddings(reference: nn.Module, model: nn.Module, features: Sequence[dict[str, Any]]) -> list[Tensor]:
    """Embeddings of every column by a frozen reference model (no gradient, eval mode for the call).

    The reference re-uses the token ids when it has the same vocabulary as the trained model; otherwise the texts
    are decoded with the trained model's tokenizer and tokenized again by the reference.
    """
    same_vocab = _same_vocabulary(model, reference)
    was_training = reference.training
    reference.eval()
    try:
        with torch.no_grad():
            if same_vocab:
                columns = [{k: v for k, v in f.items() if k in _TEXT_KEYS} for f in features]
            else:
                columns = []
                for f in features:
                    texts = model.tokenizer.batch_decode(f["input_ids"], skip_special_tokens=True)
                    tokenize = reference.preprocess if hasattr(reference, "preprocess") else reference.tokenize
                    device = f["input_ids"].device
                    columns.append({k: v.to(device) for k, v in tokenize(texts).items() if isinstance(v, Tensor)})
            return [reference(c)["sentence_embedding"].detach() for c in columns]
    finally:
        reference.train(was_training)


def _same_vocabulary(model: nn.Module, reference: nn.Module) -> bool:
    tok_a, tok_b = getattr(model, "tokenizer", None), getattr(reference, "tokenizer", None)
    if tok_a is None or tok_b is None:
        return True
    if tok_a is tok_b:
        return True
    try:
        return tok_a.get_vocab() == tok_b.get_vocab()
    except (AttributeError, NotImplementedError):
        return False


def check_frozen_reference(name: str, reference: nn.Module, model: nn.Module) -> None:
    """A reference must be a separate, frozen model: estimating relevance with the trained model is circular."""
    if reference is model:
        raise ValueError(f"{name} is the model being trained; it must be a separate, frozen model (a circular "
                         "estimate makes the weights follow the model's own mistakes)")
    if not isinstance(reference, nn.Module):
        raise ValueError(f"{name}={type(reference).__name__} is not allowed; expected a SentenceTransformer")
    reference.requires_grad_(False)


class CandidateLoss(nn.Module):
    """Base of negmine's losses: parameters shared by all of them and the (B, C) candidate batch they work on.

    Subclasses implement :meth:`loss_from_batch`. ``forward`` embeds the columns (sentence-transformers' merged
    forward), computes text keys from the token ids and, when the loss has a frozen reference model, the reference
    embeddings; then calls :meth:`compute_loss_from_embeddings`.
    """

    def __init__(self, model: nn.Module, temperature: float = 0.05, similarity: Similarity = "cosine",
                 num_positive_columns: int = 1, mask_identical_texts: bool = True, margin: float | None = None,
                 margin_strategy: MarginStrategy = "absolute") -> None:
        super().__init__()
        # an instance attribute, not a class one: nn.Module keeps a module-valued attribute in ``_modules`` and
        # reaches it through ``__getattr__``, which a class attribute of the same name would shadow (forward would
        # then never compute the reference embeddings of a frozen guide / estimator / reference model)
        self.reference_model: nn.Module | None = None
        check_range("temperature", temperature, 0.0, None, low_inclusive=False)
        check_choice("similarity", similarity, ("cosine", "dot"))
        check_int("num_positive_columns", num_positive_columns, low=1)
        check_choice("margin_strategy", margin_strategy, ("absolute", "relative"))
        if margin is not None:
            check_range("margin", margin, 0.0 if margin_strategy == "relative" else None, None)
        self.model = model
        self.temperature = float(temperature)
        self.similarity = similarity
        self.num_positive_columns = num_positive_columns
        self.mask_identical_texts = bool(mask_identical_texts)
        self.margin = margin
        self.margin_strategy = margin_strategy

    @property
    def scale(self) -> float:
        return 1.0 / self.temperature

    # ---- forward -----------------------------------------------------------------------------------------------

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        inputs = self.collect_inputs(features)
        embeddings = embed(self.model, features)
        return self.compute_loss_from_embeddings(embeddings, labels, **inputs)

    def collect_inputs(self, features: list[dict[str, Tensor]]) -> dict[str, Any]:
        """What the loss needs besides the embeddings: text keys, reference embeddings, extra inputs (BM25)."""
        inputs: dict[str, Any] = {}
        if self.mask_identical_texts or self.num_positive_columns > 1:
            inputs["text_keys"] = text_keys(features)
        if self.reference_model is not None:
            inputs["reference_embeddings"] = reference_embeddings(self.reference_model, self.model, features)
        inputs.update(self.extra_inputs(features))
        return inputs

    def extra_inputs(self, features: list[dict[str, Tensor]]) -> dict[str, Any]:
        """Hook for inputs computed from the raw features (BM25 scores). Default: none."""
        return {}

    def compute_loss_from_embeddings(self, embeddings: Sequence[Tensor], labels: Tensor | None = None, *,
                                     text_keys: Sequence[Tensor] | None = None,
                                     reference_embeddings: Sequence[Tensor] | None = None,
                                     reference_scores: Tensor | None = None) -> Tensor:
        """The loss from per-column embeddings (tests call this directly on hand-made tensors).

        Args:
            embeddings: ``[anchors, positive_1..positive_P, negative_1..negative_N]``, each ``(B, dim)``.
            labels: optional ``(B, P + N)`` teacher scores of each row's own candidates (the ``scores`` column).
            text_keys: optional per-column ``(B,)`` integer keys, equal iff the texts are identical.
            reference_embeddings: optional per-column embeddings by a frozen reference model.
            reference_scores: optional ``(B, C)`` frozen relevance of every query-candidate pair (e.g. BM25).
        """
        embeddings = float32_columns(embeddings)
        with float32_math(embeddings):
            batch = self.build_batch(embeddings, labels, text_keys, reference_embeddings, reference_scores)
            return self.loss_from_batch(batch, labels=labels, reference_embeddings=reference_embeddings)

    def loss_from_batch(self, batch: CandidateBatch, **inputs: Any) -> Tensor:
        raise NotImplementedError

    # ---- the candidate batch -----------------------------------------------------------------------------------

    def build_batch(self, embeddings: Sequence[Tensor], labels: Tensor | None = None,
                    keys: Sequence[Tensor] | None = None, reference_embeddings: Sequence[Tensor] | None = None,
                    reference_scores: Tensor | None = None) -> CandidateBatch:
        anchors, candidates = split_columns(embeddings, self.num_positive_columns)
        batch_size, device = anchors.size(0), anchors.device
        num_columns = candidates.size(0) // batch_size
        if labels is not None:
            labels = torch.as_tensor(labels, device=device)
            if labels.dim() != 2 or labels.size(0) != batch_size or labels.size(1) != num_columns:
                raise ValueError(f"labels of shape {tuple(labels.shape)} do not match the batch: expected "
                                 f"({batch_size}, {num_columns}) teacher scores, one per candidate column (positives "
                                 "then negatives)")
        anchor_keys = candidate_keys = None
        if keys is not None:
            keys = list(keys)
            if len(keys) != len(embeddings):
                raise ValueError(f"got {len(keys)} text-key columns for {len(embeddings)} embedding columns")
            anchor_keys, candidate_keys = keys[0], torch.cat(keys[1:])
        positive = positive_mask(batch_size, num_columns, self.num_positive_columns, device, candidate_keys, labels)
        negative = ~own_positive_slots(batch_size, num_columns, self.num_positive_columns, device)  # spare slots out
        if self.mask_identical_texts and anchor_keys is not None:
            negative &= ~identical_text_mask(positive, anchor_keys, candidate_keys)
        reference = self.reference_matrix(anchors, labels, batch_size, num_columns, reference_embeddings,
                                          reference_scores)
        if self.margin is not None and reference is not None:
            negative &= ~margin_mask(reference, positive, self.margin, self.margin_strategy)
        logits = similarity(anchors, candidates, self.similarity) * self.scale
        return CandidateBatch(anchors, candidates, logits, positive, negative, reference, self.num_positive_columns,
                              anchor_keys, candidate_keys)

    def reference_matrix(self, anchors: Tensor, labels: Tensor | None, batch_size: int, num_columns: int,
                         reference_embeddings: Sequence[Tensor] | None,
                         reference_scores: Tensor | None) -> Tensor | None:
        """(B, C) frozen relevance: given scores, else the reference model's cosine, else the labels (NaN-padded)."""
        dtype = anchors.dtype
        if reference_scores is not None:
            expected = (batch_size, batch_size * num_columns)
            if tuple(reference_scores.shape) != expected:
                raise ValueError(f"reference_scores has shape {tuple(reference_scores.shape)}; expected {expected}")
            return reference_scores.to(device=anchors.device, dtype=dtype).detach()
        if reference_embeddings is not None:
            reference = float32_columns(reference_embeddings)
            ref_anchors, ref_candidates = split_columns(reference, self.num_positive_columns)
            return similarity(ref_anchors, ref_candidates, "cosine").to(dtype).detach()
        return labels_matrix(labels, batch_size, num_columns, anchors.device, dtype)

    def base_config(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "similarity": self.similarity,
            "num_positive_columns": self.num_positive_columns,
            "mask_identical_texts": self.mask_identical_texts,
            "margin": self.margin,
            "margin_strategy": self.margin_strategy,
        }
