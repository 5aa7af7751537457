"""The one seam between negmine and the sentence-transformers / transformers versions it runs on.

Every check of "which version is installed, where does it keep X" lives here, so the losses (which import nothing
else of negmine) drop into any sentence-transformers training script, and supporting a new release is a change to
this file only. Nothing is imported until a function is called: ``import negmine`` stays free of torch.

Supported: sentence-transformers 6.x (its ``base`` package: merged forward, evaluator base class, batch samplers)
and 5.x (the older locations); transformers 4.x and 5.x.
"""

from __future__ import annotations

from typing import Any


def embed_columns(model: Any, features: list[dict[str, Any]]) -> list[Any]:
    """One ``sentence_embedding`` per column: sentence-transformers' merged forward (one forward pass over all
    columns) when it exists (>= 6), else one forward per column."""
    try:
        from sentence_transformers.base.losses.merged_forward import embed_columns as merged
    except ImportError:  # older sentence-transformers: one forward per column
        return [model(f)["sentence_embedding"] for f in features]
    return merged(model, features)


def evaluator_base() -> type:
    """The base class of sentence-transformers evaluators (``BaseEvaluator`` in >= 6, ``SentenceEvaluator`` before)."""
    try:
        from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
    except ImportError:  # pragma: no cover - sentence-transformers 5.x
        from sentence_transformers.evaluation import SentenceEvaluator as BaseEvaluator
    return BaseEvaluator


def batch_samplers() -> Any:
    """The ``BatchSamplers`` enum (``NO_DUPLICATES`` ...) of the installed sentence-transformers."""
    try:
        from sentence_transformers.base.sampler import BatchSamplers
    except ImportError:  # pragma: no cover - sentence-transformers 5.x
        from sentence_transformers.training_args import BatchSamplers
    return BatchSamplers


def warmup_arguments(ratio: float) -> dict[str, Any]:
    """Training arguments for a warm-up over ``ratio`` of the steps: transformers v5 takes the ratio as a float
    ``warmup_steps``; v4 as ``warmup_ratio``."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"warmup_steps": float(ratio)}
    return {"warmup_ratio": ratio}


def checkpointing_arguments(enabled: bool) -> dict[str, Any]:
    """Training arguments for activation (gradient) checkpointing: newer transformers name the flag
    ``activation_checkpointing`` and deprecate ``gradient_checkpointing``; older ones know only the latter."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def default_batch_sampler() -> type:
    """``DefaultBatchSampler``, the base class of the batch samplers the trainer accepts through ``batch_sampler``
    (with ``set_epoch``)."""
    try:
        from sentence_transformers.base.sampler import DefaultBatchSampler
    except ImportError:  # pragma: no cover - sentence-transformers 5.x
        from sentence_transformers.sampler import DefaultBatchSampler
    return DefaultBatchSampler
