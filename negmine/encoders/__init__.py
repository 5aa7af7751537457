"""Encoders: the protocol, sentence-transformers and hashing implementations, presets, and the embedding cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from negmine.encoders.base import Encoder
from negmine.encoders.cache import EmbeddingCache, default_cache_dir, encode_in_blocks, is_lazy
from negmine.encoders.hashing import HashingEncoder
from negmine.encoders.presets import (
    PRESETS,
    ResolvedModel,
    RetrieverPreset,
    get_preset,
    resolve_model,
    resolve_model_location,
)

__all__ = [
    "Encoder",
    "EmbeddingCache",
    "HashingEncoder",
    "PRESETS",
    "ResolvedModel",
    "RetrieverPreset",
    "default_cache_dir",
    "get_preset",
    "load_encoder",
    "resolve_model",
    "resolve_model_location",
    "encode_with_cache",
]


PLURAL = {"query": "queries", "document": "documents"}  # progress-bar labels


def load_encoder(
    retriever: Any,
    *,
    model_path: str | os.PathLike | None = None,
    query_prompt: str | None = None,
    corpus_prompt: str | None = None,
    precision: str = "fp32",
    max_seq_length: int | None = None,
    device: str | None = None,
    option: str = "--retriever",
) -> Encoder:
    """Resolve ``--retriever``: an :class:`Encoder` instance, ``hashing``, a preset name (``bge``, ``minilm``…),
    a local model folder, or a hub id (:func:`negmine.encoders.presets.resolve_model`). Explicit prompts override a
    preset's. A path that does not exist or is not a model raises a one-line error naming ``option``."""
    from negmine.encoders.st import SentenceTransformerEncoder

    if not isinstance(retriever, (str, os.PathLike)):
        if isinstance(retriever, Encoder):
            return retriever
        return SentenceTransformerEncoder(
            retriever,
            query_prompt=query_prompt,
            corpus_prompt=corpus_prompt,
            precision=precision,
            max_seq_length=max_seq_length,
            device=device,
        )
    name = str(retriever)
    if name == "hashing":
        return HashingEncoder()
    resolved = resolve_model(name, model_path, option=option)
    preset = resolved.preset
    if preset is not None:
        return SentenceTransformerEncoder(
            resolved.location,
            revision=resolved.revision,
            name=preset.name,
            query_prompt=preset.query_prompt if query_prompt is None else query_prompt,
            corpus_prompt=preset.corpus_prompt if corpus_prompt is None else corpus_prompt,
            similarity=preset.similarity,
            precision=precision,
            device=device,
            max_seq_length=max_seq_length or preset.max_seq_length,
            option=option,
        )
    return SentenceTransformerEncoder(
        resolved.location,
        query_prompt=query_prompt,
        corpus_prompt=corpus_prompt,
        precision=precision,
        max_seq_length=max_seq_length,
        device=device,
        name=name,
        option=option,
    )


def encode_with_cache(
    encoder: Encoder,
    texts: Sequence[str],
    kind: str,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = True,
    desc: str | None = None,
):
    """Encode ``texts`` (``kind`` = ``"query"`` or ``"document"``) through the cache, with a progress bar.

    ``texts`` may be a lazy sequence over a disk-backed corpus (:func:`~negmine.encoders.cache.is_lazy`): it is read
    block by block (with or without a cache), never as one list."""
    from tqdm.auto import tqdm

    if kind not in PLURAL:
        raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
    fn = encoder.encode_queries if kind == "query" else encoder.encode_corpus

    def encode(batch):
        return fn(batch, batch_size=batch_size)

    if cache is None:
        if is_lazy(texts):  # a disk-backed corpus: the cache's block layout, so no list of every text is built
            with tqdm(total=len(texts), desc=desc or f"Encoding {PLURAL[kind]}", unit="text",
                      disable=not show_progress_bar) as bar:
                return encode_in_blocks(texts, encode, progress=bar.update)
        return encode(texts)
    with tqdm(total=len(texts), desc=desc or f"Encoding {PLURAL[kind]}", unit="text",
              disable=not show_progress_bar) as bar:
        return cache.get_or_encode(texts, encode, encoder.fingerprint(), kind, progress=bar.update)
