"""Hand negmine's cached corpus embeddings to sentence-transformers' ``mine_hard_negatives`` (its ``cache_folder``).

Both libraries encode a corpus with the same model, prompt and token cap into the same vectors; a peer row that
mines with sentence-transformers then does not pay a second multi-hour encode of a corpus negmine already encoded,
and the encode itself goes through negmine's embedding cache, which resumes block by block when a run is stopped
(sentence-transformers' own encode of a corpus starts over). The file name follows sentence-transformers'
``util/hard_negatives.py``: ``corpus_embeddings_{sha256(repr((model name, prompt, prompt name, corpus)))}.npy``, over
the corpus it builds (the given corpus plus the positives, de-duplicated in order). :func:`loaded_from_seed` tells
afterwards whether sentence-transformers read the seeded file (it writes a file of its own when the name differs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def st_corpus(corpus: Sequence[str], positives: Sequence[str]) -> list[str]:
    """The corpus ``mine_hard_negatives`` encodes: ``corpus + positives``, de-duplicated in order."""
    return list(dict.fromkeys([*corpus, *positives]))


def st_corpus_file(cache_folder: str | Path, model: Any, corpus: list[str], prompt: str | None = None,
                   prompt_name: str | None = None) -> Path:
    name = model.model_card_data.base_model or ""
    digest = hashlib.sha256(repr((name, prompt, prompt_name, corpus)).encode()).hexdigest()
    return Path(cache_folder) / f"corpus_embeddings_{digest}.npy"


def seed_st_cache(cache_folder: str | Path, encoder: Any, corpus: Sequence[str], positives: Sequence[str], *,
                  cache: Any = None, prompt: str | None = None, prompt_name: str | None = None,
                  batch_size: int = 32, show_progress_bar: bool = False) -> Path:
    """Encode (or read) ``st_corpus(corpus, positives)`` through negmine's cache with ``encoder`` (a
    :class:`~negmine.encoders.st.SentenceTransformerEncoder` whose corpus prompt is the model's ``prompt_name``
    prompt, or the ``prompt`` string sentence-transformers is given) and save it as sentence-transformers' corpus cache
    file; returns that file."""
    from negmine.encoders import EmbeddingCache, encode_with_cache

    texts = st_corpus(corpus, positives)
    emb = encode_with_cache(encoder, texts, "document", cache=cache if cache is not None else EmbeddingCache(),
                            batch_size=batch_size, show_progress_bar=show_progress_bar)
    path = st_corpus_file(cache_folder, encoder.model, texts, prompt=prompt, prompt_name=prompt_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(emb, dtype=np.float32))
    return path


def loaded_from_seed(seed: Path) -> bool:
    """True when sentence-transformers used ``seed``: no other corpus cache file appeared beside it."""
    return seed.is_file() and [p.name for p in seed.parent.glob("corpus_embeddings_*.npy")] == [seed.name]
